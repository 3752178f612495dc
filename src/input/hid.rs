//! Physical keys by their USB HID usage (page 7), the one key code the
//! wire uses: egui's US-layout key names in, the agent's system key codes
//! out. Tables, no logic.

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

/// The HID usage of an egui key (egui names keys by the US layout).
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
