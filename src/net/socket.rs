//! One UDP socket for QUIC and for lifebuoy's own datagrams.
//!
//! Hole punching needs the NAT mapping the rendezvous observed, so punch
//! probes and relay bindings must leave from the very socket quinn uses.
//! [`SharedSocket`] wraps quinn's socket: QUIC goes through untouched,
//! datagrams that start with lifebuoy's magic are taken out of the receive
//! path and handed to the punching code, and probes can be sent with a
//! small TTL (so they open our own NAT without reaching the peer's).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use lifebuoy_proto::datagram::{is_lifebuoy, Datagram};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

use super::endpoint::{bind_dual_stack, bind_udp, endpoint_config, EndpointError};
use super::identity::Identity;
use super::pin::ClientPolicy;
use super::tls::{server_config, ALPN_PEER};
use super::tunnel::TcpTunnel;
use super::window::{gate, Window};
pub use super::window::{Accepting, PunchWindow};

/// Lifebuoy datagrams waiting to be read; more are dropped (they are
/// repeated by their senders).
const CONTROL_QUEUE: usize = 256;

/// quinn's socket plus a side channel for lifebuoy datagrams.
pub struct SharedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    raw: socket2::Socket,
    /// An IPv6 socket, both families where the system allows: IPv4
    /// destinations go out in their IPv4-mapped form.
    v6: bool,
    control: mpsc::Sender<(SocketAddr, Datagram)>,
    redirects: Redirects,
}

/// Where a peer's packets really go when its NAT moved it: QUIC keeps the
/// address it knows the peer by; the socket sends to, and hears from, the
/// address that works now (see [`PathHandle::redirect`]). A handful at
/// most (one per session).
type Redirects = Arc<std::sync::RwLock<Vec<Redirect>>>;

#[derive(Clone, Copy, Debug)]
struct Redirect {
    /// The address QUIC knows the peer by.
    quic: SocketAddr,
    /// Where the peer is now.
    wire: SocketAddr,
}

/// One address whatever its spelling (an IPv4 address or its IPv6-mapped
/// form on a dual-stack socket).
pub fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

impl fmt::Debug for SharedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSocket").field("local", &self.inner.local_addr().ok()).finish()
    }
}

impl SharedSocket {
    /// Sends a lifebuoy datagram, with the given TTL (hop limit) if any.
    pub fn send(&self, to: SocketAddr, datagram: &Datagram, ttl: Option<u8>) -> io::Result<()> {
        let bytes = datagram.encode();
        match ttl {
            None => self.raw.send_to(&bytes, &self.wire(to).into()).map(|_| ()),
            Some(ttl) => send_with_ttl(&self.raw, to, self.v6, &bytes, ttl),
        }
    }

    /// `to` as this socket's family spells it.
    fn wire(&self, to: SocketAddr) -> SocketAddr {
        spelled_for(to, self.v6)
    }
}

/// `to` as a socket of the given family spells it: on an IPv6 socket an
/// IPv4 address is IPv4-mapped.
fn spelled_for(to: SocketAddr, v6: bool) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) if v6 => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        _ => to,
    }
}

/// `from` in its canonical form (an IPv4-mapped address as IPv4), as the
/// rest of lifebuoy compares and shows addresses.
pub fn canonical(from: SocketAddr) -> SocketAddr {
    SocketAddr::new(from.ip().to_canonical(), from.port())
}

#[cfg(target_os = "linux")]
fn send_with_ttl(
    socket: &socket2::Socket,
    to: SocketAddr,
    v6: bool,
    bytes: &[u8],
    ttl: u8,
) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn, SockaddrIn6};
    use std::os::fd::AsRawFd;
    let iov = [io::IoSlice::new(bytes)];
    let ttl = i32::from(ttl);
    // An IPv4 packet's TTL, also when it leaves an IPv6 socket mapped.
    let cmsg = match to {
        SocketAddr::V4(_) => [ControlMessage::Ipv4Ttl(&ttl)],
        SocketAddr::V6(_) => [ControlMessage::Ipv6HopLimit(&ttl)],
    };
    let result = match spelled_for(to, v6) {
        SocketAddr::V4(v4) => {
            sendmsg(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&SockaddrIn::from(v4)))
        }
        SocketAddr::V6(v6) => {
            sendmsg(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&SockaddrIn6::from(v6)))
        }
    };
    result.map(|_| ()).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn send_with_ttl(
    socket: &socket2::Socket,
    to: SocketAddr,
    v6: bool,
    bytes: &[u8],
    _ttl: u8,
) -> io::Result<()> {
    // Without per-message TTL the probe goes out whole; timing alone then
    // keeps it from reaching the peer's NAT first.
    socket.send_to(bytes, &spelled_for(to, v6).into()).map(|_| ())
}

