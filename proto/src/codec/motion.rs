//! Finding scrolled and moved content: offsets at which rows of the
//! changed tiles appeared in the previous frame.
//!
//! Scrolls: each tile column's rows are hashed in both frames (one hash per 64-pixel
//! row segment); rows of changed tiles vote for every offset at which their
//! hash occurs in the previous frame's same column. The offsets with the
//! most votes are tried as exact copies. Uniform rows (blank lines) match
//! everywhere and do not vote. Cost: one hash per row segment of the
//! columns that changed, plus a memcmp per tried copy.
//!
//! Moves (a dragged window): 16-pixel row segments of the changed tiles
//! are indexed at aligned places; the previous frame is scanned around
//! them at every x with a rolling hash, on every fourth row, and each hit
//! votes for its 2-D offset. Bounded by a radius around the changed tiles
//! and a cap on indexed segments, so a full-screen video costs little.

use std::collections::HashMap;

use super::image::{Image, Rect};
use super::TILE;

/// Offsets tried per update.
pub(super) const CANDIDATES: usize = 3;
/// Votes an offset needs before it is tried (at a ROW_STEP of 1).
const MIN_VOTES: u32 = 8;
/// A row hash occurring more often than this in a column says little.
const MAX_OCCURRENCES: usize = 8;
/// The previous frame is hashed on every ROW_STEP-th row only: the changed
/// tiles are hashed on every row, so some of their rows still line up with
/// a hashed one, whatever the offset.
const ROW_STEP: u32 = 4;

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a over 8-byte words: fast, and collisions only cost a failed memcmp.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for word in words {
        h = (h ^ u64::from_le_bytes(word.try_into().expect("eight bytes")))
            .wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in tail {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn uniform(row: &[u8]) -> bool {
    row.len() <= 4 || row[4..] == row[..row.len() - 4]
}

fn column(img: &Image, col: u32, y: u32) -> &[u8] {
    let x = col * TILE;
    img.row(Rect { x, y: 0, w: TILE.min(img.width - x), h: img.height }, y)
}

/// The vertical offsets (source row minus destination row) worth trying
/// for `changed` tiles, best first.
pub(super) fn vertical_offsets(prev: &Image, cur: &Image, changed: &[u32]) -> Vec<i64> {
    let (cols, _) = cur.tiles();
    let mut columns: Vec<u32> = changed.iter().map(|i| i % cols).collect();
    columns.sort_unstable();
    columns.dedup();
    let mut votes: HashMap<i64, u32> = HashMap::new();
    let mut prev_rows: Vec<(u64, u32)> = Vec::new();
    for &col in &columns {
        // The previous frame on every ROW_STEP-th row: the changed tiles are
        // hashed on every row, so each offset still finds rows that line up.
        prev_rows.clear();
        for y in (0..prev.height).step_by(ROW_STEP as usize) {
            let row = column(prev, col, y);
            if !uniform(row) {
                prev_rows.push((hash(row), y));
            }
        }
        prev_rows.sort_unstable();
        for &index in changed.iter().filter(|&&i| i % cols == col) {
            let r = cur.tile_rect(index);
            for y in r.y..r.y + r.h {
                let row = column(cur, col, y);
                if uniform(row) {
                    continue;
                }
                let h = hash(row);
                let from = prev_rows.partition_point(|&(ph, _)| ph < h);
                let places = prev_rows[from..].iter().take_while(|&&(ph, _)| ph == h);
                if places.clone().count() > MAX_OCCURRENCES {
                    continue;
                }
                for &(_, py) in places {
                    if py != y {
                        *votes.entry(i64::from(py) - i64::from(y)).or_default() += 1;
                    }
                }
            }
        }
    }
    let min_votes = (MIN_VOTES / ROW_STEP).max(2);
    let mut ranked: Vec<(i64, u32)> = votes.into_iter().filter(|&(_, v)| v >= min_votes).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(CANDIDATES).map(|(dy, _)| dy).collect()
}

/// Pixels in a segment of the 2-D search.
const SEG: u32 = 16;
/// How far from the changed tiles a moved window's old place is looked for.
const RADIUS: u32 = 96;
/// Segments of the changed tiles indexed at most (video would index all).
const MAX_INDEXED: usize = 16_384;
const BASE: u64 = 0x9e37_79b9_7f4a_7c15 | 1;

fn pixel_word(row: &[u8], x: usize) -> u64 {
    u64::from(u32::from_le_bytes(row[x * 4..x * 4 + 4].try_into().expect("four bytes")))
}

/// Polynomial hash of SEG pixels; rolled one pixel at a time while scanning.
fn seg_hash(row: &[u8], x: usize) -> u64 {
    (0..SEG as usize).fold(0u64, |h, i| h.wrapping_mul(BASE).wrapping_add(pixel_word(row, x + i)))
}

/// The 2-D offsets (source minus destination) at which 16-pixel row
/// segments of the changed tiles appear in the previous frame near them,
/// best first: what a dragged window's tiles can be copied from.
pub(super) fn moved_offsets(prev: &Image, cur: &Image, changed: &[u32]) -> Vec<(i64, i64)> {
    if changed.is_empty() || cur.width < SEG {
        return Vec::new();
    }
    // Index the changed tiles' non-uniform segments at aligned places.
    let rows_total: u64 = changed.iter().map(|&i| u64::from(cur.tile_rect(i).h)).sum();
    let per_row = u64::from(TILE / SEG);
    let step = (rows_total * per_row).div_ceil(MAX_INDEXED as u64).max(1) as u32;
    let mut index: HashMap<u64, (u32, u32)> = HashMap::new();
    let mut filter = vec![0u64; 1024];
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for &i in changed {
        let r = cur.tile_rect(i);
        (x0, y0, x1, y1) = (x0.min(r.x), y0.min(r.y), x1.max(r.x + r.w), y1.max(r.y + r.h));
        for dy in (0..r.h).step_by(step as usize) {
            let full = Rect { x: 0, y: r.y + dy, w: cur.width, h: 1 };
            let row = cur.row(full, 0);
            let mut x = r.x;
            while x + SEG <= (r.x + r.w).min(cur.width) {
                let seg = &row[x as usize * 4..(x + SEG) as usize * 4];
                if !uniform(seg) {
                    let h = seg_hash(row, x as usize);
                    // A segment seen twice says nothing about where it came from.
                    index.entry(h).and_modify(|v| v.0 = u32::MAX).or_insert((x, r.y + dy));
                    filter[(h >> 54) as usize] |= 1 << ((h >> 48) & 63);
                }
                x += SEG;
            }
        }
    }
    // Scan the previous frame around them at every x, rolling the hash.
    let sx0 = x0.saturating_sub(RADIUS);
    let sx1 = (x1 + RADIUS).min(prev.width);
    let sy0 = y0.saturating_sub(RADIUS);
    let sy1 = (y1 + RADIUS).min(prev.height);
    if sx1 < sx0 + SEG {
        return Vec::new();
    }
    let top = BASE.wrapping_pow(SEG - 1);
    let mut votes: HashMap<(i64, i64), u32> = HashMap::new();
    for y in (sy0..sy1).step_by(ROW_STEP as usize) {
        let row = prev.row(Rect { x: 0, y, w: prev.width, h: 1 }, 0);
        let mut h = seg_hash(row, sx0 as usize);
        let mut x = sx0;
        loop {
            if filter[(h >> 54) as usize] & (1 << ((h >> 48) & 63)) != 0 {
                if let Some(&(cx, cy)) = index.get(&h) {
                    if cx != u32::MAX && (cx, cy) != (x, y) {
                        *votes
                            .entry((i64::from(x) - i64::from(cx), i64::from(y) - i64::from(cy)))
                            .or_default() += 1;
                    }
                }
            }
            if x + SEG >= sx1 {
                break;
            }
            let out = pixel_word(row, x as usize);
            let next = pixel_word(row, (x + SEG) as usize);
            h = h.wrapping_sub(out.wrapping_mul(top)).wrapping_mul(BASE).wrapping_add(next);
            x += 1;
        }
    }
    let min_votes = (MIN_VOTES / ROW_STEP).max(2);
    let mut ranked: Vec<((i64, i64), u32)> = votes.into_iter().filter(|&(_, v)| v >= min_votes).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(CANDIDATES).map(|(d, _)| d).collect()
}

/// Whether tile `r` of `cur` equals the previous frame's pixels shifted by (`dx`, `dy`).
pub(super) fn copies(prev: &Image, cur: &Image, r: Rect, (dx, dy): (i64, i64)) -> bool {
    match shifted(prev, r, (dx, dy)) {
        Some(src) => (0..r.h).all(|row| cur.row(r, row) == prev.row(src, row)),
        None => false,
    }
}

/// Tile `r` moved by (`dx`, `dy`), if wholly inside `img`.
pub(super) fn shifted(img: &Image, r: Rect, (dx, dy): (i64, i64)) -> Option<Rect> {
    let (sx, sy) = (i64::from(r.x) + dx, i64::from(r.y) + dy);
    (sx >= 0
        && sy >= 0
        && sx + i64::from(r.w) <= i64::from(img.width)
        && sy + i64::from(r.h) <= i64::from(img.height))
    .then_some(Rect { x: sx as u32, y: sy as u32, ..r })
}
