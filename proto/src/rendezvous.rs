//! Rendezvous signalling: what agents and viewers say to the company's
//! server, and what it says back, on one bidirectional stream per
//! connection after the hellos.
//!
//! An agent may only list the staff, send one request, and cancel it; a
//! viewer registers by connecting (its certificate must be in the staff
//! directory), then answers requests. The server hands both sides the
//! other's address candidates and a go signal for hole punching.

use serde::{Deserialize, Serialize};

use crate::hello::NAME_MAX;
use crate::message::Message;
use crate::text::{check_count, check_label, InvalidField};
use crate::{Fingerprint, StreamKind};

/// Most address candidates one side may offer.
pub const CANDIDATES_MAX: usize = 16;
/// Most staff entries in one list.
pub const STAFF_MAX: usize = 2000;

/// Client (agent or viewer) to rendezvous.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ToRendezvous {
    /// Ask for the staff list with presence.
    ListStaff,
    /// Agent: ask one staff member for a session.
    Request {
        /// The chosen technician.
        staff: Fingerprint,
        /// What the customer typed as name or customer number; may be empty.
        label: String,
        /// The agent's local addresses.
        candidates: Vec<Candidate>,
    },
    /// Agent: withdraw the request.
    Cancel,
    /// Viewer: accept a request.
    Accept {
        /// From [`FromRendezvous::Incoming`].
        request: u64,
        /// The viewer's local addresses.
        candidates: Vec<Candidate>,
    },
    /// Viewer: decline a request.
    Decline {
        /// From [`FromRendezvous::Incoming`].
        request: u64,
    },
    /// Viewer: mark itself busy or free.
    SetBusy {
        /// Busy technicians get no requests.
        busy: bool,
    },
    /// Either side of a session the rendezvous paired (protocol 1.2): the
    /// peer has gone silent; where is it now? Answered with
    /// [`FromRendezvous::Repunch`]; sent again while the silence lasts.
    PathLost,
}

/// Rendezvous to client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum FromRendezvous {
    /// The staff with presence.
    Staff {
        /// At most [`STAFF_MAX`].
        entries: Vec<StaffEntry>,
    },
    /// Viewer: a customer asks for a session.
    Incoming {
        /// Names the request in the answer.
        request: u64,
        /// What the customer typed; may be empty.
        label: String,
        /// The agent's certificate fingerprint, to pin.
        agent: Fingerprint,
    },
    /// Viewer: the customer withdrew the request or went away.
    Withdrawn {
        /// Which one.
        request: u64,
    },
    /// Agent: the request did not lead to a session.
    Refused {
        /// Why.
        reason: Refusal,
    },
    /// Both: connect now.
    Go(Go),
    /// Answers [`ToRendezvous::PathLost`] (and is sent again when the
    /// peer's address changes while this side waits): where the
    /// rendezvous sees the peer of the session it paired now. Probe it
    /// and send the session there.
    Repunch {
        /// The peer's address as the rendezvous sees it.
        peer: PeerAddr,
    },
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Refusal {
    /// Not in the staff directory.
    UnknownStaff,
    /// Not connected.
    Offline,
    /// In another session or marked busy.
    Busy,
    /// Declined by the technician.
    Declined,
    /// Not answered in time.
    NoAnswer,
    /// Too many requests from this address.
    RateLimited,
    /// This connection already has a request open.
    AlreadyRequested,
}

/// One entry of the staff list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct StaffEntry {
    /// Display name.
    pub name: String,
    /// Optional group ("Buchhaltung", "2nd level").
    pub group: Option<String>,
    /// Certificate fingerprint: the agent pins it.
    pub fingerprint: Fingerprint,
    /// Presence now.
    pub presence: Presence,
}

/// Whether a technician can take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Presence {
    /// Connected and free.
    Online,
    /// Connected, in a session or marked busy.
    Busy,
    /// Not connected.
    Offline,
}

/// An address a peer may be reached at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Candidate {
    /// The address.
    pub addr: PeerAddr,
    /// Where it came from.
    pub kind: CandidateKind,
}

/// An IP address and UDP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum PeerAddr {
    /// IPv4 address and port.
    V4([u8; 4], u16),
    /// IPv6 address and port.
    V6([u8; 16], u16),
}

impl From<std::net::SocketAddr> for PeerAddr {
    fn from(a: std::net::SocketAddr) -> Self {
        match a {
            std::net::SocketAddr::V4(v4) => PeerAddr::V4(v4.ip().octets(), v4.port()),
            std::net::SocketAddr::V6(v6) => PeerAddr::V6(v6.ip().octets(), v6.port()),
        }
    }
}

impl From<PeerAddr> for std::net::SocketAddr {
    fn from(a: PeerAddr) -> Self {
        match a {
            PeerAddr::V4(ip, port) => (std::net::Ipv4Addr::from(ip), port).into(),
            PeerAddr::V6(ip, port) => (std::net::Ipv6Addr::from(ip), port).into(),
        }
    }
}

/// How a candidate was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum CandidateKind {
    /// A local interface address.
    Host,
    /// The address the rendezvous saw the packets come from.
    Observed,
}

/// The go signal: everything one side needs to reach the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Go {
    /// The request this answers.
    pub request: u64,
    /// The other side's fingerprint, to pin.
    pub peer: Fingerprint,
    /// The other side's candidates, observed one included.
    pub peer_candidates: Vec<Candidate>,
    /// Our own address as the rendezvous saw it.
    pub observed: PeerAddr,
    /// Pairs the two sides on the relay if punching fails.
    pub relay_token: [u8; 16],
    /// UDP port of the relay on the rendezvous host (0: no relay).
    pub relay_port: u16,
    /// Whether this side is the QUIC client of the peer connection.
    pub quic_client: bool,
    /// Start punching this many milliseconds after receiving this, so both
    /// sides start together.
    pub punch_in_ms: u32,
}

