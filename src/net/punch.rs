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

use super::birthday;
use super::socket::{same, PeerEndpoint};
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
pub(crate) fn probe_ttl(elapsed: Duration, fixed: Option<u8>) -> u8 {
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
    /// Directly, over IPv6 (global addresses, no NAT).
    DirectV6,
    /// Directly, through the NATs.
    DirectPunched,
    /// Directly, through the NATs, one of them symmetric: found by probing
    /// many ports (`net::birthday`).
    DirectWide,
    /// Through the relay, over UDP.
    RelayUdp,
    /// Through the relay, tunnelled over TCP.
    RelayTcp,
}

impl Path {
    /// Straight between the two sides, no relay.
    pub fn is_direct(self) -> bool {
        matches!(self, Path::DirectLan | Path::DirectV6 | Path::DirectPunched | Path::DirectWide)
    }

    /// Whether the rendezvous knows the ports this path runs between, so
    /// the sides can punch it again when a NAT moves one of them.
    pub fn can_repunch(self) -> bool {
        matches!(self, Path::DirectLan | Path::DirectV6 | Path::DirectPunched)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::DirectLan => "direct (LAN)",
            Path::DirectV6 => "direct (IPv6)",
            Path::DirectPunched => "direct (through NAT)",
            Path::DirectWide => "direct (through NAT, probed wide)",
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
    /// The endpoint of its own a path found by probing wide runs on
    /// (none: the side's usual endpoint); held as long as the session.
    pub endpoint: Option<std::sync::Arc<PeerEndpoint>>,
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
    if relay.is_some_and(|relay| same(relay, addr)) {
        return Path::RelayUdp;
    }
    let host = go.peer_candidates.iter().any(|c| c.kind == CandidateKind::Host && same(c.addr.into(), addr));
    match addr.ip().to_canonical() {
        // A global IPv6 address: no NAT between the two, maybe firewalls.
        std::net::IpAddr::V6(_) if host => Path::DirectV6,
        _ if host => Path::DirectLan,
        _ => Path::DirectPunched,
    }
}

/// What the relay said of direct paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    /// None can open: a NAT maps each destination to its own port.
    NoDirect,
    /// One side's NAT does (the `RelaySide`): probe wide.
    ProbeWide(RelaySide),
}

/// The relay's word on direct paths in `datagram`, if it is one.
fn word_in(datagram: Datagram, token: [u8; 16]) -> Option<Word> {
    match datagram {
        Datagram::NoDirectPath { token: t } if t == token => Some(Word::NoDirect),
        Datagram::ProbeWide { token: t, symmetric } if t == token => Some(Word::ProbeWide(symmetric)),
        _ => None,
    }
}

/// Tells the relay which end we are until it confirms the pairing;
/// returns what it said of direct paths by then (it says it just before
/// it says bound).
async fn bind_relay(
    endpoint: &PeerEndpoint,
    relay: SocketAddr,
    token: [u8; 16],
    side: RelaySide,
) -> Option<Word> {
    let bind = Datagram::RelayBind { token, side };
    let mut tick = tokio::time::interval(BIND_EVERY);
    let mut word = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = endpoint.send(relay, &bind, None);
            }
            got = endpoint.recv() => match got {
                Some((from, Datagram::RelayBound { token: t })) if from == relay && t == token => return word,
                Some((from, d)) if from == relay => word = word_in(d, token).or(word),
                Some(_) => {}
                None => return word,
            },
        }
    }
}

/// Returns the relay's word on direct paths once it comes: it came after
/// the bound (overtaken), or only a repeat of it arrived (the relay
/// repeats it with every bind the other end sends until that end is
/// bound). Never returns when punching can work.
async fn relay_word(endpoint: &PeerEndpoint, relay: SocketAddr, token: [u8; 16]) -> Word {
    loop {
        match endpoint.recv().await {
            Some((from, d)) if from == relay => {
                if let Some(word) = word_in(d, token) {
                    return word;
                }
            }
            Some(_) => {}
            None => std::future::pending().await,
        }
    }
}

