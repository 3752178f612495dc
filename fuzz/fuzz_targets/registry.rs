//! The rendezvous's bookkeeping under any sequence of connections,
//! messages (valid or not for the sender's role), departures, directory
//! changes and time: never a panic, never a message to a connection that
//! is not there, the bounds of the limits held, a path answer only to a
//! side that asked for one.
#![no_main]
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use lifebuoy::rendezvous::directory::Directory;
use lifebuoy::rendezvous::registry::{Action, Registry, RegistryLimits, Who};
use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy_proto::Fingerprint;

#[derive(arbitrary::Arbitrary, Debug)]
enum Op {
    Connect { conn: u8, viewer: bool, key: u8, from: u8 },
    Message { conn: u8, msg: ToRendezvous },
    Disconnect { conn: u8 },
    Moved { conn: u8, port: u16 },
    Later { ms: u32 },
    Staff { keys: Vec<u8> },
}

fn directory(keys: &[u8]) -> Directory {
    let mut seen = HashSet::new();
    let text: String = keys
        .iter()
        .filter(|k| seen.insert(**k % 8))
        .map(|k| {
            format!("[[staff]]\nname = \"T{}\"\nfingerprint = \"{}\"\n", k % 8, Fingerprint([k % 8; 32]))
        })
        .collect();
    Directory::parse(&text).unwrap()
}

fuzz_target!(|ops: Vec<Op>| {
    let mut now = Instant::now();
    let limits = RegistryLimits { customers: 6, open_requests_per_source: 2 };
    let mut n = 0u8;
    let new_token = Box::new(move || {
        n = n.wrapping_add(1);
        [n; 16]
    });
    let mut r = Registry::new(directory(&[0, 1, 2]), 5510, new_token, limits);
    let mut live: HashSet<u64> = HashSet::new();
    // Sides that asked where their peer is (only they may be told).
    let mut asked: HashSet<u64> = HashSet::new();
    for op in ops {
        let actions = match op {
            Op::Connect { conn, viewer, key, from } => {
                let conn = u64::from(conn % 16);
                if live.contains(&conn) {
                    continue;
                }
                let fp = Fingerprint([key % 8; 32]);
                let who = if viewer { Who::Viewer(fp) } else { Who::Agent(fp) };
                let at = SocketAddr::from(([203, 0, 113, from % 4], 4000));
                match r.connect(conn, who, at, at.ip(), Duration::from_millis(u64::from(from))) {
                    Ok(actions) => {
                        live.insert(conn);
                        actions
                    }
                    Err(_) => continue,
                }
            }
            Op::Message { conn, msg } => {
                if matches!(msg, ToRendezvous::PathLost) && live.contains(&u64::from(conn % 16)) {
                    asked.insert(u64::from(conn % 16));
                }
                r.message(now, u64::from(conn % 16), msg, Duration::from_millis(5))
            }
            Op::Moved { conn, port } => {
                let at = SocketAddr::from(([198, 51, 100, conn % 4], port));
                r.seen_at(now, u64::from(conn % 16), at)
            }
            Op::Disconnect { conn } => {
                let conn = u64::from(conn % 16);
                live.remove(&conn);
                asked.remove(&conn);
                r.disconnect(conn)
            }
            Op::Later { ms } => {
                now += Duration::from_millis(ms.into());
                r.tick(now)
            }
            Op::Staff { keys } => r.set_directory(directory(&keys)),
        };
        for action in &actions {
            match action {
                Action::Send(conn, _) | Action::Close(conn, _, _) => {
                    assert!(live.contains(conn), "{action:?} to a connection that is not there")
                }
                Action::AllowRelay { .. } => {}
            }
            if let Action::Send(conn, FromRendezvous::Repunch { .. }) = action {
                assert!(asked.contains(conn), "a path answer to {conn}, which never asked");
            }
        }
        for action in actions {
            if let Action::Close(conn, _, _) = action {
                live.remove(&conn);
                asked.remove(&conn);
            }
        }
        assert!(r.connections() <= 16);
        assert!(r.open_requests() <= r.connections());
    }
});
