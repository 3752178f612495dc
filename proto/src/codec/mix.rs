//! Mixed tiles: each pixel predicted from the source that already holds it.
//!
//! A tile on the edge of a moved window is part window (found in the
//! previous frame at the move's offset), part what was there before (the
//! same place in the previous frame) and part uncovered background; no
//! single COPY or XOR describes it. A mixed tile sends one mask byte per
//! pixel naming the prediction and the XOR of the pixel with it, which is
//! zero wherever the prediction was right: the masks are long runs and the
//! residual mostly zeros, both cheap for zstd.

use super::image::{Image, Rect};

/// The previous frame's pixel at the same place.
pub(super) const SAME: u8 = 0;
/// The previous frame's pixel at the op's offset.
pub(super) const MOVED: u8 = 1;
/// The background's pixel at the same place.
pub(super) const BACKGROUND: u8 = 2;
/// No prediction: the residual is the pixel.
pub(super) const ZERO: u8 = 3;

/// Breaks (see `encode`) a mixed tile must save over plain XOR before it
/// is used: the mask has a fixed cost too.
const MIN_GAIN: usize = 16;

/// The sources a tile can be predicted from.
pub(super) struct Sources<'a> {
    /// The previous frame.
    pub prev: &'a Image,
    /// Offset of the moved content, with its source rectangle inside the frame.
    pub moved: Option<(i64, i64)>,
    /// The background, where this tile has settled content.
    pub back: Option<&'a Image>,
}

impl Sources<'_> {
    /// The rows of each source for row `dy` of tile `r`, in mode order.
    fn rows(&self, r: Rect, dy: u32) -> [Option<&[u8]>; 3] {
        let moved = self.moved.map(|(mx, my)| {
            let src = Rect { x: (i64::from(r.x) + mx) as u32, y: (i64::from(r.y) + my) as u32, ..r };
            self.prev.row(src, dy)
        });
        [Some(self.prev.row(r, dy)), moved, self.back.map(|b| b.row(r, dy))]
    }
}

fn pixel(row: Option<&[u8]>, x: usize) -> Option<&[u8]> {
    row.map(|row| &row[x * 4..x * 4 + 4])
}

/// How many pixels of `r` the moved content or the background would
/// predict where the previous frame's same pixel does not, on a sample of
/// one pixel in 16: a cheap ranking of candidate offsets.
pub(super) fn sampled_gain(cur: &Image, r: Rect, sources: &Sources) -> usize {
    let mut gain = 0;
    for dy in (0..r.h).step_by(4) {
        let [same, moved, back] = sources.rows(r, dy);
        let row = cur.row(r, dy);
        for x in (0..r.w as usize).step_by(4) {
            let p = Some(&row[x * 4..x * 4 + 4]);
            if pixel(same, x) != p && (pixel(moved, x) == p || pixel(back, x) == p) {
                gain += 1;
            }
        }
    }
    gain * 16
}

/// Appends the mask and residual of tile `r` to `out` if mixing pays;
/// `false` (and nothing appended) if plain XOR would do as well.
pub(super) fn encode(cur: &Image, r: Rect, sources: &Sources, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let pixels = r.w as usize * r.h as usize;
    out.resize(start + pixels * 5, 0);
    let (mask, residual) = out[start..].split_at_mut(pixels);
    // What zstd pays for is roughly the number of places where the data
    // stops repeating: count them for plain XOR and for the mix (its
    // residual and its mask) and keep the cheaper.
    let (mut xor_breaks, mut mix_breaks) = (0usize, 0usize);
    for dy in 0..r.h {
        let rows = sources.rows(r, dy);
        let row = cur.row(r, dy);
        if rows[0] == Some(row) {
            // Unchanged row: SAME everywhere, residual zero (already so).
            continue;
        }
        let same = rows[0].expect("the previous frame is always a source");
        let (mut last, mut last_xor, mut last_residual) = (SAME, [0u8; 4], [0u8; 4]);
        for x in 0..r.w as usize {
            let p = &row[x * 4..x * 4 + 4];
            // The last pixel's source first: longer runs in the mask.
            let mode = [last, SAME, MOVED, BACKGROUND]
                .into_iter()
                .find(|&m| pixel(rows[m as usize], x) == Some(p))
                .unwrap_or(SAME);
            let i = dy as usize * r.w as usize + x;
            mask[i] = mode;
            let pred = pixel(rows[mode as usize], x).expect("only available sources are chosen");
            let mut xor = [0u8; 4];
            let mut res = [0u8; 4];
            for k in 0..4 {
                xor[k] = p[k] ^ same[x * 4 + k];
                res[k] = p[k] ^ pred[k];
                residual[i * 4 + k] = res[k];
            }
            xor_breaks += usize::from(xor != last_xor);
            mix_breaks += usize::from(res != last_residual) + usize::from(mode != last);
            (last, last_xor, last_residual) = (mode, xor, res);
        }
    }
    if mix_breaks + MIN_GAIN > xor_breaks {
        out.truncate(start);
        return false;
    }
    true
}

/// Whether a decoded mask names only sources that exist.
pub(super) fn mask_ok(mask: &[u8], has_back: bool) -> bool {
    mask.iter().all(|&m| m == SAME || m == MOVED || m == ZERO || (m == BACKGROUND && has_back))
}

/// Applies a checked mask and residual to tile `r` of `image`, in place:
/// `moved` holds the moved source's pixels (taken before the update
/// began), `back` the background.
pub(super) fn apply(
    image: &mut Image,
    r: Rect,
    mask: &[u8],
    residual: &[u8],
    moved: &[u8],
    back: Option<&Image>,
) {
    for dy in 0..r.h {
        let row_start = (dy * r.w) as usize;
        let back_row = back.map(|b| b.row(r, dy));
        let dst = image.row_mut(r, dy);
        for x in 0..r.w as usize {
            let i = row_start + x;
            let pred: [u8; 4] = match mask[i] {
                // The old pixel is still in place: each tile appears once.
                SAME => dst[x * 4..x * 4 + 4].try_into().expect("four bytes"),
                MOVED => moved[i * 4..i * 4 + 4].try_into().expect("four bytes"),
                BACKGROUND => {
                    back_row.expect("checked by mask_ok")[x * 4..x * 4 + 4].try_into().expect("four bytes")
                }
                _ => [0; 4],
            };
            for k in 0..4 {
                dst[x * 4 + k] = pred[k] ^ residual[i * 4 + k];
            }
        }
    }
}
