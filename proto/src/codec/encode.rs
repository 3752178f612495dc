//! The encoder: finds the changed tiles and picks an operation for each.

use super::background::Background;
use super::image::{Image, Rect};
use super::wire::{put_varint, put_zigzag};
use super::{mix, motion, FLAG_FRESH, VERSION};

/// zstd level for the tile payload: level 1 is ~470 MB/s here and within a
/// few percent of level 3 on screen content (measured on this kind of machine).
const LEVEL: i32 = 1;

/// What one update contained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderStats {
    /// Tiles in the frame.
    pub tiles: u32,
    /// Tiles sent as raw pixels.
    pub raw: u32,
    /// Tiles sent as XOR with the previous frame.
    pub xor: u32,
    /// Tiles sent as one colour.
    pub fill: u32,
    /// Tiles sent as a copy from the previous frame.
    pub copy: u32,
    /// Tiles sent as their settled background.
    pub back: u32,
    /// Tiles sent as a per-pixel mix of predictions.
    pub mix: u32,
}

/// Encodes frames as updates against the previous one.
#[derive(Debug, Default)]
pub struct Encoder {
    prev: Option<Image>,
    background: Background,
    payload: Vec<u8>,
    zstd: Zstd,
    /// Compressed over uncompressed payload of recent updates, to guess
    /// an update's size before it is compressed; `None` before the first.
    ratio: Option<f64>,
    /// Tiles of a fresh frame cut by a budget that no update carried yet:
    /// sent even where the screen shows what the viewer's blank start
    /// shows, so the viewer knows its picture is complete.
    unsent: Vec<bool>,
}

/// An update cut to a budget: the tiles it left for a later update.
#[derive(Debug, Default)]
pub struct Sliced {
    /// The update, `None` if nothing changed.
    pub update: Option<(Vec<u8>, EncoderStats)>,
    /// Changed tiles this update does not carry, ascending. The encoder
    /// still holds their old pixels, so an update that compares them again
    /// (damage covering them) sends them.
    pub left: Vec<u32>,
}

/// One compression context for the encoder's life: making one per update
/// costs more than compressing a typical update.
#[derive(Default)]
struct Zstd(Option<zstd::bulk::Compressor<'static>>);

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Zstd")
    }
}

impl Zstd {
    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let compressor = self.0.get_or_insert_with(|| {
            zstd::bulk::Compressor::new(LEVEL).expect("a zstd context at a valid level")
        });
        compressor.compress(data).expect("compressing to memory cannot fail")
    }
}

enum Op {
    Raw,
    Xor,
    Fill([u8; 4]),
    Copy(i64, i64),
    Back,
    Mix(i64, i64),
}

impl Encoder {
    /// An encoder whose first update will be a full frame.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Forgets the previous frame: the next update is a full frame (after
    /// the viewer lost the chain, or switched monitors).
    pub fn reset(&mut self) {
        self.prev = None;
        self.unsent.clear();
    }

    /// Encodes `image` against the previous frame. `None` if nothing changed.
    pub fn encode(&mut self, image: Image) -> Option<(Vec<u8>, EncoderStats)> {
        let (update, _, _) = self.encode_inner(&image, None, usize::MAX);
        self.prev = Some(image);
        update
    }

    /// Encodes a frame the caller keeps (a capture backend's buffer), told
    /// where it may differ from the previous one (the display server's
    /// damage report): tiles outside `damaged` are taken as unchanged
    /// without comparing them, and only changed tiles are copied into the
    /// encoder's own previous frame, so a small change costs no full-frame
    /// work anywhere. A report that missed a change leaves stale pixels on
    /// the viewer until the next full comparison (`damaged` = `None`), so
    /// callers make one now and then.
    pub fn encode_frame(
        &mut self,
        image: &Image,
        damaged: Option<&[Rect]>,
    ) -> Option<(Vec<u8>, EncoderStats)> {
        self.encode_frame_within(image, damaged, usize::MAX).update
    }

    /// [`Encoder::encode_frame`] in an update of about `budget` bytes at
    /// most (at least one tile): the changed tiles go in index order until
    /// the guessed compressed size reaches the budget, the rest are left
    /// for a later update, so a slow path carries a big change in slices a
    /// key's echo can come between.
    pub fn encode_frame_within(&mut self, image: &Image, damaged: Option<&[Rect]>, budget: usize) -> Sliced {
        let (update, sent, left) = self.encode_inner(image, damaged, budget);
        match &mut self.prev {
            Some(p) if p.width == image.width && p.height == image.height && update.is_some() => {
                copy_tiles(p, image, &sent);
            }
            Some(p) if p.width == image.width && p.height == image.height => {}
            // A fresh frame: the viewer starts from black where it was cut.
            _ if !left.is_empty() => {
                let mut p = Image::new(image.width, image.height);
                copy_tiles(&mut p, image, &sent);
                self.prev = Some(p);
            }
            _ => self.prev = Some(image.clone()),
        }
        Sliced { update, left }
    }

