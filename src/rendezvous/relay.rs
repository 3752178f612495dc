//! The relay's pairing rules, without I/O (the shell is `relay_server`):
//! for peers that cannot reach each other directly.
//!
//! It pairs the two ends of an accepted request by the one-time token the
//! rendezvous gave both, then forwards every datagram from one end's address
//! to the other's, blind: QUIC and its pinned TLS run end to end through
//! it, so the relay can read nothing and forge nothing. Tokens it was not
//! told about are ignored; an end binds only from where the rendezvous saw
//! it; an unused token lapses; a pair goes when either end releases it at
//! the end of its session, or when it has idled for [`PAIR_IDLE`].
//!
//! Binding also shows whether punching can work at all: the rendezvous
//! tells the relay where it saw each end, and an end whose binding comes
//! from another address has a NAT that maps each destination to a port of
//! its own. The address its peer was given is then useless: with one such
//! end both are told to probe many ports ([`Datagram::ProbeWide`]), with
//! two the client is told to take the relay at once
//! ([`Datagram::NoDirectPath`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lifebuoy_proto::datagram::{is_lifebuoy, Datagram, RelaySide};

use crate::net::socket::same;

/// A pair with no traffic for this long is dropped: its session sends a
/// keep-alive every second and ends after 5 s of silence, so this is well
/// past its end.
pub const PAIR_IDLE: Duration = Duration::from_secs(10);
/// Most tokens and pairs held at once.
pub const PAIRS_MAX: usize = 10_000;

/// Removes a pair's routes, but only those still its own: a technician
/// keeps its socket from one session to the next, so its address may
/// already route to a newer pair.
fn unroute(routes: &mut HashMap<Leg, (Leg, [u8; 16])>, token: &[u8; 16], pair: &Pair) {
    for leg in [pair.client, pair.server].into_iter().flatten() {
        if routes.get(&leg).is_some_and(|(_, t)| t == token) {
            routes.remove(&leg);
        }
    }
}

/// One end of a relayed pair: a UDP address, or a TCP tunnel connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Datagrams from and to this address on the UDP port.
    Udp(SocketAddr),
    /// Channel 1 of a tunnel connection on the TCP port.
    Tcp {
        /// The tunnel's number.
        tunnel: u64,
        /// The address its channel 0 reaches the rendezvous from (what the
        /// rendezvous saw for this client).
        proxy: SocketAddr,
    },
}

#[derive(Debug)]
struct Pair {
    expires: Instant,
    observed: Observed,
    client: Option<Leg>,
    server: Option<Leg>,
}

/// Where the rendezvous saw the two ends of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The agent (the QUIC client).
    pub client: SocketAddr,
    /// The viewer.
    pub server: SocketAddr,
}

/// Whether a bound leg came from another address than the rendezvous
/// saw for that end. A tunnel leg tells nothing: it has no UDP mapping.
fn remapped(leg: Leg, observed: SocketAddr) -> bool {
    let canonical = |a: SocketAddr| (a.ip().to_canonical(), a.port());
    match leg {
        Leg::Udp(addr) => canonical(addr) != canonical(observed),
        Leg::Tcp { .. } => false,
    }
}

/// What the ends' bindings tell of a direct path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direct {
    /// Both NATs kept the mapping the rendezvous saw: punching can work.
    Punch,
    /// Both map per destination, or one does and the other end is in the
    /// TCP tunnel (it cannot send UDP at all): only the relay.
    Nowhere,
    /// Only this end's NAT maps per destination: probing many ports can
    /// still find a path.
    ProbeWide(RelaySide),
}

fn direct_paths(client: Leg, server: Leg, observed: Observed) -> Direct {
    let tunnel = matches!(client, Leg::Tcp { .. }) || matches!(server, Leg::Tcp { .. });
    match (remapped(client, observed.client), remapped(server, observed.server)) {
        (false, false) => Direct::Punch,
        (true, true) => Direct::Nowhere,
        _ if tunnel => Direct::Nowhere,
        (true, false) => Direct::ProbeWide(RelaySide::Client),
        (false, true) => Direct::ProbeWide(RelaySide::Server),
    }
}

/// Whether a binding may be the end the rendezvous saw at `observed`: a
/// UDP end from the same IP address (a NAT that maps per destination
/// gives the relay another port, never another address to the same
/// host), a tunnel end through the very tunnel that carried its sign-in.
/// Anyone else who learned the token (it travels in the clear) cannot
/// take the end.
fn from_observed(leg: Leg, observed: SocketAddr) -> bool {
    match leg {
        Leg::Udp(addr) => addr.ip().to_canonical() == observed.ip().to_canonical(),
        Leg::Tcp { proxy, .. } => proxy == observed,
    }
}

