//! Which tiles changed between two published frames on the viewer, so the
//! window uploads only those to its texture. A key's echo is a tile or two;
//! uploading the whole screen for it (8 MB at 1920x1080, converted and sent
//! to the GPU, or to a software renderer) would cost the technician more
//! time than the whole trip from the customer's machine.
//!
//! The decode thread records each frame's tiles before it publishes the
//! frame; the window, which may skip frames, asks for the union since the
//! frame its texture shows. Where the log does not reach back that far, or
//! a whole frame came in between, the answer is "everything".

use std::collections::VecDeque;

/// Frames remembered. A window that falls further behind than this
/// uploads the whole image, which it then needs anyway.
pub const KEPT: usize = 32;

/// What one published frame changed.
#[derive(Clone, Debug)]
struct Entry {
    seq: u64,
    /// `None`: the whole frame (a fresh frame, another shape or monitor).
    tiles: Option<Vec<u32>>,
}

/// The changed tiles of the last [`KEPT`] published frames.
#[derive(Debug, Default)]
pub struct ChangeLog {
    entries: VecDeque<Entry>,
}

impl ChangeLog {
    /// Records frame `seq`: the tiles it changed, or the whole frame.
    /// Frames are recorded in order, one sequence number after another.
    pub fn record(&mut self, seq: u64, whole: bool, tiles: &[u32]) {
        if self.entries.back().is_some_and(|e| e.seq + 1 != seq) {
            // A gap would let `since` miss a frame's tiles.
            self.entries.clear();
        }
        if self.entries.len() == KEPT {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry { seq, tiles: (!whole).then(|| tiles.to_vec()) });
    }

    /// The tiles changed after frame `from` up to frame `to`, sorted and
    /// each once; `None` when the whole frame may have changed.
    pub fn since(&self, from: u64, to: u64) -> Option<Vec<u32>> {
        let first = self.entries.front()?.seq;
        if from >= to || from + 1 < first || self.entries.back()?.seq < to {
            return None;
        }
        let mut union = Vec::new();
        for e in self.entries.iter().filter(|e| e.seq > from && e.seq <= to) {
            union.extend_from_slice(e.tiles.as_deref()?);
        }
        union.sort_unstable();
        union.dedup();
        Some(union)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_of_the_frames_skipped() {
        let mut log = ChangeLog::default();
        log.record(1, true, &[]);
        log.record(2, false, &[5, 3]);
        log.record(3, false, &[3, 9]);
        log.record(4, false, &[1]);
        assert_eq!(log.since(1, 3), Some(vec![3, 5, 9]));
        assert_eq!(log.since(2, 4), Some(vec![1, 3, 9]));
        assert_eq!(log.since(3, 4), Some(vec![1]));
        // The first frame was whole.
        assert_eq!(log.since(0, 2), None);
        // Nothing newer than the texture, or a frame not recorded yet.
        assert_eq!(log.since(4, 4), None);
        assert_eq!(log.since(3, 5), None);
    }

    #[test]
    fn a_window_further_behind_than_the_log_takes_everything() {
        let mut log = ChangeLog::default();
        for seq in 1..=(KEPT as u64 + 10) {
            log.record(seq, false, &[seq as u32]);
        }
        let last = KEPT as u64 + 10;
        assert_eq!(log.since(last - KEPT as u64, last).map(|t| t.len()), Some(KEPT));
        assert_eq!(log.since(last - KEPT as u64 - 1, last), None, "frame 11 is forgotten");
    }

    #[test]
    fn a_whole_frame_or_a_gap_in_between_means_everything() {
        let mut log = ChangeLog::default();
        log.record(1, false, &[1]);
        log.record(2, true, &[]);
        log.record(3, false, &[2]);
        assert_eq!(log.since(1, 3), None);
        assert_eq!(log.since(2, 3), Some(vec![2]));
        log.record(7, false, &[4]);
        assert_eq!(log.since(3, 7), None);
        // A frame's tiles are what changed from the frame before it.
        assert_eq!(log.since(6, 7), Some(vec![4]));
    }
}