    /// The update, the tiles it changed and the changed tiles it left.
    /// Leaves `self.prev` as it was (or `None` where it does not match
    /// `image`'s size).
    fn encode_inner(&mut self, image: &Image, damaged: Option<&[Rect]>, budget: usize) -> Encoded {
        let prev = self.prev.take().filter(|p| p.width == image.width && p.height == image.height);
        let update = self.encode_against(prev.as_ref(), image, damaged, budget);
        self.prev = prev;
        update
    }

    fn encode_against(
        &mut self,
        prev: Option<&Image>,
        image: &Image,
        damaged: Option<&[Rect]>,
        budget: usize,
    ) -> Encoded {
        if prev.is_none() {
            self.background.reset();
        }
        let (cols, rows) = image.tiles();
        let mut stats = EncoderStats { tiles: cols * rows, ..Default::default() };
        let mut ops = Vec::new();
        self.payload.clear();
        if prev.is_none() {
            self.unsent = vec![true; (cols * rows) as usize];
        }
        let unsent = &self.unsent;
        let changed: Vec<u32> = match prev {
            Some(p) => (0..cols * rows)
                .filter(|&i| {
                    let r = image.tile_rect(i);
                    unsent.get(i as usize).is_some_and(|u| *u)
                        || damaged.is_none_or(|d| d.iter().any(|d| d.overlaps(&r))) && !same(p, image, r)
                })
                .collect(),
            None => (0..cols * rows).collect(),
        };
        let mut offsets: Vec<(i64, i64)> = Vec::new();
        if let Some(p) = prev {
            let found = motion::vertical_offsets(p, image, &changed).into_iter().map(|dy| (0, dy));
            for d in found.chain(motion::moved_offsets(p, image, &changed)) {
                if !offsets.contains(&d) {
                    offsets.push(d);
                }
            }
        }
        // What the tiles so far compress to is measured: whenever the
        // payload could have passed the budget (from a quarter of it on),
        // and at each doubling after, compress what there is. The next tile
        // is unknown: it is guessed at its raw size compressed as well as
        // the worse of recent updates and this one, so that one tile of
        // noise (16 KiB) does not ride along with a key's echo (which XORs
        // to almost nothing) on a path that carries 4 KiB a round trip.
        let history = self.ratio.unwrap_or(1.0);
        let mut ratio = history;
        let mut check = (budget / 4).max(1024);
        let mut sent = Vec::with_capacity(changed.len());
        let mut left = Vec::new();
        for (n, &index) in changed.iter().enumerate() {
            if budget != usize::MAX && self.payload.len() >= check {
                ratio = self.zstd.compress(&self.payload).len() as f64 / self.payload.len() as f64;
                check = check.saturating_mul(2);
            }
            let r = image.tile_rect(index);
            let next = f64::from(r.w * r.h * 4) * ratio.max(history);
            let guess = ops.len() * 8 + (self.payload.len() as f64 * ratio + next) as usize;
            if !ops.is_empty() && guess > budget {
                left.extend_from_slice(&changed[n..]);
                break;
            }
            sent.push(index);
            if let Some(u) = self.unsent.get_mut(index as usize) {
                *u = false;
            }
            if let Some(p) = prev {
                self.background.detach(p, [index]);
            }
            let op = match prev {
                Some(p) => self.choose(p, image, index, &offsets),
                None => uniform(image, r).map_or(Op::Raw, Op::Fill),
            };
            match op {
                Op::Raw => {
                    stats.raw += 1;
                    for dy in 0..r.h {
                        self.payload.extend_from_slice(image.row(r, dy));
                    }
                }
                Op::Xor => {
                    stats.xor += 1;
                    let p = prev.expect("XOR is chosen only with a previous frame");
                    for dy in 0..r.h {
                        self.payload.extend(image.row(r, dy).iter().zip(p.row(r, dy)).map(|(a, b)| a ^ b));
                    }
                }
                Op::Fill(_) => stats.fill += 1,
                Op::Copy(..) => stats.copy += 1,
                Op::Back => stats.back += 1,
                // Its mask and residual were appended by `choose`.
                Op::Mix(..) => stats.mix += 1,
            }
            ops.push((index, op));
        }
        if ops.is_empty() {
            // No update: the decoder ages nothing either.
            return (None, sent, left);
        }
        self.background.settle(image, sent.iter().copied());
        let current = image;
        let mut out = Vec::with_capacity(self.payload.len() / 4 + 64);
        out.push(VERSION);
        out.push(if prev.is_none() { FLAG_FRESH } else { 0 });
        put_varint(&mut out, current.width.into());
        put_varint(&mut out, current.height.into());
        put_varint(&mut out, ops.len() as u64);
        let mut next = 0u32;
        for (index, op) in &ops {
            put_varint(&mut out, u64::from(index - next));
            next = index + 1;
            match op {
                Op::Raw => out.push(0),
                Op::Xor => out.push(1),
                Op::Fill(c) => {
                    out.push(2);
                    out.extend_from_slice(c);
                }
                Op::Copy(dx, dy) => {
                    out.push(3);
                    put_zigzag(&mut out, *dx);
                    put_zigzag(&mut out, *dy);
                }
                Op::Back => out.push(4),
                Op::Mix(dx, dy) => {
                    out.push(5);
                    put_zigzag(&mut out, *dx);
                    put_zigzag(&mut out, *dy);
                }
            }
        }
        if self.payload.is_empty() {
            put_varint(&mut out, 0);
        } else {
            let compressed = self.zstd.compress(&self.payload);
            let now = compressed.len() as f64 / self.payload.len() as f64;
            self.ratio = Some(self.ratio.map_or(now, |r| r * 0.75 + now * 0.25));
            put_varint(&mut out, compressed.len() as u64);
            out.extend_from_slice(&compressed);
        }
        (Some((out, stats)), sent, left)
    }

