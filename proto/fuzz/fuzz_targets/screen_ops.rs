//! The screen decoder past the zstd wall: the fuzzer writes the op list
//! and the *uncompressed* payload, this target compresses the payload, so
//! masks, residuals, BACK and MIX are reached with every byte the fuzzer
//! chooses. The decoder holds a frame whose background has settled.
//! Errors only, never a panic; an accepted update keeps the frame's size.
#![no_main]

use std::sync::OnceLock;

use lifebuoy_proto::codec::{Decoder, Encoder, Image};
use libfuzzer_sys::fuzz_target;

/// A 130x70 frame sent six times with one corner changing: every other
/// tile has settled into the background.
fn primed() -> &'static Decoder {
    static PRIMED: OnceLock<Decoder> = OnceLock::new();
    PRIMED.get_or_init(|| {
        let mut image = Image::new(130, 70);
        for (i, b) in image.pixels.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new());
        for n in 0..7u8 {
            image.pixels[0] = n;
            if let Some((update, _)) = encoder.encode(image.clone()) {
                decoder.decode(&update).expect("own update");
            }
        }
        decoder
    })
}

fuzz_target!(|data: &[u8]| {
    // data = head_len u8, head (version, flags, sizes, ops), payload.
    let Some((&head_len, rest)) = data.split_first() else { return };
    let head_len = usize::from(head_len).min(rest.len());
    let (head, payload) = rest.split_at(head_len);
    let mut update = head.to_vec();
    if payload.is_empty() {
        update.push(0);
    } else {
        let compressed = zstd::bulk::compress(payload, 1).expect("in memory");
        let mut len = compressed.len() as u64;
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            update.push(if len == 0 { byte } else { byte | 0x80 });
            if len == 0 {
                break;
            }
        }
        update.extend_from_slice(&compressed);
    }
    let mut decoder = primed().clone();
    if let Ok(image) = decoder.decode(&update) {
        assert_eq!(image.pixels.len(), image.width as usize * image.height as usize * 4);
    }
});