impl AsyncUdpSocket for SharedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let redirects = self.redirects.read().expect("not poisoned");
        match redirects.iter().find(|r| same(r.quic, transmit.destination)) {
            Some(r) => self.inner.try_send(&Transmit {
                destination: self.wire(r.wire),
                ecn: transmit.ecn,
                contents: transmit.contents,
                segment_size: transmit.segment_size,
                src_ip: transmit.src_ip,
            }),
            None => self.inner.try_send(transmit),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let n = ready!(self.inner.poll_recv(cx, bufs, meta))?;
            let mut kept = 0;
            for i in 0..n {
                let len = meta[i].len;
                let ours = len > 0 && meta[i].stride == len && is_lifebuoy(bufs[i][0]);
                if ours {
                    if let Ok(d) = Datagram::decode(&bufs[i][..len]) {
                        let _ = self.control.try_send((canonical(meta[i].addr), d));
                    }
                    continue;
                }
                if let Some(r) =
                    self.redirects.read().expect("not poisoned").iter().find(|r| same(r.wire, meta[i].addr))
                {
                    meta[i].addr = r.quic;
                }
                if kept != i {
                    let (head, tail) = bufs.split_at_mut(i);
                    head[kept][..len].copy_from_slice(&tail[0][..len]);
                    meta[kept] = meta[i];
                }
                kept += 1;
            }
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// What carries an endpoint's datagrams.
#[derive(Debug)]
enum Transport {
    Udp(Arc<SharedSocket>),
    Tunnel(Arc<TcpTunnel>),
}

/// An agent's or viewer's endpoint: one socket for the rendezvous, the
/// punch probes, the relay and the peer.
#[derive(Debug)]
pub struct PeerEndpoint {
    /// The QUIC endpoint.
    pub quic: quinn::Endpoint,
    transport: Transport,
    control: tokio::sync::Mutex<mpsc::Receiver<(SocketAddr, Datagram)>>,
    window: Window,
    gate: Option<tokio::task::JoinHandle<()>>,
}

impl PeerEndpoint {
    /// Binds `addr`; peers' connections are taken as `accepting` says.
    pub fn bind(
        addr: SocketAddr,
        identity: &Identity,
        accepting: Accepting,
    ) -> Result<PeerEndpoint, EndpointError> {
        let std_socket = bind_udp(addr).map_err(|source| EndpointError::Bind { addr, source })?;
        Self::on_socket(std_socket, identity, accepting)
    }

    /// Binds all interfaces, any port, for talking to `server` and to
    /// peers: IPv4 and IPv6 on one socket where the system allows (a peer
    /// may be reachable over IPv6 only, or without a NAT there), else the
    /// server's family alone.
    pub fn bind_all(
        server: SocketAddr,
        identity: &Identity,
        accepting: Accepting,
    ) -> Result<PeerEndpoint, EndpointError> {
        let any = |v6: bool| match v6 {
            true => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            false => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
        };
        let both = bind_dual_stack().and_then(|socket| {
            Self::on_socket(socket, identity, accepting).map_err(|e| io::Error::other(e.to_string()))
        });
        match both {
            Ok(endpoint) => Ok(endpoint),
            Err(e) => {
                tracing::info!(
                    "one socket for IPv4 and IPv6 is not possible here ({e}); {} only",
                    match server {
                        SocketAddr::V4(_) => "IPv4",
                        SocketAddr::V6(_) => "IPv6",
                    }
                );
                Self::bind(any(server.is_ipv6()), identity, accepting)
            }
        }
    }

    /// An endpoint on a socket already bound (non-blocking), as `bind`.
    pub fn on_socket(
        std_socket: std::net::UdpSocket,
        identity: &Identity,
        accepting: Accepting,
    ) -> Result<PeerEndpoint, EndpointError> {
        let addr = std_socket.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let bind_err = |source| EndpointError::Bind { addr, source };
        let raw = socket2::Socket::from(std_socket.try_clone().map_err(bind_err)?);
        let inner = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, std_socket).map_err(bind_err)?;
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
        let v6 = addr.is_ipv6();
        let socket = Arc::new(SharedSocket { inner, raw, v6, control: tx, redirects: Redirects::default() });
        let quic = Self::endpoint(identity, socket.clone(), accepting).map_err(|e| e.at(addr))?;
        Ok(Self::new(quic, Transport::Udp(socket), rx, accepting))
    }

    /// An endpoint whose datagrams travel through the relay's TCP tunnel at
    /// `tcp`, for networks that block UDP. `rendezvous` is the address the
    /// rendezvous will be dialled at (tunnel channel 0).
    pub async fn tunnel(
        tcp: SocketAddr,
        rendezvous: SocketAddr,
        identity: &Identity,
        accepting: Accepting,
    ) -> Result<PeerEndpoint, EndpointError> {
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
        let tunnel = TcpTunnel::connect(tcp, rendezvous, tx)
            .await
            .map_err(|source| EndpointError::Bind { addr: tcp, source })?;
        let quic = Self::endpoint(identity, tunnel.clone(), accepting).map_err(|e| e.at(tcp))?;
        Ok(Self::new(quic, Transport::Tunnel(tunnel), rx, accepting))
    }

    fn new(
        quic: quinn::Endpoint,
        transport: Transport,
        control: mpsc::Receiver<(SocketAddr, Datagram)>,
        accepting: Accepting,
    ) -> PeerEndpoint {
        let window = Window::default();
        let gate =
            (accepting == Accepting::WhilePunching).then(|| tokio::spawn(gate(quic.clone(), window.clone())));
        PeerEndpoint { quic, transport, control: tokio::sync::Mutex::new(control), window, gate }
    }

    fn endpoint(
        identity: &Identity,
        socket: Arc<dyn AsyncUdpSocket>,
        accepting: Accepting,
    ) -> Result<quinn::Endpoint, EndpointSetup> {
        let server = match accepting {
            Accepting::Never => None,
            // Each connection is accepted with its own pin (`Session::accept`);
            // the endpoint's default refuses every client certificate.
            Accepting::WhilePunching => {
                Some(server_config(identity, ClientPolicy::Nobody, ALPN_PEER).map_err(EndpointSetup::Tls)?.0)
            }
        };
        quinn::Endpoint::new_with_abstract_socket(
            endpoint_config(),
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(EndpointSetup::Io)
    }

    /// Opens the endpoint to peers' connections until the returned window
    /// is dropped. Without a server side (the agent) nothing ever comes.
    pub fn open_window(&self) -> PunchWindow {
        PunchWindow::open(&self.window)
    }

    /// What moves a session's packets to where its peer is now; none in
    /// the TCP tunnel (its path is the tunnel's).
    pub fn path_handle(&self) -> Option<PathHandle> {
        match &self.transport {
            Transport::Udp(socket) => Some(PathHandle(socket.clone())),
            Transport::Tunnel(_) => None,
        }
    }

    /// Whether datagrams go through the TCP tunnel.
    pub fn is_tunnel(&self) -> bool {
        matches!(self.transport, Transport::Tunnel(_))
    }

    /// Where the socket is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.quic.local_addr().expect("bound socket has an address")
    }

    /// Sends a lifebuoy datagram from the shared socket (the TTL is ignored
    /// in the tunnel).
    pub fn send(&self, to: SocketAddr, datagram: &Datagram, ttl: Option<u8>) -> io::Result<()> {
        match &self.transport {
            Transport::Udp(socket) => socket.send(to, datagram, ttl),
            Transport::Tunnel(tunnel) => {
                tunnel.send(to, datagram);
                Ok(())
            }
        }
    }

    /// Tells the relay the session of `token` is over, so it forgets the
    /// pair now (sent twice: a datagram may be lost, and no answer comes).
    pub fn release_relay(&self, relay: SocketAddr, token: [u8; 16]) {
        let release = Datagram::RelayRelease { token };
        for _ in 0..2 {
            let _ = self.send(relay, &release, None);
        }
    }

    /// The next lifebuoy datagram that arrived.
    pub async fn recv(&self) -> Option<(SocketAddr, Datagram)> {
        self.control.lock().await.recv().await
    }
}

