//! Physical keys by their USB HID usage (page 7), the one key code the
//! wire uses: the window system's key positions (winit's, and egui's
//! US-layout key names) in, the agent's system key codes out. Tables, no
//! logic.

/// HID usages of the modifier keys, 0xE0..=0xE7.
pub mod usage {
    /// Left Control.
    pub const LEFT_CTRL: u16 = 0xE0;
    /// Left Shift.
    pub const LEFT_SHIFT: u16 = 0xE1;
    /// Left Alt.
    pub const LEFT_ALT: u16 = 0xE2;
    /// Left GUI (Windows key, Command, Super).
    pub const LEFT_GUI: u16 = 0xE3;
    /// Right Control.
    pub const RIGHT_CTRL: u16 = 0xE4;
    /// Right Shift.
    pub const RIGHT_SHIFT: u16 = 0xE5;
    /// Right Alt (AltGr on many layouts).
    pub const RIGHT_ALT: u16 = 0xE6;
    /// Right GUI.
    pub const RIGHT_GUI: u16 = 0xE7;
    /// Tab.
    pub const TAB: u16 = 0x2B;
    /// Delete (forward).
    pub const DELETE: u16 = 0x4C;
    /// Escape.
    pub const ESCAPE: u16 = 0x29;
    /// Enter.
    pub const ENTER: u16 = 0x28;
    /// F4.
    pub const F4: u16 = 0x3D;
}

/// Whether `usage` is one of the eight modifier keys.
pub fn is_modifier(usage: u16) -> bool {
    (0xE0..=0xE7).contains(&usage)
}

/// Whether `usage` is a position that types a character on every layout
/// (letters, digits, space, punctuation, the key beside left Shift): typed
/// without Ctrl, Alt or Super it travels as its text, never as a key (with
/// no text it is a dead key).
pub fn types_text(usage: u16) -> bool {
    matches!(usage, 0x04..=0x27 | 0x2C..=0x38 | 0x64)
}

/// The HID usage of an egui key (egui names keys by the US layout).
#[cfg(feature = "desktop")]
pub fn from_egui(key: egui::Key) -> Option<u16> {
    use egui::Key as K;
    let letters = [
        K::A,
        K::B,
        K::C,
        K::D,
        K::E,
        K::F,
        K::G,
        K::H,
        K::I,
        K::J,
        K::K,
        K::L,
        K::M,
        K::N,
        K::O,
        K::P,
        K::Q,
        K::R,
        K::S,
        K::T,
        K::U,
        K::V,
        K::W,
        K::X,
        K::Y,
        K::Z,
    ];
    if let Some(i) = letters.iter().position(|&k| k == key) {
        return Some(0x04 + i as u16);
    }
    let digits = [K::Num1, K::Num2, K::Num3, K::Num4, K::Num5, K::Num6, K::Num7, K::Num8, K::Num9, K::Num0];
    if let Some(i) = digits.iter().position(|&k| k == key) {
        return Some(0x1E + i as u16);
    }
    let f = [K::F1, K::F2, K::F3, K::F4, K::F5, K::F6, K::F7, K::F8, K::F9, K::F10, K::F11, K::F12];
    if let Some(i) = f.iter().position(|&k| k == key) {
        return Some(0x3A + i as u16);
    }
    let f13 =
        [K::F13, K::F14, K::F15, K::F16, K::F17, K::F18, K::F19, K::F20, K::F21, K::F22, K::F23, K::F24];
    if let Some(i) = f13.iter().position(|&k| k == key) {
        return Some(0x68 + i as u16);
    }
    Some(match key {
        K::Enter => 0x28,
        K::Escape => 0x29,
        K::Backspace => 0x2A,
        K::Tab => 0x2B,
        K::Space => 0x2C,
        K::Minus => 0x2D,
        K::Equals | K::Plus => 0x2E,
        K::OpenBracket | K::OpenCurlyBracket => 0x2F,
        K::CloseBracket | K::CloseCurlyBracket => 0x30,
        K::Backslash | K::Pipe => 0x31,
        K::Semicolon | K::Colon => 0x33,
        K::Quote => 0x34,
        K::Backtick => 0x35,
        K::Comma => 0x36,
        K::Period => 0x37,
        K::Slash | K::Questionmark => 0x38,
        K::Insert => 0x49,
        K::Home => 0x4A,
        K::PageUp => 0x4B,
        K::Delete => 0x4C,
        K::End => 0x4D,
        K::PageDown => 0x4E,
        K::ArrowRight => 0x4F,
        K::ArrowLeft => 0x50,
        K::ArrowDown => 0x51,
        K::ArrowUp => 0x52,
        _ => return None,
    })
}

