//! The UDP socket and quinn endpoint.
//!
//! One endpoint per process serves the rendezvous connection and the peer
//! connection, so the address the rendezvous observes is the one the peer
//! must reach (hole punching depends on it).

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use super::identity::Identity;
use super::pin::ClientPolicy;
use super::tls::{server_config, TlsConfigError, ALPN_PEER};

/// Socket buffer size we ask for. Linux caps it at `net.core.rmem_max`
/// unless the process may force it; bursts of a screen update at tens of
/// MB/s overflow the 208 KiB default.
pub const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// A UDP socket bound to `addr` with raised buffers.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Both families on one socket where the OS allows it.
        let _ = socket.set_only_v6(false);
    }
    raise_buffers(&socket);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// An IPv6 socket on all interfaces that also carries IPv4 (as
/// IPv4-mapped addresses); an error where the system cannot do both.
pub fn bind_dual_stack() -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    raise_buffers(&socket);
    socket.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)).into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub(crate) fn raise_buffers(socket: &Socket) {
    // Best effort: a smaller buffer costs throughput, not correctness. As
    // root (or with CAP_NET_ADMIN) Linux lets us pass net.core.rmem_max.
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        if setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER).is_ok()
            && setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER).is_ok()
        {
            return;
        }
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
}

/// An endpoint on `addr`. Without `accepts_as` it only connects out. With
/// it, incoming connections are handed to `accept()`, and each must be
/// accepted with its own pin (`Incoming::accept_with`, as
/// `Session::accept` does): the endpoint's default configuration refuses
/// every client certificate, so a forgotten pin fails closed.
pub fn make_endpoint(
    addr: SocketAddr,
    accepts_as: Option<&Identity>,
) -> Result<quinn::Endpoint, EndpointError> {
    let server = match accepts_as {
        Some(identity) => Some(server_config(identity, ClientPolicy::Nobody, ALPN_PEER)?.0),
        None => None,
    };
    let socket = bind_udp(addr).map_err(|source| EndpointError::Bind { addr, source })?;
    quinn::Endpoint::new(endpoint_config(), server, socket, Arc::new(quinn::TokioRuntime))
        .map_err(|source| EndpointError::Bind { addr, source })
}

/// Endpoint settings for every lifebuoy endpoint: never grease the QUIC
/// fixed bit, so a first byte without it is always a lifebuoy datagram
/// (see `lifebuoy_proto::datagram`).
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    config.grease_quic_bit(false);
    config
}

/// An endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The UDP port is taken or not ours to use.
    #[error("cannot use UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}
