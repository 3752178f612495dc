//! The technician's mouse and keyboard on the customer's desktop: input
//! messages from the viewer's sender over a real pinned QUIC session,
//! injected by the agent into a real X server (Xvfb), and checked by real
//! X clients: the server's own pointer and key state, xev for buttons and
//! wheel, and text typed into `cat` in an xterm, read back from its file.
//!
//! Needs Xvfb, xterm, xdotool and xev (`scripts/setup` installs them).

#![cfg(target_os = "linux")]

use std::process::{Command, Stdio};
use std::time::Duration;

use lifebuoy::input::{receive_input, Injector, InjectorHandle, InputSender};
use lifebuoy::proto::input::{Input, Modifiers, MouseButton, WheelUnit};
use lifebuoy::screen::MonitorInfo;
use lifebuoy::session::{IncomingStream, Session};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;

mod common;
use common::{session_pair, xvfb, Started};

const W: u32 = 800;
const H: u32 = 600;

/// A customer's desktop taking input from a technician.
struct Remote {
    started: Started,
    display: String,
    _agent: Session,
    viewer: Session,
    sender: InputSender,
    injector: InjectorHandle,
    x: x11rb::rust_connection::RustConnection,
}

async fn remote() -> Remote {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, &format!("{W}x{H}x24"));
    let (agent, viewer) = session_pair().await;
    let monitors =
        vec![MonitorInfo { id: 0, name: "screen".into(), x: 0, y: 0, width: W, height: H, primary: true }];
    let injector = InjectorHandle::start(Injector::open(Some(&display), monitors).unwrap(), true);
    {
        let (link, injector) = (agent.link.clone(), injector.clone());
        tokio::spawn(async move {
            while let Ok(stream) = link.accept().await {
                if let IncomingStream::Input(s) = stream {
                    let injector = injector.clone();
                    tokio::spawn(async move { receive_input(s, &injector).await });
                }
            }
        });
    }
    let sender = InputSender::start(viewer.link.clone(), tokio::sync::watch::channel(true).1);
    let (x, _) = x11rb::connect(Some(&display)).unwrap();
    Remote { started, display, _agent: agent, viewer, sender, injector, x }
}

impl Remote {
    fn pointer(&self) -> (i16, i16) {
        let p = self.x.query_pointer(self.x.setup().roots[0].root).unwrap().reply().unwrap();
        (p.root_x, p.root_y)
    }

    fn key_down(&self, keycode: u8) -> bool {
        let keys = self.x.query_keymap().unwrap().reply().unwrap().keys;
        keys[usize::from(keycode / 8)] & (1 << (keycode % 8)) != 0
    }

    fn send(&self, inputs: &[Input]) {
        for i in inputs {
            self.sender.send(i.clone()).unwrap();
        }
    }

    fn xdotool(&self, args: &[&str]) {
        // `search --sync` waits forever for a window that never comes: bounded.
        let ok = Command::new("timeout")
            .arg("20")
            .arg("xdotool")
            .env("DISPLAY", &self.display)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "xdotool {args:?}");
    }
}

/// Polls `check` for up to 5 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

fn key(physical: u16, pressed: bool, bits: u8) -> Input {
    Input::Key { physical, logical: None, pressed, modifiers: Modifiers(bits) }
}

