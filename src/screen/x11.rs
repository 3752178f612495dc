//! X11 capture through MIT-SHM, with a segment the X server creates and
//! passes to us as a file descriptor.
//!
//! Not scrap: on X11 it creates its SysV segment with mode 0777 (any local
//! user can read the customer's screen), leaks it when killed, and showed a
//! heap-use-after-free under AddressSanitizer (docs/decisions.md). A
//! segment made by `ShmCreateSegment` is a memfd shared only by descriptor
//! passing: no other process can attach to it, and it is gone when both
//! ends close it, however the agent exits.

use std::fs::File;

use lifebuoy_proto::codec::Image;
use memmap2::Mmap;
use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{ImageFormat, Window};
use x11rb::rust_connection::RustConnection;

use lifebuoy_proto::screen::{CursorShape, CURSOR_MAX_SIDE};

use super::capture::{Capture, CaptureError, CursorSample, MonitorInfo};

/// Captures monitors of one X display.
pub struct X11Capture {
    conn: RustConnection,
    root: Window,
    /// The DAMAGE object on the root window, where the server has DAMAGE.
    damage: Option<u32>,
    /// XFixes is there: the pointer's shape and position can be read.
    cursor: bool,
    monitors: Vec<MonitorInfo>,
    selected: usize,
    segment: u32,
    map: Mmap,
}

impl std::fmt::Debug for X11Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Capture")
            .field("monitors", &self.monitors)
            .field("selected", &self.selected)
            .finish()
    }
}

fn request(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Request(e.to_string())
}

impl X11Capture {
    /// Connects to `display` (e.g. `":1"`; `None` for `$DISPLAY`).
    pub fn open(display: Option<&str>) -> Result<X11Capture, CaptureError> {
        let (conn, screen) = x11rb::connect(display).map_err(|e| CaptureError::Connect(e.to_string()))?;
        let root_info = &conn.setup().roots[screen];
        let root = root_info.root;
        if root_info.root_depth != 24 && root_info.root_depth != 32 {
            return Err(CaptureError::Unsupported("a screen depth other than 24 or 32 bits"));
        }
        let version = conn
            .shm_query_version()
            .map_err(request)?
            .reply()
            .map_err(|_| CaptureError::Unsupported("MIT-SHM"))?;
        if (version.major_version, version.minor_version) < (1, 2) {
            return Err(CaptureError::Unsupported("MIT-SHM 1.2 (segments passed as file descriptors)"));
        }
        let monitors = list_monitors(&conn, root, root_info.width_in_pixels, root_info.height_in_pixels);
        let largest = monitors.iter().map(|m| m.width as usize * m.height as usize * 4).max().unwrap_or(0);
        let segment = conn.generate_id().map_err(request)?;
        let reply = conn
            .shm_create_segment(segment, largest as u32, false)
            .map_err(request)?
            .reply()
            .map_err(|e| CaptureError::Request(format!("creating the shared segment: {e}")))?;
        let file = File::from(reply.shm_fd);
        // SAFETY: the mapping is read-only and only read between a completed
        // ShmGetImage and the next request; the X server writes it only while
        // serving ShmGetImage, which we wait for.
        let map = unsafe { memmap2::MmapOptions::new().len(largest).map(&file) }.map_err(request)?;
        let damage = watch_damage(&conn, root);
        // XFixes must be told our version before its cursor requests answer.
        let cursor = {
            use x11rb::protocol::xfixes::ConnectionExt as _;
            conn.xfixes_query_version(4, 0).ok().and_then(|c| c.reply().ok()).is_some()
        };
        Ok(X11Capture { conn, root, damage, cursor, monitors, selected: 0, segment, map })
    }
}

/// Asks the server to report changes of the root window (any change at
/// all: the codec finds where). `None` where DAMAGE is missing: capture
/// then polls.
fn watch_damage(conn: &RustConnection, root: Window) -> Option<u32> {
    use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
    conn.damage_query_version(1, 1).ok()?.reply().ok()?;
    let id = conn.generate_id().ok()?;
    conn.damage_create(id, root, ReportLevel::NON_EMPTY).ok()?.check().ok()?;
    Some(id)
}

fn list_monitors(conn: &RustConnection, root: Window, width: u16, height: u16) -> Vec<MonitorInfo> {
    let whole = || {
        vec![MonitorInfo {
            id: 0,
            name: "screen".into(),
            x: 0,
            y: 0,
            width: width.into(),
            height: height.into(),
            primary: true,
        }]
    };
    let Ok(cookie) = conn.randr_get_monitors(root, true) else { return whole() };
    let Ok(reply) = cookie.reply() else { return whole() };
    let mut list: Vec<MonitorInfo> = reply
        .monitors
        .iter()
        .filter(|m| m.width > 0 && m.height > 0)
        .map(|m| MonitorInfo {
            id: 0,
            name: conn
                .get_atom_name(m.name)
                .ok()
                .and_then(|c| c.reply().ok())
                .map(|n| String::from_utf8_lossy(&n.name).into_owned())
                .unwrap_or_default(),
            x: m.x.into(),
            y: m.y.into(),
            width: m.width.into(),
            height: m.height.into(),
            primary: m.primary,
        })
        .collect();
    // Xvfb may report no monitor at all (FINDINGS.md): then the whole screen is one.
    if list.is_empty() {
        return whole();
    }
    list.sort_by_key(|m| !m.primary);
    for (i, m) in list.iter_mut().enumerate().take(u8::MAX as usize) {
        m.id = i as u8;
    }
    list
}

