//! Round trips on random frame sequences (typing-like edits, scrolling,
//! moved windows, size changes) must be bit-exact; hostile updates must be
//! errors, never panics.

use proptest::prelude::*;

use super::*;

fn noise(w: u32, h: u32, seed: u64) -> Image {
    let mut x = seed | 1;
    let mut img = Image::new(w, h);
    for px in img.pixels.chunks_exact_mut(4) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Few colours, like a desktop.
        let c = (x % 5) as u8 * 60;
        px.copy_from_slice(&[c, c / 2, 255 - c, 0]);
    }
    img
}

#[derive(Clone, Debug)]
enum Edit {
    Fill { x: u32, y: u32, w: u32, h: u32, c: u8 },
    Noise { x: u32, y: u32, w: u32, h: u32, seed: u64 },
    Scroll { dy: i32 },
    Move { x: u32, y: u32, w: u32, h: u32, dx: i32, dy: i32 },
    Resize { w: u32, h: u32 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..300u32, 0..200u32, 1..80u32, 1..80u32, any::<u8>()).prop_map(|(x, y, w, h, c)| Edit::Fill {
            x,
            y,
            w,
            h,
            c
        }),
        (0..300u32, 0..200u32, 1..40u32, 1..40u32, any::<u64>()).prop_map(|(x, y, w, h, seed)| Edit::Noise {
            x,
            y,
            w,
            h,
            seed
        }),
        (-90..90i32).prop_map(|dy| Edit::Scroll { dy }),
        (0..300u32, 0..200u32, 1..120u32, 1..120u32, -70..70i32, -70..70i32)
            .prop_map(|(x, y, w, h, dx, dy)| Edit::Move { x, y, w, h, dx, dy }),
        (1..300u32, 1..200u32).prop_map(|(w, h)| Edit::Resize { w, h }),
    ]
}

fn apply(img: &Image, e: &Edit) -> Image {
    let mut out = img.clone();
    let (w, h) = (img.width, img.height);
    let clip = |x: u32, y: u32, rw: u32, rh: u32| {
        let x = x.min(w - 1);
        let y = y.min(h - 1);
        Rect { x, y, w: rw.min(w - x), h: rh.min(h - y) }
    };
    match *e {
        Edit::Fill { x, y, w: rw, h: rh, c } => {
            let r = clip(x, y, rw, rh);
            for dy in 0..r.h {
                out.row_mut(r, dy).fill(c);
            }
        }
        Edit::Noise { x, y, w: rw, h: rh, seed } => {
            let r = clip(x, y, rw, rh);
            let n = noise(r.w, r.h, seed);
            for dy in 0..r.h {
                out.row_mut(r, dy).copy_from_slice(n.row(Rect { x: 0, y: 0, w: r.w, h: r.h }, dy));
            }
        }
        Edit::Scroll { dy } => {
            for y in 0..h {
                let src = y as i64 + dy as i64;
                if (0..h as i64).contains(&src) {
                    let full = Rect { x: 0, y: 0, w, h };
                    let row = img.row(full, src as u32).to_vec();
                    out.row_mut(full, y).copy_from_slice(&row);
                }
            }
        }
        Edit::Move { x, y, w: rw, h: rh, dx, dy } => {
            let r = clip(x, y, rw, rh);
            for yy in 0..r.h {
                for xx in 0..r.w {
                    let (tx, ty) = (r.x as i64 + xx as i64 + dx as i64, r.y as i64 + yy as i64 + dy as i64);
                    if (0..w as i64).contains(&tx) && (0..h as i64).contains(&ty) {
                        let s = ((r.y + yy) as usize * w as usize + (r.x + xx) as usize) * 4;
                        let d = (ty as usize * w as usize + tx as usize) * 4;
                        let px: [u8; 4] = img.pixels[s..s + 4].try_into().unwrap();
                        out.pixels[d..d + 4].copy_from_slice(&px);
                    }
                }
            }
        }
        Edit::Resize { w: nw, h: nh } => out = noise(nw, nh, (nw * 7919 + nh) as u64),
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_round_trip_bit_exact(
        w in 1..300u32, h in 1..200u32, seed in any::<u64>(), edits in prop::collection::vec(edit(), 1..30)
    ) {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut frame = noise(w, h, seed);
        let (update, _) = enc.encode(frame.clone()).expect("first frame is never empty");
        prop_assert_eq!(dec.decode(&update).unwrap(), &frame);
        for e in &edits {
            frame = apply(&frame, e);
            match enc.encode(frame.clone()) {
                Some((update, _)) => { prop_assert_eq!(dec.decode(&update).unwrap(), &frame); }
                None => prop_assert_eq!(dec.image().unwrap(), &frame),
            }
        }
    }

    #[test]
    fn sliced_updates_end_bit_exact_with_changes_between_the_slices(
        w in 1..300u32, h in 1..200u32, seed in any::<u64>(), budget in 1..6000usize,
        edits in prop::collection::vec(edit(), 1..20)
    ) {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut frame = noise(w, h, seed);
        // One slice per change: what is left waits, and the next change
        // comes on top of it, as on a slow path.
        let slice = |enc: &mut Encoder, dec: &mut Decoder, frame: &Image| {
            let sliced = enc.encode_frame_within(frame, None, budget);
            if let Some((update, _)) = &sliced.update {
                dec.decode(update).unwrap();
            }
            sliced.left.is_empty()
        };
        slice(&mut enc, &mut dec, &frame);
        for e in &edits {
            frame = apply(&frame, e);
            slice(&mut enc, &mut dec, &frame);
        }
        let mut rounds = 0;
        while !slice(&mut enc, &mut dec, &frame) {
            rounds += 1;
            prop_assert!(rounds < 1000);
        }
        prop_assert_eq!(dec.image().unwrap(), &frame);
    }

    #[test]
    fn hostile_updates_are_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut dec = Decoder::new();
        let _ = dec.decode(&bytes);
        // With a reference frame too.
        let mut dec = Decoder::new();
        let (first, _) = Encoder::new().encode(noise(100, 70, 3)).unwrap();
        dec.decode(&first).unwrap();
        let _ = dec.decode(&bytes);
    }
}

