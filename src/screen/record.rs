//! Recording a display to a raw frame file, for codec benchmarks on real
//! desktop work: every frame as BGRX, width * height * 4 bytes, one after
//! the other.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::capture::Capture;

/// Captures `seconds` of `capture` at `fps` into `out`; returns the frame count.
pub fn record(capture: &mut dyn Capture, seconds: f64, fps: f64, out: &Path) -> anyhow::Result<u64> {
    let mut file = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(out)?);
    let interval = Duration::from_secs_f64(1.0 / fps);
    let started = Instant::now();
    let mut frames = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let due = started + interval * frames as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frame = capture.grab()?.image;
        file.write_all(&frame.pixels)?;
        frames += 1;
    }
    file.flush()?;
    Ok(frames)
}
