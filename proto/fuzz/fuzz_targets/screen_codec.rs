//! The screen decoder, on hostile updates, with and without a previous
//! frame: errors only, never a panic, never an allocation beyond one frame.
#![no_main]

use std::sync::OnceLock;

use lifebuoy_proto::codec::{Decoder, Encoder, Image};
use libfuzzer_sys::fuzz_target;

/// A decoder holding a 130x70 frame, made once.
fn primed() -> &'static Decoder {
    static PRIMED: OnceLock<Decoder> = OnceLock::new();
    PRIMED.get_or_init(|| {
        let mut image = Image::new(130, 70);
        for (i, b) in image.pixels.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let (first, _) = Encoder::new().encode(image).expect("a first frame is never empty");
        let mut decoder = Decoder::new();
        decoder.decode(&first).expect("own update");
        decoder
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = Decoder::new().decode(data);
    let _ = primed().clone().decode(data);
});