impl Go {
    /// The peer's candidates worth sending to, in order, duplicates
    /// dropped. Whatever the rendezvous or the peer put in the list, no
    /// probe or handshake goes to an address that cannot be a peer's
    /// socket: port 0, unspecified, broadcast, multicast, link-local
    /// (it needs a scope the peer cannot give), and loopback unless the
    /// rendezvous saw the peer itself on loopback (both on this machine):
    /// a remote customer must not steer packets at this machine's own
    /// services.
    pub fn plausible_candidates(&self) -> Vec<Candidate> {
        let seen_on_loopback = self
            .peer_candidates
            .iter()
            .filter(|c| c.kind == CandidateKind::Observed)
            .any(|c| std::net::SocketAddr::from(c.addr).ip().to_canonical().is_loopback());
        let mut out: Vec<Candidate> = Vec::new();
        for c in &self.peer_candidates {
            let addr = std::net::SocketAddr::from(c.addr);
            if plausible(addr, seen_on_loopback) && !out.iter().any(|o| o.addr == c.addr) {
                out.push(*c);
            }
        }
        out
    }
}

/// Whether `addr` can be a peer's socket (see [`Go::plausible_candidates`]);
/// loopback only when `loopback_ok` (both sides on one machine).
pub fn plausible(addr: std::net::SocketAddr, loopback_ok: bool) -> bool {
    use std::net::IpAddr;
    if addr.port() == 0 {
        return false;
    }
    match addr.ip().to_canonical() {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.octets()[0] == 0
                || (v4.is_loopback() && !loopback_ok))
        }
        IpAddr::V6(v6) => {
            let link_local = v6.segments()[0] & 0xffc0 == 0xfe80;
            !(v6.is_unspecified() || v6.is_multicast() || link_local || (v6.is_loopback() && !loopback_ok))
        }
    }
}

fn check_candidates(c: &[Candidate]) -> Result<(), InvalidField> {
    check_count("candidates", c, CANDIDATES_MAX)
}

impl Message for ToRendezvous {
    const KIND: StreamKind = StreamKind::Rendezvous;

    fn check(&self) -> Result<(), InvalidField> {
        match self {
            ToRendezvous::Request { label, candidates, .. } => {
                check_label("label", label, NAME_MAX)?;
                check_candidates(candidates)
            }
            ToRendezvous::Accept { candidates, .. } => check_candidates(candidates),
            _ => Ok(()),
        }
    }
}

impl Message for FromRendezvous {
    const KIND: StreamKind = StreamKind::Rendezvous;

    fn check(&self) -> Result<(), InvalidField> {
        match self {
            FromRendezvous::Staff { entries } => {
                check_count("staff", entries, STAFF_MAX)?;
                for e in entries {
                    check_label("staff name", &e.name, NAME_MAX)?;
                    if let Some(g) = &e.group {
                        check_label("staff group", g, NAME_MAX)?;
                    }
                }
                Ok(())
            }
            FromRendezvous::Incoming { label, .. } => check_label("label", label, NAME_MAX),
            FromRendezvous::Go(go) => check_candidates(&go.peer_candidates),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(candidates: &[(&str, CandidateKind)]) -> Go {
        Go {
            request: 1,
            peer: Fingerprint([1; 32]),
            peer_candidates: candidates
                .iter()
                .map(|(a, kind)| Candidate {
                    addr: a.parse::<std::net::SocketAddr>().unwrap().into(),
                    kind: *kind,
                })
                .collect(),
            observed: PeerAddr::V4([203, 0, 113, 9], 4000),
            relay_token: [0; 16],
            relay_port: 0,
            quic_client: false,
            punch_in_ms: 0,
        }
    }

    fn addrs(go: &Go) -> Vec<String> {
        go.plausible_candidates().iter().map(|c| std::net::SocketAddr::from(c.addr).to_string()).collect()
    }

    #[test]
    fn a_remote_peer_cannot_steer_packets_at_this_machine_or_a_group() {
        use CandidateKind::{Host, Observed};
        let g = go(&[
            ("127.0.0.1:22", Host),
            ("[::1]:631", Host),
            ("[::ffff:127.0.0.1]:25", Host),
            ("224.0.0.251:5353", Host),
            ("[ff02::1]:9", Host),
            ("255.255.255.255:9", Host),
            ("0.0.0.0:9", Host),
            ("0.1.2.3:9", Host),
            ("169.254.1.1:9", Host),
            ("[fe80::1]:9", Host),
            ("10.0.0.5:0", Host),
            ("10.0.0.5:4000", Host),
            ("10.0.0.5:4000", Host),
            ("[2001:db8::5]:4000", Host),
            ("198.51.100.7:4000", Observed),
        ]);
        assert_eq!(addrs(&g), ["10.0.0.5:4000", "[2001:db8::5]:4000", "198.51.100.7:4000"]);
    }

    #[test]
    fn loopback_is_tried_when_the_peer_is_on_this_machine() {
        use CandidateKind::{Host, Observed};
        let g = go(&[("10.0.0.5:4000", Host), ("127.0.0.1:4000", Observed)]);
        assert_eq!(addrs(&g), ["10.0.0.5:4000", "127.0.0.1:4000"]);
        let g = go(&[("127.0.0.1:4000", Host), ("198.51.100.7:4000", Observed)]);
        assert_eq!(addrs(&g), ["198.51.100.7:4000"]);
    }
}