/// Gives probing wide this long from the start of the punch before the relay.
pub const WIDE_DEADLINE: Duration = Duration::from_millis(2500);

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
        let mut word = bind_relay(endpoint, relay, go.relay_token, RelaySide::Client).await;
        if word.is_none() && !endpoint.is_tunnel() {
            word = tokio::select! {
                _ = tokio::time::sleep_until((started + DIRECT_DEADLINE).into()) => None,
                word = relay_word(endpoint, relay, go.relay_token) => Some(word),
            };
        }
        let why = match word {
            Some(Word::ProbeWide(symmetric)) => {
                let wide = async {
                    match symmetric {
                        RelaySide::Client => birthday::connect(local, go).await,
                        RelaySide::Server => birthday::connect_to_found(endpoint, local, go).await,
                    }
                };
                match tokio::time::timeout_at((started + WIDE_DEADLINE).into(), wide).await {
                    Ok(Ok(link)) => return (link.addr, Ok(link)),
                    Ok(Err(e)) => tracing::debug!("probing wide failed: {e}"),
                    Err(_) => {}
                }
                "probing wide found no path"
            }
            Some(Word::NoDirect) => "a NAT maps each destination to its own port, no direct path",
            None if endpoint.is_tunnel() => "UDP is blocked here",
            None => "no direct path after 1 s",
        };
        tracing::info!("{why}: trying the relay {relay}");
        let session = Session::connect(&endpoint.quic, relay, local, go.peer).await;
        (
            relay,
            session.map(|session| PeerLink {
                session,
                path: path_of(endpoint, go, relay, Some(relay)),
                addr: relay,
                endpoint: None,
            }),
        )
    };
    tokio::pin!(relay_attempt);
    let mut relay_pending = relay.is_some();
    loop {
        let (addr, result) = tokio::select! {
            joined = attempts.join_next(), if !attempts.is_empty() => match joined {
                Some(Ok((addr, result))) => {
                    let path = path_of(endpoint, go, addr, relay);
                    (addr, result.map(|session| PeerLink { session, path, addr, endpoint: None }))
                }
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
            Ok(link) => {
                attempts.abort_all();
                tracing::info!(%addr, path = %link.path, "connected to the technician");
                return Ok(link);
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

/// Awaits the future in `slot`, if there is one; then empties the slot.
async fn in_slot<F: std::future::Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    let Some(future) = slot.as_mut() else { return std::future::pending().await };
    let out = future.await;
    *slot = None;
    out
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
    let relay_word = async {
        let Some(relay) = relay else { return std::future::pending().await };
        match bind_relay(endpoint, relay, go.relay_token, RelaySide::Server).await {
            Some(word) => word,
            None => relay_word(endpoint, relay, go.relay_token).await,
        }
    };
    // Probing wide, once the relay says one side is symmetric: this side's
    // ports (it is the symmetric one), or the agent's (this side probes).
    type Wide<'a, T> = Option<std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>>;
    let mut wide_ports: Wide<'_, Result<PeerLink, SessionError>> = None;
    let mut wide_probes: Wide<'_, ()> = None;
    let mut heard = false;
    let mut handshakes = JoinSet::new();
    tokio::pin!(probe, relay_word);
    loop {
        tokio::select! {
            incoming = window.next() => {
                let Some(incoming) = incoming else { return Err(SessionError::LocallyClosed) };
                let (local, pin, nonces) = (local.clone(), go.peer, nonces.clone());
                handshakes.spawn(async move {
                    let addr = super::socket::canonical(incoming.remote_address());
                    (addr, Session::accept(incoming, &local, pin, &nonces).await)
                });
            }
            joined = handshakes.join_next(), if !handshakes.is_empty() => {
                let Some(Ok((addr, result))) = joined else { continue };
                match result {
                    Ok(session) => {
                        handshakes.abort_all();
                        let path = match path_of(endpoint, go, addr, relay) {
                            // From a port the rendezvous never saw: found by probing wide.
                            Path::DirectPunched if !is_candidate(go, addr) => Path::DirectWide,
                            path => path,
                        };
                        tracing::info!(%addr, %path, "connected to the customer");
                        return Ok(PeerLink { session, path, addr, endpoint: None });
                    }
                    // Someone else knocking (a scan, a stale attempt): keep waiting.
                    Err(e) => tracing::debug!(%addr, "refused an incoming connection: {e}"),
                }
            }
            link = in_slot(&mut wide_ports) => match link {
                Ok(link) => {
                    tracing::info!(addr = %link.addr, path = %link.path, "connected to the customer");
                    return Ok(link);
                }
                Err(e) => tracing::debug!("probing wide failed: {e}"),
            },
            () = in_slot(&mut wide_probes) => {}
            word = &mut relay_word, if !heard => {
                heard = true;
                match word {
                    Word::ProbeWide(RelaySide::Server) => {
                        wide_ports = Some(Box::pin(birthday::accept(local, go, &nonces)));
                    }
                    Word::ProbeWide(RelaySide::Client) => {
                        wide_probes = Some(Box::pin(birthday::probe_answering(endpoint, go)));
                    }
                    // The agent acts on it: it takes the relay.
                    Word::NoDirect => {}
                }
            }
            _ = &mut probe => {}
        }
    }
}

fn is_candidate(go: &Go, addr: SocketAddr) -> bool {
    go.peer_candidates.iter().any(|c| same(c.addr.into(), addr))
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
