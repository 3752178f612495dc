//! This machine's own addresses, offered to the peer as candidates: on a
//! shared LAN they are the shortest path.

use std::net::{IpAddr, SocketAddr};

use lifebuoy_proto::rendezvous::{Candidate, CandidateKind, CANDIDATES_MAX};

/// Host candidates for a socket bound to `port` on all interfaces:
/// every IPv4 and global IPv6 address that is not loopback.
pub fn host_candidates(port: u16) -> Vec<Candidate> {
    let mut out = Vec::new();
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        let ip = iface.ip();
        let useful = match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
            // Link-local IPv6 needs a scope id the peer cannot use.
            IpAddr::V6(v6) => !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        };
        if useful {
            out.push(Candidate { addr: SocketAddr::new(ip, port).into(), kind: CandidateKind::Host });
        }
    }
    // Private IPv4 first: the most likely shared LAN.
    out.sort_by_key(|c| match SocketAddr::from(c.addr).ip() {
        IpAddr::V4(v4) if v4.is_private() => 0,
        IpAddr::V4(_) => 1,
        IpAddr::V6(_) => 2,
    });
    out.truncate(CANDIDATES_MAX - 1);
    out
}
