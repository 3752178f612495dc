//! Control stream messages, after the hellos: the verification reveal,
//! screen layout, permissions, clipboard, and the end of a session.

use serde::{Deserialize, Serialize};

use crate::hello::NAME_MAX;
use crate::message::Message;
use crate::text::{check_count, check_label, check_text, InvalidField};
use crate::verification::NONCE_LEN;
use crate::StreamKind;

/// Largest clipboard text, in UTF-8 bytes.
pub const CLIPBOARD_MAX: usize = 256 * 1024;
/// Most monitors a layout may list.
pub const MONITORS_MAX: usize = 16;

/// A message on the control stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Control {
    /// QUIC client to server, the first message after the hellos: the nonce
    /// committed to in the client's hello.
    Reveal {
        /// The nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// Agent to viewer: the monitors, sent after the hellos and on change.
    ScreenLayout {
        /// At most [`MONITORS_MAX`].
        monitors: Vec<Monitor>,
    },
    /// Viewer to agent: which monitor to show.
    SelectMonitor {
        /// A [`Monitor::id`] from the layout.
        id: u8,
    },
    /// Agent to viewer: what the customer allows now. The agent enforces
    /// these itself; this tells the viewer what to offer. The first one
    /// says the customer allowed the session: the agent sends no layout,
    /// no permissions and opens no stream before.
    Permissions(Permissions),
    /// Either way, if the customer allows it: clipboard text.
    Clipboard {
        /// At most [`CLIPBOARD_MAX`] bytes.
        text: String,
    },
    /// Either way: the sender ends the session. The connection is closed
    /// right after.
    End {
        /// Why.
        reason: EndReason,
    },
}

/// One monitor of the agent's screen, in the virtual screen's coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Monitor {
    /// Identifier used by [`Control::SelectMonitor`] and input events.
    pub id: u8,
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width in pixels, at least 1.
    pub width: u16,
    /// Height in pixels, at least 1.
    pub height: u16,
    /// The primary monitor.
    pub primary: bool,
    /// Output name (`HDMI-1`), at most 64 bytes.
    pub name: String,
}

/// What the customer allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Permissions {
    /// See the screen.
    pub view: bool,
    /// Move the mouse and type.
    pub control: bool,
    /// Send and receive files.
    pub files: bool,
    /// Exchange clipboard text.
    pub clipboard: bool,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum EndReason {
    /// The customer ended it (button, tray Close, window closed).
    CustomerEnded,
    /// The technician ended it.
    TechnicianEnded,
    /// The sender's program is shutting down.
    Shutdown,
    /// The sender received something it could not accept.
    ProtocolError,
    /// The customer did not allow the session when asked (protocol 1.1;
    /// a 1.0 peer is told `CustomerEnded`).
    CustomerDeclined,
}

impl EndReason {
    /// Every reason.
    pub const ALL: [EndReason; 5] = [
        EndReason::CustomerEnded,
        EndReason::TechnicianEnded,
        EndReason::Shutdown,
        EndReason::ProtocolError,
        EndReason::CustomerDeclined,
    ];

    /// Its name as carried in a connection's close reason: the close can
    /// overtake the End message, and then it is the only word left.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::CustomerEnded => "CustomerEnded",
            EndReason::TechnicianEnded => "TechnicianEnded",
            EndReason::Shutdown => "Shutdown",
            EndReason::ProtocolError => "ProtocolError",
            EndReason::CustomerDeclined => "CustomerDeclined",
        }
    }

    /// This reason as a peer speaking `peer` can read it: reasons added
    /// in a later minor version fall back to the nearest older one.
    pub fn for_peer(self, peer: crate::ProtocolVersion) -> EndReason {
        match self {
            EndReason::CustomerDeclined if peer.major == 1 && peer.minor < 1 => EndReason::CustomerEnded,
            other => other,
        }
    }

    /// The reason a close reason names, if it names one.
    pub fn from_name(name: &str) -> Option<EndReason> {
        EndReason::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl Message for Control {
    const KIND: StreamKind = StreamKind::Control;

    fn check(&self) -> Result<(), InvalidField> {
        match self {
            Control::ScreenLayout { monitors } => {
                check_count("monitors", monitors, MONITORS_MAX)?;
                for m in monitors {
                    check_label("monitor name", &m.name, NAME_MAX)?;
                    if m.width == 0 || m.height == 0 {
                        return Err(InvalidField::new("monitor", "zero size"));
                    }
                }
                Ok(())
            }
            Control::Clipboard { text } => check_text("clipboard", text, CLIPBOARD_MAX),
            Control::Reveal { .. }
            | Control::SelectMonitor { .. }
            | Control::Permissions(_)
            | Control::End { .. } => Ok(()),
        }
    }
}
