//! Who may start a connection to the rendezvous, without I/O: the rules
//! that keep a flood from one place, or from many, from locking out the
//! company's customers and, above all, its technicians.
//!
//! - Every count is kept per *source*: an IPv4 address, or an IPv6 /64
//!   (one household or office gets a /64, and picking another address in
//!   it costs an attacker nothing). Clients behind the TCP tunnel count as
//!   the address their TCP connection came from, not as the tunnel's.
//! - New connections per source draw from a token bucket; connections
//!   held (from the first packet to the close) are capped per source.
//! - Handshakes in progress (the costly part: key exchange, signatures)
//!   are capped in all and per source. Past a share of that cap, a source
//!   whose address QUIC has not yet validated gets a Retry first, so a
//!   flood from spoofed addresses costs the server one packet each.
//! - Sources a technician signed in from recently keep some handshake
//!   slots to themselves: a flood of customers' handshakes cannot keep the
//!   staff out. (How many customers may be signed in is the registry's
//!   rule, with room kept for the staff as well.)
//!
//! The shell asks [`Admission::arrive`] for each incoming connection and
//! reports each one's progress; time comes in as a parameter.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use super::limits::{KeyedLimiter, Rate};

/// The abuse limits of the accept path.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionLimits {
    /// Connections held at once from one source (offices share one).
    pub connections_per_source: usize,
    /// New connections per source.
    pub connects_per_source: Rate,
    /// Handshakes in progress at once, in all.
    pub handshakes: usize,
    /// Handshakes in progress at once from one source.
    pub handshakes_per_source: usize,
    /// Of [`AdmissionLimits::handshakes`], how many only sources that a
    /// technician signed in from may use.
    pub staff_handshakes: usize,
    /// Above this many handshakes in progress, unvalidated addresses are
    /// sent a Retry before anything else.
    pub retry_above: usize,
}

impl Default for AdmissionLimits {
    fn default() -> AdmissionLimits {
        AdmissionLimits {
            connections_per_source: 512,
            connects_per_source: Rate { per_second: 20.0, burst: 100.0 },
            handshakes: 1024,
            handshakes_per_source: 32,
            staff_handshakes: 64,
            retry_above: 256,
        }
    }
}

/// The source a connection counts against: the IPv4 address, or the /64
/// of an IPv6 address (an IPv4-mapped IPv6 address counts as IPv4).
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        v4 => v4,
    }
}

/// What to do with a connection that knocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take it: its handshake starts. Report [`Admission::signed_in`] or
    /// [`Admission::gone`] for it later.
    Accept,
    /// Ask it to prove its address first (QUIC Retry).
    Retry,
    /// Drop it without a word (a flood gets nothing to amplify).
    Ignore(Limited),
}

/// Which limit a connection ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// Too many new connections from its source lately.
    Rate,
    /// Too many connections held by its source.
    Held,
    /// Too many handshakes in progress, in all or from its source.
    Handshakes,
}

/// Sources technicians signed in from, remembered this many at most.
const STAFF_SOURCES_MAX: usize = 4096;

/// The accept path's state.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    connects: KeyedLimiter<IpAddr>,
    held: HashMap<IpAddr, usize>,
    handshakes: usize,
    handshaking: HashMap<IpAddr, usize>,
    staff: VecDeque<IpAddr>,
}

impl Admission {
    /// Nothing held yet.
    pub fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            limits,
            connects: KeyedLimiter::new(limits.connects_per_source, 100_000),
            held: HashMap::new(),
            handshakes: 0,
            handshaking: HashMap::new(),
            staff: VecDeque::new(),
        }
    }

    /// A connection from `source` (see [`source_of`]) knocks; `validated`
    /// says whether QUIC has already validated its address (it came back
    /// with a Retry token).
    pub fn arrive(&mut self, source: IpAddr, validated: bool, now: Instant) -> Verdict {
        let staff = self.staff.contains(&source);
        let cap = match staff {
            true => self.limits.handshakes,
            false => self.limits.handshakes.saturating_sub(self.limits.staff_handshakes),
        };
        if self.handshakes >= cap
            || self.handshaking.get(&source).copied().unwrap_or(0) >= self.limits.handshakes_per_source
        {
            return Verdict::Ignore(Limited::Handshakes);
        }
        if self.held.get(&source).copied().unwrap_or(0) >= self.limits.connections_per_source {
            return Verdict::Ignore(Limited::Held);
        }
        if !validated && self.handshakes >= self.limits.retry_above {
            return Verdict::Retry;
        }
        if !self.connects.take(&source, now) {
            return Verdict::Ignore(Limited::Rate);
        }
        self.handshakes += 1;
        *self.handshaking.entry(source).or_default() += 1;
        *self.held.entry(source).or_default() += 1;
        Verdict::Accept
    }

    /// An accepted connection finished its handshake and hello (`staff`:
    /// as a listed technician); it stays held until [`Admission::gone`].
    pub fn signed_in(&mut self, source: IpAddr, staff: bool) {
        self.end_handshake(source);
        if staff && !self.staff.contains(&source) {
            if self.staff.len() >= STAFF_SOURCES_MAX {
                self.staff.pop_front();
            }
            self.staff.push_back(source);
        }
    }

    /// An accepted connection is gone; `handshaking` if it never signed in.
    pub fn gone(&mut self, source: IpAddr, handshaking: bool) {
        if handshaking {
            self.end_handshake(source);
        }
        decrement(&mut self.held, source);
    }

    fn end_handshake(&mut self, source: IpAddr) {
        self.handshakes = self.handshakes.saturating_sub(1);
        decrement(&mut self.handshaking, source);
    }

    /// Handshakes in progress.
    pub fn handshakes(&self) -> usize {
        self.handshakes
    }

    /// Connections held from `source`.
    pub fn held(&self, source: IpAddr) -> usize {
        self.held.get(&source).copied().unwrap_or(0)
    }
}

