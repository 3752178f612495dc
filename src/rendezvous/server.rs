//! The rendezvous server shell: accepts QUIC connections on 5515, checks
//! who is calling, and feeds the [`Registry`] from one task that owns it.
//!
//! Each connection has a reader task (rate-limited) and a writer task with
//! a bounded queue; a client that cannot keep up with what it is sent is
//! disconnected rather than allowed to grow the server's memory.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy_proto::close::CloseCode;
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy_proto::{Fingerprint, Role, StreamKind};
use tokio::sync::{mpsc, oneshot};

use super::admission::{source_of, Admission, AdmissionLimits, Verdict};
use super::directory::{Directory, DirectoryError};
use super::limits::{Bucket, KeyedLimiter, Rate};
use super::registry::{Action, ConnId, ConnectRefused, Registry, RegistryLimits, Who};
use super::relay_server::{Relay, TunnelClients};
use crate::net::identity::Identity;
use crate::net::pin::ClientPolicy;
use crate::net::tls::{server_config, ALPN_RENDEZVOUS};
use crate::net::EndpointError;
use crate::session::{read_hello, FramedRecv, FramedSend, LocalSide, SessionError, HANDSHAKE_TIMEOUT};

/// Abuse limits. The defaults suit a company with up to a few thousand
/// customers online at once.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Clients signed in at once, in all.
    pub max_connections: usize,
    /// Of those, how many only technicians may take: customers get the
    /// rest, so a flood of them cannot lock the staff out.
    pub staff_reserve: usize,
    /// Who may start a connection (per source, handshakes, Retry).
    pub admission: AdmissionLimits,
    /// Messages per connection.
    pub messages_per_connection: Rate,
    /// Session requests per source.
    pub requests_per_source: Rate,
    /// Session requests waiting at once from one source.
    pub open_requests_per_source: usize,
    /// Messages queued for one client before it counts as too slow.
    pub outbox: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 20_000,
            staff_reserve: 1_000,
            admission: AdmissionLimits::default(),
            messages_per_connection: Rate { per_second: 20.0, burst: 50.0 },
            requests_per_source: Rate { per_second: 2.0, burst: 30.0 },
            open_requests_per_source: 8,
            outbox: 64,
        }
    }
}

impl Limits {
    /// The defaults for a server of `max` clients at once, a twentieth of
    /// them kept for the staff.
    pub fn with_max_connections(max: usize) -> Limits {
        Limits { max_connections: max, staff_reserve: (max / 20).max(8).min(max / 2), ..Limits::default() }
    }

    fn registry(&self) -> RegistryLimits {
        RegistryLimits {
            customers: self.max_connections.saturating_sub(self.staff_reserve),
            open_requests_per_source: self.open_requests_per_source,
        }
    }
}

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// UDP address to listen on (5515).
    pub listen: SocketAddr,
    /// The server's long-lived key.
    pub identity: Arc<Identity>,
    /// The staff directory file; reloaded when it changes or on SIGHUP.
    pub directory: PathBuf,
    /// UDP address of the relay (5510); `None` runs no relay.
    pub relay: Option<SocketAddr>,
    /// TCP address of the tunnel to the relay and rendezvous (5511), for
    /// networks that block UDP; only with a relay.
    pub relay_tcp: Option<SocketAddr>,
    /// Abuse limits.
    pub limits: Limits,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The directory file is missing or wrong.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The port could not be used.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

/// A running server.
pub struct Server {
    endpoint: quinn::Endpoint,
    relay: Option<Relay>,
    stats: Arc<Stats>,
    reload: mpsc::Sender<()>,
}

/// Counters, for logs and the load test.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections signed in now.
    pub connections: AtomicU64,
    /// Requests forwarded to a technician, ever.
    pub requests: AtomicU64,
    /// Connections refused or dropped by a limit, ever.
    pub limited: AtomicU64,
}

