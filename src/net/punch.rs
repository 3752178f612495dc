//! Finding a path to the peer after the go signal: directly over the LAN,
//! directly through both NATs (hole punching), or through the relay.
//!
//! The agent is the QUIC client and the viewer the server. The viewer opens
//! its own NAT towards every address of the agent with probes whose TTL
//! runs out before they reach the agent's NAT; the agent, after a wait the
//! rendezvous computed from both round-trip times, sends its QUIC Initial to
//! every address of the viewer, LAN addresses first. The first attempt that
//! completes the pinned handshake and hellos wins; the others are dropped.
//!
//! Why the viewer's probes must not reach the agent's NAT: a NAT without an
//! inbound firewall answers an unexpected packet itself and keeps a
//! conntrack entry for it; when the agent's own packet then leaves, the NAT
//! must pick another port for it, and the viewer's NAT, opened towards the
//! old port, drops everything (docs/decisions.md, hole punching).
//! A low TTL opens our NAT and dies on the way; the agent's wait makes sure
//! our NAT is open before the agent's first packet arrives.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lifebuoy_proto::datagram::{Datagram, RelaySide};
use lifebuoy_proto::rendezvous::{CandidateKind, Go};
use lifebuoy_proto::Role;
use tokio::task::JoinSet;

use super::socket::PeerEndpoint;
use crate::session::{LocalSide, NonceGate, Session, SessionError};

/// TTL of the viewer's first probes: through its own NAT, not to the
/// agent's. `LIFEBUOY_PROBE_TTL` fixes it (no raising).
pub const PROBE_TTL: u8 = 2;
/// No connection by then: the viewer may sit behind more than one NAT
/// (a home router behind a carrier-grade NAT), where TTL 2 dies between
/// them. From then on the TTL grows by one every [`PROBE_RAISE_EVERY`].
/// By then the agent's first Initial has left its NAT (it waits only a
/// round-trip difference), so a probe that now reaches the agent's NAT
/// finds the agent's mapping and cannot spring the stale-entry trap.
pub const PROBE_RAISE_AFTER: Duration = Duration::from_millis(250);
/// How often the TTL grows by one after [`PROBE_RAISE_AFTER`].
pub const PROBE_RAISE_EVERY: Duration = Duration::from_millis(50);

/// The probes' TTL `elapsed` into the punch (`fixed` by the environment).
fn probe_ttl(elapsed: Duration, fixed: Option<u8>) -> u8 {
    if let Some(ttl) = fixed {
        return ttl;
    }
    let Some(raising) = elapsed.checked_sub(PROBE_RAISE_AFTER) else { return PROBE_TTL };
    let steps = 1 + raising.as_millis() / PROBE_RAISE_EVERY.as_millis();
    u8::try_from(u128::from(PROBE_TTL) + steps).unwrap_or(64).min(64)
}

fn fixed_probe_ttl() -> Option<u8> {
    std::env::var("LIFEBUOY_PROBE_TTL").ok().and_then(|v| v.parse().ok()).filter(|&t| t > 0)
}
/// How long the viewer keeps probing, and how often.
pub const PROBE_FOR: Duration = Duration::from_millis(1500);
const PROBE_EVERY: Duration = Duration::from_millis(25);
/// LAN candidates get this head start over public ones.
pub const LAN_HEAD_START: Duration = Duration::from_millis(5);
/// Without a direct path by then, the agent connects through the relay
/// (both sides bind to it from the start, so only the handshake is left);
/// at once if the relay saw that a NAT maps each destination to its own
/// port, where the addresses the peers were given lead nowhere.
pub const DIRECT_DEADLINE: Duration = Duration::from_millis(1000);
/// Without any path by then, give up.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(12);
const BIND_EVERY: Duration = Duration::from_millis(100);

/// How the two sides reached each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Directly, over local addresses.
    DirectLan,
    /// Directly, through the NATs.
    DirectPunched,
    /// Through the relay, over UDP.
    RelayUdp,
    /// Through the relay, tunnelled over TCP.
    RelayTcp,
}

impl Path {
    /// Straight between the two sides, no relay.
    pub fn is_direct(self) -> bool {
        matches!(self, Path::DirectLan | Path::DirectPunched)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::DirectLan => "direct (LAN)",
            Path::DirectPunched => "direct (through NAT)",
            Path::RelayUdp => "relay (UDP)",
            Path::RelayTcp => "relay (TCP)",
        })
    }
}

/// A session and the path it runs on.
#[derive(Debug)]
pub struct PeerLink {
    /// The session.
    pub session: Session,
    /// The path.
    pub path: Path,
    /// The address the peer's packets come from.
    pub addr: SocketAddr,
}

