//! The relay shell: UDP on 5510 and the TCP tunnel on 5511, forwarding by
//! the [`Pairings`] rules.
//!
//! A tunnel connection carries two channels: channel 0 is proxied to the
//! rendezvous (so a client behind a UDP block can sign in), channel 1 is a
//! relay leg like a UDP address. A UDP leg and a TCP leg pair as easily as
//! two of a kind.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifebuoy_proto::tunnel::{encode, Channel, TunnelDecoder};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::relay::{Forward, Leg, Observed, Pairings};
use crate::net::tunnel::write_frames;

/// Most tunnel connections at once.
pub const TUNNELS_MAX: usize = 5000;
/// Most tunnel connections at once from one IP address.
pub const TUNNELS_PER_IP: usize = 64;
/// A tunnel that sends nothing for this long is closed (QUIC keeps it busy
/// with keep-alives while it is in use).
pub const TUNNEL_IDLE: Duration = Duration::from_secs(30);
const TUNNEL_QUEUE: usize = 1024;

type Legs = Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>;

/// A running relay.
#[derive(Clone, Debug)]
pub struct Relay {
    pairings: Arc<Mutex<Pairings>>,
    udp: SocketAddr,
    tcp: Option<SocketAddr>,
    clients: TunnelClients,
}

struct Shared {
    pairings: Arc<Mutex<Pairings>>,
    udp: Arc<UdpSocket>,
    legs: Legs,
    clients: TunnelClients,
}

impl Relay {
    /// Binds the UDP port and, if given, the TCP tunnel port; `rendezvous`
    /// is where tunnel channel 0 is proxied to.
    pub async fn start(
        udp: SocketAddr,
        tcp: Option<SocketAddr>,
        rendezvous: SocketAddr,
    ) -> std::io::Result<Relay> {
        let socket = Arc::new(UdpSocket::from_std(crate::net::endpoint::bind_udp(udp)?)?);
        let udp = socket.local_addr()?;
        let pairings = Arc::new(Mutex::new(Pairings::default()));
        let clients = TunnelClients::default();
        let shared = Arc::new(Shared {
            pairings: pairings.clone(),
            udp: socket,
            legs: Arc::default(),
            clients: clients.clone(),
        });
        tokio::spawn(udp_loop(shared.clone()));
        let tcp = match tcp {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let local = listener.local_addr()?;
                tokio::spawn(tcp_accept(listener, shared.clone(), rendezvous));
                Some(local)
            }
            None => None,
        };
        let sweeper = pairings.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                sweeper.lock().expect("not poisoned").sweep(Instant::now());
            }
        });
        Ok(Relay { pairings, udp, tcp, clients })
    }

    /// The UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The TCP tunnel address, if it runs.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The clients behind the tunnels, by the address the rendezvous sees.
    pub fn tunnel_clients(&self) -> TunnelClients {
        self.clients.clone()
    }

    /// Accept bindings for `token` until `expires` from two ends the
    /// rendezvous saw at `observed`.
    pub fn allow(&self, token: [u8; 16], expires: Instant, observed: Observed) {
        self.pairings.lock().expect("not poisoned").allow(token, expires, observed);
    }
}

impl Shared {
    async fn deliver(&self, to: Leg, bytes: &[u8]) {
        match to {
            Leg::Udp(addr) => {
                let _ = self.udp.send_to(bytes, addr).await;
            }
            Leg::Tcp { tunnel: id, .. } => {
                let mut frame = Vec::with_capacity(bytes.len() + 3);
                if encode(Channel::Relay, bytes, &mut frame).is_ok() {
                    let tx = self.legs.lock().expect("not poisoned").get(&id).cloned();
                    if let Some(tx) = tx {
                        let _ = tx.try_send(frame);
                    }
                }
            }
        }
    }

    async fn handle(&self, from: Leg, bytes: &[u8]) {
        let decision = self.pairings.lock().expect("not poisoned").on_datagram(Instant::now(), from, bytes);
        match decision {
            Forward::To(to) => self.deliver(to, bytes).await,
            Forward::Reply(replies) => {
                for (to, d) in replies {
                    self.deliver(to, &d.encode()).await;
                }
            }
            Forward::Drop => {}
        }
    }
}

async fn udp_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match shared.udp.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors from a peer that went away surface here; keep serving.
            Err(_) => continue,
        };
        shared.handle(Leg::Udp(from), &buf[..n]).await;
    }
}

/// Where each tunnel's channel 0 reaches the rendezvous from (its proxy
/// socket's address), and the address of the client behind it: the
/// rendezvous sees only the proxy, but limits the client.
#[derive(Clone, Debug, Default)]
pub struct TunnelClients(Arc<Mutex<HashMap<SocketAddr, IpAddr>>>);