enum Event {
    Connected {
        conn: ConnId,
        who: Who,
        observed: SocketAddr,
        source: IpAddr,
        rtt: Duration,
        outbox: mpsc::Sender<FromRendezvous>,
        handle: quinn::Connection,
        reply: oneshot::Sender<Result<(), ConnectRefused>>,
    },
    Message {
        conn: ConnId,
        msg: ToRendezvous,
        rtt: Duration,
    },
    Disconnected {
        conn: ConnId,
    },
    Directory(Directory),
}

impl Server {
    /// Binds the port, loads the directory and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let directory = Directory::load(&config.directory)?;
        let (quic, _) = server_config(&config.identity, ClientPolicy::AnyProvenKey, ALPN_RENDEZVOUS)
            .map_err(EndpointError::from)?;
        let socket = crate::net::endpoint::bind_udp(config.listen)
            .map_err(|source| EndpointError::Bind { addr: config.listen, source })?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config(&config.identity),
            Some(quic),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| EndpointError::Bind { addr: config.listen, source })?;
        let stats = Arc::new(Stats::default());
        let (events_tx, events_rx) = mpsc::channel(4096);
        let relay = match config.relay {
            Some(addr) => Some(
                Relay::start(
                    addr,
                    config.relay_tcp,
                    endpoint.local_addr().map_err(|source| EndpointError::Bind { addr, source })?,
                )
                .await
                .map_err(|source| EndpointError::Bind { addr, source })?,
            ),
            None => None,
        };
        let relay_port = relay.as_ref().map_or(0, |r| r.local_addr().port());
        let registry = Registry::new(directory, relay_port, Box::new(rand::random), config.limits.registry());
        tokio::spawn(core(registry, events_rx, stats.clone(), relay.clone()));
        let (reload_tx, reload_rx) = mpsc::channel(1);
        tokio::spawn(watch_directory(config.directory.clone(), events_tx.clone(), reload_rx));
        let local = LocalSide {
            identity: config.identity.clone(),
            role: Role::Rendezvous,
            name: String::new(),
            capabilities: Capabilities::default(),
        };
        let tunnels = relay.as_ref().map(Relay::tunnel_clients).unwrap_or_default();
        tokio::spawn(accept_loop(endpoint.clone(), local, config.limits, tunnels, events_tx, stats.clone()));
        Ok(Server { endpoint, relay, stats, reload: reload_tx })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().expect("bound socket has an address")
    }

    /// Where the relay listens, if it runs.
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay.as_ref().map(Relay::local_addr)
    }

    /// Where the TCP tunnel listens, if it runs.
    pub fn relay_tcp_addr(&self) -> Option<SocketAddr> {
        self.relay.as_ref().and_then(Relay::tcp_addr)
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Reloads the directory now (what SIGHUP does).
    pub async fn reload(&self) {
        let _ = self.reload.send(()).await;
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(&self) {
        self.endpoint.close(CloseCode::Ended.to_u32().into(), b"server shutting down");
        self.endpoint.wait_idle().await;
    }
}

/// The rendezvous's endpoint settings: its stateless-reset key and the
/// key that marks its connection IDs come from its own key, so after a
/// crash or restart the same server recognises the connection IDs of its
/// old run and answers each client's next keep-alive with a valid reset:
/// they sign in again within seconds instead of waiting out the idle
/// timeout.
fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    let reset = identity.derive_secret("lifebuoy rendezvous 2026 QUIC stateless reset");
    let mut config =
        quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset)));
    let cid = identity.derive_secret("lifebuoy rendezvous 2026 QUIC connection ID");
    let cid_key = u64::from_le_bytes(cid[..8].try_into().expect("8 of 32 bytes"));
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    config.grease_quic_bit(false);
    config
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    local: LocalSide,
    limits: Limits,
    tunnels: TunnelClients,
    events: mpsc::Sender<Event>,
    stats: Arc<Stats>,
) {
    let next_id = AtomicU64::new(1);
    let admission = Arc::new(std::sync::Mutex::new(Admission::new(limits.admission)));
    let requests =
        Arc::new(std::sync::Mutex::new(KeyedLimiter::<IpAddr>::new(limits.requests_per_source, 100_000)));
    let local = Arc::new(local);
    while let Some(incoming) = endpoint.accept().await {
        // A client behind the TCP tunnel counts as where its TCP came from.
        let remote = incoming.remote_address();
        let source = source_of(tunnels.client_of(remote).unwrap_or(remote.ip()));
        let verdict = admission.lock().expect("not poisoned").arrive(
            source,
            incoming.remote_address_validated(),
            Instant::now(),
        );
        match verdict {
            Verdict::Accept => {}
            Verdict::Retry => {
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
                continue;
            }
            Verdict::Ignore(_) => {
                stats.limited.fetch_add(1, Ordering::Relaxed);
                // No reply: a flood gets nothing to amplify.
                incoming.ignore();
                continue;
            }
        }
        let conn_id = next_id.fetch_add(1, Ordering::Relaxed);
        let ctx = ConnCtx {
            id: conn_id,
            local: local.clone(),
            limits,
            events: events.clone(),
            requests: requests.clone(),
            stats: stats.clone(),
            source,
        };
        let held = Held { admission: admission.clone(), source, handshaking: true };
        tokio::spawn(async move {
            let result = serve_connection(incoming, &ctx, held).await;
            if let Err(e) = result {
                tracing::debug!(conn = conn_id, %source, "connection ended: {e}");
            }
        });
    }
}