fn decrement(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn small() -> AdmissionLimits {
        AdmissionLimits {
            connections_per_source: 4,
            connects_per_source: Rate { per_second: 1.0, burst: 100.0 },
            handshakes: 10,
            handshakes_per_source: 3,
            staff_handshakes: 4,
            retry_above: 5,
        }
    }

    #[test]
    fn an_ipv6_household_is_one_source_and_mapped_ipv4_is_ipv4() {
        assert_eq!(source_of(ip("2001:db8:1:2:aaaa::1")), source_of(ip("2001:db8:1:2:bbbb::9")));
        assert_ne!(source_of(ip("2001:db8:1:2::1")), source_of(ip("2001:db8:1:3::1")));
        assert_eq!(source_of(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(source_of(ip("198.51.100.7")), ip("198.51.100.7"));
    }

    #[test]
    fn handshakes_are_capped_per_source_and_in_all() {
        let now = Instant::now();
        let mut a = Admission::new(small());
        let one = ip("198.51.100.1");
        for _ in 0..3 {
            assert_eq!(a.arrive(one, true, now), Verdict::Accept);
        }
        assert_eq!(a.arrive(one, true, now), Verdict::Ignore(Limited::Handshakes), "per source");
        a.signed_in(one, false);
        assert_eq!(a.arrive(one, true, now), Verdict::Accept, "a finished handshake frees its slot");
        a.signed_in(one, false);
        assert_eq!(a.arrive(one, true, now), Verdict::Ignore(Limited::Held), "four held from one place");
        // Many places at once: six handshakes for customers in all (ten
        // less the four kept for the staff).
        let mut accepted = a.handshakes();
        for i in 2..50 {
            if a.arrive(ip(&format!("203.0.113.{i}")), true, now) == Verdict::Accept {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 6);
        assert_eq!(a.handshakes(), 6);
    }

    #[test]
    fn a_flood_of_customers_leaves_the_staffs_handshakes_free() {
        let now = Instant::now();
        let mut a = Admission::new(small());
        let office = ip("198.51.100.50");
        assert_eq!(a.arrive(office, true, now), Verdict::Accept);
        a.signed_in(office, true);
        for i in 2..60 {
            a.arrive(ip(&format!("203.0.113.{i}")), true, now);
        }
        assert_eq!(a.arrive(ip("203.0.113.200"), true, now), Verdict::Ignore(Limited::Handshakes));
        // The technician's office gets in beside the flood.
        for _ in 0..3 {
            assert_eq!(a.arrive(office, true, now), Verdict::Accept);
        }
    }

    #[test]
    fn under_load_unvalidated_addresses_are_asked_to_prove_themselves_first() {
        let now = Instant::now();
        let mut a = Admission::new(small());
        for i in 0..5 {
            assert_eq!(a.arrive(ip(&format!("203.0.113.{i}")), false, now), Verdict::Accept);
        }
        assert_eq!(a.arrive(ip("203.0.113.9"), false, now), Verdict::Retry);
        assert_eq!(a.arrive(ip("203.0.113.9"), true, now), Verdict::Accept, "back with its token");
        // Nothing was counted for the Retry.
        assert_eq!(a.held(ip("203.0.113.9")), 1);
    }

    #[test]
    fn every_count_returns_to_zero() {
        let now = Instant::now();
        let mut a = Admission::new(small());
        let s = ip("198.51.100.4");
        assert_eq!(a.arrive(s, true, now), Verdict::Accept);
        assert_eq!(a.arrive(s, true, now), Verdict::Accept);
        a.signed_in(s, false);
        a.gone(s, false);
        a.gone(s, true);
        assert_eq!((a.handshakes(), a.held(s)), (0, 0));
        assert!(a.handshaking.is_empty() && a.held.is_empty());
    }
}
