//! Application error codes carried in QUIC CONNECTION_CLOSE and stream
//! STOP_SENDING/RESET_STREAM frames, so the other side can say why.

/// Codes for closing a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// A person or program ended the session normally.
    Ended,
    /// The hellos showed different major versions.
    VersionMismatch,
    /// The peer sent something that broke the protocol.
    ProtocolError,
    /// Both sides claim the same role, or a role that does not belong here.
    RoleMismatch,
    /// The server does not let this key in (a technician missing from the
    /// staff directory, or removed from it).
    NotAuthorized,
    /// The server is overloaded or the client exceeded a rate limit.
    Busy,
    /// A code this version does not know.
    Unknown(u32),
}

impl CloseCode {
    /// The number on the wire.
    pub const fn to_u32(self) -> u32 {
        match self {
            CloseCode::Ended => 0,
            CloseCode::VersionMismatch => 1,
            CloseCode::ProtocolError => 2,
            CloseCode::RoleMismatch => 3,
            CloseCode::NotAuthorized => 4,
            CloseCode::Busy => 5,
            CloseCode::Unknown(n) => n,
        }
    }

    /// The code for a number from the wire.
    pub const fn from_u32(n: u32) -> CloseCode {
        match n {
            0 => CloseCode::Ended,
            1 => CloseCode::VersionMismatch,
            2 => CloseCode::ProtocolError,
            3 => CloseCode::RoleMismatch,
            4 => CloseCode::NotAuthorized,
            5 => CloseCode::Busy,
            n => CloseCode::Unknown(n),
        }
    }
}

/// Code for STOP_SENDING on a stream whose tag we do not know.
pub const STREAM_UNKNOWN_KIND: u32 = 1;
/// Code for STOP_SENDING or RESET_STREAM on a stream whose content broke the protocol.
pub const STREAM_PROTOCOL_ERROR: u32 = 2;
/// Code for RESET_STREAM on a screen update a newer one superseded.
pub const STREAM_SUPERSEDED: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in 0..10 {
            assert_eq!(CloseCode::from_u32(n).to_u32(), n);
        }
    }
}
