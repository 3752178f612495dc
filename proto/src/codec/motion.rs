//! Finding scrolled content: vertical offsets at which rows of the changed
//! tiles appeared in the previous frame.
//!
//! Each tile column's rows are hashed in both frames (one hash per 64-pixel
//! row segment); rows of changed tiles vote for every offset at which their
//! hash occurs in the previous frame's same column. The offsets with the
//! most votes are tried as exact copies. Uniform rows (blank lines) match
//! everywhere and do not vote. Cost: one hash per row segment of the
//! columns that changed, plus a memcmp per tried copy.

use std::collections::HashMap;

use super::image::{Image, Rect};
use super::TILE;

/// Offsets tried per update.
pub(super) const CANDIDATES: usize = 3;
/// Votes an offset needs before it is tried.
const MIN_VOTES: u32 = 8;
/// A row hash occurring more often than this in a column says little.
const MAX_OCCURRENCES: usize = 8;

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a over 8-byte words: fast, and collisions only cost a failed memcmp.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3);
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
    for &col in &columns {
        let mut where_prev: HashMap<u64, Vec<u32>> = HashMap::new();
        for y in 0..prev.height {
            let row = column(prev, col, y);
            if !uniform(row) {
                let places = where_prev.entry(hash(row)).or_default();
                if places.len() <= MAX_OCCURRENCES {
                    places.push(y);
                }
            }
        }
        for &index in changed.iter().filter(|&&i| i % cols == col) {
            let r = cur.tile_rect(index);
            for y in r.y..r.y + r.h {
                let row = column(cur, col, y);
                if uniform(row) {
                    continue;
                }
                if let Some(places) = where_prev.get(&hash(row)).filter(|p| p.len() <= MAX_OCCURRENCES) {
                    for &py in places {
                        if py != y {
                            *votes.entry(i64::from(py) - i64::from(y)).or_default() += 1;
                        }
                    }
                }
            }
        }
    }
    let mut ranked: Vec<(i64, u32)> = votes.into_iter().filter(|&(_, v)| v >= MIN_VOTES).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(CANDIDATES).map(|(dy, _)| dy).collect()
}

/// Whether tile `r` of `cur` equals the previous frame's pixels shifted by `dy`.
pub(super) fn copies(prev: &Image, cur: &Image, r: Rect, dy: i64) -> bool {
    let sy = i64::from(r.y) + dy;
    if sy < 0 || sy + i64::from(r.h) > i64::from(prev.height) {
        return false;
    }
    let src = Rect { y: sy as u32, ..r };
    (0..r.h).all(|row| cur.row(r, row) == prev.row(src, row))
}
