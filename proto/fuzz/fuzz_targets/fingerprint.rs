//! Fingerprints as people paste them (staff directory, command line).
#![no_main]

use lifebuoy_proto::Fingerprint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(fp) = text.parse::<Fingerprint>() {
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
    }
});