/// A connection's place in the admission counts, given back however the
/// connection ends.
struct Held {
    admission: Arc<std::sync::Mutex<Admission>>,
    source: IpAddr,
    handshaking: bool,
}

impl Held {
    fn signed_in(&mut self, staff: bool) {
        self.admission.lock().expect("not poisoned").signed_in(self.source, staff);
        self.handshaking = false;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.admission.lock().expect("not poisoned").gone(self.source, self.handshaking);
    }
}

struct ConnCtx {
    id: ConnId,
    local: Arc<LocalSide>,
    limits: Limits,
    events: mpsc::Sender<Event>,
    requests: Arc<std::sync::Mutex<KeyedLimiter<IpAddr>>>,
    stats: Arc<Stats>,
    /// Where it counts for limits.
    source: IpAddr,
}

async fn serve_connection(
    incoming: quinn::Incoming,
    ctx: &ConnCtx,
    mut held: Held,
) -> Result<(), SessionError> {
    let setup = async {
        let conn = incoming.await.map_err(SessionError::from_connection)?;
        let fingerprint = peer_fingerprint(&conn).ok_or(SessionError::NoPeerCertificate)?;
        let (send, mut recv) = conn.accept_bi().await.map_err(SessionError::from_connection)?;
        let mut tag = [0u8; 1];
        recv.read_exact(&mut tag).await.map_err(|_| SessionError::StreamClosed)?;
        if StreamKind::from_tag(tag[0]) != Some(StreamKind::Rendezvous) {
            conn.close(CloseCode::ProtocolError.to_u32().into(), b"expected the rendezvous stream");
            return Err(SessionError::UnexpectedStream);
        }
        let mut rx = FramedRecv::<lifebuoy_proto::Hello>::new(recv);
        let mut tx = FramedSend::<lifebuoy_proto::Hello>::new(send);
        let hello = match read_hello(&mut rx).await {
            Ok(h) => h,
            Err(e) => {
                if matches!(e, SessionError::Version(_)) {
                    // Tell the client our version before closing.
                    let _ = tx.send(&ctx.local.hello([0; 32])).await;
                    let _ = tx.finish();
                    let _ = tokio::time::timeout(Duration::from_secs(1), tx.stopped()).await;
                    conn.close(CloseCode::VersionMismatch.to_u32().into(), e.to_string().as_bytes());
                } else {
                    conn.close(CloseCode::ProtocolError.to_u32().into(), e.to_string().as_bytes());
                }
                return Err(e);
            }
        };
        let who = match hello.role {
            Role::Agent => Who::Agent(fingerprint),
            Role::Viewer => Who::Viewer(fingerprint),
            Role::Rendezvous => {
                conn.close(CloseCode::RoleMismatch.to_u32().into(), b"a rendezvous cannot sign in");
                return Err(SessionError::RoleMismatch { ours: Role::Rendezvous, theirs: hello.role });
            }
        };
        Ok((conn, who, tx, rx))
    };
    let (conn, who, mut tx, rx) = tokio::time::timeout(HANDSHAKE_TIMEOUT, setup)
        .await
        .map_err(|_| SessionError::Timeout { stage: "sign-in", seconds: HANDSHAKE_TIMEOUT.as_secs() })??;

    let (outbox_tx, outbox_rx) = mpsc::channel(ctx.limits.outbox);
    let (reply_tx, reply_rx) = oneshot::channel();
    let connected = Event::Connected {
        conn: ctx.id,
        who,
        observed: conn.remote_address(),
        source: ctx.source,
        rtt: conn.rtt(),
        outbox: outbox_tx,
        handle: conn.clone(),
        reply: reply_tx,
    };
    if ctx.events.send(connected).await.is_err() {
        return Err(SessionError::LocallyClosed);
    }
    if let Err(refused) = reply_rx.await.unwrap_or(Err(ConnectRefused::Full)) {
        let code = match refused {
            ConnectRefused::NotInDirectory => CloseCode::NotAuthorized,
            ConnectRefused::Full => CloseCode::Busy,
        };
        conn.close(code.to_u32().into(), refused.to_string().as_bytes());
        return Err(SessionError::PeerClosed { code, reason: refused.to_string() });
    }
    held.signed_in(matches!(who, Who::Viewer(_)));
    tx.send(&ctx.local.hello([0; 32])).await?;
    let writer = tokio::spawn(write_loop(tx.retype(), outbox_rx));
    let result = read_loop(&conn, rx.retype(), ctx, who).await;
    writer.abort();
    let _ = ctx.events.send(Event::Disconnected { conn: ctx.id }).await;
    result
}

