//! What the customer shares in a session: the screen (captured on its own
//! thread), the keyboard and mouse (an injection thread that control can
//! be switched on and off for), and the clipboard.

use std::sync::Arc;

use super::files::Files;
use crate::screen::capture::MonitorInfo;
use crate::session::IncomingStream;

/// Opens the injection thread for the shared screen; control starts as
/// `allowed` and the customer can switch it later.
pub fn open_injector(
    screen: &SharedScreen,
    display: Option<&str>,
    allowed: bool,
) -> Result<crate::input::InjectorHandle, String> {
    use crate::input::{Injector, InjectorHandle};
    let display = display.map(str::to_owned).or_else(|| std::env::var("DISPLAY").ok());
    Injector::open(display.as_deref(), screen.monitors.clone())
        .map(|injector| InjectorHandle::start(injector, allowed))
        .map_err(|e| format!("remote control unavailable: {e}"))
}

/// Serves the technician's streams: input to the injector (which drops it
/// while control is off; refused when there is none), files to `files`.
pub fn serve_streams(
    link: crate::session::Link,
    injector: Option<crate::input::InjectorHandle>,
    files: Arc<Files>,
) {
    use crate::input::receive_input;
    tokio::spawn(async move {
        while let Ok(stream) = link.accept().await {
            match (stream, &injector) {
                (IncomingStream::Input(s), Some(handle)) => {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if let Err(e) = receive_input(s, &handle).await {
                            tracing::debug!("input stream: {e}");
                        }
                    });
                }
                (IncomingStream::Input(mut s), None) => s.stop(lifebuoy_proto::close::STREAM_PROTOCOL_ERROR),
                (IncomingStream::File(f), _) => {
                    files.receive(f);
                }
                (IncomingStream::Screen(mut s), _) => s.stop(lifebuoy_proto::close::STREAM_PROTOCOL_ERROR),
            }
        }
    });
}

/// The customer's clipboard, where there is one to share.
#[cfg(target_os = "linux")]
pub fn share_clipboard(
    display: Option<&str>,
    copied: tokio::sync::mpsc::Sender<String>,
) -> Option<crate::clipboard::Clipboard> {
    let display = display.map(str::to_owned).or_else(|| std::env::var("DISPLAY").ok())?;
    crate::clipboard::Clipboard::start(Some(&display), copied)
        .inspect_err(|e| tracing::warn!("clipboard unavailable: {e}"))
        .ok()
}

/// No clipboard support on this system yet.
#[cfg(not(target_os = "linux"))]
pub fn share_clipboard(
    _display: Option<&str>,
    _copied: tokio::sync::mpsc::Sender<String>,
) -> Option<NoClipboard> {
    None
}

/// Stands in for the clipboard where there is none.
#[cfg(not(target_os = "linux"))]
pub struct NoClipboard;

#[cfg(not(target_os = "linux"))]
impl NoClipboard {
    pub fn set(&self, _text: String) -> Result<(), ()> {
        Ok(())
    }
}

/// The screen being shared.
pub struct SharedScreen {
    /// The monitors, as captured at the start.
    pub monitors: Vec<MonitorInfo>,
    /// Which monitor the technician sees.
    pub monitor: tokio::sync::watch::Sender<u8>,
    /// The sending task, with its statistics at the end.
    pub task:
        tokio::task::JoinHandle<Result<crate::screen::stream::SenderStats, crate::session::SessionError>>,
}

/// Starts sending the screen, if there is one to capture; the session goes
/// on without it otherwise.
pub fn share_screen(session: &crate::session::Session, display: Option<&str>) -> Option<SharedScreen> {
    #[cfg(target_os = "linux")]
    {
        use crate::screen::capture::Capture;
        let display = display.map(str::to_owned).or_else(|| std::env::var("DISPLAY").ok())?;
        match crate::screen::x11::X11Capture::open(Some(&display)) {
            Ok(capture) => {
                let monitors = capture.monitors();
                let first = monitors.first().map_or(0, |m| m.id);
                let (monitor, chosen) = tokio::sync::watch::channel(first);
                let link = session.link.clone();
                let task = tokio::spawn(crate::screen::stream::send_screen(link, Box::new(capture), chosen));
                Some(SharedScreen { monitors, monitor, task })
            }
            Err(e) => {
                tracing::warn!("screen sharing unavailable: {e}");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (session, display);
        None
    }
}