/// The HID usage of a key position as winit reports it (W3C `code`
/// names, which were taken from HID): every key the agent can press.
#[cfg(feature = "desktop")]
pub fn from_winit(code: winit::keyboard::KeyCode) -> Option<u16> {
    use winit::keyboard::KeyCode as C;
    const LETTERS: [C; 26] = [
        C::KeyA,
        C::KeyB,
        C::KeyC,
        C::KeyD,
        C::KeyE,
        C::KeyF,
        C::KeyG,
        C::KeyH,
        C::KeyI,
        C::KeyJ,
        C::KeyK,
        C::KeyL,
        C::KeyM,
        C::KeyN,
        C::KeyO,
        C::KeyP,
        C::KeyQ,
        C::KeyR,
        C::KeyS,
        C::KeyT,
        C::KeyU,
        C::KeyV,
        C::KeyW,
        C::KeyX,
        C::KeyY,
        C::KeyZ,
    ];
    const DIGITS: [C; 10] = [
        C::Digit1,
        C::Digit2,
        C::Digit3,
        C::Digit4,
        C::Digit5,
        C::Digit6,
        C::Digit7,
        C::Digit8,
        C::Digit9,
        C::Digit0,
    ];
    const F1_TO_F24: [C; 24] = [
        C::F1,
        C::F2,
        C::F3,
        C::F4,
        C::F5,
        C::F6,
        C::F7,
        C::F8,
        C::F9,
        C::F10,
        C::F11,
        C::F12,
        C::F13,
        C::F14,
        C::F15,
        C::F16,
        C::F17,
        C::F18,
        C::F19,
        C::F20,
        C::F21,
        C::F22,
        C::F23,
        C::F24,
    ];
    const KEYPAD_1_TO_0: [C; 10] = [
        C::Numpad1,
        C::Numpad2,
        C::Numpad3,
        C::Numpad4,
        C::Numpad5,
        C::Numpad6,
        C::Numpad7,
        C::Numpad8,
        C::Numpad9,
        C::Numpad0,
    ];
    let at = |table: &[C]| table.iter().position(|&c| c == code).map(|i| i as u16);
    if let Some(i) = at(&LETTERS) {
        return Some(0x04 + i);
    }
    if let Some(i) = at(&DIGITS) {
        return Some(0x1E + i);
    }
    if let Some(i) = at(&F1_TO_F24) {
        return Some(if i < 12 { 0x3A + i } else { 0x68 + i - 12 });
    }
    if let Some(i) = at(&KEYPAD_1_TO_0) {
        return Some(0x59 + i);
    }
    Some(match code {
        C::Enter => 0x28,
        C::Escape => 0x29,
        C::Backspace => 0x2A,
        C::Tab => 0x2B,
        C::Space => 0x2C,
        C::Minus => 0x2D,
        C::Equal => 0x2E,
        C::BracketLeft => 0x2F,
        C::BracketRight => 0x30,
        C::Backslash => 0x31,
        C::Semicolon => 0x33,
        C::Quote => 0x34,
        C::Backquote => 0x35,
        C::Comma => 0x36,
        C::Period => 0x37,
        C::Slash => 0x38,
        C::CapsLock => 0x39,
        C::PrintScreen => 0x46,
        C::ScrollLock => 0x47,
        C::Pause => 0x48,
        C::Insert => 0x49,
        C::Home => 0x4A,
        C::PageUp => 0x4B,
        C::Delete => 0x4C,
        C::End => 0x4D,
        C::PageDown => 0x4E,
        C::ArrowRight => 0x4F,
        C::ArrowLeft => 0x50,
        C::ArrowDown => 0x51,
        C::ArrowUp => 0x52,
        C::NumLock => 0x53,
        C::NumpadDivide => 0x54,
        C::NumpadMultiply => 0x55,
        C::NumpadSubtract => 0x56,
        C::NumpadAdd => 0x57,
        C::NumpadEnter => 0x58,
        C::NumpadDecimal => 0x63,
        C::IntlBackslash => 0x64,
        C::ContextMenu => 0x65,
        C::ControlLeft => usage::LEFT_CTRL,
        C::ShiftLeft => usage::LEFT_SHIFT,
        C::AltLeft => usage::LEFT_ALT,
        C::SuperLeft => usage::LEFT_GUI,
        C::ControlRight => usage::RIGHT_CTRL,
        C::ShiftRight => usage::RIGHT_SHIFT,
        C::AltRight => usage::RIGHT_ALT,
        C::SuperRight => usage::RIGHT_GUI,
        _ => return None,
    })
}

