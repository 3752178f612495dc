//! What an input message does on the customer's desktop, without touching
//! it: each [`Input`] becomes a list of single [`Action`]s (a key down, one
//! wheel notch, one character), and [`Held`] keeps what those actions hold
//! down. The injector carries the actions out one at a time and asks the
//! customer's switch between them, so "control off" stops even a long
//! input after the action under way; whatever it stopped leaves in
//! [`Held`] is released.
//!
//! Bounds live here, where they can be tested and fuzzed: a pointer inside
//! its monitor, at most [`NOTCHES_MAX`] notches a wheel event, modifier
//! keys exactly as the event says.

use std::collections::{BTreeMap, BTreeSet};

use lifebuoy_proto::input::{Input, Modifiers, MouseButton, WheelUnit};

use super::hid;
use crate::screen::MonitorInfo;

/// Pixels of smooth scrolling per wheel notch (X11 scrolls in notches).
pub const PIXELS_PER_NOTCH: i32 = 50;
/// Most wheel notches one event turns, either way: a real wheel sends one
/// to a few; a peer asking for thousands would scroll for seconds.
pub const NOTCHES_MAX: i32 = 10;

/// The modifier bits and the key each is pressed with.
const MODIFIER_KEYS: [(u8, u16); 5] = [
    (Modifiers::SHIFT, hid::usage::LEFT_SHIFT),
    (Modifiers::CTRL, hid::usage::LEFT_CTRL),
    (Modifiers::ALT, hid::usage::LEFT_ALT),
    (Modifiers::SUPER, hid::usage::LEFT_GUI),
    (Modifiers::ALT_GR, hid::usage::RIGHT_ALT),
];

/// Which way a wheel turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Up and down.
    Vertical,
    /// Left and right.
    Horizontal,
}

/// One thing done to the desktop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The pointer to this point of the desktop.
    Move {
        /// Desktop x.
        x: i32,
        /// Desktop y.
        y: i32,
    },
    /// A mouse button down or up.
    Button {
        /// Which.
        button: MouseButton,
        /// Down.
        pressed: bool,
    },
    /// A key down or up, by the system's code for it.
    Key {
        /// The system's key code.
        code: u16,
        /// Down.
        pressed: bool,
        /// The modifier bit this key stands for, if it is one.
        modifier: u8,
    },
    /// One wheel notch (`by` is 1 or -1: down/right or up/left).
    Scroll {
        /// Which way.
        axis: Axis,
        /// One notch, either way.
        by: i32,
    },
    /// One character typed as text.
    Char(char),
}

/// Why an input cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A key this system has no code for.
    #[error("no key on this system for HID usage {0:#x}")]
    UnknownKey(u16),
    /// A monitor not in the layout.
    #[error("there is no monitor {0}")]
    NoMonitor(u8),
}

/// What the injector holds down, and the smooth-scroll pixels not yet a notch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// System key codes held by key events.
    keys: BTreeSet<u16>,
    buttons: BTreeSet<MouseButton>,
    /// Modifier bits held, with the code each was pressed with.
    modifiers: BTreeMap<u8, u16>,
    wheel: (i32, i32),
}

