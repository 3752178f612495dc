//! A capture source that draws its own frames: for unit tests and
//! benchmarks of what comes after capture, never instead of the real path.

use lifebuoy_proto::codec::Image;
use lifebuoy_proto::screen::CursorShape;

use super::capture::{Capture, CaptureError, CursorSample, Grab, MonitorInfo};

/// Draws a moving block and a counter-like stripe over a gradient, on one
/// or more monitors side by side (each with its own tint), and a pointer
/// that moves one pixel right per frame.
#[derive(Debug)]
pub struct Synthetic {
    monitors: Vec<MonitorInfo>,
    selected: usize,
    frame: u32,
    image: Image,
}

impl Synthetic {
    /// One monitor of `width` x `height`.
    pub fn new(width: u32, height: u32) -> Synthetic {
        Synthetic::with_monitors(&[(width, height)])
    }

    /// Monitors of these sizes, left to right; the first is primary.
    pub fn with_monitors(sizes: &[(u32, u32)]) -> Synthetic {
        let monitors = MonitorInfo::side_by_side(sizes, |i| format!("synthetic-{i}"));
        Synthetic { monitors, selected: 0, frame: 0, image: Image::new(1, 1) }
    }

    /// The frame `grab` returns after `frames` earlier grabs of monitor `monitor`.
    pub fn frame_of(monitor: u8, width: u32, height: u32, frames: u32) -> Image {
        let mut img = Image::new(width, height);
        let (bx, by) = (frames * 7 % width.max(1), frames * 3 % height.max(1));
        for y in 0..height {
            for x in 0..width {
                let i = ((y * width + x) * 4) as usize;
                let inside = x >= bx && x < bx + 40 && y >= by && y < by + 30;
                let px = if inside {
                    [0, 0, 255, 0]
                } else {
                    [(x % 256) as u8, (y % 256) as u8, 64 + monitor * 60, 0]
                };
                img.pixels[i..i + 4].copy_from_slice(&px);
            }
        }
        img
    }

    /// The pointer's shape: a 3x3 white square, hot spot in the middle.
    pub fn cursor_shape() -> CursorShape {
        CursorShape { id: 7, width: 3, height: 3, hot_x: 1, hot_y: 1, rgba: vec![255; 36] }
    }
}

impl Capture for Synthetic {
    fn monitors(&self) -> Vec<MonitorInfo> {
        self.monitors.clone()
    }

    fn select(&mut self, monitor: u8) -> Result<(), CaptureError> {
        self.selected =
            self.monitors.iter().position(|m| m.id == monitor).ok_or(CaptureError::NoMonitor(monitor))?;
        Ok(())
    }

    fn wait_change(&mut self, _timeout: std::time::Duration) -> bool {
        // Every frame differs.
        true
    }

    fn cursor(&mut self) -> Option<CursorSample> {
        let m = &self.monitors[self.selected];
        Some(CursorSample {
            x: (self.frame % m.width) as i32,
            y: 5,
            visible: true,
            shape: Some(Synthetic::cursor_shape()),
        })
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        let m = &self.monitors[self.selected];
        self.image = Synthetic::frame_of(m.id, m.width, m.height, self.frame);
        self.frame += 1;
        Ok(Grab { image: &self.image, damage: None, first: &[] })
    }
}
