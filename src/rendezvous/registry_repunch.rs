//! Keeping a session's direct path after a NAT changed its mapping: the
//! registry remembers which two connections each go paired, and tells a
//! side whose peer went silent where the peer is now.
//!
//! A NAT that picks a new port or address mid-session (its state flushed:
//! mapping expiry, a CGNAT, a DSL reconnect, another Wi-Fi) sends the
//! session's packets from an address the other side's filtering NAT does
//! not let in. Both sides notice the silence and ask
//! ([`ToRendezvous::PathLost`](lifebuoy_proto::rendezvous::ToRendezvous));
//! the moved side's question arrives from its new address (its rendezvous
//! connection migrates with it), so the rendezvous learns it there. Each
//! asker is told the other's address; a side that asked recently is told
//! again when the other's address changes, so the two need not ask in the
//! right order. Only sides that asked get an answer: a peer too old to
//! know the message is never sent one.
//!
//! Where punching the new path fails, the sides move the session to the
//! relay: with every answer the relay is told to pair the session's token
//! again, from where the two sides are now.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lifebuoy_proto::rendezvous::FromRendezvous;

use super::{Action, ConnId, Observed, Registry, Who, REQUEST_TIMEOUT};

/// A side that asked this recently is still waiting for the answer.
pub const LOST_FRESH: Duration = Duration::from_secs(3);

impl Registry {
    /// Pairs the two sides of a go (either one's earlier pairing ends).
    pub(super) fn pair(&mut self, agent: ConnId, viewer: ConnId, token: [u8; 16]) {
        self.unpair(agent);
        self.unpair(viewer);
        for (side, other) in [(agent, viewer), (viewer, agent)] {
            if let Some(c) = self.conns.get_mut(&side) {
                c.partner = Some(other);
                c.lost_at = None;
                c.relay_token = Some(token);
            }
        }
    }

    /// Lets the relay pair `conn`'s session again, from where both sides
    /// are now.
    fn relay_again(&self, now: Instant, conn: ConnId) -> Option<Action> {
        let c = self.conns.get(&conn)?;
        let o = self.conns.get(&c.partner?)?;
        let observed = match c.who {
            Who::Agent(_) => Observed { client: c.observed, server: o.observed },
            Who::Viewer(_) => Observed { client: o.observed, server: c.observed },
        };
        Some(Action::AllowRelay { token: c.relay_token?, expires: now + REQUEST_TIMEOUT, observed })
    }

    /// Ends `conn`'s pairing on both sides.
    pub(super) fn unpair(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.lost_at = None;
        if let Some(other) = c.partner.take() {
            if let Some(o) = self.conns.get_mut(&other) {
                if o.partner == Some(conn) {
                    o.partner = None;
                    o.lost_at = None;
                }
            }
        }
    }

    /// The shell saw a message of `conn` arrive from `addr` (a connection
    /// migrates when the client's NAT changes its mapping). A paired peer
    /// that is waiting for this side's address is told the new one.
    pub fn seen_at(&mut self, now: Instant, conn: ConnId, addr: SocketAddr) -> Vec<Action> {
        let Some(c) = self.conns.get_mut(&conn) else { return Vec::new() };
        if c.observed == addr {
            return Vec::new();
        }
        c.observed = addr;
        let fresh = |lost_at: Option<Instant>| lost_at.is_some_and(|t| now.duration_since(t) < LOST_FRESH);
        let asked = fresh(c.lost_at);
        let Some(other) = c.partner else { return Vec::new() };
        let mut actions = Vec::new();
        let other_asked = self.conns.get(&other).is_some_and(|o| fresh(o.lost_at));
        if other_asked {
            actions.push(Action::Send(other, FromRendezvous::Repunch { peer: addr.into() }));
        }
        if asked || other_asked {
            actions.extend(self.relay_again(now, conn));
        }
        actions
    }

