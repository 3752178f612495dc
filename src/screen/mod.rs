//! The customer's screen: capture backends (X11 on Linux, scrap on
//! Windows and macOS, a synthetic source for tests), the capture and
//! encoding thread, and the streams between agent and viewer.

pub mod capture;
pub mod changes;
pub mod codec_bench;
pub mod credits;
pub mod estimate;
#[cfg(any(windows, target_os = "macos"))]
pub mod native;
pub mod receive;
pub mod record;
pub mod stream;
pub mod synthetic;
#[cfg(all(target_os = "linux", feature = "desktop"))]
pub mod x11;

pub use capture::{check_band, Capture, CaptureError, Grab, MonitorInfo, CHECK_BANDS};
