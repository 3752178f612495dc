//! The customer's screen: capture backends and (to come) the capture and
//! encoding thread that feeds the screen streams.

pub mod capture;
pub mod codec_bench;
pub mod record;
pub mod stream;
pub mod synthetic;
#[cfg(target_os = "linux")]
pub mod x11;

pub use capture::{Capture, CaptureError, MonitorInfo};
