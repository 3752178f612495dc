//! The technician sees exactly the customer's screen: a real X server
//! (Xvfb) with a real application (xterm), captured through MIT-SHM,
//! encoded, streamed over a real pinned QUIC session on loopback, decoded,
//! and compared bit for bit, on a static screen and while the window moves;
//! the pointer (position and shape, apart from the image) and switching
//! monitors through the paced pipeline.
//!
//! Needs Xvfb, xterm and xdotool (`scripts/setup` installs them); fails,
//! loudly, without them.

#![cfg(target_os = "linux")]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lifebuoy::proto::codec::{Decoder, Encoder, Image};
use lifebuoy::proto::screen::{Screen, ScreenUpdate};
use lifebuoy::screen::stream::{Frame, RemoteCursor};
use lifebuoy::screen::synthetic::Synthetic;
use lifebuoy::screen::x11::X11Capture;
use lifebuoy::screen::Capture;
use lifebuoy::session::{IncomingStream, Session};

mod common;
use common::{session_pair, xterm, xvfb, Started};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat};

/// The root window through plain GetImage: the X server's other path, to
/// check the shared-memory capture against.
fn get_image(display: &str) -> Image {
    let (conn, screen) = x11rb::connect(Some(display)).unwrap();
    let root = &conn.setup().roots[screen];
    let (w, h) = (root.width_in_pixels, root.height_in_pixels);
    let reply = conn.get_image(ImageFormat::Z_PIXMAP, root.root, 0, 0, w, h, !0).unwrap().reply().unwrap();
    Image { width: w.into(), height: h.into(), pixels: reply.data }
}

