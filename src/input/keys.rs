//! The viewer's keys as the window system reports them (winit's key
//! events), for the remote view that takes them before egui does.
//!
//! The rules are `map`'s for egui's events: a printable character typed
//! without Ctrl, Alt or Super travels as text; every other key as its
//! physical position with the modifiers held; the modifier keys only as
//! those bits; repeats not at all (the agent's system repeats a held key).
//! A key whose press went as text sends no release. A dead key types
//! nothing of its own: the character it makes comes with the next key.

use std::collections::HashSet;

use lifebuoy_proto::input::{Input, Modifiers};
use winit::keyboard::{Key, KeyCode, ModifiersState};

use super::{hid, map};

/// One key event, the parts of winit's `KeyEvent` that matter here.
#[derive(Clone, Copy, Debug)]
pub struct KeyPress<'a> {
    /// The key's position (`None`: one winit cannot name).
    pub code: Option<KeyCode>,
    /// What the technician's layout puts on it.
    pub logical: &'a Key,
    /// The text it types, if any.
    pub text: Option<&'a str>,
    /// Pressed or released.
    pub pressed: bool,
    /// A repeat of a key held down.
    pub repeat: bool,
}

/// Turns key events into inputs; remembers which keys went as text.
#[derive(Debug, Default)]
pub struct KeyMapper {
    typed: HashSet<KeyCode>,
}

impl KeyMapper {
    /// Maps one event; pushes what the agent must do to `out`.
    pub fn map(&mut self, key: KeyPress<'_>, held: ModifiersState, out: &mut Vec<Input>) {
        let Some(code) = key.code else { return };
        let Some(physical) = hid::from_winit(code) else { return };
        if key.repeat || hid::is_modifier(physical) {
            return;
        }
        let command = held.control_key() || held.alt_key() || held.super_key();
        if key.pressed {
            // A new press decides afresh (the last release may have gone to egui).
            self.typed.remove(&code);
            let text = key.text.filter(|t| !t.is_empty() && t.chars().all(printable));
            if !command && (text.is_some() || hid::types_text(physical)) {
                self.typed.insert(code);
                if let Some(text) = text {
                    map::push_text(text, out);
                }
                return;
            }
        } else if self.typed.remove(&code) {
            return;
        }
        out.push(Input::Key {
            physical,
            logical: logical(key.logical),
            pressed: key.pressed,
            modifiers: bits(held),
        });
    }
}

/// Not a control character, nor one from the private use areas (macOS
/// reports its function keys there).
fn printable(c: char) -> bool {
    !c.is_control()
        && !('\u{e000}'..='\u{f8ff}').contains(&c)
        && !('\u{f0000}'..='\u{ffffd}').contains(&c)
        && !('\u{100000}'..='\u{10fffd}').contains(&c)
}

/// The letter or digit the layout puts on the key (what a shortcut means).
fn logical(key: &Key) -> Option<char> {
    let Key::Character(s) = key else { return None };
    map::letter_or_digit(s)
}

