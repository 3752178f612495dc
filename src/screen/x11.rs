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

use lifebuoy_proto::codec::{Image, Rect};
use memmap2::Mmap;
use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{ImageFormat, Window};
use x11rb::rust_connection::RustConnection;

use lifebuoy_proto::screen::{CursorShape, CURSOR_MAX_SIDE};

use super::capture::{Capture, CaptureError, CursorSample, Grab, MonitorInfo};

/// Damage rectangles fetched one by one at most; a report in more pieces
/// than this is fetched as the whole monitor (one request beats hundreds).
const MAX_RECTS: usize = 64;

/// Grabs whose damage counts as "busy" for [`Capture::wait_urgent`]: the
/// last two (30 ms at 60 Hz). A steady scroller is in every grab; a
/// keystroke's echo, even in fast typing, in one.
const BUSY_MEMORY: usize = 2;

/// Captures monitors of one X display.
pub struct X11Capture {
    conn: RustConnection,
    root: Window,
    /// The DAMAGE object on the root window, where the server has DAMAGE.
    damage: Option<u32>,
    /// XFixes is there: the pointer's shape and position can be read.
    cursor: bool,
    /// An XFixes region the damage is moved into at each grab, where both
    /// DAMAGE and XFixes are there.
    region: Option<u32>,
    /// What the last grab's damage report said, in monitor pixels.
    last_damage: Option<Vec<Rect>>,
    /// The part of it away from what was busy (see [`Grab::first`]).
    last_first: Vec<Rect>,
    /// The selected monitor's pixels as of the last grab.
    frame: Option<Image>,
    /// Bounding box (root pixels) of the damage reported since the last
    /// grab took the damage: drawing the next grab will fetch.
    pending: Option<Rect>,
    /// Bounding box of reports that arrived late for damage an earlier
    /// take already covered (they count as busy, not as new drawing).
    covered: Option<Rect>,
    /// The sequence number of the request that last took the damage: a
    /// report stamped before it is for damage that take moved out.
    taken_at: x11rb::connection::SequenceNumber,
    /// Bounding boxes of the damage of the last few grabs: what is busy.
    recent: std::collections::VecDeque<Rect>,
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
        let region = match damage {
            Some(_) if cursor => {
                use x11rb::protocol::xfixes::ConnectionExt as _;
                let id = conn.generate_id().map_err(request)?;
                conn.xfixes_create_region(id, &[]).map_err(request)?.check().ok().map(|()| id)
            }
            _ => None,
        };
        Ok(X11Capture {
            conn,
            root,
            damage,
            cursor,
            region,
            last_damage: None,
            last_first: Vec::new(),
            frame: None,
            pending: None,
            covered: None,
            taken_at: 0,
            recent: Default::default(),
            monitors,
            selected: 0,
            segment,
            map,
        })
    }
}

/// Asks the server to report changes of the root window, each time the
/// bounding box of what was drawn since the last grab grows: one report per
/// frame for a steady scroller, and a new one when something starts
/// drawing elsewhere. `None` where DAMAGE is missing: capture
/// then polls.
fn watch_damage(conn: &RustConnection, root: Window) -> Option<u32> {
    use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
    conn.damage_query_version(1, 1).ok()?.reply().ok()?;
    let id = conn.generate_id().ok()?;
    conn.damage_create(id, root, ReportLevel::BOUNDING_BOX).ok()?.check().ok()?;
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
    // Xvfb may report no monitor at all (measured on this kind of machine): then the whole screen is one.
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
        (self.last_damage, self.frame) = (None, None);
        Ok(())
    }

    fn wait_change(&mut self, timeout: std::time::Duration) -> bool {
        if self.damage.is_none() {
            std::thread::sleep(timeout);
            return true;
        }
        self.drain_damage();
        if self.pending.is_some() {
            return true;
        }
        match self.poll_events(timeout) {
            Ok(false) => false,
            Ok(true) => {
                self.drain_damage();
                self.pending.is_some()
            }
            // Unsure: let the caller look.
            Err(_) => true,
        }
    }

    fn wait_urgent(&mut self, timeout: std::time::Duration) -> bool {
        if self.damage.is_none() {
            std::thread::sleep(timeout);
            return false;
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.drain_damage();
            if self.urgent() {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.poll_events(left).is_err() {
                return false;
            }
        }
    }

    fn cursor(&mut self) -> Option<CursorSample> {
        self.read_cursor()
    }

    fn grab(&mut self) -> Result<Grab<'_>, CaptureError> {
        self.grab_from_server(None)
    }

    fn grab_checking(&mut self, band: u32) -> Result<Grab<'_>, CaptureError> {
        self.grab_from_server(Some(band))
    }
}