/// Linux input event code (`KEY_*`) of a HID usage; X servers using the
/// evdev keymap (Xorg, Xvfb) give key `code + 8` that X keycode.
pub fn to_evdev(usage: u16) -> Option<u16> {
    const LETTERS: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17, 45, 21,
        44,
    ];
    const KEYPAD_1_TO_9: [u16; 9] = [79, 80, 81, 75, 76, 77, 71, 72, 73];
    Some(match usage {
        0x04..=0x1D => LETTERS[usize::from(usage - 0x04)],
        0x1E..=0x27 => usage - 0x1E + 2,  // 1..9, 0: KEY_1 = 2 .. KEY_0 = 11
        0x28 => 28,                       // Enter
        0x29 => 1,                        // Escape
        0x2A => 14,                       // Backspace
        0x2B => 15,                       // Tab
        0x2C => 57,                       // Space
        0x2D => 12,                       // Minus
        0x2E => 13,                       // Equal
        0x2F => 26,                       // [
        0x30 => 27,                       // ]
        0x31 | 0x32 => 43,                // Backslash, non-US #
        0x33 => 39,                       // ;
        0x34 => 40,                       // '
        0x35 => 41,                       // `
        0x36 => 51,                       // ,
        0x37 => 52,                       // .
        0x38 => 53,                       // /
        0x39 => 58,                       // Caps Lock
        0x3A..=0x43 => usage - 0x3A + 59, // F1..F10
        0x44 => 87,                       // F11
        0x45 => 88,                       // F12
        0x46 => 99,                       // Print Screen (SysRq)
        0x47 => 70,                       // Scroll Lock
        0x48 => 119,                      // Pause
        0x49 => 110,                      // Insert
        0x4A => 102,                      // Home
        0x4B => 104,                      // Page Up
        0x4C => 111,                      // Delete
        0x4D => 107,                      // End
        0x4E => 109,                      // Page Down
        0x4F => 106,                      // Right
        0x50 => 105,                      // Left
        0x51 => 108,                      // Down
        0x52 => 103,                      // Up
        0x53 => 69,                       // Num Lock
        0x54 => 98,                       // Keypad /
        0x55 => 55,                       // Keypad *
        0x56 => 74,                       // Keypad -
        0x57 => 78,                       // Keypad +
        0x58 => 96,                       // Keypad Enter
        0x59..=0x61 => KEYPAD_1_TO_9[usize::from(usage - 0x59)],
        0x62 => 82,                        // Keypad 0
        0x63 => 83,                        // Keypad .
        0x64 => 86,                        // the key between left Shift and Z (<>|)
        0x65 => 127,                       // Menu (Compose)
        0x68..=0x73 => usage - 0x68 + 183, // F13..F24
        0xE0 => 29,                        // Left Ctrl
        0xE1 => 42,                        // Left Shift
        0xE2 => 56,                        // Left Alt
        0xE3 => 125,                       // Left Super
        0xE4 => 97,                        // Right Ctrl
        0xE5 => 54,                        // Right Shift
        0xE6 => 100,                       // Right Alt
        0xE7 => 126,                       // Right Super
        _ => return None,
    })
}