/// Sends one captured frame as an update on its own stream; the viewer
/// decodes it and must hold exactly that frame.
async fn stream_one(
    agent: &Session,
    viewer: &Session,
    enc: &mut Encoder,
    dec: &mut Decoder,
    seq: u64,
    frame: &Image,
) {
    let Some((data, _)) = enc.encode(frame.clone()) else {
        assert_eq!(dec.image(), Some(frame), "nothing changed, so the viewer already has it");
        return;
    };
    let update = Screen::Update(ScreenUpdate {
        seq,
        monitor: 0,
        width: frame.width as u16,
        height: frame.height as u16,
        data,
    });
    let mut tx = agent.link.open::<Screen>().await.unwrap();
    tx.send(&update).await.unwrap();
    tx.finish().unwrap();
    let IncomingStream::Screen(mut rx) = viewer.link.accept().await.unwrap() else {
        panic!("expected a screen stream")
    };
    let Some(Screen::Update(got)) = rx.recv().await.unwrap() else { panic!("expected an update") };
    assert_eq!(got.seq, seq);
    let decoded = dec.decode(&got.data).expect("a valid update");
    assert!(decoded == frame, "the viewer's image differs from the captured frame {seq}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_image_equals_the_captured_screen_static_and_while_a_window_moves() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "800x600x24");
    let window = xterm(&mut started, &display);

    let mut capture = X11Capture::open(Some(&display)).expect("capture through MIT-SHM");
    let monitors = capture.monitors();
    assert_eq!((monitors[0].width, monitors[0].height), (800, 600));
    let first = capture.snapshot().unwrap();
    // The shared-memory path shows what the X server's plain path shows.
    let plain = get_image(&display);
    assert!(first.pixels == plain.pixels, "MIT-SHM capture differs from GetImage");
    // And it shows the application (white, with text) on the black root,
    // not an empty screen.
    let white = first.pixels.chunks(4).filter(|p| p[..3] == [255, 255, 255]).count();
    let share = white as f64 / (800.0 * 600.0);
    assert!((0.05..0.5).contains(&share), "xterm covers {:.1} % of the screen", share * 100.0);
    if let Ok(path) = std::env::var("LIFEBUOY_SCREENSHOT") {
        let mut ppm = format!("P6 {} {} 255\n", first.width, first.height).into_bytes();
        first.pixels.chunks(4).for_each(|p| ppm.extend_from_slice(&[p[2], p[1], p[0]]));
        std::fs::write(path, ppm).unwrap();
    }

    let (agent, viewer) = session_pair().await;
    let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
    stream_one(&agent, &viewer, &mut enc, &mut dec, 1, &first).await;
    // Static screen: the same picture again.
    let again = capture.snapshot().unwrap();
    stream_one(&agent, &viewer, &mut enc, &mut dec, 2, &again).await;

    // The window moves across the screen; every frame arrives exact.
    for (seq, step) in (3..).zip(1..=8) {
        let (x, y) = (40 + step * 37, 30 + step * 23);
        let moved = Command::new("xdotool")
            .env("DISPLAY", &display)
            .args(["windowmove", "--sync", &window, &x.to_string(), &y.to_string()])
            .status()
            .unwrap();
        assert!(moved.success());
        std::thread::sleep(Duration::from_millis(60));
        let frame = capture.snapshot().unwrap();
        assert!(frame != first, "the window did not move on screen");
        stream_one(&agent, &viewer, &mut enc, &mut dec, seq, &frame).await;
    }
}

/// The real pipeline (capture thread, paced streams, decode thread)
/// between two sessions on loopback.
struct Pipeline {
    agent: Session,
    receiver: Arc<lifebuoy::screen::stream::ScreenReceiver>,
    monitor: tokio::sync::watch::Sender<u8>,
    sender: tokio::task::JoinHandle<
        Result<lifebuoy::screen::stream::SenderStats, lifebuoy::session::SessionError>,
    >,
    accept: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    async fn start(capture: Box<dyn Capture>) -> Pipeline {
        use lifebuoy::screen::stream::{send_screen, ScreenReceiver};
        let (agent, viewer) = session_pair().await;
        let (monitor, chosen) = tokio::sync::watch::channel(0);
        let sender = tokio::spawn(send_screen(agent.link.clone(), capture, chosen));
        let receiver = Arc::new(ScreenReceiver::start());
        let accept = {
            let (link, receiver) = (viewer.link.clone(), receiver.clone());
            tokio::spawn(async move {
                // The viewer's session stays alive as long as this task.
                let _viewer = viewer;
                while let Ok(IncomingStream::Screen(s)) = link.accept().await {
                    let receiver = receiver.clone();
                    tokio::spawn(async move { receiver.take(s).await });
                }
            })
        };
        Pipeline { agent, receiver, monitor, sender, accept }
    }

    /// Waits until the viewer's image satisfies `until`.
    async fn frame(&self, until: impl Fn(&Frame) -> bool) -> Frame {
        let mut image = self.receiver.image.clone();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(f) = image.borrow_and_update().clone().filter(|f| until(f)) {
                    return f;
                }
                image.changed().await.unwrap();
            }
        })
        .await
        .expect("the viewer never showed the expected picture")
    }

    /// Waits until the viewer's pointer satisfies `until`.
    async fn cursor(&self, until: impl Fn(&RemoteCursor) -> bool) -> RemoteCursor {
        let mut cursor = self.receiver.cursor.clone();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let c = cursor.borrow_and_update().clone();
                if until(&c) {
                    return c;
                }
                cursor.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the viewer's pointer is still {:?}", self.receiver.cursor.borrow()))
    }

    async fn stop(self) {
        self.agent.link.close(lifebuoy::proto::close::CloseCode::Ended, "test done");
        let _ = self.sender.await;
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_pipeline_delivers_every_update_in_order() {
    let p = Pipeline::start(Box::new(Synthetic::new(320, 200))).await;
    let f = p.frame(|f| f.seq >= 30).await;
    // Every synthetic frame differs, so update n is the n-th frame drawn.
    let expected = Synthetic::frame_of(0, 320, 200, f.seq as u32 - 1);
    assert!(*f.image == expected, "update {} does not show frame {}", f.seq, f.seq);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_technician_switches_monitors_and_sees_the_pointer() {
    // The second monitor is the first turned upright.
    let p = Pipeline::start(Box::new(Synthetic::with_monitors(&[(320, 200), (200, 320)]))).await;
    let first = p.frame(|f| f.seq >= 3).await;
    assert_eq!((first.monitor, first.image.width, first.image.height), (0, 320, 200));
    let c = p.cursor(|c| c.shape.is_some()).await;
    assert_eq!(c.shape.as_deref(), Some(&Synthetic::cursor_shape()));
    p.monitor.send_replace(1);
    let second = p.frame(|f| f.monitor == 1 && f.complete).await;
    // A fresh frame of the other monitor, exact, and the stream goes on from there.
    assert_eq!((second.image.width, second.image.height), (200, 320));
    assert!(*second.image == Synthetic::frame_of(1, 200, 320, second.seq as u32 - 1));
    let later = p.frame(|f| f.seq >= second.seq + 5).await;
    assert!(*later.image == Synthetic::frame_of(1, 200, 320, later.seq as u32 - 1));
    let c = p.cursor(|c| c.monitor == 1 && c.visible).await;
    assert!((0..200).contains(&c.x), "pointer column {} outside monitor 1", c.x);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_pipeline_shows_the_real_screen() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let _window = xterm(&mut started, &display);
    let capture = X11Capture::open(Some(&display)).unwrap();
    let p = Pipeline::start(Box::new(capture)).await;
    let f = p.frame(|f| f.complete).await;
    // A static screen: what the viewer shows is what is on the screen now.
    let now = X11Capture::open(Some(&display)).unwrap().snapshot().unwrap();
    assert!(*f.image == now, "the viewer's picture differs from the screen");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customers_pointer_reaches_the_viewer_with_its_shape() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let window = xterm(&mut started, &display);
    let capture = X11Capture::open(Some(&display)).unwrap();
    let p = Pipeline::start(Box::new(capture)).await;
    p.frame(|f| f.complete).await;
    let xdotool = |args: &[&str]| {
        let ok = Command::new("xdotool").env("DISPLAY", &display).args(args).status().unwrap();
        assert!(ok.success(), "xdotool {args:?}");
    };
    // Over the bare root window: X's default cursor.
    xdotool(&["mousemove", "--sync", "600", "450"]);
    let root = p.cursor(|c| (c.x, c.y) == (600, 450)).await;
    assert!(root.visible);
    let root_shape = root.shape.clone().expect("a shape with the position");
    assert!(root_shape.rgba.chunks_exact(4).any(|p| p[3] == 255), "the shape has opaque pixels");
    // Over the xterm: its text cursor, a new shape, at the new place.
    xdotool(&["mousemove", "--window", &window, "--sync", "50", "40"]);
    // Shape and position travel as separate messages and either may come
    // first: what counts is that the viewer ends up with both.
    let target = (40 + 50 + 1, 30 + 40 + 1); // xterm at 40,30 with a 1-pixel border
    let over =
        p.cursor(|c| (c.x, c.y) == target && c.shape.as_ref().is_some_and(|s| s.id != root_shape.id)).await;
    assert_ne!(over.shape.as_ref().unwrap().rgba, root_shape.rgba);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_driven_capture_ends_bit_exact_after_moves_and_typing() {
    // Only damaged rectangles are fetched and compared: after windows move
    // and text is typed, the viewer must still hold exactly the screen.
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "800x600x24");
    let window = xterm(&mut started, &display);
    let capture = X11Capture::open(Some(&display)).unwrap();
    let p = Pipeline::start(Box::new(capture)).await;
    p.frame(|f| f.complete).await;
    let xdotool = |args: &[&str]| {
        let ok = Command::new("xdotool").env("DISPLAY", &display).args(args).status().unwrap();
        assert!(ok.success(), "xdotool {args:?}");
    };
    for step in 1..=6 {
        xdotool(&["windowmove", "--sync", &window, &(30 * step).to_string(), &(20 * step).to_string()]);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    xdotool(&["windowfocus", "--sync", &window]);
    xdotool(&["type", "--delay", "20", "Gruesse 123"]);
    // Let the terminal finish drawing; then the screen stays as it is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let screen = get_image(&display);
    let mut image = p.receiver.image.clone();
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if image.borrow_and_update().as_ref().is_some_and(|f| *f.image == screen) {
                return;
            }
            image.changed().await.unwrap();
        }
    })
    .await;
    assert!(settled.is_ok(), "the viewer never showed the screen as it is");
    p.stop().await;
}

