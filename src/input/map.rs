//! The viewer's side: egui's input events, as the remote view receives
//! them, turned into input messages for the agent.
//!
//! Positions are scaled from where the remote image is drawn to the
//! remote monitor's pixels. Printable characters typed without Ctrl, Alt
//! or Super travel as text (the agent types the character, whatever its
//! keyboard layout, so AltGr characters and accents arrive as typed);
//! named keys and shortcuts travel as physical keys with the modifiers
//! held. Key repeats are not forwarded: the agent's system repeats a held
//! key itself. Losing focus releases everything.

use egui::{Event, Pos2, Rect as ScreenRect};
use lifebuoy_proto::input::{Input, Modifiers, MouseButton, WheelUnit, TEXT_MAX};

use super::hid;

/// Where the remote monitor is drawn in the viewer's window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewGeometry {
    /// The remote monitor's id.
    pub monitor: u8,
    /// Its size in pixels.
    pub remote: (u32, u32),
    /// Where its image is drawn, in egui points.
    pub view: ScreenRect,
}

impl ViewGeometry {
    /// The remote pixel under `pos`, or `None` outside the image.
    pub fn to_remote(&self, pos: Pos2) -> Option<(u16, u16)> {
        if !self.view.contains(pos) || self.view.width() <= 0.0 || self.view.height() <= 0.0 {
            return None;
        }
        let (w, h) = self.remote;
        let fx = (pos.x - self.view.min.x) / self.view.width();
        let fy = (pos.y - self.view.min.y) / self.view.height();
        let x =
            ((fx * w as f32).floor() as i64).clamp(0, i64::from(w.saturating_sub(1)).min(u16::MAX.into()));
        let y =
            ((fy * h as f32).floor() as i64).clamp(0, i64::from(h.saturating_sub(1)).min(u16::MAX.into()));
        Some((x as u16, y as u16))
    }
}

/// The modifier bits of egui's modifier state.
pub fn modifiers(m: egui::Modifiers) -> Modifiers {
    let mut bits = 0;
    if m.shift {
        bits |= Modifiers::SHIFT;
    }
    if m.ctrl {
        bits |= Modifiers::CTRL;
    }
    if m.alt {
        bits |= Modifiers::ALT;
    }
    if m.mac_cmd {
        bits |= Modifiers::SUPER;
    }
    Modifiers(bits)
}

/// Keys that type a character when pressed without Ctrl, Alt or Super:
/// those come through egui's text events instead.
fn types_text(key: egui::Key) -> bool {
    hid::from_egui(key).is_some_and(hid::types_text)
}

/// Maps one egui event; pushes what the agent must do to `out`.
pub fn map_event(geometry: &ViewGeometry, event: &Event, out: &mut Vec<Input>) {
    match event {
        Event::PointerMoved(pos) => {
            if let Some((x, y)) = geometry.to_remote(*pos) {
                out.push(Input::PointerMove { monitor: geometry.monitor, x, y });
            }
        }
        Event::PointerButton { pos, button, pressed, modifiers: m } => {
            let button = match button {
                egui::PointerButton::Primary => MouseButton::Left,
                egui::PointerButton::Secondary => MouseButton::Right,
                egui::PointerButton::Middle => MouseButton::Middle,
                egui::PointerButton::Extra1 => MouseButton::Back,
                egui::PointerButton::Extra2 => MouseButton::Forward,
            };
            match geometry.to_remote(*pos) {
                Some((x, y)) => {
                    // The press lands where the viewer clicked, whatever moves were coalesced.
                    out.push(Input::PointerMove { monitor: geometry.monitor, x, y });
                    out.push(Input::Button { button, pressed: *pressed, modifiers: modifiers(*m) });
                }
                // A release outside the image still releases (a drag that left it).
                None if !pressed => {
                    out.push(Input::Button { button, pressed: false, modifiers: modifiers(*m) })
                }
                None => {}
            }
        }
        Event::MouseWheel { unit, delta, modifiers: m, .. } => {
            // egui: positive moves the content right/down, i.e. scrolls
            // left/up; the wire's positive scrolls right/down.
            let (unit, scale) = match unit {
                egui::MouseWheelUnit::Point => (WheelUnit::Pixel, 1.0),
                egui::MouseWheelUnit::Line => (WheelUnit::Line, 1.0),
                egui::MouseWheelUnit::Page => (WheelUnit::Line, 10.0),
            };
            let to_i16 = |v: f32| (-v * scale).round().clamp(i16::MIN.into(), i16::MAX.into()) as i16;
            let (dx, dy) = (to_i16(delta.x), to_i16(delta.y));
            if dx != 0 || dy != 0 {
                out.push(Input::Wheel { dx, dy, unit, modifiers: modifiers(*m) });
            }
        }
        Event::Text(text) => push_text(text, out),
        Event::Key { key, physical_key, pressed, repeat, modifiers: m } => {
            if *repeat {
                return;
            }
            let command = m.ctrl || m.alt || m.mac_cmd;
            if types_text(*key) && !command {
                return;
            }
            let Some(physical) = physical_key.and_then(hid::from_egui).or_else(|| hid::from_egui(*key))
            else {
                return;
            };
            out.push(Input::Key {
                physical,
                logical: logical(*key),
                pressed: *pressed,
                modifiers: modifiers(*m),
            });
        }
        Event::WindowFocused(false) => out.push(Input::ReleaseAll),
        _ => {}
    }
}

