//! The roles the `lifebuoy` command runs, without a window: the rendezvous
//! server, and headless drivers of the agent and viewer flows (used by the
//! NAT lab and scripted tests; the windows of the GUI drive the same steps).

pub mod agent;
pub mod rendezvous;
pub mod viewer;

use std::net::SocketAddr;

use lifebuoy_proto::Fingerprint;

/// Where the company's rendezvous is and which key it must hold.
#[derive(Clone, Copy, Debug)]
pub struct CompanyServer {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Its fingerprint.
    pub pin: Fingerprint,
}

impl CompanyServer {
    /// The relay's address, from the port the go signal names.
    pub fn relay(&self, port: u16) -> Option<SocketAddr> {
        (port != 0).then(|| SocketAddr::new(self.addr.ip(), port))
    }
}

/// Ctrl+C, or SIGTERM (systemd, kill, the tray's Close).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The local address to bind for talking to `server`: all interfaces of
/// the same family, any port.
pub fn bind_addr_for(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("literal"),
    }
}
