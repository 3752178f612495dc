//! The agent's side: input messages applied to the customer's desktop
//! through enigo (XTEST on X11, on the display chosen explicitly), one
//! planned action at a time (`plan` decides what each input does).
//!
//! The injector remembers every key, button and modifier it pressed, so it
//! can release them all when the session ends, the connection drops, the
//! technician's window loses focus, or the customer turns control off: a
//! Shift or Ctrl left down on the customer's machine would make it unusable
//! after the session. Dropping the injector releases them too.

use enigo::{Coordinate, Direction, Enigo, Keyboard, Mouse, Settings};
use lifebuoy_proto::input::{Input, MouseButton};

use super::plan::{system_code, Action, Axis, Held, PlanError};
use crate::screen::MonitorInfo;

/// Why an input could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The desktop could not be reached.
    #[error("cannot control this desktop: {0}")]
    Connect(String),
    /// The system refused an event.
    #[error("the system refused an input event: {0}")]
    Refused(String),
    /// The input makes no sense here (a key or monitor this desktop lacks).
    #[error(transparent)]
    Plan(#[from] PlanError),
}

fn refused(e: impl std::fmt::Display) -> InjectError {
    InjectError::Refused(e.to_string())
}

/// Applies input to one desktop.
pub struct Injector {
    enigo: Enigo,
    keys_path: KeysPath,
    monitors: Vec<MonitorInfo>,
    held: Held,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector").field("held", &self.held).finish()
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
        Ok(Injector { keys_path: KeysPath::open(display)?, enigo, monitors, held: Held::default() })
    }

    /// Applies one input while `allowed` says yes. It is asked before each
    /// single action (a key, a wheel notch, a character), so the customer's
    /// "off" stops even a long input after the action under way.
    pub fn apply(&mut self, input: &Input, allowed: &dyn Fn() -> bool) -> Result<Applied, InjectError> {
        let plan = self.held.plan(input, &self.monitors, &system_code)?;
        for action in &plan {
            if !allowed() {
                return Ok(Applied::Blocked);
            }
            self.act(action)?;
        }
        Ok(Applied::Done)
    }

    /// Carries out one action; what it holds is remembered.
    fn act(&mut self, action: &Action) -> Result<(), InjectError> {
        match *action {
            Action::Move { x, y } => self.enigo.move_mouse(x, y, Coordinate::Abs).map_err(refused)?,
            Action::Button { button, pressed } => {
                self.enigo.button(enigo_button(button), direction(pressed)).map_err(refused)?
            }
            Action::Key { code, pressed, .. } => self.raw_key(code, pressed)?,
            Action::Scroll { axis, by } => {
                let axis = match axis {
                    Axis::Vertical => enigo::Axis::Vertical,
                    Axis::Horizontal => enigo::Axis::Horizontal,
                };
                self.enigo.scroll(by, axis).map_err(refused)?
            }
            Action::Char(c) => self.enigo.text(c.encode_utf8(&mut [0u8; 4])).map_err(refused)?,
        }
        self.held.did(action);
        Ok(())
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

    /// Releases every key, button and modifier this injector holds.
    pub fn release_all(&mut self) -> Result<(), InjectError> {
        let mut first_error = None;
        for action in self.held.release() {
            if let Err(e) = self.act(&action) {
                first_error.get_or_insert(e);
                // Not held any more as far as we can tell; never tried twice.
                self.held.did(&action);
            }
        }
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
