//! Probing wide: a direct path when one side's NAT maps each destination to
//! a port of its own (a "symmetric" NAT), found by the birthday paradox.
//!
//! The address the rendezvous saw for the symmetric side is useless to its
//! peer: that side's mapping towards the peer gets another, random port.
//! So the symmetric side opens [`PORTS`] sockets and sends from each a punch
//! towards the peer's (stable) address, with a TTL that dies before the
//! peer's NAT: each opens a mapping at a random port of its own NAT that
//! lets the peer's packets in. The peer meanwhile sends punches to random
//! ports of the symmetric side's address, each of which also opens the
//! peer's own NAT towards that port. A punch that meets an open mapping is
//! heard on one of the sockets: that socket and the peer's address are a
//! path both NATs now let through. With 256 open ports among ~64,500 and
//! 1,024 probes a hit comes with 1 - (1 - 256/64512)^1024 ≈ 98 %
//! probability; the peer goes on with fresh ports up to [`PROBES_MAX`].
//!
//! The winning socket then carries the session as an endpoint of its own
//! (the agent's client endpoint, or, when the viewer is the symmetric
//! side, a server whose window is open for this punch only); the other
//! sockets close. Such a session cannot be re-punched through the
//! rendezvous (it never saw that port): when its path goes silent it
//! waits for the path to come back.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use lifebuoy_proto::datagram::Datagram;
use lifebuoy_proto::rendezvous::Go;
use rand::seq::index::sample;

use super::punch::{probe_ttl, Path, PeerLink, PROBE_TTL};
use super::socket::{Accepting, PeerEndpoint};
use crate::session::{LocalSide, NonceGate, Session, SessionError};

/// Sockets the symmetric side opens.
pub const PORTS: usize = 256;
/// Random ports the other side probes, at most; past 1,024 the chance of
/// no hit is under 2 % and each further probe costs a NAT entry.
pub const PROBES_MAX: usize = 2048;
/// Probes sent together, and how often.
const PROBE_BURST: usize = 64;
const PROBE_BURST_EVERY: Duration = Duration::from_millis(20);
/// The prober waits this long before its first burst, so the symmetric
/// side's mappings (opened when the same word of the relay reached it)
/// are there for it.
const PROBE_AFTER: Duration = Duration::from_millis(40);
/// How often the symmetric side opens its ports again (the TTL grows for
/// a side behind more than one NAT), and its highest TTL: enough for three
/// NATs, short of crossing the internet to the peer's NAT.
const OPEN_EVERY: Duration = Duration::from_millis(100);
const OPEN_TTL_MAX: u8 = PROBE_TTL + 2;
/// How often the symmetric viewer tells the agent the port it was found
/// at, until the agent's connection comes.
const FOUND_EVERY: Duration = Duration::from_millis(25);
/// Ports of the viewer the agent answers at most.
const ANSWERED_MAX: usize = 64;
/// Ports below this are left alone: NATs map into the upper range.
const LOWEST_PORT: u16 = 1024;

/// The symmetric side's sockets.
pub struct Ports {
    sockets: Vec<tokio::net::UdpSocket>,
}

