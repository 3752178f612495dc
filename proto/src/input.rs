//! Input stream messages, viewer to agent, on one ordered stream so clicks
//! and keys arrive in the order they were made.

use serde::{Deserialize, Serialize};

use crate::message::Message;
use crate::text::{check_label, InvalidField};
use crate::StreamKind;

/// Longest text event, in UTF-8 bytes.
pub const TEXT_MAX: usize = 256;

/// A message on the input stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Input {
    /// Absolute pointer position on a monitor, in its pixels.
    PointerMove {
        /// Monitor id.
        monitor: u8,
        /// Column.
        x: u16,
        /// Row.
        y: u16,
    },
    /// A mouse button went down or up.
    Button {
        /// Which button.
        button: MouseButton,
        /// Down (true) or up.
        pressed: bool,
        /// Modifiers held (Shift+click, Ctrl+click): the agent holds
        /// exactly these while it clicks.
        modifiers: Modifiers,
    },
    /// Wheel or touchpad scrolling; positive is right and down.
    Wheel {
        /// Horizontal amount.
        dx: i16,
        /// Vertical amount.
        dy: i16,
        /// What the amounts count.
        unit: WheelUnit,
        /// Modifiers held (Ctrl+wheel zooms).
        modifiers: Modifiers,
    },
    /// A key went down or up.
    Key {
        /// USB HID usage (page 7) of the physical key.
        physical: u16,
        /// The character the viewer's layout gives it, if any.
        logical: Option<char>,
        /// Down (true) or up.
        pressed: bool,
        /// Modifiers held with it: the agent holds exactly these while it
        /// presses the key. A modifier key itself (HID 0xE0..=0xE7) is
        /// pressed as a key.
        modifiers: Modifiers,
    },
    /// Printable text to type as characters, whatever the agent's layout
    /// (the agent releases the modifiers it holds first).
    Text {
        /// At most [`TEXT_MAX`] bytes, no control characters.
        text: String,
    },
    /// Release every key and button the viewer holds (focus lost).
    ReleaseAll,
}

/// Mouse buttons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MouseButton {
    /// Primary.
    Left,
    /// Secondary.
    Right,
    /// Wheel button.
    Middle,
    /// Browser back.
    Back,
    /// Browser forward.
    Forward,
}

/// Units of a wheel event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum WheelUnit {
    /// Notches of a stepped wheel.
    Line,
    /// Pixels of smooth scrolling.
    Pixel,
}

/// Modifier keys held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Modifiers(pub u8);

impl Modifiers {
    /// Shift.
    pub const SHIFT: u8 = 1;
    /// Control.
    pub const CTRL: u8 = 2;
    /// Alt.
    pub const ALT: u8 = 4;
    /// Super (Windows key, Command).
    pub const SUPER: u8 = 8;
    /// AltGr.
    pub const ALT_GR: u8 = 16;
}

impl Message for Input {
    const KIND: StreamKind = StreamKind::Input;

    fn check(&self) -> Result<(), InvalidField> {
        match self {
            Input::Text { text } => {
                if text.is_empty() {
                    return Err(InvalidField::new("text", "empty"));
                }
                check_label("text", text, TEXT_MAX)
            }
            Input::Key { logical: Some(c), .. } if c.is_control() => {
                Err(InvalidField::new("key", "control character as logical key"))
            }
            _ => Ok(()),
        }
    }
}
