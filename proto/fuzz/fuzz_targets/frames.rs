//! The frame decoder, fed a hostile byte stream in hostile pieces: never
//! panics, never yields a frame above its limit, never buffers much more
//! than one frame plus one piece.
#![no_main]

use lifebuoy_proto::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = 1 + (u16::from_le_bytes([data[0], data[1]]) as usize);
    let piece = 1 + data[2] as usize;
    let mut decoder = FrameDecoder::new(max);
    for chunk in data[3..].chunks(piece) {
        if decoder.push(chunk).is_err() {
            assert!(decoder.next_frame().is_err(), "a failed decoder must stay failed");
            return;
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => assert!(!frame.is_empty() && frame.len() <= max),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.finish();
});