#[test]
fn unchanged_frame_sends_nothing_and_small_edit_sends_one_tile() {
    let mut enc = Encoder::new();
    let frame = noise(640, 480, 9);
    enc.encode(frame.clone()).unwrap();
    assert!(enc.encode(frame.clone()).is_none());
    let edited = apply(&frame, &Edit::Fill { x: 70, y: 70, w: 3, h: 3, c: 1 });
    let (update, stats) = enc.encode(edited).unwrap();
    assert_eq!(stats.xor + stats.fill + stats.raw + stats.copy, 1);
    assert!(update.len() < 200, "{} bytes for 9 pixels", update.len());
}

#[test]
fn truncated_and_padded_updates_are_refused_and_leave_the_frame() {
    let mut enc = Encoder::new();
    let frame = noise(200, 100, 1);
    let (update, _) = enc.encode(frame.clone()).unwrap();
    let mut dec = Decoder::new();
    for cut in 0..update.len() {
        assert!(dec.decode(&update[..cut]).is_err(), "cut at {cut}");
    }
    let mut padded = update.clone();
    padded.push(0);
    assert!(dec.decode(&padded).is_err());
    dec.decode(&update).unwrap();
    let (second, _) = enc.encode(apply(&frame, &Edit::Fill { x: 0, y: 0, w: 10, h: 10, c: 9 })).unwrap();
    assert!(dec.decode(&second[..second.len() - 1]).is_err());
    assert_eq!(dec.image().unwrap(), &frame, "a failed update changes nothing");
}

#[test]
fn oversized_geometry_and_zstd_bombs_are_refused_without_allocating() {
    let mut dec = Decoder::new();
    // 8192 x 8192 is above MAX_PIXELS.
    let mut bomb = vec![VERSION, 0];
    wire::put_varint(&mut bomb, 8192);
    wire::put_varint(&mut bomb, 8192);
    assert!(matches!(dec.decode(&bomb), Err(CodecError::Size { .. })));
    // A valid header whose payload decompresses to more than announced.
    let mut update = vec![VERSION, 0];
    wire::put_varint(&mut update, 64);
    wire::put_varint(&mut update, 64);
    wire::put_varint(&mut update, 1);
    wire::put_varint(&mut update, 0);
    update.push(0);
    let big = zstd::bulk::compress(&vec![0u8; 64 * 64 * 4 * 100], 1).unwrap();
    wire::put_varint(&mut update, big.len() as u64);
    update.extend_from_slice(&big);
    assert_eq!(dec.decode(&update), Err(CodecError::Payload));
}