use x11rb::protocol::xproto::ConnectionExt as _;

impl Capture for X11Capture {
    fn monitors(&self) -> Vec<MonitorInfo> {
        self.monitors.clone()
    }

    fn select(&mut self, monitor: u8) -> Result<(), CaptureError> {
        let index =
            self.monitors.iter().position(|m| m.id == monitor).ok_or(CaptureError::NoMonitor(monitor))?;
        self.selected = index;
        Ok(())
    }

    fn wait_change(&mut self, timeout: std::time::Duration) -> bool {
        use std::os::fd::AsFd;
        if self.damage.is_none() {
            std::thread::sleep(timeout);
            return true;
        }
        if self.drain_damage() {
            return true;
        }
        let ms = nix::poll::PollTimeout::from(timeout.as_millis().min(u16::MAX as u128) as u16);
        let ready = {
            let mut fds = [nix::poll::PollFd::new(self.conn.stream().as_fd(), nix::poll::PollFlags::POLLIN)];
            nix::poll::poll(&mut fds, ms)
        };
        match ready {
            Ok(0) => false,
            Ok(_) => self.drain_damage(),
            // Unsure: let the caller look.
            Err(_) => true,
        }
    }

    fn cursor(&mut self) -> Option<CursorSample> {
        self.read_cursor()
    }

    fn grab(&mut self) -> Result<Image, CaptureError> {
        let m = &self.monitors[self.selected];
        let reply = self
            .conn
            .shm_get_image(
                self.root,
                m.x as i16,
                m.y as i16,
                m.width as u16,
                m.height as u16,
                !0,
                ImageFormat::Z_PIXMAP.into(),
                self.segment,
                0,
            )
            .map_err(request)?
            .reply()
            .map_err(request)?;
        let len = m.width as usize * m.height as usize * 4;
        if reply.size as usize != len {
            return Err(CaptureError::Unsupported("a pixel format other than 32 bits per pixel"));
        }
        Ok(Image { width: m.width, height: m.height, pixels: self.map[..len].to_vec() })
    }
}

impl X11Capture {
    /// Pointer and shape through XFixes (one request gives both).
    fn read_cursor(&mut self) -> Option<CursorSample> {
        use x11rb::protocol::xfixes::ConnectionExt as _;
        if !self.cursor {
            return None;
        }
        let reply = self.conn.xfixes_get_cursor_image().ok()?.reply().ok()?;
        let m = &self.monitors[self.selected];
        let (x, y) = (i32::from(reply.x) - m.x, i32::from(reply.y) - m.y);
        let inside = (0..m.width as i32).contains(&x) && (0..m.height as i32).contains(&y);
        let shape = cursor_shape(&reply);
        Some(CursorSample { x, y, visible: inside && shape.is_some(), shape })
    }

    /// Takes every queued event; whether a damage report was among them.
    fn drain_damage(&mut self) -> bool {
        use x11rb::protocol::Event;
        let mut damaged = false;
        while let Ok(Some(event)) = self.conn.poll_for_event() {
            damaged |= matches!(event, Event::DamageNotify(_));
        }
        if damaged {
            if let Some(d) = self.damage {
                // Re-arm: with NON_EMPTY the next report comes after the next change.
                use x11rb::protocol::damage::ConnectionExt as _;
                let _ = self.conn.damage_subtract(d, x11rb::NONE, x11rb::NONE);
                let _ = self.conn.flush();
            }
        }
        damaged
    }
}

/// XFixes gives premultiplied ARGB words; the wire wants straight RGBA,
/// at most CURSOR_MAX_SIDE a side (larger cursors are cut, hot spot kept inside).
fn cursor_shape(reply: &x11rb::protocol::xfixes::GetCursorImageReply) -> Option<CursorShape> {
    let (w, h) = (reply.width.min(CURSOR_MAX_SIDE), reply.height.min(CURSOR_MAX_SIDE));
    if w == 0 || h == 0 || reply.cursor_image.len() < reply.width as usize * reply.height as usize {
        return None;
    }
    let mut rgba = Vec::with_capacity(w as usize * h as usize * 4);
    for row in 0..h as usize {
        for &argb in &reply.cursor_image[row * reply.width as usize..][..w as usize] {
            let [b, g, r, a] = argb.to_le_bytes();
            let straight =
                |c: u8| if a == 0 { 0 } else { (u32::from(c) * 255 / u32::from(a)).min(255) as u8 };
            rgba.extend_from_slice(&[straight(r), straight(g), straight(b), a]);
        }
    }
    Some(CursorShape {
        id: reply.cursor_serial,
        width: w,
        height: h,
        hot_x: reply.xhot.min(w - 1),
        hot_y: reply.yhot.min(h - 1),
        rgba,
    })
}

impl Drop for X11Capture {
    fn drop(&mut self) {
        let _ = self.conn.shm_detach(self.segment);
        let _ = self.conn.flush();
    }
}
