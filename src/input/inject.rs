//! The agent's side: input messages applied to the customer's desktop
//! through enigo (XTEST on X11, on the display chosen explicitly).
//!
//! The injector remembers every key, button and modifier it pressed, so it
//! can release them all when the session ends, the connection drops, the
//! technician's window loses focus, or the customer turns control off: a
//! Shift or Ctrl left down on the customer's machine would make it unusable
//! after the session. Dropping the injector releases them too.

use std::collections::BTreeSet;

use enigo::{Axis, Coordinate, Direction, Enigo, Keyboard, Mouse, Settings};
use lifebuoy_proto::input::{Input, Modifiers, MouseButton, WheelUnit};

use super::hid;
use crate::screen::MonitorInfo;

/// Pixels of smooth scrolling per wheel notch (X11 scrolls in notches).
pub const PIXELS_PER_NOTCH: i32 = 50;

/// Why an input could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The desktop could not be reached.
    #[error("cannot control this desktop: {0}")]
    Connect(String),
    /// The system refused an event.
    #[error("the system refused an input event: {0}")]
    Refused(String),
    /// A key this system has no code for.
    #[error("no key on this system for HID usage {0:#x}")]
    UnknownKey(u16),
    /// A monitor not in the layout.
    #[error("there is no monitor {0}")]
    NoMonitor(u8),
}

fn refused(e: impl std::fmt::Display) -> InjectError {
    InjectError::Refused(e.to_string())
}

/// The modifier bits and the key each is pressed with.
const MODIFIER_KEYS: [(u8, u16); 5] = [
    (Modifiers::SHIFT, hid::usage::LEFT_SHIFT),
    (Modifiers::CTRL, hid::usage::LEFT_CTRL),
    (Modifiers::ALT, hid::usage::LEFT_ALT),
    (Modifiers::SUPER, hid::usage::LEFT_GUI),
    (Modifiers::ALT_GR, hid::usage::RIGHT_ALT),
];

/// Applies input to one desktop.
pub struct Injector {
    enigo: Enigo,
    keys_path: KeysPath,
    monitors: Vec<MonitorInfo>,
    /// System key codes this injector holds down.
    keys: BTreeSet<u16>,
    buttons: BTreeSet<MouseButton>,
    /// Modifier bits held for the current event.
    held: u8,
    /// Smooth-scroll pixels not yet a whole notch.
    wheel: (i32, i32),
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector").field("keys", &self.keys).field("buttons", &self.buttons).finish()
    }
}

/// What became of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Done.
    Done,
    /// Dropped, or stopped part-way: the customer has not allowed control.
    Blocked,
}

/// Most wheel notches one event turns, either way: a real wheel sends one
/// to a few; a peer asking for thousands would scroll for seconds.
pub const NOTCHES_MAX: i32 = 10;

impl Injector {
    /// Controls `display` (X11, e.g. ":1"; ignored elsewhere), whose
    /// monitors are `monitors`.
    pub fn open(display: Option<&str>, monitors: Vec<MonitorInfo>) -> Result<Injector, InjectError> {
        let settings = Settings {
            x11_display: display.map(str::to_owned),
            // We release what we pressed ourselves, in order, and say so.
            release_keys_when_dropped: false,
            ..Settings::default()
        };
        #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
        let mut enigo = Enigo::new(&settings).map_err(|e| InjectError::Connect(e.to_string()))?;
        // enigo's X11 delay goes into every button event's XTEST `time`:
        // the X server would hold each click 12 ms. Its keymap keeps its own
        // copy of the delay for remapped characters in `text`.
        #[cfg(target_os = "linux")]
        enigo.set_delay(0);
        Ok(Injector {
            keys_path: KeysPath::open(display)?,
            enigo,
            monitors,
            keys: BTreeSet::new(),
            buttons: BTreeSet::new(),
            held: 0,
            wheel: (0, 0),
        })
    }