#[test]
fn xor_and_copy_need_a_reference_of_the_same_size() {
    let mut dec = Decoder::new();
    let mut update = vec![VERSION, 0];
    wire::put_varint(&mut update, 64);
    wire::put_varint(&mut update, 64);
    wire::put_varint(&mut update, 1);
    wire::put_varint(&mut update, 0);
    update.push(3);
    wire::put_zigzag(&mut update, 0);
    wire::put_zigzag(&mut update, 0);
    wire::put_varint(&mut update, 0);
    assert_eq!(dec.decode(&update), Err(CodecError::NoReference));
}

#[test]
fn a_scroll_is_sent_as_copies_plus_the_new_rows() {
    // A "terminal": distinct text-like rows, scrolled up by 17 pixels.
    // "Glyphs" 7x11 chosen by a hash of line and column.
    let mut frame = Image::new(640, 480);
    for y in 0..480u32 {
        for x in 0..640u32 {
            let glyph = ((y / 11) * 131 + (x / 7) * 31).wrapping_mul(2654435761) >> 7;
            let on = (glyph >> ((x % 7) + (y % 11) * 3 % 20)) & 1 == 1 && y % 11 < 8;
            let i = ((y * 640 + x) * 4) as usize;
            frame.pixels[i..i + 4].copy_from_slice(if on { &[220, 220, 220, 0] } else { &[30, 30, 30, 0] });
        }
    }
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    dec.decode(&enc.encode(frame.clone()).unwrap().0).unwrap();
    let scrolled = apply(&frame, &Edit::Scroll { dy: 17 });
    let (update, stats) = enc.encode(scrolled.clone()).unwrap();
    assert_eq!(dec.decode(&update).unwrap(), &scrolled);
    assert!(stats.copy > stats.tiles / 2, "{stats:?}");
    let (full, _) = Encoder::new().encode(scrolled).unwrap();
    assert!(update.len() * 4 < full.len(), "scroll {} bytes vs full frame {}", update.len(), full.len());
}

#[test]
fn copy_offsets_at_the_ends_of_i64_are_refused() {
    // Found by the screen_codec fuzz target: a copy offset near i64::MIN
    // overflowed the source computation.
    let mut dec = Decoder::new();
    dec.decode(&Encoder::new().encode(noise(130, 70, 3)).unwrap().0).unwrap();
    for offset in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 63] {
        let mut update = vec![VERSION, 0];
        wire::put_varint(&mut update, 130);
        wire::put_varint(&mut update, 70);
        wire::put_varint(&mut update, 1);
        wire::put_varint(&mut update, 0);
        update.push(3);
        wire::put_zigzag(&mut update, offset);
        wire::put_zigzag(&mut update, offset);
        wire::put_varint(&mut update, 0);
        assert_eq!(dec.decode(&update), Err(CodecError::CopySource), "offset {offset}");
    }
}

/// A wallpaper with fine detail and a text-like window on it.
fn desktop(w: u32, h: u32) -> (Image, Image) {
    let mut wallpaper = Image::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 4) as usize;
            let v = ((x * x + y * 3) ^ (x * y / 7)) as u8;
            wallpaper.pixels[i..i + 4].copy_from_slice(&[v, v.wrapping_mul(3), 255 - v, 0]);
        }
    }
    let mut window = Image::new(180, 120);
    for y in 0..120u32 {
        for x in 0..180u32 {
            // Glyphs 6x12 picked by a hash of line and column, like the scroll test.
            let glyph = ((y / 12) * 131 + (x / 6) * 31).wrapping_mul(2654435761) >> 9;
            let on = y < 14 || (glyph >> ((x % 6) + (y % 12) * 2 % 20)) & 1 == 1 && y % 12 < 9;
            let i = ((y * 180 + x) * 4) as usize;
            window.pixels[i..i + 4].copy_from_slice(if on { &[40, 40, 40, 0] } else { &[250, 250, 250, 0] });
        }
    }
    (wallpaper, window)
}

fn place(wallpaper: &Image, window: &Image, x: u32, y: u32) -> Image {
    let mut out = wallpaper.clone();
    for dy in 0..window.height {
        let dst = Rect { x, y, w: window.width, h: window.height };
        out.row_mut(dst, dy).copy_from_slice(window.row(window.rect(), dy));
    }
    out
}

