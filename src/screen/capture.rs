//! What every capture backend offers: the monitors, and a frame of one.

use lifebuoy_proto::codec::{Image, Rect};
use lifebuoy_proto::screen::CursorShape;

/// One monitor, in the virtual screen's coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorInfo {
    /// Index in the backend's list.
    pub id: u8,
    /// Output name, if the system has one.
    pub name: String,
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The primary monitor.
    pub primary: bool,
}

impl MonitorInfo {
    /// Monitors of these sizes placed left to right, the first primary
    /// (for systems that say nothing of their layout).
    pub fn side_by_side(sizes: &[(u32, u32)], name: impl Fn(usize) -> String) -> Vec<MonitorInfo> {
        let mut x = 0i32;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &(width, height))| {
                let m = MonitorInfo { id: i as u8, name: name(i), x, y: 0, width, height, primary: i == 0 };
                x = x.saturating_add(width as i32);
                m
            })
            .collect()
    }

    /// As the layout message carries it (sizes beyond 65535 are cut).
    pub fn to_wire(&self) -> lifebuoy_proto::control::Monitor {
        let mut name: String = self.name.chars().filter(|c| !c.is_control()).collect();
        while name.len() > 64 {
            name.pop();
        }
        lifebuoy_proto::control::Monitor {
            id: self.id,
            x: self.x,
            y: self.y,
            width: self.width.min(u16::MAX.into()) as u16,
            height: self.height.min(u16::MAX.into()) as u16,
            primary: self.primary,
            name,
        }
    }
}

/// Capture failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No display to capture (not started, or `DISPLAY` unset).
    #[error("cannot open the display: {0}")]
    Connect(String),
    /// The display lacks something the backend needs.
    #[error("the display does not support {0}")]
    Unsupported(&'static str),
    /// A request to the display failed.
    #[error("screen capture failed: {0}")]
    Request(String),
    /// The monitor asked for does not exist.
    #[error("there is no monitor {0}")]
    NoMonitor(u8),
}

/// The pointer as the customer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorSample {
    /// Column relative to the selected monitor.
    pub x: i32,
    /// Row relative to the selected monitor.
    pub y: i32,
    /// Over the selected monitor (and not hidden).
    pub visible: bool,
    /// The shape; its `id` changes whenever the shape does.
    pub shape: Option<CursorShape>,
}

/// The parts of the check that damage reports missed nothing (see
/// [`Capture::grab_checking`]).
pub const CHECK_BANDS: u32 = 8;

/// Band `band % CHECK_BANDS` of a monitor of this size.
pub fn check_band(width: u32, height: u32, band: u32) -> lifebuoy_proto::codec::Rect {
    let k = band % CHECK_BANDS;
    let (y0, y1) = (height * k / CHECK_BANDS, height * (k + 1) / CHECK_BANDS);
    lifebuoy_proto::codec::Rect { x: 0, y: y0, w: width, h: y1 - y0 }
}

/// One captured frame.
#[derive(Debug)]
pub struct Grab<'a> {
    /// The pixels.
    pub image: &'a Image,
    /// Where they may differ from the previous grab's, in monitor pixels,
    /// as the system reported its drawing; `None` if unknown (the first
    /// grab, after a monitor switch, or a system that does not say).
    pub damage: Option<&'a [Rect]>,
    /// The part of `damage` away from what kept the last grabs busy (a
    /// key's echo beside a scrolling log): worth sending ahead of the
    /// rest, as an update of its own. Empty where the backend cannot tell,
    /// or where nothing else was drawn.
    pub first: &'a [Rect],
}

/// A source of frames.
pub trait Capture: Send {
    /// The monitors, primary first where known.
    fn monitors(&self) -> Vec<MonitorInfo>;
    /// Chooses the monitor later frames come from.
    fn select(&mut self, monitor: u8) -> Result<(), CaptureError>;
    /// The selected monitor's pixels now, as BGRX, kept by the backend
    /// until the next grab, with where they may differ from the last grab's.
    fn grab(&mut self) -> Result<Grab<'_>, CaptureError>;

    /// A grab that also fetches band `band % CHECK_BANDS` of the selected
    /// monitor (horizontal bands, top first) afresh and counts it as
    /// damaged, whatever the system reported: one part of the check that
    /// its reports missed nothing, small enough not to hold up a change.
    /// Backends that do not report damage grab as always.
    fn grab_checking(&mut self, _band: u32) -> Result<Grab<'_>, CaptureError> {
        self.grab()
    }

    /// A copy of the selected monitor's pixels now.
    fn snapshot(&mut self) -> Result<Image, CaptureError> {
        self.grab().map(|g| g.image.clone())
    }

    /// Where the pointer is and what it looks like; `None` where the
    /// backend cannot tell. The cursor is not part of the frames: the
    /// viewer draws it, so a moving pointer costs a few bytes, not tiles.
    fn cursor(&mut self) -> Option<CursorSample> {
        None
    }

    /// While captures are being paced (something keeps drawing), waits up
    /// to `timeout` for drawing *somewhere else* than what has been busy
    /// lately (a keystroke's echo beside a scrolling log): `true` if that
    /// came, so it is captured at once instead of at the next paced frame.
    /// Backends that cannot tell sleep the timeout and say no.
    fn wait_urgent(&mut self, timeout: std::time::Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }

    /// Waits until the screen may have changed, at most `timeout`; `false`
    /// if it surely has not. Backends without change notification wait
    /// the whole timeout and say it may have (the caller then compares).
    fn wait_change(&mut self, timeout: std::time::Duration) -> bool {
        std::thread::sleep(timeout);
        true
    }
}
