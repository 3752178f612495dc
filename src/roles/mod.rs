//! The roles the `lifebuoy` command runs, without a window: the rendezvous
//! server, and headless drivers of the agent and viewer flows (used by the
//! NAT lab and scripted tests; the windows of the GUI drive the same steps).

#[cfg(feature = "desktop")]
pub mod agent;
pub mod backoff;
pub mod files;
pub mod path;
pub mod probe;
pub mod rendezvous;
#[cfg(feature = "desktop")]
pub mod sharing;
pub mod viewer;

use std::net::SocketAddr;
use std::time::Duration;

use lifebuoy_proto::Fingerprint;

use crate::net::socket::{Accepting, PeerEndpoint};
use crate::rendezvous::client::RendezvousClient;
use crate::session::{LocalSide, SessionError};

/// Prints a line for the person (or script) watching; a closed stdout
/// (a service manager, a reader that went away) must not stop the program.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

/// Where the company's rendezvous is and which key it must hold.
#[derive(Clone, Copy, Debug)]
pub struct CompanyServer {
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Its fingerprint.
    pub pin: Fingerprint,
    /// TCP port of the tunnel on the same host (5511).
    pub tunnel_port: u16,
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ending {
    /// This side ended it (button, window closed, tray, signal).
    Here,
    /// The customer did not let the technician in (on the customer's side;
    /// the technician sees `ByPeer(CustomerDeclined)`).
    Declined,
    /// The other side ended it, and said why.
    ByPeer(lifebuoy_proto::control::EndReason),
    /// The connection was lost or closed without a word.
    Lost(String),
}

impl Ending {
    /// How a session ended that this side did not end: the other side's
    /// word if it gave one, else why the connection closed.
    pub fn after(peer: Option<lifebuoy_proto::control::EndReason>, why: SessionError) -> Ending {
        use lifebuoy_proto::close::CloseCode;
        use lifebuoy_proto::control::EndReason;
        match (peer, &why) {
            (Some(reason), _) => Ending::ByPeer(reason),
            // The close overtook the End message: its reason says the same.
            (None, SessionError::PeerClosed { code: CloseCode::Ended, reason }) => {
                EndReason::from_name(reason).map_or_else(|| Ending::Lost(why.to_string()), Ending::ByPeer)
            }
            (None, _) => Ending::Lost(why.to_string()),
        }
    }
}

impl Ending {
    /// How a session ends once the peer's control stream is over. After
    /// the peer's End this side closes the connection itself rather than
    /// wait for the peer's close, which may never come (the relay can
    /// forget the pair before it forwarded the close).
    pub async fn after_control(
        peer: Option<lifebuoy_proto::control::EndReason>,
        link: &crate::session::Link,
    ) -> Ending {
        match peer {
            Some(reason) => {
                link.close(lifebuoy_proto::close::CloseCode::Ended, reason.name());
                Ending::ByPeer(reason)
            }
            None => Ending::after(None, link.closed().await),
        }
    }
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Here => write!(f, "ended on this side"),
            Ending::Declined => write!(f, "the customer did not allow the session"),
            Ending::ByPeer(reason) => write!(f, "ended by the other side ({reason:?})"),
            Ending::Lost(why) => write!(f, "connection lost: {why}"),
        }
    }
}

/// Why a role could not go on, as a kind the window can translate and the
/// detail for the curious.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Failure {
    /// Neither UDP nor the TCP tunnel reached the company's server.
    #[error("the company server cannot be reached: {0}")]
    Unreachable(String),
    /// The company's server answered but refused (wrong key, not listed).
    #[error("the company server refused: {0}")]
    Refused(String),
    /// The company's server is full or this network sent it too much.
    #[error("the company server is busy: {0}")]
    Busy(String),
    /// The company's server went away.
    #[error("the company server ended the connection{0}")]
    CompanyServerGone(String),
    /// No path to the other side worked.
    #[error("cannot reach the other side: {0}")]
    Peer(String),
    /// This machine could not do its part.
    #[error("{0}")]
    Local(String),
}

impl Failure {
    /// A failure talking to the company's server after sign-in.
    pub fn company(e: SessionError) -> Failure {
        Failure::CompanyServerGone(format!(": {e}"))
    }
}

