//! Keeping a direct session alive when a NAT moves one side: while the
//! session runs, its side keeps the rendezvous connection, notices when
//! the peer goes silent ([`lifebuoy_proto::silence`]), asks the
//! rendezvous where the peer is now, probes that address (which opens
//! this side's NAT towards it) and sends the session's packets there.
//! QUIC keeps the address it knows the peer by; the socket carries the
//! packets to where the peer really is (`net::socket::PathHandle`), so the
//! session, its keys and its streams simply go on.
//!
//! When no direct path comes back within a second of asking, the side
//! sends the session through the relay instead (the rendezvous lets the
//! relay pair the session again from where both sides are now); a relayed
//! session whose side moved binds to the relay again from its new address.
//!
//! Only the session's own peer can answer on the new path: QUIC
//! authenticates every packet, so a lying rendezvous can at worst stall a
//! session it could stall anyway.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lifebuoy_proto::datagram::{Datagram, RelaySide};
use lifebuoy_proto::rendezvous::{plausible, FromRendezvous, ToRendezvous};
use lifebuoy_proto::silence::{Silence, Verdict};
use lifebuoy_proto::ProtocolVersion;

use crate::net::socket::{same, PathHandle};
use crate::rendezvous::client::RendezvousClient;
use crate::session::SessionError;

/// How often the path is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// Probes sent to a new address: one may be lost.
const PROBES: usize = 3;
/// Silent this long after asking, a direct session moves to the relay:
/// a re-punch takes one round trip to the rendezvous and one to the peer.
const RELAY_AFTER: Duration = Duration::from_secs(1);

/// Who keeps the path of one session.
pub struct Keeper {
    /// The session's connection.
    pub conn: quinn::Connection,
    /// The socket's detours; none in the TCP tunnel.
    pub paths: Option<PathHandle>,
    /// Sent in the probes, so the peer's endpoint knows them for its own.
    pub token: [u8; 16],
    /// Whether the session runs directly on ports the rendezvous knows (a
    /// relayed one has no direct path to find again, one found by probing
    /// wide none the rendezvous could tell).
    pub direct: bool,
    /// The relay, if the company runs one, and which end this side is.
    pub relay: Option<(SocketAddr, RelaySide)>,
    /// The endpoint of the session's own, if it has one (probed wide):
    /// held until the session is over and its close is sent.
    pub own: Option<std::sync::Arc<crate::net::socket::PeerEndpoint>>,
    /// Told true while the path is silent and being restored, false when
    /// it is back.
    pub stalled: Option<tokio::sync::watch::Sender<bool>>,
}

impl Keeper {
    /// The keeper of `link`'s session, made on `endpoint` after `go`
    /// (`relay`: the relay's address, if the company runs one).
    pub fn of(
        link: &crate::net::punch::PeerLink,
        endpoint: &crate::net::socket::PeerEndpoint,
        go: &lifebuoy_proto::rendezvous::Go,
        relay: Option<SocketAddr>,
    ) -> Keeper {
        let side = if go.quic_client { RelaySide::Client } else { RelaySide::Server };
        Keeper {
            conn: link.session.link.connection().clone(),
            paths: link.endpoint.as_deref().unwrap_or(endpoint).path_handle(),
            token: go.relay_token,
            direct: link.path.can_repunch(),
            relay: relay.map(|r| (r, side)),
            own: link.endpoint.clone(),
            stalled: None,
        }
    }

    /// Tells `stalled` whether the path is silent.
    pub fn telling(self, stalled: tokio::sync::watch::Sender<bool>) -> Keeper {
        Keeper { stalled: Some(stalled), ..self }
    }

    fn stalled(&self, now: bool) {
        if let Some(tx) = &self.stalled {
            tx.send_if_modified(|was| std::mem::replace(was, now) != now);
        }
    }
}

/// How the session's hold on the rendezvous ended.
pub enum Kept {
    /// The session is over; the rendezvous connection is still good.
    Over(RendezvousClient),
    /// The rendezvous connection failed during the session.
    ServerLost(SessionError),
}

/// A keeper running beside its session.
pub struct Keeping {
    task: tokio::task::JoinHandle<Kept>,
    over: tokio::sync::oneshot::Sender<()>,
}

impl Keeping {
    /// Starts `keeper` with the rendezvous connection `rv`.
    pub fn start(keeper: Keeper, rv: RendezvousClient) -> Keeping {
        let (over, rx) = tokio::sync::oneshot::channel();
        Keeping { task: tokio::spawn(keeper.run(rv, rx)), over }
    }

