//! The TCP tunnel decoder, fed hostile streams in hostile pieces.
#![no_main]

use lifebuoy_proto::tunnel::{TunnelDecoder, MAX_DATAGRAM};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let piece = 1 + data[0] as usize;
    let mut d = if data[0] & 1 == 0 { TunnelDecoder::server_side() } else { TunnelDecoder::client_side() };
    for chunk in data[1..].chunks(piece) {
        d.push(chunk);
        loop {
            match d.next_datagram() {
                Ok(Some((_, dgram))) => assert!(!dgram.is_empty() && dgram.len() <= MAX_DATAGRAM),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