impl PeerLink {
    /// `path=... rtt_ms=...`: what both people and the logs are shown.
    pub fn summary(&self) -> String {
        format!("path={} rtt_ms={:.2}", self.path, self.session.link.rtt().as_secs_f64() * 1e3)
    }
}

/// Connects to the peer named in `go`, trying every path. `relay` is the
/// relay's address, if the company runs one.
pub async fn connect_peer(
    endpoint: &PeerEndpoint,
    local: &LocalSide,
    go: &Go,
    relay: Option<SocketAddr>,
) -> Result<PeerLink, SessionError> {
    // The agent is always the QUIC client: the side that answers hellos
    // hands out nonces, and that must be the technician's, whose window
    // stands before the customer says yes (see `session::nonce`).
    match (local.role, go.quic_client) {
        (Role::Agent, true) | (Role::Viewer, false) => {}
        _ => return Err(SessionError::WrongSide),
    }
    let attempt = async {
        if go.quic_client {
            as_client(endpoint, local, go, relay).await
        } else {
            as_server(endpoint, local, go, relay).await
        }
    };
    tokio::time::timeout(CONNECT_DEADLINE, attempt).await.map_err(|_| SessionError::Timeout {
        stage: "reaching the other side",
        seconds: CONNECT_DEADLINE.as_secs(),
    })?
}

fn path_of(endpoint: &PeerEndpoint, go: &Go, addr: SocketAddr, relay: Option<SocketAddr>) -> Path {
    if endpoint.is_tunnel() {
        return Path::RelayTcp;
    }
    if Some(addr) == relay {
        return Path::RelayUdp;
    }
    let host =
        go.peer_candidates.iter().any(|c| c.kind == CandidateKind::Host && SocketAddr::from(c.addr) == addr);
    if host {
        Path::DirectLan
    } else {
        Path::DirectPunched
    }
}

/// Tells the relay which end we are until it confirms the pairing;
/// returns whether it said no direct path can open (it says so just
/// before it says bound).
async fn bind_relay(endpoint: &PeerEndpoint, relay: SocketAddr, token: [u8; 16], side: RelaySide) -> bool {
    let bind = Datagram::RelayBind { token, side };
    let mut tick = tokio::time::interval(BIND_EVERY);
    let mut no_direct = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = endpoint.send(relay, &bind, None);
            }
            got = endpoint.recv() => match got {
                Some((from, Datagram::RelayBound { token: t })) if from == relay && t == token => return no_direct,
                Some((from, Datagram::NoDirectPath { token: t })) if from == relay && t == token => no_direct = true,
                Some(_) => {}
                None => return no_direct,
            },
        }
    }
}

/// Returns when the relay says no direct path can open: its word came
/// after the bound (overtaken), or only a repeat of it arrived (the relay
/// repeats it with every bind the viewer sends until the viewer is bound).
async fn relay_says_no_direct_path(endpoint: &PeerEndpoint, relay: SocketAddr, token: [u8; 16]) {
    loop {
        match endpoint.recv().await {
            Some((from, Datagram::NoDirectPath { token: t })) if from == relay && t == token => return,
            Some(_) => {}
            None => std::future::pending().await,
        }
    }
}