/// The relay's state, without I/O.
#[derive(Debug, Default)]
pub struct Pairings {
    tokens: HashMap<[u8; 16], Pair>,
    routes: HashMap<Leg, (Leg, [u8; 16])>,
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Forward {
    /// Send these bytes on to this leg.
    To(Leg),
    /// Answer the sender (and maybe its peer) with these datagrams.
    Reply(Vec<(Leg, Datagram)>),
    /// Nothing.
    Drop,
}

impl Pairings {
    /// The rendezvous handed out `token` to two ends it saw at `observed`;
    /// accept bindings for it until `expires`. Allowed again (a NAT moved
    /// one end of a running session), an end now seen elsewhere binds anew.
    pub fn allow(&mut self, token: [u8; 16], expires: Instant, observed: Observed) {
        let Some(pair) = self.tokens.get_mut(&token) else {
            if self.tokens.len() < PAIRS_MAX {
                self.tokens.insert(token, Pair { expires, observed, client: None, server: None });
            }
            return;
        };
        let moved_client = !same(pair.observed.client, observed.client);
        let moved_server = !same(pair.observed.server, observed.server);
        if moved_client || moved_server {
            unroute(&mut self.routes, &token, pair);
            if moved_client {
                pair.client = None;
            }
            if moved_server {
                pair.server = None;
            }
        }
        pair.observed = observed;
        pair.expires = pair.expires.max(expires);
    }

    /// Decides what to do with a datagram from `from`.
    pub fn on_datagram(&mut self, now: Instant, from: Leg, bytes: &[u8]) -> Forward {
        if bytes.is_empty() {
            return Forward::Drop;
        }
        if is_lifebuoy(bytes[0]) {
            match Datagram::decode(bytes) {
                Ok(Datagram::RelayBind { token, side }) => return self.bind(now, from, token, side),
                Ok(Datagram::RelayRelease { token }) => {
                    self.release(from, token);
                    return Forward::Drop;
                }
                // Punch probes and anything else between bound peers pass through.
                _ => {}
            }
        }
        match self.routes.get(&from) {
            Some(&(to, token)) => {
                if let Some(pair) = self.tokens.get_mut(&token) {
                    pair.expires = now + PAIR_IDLE;
                }
                Forward::To(to)
            }
            None => Forward::Drop,
        }
    }

    fn bind(&mut self, now: Instant, from: Leg, token: [u8; 16], side: RelaySide) -> Forward {
        let Some(pair) = self.tokens.get_mut(&token) else { return Forward::Drop };
        if pair.expires <= now {
            return Forward::Drop;
        }
        let (slot, other, observed) = match side {
            RelaySide::Client => (&mut pair.client, pair.server, pair.observed.client),
            RelaySide::Server => (&mut pair.server, pair.client, pair.observed.server),
        };
        // One address cannot be both ends: the relay would send a
        // datagram back where it came from, for ever.
        if !from_observed(from, observed) || other == Some(from) {
            return Forward::Drop;
        }
        match slot {
            None => *slot = Some(from),
            // First binding wins: a second address for the same end is ignored.
            Some(addr) if *addr != from => return Forward::Drop,
            Some(_) => {}
        }
        let (Some(client), Some(server)) = (pair.client, pair.server) else { return Forward::Drop };
        pair.expires = pair.expires.max(now + PAIR_IDLE);
        self.routes.insert(client, (server, token));
        self.routes.insert(server, (client, token));
        let bound = Datagram::RelayBound { token };
        let mut reply = Vec::with_capacity(4);
        // Before the bound, so a client that has it stops waiting.
        match direct_paths(client, server, pair.observed) {
            Direct::Punch => {}
            Direct::Nowhere => reply.push((client, Datagram::NoDirectPath { token })),
            Direct::ProbeWide(symmetric) => {
                let wide = Datagram::ProbeWide { token, symmetric };
                reply.extend([(client, wide), (server, wide)]);
            }
        }
        reply.extend([(client, bound), (server, bound)]);
        Forward::Reply(reply)
    }

    /// A bound end says its session is over: the pair goes at once.
    fn release(&mut self, from: Leg, token: [u8; 16]) {
        let bound = self.tokens.get(&token).is_some_and(|p| p.client == Some(from) || p.server == Some(from));
        if bound {
            let pair = self.tokens.remove(&token).expect("just looked up");
            unroute(&mut self.routes, &token, &pair);
        }
    }