impl Ports {
    /// Opens `count` sockets of `peer`'s address family.
    pub fn open(count: usize, peer: SocketAddr) -> io::Result<Ports> {
        let any: SocketAddr = match peer {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sockets = (0..count)
            .map(|_| {
                let socket = std::net::UdpSocket::bind(any)?;
                socket.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(socket)
            })
            .collect::<io::Result<_>>()?;
        Ok(Ports { sockets })
    }

    /// Sends `datagram` from every port to `to`, with `ttl`.
    pub fn open_towards(&self, to: SocketAddr, datagram: &Datagram, ttl: u8) {
        let bytes = datagram.encode();
        for socket in &self.sockets {
            let _ = socket.set_ttl(ttl.into());
            let _ = socket.try_send_to(&bytes, to);
        }
    }

    /// The first port that hears a punch of `token` from `peer`: its index
    /// and the address the punch came from.
    pub async fn heard(&self, token: [u8; 16], peer: IpAddr) -> (usize, SocketAddr) {
        let mut buf = [0u8; 64];
        poll_fn(|cx| {
            for (i, socket) in self.sockets.iter().enumerate() {
                loop {
                    let mut read = tokio::io::ReadBuf::new(&mut buf);
                    match socket.poll_recv_from(cx, &mut read) {
                        Poll::Ready(Ok(from)) => {
                            let ours = Datagram::decode(read.filled()) == Ok(Datagram::Punch { token });
                            if ours && from.ip().to_canonical() == peer.to_canonical() {
                                return Poll::Ready((i, from));
                            }
                        }
                        // An ICMP error surfaces here on some systems: the next one.
                        Poll::Ready(Err(_)) => {}
                        Poll::Pending => break,
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Port `i`, ready to carry a session: the others close.
    pub fn take(mut self, i: usize) -> io::Result<std::net::UdpSocket> {
        let socket = self.sockets.swap_remove(i).into_std()?;
        socket.set_ttl(64)?;
        super::endpoint::raise_buffers(&socket2::SockRef::from(&socket));
        Ok(socket)
    }
}

/// `count` distinct random ports of `ip` (at most all of them).
pub fn random_ports(ip: IpAddr, count: usize) -> Vec<SocketAddr> {
    let range = usize::from(u16::MAX - LOWEST_PORT) + 1;
    let mut rng = rand::rng();
    sample(&mut rng, range, count.min(range))
        .into_iter()
        .map(|i| SocketAddr::new(ip, LOWEST_PORT + i as u16))
        .collect()
}

/// The other side's public address: where the rendezvous saw it (its NAT
/// maps every destination alike, or it is the symmetric one and only the
/// address counts).
fn peer_public(go: &Go) -> Option<SocketAddr> {
    use lifebuoy_proto::rendezvous::CandidateKind;
    let plausible = go.plausible_candidates();
    let public = plausible.iter().find(|c| c.kind != CandidateKind::Host).or(plausible.first());
    public.map(|c| SocketAddr::from(c.addr))
}

/// The side that is not symmetric: sends punches from the session's own
/// socket to random ports of the peer's address, until `PROBES_MAX`.
pub async fn probe(endpoint: &PeerEndpoint, go: &Go) {
    let Some(peer) = peer_public(go) else { return };
    let punch = Datagram::Punch { token: go.relay_token };
    tokio::time::sleep(PROBE_AFTER).await;
    for burst in random_ports(peer.ip(), PROBES_MAX).chunks(PROBE_BURST) {
        for &to in burst {
            let _ = endpoint.send(to, &punch, None);
        }
        tokio::time::sleep(PROBE_BURST_EVERY).await;
    }
}

/// The viewer against a symmetric agent: probes, and answers every punch
/// that comes from the agent's address with punches: an agent port whose
/// opening punch got here (its TTL outgrew the way) before this side's
/// probe reached it still hears one. Never returns.
pub async fn probe_answering(endpoint: &PeerEndpoint, go: &Go) {
    let Some(peer) = peer_public(go) else { return std::future::pending().await };
    let mut answers = Answers::new(peer.ip(), go.relay_token);
    let answer = async {
        loop {
            match endpoint.recv().await {
                Some((from, datagram)) => {
                    answers.heard(endpoint, from, datagram);
                }
                None => std::future::pending::<()>().await,
            }
        }
    };
    tokio::join!(probe(endpoint, go), answer);
}

/// The other side's punches, each port it punched from answered once.
struct Answers {
    peer: IpAddr,
    token: [u8; 16],
    answered: Vec<SocketAddr>,
}

/// What a datagram was to [`Answers`].
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// Not a punch of the other side's.
    Other,
    /// A punch from a port not heard before: answered.
    First,
    /// A punch from a port heard (and answered) before.
    Again,
}

impl Answers {
    fn new(peer: IpAddr, token: [u8; 16]) -> Answers {
        Answers { peer, token, answered: Vec::new() }
    }

    fn heard(&mut self, endpoint: &PeerEndpoint, from: SocketAddr, datagram: Datagram) -> Heard {
        let punch = Datagram::Punch { token: self.token };
        if datagram != punch || from.ip().to_canonical() != self.peer.to_canonical() {
            return Heard::Other;
        }
        if self.answered.contains(&from) {
            return Heard::Again;
        }
        if self.answered.len() < ANSWERED_MAX {
            self.answered.push(from);
            for _ in 0..2 {
                let _ = endpoint.send(from, &punch, None);
            }
        }
        Heard::First
    }
}

/// The symmetric side: opens [`PORTS`] ports towards the peer until one
/// hears it; that port and where the peer was heard from.
async fn find(go: &Go) -> Result<(std::net::UdpSocket, SocketAddr), SessionError> {
    let peer = peer_public(go).ok_or(SessionError::NoPath)?;
    let ports = Ports::open(PORTS, peer).map_err(bind_failed)?;
    let punch = Datagram::Punch { token: go.relay_token };
    let started = Instant::now();
    let opening = async {
        loop {
            ports.open_towards(peer, &punch, probe_ttl(started.elapsed(), None).min(OPEN_TTL_MAX));
            tokio::time::sleep(OPEN_EVERY).await;
        }
    };
    let (i, from) = tokio::select! {
        heard = ports.heard(go.relay_token, peer.ip()) => heard,
        () = opening => unreachable!("opening never ends"),
    };
    tracing::info!(port = i, %from, "probing wide: the peer's punch came through");
    Ok((ports.take(i).map_err(bind_failed)?, from))
}

fn bind_failed(source: io::Error) -> SessionError {
    let addr = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0));
    super::EndpointError::Bind { addr, source }.into()
}

/// The symmetric agent: finds a port, then connects from it.
pub async fn connect(local: &LocalSide, go: &Go) -> Result<PeerLink, SessionError> {
    let (socket, viewer) = find(go).await?;
    let endpoint = PeerEndpoint::on_socket(socket, &local.identity, Accepting::Never)?;
    let session = Session::connect(&endpoint.quic, viewer, local, go.peer).await?;
    Ok(PeerLink { session, path: Path::DirectWide, addr: viewer, endpoint: Some(Arc::new(endpoint)) })
}

/// The symmetric viewer: finds a port, tells the agent where it was found
/// (the agent's NAT already lets that port in: the agent's probe left
/// through it), and takes the agent's connection on it.
pub async fn accept(local: &LocalSide, go: &Go, nonces: &NonceGate) -> Result<PeerLink, SessionError> {
    let (socket, agent) = find(go).await?;
    let endpoint = PeerEndpoint::on_socket(socket, &local.identity, Accepting::WhilePunching)?;
    let mut window = endpoint.open_window();
    let found = Datagram::Punch { token: go.relay_token };
    let mut tell = tokio::time::interval(FOUND_EVERY);
    loop {
        tokio::select! {
            _ = tell.tick() => { let _ = endpoint.send(agent, &found, None); }
            incoming = window.next() => {
                let incoming = incoming.ok_or(SessionError::LocallyClosed)?;
                let addr = super::socket::canonical(incoming.remote_address());
                match Session::accept(incoming, local, go.peer, nonces).await {
                    Ok(session) => {
                        drop(window);
                        let endpoint = Some(Arc::new(endpoint));
                        return Ok(PeerLink { session, path: Path::DirectWide, addr, endpoint });
                    }
                    Err(e) => tracing::debug!(%addr, "refused an incoming connection: {e}"),
                }
            }
        }
    }
}

/// The agent against a symmetric viewer: probes, and connects to the first
/// port the viewer confirms. A punch from a port is answered with punches
/// to it, and the port counts once another punch comes from it after
/// that: a port of the viewer that did not hear the agent's probe (its
/// opening punch reached the agent, the probe came too early) hears the
/// answer and becomes the one the viewer takes connections on.
pub async fn connect_to_found(
    endpoint: &PeerEndpoint,
    local: &LocalSide,
    go: &Go,
) -> Result<PeerLink, SessionError> {
    let peer = peer_public(go).ok_or(SessionError::NoPath)?;
    let mut answers = Answers::new(peer.ip(), go.relay_token);
    let found = async {
        loop {
            match endpoint.recv().await {
                Some((from, datagram)) => {
                    if answers.heard(endpoint, from, datagram) == Heard::Again {
                        return Some(from);
                    }
                }
                None => return None,
            }
        }
    };
    let viewer = tokio::select! {
        from = found => from.ok_or(SessionError::LocallyClosed)?,
        () = probe(endpoint, go) => std::future::pending().await,
    };
    tracing::info!(%viewer, "probing wide: the technician was found");
    let session = Session::connect(&endpoint.quic, viewer, local, go.peer).await?;
    Ok(PeerLink { session, path: Path::DirectWide, addr: viewer, endpoint: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ports_are_distinct_and_above_the_well_known_ones() {
        let ip: IpAddr = "198.51.100.2".parse().unwrap();
        let ports = random_ports(ip, PROBES_MAX);
        assert_eq!(ports.len(), PROBES_MAX);
        let distinct: std::collections::HashSet<u16> = ports.iter().map(|a| a.port()).collect();
        assert_eq!(distinct.len(), PROBES_MAX);
        assert!(ports.iter().all(|a| a.ip() == ip && a.port() >= LOWEST_PORT));
        assert_eq!(random_ports(ip, 1_000_000).len(), 64_512, "never more than there are");
    }

    #[tokio::test]
    async fn the_port_that_hears_the_peers_punch_is_found_and_carries_on() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let ports = Ports::open(8, peer.local_addr().unwrap()).unwrap();
        let token = [7; 16];
        let to = |i: usize| ports.sockets[i].local_addr().unwrap();
        // Noise first: another token, and the right token from a stranger's address.
        peer.send_to(&Datagram::Punch { token: [1; 16] }.encode(), to(2)).unwrap();
        let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        stranger.send_to(&Datagram::Punch { token }.encode(), to(3)).unwrap();
        peer.send_to(&Datagram::Punch { token }.encode(), to(5)).unwrap();
        let (i, from) =
            tokio::time::timeout(Duration::from_secs(5), ports.heard(token, "127.0.0.1".parse().unwrap()))
                .await
                .expect("heard within 5 s");
        assert_eq!((i, from), (5, peer.local_addr().unwrap()));
        let kept = to(5);
        let socket = ports.take(i).unwrap();
        assert_eq!(socket.local_addr().unwrap(), kept);
        assert_eq!(socket.ttl().unwrap(), 64);
    }
}