/// Puts a tee in a driver's events: each goes into the audit log (as far
/// as `records` says it belongs there), then on to `events`.
pub fn audited<E: Send + 'static>(
    audit: Option<crate::audit::AuditLog>,
    events: tokio::sync::mpsc::Sender<E>,
    records: fn(&E) -> Option<crate::audit::Record>,
) -> (tokio::sync::mpsc::Sender<E>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<E>(256);
    let forwarder = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let (Some(log), Some(record)) = (&audit, records(&event)) {
                log.record(&record);
            }
            if events.send(event).await.is_err() {
                // Nobody listens any more; the log still gets the rest.
                while let Some(event) = rx.recv().await {
                    if let (Some(log), Some(record)) = (&audit, records(&event)) {
                        log.record(&record);
                    }
                }
                break;
            }
        }
    });
    (tx, forwarder)
}

/// How long UDP gets before the TCP tunnel is tried beside it.
pub const UDP_HEAD_START: Duration = Duration::from_millis(1500);

/// Signs in to the rendezvous over UDP, or through the TCP tunnel when UDP
/// gets no answer; the endpoint returned is the one to use for the peer.
/// `trying_tcp` is called when UDP got no answer in time and TCP is tried.
pub async fn sign_in(
    server: &CompanyServer,
    local: &LocalSide,
    trying_tcp: impl FnOnce(),
) -> Result<(PeerEndpoint, RendezvousClient), Failure> {
    // Only the technician's side takes connections from the peer.
    let accepting = match local.role {
        lifebuoy_proto::Role::Viewer => Accepting::WhilePunching,
        _ => Accepting::Never,
    };
    let over_udp = async {
        let endpoint = PeerEndpoint::bind_all(server.addr, &local.identity, accepting)?;
        let client = RendezvousClient::connect(&endpoint.quic, server.addr, local, server.pin).await?;
        Ok::<_, SessionError>((endpoint, client))
    };
    let over_tcp = async {
        tokio::time::sleep(UDP_HEAD_START).await;
        let tcp = SocketAddr::new(server.addr.ip(), server.tunnel_port);
        eprintln!("no answer from the company server over UDP {}; trying TCP {tcp}", server.addr);
        trying_tcp();
        let endpoint = PeerEndpoint::tunnel(tcp, server.addr, &local.identity, accepting).await?;
        let client = RendezvousClient::connect(&endpoint.quic, server.addr, local, server.pin).await?;
        Ok::<_, SessionError>((endpoint, client))
    };
    tokio::pin!(over_udp, over_tcp);
    let (mut udp_done, mut tcp_done) = (false, false);
    loop {
        let result = tokio::select! {
            r = &mut over_udp, if !udp_done => { udp_done = true; r }
            r = &mut over_tcp, if !tcp_done => { tcp_done = true; r }
        };
        match result {
            Ok(signed_in) => return Ok(signed_in),
            Err(e @ SessionError::PeerClosed { code: lifebuoy_proto::close::CloseCode::Busy, .. }) => {
                return Err(Failure::Busy(format!("{}: {e}", server.addr)));
            }
            // A refusal or a wrong key is an answer: no point trying the other way.
            Err(e)
                if !matches!(
                    e,
                    SessionError::Timeout { .. }
                        | SessionError::Lost(_)
                        | SessionError::Connect(_)
                        | SessionError::Endpoint(_)
                ) =>
            {
                return Err(Failure::Refused(format!("{}: {e}", server.addr)));
            }
            Err(e) if udp_done && tcp_done => {
                return Err(Failure::Unreachable(format!(
                    "UDP {} and TCP port {} are blocked or it is down ({e})",
                    server.addr, server.tunnel_port
                )));
            }
            Err(e) => tracing::debug!("sign-in attempt failed: {e}"),
        }
    }
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

#[cfg(test)]
mod tests {
    use lifebuoy_proto::close::CloseCode;
    use lifebuoy_proto::control::EndReason;

    use super::*;

    #[test]
    fn an_end_is_the_peers_word_even_when_the_close_overtook_it() {
        let closed = |code, reason: &str| SessionError::PeerClosed { code, reason: reason.into() };
        for reason in EndReason::ALL {
            assert_eq!(Ending::after(None, closed(CloseCode::Ended, reason.name())), Ending::ByPeer(reason));
            assert_eq!(
                Ending::after(Some(reason), closed(CloseCode::Ended, "anything")),
                Ending::ByPeer(reason)
            );
        }
        assert!(matches!(Ending::after(None, closed(CloseCode::Ended, "no such reason")), Ending::Lost(_)));
        assert!(matches!(Ending::after(None, SessionError::StreamClosed), Ending::Lost(_)));
    }
}
