//! The staff directory parser: any text is a directory or a typed error;
//! what it accepts obeys the rules every customer's list relies on.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifebuoy::rendezvous::directory::Directory;

fuzz_target!(|text: &str| {
    if let Ok(dir) = Directory::parse(text) {
        for s in dir.staff() {
            assert!(!s.name.trim().is_empty());
            assert!(lifebuoy_proto::text::check_label("name", &s.name, 64).is_ok());
            assert_eq!(dir.get(&s.fingerprint).map(|found| &found.name), Some(&s.name));
        }
    }
});
