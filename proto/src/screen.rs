//! Screen stream messages, agent to viewer. Each update travels on a stream
//! of its own, so a lost packet delays one update and not the next, and an
//! update that is superseded can be reset.

use serde::{Deserialize, Serialize};

use crate::message::Message;
use crate::text::InvalidField;
use crate::StreamKind;

/// Largest cursor image side, in pixels.
pub const CURSOR_MAX_SIDE: u16 = 256;

/// A message on a screen stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Screen {
    /// Changed parts of one monitor's image.
    Update(ScreenUpdate),
    /// A new cursor image.
    CursorShape(CursorShape),
    /// Where the cursor is now.
    CursorPosition {
        /// Monitor id.
        monitor: u8,
        /// Column, in monitor pixels.
        x: i32,
        /// Row, in monitor pixels.
        y: i32,
        /// Hidden cursors are not drawn.
        visible: bool,
    },
}

/// One screen update: opaque codec data for one monitor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ScreenUpdate {
    /// Increases by one per update; lets the viewer drop stale ones.
    pub seq: u64,
    /// Monitor id.
    pub monitor: u8,
    /// Monitor width in pixels.
    pub width: u16,
    /// Monitor height in pixels.
    pub height: u16,
    /// Encoded tiles; the tile codec defines and bounds-checks them.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A cursor image, RGBA, straight alpha.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct CursorShape {
    /// Shapes are cached by id on the viewer.
    pub id: u32,
    /// Width, 1 to [`CURSOR_MAX_SIDE`].
    pub width: u16,
    /// Height, 1 to [`CURSOR_MAX_SIDE`].
    pub height: u16,
    /// Hot spot column, inside the image.
    pub hot_x: u16,
    /// Hot spot row, inside the image.
    pub hot_y: u16,
    /// `width * height * 4` bytes.
    #[serde(with = "serde_bytes")]
    pub rgba: Vec<u8>,
}

impl Message for Screen {
    const KIND: StreamKind = StreamKind::Screen;

    fn check(&self) -> Result<(), InvalidField> {
        match self {
            Screen::Update(u) if u.width == 0 || u.height == 0 => {
                Err(InvalidField::new("screen update", "zero size"))
            }
            Screen::CursorShape(c) => {
                if c.width == 0 || c.height == 0 || c.width > CURSOR_MAX_SIDE || c.height > CURSOR_MAX_SIDE {
                    return Err(InvalidField::new("cursor", "bad size"));
                }
                if c.hot_x >= c.width || c.hot_y >= c.height {
                    return Err(InvalidField::new("cursor", "hot spot outside the image"));
                }
                if c.rgba.len() != c.width as usize * c.height as usize * 4 {
                    return Err(InvalidField::new("cursor", "pixel data does not match its size"));
                }
                Ok(())
            }
            Screen::Update(_) | Screen::CursorPosition { .. } => Ok(()),
        }
    }
}
