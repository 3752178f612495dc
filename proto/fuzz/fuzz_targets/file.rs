//! File stream messages.
#![no_main]

use lifebuoy_proto::file::File;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::check::<File>(data));
