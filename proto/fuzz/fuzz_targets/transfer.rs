//! The receiving side of a file stream on hostile message sequences and
//! names: errors only, never a panic; an accepted path is always plain
//! names (no separators, no `..`), and a committed file got exactly its
//! announced size.
#![no_main]

use lifebuoy_proto::file::File;
use lifebuoy_proto::transfer::{check_path, Receive, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, Vec<File>)| {
    let (name, messages) = input;
    if let Ok(path) = check_path(&name) {
        for c in path.components() {
            assert!(!c.is_empty() && c != "." && c != ".." && !c.contains('/') && !c.contains('\\'));
        }
    }
    let mut r = Receive::new();
    let mut announced = None;
    for m in &messages {
        match r.on_message(m) {
            Ok(Step::Create { header, path }) => {
                assert!(!path.components().is_empty());
                announced = Some(header.size);
            }
            Ok(Step::Commit) => {
                if let (Some(size), File::End { .. }) = (announced, m) {
                    assert!(r.received() == size || r.received() == 0);
                }
            }
            Ok(Step::Write(_)) => {}
            Err(_) => break,
        }
    }
});