/// The character the viewer's layout puts on a key (egui's `key` follows
/// the layout), for letters and digits: what a shortcut means to the
/// technician (Ctrl+Z on a German keyboard is the key right of T).
fn logical(key: egui::Key) -> Option<char> {
    letter_or_digit(key.name())
}

/// A name of one ASCII letter or digit, as that character in lower case.
pub(crate) fn letter_or_digit(name: &str) -> Option<char> {
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
        _ => None,
    }
}

/// Text in messages of at most TEXT_MAX bytes, control characters dropped.
pub(crate) fn push_text(text: &str, out: &mut Vec<Input>) {
    let mut chunk = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if chunk.len() + c.len_utf8() > TEXT_MAX {
            out.push(Input::Text { text: std::mem::take(&mut chunk) });
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        out.push(Input::Text { text: chunk });
    }
}

/// The toolbar's key combinations the viewer's own system would keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combo {
    /// Ctrl+Alt+Del.
    CtrlAltDel,
    /// Alt+Tab.
    AltTab,
    /// The Super (Windows) key alone.
    Super,
    /// Alt+F4.
    AltF4,
}

/// The key presses and releases of a toolbar combination.
pub fn combo(c: Combo) -> Vec<Input> {
    use hid::usage;
    let key =
        |physical, pressed, bits| Input::Key { physical, logical: None, pressed, modifiers: Modifiers(bits) };
    match c {
        Combo::CtrlAltDel => {
            let m = Modifiers::CTRL | Modifiers::ALT;
            vec![key(usage::DELETE, true, m), key(usage::DELETE, false, m)]
        }
        Combo::AltTab => vec![key(usage::TAB, true, Modifiers::ALT), key(usage::TAB, false, Modifiers::ALT)],
        Combo::AltF4 => vec![key(usage::F4, true, Modifiers::ALT), key(usage::F4, false, Modifiers::ALT)],
        Combo::Super => vec![key(usage::LEFT_GUI, true, 0), key(usage::LEFT_GUI, false, 0)],
    }
}

#[cfg(test)]
mod tests {
    use egui::{pos2, vec2, Key, PointerButton};

    use super::*;

    fn geometry() -> ViewGeometry {
        // A 1920x1080 monitor shown at half size, offset in the window.
        ViewGeometry {
            monitor: 1,
            remote: (1920, 1080),
            view: ScreenRect::from_min_size(pos2(100.0, 50.0), vec2(960.0, 540.0)),
        }
    }

    fn map(events: &[Event]) -> Vec<Input> {
        let mut out = Vec::new();
        for e in events {
            map_event(&geometry(), e, &mut out);
        }
        out
    }

    #[test]
    fn positions_scale_to_remote_pixels_and_stay_inside() {
        let g = geometry();
        assert_eq!(g.to_remote(pos2(100.0, 50.0)), Some((0, 0)));
        assert_eq!(g.to_remote(pos2(580.0, 320.0)), Some((960, 540)));
        assert_eq!(g.to_remote(pos2(1059.99, 589.99)), Some((1919, 1079)));
        assert_eq!(g.to_remote(pos2(99.0, 60.0)), None);
        let out = map(&[Event::PointerMoved(pos2(100.5, 50.5))]);
        assert_eq!(out, vec![Input::PointerMove { monitor: 1, x: 1, y: 1 }]);
    }