    /// Forgets lapsed tokens and idle pairs.
    pub fn sweep(&mut self, now: Instant) {
        let routes = &mut self.routes;
        self.tokens.retain(|token, p| {
            let keep = p.expires > now;
            if !keep {
                unroute(routes, token, p);
            }
            keep
        });
    }

    /// Forgets a leg that went away (a closed tunnel).
    pub fn forget(&mut self, leg: Leg) {
        if let Some(&(_, token)) = self.routes.get(&leg) {
            if let Some(pair) = self.tokens.remove(&token) {
                unroute(&mut self.routes, &token, &pair);
            }
        }
    }

    /// Pairs and tokens held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Leg {
        Leg::Udp(s.parse().unwrap())
    }

    /// The rendezvous saw both ends where they bind from.
    fn seen(client: Leg, server: Leg) -> Observed {
        let (Leg::Udp(client), Leg::Udp(server)) = (client, server) else { unreachable!("UDP legs") };
        Observed { client, server }
    }

    fn bind(token: u8, side: RelaySide) -> Vec<u8> {
        Datagram::RelayBind { token: [token; 16], side }.encode()
    }

    #[test]
    fn pairs_by_token_then_forwards_both_ways() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let (a, b, stranger) = (addr("198.51.100.2:4000"), addr("198.51.100.3:5000"), addr("203.0.113.66:1"));
        assert_eq!(p.on_datagram(now, a, &bind(1, RelaySide::Client)), Forward::Drop, "unknown token");
        p.allow([1; 16], now + Duration::from_secs(60), seen(a, b));
        assert_eq!(
            p.on_datagram(now, a, &bind(1, RelaySide::Client)),
            Forward::Drop,
            "waiting for the other end"
        );
        assert_eq!(p.on_datagram(now, a, &[0xc3; 1200]), Forward::Drop, "nothing flows before pairing");
        let bound = Datagram::RelayBound { token: [1; 16] };
        assert_eq!(
            p.on_datagram(now, b, &bind(1, RelaySide::Server)),
            Forward::Reply(vec![(a, bound), (b, bound)])
        );
        assert_eq!(p.on_datagram(now, a, &[0xc3; 1200]), Forward::To(b));
        assert_eq!(p.on_datagram(now, b, &[0x41; 40]), Forward::To(a));
        assert_eq!(p.on_datagram(now, stranger, &[0x41; 40]), Forward::Drop);
        // A third party with the token cannot take a bound end.
        assert_eq!(p.on_datagram(now, stranger, &bind(1, RelaySide::Client)), Forward::Drop);
        assert_eq!(p.on_datagram(now, a, &[0xc3; 10]), Forward::To(b));
    }

    #[test]
    fn allowed_again_after_a_nat_moved_an_end_that_end_binds_anew_from_where_it_is_now() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let (agent, moved, viewer) =
            (addr("198.51.100.2:4000"), addr("198.51.100.2:4999"), addr("198.51.100.6:5000"));
        p.allow([1; 16], now + Duration::from_secs(60), seen(agent, viewer));
        p.on_datagram(now, agent, &bind(1, RelaySide::Client));
        p.on_datagram(now, viewer, &bind(1, RelaySide::Server));
        // Before the rendezvous says so, the moved end cannot take its slot.
        assert_eq!(p.on_datagram(now, moved, &bind(1, RelaySide::Client)), Forward::Drop);
        p.allow([1; 16], now + Duration::from_secs(60), seen(moved, viewer));
        assert_eq!(p.on_datagram(now, agent, &[0xc3; 100]), Forward::Drop, "the old mapping routes nowhere");
        let bound = Datagram::RelayBound { token: [1; 16] };
        assert_eq!(
            p.on_datagram(now, moved, &bind(1, RelaySide::Client)),
            Forward::Reply(vec![(moved, bound), (viewer, bound)]),
            "the end that stayed is still bound"
        );
        assert_eq!(p.on_datagram(now, moved, &[0xc3; 100]), Forward::To(viewer));
        assert_eq!(p.on_datagram(now, viewer, &[0x41; 100]), Forward::To(moved));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn a_technician_reusing_its_socket_keeps_its_new_pair_when_the_old_one_lapses() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let (agent1, agent2, viewer) =
            (addr("198.51.100.2:1"), addr("198.51.100.2:2"), addr("198.51.100.6:9"));
        p.allow([1; 16], now + Duration::from_secs(60), seen(agent1, viewer));
        p.on_datagram(now, agent1, &bind(1, RelaySide::Client));
        p.on_datagram(now, viewer, &bind(1, RelaySide::Server));
        let later = now + Duration::from_secs(10);
        p.allow([2; 16], later + Duration::from_secs(60), seen(agent2, viewer));
        p.on_datagram(later, agent2, &bind(2, RelaySide::Client));
        p.on_datagram(later, viewer, &bind(2, RelaySide::Server));
        assert_eq!(p.on_datagram(later, viewer, &[0xc3; 10]), Forward::To(agent2));
        // The first pair lapses while the second is busy.
        let lapse = now + PAIR_IDLE + Duration::from_secs(61);
        assert_eq!(p.on_datagram(lapse - Duration::from_secs(1), agent2, &[0xc3; 10]), Forward::To(viewer));
        p.sweep(lapse);
        assert_eq!(p.on_datagram(lapse, viewer, &[0xc3; 10]), Forward::To(agent2));
        assert_eq!(p.on_datagram(lapse, agent1, &[0xc3; 10]), Forward::Drop);
    }

    #[test]
    fn lapsed_tokens_and_idle_pairs_are_forgotten() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let (a, b) = (addr("127.0.0.1:1"), addr("127.0.0.1:2"));
        p.allow([2; 16], now + Duration::from_secs(1), seen(a, b));
        assert_eq!(
            p.on_datagram(now + Duration::from_secs(2), a, &bind(2, RelaySide::Client)),
            Forward::Drop
        );
        p.allow([3; 16], now + Duration::from_secs(60), seen(a, b));
        p.on_datagram(now, a, &bind(3, RelaySide::Client));
        p.on_datagram(now, b, &bind(3, RelaySide::Server));
        p.sweep(now + Duration::from_secs(2));
        assert_eq!(p.len(), 1, "the lapsed token is gone, the pair stays");
        p.sweep(now + PAIR_IDLE + Duration::from_secs(61));
        assert!(p.is_empty());
        assert_eq!(p.on_datagram(now + Duration::from_secs(200), a, &[0xc3; 10]), Forward::Drop);
    }

    #[test]
    fn ends_bound_from_other_ports_than_the_rendezvous_saw_mean_probing_wide_or_no_direct_path() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let (agent, viewer) = (addr("198.51.100.2:40000"), addr("203.0.113.7:5000"));
        let bound = |t: u8| Datagram::RelayBound { token: [t; 16] };
        let none = |t: u8| Datagram::NoDirectPath { token: [t; 16] };
        let wide = |t: u8, symmetric| Datagram::ProbeWide { token: [t; 16], symmetric };
        // Each end's NAT in turn gave the relay another port: both probe wide.
        for (token, observed, symmetric) in [
            (1, seen(addr("198.51.100.2:39999"), viewer), RelaySide::Client),
            (2, seen(agent, addr("203.0.113.7:5001")), RelaySide::Server),
        ] {
            p.allow([token; 16], now + Duration::from_secs(60), observed);
            p.on_datagram(now, agent, &bind(token, RelaySide::Client));
            let expected = vec![
                (agent, wide(token, symmetric)),
                (viewer, wide(token, symmetric)),
                (agent, bound(token)),
                (viewer, bound(token)),
            ];
            assert_eq!(p.on_datagram(now, viewer, &bind(token, RelaySide::Server)), Forward::Reply(expected));
            p.release(agent, [token; 16]);
        }
        // Both did: no direct path at all.
        p.allow([3; 16], now + Duration::from_secs(60), seen(addr("198.51.100.2:1"), addr("203.0.113.7:1")));
        p.on_datagram(now, agent, &bind(3, RelaySide::Client));
        assert_eq!(
            p.on_datagram(now, viewer, &bind(3, RelaySide::Server)),
            Forward::Reply(vec![(agent, none(3)), (agent, bound(3)), (viewer, bound(3))])
        );
        p.release(agent, [3; 16]);
        // Seen the same, one of them as an IPv4-mapped IPv6 address: punching may work.
        let mapped = Observed {
            client: "[::ffff:198.51.100.2]:40000".parse().unwrap(),
            server: seen(agent, viewer).server,
        };
        p.allow([4; 16], now + Duration::from_secs(60), mapped);
        p.on_datagram(now, agent, &bind(4, RelaySide::Client));
        assert_eq!(
            p.on_datagram(now, viewer, &bind(4, RelaySide::Server)),
            Forward::Reply(vec![(agent, bound(4)), (viewer, bound(4))])
        );
        // A tunnel end has no mapping to compare.
        let proxy: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let tunnel = Leg::Tcp { tunnel: 7, proxy };
        p.allow(
            [5; 16],
            now + Duration::from_secs(60),
            Observed { client: proxy, server: seen(agent, viewer).server },
        );
        p.on_datagram(now, tunnel, &bind(5, RelaySide::Client));
        assert_eq!(
            p.on_datagram(now, viewer, &bind(5, RelaySide::Server)),
            Forward::Reply(vec![(tunnel, bound(5)), (viewer, bound(5))])
        );
        // Against a tunnel end, which sends no UDP, probing cannot help.
        p.allow(
            [6; 16],
            now + Duration::from_secs(60),
            Observed { client: proxy, server: "203.0.113.7:5001".parse().unwrap() },
        );
        p.on_datagram(now, tunnel, &bind(6, RelaySide::Client));
        assert_eq!(
            p.on_datagram(now, viewer, &bind(6, RelaySide::Server)),
            Forward::Reply(vec![(tunnel, none(6)), (tunnel, bound(6)), (viewer, bound(6))])
        );
    }

    #[test]
    fn an_end_binds_only_from_where_the_rendezvous_saw_it() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let (agent, viewer) = (addr("198.51.100.2:40000"), addr("203.0.113.7:5000"));
        p.allow([1; 16], now + Duration::from_secs(60), seen(agent, viewer));
        // Someone who read the token off the wire, from another address.
        assert_eq!(
            p.on_datagram(now, addr("198.51.100.9:40000"), &bind(1, RelaySide::Client)),
            Forward::Drop
        );
        assert_eq!(p.on_datagram(now, addr("203.0.113.8:5000"), &bind(1, RelaySide::Server)), Forward::Drop);
        let tunnel = Leg::Tcp { tunnel: 3, proxy: "127.0.0.1:7000".parse().unwrap() };
        assert_eq!(p.on_datagram(now, tunnel, &bind(1, RelaySide::Client)), Forward::Drop);
        // The ends themselves still bind, the agent's NAT from another port.
        assert_eq!(
            p.on_datagram(now, addr("198.51.100.2:40001"), &bind(1, RelaySide::Client)),
            Forward::Drop
        );
        assert!(matches!(p.on_datagram(now, viewer, &bind(1, RelaySide::Server)), Forward::Reply(_)));
        // A tunnel end binds through its own tunnel only.
        let proxy: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        p.allow(
            [2; 16],
            now + Duration::from_secs(60),
            Observed { client: proxy, server: seen(agent, viewer).server },
        );
        let other = Leg::Tcp { tunnel: 4, proxy: "127.0.0.1:7002".parse().unwrap() };
        assert_eq!(p.on_datagram(now, other, &bind(2, RelaySide::Client)), Forward::Drop);
        let own = Leg::Tcp { tunnel: 5, proxy };
        assert_eq!(p.on_datagram(now, own, &bind(2, RelaySide::Client)), Forward::Drop);
        assert!(matches!(p.on_datagram(now, viewer, &bind(2, RelaySide::Server)), Forward::Reply(_)));
    }

    #[test]
    fn one_address_cannot_be_both_ends() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let a = addr("198.51.100.3:4001");
        p.allow([1; 16], now + Duration::from_secs(60), seen(a, a));
        assert_eq!(p.on_datagram(now, a, &bind(1, RelaySide::Client)), Forward::Drop);
        assert_eq!(p.on_datagram(now, a, &bind(1, RelaySide::Server)), Forward::Drop);
        assert_eq!(p.on_datagram(now, a, &[0xc3; 10]), Forward::Drop, "nothing is reflected");
    }

    #[test]
    fn a_pair_ends_with_its_session() {
        let now = Instant::now();
        let mut p = Pairings::default();
        let (agent, viewer, stranger) =
            (addr("198.51.100.2:40000"), addr("203.0.113.7:5000"), addr("203.0.113.66:1"));
        let release = Datagram::RelayRelease { token: [1; 16] }.encode();
        p.allow([1; 16], now + Duration::from_secs(60), seen(agent, viewer));
        p.on_datagram(now, agent, &bind(1, RelaySide::Client));
        p.on_datagram(now, viewer, &bind(1, RelaySide::Server));
        assert_eq!(p.on_datagram(now, stranger, &release), Forward::Drop);
        assert_eq!(p.on_datagram(now, agent, &[0xc3; 10]), Forward::To(viewer), "a stranger cannot end it");
        assert_eq!(p.on_datagram(now, viewer, &release), Forward::Drop);
        assert!(p.is_empty());
        assert_eq!(p.on_datagram(now, agent, &[0xc3; 10]), Forward::Drop);
        assert_eq!(p.on_datagram(now, agent, &bind(1, RelaySide::Client)), Forward::Drop, "nor bound again");
    }
}