#[test]
fn a_dragged_window_is_copied_and_the_uncovered_wallpaper_comes_from_the_background() {
    let (wallpaper, window) = desktop(640, 400);
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let mut send = |frame: &Image| {
        let (update, stats) = enc.encode(frame.clone()).expect("every frame moves the window");
        assert_eq!(dec.decode(&update).unwrap(), frame);
        (update.len(), stats)
    };
    // Seen in full first, so the wallpaper settles everywhere.
    send(&wallpaper);
    for i in 0..6u32 {
        send(&place(&wallpaper, &window, 20, 20 + i % 2));
    }
    let (mut out_bytes, mut back_bytes) = (0, 0);
    let (mut moved, mut from_back) = (0, 0);
    for i in 0..30u32 {
        let (bytes, stats) = send(&place(&wallpaper, &window, 20 + i * 8, 20 + i * 4));
        out_bytes += bytes;
        moved += stats.copy + stats.mix;
    }
    for i in (0..29u32).rev() {
        let (bytes, stats) = send(&place(&wallpaper, &window, 20 + i * 8, 20 + i * 4));
        back_bytes += bytes;
        from_back += stats.back + stats.mix;
    }
    assert!(moved > 30 * 3, "the window's tiles are copies or mixes: {moved}");
    assert!(from_back > 30, "the uncovered wallpaper is referred to: {from_back}");
    let (full, _) = Encoder::new().encode(place(&wallpaper, &window, 100, 60)).unwrap();
    assert!(out_bytes < full.len() * 30 / 8, "out {out_bytes} bytes vs full frame {}", full.len());
    assert!(back_bytes * 2 < out_bytes, "back {back_bytes} bytes vs out {out_bytes}");
}

#[test]
fn a_mask_naming_a_background_the_tile_lacks_is_refused() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let frame = noise(64, 64, 5);
    dec.decode(&enc.encode(frame.clone()).unwrap().0).unwrap();
    let mut update = vec![VERSION, 0];
    for v in [64, 64, 1, 0] {
        wire::put_varint(&mut update, v);
    }
    update.push(5);
    wire::put_zigzag(&mut update, 0);
    wire::put_zigzag(&mut update, 0);
    let mut payload = vec![mix::BACKGROUND; 64 * 64];
    payload.extend(vec![0; 64 * 64 * 4]);
    let compressed = zstd::bulk::compress(&payload, 1).unwrap();
    wire::put_varint(&mut update, compressed.len() as u64);
    update.extend_from_slice(&compressed);
    assert_eq!(dec.decode(&update), Err(CodecError::Mask));
    // A mask byte naming nothing.
    let mut bad = payload.clone();
    bad[100] = 9;
    bad[..64 * 64].iter_mut().filter(|m| **m == mix::BACKGROUND).for_each(|m| *m = mix::SAME);
    let compressed = zstd::bulk::compress(&bad, 1).unwrap();
    let head = update.len() - payload_len_field(&update);
    let mut update = update[..head].to_vec();
    wire::put_varint(&mut update, compressed.len() as u64);
    update.extend_from_slice(&compressed);
    assert_eq!(dec.decode(&update), Err(CodecError::Mask));
    assert_eq!(dec.image().unwrap(), &frame, "a refused update changes nothing");
}

/// Bytes taken by the payload length and payload at the end of an update built above.
fn payload_len_field(update: &[u8]) -> usize {
    // The zstd frame starts with its magic number; the varint before it is its length.
    let magic = [0x28, 0xb5, 0x2f, 0xfd];
    let at = update.windows(4).rposition(|w| w == magic).unwrap();
    let mut len_start = at - 1;
    while len_start > 0 && update[len_start - 1] & 0x80 != 0 {
        len_start -= 1;
    }
    update.len() - len_start
}