impl TunnelClients {
    /// The client behind a tunnel whose proxy has the address `proxy`.
    pub fn client_of(&self, proxy: SocketAddr) -> Option<IpAddr> {
        self.0.lock().expect("not poisoned").get(&proxy).copied()
    }

    fn insert(&self, proxy: SocketAddr, client: IpAddr) {
        self.0.lock().expect("not poisoned").insert(proxy, client);
    }

    fn remove(&self, proxy: SocketAddr) {
        self.0.lock().expect("not poisoned").remove(&proxy);
    }
}

/// The longest pause of the accept loop after an error (descriptors
/// exhausted, say): the loop waits rather than spins, doubling from 10 ms.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often an accept loop in trouble says so, at most.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

async fn tcp_accept(listener: TcpListener, shared: Arc<Shared>, rendezvous: SocketAddr) {
    let next = AtomicU64::new(1);
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let mut backoff = Duration::ZERO;
    let mut logged: Option<Instant> = None;
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(e) => {
                // A line now and then, not one for every try.
                if logged.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                    tracing::warn!("the TCP tunnel cannot accept connections: {e}; waiting and retrying");
                    logged = Some(Instant::now());
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(10), ACCEPT_BACKOFF_MAX);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let ip = from.ip();
        // Dropping the stream closes it: a flood from one address gets
        // nothing and leaves room for everyone else.
        if shared.legs.lock().expect("not poisoned").len() >= TUNNELS_MAX {
            continue;
        }
        {
            let mut counts = per_ip.lock().expect("not poisoned");
            let held = counts.entry(ip).or_default();
            if *held >= TUNNELS_PER_IP {
                continue;
            }
            *held += 1;
        }
        let id = next.fetch_add(1, Ordering::Relaxed);
        let (shared, per_ip) = (shared.clone(), per_ip.clone());
        tokio::spawn(async move {
            if let Err(e) = tunnel(id, stream, ip, &shared, rendezvous).await {
                tracing::debug!(%from, "tunnel ended: {e}");
            }
            let mut counts = per_ip.lock().expect("not poisoned");
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        });
    }
}

/// What one tunnel holds beside its TCP stream; dropping it, on whatever
/// path the tunnel ends, ends its tasks, closes its proxy socket and
/// forgets its leg.
struct TunnelParts<'a> {
    shared: &'a Shared,
    leg: Option<Leg>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TunnelParts<'_> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(leg @ Leg::Tcp { tunnel, proxy }) = self.leg {
            self.shared.legs.lock().expect("not poisoned").remove(&tunnel);
            self.shared.pairings.lock().expect("not poisoned").forget(leg);
            self.shared.clients.remove(proxy);
        }
    }
}

/// Serves one tunnel connection until it closes, breaks the framing or
/// idles out.
async fn tunnel(
    id: u64,
    stream: TcpStream,
    client: IpAddr,
    shared: &Shared,
    rendezvous: SocketAddr,
) -> std::io::Result<()> {
    let mut parts = TunnelParts { shared, leg: None, tasks: Vec::new() };
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(TUNNEL_QUEUE);
    parts.tasks.push(tokio::spawn(write_frames(writer, rx)));
    // Channel 0: a UDP socket of its own towards the rendezvous, so the
    // rendezvous sees one address per tunnel. Bound to the address it
    // sends from, so its own address is exactly what the rendezvous sees.
    let target = if rendezvous.ip().is_unspecified() {
        let loopback: IpAddr =
            if rendezvous.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        SocketAddr::new(loopback, rendezvous.port())
    } else {
        rendezvous
    };
    let proxy = Arc::new(UdpSocket::bind(SocketAddr::new(target.ip(), 0)).await?);
    let leg = Leg::Tcp { tunnel: id, proxy: proxy.local_addr()? };
    parts.leg = Some(leg);
    shared.legs.lock().expect("not poisoned").insert(id, tx.clone());
    shared.clients.insert(proxy.local_addr()?, client);
    parts.tasks.push({
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = proxy.recv_from(&mut buf).await else { continue };
                if from != target {
                    continue;
                }
                let mut frame = Vec::with_capacity(n + 3);
                if encode(Channel::Rendezvous, &buf[..n], &mut frame).is_ok() && tx.send(frame).await.is_err()
                {
                    return;
                }
            }
        })
    });
    let mut decoder = TunnelDecoder::server_side();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(TUNNEL_IDLE, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
        };
        decoder.push(&buf[..n]);
        let mut datagrams = Vec::new();
        loop {
            match decoder.next_datagram() {
                Ok(Some((channel, d))) => datagrams.push((channel, d.to_vec())),
                Ok(None) => break,
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        for (channel, d) in datagrams {
            match channel {
                Channel::Rendezvous => {
                    let _ = proxy.send_to(&d, target).await;
                }
                Channel::Relay => shared.handle(leg, &d).await,
            }
        }
    }
}
