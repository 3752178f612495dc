//! Punch and relay datagrams: whatever parses re-encodes to the same bytes.
#![no_main]

use lifebuoy_proto::datagram::Datagram;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Datagram::decode(data) {
        assert_eq!(d.encode(), data);
    }
});