    /// `conn` says its session's path went silent: where its peer is now.
    pub(super) fn path_lost(&mut self, now: Instant, conn: ConnId) -> Vec<Action> {
        let Some(c) = self.conns.get_mut(&conn) else { return Vec::new() };
        let Some(other) = c.partner else { return Vec::new() };
        c.lost_at = Some(now);
        let Some(o) = self.conns.get(&other) else { return Vec::new() };
        let repunch = Action::Send(conn, FromRendezvous::Repunch { peer: o.observed.into() });
        [Some(repunch), self.relay_again(now, conn)].into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
    use lifebuoy_proto::Fingerprint;

    use super::super::{RegistryLimits, Who};
    use super::*;
    use crate::rendezvous::directory::Directory;

    const AGENT: ConnId = 10;
    const VIEWER: ConnId = 1;

    /// Anna (viewer, 198.51.100.6:5000) accepted the agent
    /// (198.51.100.2:4000): the go went out.
    fn accepted_pair() -> (Registry, Instant) {
        let anna = Fingerprint([0xa1; 32]);
        let directory =
            Directory::parse(&format!("[[staff]]\nname = \"Anna\"\nfingerprint = \"{anna}\"\n")).unwrap();
        let mut r = Registry::new(directory, 5510, Box::new(|| [7; 16]), RegistryLimits::default());
        let now = Instant::now();
        let (v, a): (SocketAddr, SocketAddr) =
            ("198.51.100.6:5000".parse().unwrap(), "198.51.100.2:4000".parse().unwrap());
        r.connect(VIEWER, Who::Viewer(anna), v, v.ip(), Duration::from_millis(5)).unwrap();
        r.connect(AGENT, Who::Agent(Fingerprint([0xc3; 32])), a, a.ip(), Duration::from_millis(5)).unwrap();
        let rtt = Duration::from_millis(5);
        let asked = r.message(
            now,
            AGENT,
            ToRendezvous::Request { staff: anna, label: String::new(), candidates: vec![] },
            rtt,
        );
        let [Action::Send(VIEWER, FromRendezvous::Incoming { request, .. })] = asked[..] else {
            panic!("{asked:?}")
        };
        let go = r.message(now, VIEWER, ToRendezvous::Accept { request, candidates: vec![] }, rtt);
        assert_eq!(go.len(), 3, "{go:?}");
        (r, now)
    }

    fn repunch(to: ConnId, addr: &str) -> Action {
        Action::Send(to, FromRendezvous::Repunch { peer: addr.parse::<SocketAddr>().unwrap().into() })
    }

    /// The relay may pair the session's token again, the agent at `agent`.
    fn relay_again(now: Instant, agent: &str) -> Action {
        let observed =
            Observed { client: agent.parse().unwrap(), server: "198.51.100.6:5000".parse().unwrap() };
        Action::AllowRelay { token: [7; 16], expires: now + REQUEST_TIMEOUT, observed }
    }

    #[test]
    fn each_side_that_asks_learns_where_the_other_is_now_whatever_the_order() {
        let (mut r, now) = accepted_pair();
        let rtt = Duration::from_millis(5);
        // The agent's NAT moved; the viewer asks first and hears the old address.
        assert_eq!(
            r.message(now, VIEWER, ToRendezvous::PathLost, rtt),
            [repunch(VIEWER, "198.51.100.2:4000"), relay_again(now, "198.51.100.2:4000")]
        );
        // The agent's question comes from its new mapping: the viewer,
        // still waiting, is told that one at once, and the relay may pair
        // the agent from there; the agent hears the viewer's.
        let moved: SocketAddr = "198.51.100.2:4123".parse().unwrap();
        assert_eq!(
            r.seen_at(now, AGENT, moved),
            [repunch(VIEWER, "198.51.100.2:4123"), relay_again(now, "198.51.100.2:4123")]
        );
        assert_eq!(
            r.message(now, AGENT, ToRendezvous::PathLost, rtt),
            [repunch(AGENT, "198.51.100.6:5000"), relay_again(now, "198.51.100.2:4123")]
        );
        // Seen again at the same address: nothing new to say.
        assert!(r.seen_at(now, AGENT, moved).is_empty());
    }

    #[test]
    fn nobody_is_told_who_did_not_ask_or_asked_long_ago() {
        let (mut r, now) = accepted_pair();
        let rtt = Duration::from_millis(5);
        assert!(
            r.seen_at(now, AGENT, "198.51.100.2:4123".parse().unwrap()).is_empty(),
            "the viewer never asked"
        );
        r.message(now, VIEWER, ToRendezvous::PathLost, rtt);
        let later = now + LOST_FRESH;
        assert!(
            r.seen_at(later, AGENT, "198.51.100.2:4124".parse().unwrap()).is_empty(),
            "asked too long ago"
        );
    }

    #[test]
    fn the_pairing_ends_when_the_viewer_is_free_or_either_side_goes() {
        let rtt = Duration::from_millis(5);
        let (mut r, now) = accepted_pair();
        r.message(now, VIEWER, ToRendezvous::SetBusy { busy: false }, rtt);
        assert!(r.message(now, AGENT, ToRendezvous::PathLost, rtt).is_empty());
        assert!(r.message(now, VIEWER, ToRendezvous::PathLost, rtt).is_empty());

        let (mut r, now) = accepted_pair();
        r.disconnect(AGENT);
        assert!(r.message(now, VIEWER, ToRendezvous::PathLost, rtt).is_empty());
    }

    #[test]
    fn a_side_never_paired_gets_no_answer_and_stays_connected() {
        let (mut r, now) = accepted_pair();
        let rtt = Duration::from_millis(5);
        r.disconnect(VIEWER);
        assert!(r.message(now, AGENT, ToRendezvous::PathLost, rtt).is_empty());
        assert_eq!(r.connections(), 1);
    }
}
