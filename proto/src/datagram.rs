//! Datagrams lifebuoy sends beside QUIC on the same UDP socket: hole-punch
//! probes, relay binding and release, and the relay's word on direct paths
//! (none will open; or one side must be found by probing many ports).
//!
//! They begin with a zero byte. A QUIC packet always has the fixed bit
//! (0x40) of its first byte set unless both ends agreed to grease it, and
//! lifebuoy endpoints never agree to, so the first byte tells the two apart.
//! The layout is fixed (no varints) and small:
//!
//! ```text
//! 0x00 'L' 'B' 'Y' | kind (1) | token (16) | [side (1), bind and probe-wide only]
//! ```

/// The four bytes every lifebuoy datagram starts with.
pub const MAGIC: [u8; 4] = [0x00, b'L', b'B', b'Y'];
/// Length of a punch, bound or no-direct-path datagram.
pub const SHORT_LEN: usize = 21;
/// Length of a bind or probe-wide datagram.
pub const BIND_LEN: usize = 22;

/// Which end of a peer connection a relay binding is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelaySide {
    /// The QUIC client (the agent).
    Client,
    /// The QUIC server (the viewer).
    Server,
}

impl RelaySide {
    fn byte(self) -> u8 {
        match self {
            RelaySide::Client => 0,
            RelaySide::Server => 1,
        }
    }

    fn from_byte(byte: u8) -> Result<RelaySide, NotADatagram> {
        match byte {
            0 => Ok(RelaySide::Client),
            1 => Ok(RelaySide::Server),
            _ => Err(NotADatagram),
        }
    }
}

/// A non-QUIC datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// Opens the sender's NAT towards the peer; the receiver ignores it.
    Punch {
        /// The request's relay token, so a receiver can tell its peer's punches apart.
        token: [u8; 16],
    },
    /// To the relay: pair me with the other holder of this token.
    RelayBind {
        /// From the go signal.
        token: [u8; 16],
        /// Which end this is.
        side: RelaySide,
    },
    /// From the relay: both ends are bound; QUIC may flow.
    RelayBound {
        /// The token that was bound.
        token: [u8; 16],
    },
    /// From the relay to the QUIC client, before [`Datagram::RelayBound`]:
    /// one side's NAT gave the relay another address than the rendezvous
    /// (a mapping per destination, a "symmetric" NAT), so the address the
    /// peer was given is not the one it would have to reach; connect
    /// through the relay now instead of waiting for punching to fail.
    NoDirectPath {
        /// The bound pair's token.
        token: [u8; 16],
    },
    /// From the relay to both ends, before [`Datagram::RelayBound`]: the
    /// NAT of `symmetric` alone maps each destination to its own port. That
    /// side opens many ports towards the other; the other probes random
    /// ports of its address until one meets an open one (the birthday
    /// paradox), for a bounded time before the relay.
    ProbeWide {
        /// The bound pair's token.
        token: [u8; 16],
        /// The side whose NAT maps per destination.
        symmetric: RelaySide,
    },
    /// To the relay, from a bound end whose session is over: forget the
    /// pair now rather than when it has idled out.
    RelayRelease {
        /// The pair's token.
        token: [u8; 16],
    },
}

/// Not a lifebuoy datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a lifebuoy datagram")]
pub struct NotADatagram;

/// Whether a received datagram may be one of ours rather than QUIC.
pub fn is_lifebuoy(first_byte: u8) -> bool {
    first_byte & 0x40 == 0
}

impl Datagram {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        match self {
            Datagram::Punch { token } => {
                out.push(1);
                out.extend_from_slice(token);
            }
            Datagram::RelayBind { token, side } => {
                out.push(2);
                out.extend_from_slice(token);
                out.push(side.byte());
            }
            Datagram::ProbeWide { token, symmetric } => {
                out.push(6);
                out.extend_from_slice(token);
                out.push(symmetric.byte());
            }
            Datagram::RelayBound { token } => {
                out.push(3);
                out.extend_from_slice(token);
            }
            Datagram::NoDirectPath { token } => {
                out.push(4);
                out.extend_from_slice(token);
            }
            Datagram::RelayRelease { token } => {
                out.push(5);
                out.extend_from_slice(token);
            }
        }
        out
    }

    /// Parses a received datagram; anything else is refused.
    pub fn decode(bytes: &[u8]) -> Result<Datagram, NotADatagram> {
        if bytes.len() < SHORT_LEN || bytes[..4] != MAGIC {
            return Err(NotADatagram);
        }
        let mut token = [0u8; 16];
        token.copy_from_slice(&bytes[5..21]);
        match (bytes[4], bytes.len()) {
            (1, SHORT_LEN) => Ok(Datagram::Punch { token }),
            (2, BIND_LEN) => Ok(Datagram::RelayBind { token, side: RelaySide::from_byte(bytes[21])? }),
            (6, BIND_LEN) => Ok(Datagram::ProbeWide { token, symmetric: RelaySide::from_byte(bytes[21])? }),
            (3, SHORT_LEN) => Ok(Datagram::RelayBound { token }),
            (4, SHORT_LEN) => Ok(Datagram::NoDirectPath { token }),
            (5, SHORT_LEN) => Ok(Datagram::RelayRelease { token }),
            _ => Err(NotADatagram),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lengths() {
        for d in [
            Datagram::Punch { token: [1; 16] },
            Datagram::RelayBind { token: [2; 16], side: RelaySide::Client },
            Datagram::RelayBind { token: [3; 16], side: RelaySide::Server },
            Datagram::RelayBound { token: [4; 16] },
            Datagram::NoDirectPath { token: [5; 16] },
            Datagram::RelayRelease { token: [6; 16] },
            Datagram::ProbeWide { token: [7; 16], symmetric: RelaySide::Client },
            Datagram::ProbeWide { token: [8; 16], symmetric: RelaySide::Server },
        ] {
            let wire = d.encode();
            assert!(is_lifebuoy(wire[0]));
            assert_eq!(Datagram::decode(&wire), Ok(d));
            for cut in 0..wire.len() {
                assert_eq!(Datagram::decode(&wire[..cut]), Err(NotADatagram));
            }
            let mut longer = wire.clone();
            longer.push(0);
            assert_eq!(Datagram::decode(&longer), Err(NotADatagram));
        }
    }

    #[test]
    fn quic_packets_are_not_ours() {
        // Long header (Initial) and short header packets set the fixed bit.
        assert!(!is_lifebuoy(0xc3));
        assert!(!is_lifebuoy(0x40));
        assert_eq!(Datagram::decode(&[0xc3; 1200]), Err(NotADatagram));
    }
}