    /// The operation for changed tile `index`; a mixed tile's payload is
    /// appended here, where its mask was worked out.
    fn choose(&mut self, prev: &Image, image: &Image, index: u32, offsets: &[(i64, i64)]) -> Op {
        let r = image.tile_rect(index);
        if let Some(c) = uniform(image, r) {
            return Op::Fill(c);
        }
        let back = self.background.tile(index, image);
        if back.is_some_and(|b| same(b, image, r)) {
            return Op::Back;
        }
        if let Some(&(dx, dy)) = offsets.iter().find(|&&d| motion::copies(prev, image, r, d)) {
            return Op::Copy(dx, dy);
        }
        // Part moved, part uncovered: the offset that predicts most pixels.
        let mut best = (0, (0, 0));
        let inside = offsets.iter().filter(|&&d| motion::shifted(prev, r, d).is_some());
        for &d in std::iter::once(&(0, 0)).chain(inside) {
            let sources = mix::Sources { prev, moved: Some(d), back };
            let gain = mix::sampled_gain(image, r, &sources);
            if gain > best.0 {
                best = (gain, d);
            }
        }
        if best.0 > 0 {
            let sources = mix::Sources { prev, moved: Some(best.1), back };
            if mix::encode(image, r, &sources, &mut self.payload) {
                return Op::Mix(best.1 .0, best.1 .1);
            }
        }
        // Measured on this kind of machine: XOR wins on most content (typing, video), raw where
        // new content replaced unrelated old content (the new lines of a
        // scroll); judged by where the data stops repeating.
        let (raw, xor) = breaks(prev, image, r);
        if raw * 5 < xor * 4 {
            Op::Raw
        } else {
            Op::Xor
        }
    }
}

/// Places where tile `r` of `cur`, raw and XOR `prev`, stops repeating its
/// previous pixel: a cheap stand-in for what each costs after zstd.
fn breaks(prev: &Image, cur: &Image, r: Rect) -> (usize, usize) {
    let (mut raw, mut xor) = (0, 0);
    for dy in 0..r.h {
        let (c, p) = (cur.row(r, dy), prev.row(r, dy));
        let (mut last_c, mut last_x) = (0u32, 0u32);
        for (cp, pp) in c.chunks_exact(4).zip(p.chunks_exact(4)) {
            let cv = u32::from_le_bytes(cp.try_into().expect("four bytes"));
            let xv = cv ^ u32::from_le_bytes(pp.try_into().expect("four bytes"));
            raw += usize::from(cv != last_c);
            xor += usize::from(xv != last_x);
            (last_c, last_x) = (cv, xv);
        }
    }
    (raw, xor)
}

/// What [`Encoder::encode_against`] made: the update, the tiles it
/// carries, the changed tiles it left.
type Encoded = (Option<(Vec<u8>, EncoderStats)>, Vec<u32>, Vec<u32>);

fn copy_tiles(to: &mut Image, from: &Image, tiles: &[u32]) {
    for &index in tiles {
        let r = from.tile_rect(index);
        for dy in 0..r.h {
            to.row_mut(r, dy).copy_from_slice(from.row(r, dy));
        }
    }
}

fn same(a: &Image, b: &Image, r: Rect) -> bool {
    (0..r.h).all(|dy| a.row(r, dy) == b.row(r, dy))
}

fn uniform(image: &Image, r: Rect) -> Option<[u8; 4]> {
    let first: [u8; 4] = image.row(r, 0)[..4].try_into().expect("a tile has at least one pixel");
    (0..r.h).all(|dy| image.row(r, dy).chunks_exact(4).all(|p| p == first)).then_some(first)
}