impl X11Capture {
    /// A grab of what was reported drawn, and of check band `band` if given.
    fn grab_from_server(&mut self, band: Option<u32>) -> Result<Grab<'_>, CaptureError> {
        let m = self.monitors[self.selected].clone();
        let fits = self.frame.as_ref().is_some_and(|f| f.width == m.width && f.height == m.height);
        // Take the damage so far (which also re-arms its reports), then the
        // pixels: drawing between the two is in the image and reported
        // again next time, so nothing is missed. A report that arrives
        // after the take but was sent before it is for damage the take
        // covered; one sent after it is new and stays pending: the server
        // does not repeat it while drawing stays inside its bounding box.
        self.drain_damage();
        let hot = self.recent.iter().copied().reduce(|a, b| a.union(&b));
        let before = self.pending.take();
        let mut damage = self.take_damage(&m)?.filter(|_| fits);
        self.last_first.clear();
        if let (Some(hot), Some(rects)) = (hot, &damage) {
            let (mx, my) = (m.x.max(0) as u32, m.y.max(0) as u32);
            let away = |r: &Rect| !hot.overlaps(&Rect { x: r.x + mx, y: r.y + my, ..*r });
            if rects.iter().any(|r| !away(r)) {
                self.last_first.extend(rects.iter().filter(|r| away(r)));
            }
        }
        self.drain_damage();
        let busy = [before, self.covered.take()].into_iter().flatten().reduce(|a, b| a.union(&b));
        if let Some(p) = busy {
            if self.recent.len() == BUSY_MEMORY {
                self.recent.pop_front();
            }
            self.recent.push_back(p);
        }
        if let (Some(rects), Some(band)) = (&mut damage, band) {
            // Where reports overlap the band its pixels are fetched twice:
            // rare, and cheaper than cutting the rectangles apart.
            rects.push(super::capture::check_band(m.width, m.height, band));
        }
        let area: u64 = damage.iter().flatten().map(|r| u64::from(r.w) * u64::from(r.h)).sum();
        if !fits {
            self.frame = Some(Image::new(m.width, m.height));
        }
        let frame = self.frame.as_mut().expect("made above when missing");
        match &damage {
            // Only what was drawn: a typed character costs a few hundred bytes
            // of copying instead of a whole frame.
            Some(rects)
                if rects.len() <= MAX_RECTS && area * 2 < u64::from(m.width) * u64::from(m.height) =>
            {
                fetch(&self.conn, self.root, self.segment, &self.map, &m, rects, frame)?;
            }
            _ => {
                let whole = [Rect { x: 0, y: 0, w: m.width, h: m.height }];
                fetch(&self.conn, self.root, self.segment, &self.map, &m, &whole, frame)?;
            }
        }
        self.last_damage = damage;
        Ok(Grab {
            image: self.frame.as_ref().expect("filled above"),
            damage: self.last_damage.as_deref(),
            first: &self.last_first,
        })
    }
}