/// The PC (set 1) scan code of a HID usage, as Windows takes it; keys
/// with the 0xE0 prefix as 0xE0xx. Linux took its key codes from set 1, so
/// below 89 the two agree; the rest is the extended block.
pub fn to_scancode(usage: u16) -> Option<u16> {
    let code = to_evdev(usage)?;
    if code < 89 {
        return Some(code);
    }
    Some(match code {
        96 => 0xE01C,                     // Keypad Enter
        97 => 0xE01D,                     // Right Ctrl
        98 => 0xE035,                     // Keypad /
        99 => 0xE037,                     // Print Screen
        100 => 0xE038,                    // Right Alt
        102 => 0xE047,                    // Home
        103 => 0xE048,                    // Up
        104 => 0xE049,                    // Page Up
        105 => 0xE04B,                    // Left
        106 => 0xE04D,                    // Right
        107 => 0xE04F,                    // End
        108 => 0xE050,                    // Down
        109 => 0xE051,                    // Page Down
        110 => 0xE052,                    // Insert
        111 => 0xE053,                    // Delete
        119 => 0x45,   // Pause (its real sequence is E1 1D 45; Windows maps 0x45 with Ctrl)
        125 => 0xE05B, // Left Windows
        126 => 0xE05C, // Right Windows
        127 => 0xE05D, // Menu
        183..=193 => 0x64 + (code - 183), // F13..F23
        194 => 0x76,   // F24
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_egui_key_we_name_has_an_evdev_code_and_they_differ() {
        let keys = [
            egui::Key::A,
            egui::Key::Z,
            egui::Key::Num0,
            egui::Key::Num9,
            egui::Key::F1,
            egui::Key::F12,
            egui::Key::Enter,
            egui::Key::Escape,
            egui::Key::ArrowUp,
            egui::Key::Delete,
            egui::Key::Space,
        ];
        let mut codes: Vec<u16> = keys.iter().map(|&k| to_evdev(from_egui(k).unwrap()).unwrap()).collect();
        // Known anchors from linux/input-event-codes.h.
        assert_eq!(&codes[..4], &[30, 44, 11, 10]);
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), keys.len());
    }

    #[test]
    fn winit_positions_agree_with_egui_names_and_each_has_its_own_system_code() {
        use egui::Key as K;
        use winit::keyboard::KeyCode as C;
        let both = [
            (C::KeyA, K::A),
            (C::KeyZ, K::Z),
            (C::Digit1, K::Num1),
            (C::Digit0, K::Num0),
            (C::F1, K::F1),
            (C::F12, K::F12),
            (C::F13, K::F13),
            (C::F24, K::F24),
            (C::Enter, K::Enter),
            (C::Backquote, K::Backtick),
            (C::Slash, K::Slash),
            (C::ArrowUp, K::ArrowUp),
            (C::PageDown, K::PageDown),
        ];
        for (code, key) in both {
            assert_eq!(from_winit(code), from_egui(key), "{code:?}");
        }
        // Keys egui has no name for: the German <> key, the keypad, locks.
        let winit_only = [
            C::IntlBackslash,
            C::CapsLock,
            C::NumpadEnter,
            C::Numpad0,
            C::Numpad9,
            C::NumpadDecimal,
            C::PrintScreen,
            C::ContextMenu,
            C::ShiftLeft,
            C::AltRight,
            C::SuperRight,
        ];
        let mut codes = Vec::new();
        for code in both.map(|(c, _)| c).into_iter().chain(winit_only) {
            let usage = from_winit(code).unwrap();
            codes.push(to_evdev(usage).unwrap_or_else(|| panic!("{code:?}")));
            assert!(to_scancode(usage).is_some(), "{code:?}");
        }
        // linux/input-event-codes.h: KEY_102ND, KEY_KPENTER, KEY_RIGHTALT.
        assert_eq!(&codes[13..16], &[86, 58, 96]);
        assert_eq!(to_evdev(from_winit(C::AltRight).unwrap()), Some(100));
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n, "two positions share a key");
        assert_eq!(from_winit(C::MediaPlayPause), None);
    }

    #[test]
    fn scan_codes_of_well_known_keys() {
        assert_eq!(to_scancode(0x04), Some(0x1E)); // A
        assert_eq!(to_scancode(0x28), Some(0x1C)); // Enter
        assert_eq!(to_scancode(0x44), Some(0x57)); // F11
        assert_eq!(to_scancode(usage::DELETE), Some(0xE053));
        assert_eq!(to_scancode(usage::LEFT_GUI), Some(0xE05B));
        assert_eq!(to_scancode(0x50), Some(0xE04B)); // Left arrow
    }

    #[test]
    fn modifiers_are_recognised() {
        assert!(is_modifier(usage::LEFT_SHIFT) && is_modifier(usage::RIGHT_GUI));
        assert!(!is_modifier(usage::TAB));
        assert_eq!(to_evdev(usage::LEFT_CTRL), Some(29));
    }
}