    /// The session is over: the rendezvous connection back, if it held.
    pub async fn stop(self) -> Kept {
        let _ = self.over.send(());
        match self.task.await {
            Ok(kept) => kept,
            Err(_) => Kept::ServerLost(SessionError::LocallyClosed),
        }
    }
}

impl Keeper {
    /// Runs until the session's connection closes or `over` fires.
    /// Messages other than [`FromRendezvous::Repunch`] are not for a side
    /// in a session and are dropped.
    pub async fn run(self, mut rv: RendezvousClient, mut over: tokio::sync::oneshot::Receiver<()>) -> Kept {
        // Every session over UDP asks when its path goes silent: the
        // rendezvous lets the relay pair it again from where the sides are
        // now. One on ports the rendezvous knows is punched again first.
        let ask = self.paths.is_some() && rv.server_hello().version >= ProtocolVersion { major: 1, minor: 2 };
        let repunch = ask && self.direct;
        let mut on_relay = self.relay.is_some_and(|(relay, _)| same(relay, self.conn.remote_address()));
        let received = || self.conn.stats().udp_rx.datagrams;
        let mut silence = Silence::new(Instant::now(), received());
        let mut silent_since: Option<Instant> = None;
        let mut look = tokio::time::interval(LOOK_EVERY);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.conn.closed() => break,
                _ = &mut over => break,
                _ = look.tick(), if ask => {
                    match silence.observe(Instant::now(), received()) {
                        Verdict::Quiet => {}
                        Verdict::Ask => {
                            silent_since.get_or_insert_with(Instant::now);
                            self.stalled(true);
                            tracing::info!("the peer went silent; asking the company server where it is now");
                            if let Err(e) = rv.send(&ToRendezvous::PathLost).await {
                                return Kept::ServerLost(e);
                            }
                        }
                        Verdict::Back(gap) => {
                            silent_since = None;
                            self.stalled(false);
                            tracing::info!(gap_ms = gap.as_millis() as u64, "the path is back");
                        }
                    }
                    // Re-punching had its chance: through the relay, bound
                    // anew (the relay forgets an idle pair, and a moved side
                    // binds from its new address).
                    let stalled = silent_since.is_some_and(|t| on_relay || t.elapsed() >= RELAY_AFTER);
                    if let (true, Some((relay, side))) = (stalled, self.relay) {
                        self.through_relay(relay, side, &mut on_relay);
                    }
                }
                msg = rv.recv() => match msg {
                    Ok(Some(FromRendezvous::Repunch { peer })) if repunch && !on_relay => self.repunch(peer.into()),
                    Ok(Some(_)) => {}
                    Ok(None) => return Kept::ServerLost(SessionError::StreamClosed),
                    Err(e) => return Kept::ServerLost(e),
                },
            }
        }
        if let Some(paths) = &self.paths {
            paths.forget(self.conn.remote_address());
        }
        if let Some(own) = &self.own {
            // The session's close must still leave, on its own socket.
            let _ = tokio::time::timeout(Duration::from_secs(2), own.quic.wait_idle()).await;
        }
        Kept::Over(rv)
    }

    /// Sends the session through the relay (once), and binds to it.
    fn through_relay(&self, relay: SocketAddr, side: RelaySide, on_relay: &mut bool) {
        let Some(paths) = &self.paths else { return };
        if !std::mem::replace(on_relay, true) {
            tracing::info!("no direct path came back; moving the session to the relay {relay}");
            paths.redirect(self.conn.remote_address(), relay);
        }
        let _ = paths.send(relay, &Datagram::RelayBind { token: self.token, side });
        // As after a re-punch: once the pair is bound, the next of these
        // goes through at once, not at QUIC's backed-off retransmission.
        let _ = self.conn.send_datagram(Bytes::from_static(b"\0"));
    }

    /// The peer is at `peer` now: probe it and send the session there.
    fn repunch(&self, peer: SocketAddr) {
        let Some(paths) = &self.paths else { return };
        let known = self.conn.remote_address();
        if !plausible(peer, known.ip().to_canonical().is_loopback()) {
            tracing::warn!("the company server named {peer} as the peer's address; not a peer's, ignored");
            return;
        }
        tracing::info!("the peer is at {peer} now (known as {known}); probing");
        paths.redirect(known, peer);
        for _ in 0..PROBES {
            let _ = paths.send(peer, &Datagram::Punch { token: self.token });
        }
        // Something QUIC must acknowledge, now rather than at its next
        // (backed-off) retransmission: the path is known at once.
        let _ = self.conn.send_datagram(Bytes::from_static(b"\0"));
    }
}