/// The pixel of `image` at (`x`, `y`), as 0xRRGGBB.
fn pixel(image: &Image, x: u32, y: u32) -> u32 {
    let at = ((y * image.width + x) * 4) as usize;
    u32::from_le_bytes(image.pixels[at..at + 4].try_into().unwrap()) & 0xff_ffff
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drawing_that_keeps_to_one_place_is_never_lost() {
    // The server reports drawing only when the damage's bounding box grows.
    // A report that comes in just after a grab took the damage is for new
    // drawing: if it were taken as done, drawing inside that box would
    // never be reported again, and the viewer would keep a stale picture.
    use x11rb::protocol::xproto::{ChangeGCAux, CreateGCAux, Rectangle};
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let capture = X11Capture::open(Some(&display)).unwrap();
    let p = Pipeline::start(Box::new(capture)).await;
    p.frame(|f| f.complete).await;
    const LAST: u32 = 0xd0_4020;
    let drawer = display.clone();
    // A second of drawing in one place, in steps as a program draws.
    let drawn = std::thread::spawn(move || {
        let (conn, screen) = x11rb::connect(Some(&drawer)).unwrap();
        let root = conn.setup().roots[screen].root;
        let gc = conn.generate_id().unwrap();
        conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
        let place = [Rectangle { x: 100, y: 100, width: 200, height: 100 }];
        for round in 0..=3000u32 {
            let color = if round == 3000 { LAST } else { 0x10_1010 + (round % 200) * 0x0101 };
            conn.change_gc(gc, &ChangeGCAux::new().foreground(color)).unwrap();
            conn.poly_fill_rectangle(root, gc, &place).unwrap();
            if round % 500 == 250 {
                // Now and then something away from it: sent ahead of the
                // busy place's tiles, as an update of its own.
                let away = [Rectangle { x: 400 + (round / 10) as i16, y: 300, width: 40, height: 30 }];
                conn.poly_fill_rectangle(root, gc, &away).unwrap();
            }
            conn.get_input_focus().unwrap().reply().unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    tokio::task::spawn_blocking(move || drawn.join().unwrap()).await.unwrap();
    // Well within the second in which no check of the whole screen comes.
    let shown =
        tokio::time::timeout(Duration::from_millis(500), p.frame(|f| pixel(&f.image, 150, 150) == LAST))
            .await;
    let now = pixel(&p.receiver.image.borrow().as_ref().unwrap().image, 150, 150);
    assert!(shown.is_ok(), "the viewer still shows {now:06x}, the screen {LAST:06x}");
    let screen = get_image(&display);
    assert!(*p.frame(|_| true).await.image == screen, "the viewer's picture differs from the screen");
    p.stop().await;
}

/// A screen whose system reports no drawing at all, while band 1's rows
/// change once `change` is set.
struct Unreported {
    image: Image,
    change: Arc<std::sync::atomic::AtomicBool>,
    none: Vec<lifebuoy::proto::codec::Rect>,
    band: Vec<lifebuoy::proto::codec::Rect>,
}

impl Capture for Unreported {
    fn monitors(&self) -> Vec<lifebuoy::screen::MonitorInfo> {
        lifebuoy::screen::MonitorInfo::side_by_side(&[(self.image.width, self.image.height)], |_| {
            "test".into()
        })
    }
    fn select(&mut self, _: u8) -> Result<(), lifebuoy::screen::CaptureError> {
        Ok(())
    }
    fn grab(&mut self) -> Result<lifebuoy::screen::Grab<'_>, lifebuoy::screen::CaptureError> {
        if self.change.load(std::sync::atomic::Ordering::SeqCst) {
            let r = lifebuoy::screen::check_band(self.image.width, self.image.height, 1);
            for dy in 0..r.h {
                self.image.row_mut(r, dy).fill(0xee);
            }
        }
        Ok(lifebuoy::screen::Grab { image: &self.image, damage: Some(&self.none), first: &[] })
    }
    fn grab_checking(
        &mut self,
        band: u32,
    ) -> Result<lifebuoy::screen::Grab<'_>, lifebuoy::screen::CaptureError> {
        self.band = vec![lifebuoy::screen::check_band(self.image.width, self.image.height, band)];
        self.grab()?;
        Ok(lifebuoy::screen::Grab { image: &self.image, damage: Some(&self.band), first: &[] })
    }
    fn wait_change(&mut self, timeout: Duration) -> bool {
        std::thread::sleep(timeout);
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_system_did_not_report_reaches_the_viewer_at_the_next_check() {
    let change = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let capture = Unreported {
        image: Image { width: 256, height: 128, pixels: vec![0x40; 256 * 128 * 4] },
        change: change.clone(),
        none: Vec::new(),
        band: Vec::new(),
    };
    let p = Pipeline::start(Box::new(capture)).await;
    let first = p.frame(|f| f.complete).await;
    assert_eq!(pixel(&first.image, 0, 20), 0x40_4040);
    change.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    // Band 1 (rows 16 to 31) is the first checked, after CHECK_INTERVAL.
    let seen = p.frame(|f| pixel(&f.image, 0, 20) == 0xee_eeee).await;
    assert!(started.elapsed() < lifebuoy::screen::stream::CHECK_INTERVAL * 3);
    assert_eq!(pixel(&seen.image, 255, 31), 0xee_eeee);
    assert_eq!(pixel(&seen.image, 0, 32), 0x40_4040, "only the band was drawn");
    p.stop().await;
}