    #[test]
    fn a_click_moves_first_and_carries_its_modifiers() {
        let shift = egui::Modifiers { shift: true, ..Default::default() };
        let out = map(&[Event::PointerButton {
            pos: pos2(110.0, 60.0),
            button: PointerButton::Secondary,
            pressed: true,
            modifiers: shift,
        }]);
        assert_eq!(
            out,
            vec![
                Input::PointerMove { monitor: 1, x: 20, y: 20 },
                Input::Button {
                    button: MouseButton::Right,
                    pressed: true,
                    modifiers: Modifiers(Modifiers::SHIFT)
                },
            ]
        );
        // Released outside the view: still released.
        let out = map(&[Event::PointerButton {
            pos: pos2(0.0, 0.0),
            button: PointerButton::Secondary,
            pressed: false,
            modifiers: Default::default(),
        }]);
        assert_eq!(
            out,
            vec![Input::Button { button: MouseButton::Right, pressed: false, modifiers: Modifiers(0) }]
        );
    }

    #[test]
    fn printable_keys_travel_as_text_and_shortcuts_as_keys() {
        let key = |key, pressed, modifiers| Event::Key {
            key,
            physical_key: Some(key),
            pressed,
            repeat: false,
            modifiers,
        };
        let none = egui::Modifiers::default();
        let ctrl = egui::Modifiers { ctrl: true, command: true, ..Default::default() };
        let out = map(&[
            key(Key::G, true, none),
            Event::Text("Grüße, 123 € ÄÖÜ ß".into()),
            key(Key::G, false, none),
            key(Key::Enter, true, none),
            key(Key::Enter, false, none),
            key(Key::C, true, ctrl),
            key(Key::C, false, ctrl),
        ]);
        assert_eq!(
            out,
            vec![
                Input::Text { text: "Grüße, 123 € ÄÖÜ ß".into() },
                Input::Key { physical: 0x28, logical: None, pressed: true, modifiers: Modifiers(0) },
                Input::Key { physical: 0x28, logical: None, pressed: false, modifiers: Modifiers(0) },
                Input::Key {
                    physical: 0x06,
                    logical: Some('c'),
                    pressed: true,
                    modifiers: Modifiers(Modifiers::CTRL)
                },
                Input::Key {
                    physical: 0x06,
                    logical: Some('c'),
                    pressed: false,
                    modifiers: Modifiers(Modifiers::CTRL)
                },
            ]
        );
    }

    #[test]
    fn repeats_are_left_to_the_agent_and_focus_loss_releases_everything() {
        let out = map(&[
            Event::Key {
                key: Key::ArrowDown,
                physical_key: None,
                pressed: true,
                repeat: true,
                modifiers: Default::default(),
            },
            Event::WindowFocused(false),
        ]);
        assert_eq!(out, vec![Input::ReleaseAll]);
    }

    #[test]
    fn wheel_directions_and_units() {
        let wheel = |unit, delta| Event::MouseWheel {
            unit,
            delta,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
            modifiers: Default::default(),
        };
        // Content moves up = the user scrolls down.
        let out = map(&[
            wheel(egui::MouseWheelUnit::Line, vec2(0.0, -3.0)),
            wheel(egui::MouseWheelUnit::Point, vec2(24.0, 0.0)),
        ]);
        assert_eq!(
            out,
            vec![
                Input::Wheel { dx: 0, dy: 3, unit: WheelUnit::Line, modifiers: Modifiers(0) },
                Input::Wheel { dx: -24, dy: 0, unit: WheelUnit::Pixel, modifiers: Modifiers(0) },
            ]
        );
    }

    #[test]
    fn long_text_is_split_and_control_characters_dropped() {
        let text: String = "ä".repeat(200) + "\u{7}x";
        let out = map(&[Event::Text(text)]);
        assert_eq!(out.len(), 2);
        let joined: String = out
            .iter()
            .map(|i| match i {
                Input::Text { text } => {
                    assert!(text.len() <= TEXT_MAX);
                    text.clone()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(joined, "ä".repeat(200) + "x");
    }

    #[test]
    fn toolbar_combos() {
        assert_eq!(
            combo(Combo::CtrlAltDel)[0],
            Input::Key {
                physical: 0x4C,
                logical: None,
                pressed: true,
                modifiers: Modifiers(Modifiers::CTRL | Modifiers::ALT)
            }
        );
        assert_eq!(combo(Combo::Super).len(), 2);
    }
}