/// A signed-in client as the operator's log names it.
fn describe(who: &Who) -> String {
    match who {
        Who::Agent(key) => format!("customer {}", key.short()),
        Who::Viewer(key) => format!("technician {}", key.short()),
    }
}

async fn write_loop(mut tx: FramedSend<FromRendezvous>, mut outbox: mpsc::Receiver<FromRendezvous>) {
    while let Some(msg) = outbox.recv().await {
        if tx.send(&msg).await.is_err() {
            return;
        }
    }
}

async fn read_loop(
    conn: &quinn::Connection,
    mut rx: FramedRecv<ToRendezvous>,
    ctx: &ConnCtx,
    who: Who,
) -> Result<(), SessionError> {
    let mut bucket = Bucket::new(ctx.limits.messages_per_connection, Instant::now());
    let ip = ctx.source;
    loop {
        let msg = match rx.recv().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(()),
            Err(e) => {
                if matches!(e, SessionError::Protocol(_)) {
                    conn.close(CloseCode::ProtocolError.to_u32().into(), e.to_string().as_bytes());
                }
                return Err(e);
            }
        };
        let now = Instant::now();
        let over = !bucket.take(now)
            || (matches!(msg, ToRendezvous::Request { .. })
                && matches!(who, Who::Agent(_))
                && !ctx.requests.lock().expect("not poisoned").take(&ip, now));
        if over {
            ctx.stats.limited.fetch_add(1, Ordering::Relaxed);
            conn.close(CloseCode::Busy.to_u32().into(), b"too many messages: slow down");
            return Err(SessionError::LocallyClosed);
        }
        if matches!(msg, ToRendezvous::Request { .. }) {
            ctx.stats.requests.fetch_add(1, Ordering::Relaxed);
        }
        if ctx.events.send(Event::Message { conn: ctx.id, msg, rtt: conn.rtt() }).await.is_err() {
            return Ok(());
        }
    }
}