    /// Applies one input while `allowed` says yes: it is asked before the
    /// input, between wheel notches and between characters of text, so the
    /// customer's "off" stops even a long one.
    pub fn apply(&mut self, input: &Input, allowed: &dyn Fn() -> bool) -> Result<Applied, InjectError> {
        if !allowed() {
            return Ok(Applied::Blocked);
        }
        match input {
            Input::PointerMove { monitor, x, y } => {
                let m = self
                    .monitors
                    .iter()
                    .find(|m| m.id == *monitor)
                    .ok_or(InjectError::NoMonitor(*monitor))?;
                let x = m.x + i32::from(*x).min(m.width as i32 - 1);
                let y = m.y + i32::from(*y).min(m.height as i32 - 1);
                self.enigo.move_mouse(x, y, Coordinate::Abs).map_err(refused)?;
            }
            Input::Button { button, pressed, modifiers } => {
                self.hold_modifiers(modifiers.0)?;
                self.enigo.button(enigo_button(*button), direction(*pressed)).map_err(refused)?;
                if *pressed {
                    self.buttons.insert(*button);
                } else {
                    self.buttons.remove(button);
                }
            }
            Input::Wheel { dx, dy, unit, modifiers } => {
                self.hold_modifiers(modifiers.0)?;
                let (nx, ny) = self.notches(*dx, *dy, *unit);
                for (n, axis) in [(ny, Axis::Vertical), (nx, Axis::Horizontal)] {
                    for _ in 0..n.unsigned_abs() {
                        if !allowed() {
                            return Ok(Applied::Blocked);
                        }
                        self.enigo.scroll(n.signum(), axis).map_err(refused)?;
                    }
                }
            }
            Input::Key { physical, pressed, modifiers, .. } => {
                let code = system_key(*physical)?;
                if !hid::is_modifier(*physical) {
                    self.hold_modifiers(modifiers.0)?;
                }
                self.raw_key(code, *pressed)?;
                if *pressed {
                    self.keys.insert(code);
                } else {
                    self.keys.remove(&code);
                }
            }
            Input::Text { text } => {
                // Typed as characters: modifiers held for shortcuts would change them.
                self.hold_modifiers(0)?;
                let mut buf = [0u8; 4];
                for c in text.chars() {
                    if !allowed() {
                        return Ok(Applied::Blocked);
                    }
                    self.enigo.text(c.encode_utf8(&mut buf)).map_err(refused)?;
                }
            }
            Input::ReleaseAll => self.release_all()?,
        }
        Ok(Applied::Done)
    }

    /// Whole wheel notches for a wheel event, each way at most
    /// [`NOTCHES_MAX`]; smooth-scroll pixels short of a notch wait for
    /// the next event.
    fn notches(&mut self, dx: i16, dy: i16, unit: WheelUnit) -> (i32, i32) {
        let (nx, ny) = match unit {
            WheelUnit::Line => (i32::from(dx), i32::from(dy)),
            WheelUnit::Pixel => {
                let limit = NOTCHES_MAX * PIXELS_PER_NOTCH;
                self.wheel.0 = (self.wheel.0 + i32::from(dx)).clamp(-limit, limit);
                self.wheel.1 = (self.wheel.1 + i32::from(dy)).clamp(-limit, limit);
                let notches = (self.wheel.0 / PIXELS_PER_NOTCH, self.wheel.1 / PIXELS_PER_NOTCH);
                self.wheel.0 -= notches.0 * PIXELS_PER_NOTCH;
                self.wheel.1 -= notches.1 * PIXELS_PER_NOTCH;
                notches
            }
        };
        (nx.clamp(-NOTCHES_MAX, NOTCHES_MAX), ny.clamp(-NOTCHES_MAX, NOTCHES_MAX))
    }

    /// Presses or releases one key by its system code.
    fn raw_key(&mut self, code: u16, pressed: bool) -> Result<(), InjectError> {
        match &self.keys_path {
            #[cfg(target_os = "linux")]
            KeysPath::Xtest(x) => x.key(code, pressed),
            #[cfg(not(target_os = "linux"))]
            KeysPath::Enigo => self.enigo.raw(code, direction(pressed)).map_err(refused),
        }
    }

    /// Presses and releases modifier keys so that exactly `want` are held.
    fn hold_modifiers(&mut self, want: u8) -> Result<(), InjectError> {
        for (bit, usage) in MODIFIER_KEYS {
            let code = system_key(usage)?;
            if want & bit != 0 && self.held & bit == 0 {
                self.raw_key(code, true)?;
                self.held |= bit;
            } else if want & bit == 0 && self.held & bit != 0 {
                self.raw_key(code, false)?;
                self.held &= !bit;
            }
        }
        Ok(())
    }

