//! The encoder: finds the changed tiles and picks an operation for each.

use super::image::{Image, Rect};
use super::motion;
use super::wire::{put_varint, put_zigzag};
use super::VERSION;

/// zstd level for the tile payload: level 1 is ~470 MB/s here and within a
/// few percent of level 3 on screen content (FINDINGS.md).
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
}

/// Encodes frames as updates against the previous one.
#[derive(Debug, Default)]
pub struct Encoder {
    prev: Option<Image>,
    payload: Vec<u8>,
}

enum Op {
    Raw,
    Xor,
    Fill([u8; 4]),
    Copy(i64, i64),
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
    }

    /// Encodes `image` against the previous frame. `None` if nothing changed.
    pub fn encode(&mut self, image: Image) -> Option<(Vec<u8>, EncoderStats)> {
        let prev = self.prev.take().filter(|p| p.width == image.width && p.height == image.height);
        let (cols, rows) = image.tiles();
        let mut stats = EncoderStats { tiles: cols * rows, ..Default::default() };
        let mut ops = Vec::new();
        self.payload.clear();
        let changed: Vec<u32> = match &prev {
            Some(p) => (0..cols * rows).filter(|&i| !same(p, &image, image.tile_rect(i))).collect(),
            None => (0..cols * rows).collect(),
        };
        let offsets = match &prev {
            Some(p) => motion::vertical_offsets(p, &image, &changed),
            None => Vec::new(),
        };
        for index in changed {
            let r = image.tile_rect(index);
            let op = match &prev {
                Some(p) => choose(p, &image, r, &offsets),
                None => uniform(&image, r).map_or(Op::Raw, Op::Fill),
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
                    let p = prev.as_ref().expect("XOR is chosen only with a previous frame");
                    for dy in 0..r.h {
                        self.payload.extend(image.row(r, dy).iter().zip(p.row(r, dy)).map(|(a, b)| a ^ b));
                    }
                }
                Op::Fill(_) => stats.fill += 1,
                Op::Copy(..) => stats.copy += 1,
            }
            ops.push((index, op));
        }
        self.prev = Some(image);
        if ops.is_empty() {
            return None;
        }
        let current = self.prev.as_ref().expect("just stored");
        let mut out = Vec::with_capacity(self.payload.len() / 4 + 64);
        out.push(VERSION);
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
            }
        }
        if self.payload.is_empty() {
            put_varint(&mut out, 0);
        } else {
            let compressed =
                zstd::bulk::compress(&self.payload, LEVEL).expect("compressing to memory cannot fail");
            put_varint(&mut out, compressed.len() as u64);
            out.extend_from_slice(&compressed);
        }
        Some((out, stats))
    }
}

fn same(a: &Image, b: &Image, r: Rect) -> bool {
    (0..r.h).all(|dy| a.row(r, dy) == b.row(r, dy))
}

fn uniform(image: &Image, r: Rect) -> Option<[u8; 4]> {
    let first: [u8; 4] = image.row(r, 0)[..4].try_into().expect("a tile has at least one pixel");
    (0..r.h).all(|dy| image.row(r, dy).chunks_exact(4).all(|p| p == first)).then_some(first)
}

fn choose(prev: &Image, image: &Image, r: Rect, offsets: &[i64]) -> Op {
    if let Some(c) = uniform(image, r) {
        return Op::Fill(c);
    }
    if let Some(&dy) = offsets.iter().find(|&&dy| motion::copies(prev, image, r, dy)) {
        return Op::Copy(0, dy);
    }
    // FINDINGS.md: always-XOR beat choosing raw or XOR by an estimate.
    Op::Xor
}
