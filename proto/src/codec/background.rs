//! The background: content both sides have seen, kept so that what a
//! moved window uncovers can be referred to instead of sent again.
//!
//! A tile that stayed the same for [`SETTLE`] updates is copied into the
//! background at its own position; it stays there until the same tile
//! settles again with other content. Position-keyed on purpose: a desktop's
//! wallpaper and still windows do not move, and uncovered wallpaper arrives
//! in strips narrower than a tile, so a content-hash cache of whole tiles
//! finds almost nothing (measured on this kind of machine) while a per-pixel reference to the
//! settled tile finds the strip. Both sides run the same rule on the same
//! sequence of updates, so they hold the same background without sending
//! it; its size is one frame.
//!
//! A tile that settles is not copied then: until an update touches it,
//! the frame itself holds its settled pixels. Only when an update is about
//! to change it is the old content copied over ([`Background::detach`]).
//! So the cost follows what changes: a whole screen settling at once
//! (after the first frame) would otherwise copy a whole frame inside one
//! update, several milliseconds on both sides in the middle of typing.

use super::image::{Image, Rect};

/// Updates a tile must stay unchanged before it becomes background.
pub(super) const SETTLE: u8 = 5;

/// The settled content of each tile position of one frame size.
#[derive(Clone, Debug, Default)]
pub(super) struct Background {
    image: Option<Image>,
    /// Per tile: updates since it last changed (saturating).
    ages: Vec<u8>,
    /// Per tile: whether the tile has settled content.
    valid: Vec<bool>,
    /// Per tile: its settled content is still the frame's own (not yet
    /// copied into `image`).
    live: Vec<bool>,
}

impl Background {
    /// Forgets everything (first frame, new size, or a reset).
    pub(super) fn reset(&mut self) {
        *self = Background::default();
    }

    /// The settled pixels of tile `index`, if any, for a frame the size of
    /// `like`. For a tile an update touches, only after [`Background::detach`].
    pub(super) fn tile(&self, index: u32, like: &Image) -> Option<&Image> {
        let image = self.image.as_ref()?;
        let valid = self.has(index, like);
        debug_assert!(!valid || !self.live[index as usize], "tile {index} read before it was detached");
        valid.then_some(image)
    }

    /// Whether tile `index` has settled content, for a frame the size of `like`.
    pub(super) fn has(&self, index: u32, like: &Image) -> bool {
        self.image.as_ref().is_some_and(|i| (i.width, i.height) == (like.width, like.height))
            && self.valid[index as usize]
    }

    /// Before an update changes the tiles `touched` of `frame` (the frame
    /// as it is before the update): keeps the settled content of those
    /// still held by the frame.
    pub(super) fn detach(&mut self, frame: &Image, touched: impl IntoIterator<Item = u32>) {
        let Some(image) = self.image.as_mut().filter(|i| i.width == frame.width && i.height == frame.height)
        else {
            return;
        };
        for index in touched {
            if std::mem::take(&mut self.live[index as usize]) {
                let r: Rect = frame.tile_rect(index);
                for dy in 0..r.h {
                    image.row_mut(r, dy).copy_from_slice(frame.row(r, dy));
                }
            }
        }
    }

    /// After an update that changed the tiles `touched` (ascending) of
    /// `frame`: ages every other tile; the ones that settle are held by
    /// the frame until [`Background::detach`].
    pub(super) fn settle(&mut self, frame: &Image, touched: impl IntoIterator<Item = u32>) {
        let (cols, rows) = frame.tiles();
        let tiles = (cols * rows) as usize;
        let fits = self.image.as_ref().is_some_and(|i| i.width == frame.width && i.height == frame.height);
        if !fits {
            // Allocated once per frame size; the first SETTLE updates fill nothing.
            self.image = Some(Image::new(frame.width, frame.height));
            self.ages = vec![0; tiles];
            self.valid = vec![false; tiles];
            self.live = vec![false; tiles];
        }
        let mut touched = touched.into_iter().peekable();
        for index in 0..tiles as u32 {
            let age = &mut self.ages[index as usize];
            if touched.next_if_eq(&index).is_some() {
                *age = 0;
                continue;
            }
            *age = age.saturating_add(1);
            if *age == SETTLE {
                self.valid[index as usize] = true;
                self.live[index as usize] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(img: &mut Image, index: u32, v: u8) {
        let r = img.tile_rect(index);
        for dy in 0..r.h {
            img.row_mut(r, dy).fill(v);
        }
    }

    fn tile_of(img: &Image, index: u32) -> Vec<u8> {
        let r = img.tile_rect(index);
        (0..r.h).flat_map(|dy| img.row(r, dy).to_vec()).collect()
    }

    #[test]
    fn a_settled_tile_keeps_what_it_showed_when_it_settled_until_it_settles_again() {
        let mut frame = Image::new(128, 64);
        paint(&mut frame, 0, 7);
        let mut back = Background::default();
        // Tile 1 changes in every update; tile 0 stays and settles.
        for _ in 0..SETTLE {
            back.settle(&frame, [1]);
        }
        assert!(back.has(0, &frame) && !back.has(1, &frame));
        // An update changes tile 0: what settled is kept, not the new pixels.
        back.detach(&frame, [0, 1]);
        paint(&mut frame, 0, 9);
        back.settle(&frame, [0, 1]);
        assert_eq!(tile_of(back.tile(0, &frame).unwrap(), 0), vec![7; 64 * 64 * 4]);
        // Later updates that leave it alone change nothing, until it settles with 9.
        for _ in 0..SETTLE - 1 {
            back.settle(&frame, [1]);
            assert_eq!(tile_of(back.tile(0, &frame).unwrap(), 0), vec![7; 64 * 64 * 4]);
        }
        back.settle(&frame, [1]);
        back.detach(&frame, [0]);
        assert_eq!(tile_of(back.tile(0, &frame).unwrap(), 0), vec![9; 64 * 64 * 4]);
    }
}
