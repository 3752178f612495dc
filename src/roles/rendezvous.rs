//! `lifebuoy rendezvous`: the company's server until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::say;
use crate::net::Identity;
use crate::rendezvous::server::{Limits, Server, ServerConfig};

/// Runs the server until Ctrl+C or SIGTERM.
pub async fn run(
    identity: Identity,
    listen: SocketAddr,
    staff: PathBuf,
    relay: Option<SocketAddr>,
    relay_tcp: Option<SocketAddr>,
    limits: Limits,
) -> anyhow::Result<()> {
    let fingerprint = identity.fingerprint();
    let server = Server::start(ServerConfig {
        listen,
        identity: Arc::new(identity),
        directory: staff,
        relay,
        relay_tcp,
        limits,
    })
    .await?;
    say!("rendezvous listening on {} (UDP)", server.local_addr());
    if let Some(relay) = server.relay_addr() {
        say!("relay listening on {relay} (UDP)");
    }
    if let Some(tcp) = server.relay_tcp_addr() {
        say!("relay tunnel listening on {tcp} (TCP)");
    }
    say!("rendezvous fingerprint {fingerprint}");
    super::shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}