/// The task that owns the registry.
async fn core(
    mut registry: Registry,
    mut events: mpsc::Receiver<Event>,
    stats: Arc<Stats>,
    relay: Option<Relay>,
) {
    let mut conns: HashMap<ConnId, (mpsc::Sender<FromRendezvous>, quinn::Connection)> = HashMap::new();
    // Who each signed-in connection is, for the operator's log.
    let mut present: HashMap<ConnId, Who> = HashMap::new();
    loop {
        let now = Instant::now();
        let wake = registry.next_tick(now).unwrap_or(now + Duration::from_secs(3600));
        let actions = tokio::select! {
            event = events.recv() => match event {
                None => return,
                Some(Event::Connected { conn, who, observed, source, rtt, outbox, handle, reply }) => {
                    match registry.connect(conn, who, observed, source, rtt) {
                        Ok(actions) => {
                            conns.insert(conn, (outbox, handle));
                            stats.connections.store(registry.connections() as u64, Ordering::Relaxed);
                            tracing::info!(
                                target: "lifebuoy::presence",
                                "{} signed in from {observed} ({} signed in)",
                                describe(&who),
                                registry.connections()
                            );
                            present.insert(conn, who);
                            let _ = reply.send(Ok(()));
                            actions
                        }
                        Err(refused) => {
                            let _ = reply.send(Err(refused));
                            Vec::new()
                        }
                    }
                }
                Some(Event::Message { conn, msg, rtt }) => {
                    // A client's NAT may have moved it: its connection follows.
                    let now = Instant::now();
                    let mut actions = match conns.get(&conn) {
                        Some((_, handle)) => registry.seen_at(now, conn, handle.remote_address()),
                        None => Vec::new(),
                    };
                    actions.extend(registry.message(now, conn, msg, rtt));
                    actions
                }
                Some(Event::Disconnected { conn }) => {
                    let address = conns.remove(&conn).map(|(_, handle)| handle.remote_address());
                    let actions = registry.disconnect(conn);
                    stats.connections.store(registry.connections() as u64, Ordering::Relaxed);
                    if let (Some(who), Some(address)) = (present.remove(&conn), address) {
                        tracing::info!(
                            target: "lifebuoy::presence",
                            "{} at {address} is gone ({} signed in)",
                            describe(&who),
                            registry.connections()
                        );
                    }
                    actions
                }
                Some(Event::Directory(dir)) => {
                    tracing::info!(staff = dir.staff().len(), "staff directory reloaded");
                    registry.set_directory(dir)
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => registry.tick(Instant::now()),
        };
        for action in actions {
            match action {
                Action::Send(conn, msg) => {
                    let Some((outbox, handle)) = conns.get(&conn) else { continue };
                    if outbox.try_send(msg).is_err() {
                        // Not reading what it is sent: cut it off rather than queue without bound.
                        handle.close(CloseCode::Busy.to_u32().into(), b"not reading fast enough");
                    }
                }
                Action::Close(conn, code, reason) => {
                    if let Some((_, handle)) = conns.remove(&conn) {
                        handle.close(code.to_u32().into(), reason.as_bytes());
                    }
                }
                Action::AllowRelay { token, expires, observed } => {
                    if let Some(relay) = &relay {
                        relay.allow(token, expires, observed);
                    }
                }
            }
        }
    }
}

/// Reloads the directory when its file changes (checked every second) or
/// on SIGHUP, and sends it to the core; a broken file is logged and the
/// old directory kept.
async fn watch_directory(path: PathBuf, events: mpsc::Sender<Event>, mut reload: mpsc::Receiver<()>) {
    let stamp = |p: &PathBuf| std::fs::metadata(p).ok().map(|m| (m.modified().ok(), m.len()));
    let mut last = stamp(&path);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let signal = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signal = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = signal => true,
            r = reload.recv() => { if r.is_none() { return; } true }
        };
        let now = stamp(&path);
        if !forced && now == last {
            continue;
        }
        last = now;
        match Directory::load(&path) {
            Ok(dir) => {
                if events.send(Event::Directory(dir)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("{e}; keeping the previous staff directory"),
        }
    }
}

fn peer_fingerprint(conn: &quinn::Connection) -> Option<Fingerprint> {
    let certs = conn.peer_identity()?.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok()?;
    certs.first().map(|c| Fingerprint::of_certificate(c))
}