impl Held {
    /// The actions for `input` on a desktop of `monitors`, whose keys have
    /// the codes `code` gives (none: the system has no such key).
    pub fn plan(
        &mut self,
        input: &Input,
        monitors: &[MonitorInfo],
        code: &dyn Fn(u16) -> Option<u16>,
    ) -> Result<Vec<Action>, PlanError> {
        let mut out = Vec::new();
        match input {
            Input::PointerMove { monitor, x, y } => {
                let m = monitors.iter().find(|m| m.id == *monitor).ok_or(PlanError::NoMonitor(*monitor))?;
                let inside =
                    |at: u16, size: u32| i32::try_from(u32::from(at).min(size.max(1) - 1)).unwrap_or(0);
                out.push(Action::Move {
                    x: m.x.saturating_add(inside(*x, m.width)),
                    y: m.y.saturating_add(inside(*y, m.height)),
                });
            }
            Input::Button { button, pressed, modifiers } => {
                self.modifiers_to(modifiers.0, code, &mut out)?;
                out.push(Action::Button { button: *button, pressed: *pressed });
            }
            Input::Wheel { dx, dy, unit, modifiers } => {
                self.modifiers_to(modifiers.0, code, &mut out)?;
                let (nx, ny) = self.notches(*dx, *dy, *unit);
                for (n, axis) in [(ny, Axis::Vertical), (nx, Axis::Horizontal)] {
                    out.extend((0..n.unsigned_abs()).map(|_| Action::Scroll { axis, by: n.signum() }));
                }
            }
            Input::Key { physical, pressed, modifiers, .. } => {
                let key = code(*physical).ok_or(PlanError::UnknownKey(*physical))?;
                if !hid::is_modifier(*physical) {
                    self.modifiers_to(modifiers.0, code, &mut out)?;
                }
                out.push(Action::Key { code: key, pressed: *pressed, modifier: 0 });
            }
            Input::Text { text } => {
                // Typed as characters: modifiers held for shortcuts would change them.
                self.modifiers_to(0, code, &mut out)?;
                out.extend(text.chars().map(Action::Char));
            }
            Input::ReleaseAll => out = self.release(),
        }
        Ok(out)
    }

    /// Presses and releases modifier keys so that exactly `want` are held.
    fn modifiers_to(
        &self,
        want: u8,
        code: &dyn Fn(u16) -> Option<u16>,
        out: &mut Vec<Action>,
    ) -> Result<(), PlanError> {
        for (bit, usage) in MODIFIER_KEYS {
            let (wanted, held) = (want & bit != 0, self.modifiers.contains_key(&bit));
            if wanted != held {
                let key = code(usage).ok_or(PlanError::UnknownKey(usage))?;
                out.push(Action::Key { code: key, pressed: wanted, modifier: bit });
            }
        }
        Ok(())
    }

    /// Whole wheel notches for a wheel event, each way at most
    /// [`NOTCHES_MAX`]; smooth-scroll pixels short of a notch wait for the
    /// next event.
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

    /// An action was carried out: what it holds down is now held.
    pub fn did(&mut self, action: &Action) {
        match *action {
            Action::Key { code, pressed, modifier: 0 } => {
                if pressed {
                    self.keys.insert(code);
                } else {
                    self.keys.remove(&code);
                }
            }
            Action::Key { code, pressed, modifier } => {
                if pressed {
                    self.modifiers.insert(modifier, code);
                } else {
                    self.modifiers.remove(&modifier);
                }
            }
            Action::Button { button, pressed } => {
                if pressed {
                    self.buttons.insert(button);
                } else {
                    self.buttons.remove(&button);
                }
            }
            Action::Move { .. } | Action::Scroll { .. } | Action::Char(_) => {}
        }
    }

    /// Releasing everything held: keys (last pressed first), buttons,
    /// then modifiers. Smooth-scroll pixels are forgotten.
    pub fn release(&mut self) -> Vec<Action> {
        self.wheel = (0, 0);
        let keys = self.keys.iter().rev().map(|&code| Action::Key { code, pressed: false, modifier: 0 });
        let buttons = self.buttons.iter().map(|&button| Action::Button { button, pressed: false });
        let modifiers =
            self.modifiers.iter().map(|(&bit, &code)| Action::Key { code, pressed: false, modifier: bit });
        keys.chain(buttons).chain(modifiers).collect()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.buttons.is_empty() && self.modifiers.is_empty()
    }
}

