//! Hello and control messages, and reading the version of any hello.
#![no_main]

use lifebuoy_proto::control::Control;
use lifebuoy_proto::hello::{peek_version, Hello};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = peek_version(data);
    common::check::<Hello>(data);
    common::check::<Control>(data);
});
