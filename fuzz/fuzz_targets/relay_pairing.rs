//! The relay's pairing rules under any order of allows, bindings,
//! releases, traffic and time: never a panic, never a datagram sent back
//! to its sender, never more pairs than the bound.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use lifebuoy::rendezvous::relay::{Forward, Leg, Observed, Pairings, PAIRS_MAX};
use lifebuoy_proto::datagram::{Datagram, RelaySide};

#[derive(arbitrary::Arbitrary, Debug)]
enum Op {
    Allow { token: u8, lapse_ms: u16, client: u8, server: u8 },
    Bind { from: u8, token: u8, client: bool },
    Release { from: u8, token: u8 },
    Bytes { from: u8, bytes: Vec<u8> },
    Later { ms: u16 },
    Sweep,
    Forget { leg: u8 },
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, n % 8], 4000 + u16::from(n % 3)))
}

fn leg(n: u8) -> Leg {
    if n >= 200 {
        Leg::Tcp { tunnel: u64::from(n), proxy: SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(n % 4))) }
    } else {
        Leg::Udp(addr(n))
    }
}

fn token(n: u8) -> [u8; 16] {
    [n % 6; 16]
}

fuzz_target!(|ops: Vec<Op>| {
    let mut now = Instant::now();
    let mut p = Pairings::default();
    for op in ops {
        let (from, decision) = match op {
            Op::Allow { token: t, lapse_ms, client, server } => {
                let observed = Observed { client: addr(client), server: addr(server) };
                p.allow(token(t), now + Duration::from_millis(lapse_ms.into()), observed);
                continue;
            }
            Op::Bind { from, token: t, client } => {
                let side = if client { RelaySide::Client } else { RelaySide::Server };
                (
                    leg(from),
                    p.on_datagram(now, leg(from), &Datagram::RelayBind { token: token(t), side }.encode()),
                )
            }
            Op::Release { from, token: t } => (
                leg(from),
                p.on_datagram(now, leg(from), &Datagram::RelayRelease { token: token(t) }.encode()),
            ),
            Op::Bytes { from, bytes } => (leg(from), p.on_datagram(now, leg(from), &bytes)),
            Op::Later { ms } => {
                now += Duration::from_millis(ms.into());
                continue;
            }
            Op::Sweep => {
                p.sweep(now);
                continue;
            }
            Op::Forget { leg: n } => {
                p.forget(leg(n));
                continue;
            }
        };
        if let Forward::To(to) = decision {
            assert_ne!(to, from, "a datagram went back to its sender");
        }
        assert!(p.len() <= PAIRS_MAX);
    }
});
