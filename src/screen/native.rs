//! Windows (DXGI desktop duplication) and macOS (CoreGraphics display
//! streams) capture through scrap, behind the same [`Capture`] trait.
//!
//! scrap's capturers hold raw OS handles and may not cross threads, while
//! a [`Capture`] is made on the session's side and moved to the capture
//! thread. So the capturer lives on a thread of its own, made there and
//! never moved, and this backend talks to it over bounded channels: one
//! request, one reply.
//!
//! The systems hand out a frame only when the screen changed (DXGI) or
//! once per display refresh (macOS): `wait_change` polls for one. What
//! scrap does not offer: monitor positions (monitors are listed side by
//! side in scrap's order, the first as primary) and the pointer.

use std::sync::mpsc;

use lifebuoy_proto::codec::Image;

use super::capture::{Capture, CaptureError, Grab, MonitorInfo};

enum Request {
    Select(usize),
    Grab,
}

/// Captures the monitors scrap finds.
pub struct NativeCapture {
    monitors: Vec<MonitorInfo>,
    requests: mpsc::SyncSender<Request>,
    replies: mpsc::Receiver<Result<Option<Image>, CaptureError>>,
    /// The last frame, kept while the system has no newer one.
    last: Option<Image>,
    /// A frame `wait_change` already fetched.
    pending: Option<Image>,
}

impl std::fmt::Debug for NativeCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeCapture").field("monitors", &self.monitors).finish()
    }
}

fn failed(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Request(e.to_string())
}

impl NativeCapture {
    /// Lists the monitors and starts the capture thread (capturing the first).
    pub fn open() -> Result<NativeCapture, CaptureError> {
        let (info_tx, info_rx) = mpsc::sync_channel(1);
        let (requests, request_rx) = mpsc::sync_channel::<Request>(1);
        let (reply_tx, replies) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("lifebuoy-native-capture".into())
            .spawn(move || serve(info_tx, request_rx, reply_tx))
            .map_err(failed)?;
        let monitors = info_rx.recv().map_err(failed)??;
        Ok(NativeCapture { monitors, requests, replies, last: None, pending: None })
    }

    fn ask(&mut self, request: Request) -> Result<Option<Image>, CaptureError> {
        self.requests.send(request).map_err(failed)?;
        self.replies.recv().map_err(failed)?
    }
}

/// The capture thread: owns the displays and the capturer.
fn serve(
    info: mpsc::SyncSender<Result<Vec<MonitorInfo>, CaptureError>>,
    requests: mpsc::Receiver<Request>,
    replies: mpsc::SyncSender<Result<Option<Image>, CaptureError>>,
) {
    let sizes = match scrap::Display::all() {
        Ok(all) if !all.is_empty() => {
            all.iter().map(|d| (d.width() as u32, d.height() as u32)).collect::<Vec<_>>()
        }
        Ok(_) => {
            let _ = info.send(Err(CaptureError::Connect("no display found".into())));
            return;
        }
        Err(e) => {
            let _ = info.send(Err(CaptureError::Connect(e.to_string())));
            return;
        }
    };
    let monitors = MonitorInfo::side_by_side(&sizes, |i| format!("display {}", i + 1));
    if info.send(Ok(monitors)).is_err() {
        return;
    }
    let mut capturer: Option<(usize, scrap::Capturer)> = None;
    let mut selected = 0usize;
    while let Ok(request) = requests.recv() {
        let reply = match request {
            Request::Select(index) => {
                selected = index;
                capturer = None;
                Ok(None)
            }
            Request::Grab => grab(&mut capturer, selected),
        };
        if replies.send(reply).is_err() {
            return;
        }
    }
}

fn grab(
    capturer: &mut Option<(usize, scrap::Capturer)>,
    selected: usize,
) -> Result<Option<Image>, CaptureError> {
    if capturer.as_ref().is_none_or(|(index, _)| *index != selected) {
        let display = scrap::Display::all()
            .map_err(failed)?
            .into_iter()
            .nth(selected)
            .ok_or(CaptureError::NoMonitor(selected as u8))?;
        *capturer = Some((selected, scrap::Capturer::new(display).map_err(failed)?));
    }
    let (_, c) = capturer.as_mut().expect("made above");
    let (width, height) = (c.width(), c.height());
    match c.frame() {
        Ok(frame) => {
            // Rows may be padded: the stride is what the system gives.
            let stride = frame.len() / height.max(1);
            if stride < width * 4 {
                return Err(CaptureError::Unsupported("a pixel format other than 32 bits per pixel"));
            }
            let mut pixels = Vec::with_capacity(width * height * 4);
            for row in frame.chunks(stride).take(height) {
                pixels.extend_from_slice(&row[..width * 4]);
            }
            Ok(Some(Image { width: width as u32, height: height as u32, pixels }))
        }
        // No new frame since the last one.
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => {
            // The desktop switched (UAC, lock screen): start over next time.
            *capturer = None;
            Err(failed(e))
        }
    }
}

impl Capture for NativeCapture {
    fn monitors(&self) -> Vec<MonitorInfo> {
        self.monitors.clone()
    }

    fn select(&mut self, monitor: u8) -> Result<(), CaptureError> {
        let index =
            self.monitors.iter().position(|m| m.id == monitor).ok_or(CaptureError::NoMonitor(monitor))?;
        (self.last, self.pending) = (None, None);
        self.ask(Request::Select(index)).map(|_| ())
    }

    fn wait_change(&mut self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.ask(Request::Grab) {
                Ok(Some(image)) => {
                    self.pending = Some(image);
                    return true;
                }
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(4));
                }
                Ok(None) => return false,
                // Let `grab` report it.
                Err(_) => return true,
            }
        }
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        if let Some(image) = self.pending.take() {
            self.last = Some(image);
        } else {
            // The first frame of a capturer may take a moment to come.
            for _ in 0..50 {
                if let Some(image) = self.ask(Request::Grab)? {
                    self.last = Some(image);
                }
                if self.last.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        match &self.last {
            Some(image) => Ok(Grab { image, damage: None, first: &[] }),
            None => Err(CaptureError::Request("the system delivered no frame".into())),
        }
    }
}