fn bits(held: ModifiersState) -> Modifiers {
    let mut bits = 0;
    for (on, bit) in [
        (held.shift_key(), Modifiers::SHIFT),
        (held.control_key(), Modifiers::CTRL),
        (held.alt_key(), Modifiers::ALT),
        (held.super_key(), Modifiers::SUPER),
    ] {
        if on {
            bits |= bit;
        }
    }
    Modifiers(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use winit::keyboard::NamedKey;

    /// Presses and releases `code`; returns what went out.
    fn tap(
        m: &mut KeyMapper,
        code: KeyCode,
        logical: Key,
        text: Option<&str>,
        held: ModifiersState,
    ) -> Vec<Input> {
        let mut out = Vec::new();
        for pressed in [true, false] {
            // Linux reports the text on the release too.
            m.map(
                KeyPress { code: Some(code), logical: &logical, text, pressed, repeat: false },
                held,
                &mut out,
            );
        }
        out
    }

    fn key(physical: u16, logical: Option<char>, pressed: bool, bits: u8) -> Input {
        Input::Key { physical, logical, pressed, modifiers: Modifiers(bits) }
    }

    fn ch(s: &str) -> Key {
        Key::Character(s.into())
    }

    const NONE: ModifiersState = ModifiersState::empty();

    #[test]
    fn characters_travel_as_text_whatever_the_layout() {
        let mut m = KeyMapper::default();
        // A German keyboard: ü, and Shift+a, and AltGr+q (AltGr is not Alt).
        let mut out = tap(&mut m, KeyCode::BracketLeft, ch("ü"), Some("ü"), NONE);
        out.extend(tap(&mut m, KeyCode::KeyA, ch("A"), Some("A"), ModifiersState::SHIFT));
        out.extend(tap(&mut m, KeyCode::KeyQ, ch("@"), Some("@"), NONE));
        out.extend(tap(&mut m, KeyCode::Space, ch(" "), Some(" "), NONE));
        let text: Vec<Input> = ["ü", "A", "@", " "].map(|t| Input::Text { text: t.into() }).into();
        assert_eq!(out, text);
    }

    #[test]
    fn shortcuts_and_named_keys_travel_as_keys_with_their_modifiers() {
        let mut m = KeyMapper::default();
        // Ctrl+C: egui would keep it as its own copy; the customer gets it.
        let out = tap(&mut m, KeyCode::KeyC, ch("c"), Some("\u{3}"), ModifiersState::CONTROL);
        assert_eq!(
            out,
            [key(0x06, Some('c'), true, Modifiers::CTRL), key(0x06, Some('c'), false, Modifiers::CTRL)]
        );
        // Ctrl+Z on a German keyboard: the key right of T, which says z.
        let out = tap(&mut m, KeyCode::KeyY, ch("z"), None, ModifiersState::CONTROL);
        assert_eq!(out[0], key(0x1C, Some('z'), true, Modifiers::CTRL));
        // Enter's text is a control character: a key.
        let out = tap(&mut m, KeyCode::Enter, Key::Named(NamedKey::Enter), Some("\r"), NONE);
        assert_eq!(out, [key(0x28, None, true, 0), key(0x28, None, false, 0)]);
        // The keypad with Num Lock off types nothing: the key itself.
        let out = tap(&mut m, KeyCode::Numpad1, Key::Named(NamedKey::End), None, NONE);
        assert_eq!(out, [key(0x59, None, true, 0), key(0x59, None, false, 0)]);
        // The F keys, and macOS's private-use text for them.
        let out = tap(&mut m, KeyCode::F5, Key::Named(NamedKey::F5), Some("\u{f708}"), NONE);
        assert_eq!(out[0], key(0x3E, None, true, 0));
    }

    #[test]
    fn modifier_keys_repeats_and_dead_keys_send_nothing_of_their_own() {
        let mut m = KeyMapper::default();
        let mut out =
            tap(&mut m, KeyCode::ShiftLeft, Key::Named(NamedKey::Shift), None, ModifiersState::SHIFT);
        out.extend(tap(&mut m, KeyCode::AltRight, Key::Named(NamedKey::AltGraph), None, NONE));
        // The dead ^ of a German keyboard, then a: the layout makes â.
        out.extend(tap(&mut m, KeyCode::Backquote, Key::Dead(Some('^')), None, NONE));
        out.extend(tap(&mut m, KeyCode::KeyA, ch("â"), Some("â"), NONE));
        let logical = ch("x");
        let repeat = KeyPress {
            code: Some(KeyCode::KeyX),
            logical: &logical,
            text: Some("x"),
            pressed: true,
            repeat: true,
        };
        m.map(repeat, NONE, &mut out);
        let unknown = KeyPress { code: Some(KeyCode::MediaPlayPause), repeat: false, ..repeat };
        m.map(unknown, NONE, &mut out);
        assert_eq!(out, [Input::Text { text: "â".into() }]);
    }

    #[test]
    fn a_release_matches_how_the_press_went() {
        let mut m = KeyMapper::default();
        let c = ch("c");
        let press = KeyPress {
            code: Some(KeyCode::KeyC),
            logical: &c,
            text: Some("c"),
            pressed: true,
            repeat: false,
        };
        let release = KeyPress { text: None, pressed: false, ..press };
        let mut out = Vec::new();
        // Pressed as text, released with Ctrl held: no release of a key never pressed.
        m.map(press, NONE, &mut out);
        m.map(release, ModifiersState::CONTROL, &mut out);
        assert_eq!(out, [Input::Text { text: "c".into() }]);
        // A text press whose release went to egui (the view lost the keyboard
        // between them) does not swallow the release of the next Ctrl+C.
        out.clear();
        m.map(press, NONE, &mut out);
        m.map(press, ModifiersState::CONTROL, &mut out);
        m.map(release, ModifiersState::CONTROL, &mut out);
        let ctrl_c = |pressed| key(0x06, Some('c'), pressed, Modifiers::CTRL);
        assert_eq!(out, [Input::Text { text: "c".into() }, ctrl_c(true), ctrl_c(false)]);
    }
}