impl Drop for PeerEndpoint {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.abort();
        }
    }
}

/// A session's hold on its endpoint's socket, for moving the path.
#[derive(Clone, Debug)]
pub struct PathHandle(Arc<SharedSocket>);

impl PathHandle {
    /// From now on, QUIC packets for `quic` go to `wire`, and packets from
    /// `wire` reach QUIC as from `quic` (`wire == quic` ends the detour).
    pub fn redirect(&self, quic: SocketAddr, wire: SocketAddr) {
        let mut redirects = self.0.redirects.write().expect("not poisoned");
        redirects.retain(|r| !same(r.quic, quic));
        if !same(quic, wire) {
            redirects.push(Redirect { quic, wire });
        }
    }

    /// Ends every detour for `quic` (the session is over).
    pub fn forget(&self, quic: SocketAddr) {
        self.redirect(quic, quic);
    }

    /// Sends a lifebuoy datagram (a probe that opens this side's NAT).
    pub fn send(&self, to: SocketAddr, datagram: &Datagram) -> io::Result<()> {
        self.0.send(to, datagram, None)
    }
}

enum EndpointSetup {
    Tls(super::tls::TlsConfigError),
    Io(io::Error),
}

impl EndpointSetup {
    fn at(self, addr: SocketAddr) -> EndpointError {
        match self {
            EndpointSetup::Tls(e) => EndpointError::Tls(e),
            EndpointSetup::Io(source) => EndpointError::Bind { addr, source },
        }
    }
}