async fn as_client(
    endpoint: &PeerEndpoint,
    local: &LocalSide,
    go: &Go,
    relay: Option<SocketAddr>,
) -> Result<PeerLink, SessionError> {
    tokio::time::sleep(Duration::from_millis(go.punch_in_ms.into())).await;
    let started = Instant::now();
    let mut attempts = JoinSet::new();
    // Through a TCP tunnel there is no direct path: only the relay.
    let direct = if endpoint.is_tunnel() { Vec::new() } else { go.plausible_candidates() };
    for c in direct {
        let addr = SocketAddr::from(c.addr);
        let delay = if c.kind == CandidateKind::Host { Duration::ZERO } else { LAN_HEAD_START };
        let (quic, local, pin) = (endpoint.quic.clone(), local.clone(), go.peer);
        attempts.spawn(async move {
            tokio::time::sleep(delay).await;
            (addr, Session::connect(&quic, addr, &local, pin).await)
        });
    }
    let relay_attempt = async {
        let Some(relay) = relay else { return std::future::pending().await };
        // Bound early, so the fallback costs one handshake, not a pairing too.
        const NO_DIRECT: &str = "a NAT maps each destination to its own port, no direct path";
        let why = if bind_relay(endpoint, relay, go.relay_token, RelaySide::Client).await {
            NO_DIRECT
        } else if endpoint.is_tunnel() {
            "UDP is blocked here"
        } else {
            tokio::select! {
                _ = tokio::time::sleep_until((started + DIRECT_DEADLINE).into()) => "no direct path after 1 s",
                _ = relay_says_no_direct_path(endpoint, relay, go.relay_token) => NO_DIRECT,
            }
        };
        tracing::info!("{why}: trying the relay {relay}");
        (relay, Session::connect(&endpoint.quic, relay, local, go.peer).await)
    };
    tokio::pin!(relay_attempt);
    let mut relay_pending = relay.is_some();
    loop {
        let (addr, result) = tokio::select! {
            joined = attempts.join_next(), if !attempts.is_empty() => match joined {
                Some(Ok(r)) => r,
                _ => continue,
            },
            r = &mut relay_attempt, if relay_pending => {
                relay_pending = false;
                r
            }
            // Nothing left to try (no plausible address and no relay).
            else => return Err(SessionError::NoPath),
        };
        match result {
            Ok(session) => {
                attempts.abort_all();
                let path = path_of(endpoint, go, addr, relay);
                tracing::info!(%addr, %path, "connected to the technician");
                return Ok(PeerLink { session, path, addr });
            }
            Err(e) => {
                // A candidate can be wrong in any way (another machine with
                // the same private address, even another lifebuoy): only
                // when every path failed is the connection a failure.
                tracing::debug!(%addr, "attempt failed: {e}");
                if attempts.is_empty() && !relay_pending {
                    return Err(e);
                }
            }
        }
    }
}

async fn as_server(
    endpoint: &PeerEndpoint,
    local: &LocalSide,
    go: &Go,
    relay: Option<SocketAddr>,
) -> Result<PeerLink, SessionError> {
    let started = Instant::now();
    // Probes cannot leave through a TCP tunnel; there only the relay works.
    let targets: Vec<SocketAddr> = if endpoint.is_tunnel() {
        Vec::new()
    } else {
        go.plausible_candidates().iter().map(|c| c.addr.into()).collect()
    };
    // Connections are taken only while this punch runs, and each must
    // pass the same budget of verification nonces.
    let mut window = endpoint.open_window();
    let nonces = NonceGate::new();
    let probe = async {
        let punch = Datagram::Punch { token: go.relay_token };
        let fixed = fixed_probe_ttl();
        while started.elapsed() < PROBE_FOR {
            let ttl = probe_ttl(started.elapsed(), fixed);
            for &to in &targets {
                let _ = endpoint.send(to, &punch, Some(ttl));
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
        std::future::pending::<()>().await
    };
    let relay_bind = async {
        let Some(relay) = relay else { return std::future::pending().await };
        // Only the client acts on "no direct path": it is the one that waits.
        let _ = bind_relay(endpoint, relay, go.relay_token, RelaySide::Server).await;
        std::future::pending::<()>().await
    };
    let mut handshakes = JoinSet::new();
    tokio::pin!(probe, relay_bind);
    loop {
        tokio::select! {
            incoming = window.next() => {
                let Some(incoming) = incoming else { return Err(SessionError::LocallyClosed) };
                let (local, pin, nonces) = (local.clone(), go.peer, nonces.clone());
                handshakes.spawn(async move {
                    let addr = incoming.remote_address();
                    (addr, Session::accept(incoming, &local, pin, &nonces).await)
                });
            }
            joined = handshakes.join_next(), if !handshakes.is_empty() => {
                let Some(Ok((addr, result))) = joined else { continue };
                match result {
                    Ok(session) => {
                        handshakes.abort_all();
                        let path = path_of(endpoint, go, addr, relay);
                        tracing::info!(%addr, %path, "connected to the customer");
                        return Ok(PeerLink { session, path, addr });
                    }
                    // Someone else knocking (a scan, a stale attempt): keep waiting.
                    Err(e) => tracing::debug!(%addr, "refused an incoming connection: {e}"),
                }
            }
            _ = &mut probe => {}
            _ = &mut relay_bind => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_ttl_stays_low_at_first_then_climbs_and_a_fixed_one_stays() {
        let ms = Duration::from_millis;
        assert_eq!(probe_ttl(ms(0), None), PROBE_TTL);
        assert_eq!(probe_ttl(ms(249), None), PROBE_TTL);
        assert_eq!(probe_ttl(ms(250), None), 3, "through a second NAT");
        assert_eq!(probe_ttl(ms(300), None), 4);
        assert_eq!(probe_ttl(ms(1499), None), 2 + 1 + 24);
        assert_eq!(probe_ttl(Duration::from_secs(3600), None), 64);
        assert_eq!(probe_ttl(ms(1000), Some(2)), 2);
    }
}
