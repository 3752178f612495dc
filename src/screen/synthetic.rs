//! A capture source that draws its own frames: for unit tests and
//! benchmarks of what comes after capture, never instead of the real path.

use lifebuoy_proto::codec::Image;

use super::capture::{Capture, CaptureError, MonitorInfo};

/// Draws a moving block and a counter-like stripe over a gradient.
#[derive(Debug)]
pub struct Synthetic {
    width: u32,
    height: u32,
    frame: u32,
}

impl Synthetic {
    /// A source of `width` x `height` frames.
    pub fn new(width: u32, height: u32) -> Synthetic {
        Synthetic { width, height, frame: 0 }
    }
}

impl Capture for Synthetic {
    fn monitors(&self) -> Vec<MonitorInfo> {
        vec![MonitorInfo {
            id: 0,
            name: "synthetic".into(),
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
            primary: true,
        }]
    }

    fn select(&mut self, monitor: u8) -> Result<(), CaptureError> {
        if monitor == 0 {
            Ok(())
        } else {
            Err(CaptureError::NoMonitor(monitor))
        }
    }

    fn wait_change(&mut self, _timeout: std::time::Duration) -> bool {
        // Every frame differs.
        true
    }

    fn grab(&mut self) -> Result<Image, CaptureError> {
        let mut img = Image::new(self.width, self.height);
        let (bx, by) = (self.frame * 7 % self.width.max(1), self.frame * 3 % self.height.max(1));
        for y in 0..self.height {
            for x in 0..self.width {
                let i = ((y * self.width + x) * 4) as usize;
                let inside = x >= bx && x < bx + 40 && y >= by && y < by + 30;
                let px = if inside { [0, 0, 255, 0] } else { [(x % 256) as u8, (y % 256) as u8, 64, 0] };
                img.pixels[i..i + 4].copy_from_slice(&px);
            }
        }
        self.frame += 1;
        Ok(img)
    }
}