/// The system's key code for a HID usage, as the injector takes it: the X
/// keycode on X11 (evdev keymap), the set-1 scan code on Windows.
pub fn system_code(usage: u16) -> Option<u16> {
    #[cfg(target_os = "linux")]
    let code = hid::to_evdev(usage).map(|code| code + 8);
    #[cfg(windows)]
    let code = hid::to_scancode(usage);
    // macOS virtual key codes: not yet (no macOS build here to check them on).
    #[cfg(not(any(target_os = "linux", windows)))]
    let code = {
        let _ = usage;
        None
    };
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen() -> Vec<MonitorInfo> {
        let m = |id, x, width| MonitorInfo {
            id,
            name: String::new(),
            x,
            y: 0,
            width,
            height: 600,
            primary: id == 0,
        };
        vec![m(0, 0, 800), m(1, -1280, 1280)]
    }

    fn code(usage: u16) -> Option<u16> {
        (usage != 0xffff).then_some(usage)
    }

    #[test]
    fn the_pointer_stays_inside_its_monitor() {
        let mut h = Held::default();
        let mv = |monitor, x, y| Input::PointerMove { monitor, x, y };
        assert_eq!(h.plan(&mv(0, 5000, 5000), &screen(), &code), Ok(vec![Action::Move { x: 799, y: 599 }]));
        assert_eq!(h.plan(&mv(1, 0, 0), &screen(), &code), Ok(vec![Action::Move { x: -1280, y: 0 }]));
        assert_eq!(h.plan(&mv(7, 0, 0), &screen(), &code), Err(PlanError::NoMonitor(7)));
    }

    #[test]
    fn a_wheel_event_turns_at_most_ten_notches_and_pixels_add_up() {
        let mut h = Held::default();
        let wheel = |dy, unit| Input::Wheel { dx: 0, dy, unit, modifiers: Modifiers(0) };
        let plan = h.plan(&wheel(i16::MAX, WheelUnit::Line), &screen(), &code).unwrap();
        assert_eq!(plan.len(), NOTCHES_MAX as usize);
        assert!(plan.iter().all(|a| *a == Action::Scroll { axis: Axis::Vertical, by: 1 }));
        assert!(h.plan(&wheel(30, WheelUnit::Pixel), &screen(), &code).unwrap().is_empty());
        assert_eq!(
            h.plan(&wheel(30, WheelUnit::Pixel), &screen(), &code).unwrap(),
            vec![Action::Scroll { axis: Axis::Vertical, by: 1 }]
        );
        let plan = h.plan(&wheel(i16::MIN, WheelUnit::Pixel), &screen(), &code).unwrap();
        assert_eq!(plan.len(), NOTCHES_MAX as usize, "pixels are bounded too");
    }

    #[test]
    fn modifiers_are_exactly_what_the_event_says_and_text_goes_without_them() {
        let mut h = Held::default();
        let ctrl_c = Input::Key {
            physical: 0x06,
            logical: None,
            pressed: true,
            modifiers: Modifiers(Modifiers::CTRL),
        };
        let plan = h.plan(&ctrl_c, &screen(), &code).unwrap();
        assert_eq!(
            plan,
            vec![
                Action::Key { code: hid::usage::LEFT_CTRL, pressed: true, modifier: Modifiers::CTRL },
                Action::Key { code: 0x06, pressed: true, modifier: 0 },
            ]
        );
        plan.iter().for_each(|a| h.did(a));
        let text = h.plan(&Input::Text { text: "ü€".into() }, &screen(), &code).unwrap();
        assert_eq!(
            text,
            vec![
                Action::Key { code: hid::usage::LEFT_CTRL, pressed: false, modifier: Modifiers::CTRL },
                Action::Char('ü'),
                Action::Char('€'),
            ]
        );
    }

    #[test]
    fn what_a_stopped_input_left_held_is_released() {
        let mut h = Held::default();
        let shift_a = Input::Key {
            physical: 0x04,
            logical: None,
            pressed: true,
            modifiers: Modifiers(Modifiers::SHIFT),
        };
        let plan = h.plan(&shift_a, &screen(), &code).unwrap();
        // Control went off after the first action: only Shift is down.
        h.did(&plan[0]);
        h.did(&Action::Button { button: MouseButton::Left, pressed: true });
        let release = h.release();
        assert_eq!(
            release,
            vec![
                Action::Button { button: MouseButton::Left, pressed: false },
                Action::Key { code: hid::usage::LEFT_SHIFT, pressed: false, modifier: Modifiers::SHIFT },
            ]
        );
        release.iter().for_each(|a| h.did(a));
        assert!(h.is_empty());
        assert_eq!(
            h.plan(
                &Input::Key { physical: 0xffff, logical: None, pressed: true, modifiers: Modifiers(0) },
                &screen(),
                &code
            ),
            Err(PlanError::UnknownKey(0xffff))
        );
    }
}
