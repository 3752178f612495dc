//! The screen decoder, on hostile updates, with and without a previous
//! frame: errors only, never a panic, never an allocation beyond one frame.
#![no_main]

use lifebuoy_proto::codec::{Decoder, Encoder, Image};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut fresh = Decoder::new();
    let _ = fresh.decode(data);
    let mut primed = Decoder::new();
    let mut image = Image::new(130, 70);
    for (i, b) in image.pixels.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    let (first, _) = Encoder::new().encode(image).expect("a first frame is never empty");
    primed.decode(&first).expect("own update");
    let _ = primed.decode(data);
});
