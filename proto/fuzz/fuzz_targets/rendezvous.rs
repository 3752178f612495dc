//! Rendezvous signalling, both directions.
#![no_main]

use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::check::<ToRendezvous>(data);
    common::check::<FromRendezvous>(data);
});
