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
}

struct Shared {
    pairings: Arc<Mutex<Pairings>>,
    udp: Arc<UdpSocket>,
    legs: Legs,
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
        let shared = Arc::new(Shared { pairings: pairings.clone(), udp: socket, legs: Arc::default() });
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
        Ok(Relay { pairings, udp, tcp })
    }

    /// The UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.udp
    }

    /// The TCP tunnel address, if it runs.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
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
            Leg::Tcp(id) => {
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

async fn tcp_accept(listener: TcpListener, shared: Arc<Shared>, rendezvous: SocketAddr) {
    let next = AtomicU64::new(1);
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let Ok((stream, from)) = listener.accept().await else { continue };
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
            let _ = tunnel(id, stream, &shared, rendezvous).await;
            shared.legs.lock().expect("not poisoned").remove(&id);
            shared.pairings.lock().expect("not poisoned").forget(Leg::Tcp(id));
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

/// Serves one tunnel connection until it closes or idles out.
async fn tunnel(id: u64, stream: TcpStream, shared: &Shared, rendezvous: SocketAddr) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(TUNNEL_QUEUE);
    shared.legs.lock().expect("not poisoned").insert(id, tx.clone());
    // Channel 0: a UDP socket of its own towards the rendezvous, so the
    // rendezvous sees one address per tunnel.
    let local_ip: IpAddr =
        if rendezvous.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
    let proxy_bind = if rendezvous.ip().is_loopback() || rendezvous.ip().is_unspecified() {
        SocketAddr::new(local_ip, 0)
    } else {
        SocketAddr::new(
            if rendezvous.is_ipv4() { [0, 0, 0, 0].into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() },
            0,
        )
    };
    let target = if rendezvous.ip().is_unspecified() {
        SocketAddr::new(local_ip, rendezvous.port())
    } else {
        rendezvous
    };
    let proxy = Arc::new(UdpSocket::bind(proxy_bind).await?);
    let writer_task = tokio::spawn(write_frames(writer, rx));
    let proxy_back = {
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
    };
    let mut decoder = TunnelDecoder::server_side();
    let mut buf = vec![0u8; 64 * 1024];
    let result = loop {
        let n = match tokio::time::timeout(TUNNEL_IDLE, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break Ok(()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => break Err(e),
        };
        decoder.push(&buf[..n]);
        let mut datagrams = Vec::new();
        loop {
            match decoder.next_datagram() {
                Ok(Some((channel, d))) => datagrams.push((channel, d.to_vec())),
                Ok(None) => break,
                Err(_) => return Ok(()),
            }
        }
        for (channel, d) in datagrams {
            match channel {
                Channel::Rendezvous => {
                    let _ = proxy.send_to(&d, target).await;
                }
                Channel::Relay => shared.handle(Leg::Tcp(id), &d).await,
            }
        }
    };
    writer_task.abort();
    proxy_back.abort();
    result
}