/// The X keycode of the 'a' key (evdev 30 + 8).
const KEYCODE_A: u8 = 38;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_moves_land_on_the_exact_pixel() {
    let r = remote().await;
    for (x, y) in [(0, 0), (123, 456), (799, 599), (400, 1)] {
        r.send(&[Input::PointerMove { monitor: 0, x, y }]);
        eventually(&format!("pointer at {x},{y}"), || r.pointer() == (x as i16, y as i16)).await;
    }
    // Beyond the monitor: held at its edge, never outside.
    r.send(&[Input::PointerMove { monitor: 0, x: 5000, y: 5000 }]);
    eventually("pointer at the corner", || r.pointer() == (799, 599)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicks_and_wheel_reach_an_x_client() {
    let mut r = remote().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let xev = Command::new("xev")
        .env("DISPLAY", &r.display)
        .args(["-geometry", "400x300+0+0", "-event", "button"])
        .stdout(Stdio::from(log.reopen().unwrap()))
        .spawn()
        .expect("xev (scripts/setup)");
    r.started.0.push(xev);
    r.xdotool(&["search", "--sync", "--name", "Event Tester"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let none = Modifiers(0);
    let click = |button| {
        [
            Input::Button { button, pressed: true, modifiers: none },
            Input::Button { button, pressed: false, modifiers: none },
        ]
    };
    r.send(&[Input::PointerMove { monitor: 0, x: 100, y: 100 }]);
    r.send(&click(MouseButton::Left));
    r.send(&click(MouseButton::Right));
    r.send(&click(MouseButton::Middle));
    r.send(&[
        Input::Wheel { dx: 0, dy: 2, unit: WheelUnit::Line, modifiers: none },
        Input::Wheel { dx: 0, dy: -1, unit: WheelUnit::Line, modifiers: none },
        // Smooth scrolling: 120 pixels are two notches and 20 left over.
        Input::Wheel { dx: -120, dy: 0, unit: WheelUnit::Pixel, modifiers: none },
    ]);
    // X buttons: 1 left, 2 middle, 3 right, 4/5 wheel up/down, 6/7 left/right.
    let expected =
        ["button 1", "button 3", "button 2", "button 5", "button 5", "button 4", "button 6", "button 6"];
    eventually("xev saw every button", || {
        let out = std::fs::read_to_string(log.path()).unwrap();
        let presses: Vec<&str> = out
            .split("ButtonPress event")
            .skip(1)
            .filter_map(|e| e.split(", ").find(|f| f.starts_with("button ")))
            .collect();
        // Every press released too.
        presses == expected && out.matches("ButtonRelease event").count() == expected.len()
    })
    .await;
}

/// An xterm running `cat` into a file, focused; returns the file.
async fn typing_target(r: &mut Remote) -> tempfile::TempPath {
    let file = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let child = Command::new("xterm")
        .env("DISPLAY", &r.display)
        .env("LC_ALL", "C.UTF-8")
        .args(["-u8", "-geometry", "80x10+0+0", "-title", "typing-target", "-e", "sh", "-c"])
        .arg(format!("stty -echo; cat > '{}'", file.display()))
        .spawn()
        .expect("xterm (scripts/setup)");
    r.started.0.push(child);
    r.xdotool(&["search", "--sync", "--onlyvisible", "--name", "typing-target", "windowfocus", "--sync"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_text_and_shortcuts_arrive_exactly() {
    let mut r = remote().await;
    let file = typing_target(&mut r).await;
    const ENTER: u16 = 0x28;
    const A: u16 = 0x04;
    const U: u16 = 0x18;
    r.send(&[Input::Text { text: "Grüße, 123 € ÄÖÜ ß".into() }, key(ENTER, true, 0), key(ENTER, false, 0)]);
    // Shift+a is a capital A; Ctrl+U erases the line typed so far.
    r.send(&[key(A, true, Modifiers::SHIFT), key(A, false, Modifiers::SHIFT)]);
    r.send(&[Input::Text { text: "bc".into() }, key(ENTER, true, 0), key(ENTER, false, 0)]);
    r.send(&[
        Input::Text { text: "wrong".into() },
        key(U, true, Modifiers::CTRL),
        key(U, false, Modifiers::CTRL),
    ]);
    r.send(&[Input::Text { text: "right".into() }, key(ENTER, true, 0), key(ENTER, false, 0)]);
    let expected = "Grüße, 123 € ÄÖÜ ß\nAbc\nright\n";
    eventually("the typed lines in the file", || {
        std::fs::read_to_string(&file).unwrap_or_default() == expected
    })
    .await;
    // No modifier is left down afterwards.
    for keycode in [50u8, 37, 64, 133, 108] {
        assert!(!r.key_down(keycode), "keycode {keycode} still held");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_key_is_released_when_the_connection_is_killed() {
    let r = remote().await;
    r.send(&[key(0x04, true, Modifiers::SHIFT)]);
    eventually("a is down", || r.key_down(KEYCODE_A)).await;
    assert!(r.key_down(50), "Shift is held with it");
    // The technician's side goes away mid-press.
    r.viewer.link.close(lifebuoy::proto::close::CloseCode::Ended, "killed");
    eventually("a and Shift released", || !r.key_down(KEYCODE_A) && !r.key_down(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_loss_releases_everything() {
    let r = remote().await;
    r.send(&[
        Input::PointerMove { monitor: 0, x: 10, y: 10 },
        Input::Button { button: MouseButton::Left, pressed: true, modifiers: Modifiers(Modifiers::CTRL) },
        key(0x04, true, Modifiers::CTRL),
    ]);
    eventually("a is down", || r.key_down(KEYCODE_A)).await;
    assert!(r.key_down(37), "Ctrl held for the Ctrl+click and Ctrl+a");
    r.send(&[Input::ReleaseAll]);
    eventually("all released", || !r.key_down(KEYCODE_A) && !r.key_down(37)).await;
    let buttons = r.x.query_pointer(r.x.setup().roots[0].root).unwrap().reply().unwrap().mask;
    assert_eq!(u16::from(buttons) & 0x1f00, 0, "no mouse button held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_only_blocks_everything() {
    let r = remote().await;
    r.send(&[Input::PointerMove { monitor: 0, x: 50, y: 50 }]);
    eventually("pointer at 50,50", || r.pointer() == (50, 50)).await;
    r.injector.set_allowed(false);
    r.send(&[
        Input::PointerMove { monitor: 0, x: 300, y: 300 },
        Input::Button { button: MouseButton::Left, pressed: true, modifiers: Modifiers(0) },
        key(0x04, true, 0),
        Input::Text { text: "nothing".into() },
    ]);
    eventually("every input was dropped", || r.injector.blocked() >= 4).await;
    assert_eq!(r.pointer(), (50, 50), "the pointer did not move");
    assert!(!r.key_down(KEYCODE_A));
    // Control given back: input works again.
    r.injector.set_allowed(true);
    r.send(&[Input::PointerMove { monitor: 0, x: 301, y: 302 }]);
    eventually("pointer at 301,302", || r.pointer() == (301, 302)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_are_coalesced_but_clicks_and_keys_are_never_dropped_or_reordered() {
    use lifebuoy::proto::input::Input::PointerMove;
    let (agent, viewer) = session_pair().await;
    let sender = InputSender::start(viewer.link.clone(), tokio::sync::watch::channel(true).1);
    // A burst much faster than any path: 2000 moves with 40 keys among them.
    let mut sent_keys = Vec::new();
    for i in 0..2000u16 {
        sender.send(PointerMove { monitor: 0, x: i, y: i / 2 }).unwrap();
        if i % 50 == 49 {
            let k = key(0x04 + (i / 50) % 26, i % 100 == 49, 0);
            sent_keys.push(k.clone());
            sender.send(k).unwrap();
        }
    }
    sender.send(PointerMove { monitor: 0, x: 7, y: 7 }).unwrap();
    let Ok(IncomingStream::Input(mut stream)) = agent.link.accept().await else { panic!("no input stream") };
    let mut received = Vec::new();
    while received.last() != Some(&PointerMove { monitor: 0, x: 7, y: 7 }) {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.recv()).await.expect("input stalled");
        received.push(next.unwrap().expect("stream open"));
    }
    let keys: Vec<Input> = received.iter().filter(|i| !matches!(i, PointerMove { .. })).cloned().collect();
    assert_eq!(keys, sent_keys, "every key, in order");
    let moves = received.len() - keys.len();
    assert!(moves < 2000 / 4, "{moves} of 2001 moves sent: not coalesced");
    // A move never overtakes a key: the move just before the n-th key was
    // made before it (x <= 50 n + 49), the one just after it, after it.
    let mut n = 0u16;
    let mut last_x = 0u16;
    // (The last message is the final move back to 7,7.)
    for input in &received[..received.len() - 1] {
        match input {
            PointerMove { x, .. } => {
                assert!(*x >= last_x, "moves out of order");
                last_x = *x;
            }
            _ => {
                assert!(last_x <= n * 50 + 49, "a later move came before key {n}");
                n += 1;
            }
        }
    }
}

/// Input events the X server delivers to the root window, counted after a
/// mark: the test's own property change, which the server orders among
/// every client's requests.
struct RootEvents {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
}

impl RootEvents {
    fn watch(display: &str) -> RootEvents {
        use x11rb::protocol::xproto::{ChangeWindowAttributesAux, EventMask};
        let (conn, screen) = x11rb::connect(Some(display)).unwrap();
        let root = conn.setup().roots[screen].root;
        let mask = EventMask::KEY_PRESS
            | EventMask::KEY_RELEASE
            | EventMask::BUTTON_PRESS
            | EventMask::BUTTON_RELEASE
            | EventMask::POINTER_MOTION
            | EventMask::PROPERTY_CHANGE;
        conn.change_window_attributes(root, &ChangeWindowAttributesAux::new().event_mask(mask))
            .unwrap()
            .check()
            .unwrap();
        RootEvents { conn, root }
    }

    /// Puts the mark in the server's order of events.
    fn mark(&self) {
        use x11rb::protocol::xproto::{AtomEnum, PropMode};
        use x11rb::wrapper::ConnectionExt as _;
        self.conn
            .change_property8(PropMode::REPLACE, self.root, AtomEnum::WM_NAME, AtomEnum::STRING, b"mark")
            .unwrap();
        self.conn.flush().unwrap();
    }

    /// Input events after the mark, read for `window`; panics without the mark.
    fn after_mark(&self, window: Duration) -> Vec<String> {
        use x11rb::protocol::Event;
        let deadline = std::time::Instant::now() + window;
        let (mut marked, mut after) = (false, Vec::new());
        while std::time::Instant::now() < deadline {
            match self.conn.poll_for_event().unwrap() {
                Some(Event::PropertyNotify(_)) => marked = true,
                Some(
                    e @ (Event::KeyPress(_)
                    | Event::KeyRelease(_)
                    | Event::ButtonPress(_)
                    | Event::ButtonRelease(_)
                    | Event::MotionNotify(_)),
                ) => {
                    if marked {
                        after.push(format!("{e:?}").chars().take(60).collect());
                    }
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        assert!(marked, "the mark never came back");
        after
    }

    /// Events of any kind seen within `window` (the flood reaching the server).
    fn count(&self, window: Duration) -> usize {
        let deadline = std::time::Instant::now() + window;
        let mut n = 0;
        while std::time::Instant::now() < deadline {
            match self.conn.poll_for_event().unwrap() {
                Some(_) => n += 1,
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        n
    }
}

/// A technician's viewer that floods: text, wheel turns of the largest
/// size and moves, as fast as the stream takes them. The customer switches
/// control off in the middle: from then on nothing more reaches the X
/// server, though the flood goes on and thousands of events were queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_off_stops_a_flood_before_its_next_event() {
    let r = remote().await;
    let events = RootEvents::watch(&r.display);
    let mut stream = r.viewer.link.open::<Input>().await.unwrap();
    let flood = tokio::spawn(async move {
        for i in 0u32.. {
            let input = match i % 3 {
                0 => Input::Text { text: "abcdefghij".repeat(25) },
                1 => Input::Wheel { dx: 0, dy: i16::MAX, unit: WheelUnit::Line, modifiers: Modifiers(0) },
                _ => Input::PointerMove { monitor: 0, x: (i % 700) as u16, y: (i % 500) as u16 },
            };
            if stream.queue(&input).is_err() || stream.flush().await.is_err() {
                return;
            }
        }
    });
    // The flood reaches the desktop ...
    assert!(events.count(Duration::from_millis(700)) > 50, "the flood does not reach the X server");
    // ... until the customer's "off".
    r.injector.set_allowed(false);
    events.mark();
    let after = events.after_mark(Duration::from_millis(1500));
    // The one event being applied when the switch turned may finish: one
    // character (with Shift: four key events) or one wheel notch.
    let first: Vec<&String> = after.iter().take(6).collect();
    assert!(after.len() <= 4, "{} input events after control went off, first {first:?}", after.len());
    assert!(!flood.is_finished(), "the flood is still going");
    flood.abort();
}

/// One wheel event scrolls a few notches at most, however large it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wheel_event_is_bounded() {
    let r = remote().await;
    let events = RootEvents::watch(&r.display);
    events.mark();
    r.send(&[Input::Wheel { dx: 0, dy: i16::MAX, unit: WheelUnit::Line, modifiers: Modifiers(0) }]);
    let after = events.after_mark(Duration::from_millis(1500));
    let presses = after.iter().filter(|e| e.starts_with("ButtonPress")).count();
    assert_eq!(presses, lifebuoy::input::plan::NOTCHES_MAX as usize, "{after:?}");
}