/// Copies `rects` (monitor pixels, disjoint) of the screen into `frame`
/// through the shared segment: all requests go out at once, each into its
/// own part of the segment, then the replies are awaited and copied.
fn fetch(
    conn: &RustConnection,
    root: Window,
    segment: u32,
    map: &Mmap,
    m: &MonitorInfo,
    rects: &[Rect],
    frame: &mut Image,
) -> Result<(), CaptureError> {
    let mut cookies = Vec::with_capacity(rects.len());
    let mut offset = 0usize;
    for r in rects {
        let len = r.w as usize * r.h as usize * 4;
        if offset + len > map.len() {
            return Err(CaptureError::Request("damage larger than the screen".into()));
        }
        let cookie = conn
            .shm_get_image(
                root,
                (m.x + r.x as i32) as i16,
                (m.y + r.y as i32) as i16,
                r.w as u16,
                r.h as u16,
                !0,
                ImageFormat::Z_PIXMAP.into(),
                segment,
                offset as u32,
            )
            .map_err(request)?;
        cookies.push((cookie, offset, *r));
        offset += len;
    }
    for (cookie, offset, r) in cookies {
        let reply = cookie.reply().map_err(request)?;
        let row = r.w as usize * 4;
        if reply.size as usize != row * r.h as usize {
            return Err(CaptureError::Unsupported("a pixel format other than 32 bits per pixel"));
        }
        for dy in 0..r.h {
            let at = offset + dy as usize * row;
            frame.row_mut(r, dy).copy_from_slice(&map[at..at + row]);
        }
    }
    Ok(())
}

impl X11Capture {
    /// Moves the damage reported so far out of the server (re-arming its
    /// reports) and returns it in monitor pixels, clipped; `None` where the
    /// server cannot say.
    fn take_damage(&mut self, m: &MonitorInfo) -> Result<Option<Vec<Rect>>, CaptureError> {
        use x11rb::protocol::damage::ConnectionExt as _;
        use x11rb::protocol::xfixes::ConnectionExt as _;
        let (Some(d), Some(region)) = (self.damage, self.region) else {
            if let Some(d) = self.damage {
                self.taken_at = self
                    .conn
                    .damage_subtract(d, x11rb::NONE, x11rb::NONE)
                    .map_err(request)?
                    .sequence_number();
            }
            return Ok(None);
        };
        self.taken_at = self.conn.damage_subtract(d, x11rb::NONE, region).map_err(request)?.sequence_number();
        let reply = self.conn.xfixes_fetch_region(region).map_err(request)?.reply().map_err(request)?;
        Ok(Some(
            reply
                .rectangles
                .iter()
                .filter_map(|d| {
                    // Root coordinates to this monitor's, clipped to it.
                    let x0 = (i32::from(d.x) - m.x).max(0);
                    let y0 = (i32::from(d.y) - m.y).max(0);
                    let x1 = (i32::from(d.x) + i32::from(d.width) - m.x).min(m.width as i32);
                    let y1 = (i32::from(d.y) + i32::from(d.height) - m.y).min(m.height as i32);
                    (x0 < x1 && y0 < y1).then(|| Rect {
                        x: x0 as u32,
                        y: y0 as u32,
                        w: (x1 - x0) as u32,
                        h: (y1 - y0) as u32,
                    })
                })
                .collect(),
        ))
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

    /// Takes every queued event: damage reports go to `pending`, or to
    /// `covered` where the last take already moved their damage out.
    fn drain_damage(&mut self) {
        use x11rb::protocol::Event;
        while let Ok(Some((event, seq))) = self.conn.poll_for_event_with_sequence() {
            if let Event::DamageNotify(d) = event {
                let area = Rect {
                    x: d.area.x.max(0) as u32,
                    y: d.area.y.max(0) as u32,
                    w: u32::from(d.area.width),
                    h: u32::from(d.area.height),
                };
                let into = if seq < self.taken_at { &mut self.covered } else { &mut self.pending };
                *into = Some(into.map_or(area, |p| p.union(&area)));
            }
        }
    }

    /// Whether the damage since the last grab reaches outside what the
    /// last few grabs found busy (or nothing was busy).
    fn urgent(&self) -> bool {
        let Some(pending) = self.pending else { return false };
        match self.recent.iter().copied().reduce(|a, b| a.union(&b)) {
            Some(hot) => !hot.contains(&pending),
            None => true,
        }
    }

    /// Waits up to `timeout` for the X connection to have something to read.
    fn poll_events(&self, timeout: std::time::Duration) -> Result<bool, nix::Error> {
        use std::os::fd::AsFd;
        let ms = nix::poll::PollTimeout::from(timeout.as_millis().clamp(1, u16::MAX as u128) as u16);
        let mut fds = [nix::poll::PollFd::new(self.conn.stream().as_fd(), nix::poll::PollFlags::POLLIN)];
        nix::poll::poll(&mut fds, ms).map(|n| n > 0)
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
