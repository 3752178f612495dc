//! Stream kinds: the tag byte that opens every QUIC stream, and the frame
//! limit that goes with it.
//!
//! A peer learns what a stream carries from its first byte, so one
//! connection multiplexes control, screen updates, input and files without
//! guessing. A tag we do not know (from a newer minor version) is refused
//! for that stream only; the session goes on.

use serde::{Deserialize, Serialize};

/// Largest file data chunk in one frame.
pub const FILE_CHUNK_MAX: usize = 1 << 20;

/// What a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum StreamKind {
    /// Bidirectional, the first stream the QUIC client opens on a peer
    /// connection: hello, then [`crate::control::Control`] messages.
    Control,
    /// Unidirectional, agent to viewer: [`crate::screen::Screen`] messages.
    Screen,
    /// Unidirectional, viewer to agent, one per session:
    /// [`crate::input::Input`] messages.
    Input,
    /// Unidirectional, either way, one per file: [`crate::file::File`] messages.
    File,
    /// Bidirectional, agent or viewer to the rendezvous: hello, then
    /// [`crate::rendezvous::ToRendezvous`] up and
    /// [`crate::rendezvous::FromRendezvous`] down.
    Rendezvous,
}

impl StreamKind {
    /// Every kind, for tests and tables.
    pub const ALL: [StreamKind; 5] = [
        StreamKind::Control,
        StreamKind::Screen,
        StreamKind::Input,
        StreamKind::File,
        StreamKind::Rendezvous,
    ];

    /// The byte that opens a stream of this kind.
    pub const fn tag(self) -> u8 {
        match self {
            StreamKind::Control => 0x01,
            StreamKind::Screen => 0x02,
            StreamKind::Input => 0x03,
            StreamKind::File => 0x04,
            StreamKind::Rendezvous => 0x10,
        }
    }

    /// The kind a tag byte names, if we know it.
    pub const fn from_tag(tag: u8) -> Option<StreamKind> {
        match tag {
            0x01 => Some(StreamKind::Control),
            0x02 => Some(StreamKind::Screen),
            0x03 => Some(StreamKind::Input),
            0x04 => Some(StreamKind::File),
            0x10 => Some(StreamKind::Rendezvous),
            _ => None,
        }
    }

    /// The largest frame payload this kind accepts.
    ///
    /// Control carries clipboard text (bounded to 256 KiB) and the screen
    /// layout; screen carries one encoded update of a 4K monitor at worst;
    /// input carries single events; files carry 1 MiB chunks; the
    /// rendezvous carries a staff list of a few thousand names.
    pub const fn max_frame(self) -> usize {
        match self {
            StreamKind::Control => 512 * 1024,
            StreamKind::Screen => 16 * 1024 * 1024,
            StreamKind::Input => 4 * 1024,
            StreamKind::File => FILE_CHUNK_MAX + 1024,
            StreamKind::Rendezvous => 256 * 1024,
        }
    }

    /// Whether the kind uses a bidirectional stream.
    pub const fn is_bidi(self) -> bool {
        matches!(self, StreamKind::Control | StreamKind::Rendezvous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_are_distinct() {
        for kind in StreamKind::ALL {
            assert_eq!(StreamKind::from_tag(kind.tag()), Some(kind));
        }
        let mut tags: Vec<u8> = StreamKind::ALL.iter().map(|k| k.tag()).collect();
        tags.dedup();
        assert_eq!(tags.len(), StreamKind::ALL.len());
        assert_eq!(StreamKind::from_tag(0), None);
        assert_eq!(StreamKind::from_tag(0xff), None);
    }
}