#[test]
fn unknown_flags_and_fresh_updates_that_refer_back_are_refused() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let frame = noise(64, 64, 5);
    let (first, _) = enc.encode(frame.clone()).unwrap();
    assert_eq!(first[1], FLAG_FRESH);
    dec.decode(&first).unwrap();
    let mut flagged = first.clone();
    flagged[1] = 0x80;
    assert_eq!(dec.decode(&flagged), Err(CodecError::Flags(0x80)));
    let (second, _) = enc.encode(apply(&frame, &Edit::Fill { x: 1, y: 1, w: 5, h: 5, c: 7 })).unwrap();
    let mut fresh = second.clone();
    fresh[1] = FLAG_FRESH;
    assert_eq!(dec.decode(&fresh), Err(CodecError::NoReference));
    dec.decode(&second).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The borrowing encoder (capture backends keep their frame) sends the
    /// same bytes as the owning one; told exactly where an edit was, it
    /// still delivers every frame bit-exact.
    #[test]
    fn encode_frame_matches_encode_and_honours_damage(
        seed in any::<u64>(), edits in prop::collection::vec(edit(), 1..20)
    ) {
        let (mut owning, mut borrowing, mut hinted) = (Encoder::new(), Encoder::new(), Encoder::new());
        let mut dec = Decoder::new();
        let mut frame = noise(300, 200, seed);
        let first = owning.encode(frame.clone()).unwrap().0;
        prop_assert_eq!(&borrowing.encode_frame(&frame, None).unwrap().0, &first);
        dec.decode(&hinted.encode_frame(&frame, None).unwrap().0).unwrap();
        for e in &edits {
            if matches!(e, Edit::Resize { .. }) {
                continue;
            }
            let next = apply(&frame, e);
            let a = owning.encode(next.clone()).map(|u| u.0);
            let b = borrowing.encode_frame(&next, None).map(|u| u.0);
            prop_assert_eq!(&a, &b);
            // The exact changed area, as a display server would report it.
            let changed: Vec<Rect> = (0..next.height)
                .flat_map(|y| (0..next.width).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    let i = ((y * next.width + x) * 4) as usize;
                    next.pixels[i..i + 4] != frame.pixels[i..i + 4]
                })
                .map(|(x, y)| Rect { x, y, w: 1, h: 1 })
                .collect();
            match hinted.encode_frame(&next, Some(&changed)) {
                Some((u, _)) => { prop_assert_eq!(dec.decode(&u).unwrap(), &next); }
                None => prop_assert_eq!(dec.image().unwrap(), &next),
            }
            frame = next;
        }
    }
}

#[test]
fn a_budget_cuts_a_big_change_into_updates_near_it() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let frame = noise(640, 384, 11);
    let mut sizes = Vec::new();
    loop {
        let sliced = enc.encode_frame_within(&frame, None, 20_000);
        let (update, _) = sliced.update.expect("tiles are left");
        sizes.push(update.len());
        dec.decode(&update).unwrap();
        if sliced.left.is_empty() {
            break;
        }
    }
    assert!(sizes.len() > 3, "{sizes:?}");
    // The first guess knows no compression ratio; after it, slices stay near the budget.
    assert!(sizes[1..sizes.len() - 1].iter().all(|&s| s < 20_000 * 3 / 2), "{sizes:?}");
    assert_eq!(dec.image().unwrap(), &frame);
}

#[test]
fn a_cut_fresh_frame_sends_every_tile_even_those_like_the_blank_start() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    // Noise on top, black below: the black tiles equal the viewer's start.
    let mut frame = noise(256, 256, 5);
    frame.pixels[256 * 4 * 128..].fill(0);
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let sliced = enc.encode_frame_within(&frame, Some(&[]), 2_000);
        let Some((update, _)) = sliced.update else { break };
        dec.decode(&update).unwrap();
        seen.extend(dec.touched().0.iter().copied());
        if sliced.left.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 16, "every tile of the 4x4 reached the viewer");
    assert_eq!(dec.image().unwrap(), &frame);
}

#[test]
fn a_budget_holds_when_the_content_turns_from_text_to_noise() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    // Flat content teaches the encoder that payloads compress a hundredfold.
    let mut frame = Image::new(640, 384);
    for (i, px) in frame.pixels.chunks_exact_mut(4).enumerate() {
        px[0] = (i / 640 % 7) as u8;
    }
    for _ in 0..3 {
        let sliced = enc.encode_frame_within(&frame, None, 1 << 30);
        if let Some((update, _)) = sliced.update {
            dec.decode(&update).unwrap();
        }
        frame.pixels.iter_mut().step_by(4).for_each(|b| *b = b.wrapping_add(1));
    }
    // Then noise: nothing compresses, and the first update still keeps near the budget.
    let noisy = Image {
        pixels: (0..640 * 384).flat_map(|i: u32| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect(),
        ..frame
    };
    let sliced = enc.encode_frame_within(&noisy, None, 20_000);
    let (update, _) = sliced.update.unwrap();
    assert!(update.len() < 20_000 * 2, "{} bytes for a budget of 20,000", update.len());
    assert!(!sliced.left.is_empty());
    dec.decode(&update).unwrap();
}
