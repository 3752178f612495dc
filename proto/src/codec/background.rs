//! The background: content both sides have seen, kept so that what a
//! moved window uncovers can be referred to instead of sent again.
//!
//! A tile that stayed the same for [`SETTLE`] updates is copied into the
//! background at its own position; it stays there until the same tile
//! settles again with other content. Position-keyed on purpose: a desktop's
//! wallpaper and still windows do not move, and uncovered wallpaper arrives
//! in strips narrower than a tile, so a content-hash cache of whole tiles
//! finds almost nothing (FINDINGS.md) while a per-pixel reference to the
//! settled tile finds the strip. Both sides run the same rule on the same
//! sequence of updates, so they hold the same background without sending
//! it; its size is one frame.

use super::image::{Image, Rect};

/// Updates a tile must stay unchanged before it becomes background.
pub(super) const SETTLE: u8 = 5;

/// The settled content of each tile position of one frame size.
#[derive(Clone, Debug, Default)]
pub(super) struct Background {
    image: Option<Image>,
    /// Per tile: updates since it last changed (saturating).
    ages: Vec<u8>,
    /// Per tile: whether `image` holds settled content there.
    valid: Vec<bool>,
}

impl Background {
    /// Forgets everything (first frame, new size, or a reset).
    pub(super) fn reset(&mut self) {
        *self = Background::default();
    }

    /// The settled pixels of tile `index`, if any, for a frame the size of `like`.
    pub(super) fn tile(&self, index: u32, like: &Image) -> Option<&Image> {
        let image = self.image.as_ref()?;
        (image.width == like.width && image.height == like.height && self.valid[index as usize])
            .then_some(image)
    }

    /// After an update that changed the tiles `touched` (ascending) of
    /// `frame`: ages every other tile and stores the ones that settled.
    pub(super) fn settle(&mut self, frame: &Image, touched: impl IntoIterator<Item = u32>) {
        let (cols, rows) = frame.tiles();
        let tiles = (cols * rows) as usize;
        let fits = self.image.as_ref().is_some_and(|i| i.width == frame.width && i.height == frame.height);
        if !fits {
            // Allocated once per frame size; the first SETTLE updates fill nothing.
            self.image = Some(Image::new(frame.width, frame.height));
            self.ages = vec![0; tiles];
            self.valid = vec![false; tiles];
        }
        let image = self.image.as_mut().expect("allocated above");
        let mut touched = touched.into_iter().peekable();
        for index in 0..tiles as u32 {
            let age = &mut self.ages[index as usize];
            if touched.next_if_eq(&index).is_some() {
                *age = 0;
                continue;
            }
            *age = age.saturating_add(1);
            if *age == SETTLE {
                let r: Rect = frame.tile_rect(index);
                for dy in 0..r.h {
                    image.row_mut(r, dy).copy_from_slice(frame.row(r, dy));
                }
                self.valid[index as usize] = true;
            }
        }
    }
}