    /// Releases every key, button and modifier this injector holds.
    pub fn release_all(&mut self) -> Result<(), InjectError> {
        let mut first_error = None;
        for code in std::mem::take(&mut self.keys).into_iter().rev() {
            if let Err(e) = self.raw_key(code, false) {
                first_error.get_or_insert(e);
            }
        }
        for button in std::mem::take(&mut self.buttons) {
            if let Err(e) = self.enigo.button(enigo_button(button), Direction::Release) {
                first_error.get_or_insert(refused(e));
            }
        }
        if let Err(e) = self.hold_modifiers(0) {
            first_error.get_or_insert(e);
        }
        self.wheel = (0, 0);
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if let Err(e) = self.release_all() {
            tracing::warn!("releasing keys at the end: {e}");
        }
    }
}

/// How keys pressed by code reach the desktop. On X11, enigo sends each
/// key with the XTEST `time` its keymap last needed for a remapped
/// character (1 ms from then on: every later key would wait in the
/// server), so keys go through a connection of our own, always at once.
/// Order with enigo's events holds: both wait for the server's reply after
/// each event, and the server answers a delayed client only after its
/// delayed events.
enum KeysPath {
    #[cfg(target_os = "linux")]
    Xtest(XtestKeys),
    #[cfg(not(target_os = "linux"))]
    Enigo,
}

impl KeysPath {
    #[cfg(target_os = "linux")]
    fn open(display: Option<&str>) -> Result<KeysPath, InjectError> {
        XtestKeys::open(display).map(KeysPath::Xtest)
    }

    #[cfg(not(target_os = "linux"))]
    fn open(_display: Option<&str>) -> Result<KeysPath, InjectError> {
        Ok(KeysPath::Enigo)
    }
}

#[cfg(target_os = "linux")]
struct XtestKeys {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
}

#[cfg(target_os = "linux")]
impl XtestKeys {
    fn open(display: Option<&str>) -> Result<XtestKeys, InjectError> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xtest::ConnectionExt as _;
        let connect = |e: &dyn std::fmt::Display| InjectError::Connect(e.to_string());
        let (conn, screen) = x11rb::connect(display).map_err(|e| connect(&e))?;
        conn.xtest_get_version(2, 2).map_err(|e| connect(&e))?.reply().map_err(|e| connect(&e))?;
        let root = conn.setup().roots[screen].root;
        Ok(XtestKeys { conn, root })
    }

    fn key(&self, code: u16, pressed: bool) -> Result<(), InjectError> {
        use x11rb::protocol::xproto::{KEY_PRESS_EVENT, KEY_RELEASE_EVENT};
        use x11rb::protocol::xtest::ConnectionExt as _;
        use x11rb::wrapper::ConnectionExt as _;
        let code = u8::try_from(code).map_err(|_| refused(format!("key code {code} is beyond X11's 255")))?;
        let kind = if pressed { KEY_PRESS_EVENT } else { KEY_RELEASE_EVENT };
        self.conn.xtest_fake_input(kind, code, 0, self.root, 0, 0, 0).map_err(refused)?;
        self.conn.sync().map_err(refused)?;
        Ok(())
    }
}

fn enigo_button(button: MouseButton) -> enigo::Button {
    match button {
        MouseButton::Left => enigo::Button::Left,
        MouseButton::Right => enigo::Button::Right,
        MouseButton::Middle => enigo::Button::Middle,
        MouseButton::Back => enigo::Button::Back,
        MouseButton::Forward => enigo::Button::Forward,
    }
}

fn direction(pressed: bool) -> Direction {
    if pressed {
        Direction::Press
    } else {
        Direction::Release
    }
}

/// The system's key code for a HID usage, as enigo's `raw` takes it: the
/// X keycode on X11 (evdev keymap), the set-1 scan code on Windows.
fn system_key(usage: u16) -> Result<u16, InjectError> {
    #[cfg(target_os = "linux")]
    let code = hid::to_evdev(usage).map(|code| code + 8);
    #[cfg(windows)]
    let code = hid::to_scancode(usage);
    // macOS virtual key codes: not yet (no macOS build here to check them on).
    #[cfg(not(any(target_os = "linux", windows)))]
    let code = None;
    code.ok_or(InjectError::UnknownKey(usage))
}
