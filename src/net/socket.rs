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

use super::endpoint::{bind_udp, endpoint_config, EndpointError};
use super::identity::Identity;
use super::pin::ClientPolicy;
use super::tls::{server_config, ALPN_PEER};

/// Lifebuoy datagrams waiting to be read; more are dropped (they are
/// repeated by their senders).
const CONTROL_QUEUE: usize = 256;

/// quinn's socket plus a side channel for lifebuoy datagrams.
pub struct SharedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    raw: socket2::Socket,
    control: mpsc::Sender<(SocketAddr, Datagram)>,
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
            None => self.raw.send_to(&bytes, &to.into()).map(|_| ()),
            Some(ttl) => send_with_ttl(&self.raw, to, &bytes, ttl),
        }
    }
}

#[cfg(target_os = "linux")]
fn send_with_ttl(socket: &socket2::Socket, to: SocketAddr, bytes: &[u8], ttl: u8) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn, SockaddrIn6};
    use std::os::fd::AsRawFd;
    let iov = [io::IoSlice::new(bytes)];
    let ttl = i32::from(ttl);
    let result = match to {
        SocketAddr::V4(v4) => {
            let cmsg = [ControlMessage::Ipv4Ttl(&ttl)];
            sendmsg(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&SockaddrIn::from(v4)))
        }
        SocketAddr::V6(v6) => {
            let cmsg = [ControlMessage::Ipv6HopLimit(&ttl)];
            sendmsg(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&SockaddrIn6::from(v6)))
        }
    };
    result.map(|_| ()).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn send_with_ttl(socket: &socket2::Socket, to: SocketAddr, bytes: &[u8], _ttl: u8) -> io::Result<()> {
    // Without per-message TTL the probe goes out whole; timing alone then
    // keeps it from reaching the peer's NAT first.
    socket.send_to(bytes, &to.into()).map(|_| ())
}

impl AsyncUdpSocket for SharedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
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
                        let _ = self.control.try_send((meta[i].addr, d));
                    }
                    continue;
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

/// An agent's or viewer's endpoint: one socket for the rendezvous, the
/// punch probes, the relay and the peer.
#[derive(Debug)]
pub struct PeerEndpoint {
    /// The QUIC endpoint.
    pub quic: quinn::Endpoint,
    socket: Arc<SharedSocket>,
    control: tokio::sync::Mutex<mpsc::Receiver<(SocketAddr, Datagram)>>,
}

impl PeerEndpoint {
    /// Binds `addr`. Incoming connections are refused unless accepted with
    /// a pin (see [`super::make_endpoint`]).
    pub fn bind(addr: SocketAddr, identity: &Identity) -> Result<PeerEndpoint, EndpointError> {
        let std_socket = bind_udp(addr).map_err(|source| EndpointError::Bind { addr, source })?;
        let raw = socket2::Socket::from(
            std_socket.try_clone().map_err(|source| EndpointError::Bind { addr, source })?,
        );
        let inner = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, std_socket)
            .map_err(|source| EndpointError::Bind { addr, source })?;
        let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
        let socket = Arc::new(SharedSocket { inner, raw, control: tx });
        let (server, _) = server_config(identity, ClientPolicy::Nobody, ALPN_PEER)?;
        let quic = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config(),
            Some(server),
            socket.clone(),
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| EndpointError::Bind { addr, source })?;
        Ok(PeerEndpoint { quic, socket, control: tokio::sync::Mutex::new(rx) })
    }

    /// Where the socket is bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.quic.local_addr().expect("bound socket has an address")
    }

    /// Sends a lifebuoy datagram from the shared socket.
    pub fn send(&self, to: SocketAddr, datagram: &Datagram, ttl: Option<u8>) -> io::Result<()> {
        self.socket.send(to, datagram, ttl)
    }

    /// The next lifebuoy datagram that arrived.
    pub async fn recv(&self) -> Option<(SocketAddr, Datagram)> {
        self.control.lock().await.recv().await
    }
}
