//! A technician and a customer connect only to each other: the pinned
//! handshake succeeds with the right keys, and every wrong key, missing key,
//! copied certificate or foreign protocol version is refused with a clear
//! error before a single application byte crosses in either direction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lifebuoy::net::pin::{ClientPolicy, PinnedServerVerifier};
use lifebuoy::net::tls::{client_config, server_config, ALPN_PEER, SERVER_NAME};
use lifebuoy::net::transport::transport_config;
use lifebuoy::net::{make_endpoint, Identity};
use lifebuoy::proto::close::CloseCode;
use lifebuoy::proto::control::{Control, EndReason};
use lifebuoy::proto::hello::{Capabilities, Hello};
use lifebuoy::proto::input::Input;
use lifebuoy::proto::screen::{Screen, ScreenUpdate};
use lifebuoy::proto::{encode, Fingerprint, ProtocolVersion, Role, StreamKind};
use lifebuoy::session::{FramedRecv, IncomingStream, LocalSide, NonceGate, Session, SessionError};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::sign::CertifiedKey;

struct Side {
    local: LocalSide,
    endpoint: quinn::Endpoint,
}

impl Side {
    fn new(role: Role, common_name: &str) -> Side {
        let identity = Arc::new(Identity::generate(common_name).unwrap());
        let endpoint = make_endpoint(loopback(), Some(&identity)).unwrap();
        Side {
            local: LocalSide {
                identity,
                role,
                name: common_name.into(),
                capabilities: Capabilities::default(),
            },
            endpoint,
        }
    }

    fn fp(&self) -> Fingerprint {
        self.local.identity.fingerprint()
    }

    fn addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap()
    }

    async fn accept(&self, pin: Fingerprint) -> Result<Session, SessionError> {
        let incoming = self.endpoint.accept().await.unwrap();
        Session::accept(incoming, &self.local, pin, &NonceGate::new()).await
    }

    async fn connect(&self, to: &Side, pin: Fingerprint) -> Result<Session, SessionError> {
        Session::connect(&self.endpoint, to.addr(), &self.local, pin).await
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn viewer() -> Side {
    Side::new(Role::Viewer, "Anna Technikerin")
}

fn agent() -> Side {
    Side::new(Role::Agent, "lifebuoy agent")
}

/// What a raw QUIC peer got: whether its connection was established, and
/// how many application bytes it received on any stream.
#[derive(Debug, PartialEq, Eq)]
struct Raw {
    established: bool,
    received: usize,
}

/// Drives an established raw connection the way an attacker would: sends
/// bytes on a new stream and reads every stream the other side opens, until
/// the connection dies or 1.5 s pass.
async fn probe(conn: quinn::Connection) -> Raw {
    let sender = {
        let conn = conn.clone();
        async move {
            if let Ok(mut s) = conn.open_uni().await {
                let _ = s.write_all(&[StreamKind::Input.tag(), 1, 0x06]).await;
                let _ = s.finish();
            }
            std::future::pending::<()>().await
        }
    };
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = |n: usize| received.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    let receiver = async {
        loop {
            tokio::select! {
                s = conn.accept_uni() => match s {
                    Ok(mut s) => count(s.read_to_end(1 << 20).await.map(|b| b.len()).unwrap_or(0)),
                    Err(_) => break,
                },
                s = conn.accept_bi() => match s {
                    Ok((_, mut r)) => count(r.read_to_end(1 << 20).await.map(|b| b.len()).unwrap_or(0)),
                    Err(_) => break,
                },
            };
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        tokio::select! { _ = receiver => (), _ = sender => () }
    })
    .await;
    Raw { established: true, received: received.load(std::sync::atomic::Ordering::SeqCst) }
}

async fn raw_client(side: &Side, to: &Side, config: quinn::ClientConfig) -> Raw {
    let connecting = side.endpoint.connect_with(config, to.addr(), SERVER_NAME).unwrap();
    match connecting.await {
        Ok(conn) => probe(conn).await,
        Err(_) => Raw { established: false, received: 0 },
    }
}

async fn raw_server(side: &Side, config: quinn::ServerConfig) -> Raw {
    let incoming = side.endpoint.accept().await.unwrap();
    match incoming.accept_with(Arc::new(config)).unwrap().await {
        Ok(conn) => probe(conn).await,
        Err(_) => Raw { established: false, received: 0 },
    }
}

fn quinn_client(tls: rustls::ClientConfig) -> quinn::ClientConfig {
    let mut c = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    c.transport_config(Arc::new(transport_config()));
    c
}

fn quinn_server(tls: rustls::ServerConfig) -> quinn::ServerConfig {
    let mut c = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
    c.transport_config(Arc::new(transport_config()));
    c
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Presents `cert` but signs with `signer`'s key: a copied certificate.
#[derive(Debug)]
struct CopiedCertificate(Arc<CertifiedKey>);

impl CopiedCertificate {
    fn new(cert: &Identity, signer: &Identity) -> Arc<Self> {
        let key = provider().key_provider.load_private_key(signer.private_key()).unwrap();
        Arc::new(CopiedCertificate(Arc::new(CertifiedKey::new(vec![cert.certificate().clone()], key))))
    }
}

impl rustls::server::ResolvesServerCert for CopiedCertificate {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for CopiedCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn handshake_succeeds_with_correct_pins_and_streams_flow() {
    let (viewer, agent) = (viewer(), agent());
    let (v, a) = tokio::join!(viewer.accept(agent.fp()), agent.connect(&viewer, viewer.fp()));
    let (mut v, mut a) = (v.unwrap(), a.unwrap());

    assert_eq!(a.peer.fingerprint, viewer.fp());
    assert_eq!(v.peer.fingerprint, agent.fp());
    assert_eq!(a.peer.hello.role, Role::Viewer);
    assert_eq!(v.peer.hello.name, "lifebuoy agent");
    assert_eq!(a.peer.code, v.peer.code, "both people must read the same code");

    // Control both ways.
    a.control.tx.send(&Control::Clipboard { text: "vom Kunden".into() }).await.unwrap();
    v.control.tx.send(&Control::SelectMonitor { id: 0 }).await.unwrap();
    assert_eq!(v.control.rx.recv().await.unwrap(), Some(Control::Clipboard { text: "vom Kunden".into() }));
    assert_eq!(a.control.rx.recv().await.unwrap(), Some(Control::SelectMonitor { id: 0 }));

    // A screen update from the agent, input from the viewer.
    let update =
        Screen::Update(ScreenUpdate { seq: 1, monitor: 0, width: 64, height: 64, data: vec![9; 5000] });
    let mut screen = a.link.open::<Screen>().await.unwrap();
    screen.send(&update).await.unwrap();
    screen.finish().unwrap();
    let mut input = v.link.open::<Input>().await.unwrap();
    input.send(&Input::Text { text: "Grüße".into() }).await.unwrap();
    match v.link.accept().await.unwrap() {
        IncomingStream::Screen(mut s) => {
            assert_eq!(s.recv().await.unwrap(), Some(update));
            assert_eq!(s.recv().await.unwrap(), None);
        }
        other => panic!("expected a screen stream, got {other:?}"),
    }
    match a.link.accept().await.unwrap() {
        IncomingStream::Input(mut s) => {
            assert_eq!(s.recv().await.unwrap(), Some(Input::Text { text: "Grüße".into() }))
        }
        other => panic!("expected the input stream, got {other:?}"),
    }
    // Roles are enforced: a viewer cannot send screen updates.
    assert!(matches!(v.link.open::<Screen>().await, Err(SessionError::UnexpectedStream)));

    // Ending from the agent reaches the viewer with the reason.
    a.end(EndReason::CustomerEnded).await;
    match v.link.closed().await {
        SessionError::PeerClosed { code: CloseCode::Ended, reason } => assert_eq!(reason, "CustomerEnded"),
        other => panic!("unexpected end: {other}"),
    }
}

#[tokio::test]
async fn verification_code_changes_with_either_key() {
    async fn code(viewer: &Side, agent: &Side) -> String {
        let (v, a) = tokio::join!(viewer.accept(agent.fp()), agent.connect(viewer, viewer.fp()));
        let (v, a) = (v.unwrap(), a.unwrap());
        assert_eq!(v.peer.code, a.peer.code);
        a.peer.code.to_string()
    }
    let (viewer1, viewer2, agent1, agent2) = (viewer(), viewer(), agent(), agent());
    let base = code(&viewer1, &agent1).await;
    assert_ne!(code(&viewer2, &agent1).await, base);
    assert_ne!(code(&viewer1, &agent2).await, base);
    assert_eq!(base.len(), 7, "six digits with a space: {base}");
}

#[tokio::test]
async fn wrong_server_pin_is_refused_with_both_fingerprints_named() {
    let (viewer, agent, other) = (viewer(), agent(), Identity::generate("other").unwrap());
    let (v, a) = tokio::join!(viewer.accept(agent.fp()), agent.connect(&viewer, other.fingerprint()));
    match a.unwrap_err() {
        SessionError::WrongPeer { expected, presented } => {
            assert_eq!(expected, other.fingerprint());
            assert_eq!(presented, viewer.fp());
        }
        e => panic!("unexpected error: {e}"),
    }
    assert!(v.is_err());

    // Raw: the client with the wrong pin gets nothing, and sends nothing.
    let (config, _) = client_config(&agent.local.identity, other.fingerprint(), ALPN_PEER).unwrap();
    let (server_config, _) =
        server_config(&viewer.local.identity, ClientPolicy::Pinned(agent.fp()), ALPN_PEER).unwrap();
    let (s, c) = tokio::join!(raw_server(&viewer, server_config), raw_client(&agent, &viewer, config));
    assert_eq!(c, Raw { established: false, received: 0 });
    assert_eq!(s, Raw { established: false, received: 0 });
}

#[tokio::test]
async fn wrong_client_pin_is_refused_on_the_server() {
    let (viewer, agent, other) = (viewer(), agent(), Identity::generate("other").unwrap());
    let (v, a) = tokio::join!(viewer.accept(other.fingerprint()), agent.connect(&viewer, viewer.fp()));
    match v.unwrap_err() {
        SessionError::WrongPeer { expected, presented } => {
            assert_eq!(expected, other.fingerprint());
            assert_eq!(presented, agent.fp());
        }
        e => panic!("unexpected error: {e}"),
    }
    let a = a.unwrap_err();
    assert!(matches!(a, SessionError::Refused { .. }), "{a}");
    assert!(a.to_string().contains("refused this side's identity"), "{a}");

    // Raw: TLS 1.3 lets the client finish its handshake, but it receives
    // nothing and the server accepts nothing.
    let (config, _) = client_config(&agent.local.identity, viewer.fp(), ALPN_PEER).unwrap();
    let (server_config, _) =
        server_config(&viewer.local.identity, ClientPolicy::Pinned(other.fingerprint()), ALPN_PEER).unwrap();
    let (s, c) = tokio::join!(raw_server(&viewer, server_config), raw_client(&agent, &viewer, config));
    assert_eq!(c.received, 0);
    assert_eq!(s, Raw { established: false, received: 0 });
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let (viewer, agent) = (viewer(), agent());
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(PinnedServerVerifier::new(viewer.fp()))
        .with_no_client_auth();
    let mut tls = tls;
    tls.alpn_protocols = vec![ALPN_PEER.to_vec()];
    let (v, c) = tokio::join!(viewer.accept(agent.fp()), raw_client(&agent, &viewer, quinn_client(tls)));
    let v = v.unwrap_err();
    assert!(matches!(v, SessionError::NoPeerCertificate), "{v}");
    assert_eq!(c.received, 0);
}

#[tokio::test]
async fn impostor_server_with_the_same_name_but_another_key_is_refused() {
    let (viewer, agent) = (viewer(), agent());
    // Same common name as the real technician, its own key.
    let impostor = Side::new(Role::Viewer, "Anna Technikerin");
    let (i, a) = tokio::join!(impostor.accept(agent.fp()), agent.connect(&impostor, viewer.fp()));
    match a.unwrap_err() {
        SessionError::WrongPeer { expected, presented } => {
            assert_eq!(expected, viewer.fp());
            assert_eq!(presented, impostor.fp());
        }
        e => panic!("unexpected error: {e}"),
    }
    assert!(i.is_err());
    let (server_config, _) =
        server_config(&impostor.local.identity, ClientPolicy::Pinned(agent.fp()), ALPN_PEER).unwrap();
    let (config, _) = client_config(&agent.local.identity, viewer.fp(), ALPN_PEER).unwrap();
    let (s, c) = tokio::join!(raw_server(&impostor, server_config), raw_client(&agent, &impostor, config));
    assert_eq!((s.received, c.received), (0, 0));
    assert!(!c.established);
}

#[tokio::test]
async fn impostor_client_with_the_same_name_but_another_key_is_refused() {
    let (viewer, agent) = (viewer(), agent());
    let impostor = Side::new(Role::Agent, "lifebuoy agent");
    let (v, i) = tokio::join!(viewer.accept(agent.fp()), impostor.connect(&viewer, viewer.fp()));
    match v.unwrap_err() {
        SessionError::WrongPeer { expected, presented } => {
            assert_eq!(expected, agent.fp());
            assert_eq!(presented, impostor.fp());
        }
        e => panic!("unexpected error: {e}"),
    }
    assert!(i.is_err());
}

#[tokio::test]
async fn copied_server_certificate_without_its_key_is_refused() {
    let (viewer, agent) = (viewer(), agent());
    let thief = Side::new(Role::Viewer, "thief");
    // The thief presents the real technician's certificate, signs with its own key.
    let resolver = CopiedCertificate::new(&viewer.local.identity, &thief.local.identity);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(lifebuoy::net::PeerClientVerifier::new(ClientPolicy::Pinned(agent.fp())))
        .with_cert_resolver(resolver);
    tls.alpn_protocols = vec![ALPN_PEER.to_vec()];
    let (s, a) = tokio::join!(raw_server(&thief, quinn_server(tls)), agent.connect(&thief, viewer.fp()));
    match a.unwrap_err() {
        SessionError::ForgedCertificate { presented } => assert_eq!(presented, viewer.fp()),
        e => panic!("unexpected error: {e}"),
    }
    assert_eq!(s, Raw { established: false, received: 0 });
}

#[tokio::test]
async fn copied_client_certificate_without_its_key_is_refused() {
    let (viewer, agent) = (viewer(), agent());
    let thief = Side::new(Role::Agent, "thief");
    let resolver = CopiedCertificate::new(&agent.local.identity, &thief.local.identity);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(PinnedServerVerifier::new(viewer.fp()))
        .with_client_cert_resolver(resolver);
    tls.alpn_protocols = vec![ALPN_PEER.to_vec()];
    let (v, c) = tokio::join!(viewer.accept(agent.fp()), raw_client(&thief, &viewer, quinn_client(tls)));
    match v.unwrap_err() {
        SessionError::ForgedCertificate { presented } => assert_eq!(presented, agent.fp()),
        e => panic!("unexpected error: {e}"),
    }
    assert_eq!(c.received, 0);
}

fn hello(role: Role, major: u16) -> Hello {
    Hello {
        version: ProtocolVersion { major, minor: 0 },
        role,
        software: "lifebuoy 9.0".into(),
        name: String::new(),
        capabilities: Capabilities::default(),
        verification: [0; 32],
    }
}

#[tokio::test]
async fn peer_with_another_major_version_gets_a_clear_error_on_both_sides() {
    let (viewer, agent) = (viewer(), agent());
    // An agent from the future: right key, right pin, protocol 2.
    let (config, _) = client_config(&agent.local.identity, viewer.fp(), ALPN_PEER).unwrap();
    let future_agent = async {
        let conn = agent.endpoint.connect_with(config, viewer.addr(), SERVER_NAME).unwrap().await.unwrap();
        let (mut send, recv) = conn.open_bi().await.unwrap();
        let mut bytes = vec![StreamKind::Control.tag()];
        encode(&hello(Role::Agent, 2), &mut bytes).unwrap();
        send.write_all(&bytes).await.unwrap();
        // It still learns the viewer's version from the viewer's hello ...
        let mut rx = FramedRecv::<Hello>::new(recv);
        let answer = rx.recv().await.unwrap().unwrap();
        // ... and why the connection ends.
        (answer.version, conn.closed().await)
    };
    let (v, (their_version, closed)) = tokio::join!(viewer.accept(agent.fp()), future_agent);
    let v = v.unwrap_err();
    assert!(matches!(v, SessionError::Version(_)), "{v}");
    let ours = ProtocolVersion::CURRENT.to_string();
    assert!(v.to_string().contains("2.0") && v.to_string().contains(&ours), "{v}");
    assert_eq!(their_version, ProtocolVersion::CURRENT);
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code.into_inner(), CloseCode::VersionMismatch.to_u32() as u64);
            assert!(String::from_utf8_lossy(&c.reason).contains("protocol 2.0"));
        }
        other => panic!("unexpected close: {other}"),
    }

    // A viewer from the future answering a current agent.
    let (viewer, agent) = (self::viewer(), self::agent());
    let (server_config, _) =
        server_config(&viewer.local.identity, ClientPolicy::Pinned(agent.fp()), ALPN_PEER).unwrap();
    let future_viewer = async {
        let incoming = viewer.endpoint.accept().await.unwrap();
        let conn = incoming.accept_with(Arc::new(server_config)).unwrap().await.unwrap();
        let (mut send, _recv) = conn.accept_bi().await.unwrap();
        let mut bytes = Vec::new();
        encode(&hello(Role::Viewer, 3), &mut bytes).unwrap();
        send.write_all(&bytes).await.unwrap();
        conn.closed().await
    };
    let (a, _) = tokio::join!(agent.connect(&viewer, viewer.fp()), future_viewer);
    let a = a.unwrap_err();
    assert!(matches!(a, SessionError::Version(_)), "{a}");
    assert!(a.to_string().contains("3.0"), "{a}");
}

#[tokio::test]
async fn two_agents_cannot_form_a_session() {
    let (agent1, agent2) = (agent(), agent());
    let (x, y) = tokio::join!(agent1.accept(agent2.fp()), agent2.connect(&agent1, agent1.fp()));
    let x = x.unwrap_err();
    assert!(matches!(x, SessionError::RoleMismatch { .. }), "{x}");
    assert!(y.is_err());
}

#[tokio::test]
async fn reveal_that_breaks_the_commitment_is_refused() {
    let (viewer, agent) = (viewer(), agent());
    let (config, _) = client_config(&agent.local.identity, viewer.fp(), ALPN_PEER).unwrap();
    let cheating_agent = async {
        let conn = agent.endpoint.connect_with(config, viewer.addr(), SERVER_NAME).unwrap().await.unwrap();
        let (mut send, recv) = conn.open_bi().await.unwrap();
        let mut committed = hello(Role::Agent, 1);
        committed.verification = lifebuoy::proto::verification::commitment(&[1; 32]);
        let mut bytes = vec![StreamKind::Control.tag()];
        encode(&committed, &mut bytes).unwrap();
        send.write_all(&bytes).await.unwrap();
        let mut rx = FramedRecv::<Hello>::new(recv);
        rx.recv().await.unwrap().unwrap();
        // Reveals another nonce than it committed to, as a grinding
        // man in the middle would.
        let mut bytes = Vec::new();
        encode(&Control::Reveal { nonce: [2; 32] }, &mut bytes).unwrap();
        send.write_all(&bytes).await.unwrap();
        conn.closed().await
    };
    let (v, _) = tokio::join!(viewer.accept(agent.fp()), cheating_agent);
    let v = v.unwrap_err();
    assert!(matches!(v, SessionError::Commitment), "{v}");
}

#[tokio::test]
async fn silent_peer_times_out_instead_of_hanging() {
    // Completes TLS, then never sends its hello: the viewer gives up with a
    // clear error within the handshake timeout.
    let (viewer, agent) = (viewer(), agent());
    let (config, _) = client_config(&agent.local.identity, viewer.fp(), ALPN_PEER).unwrap();
    let silent = async {
        let conn = agent.endpoint.connect_with(config, viewer.addr(), SERVER_NAME).unwrap().await.unwrap();
        conn.closed().await
    };
    let started = std::time::Instant::now();
    let (v, _) = tokio::join!(viewer.accept(agent.fp()), silent);
    let v = v.unwrap_err();
    assert!(matches!(v, SessionError::Timeout { .. }), "{v}");
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[tokio::test]
async fn raw_probe_counts_bytes_when_pins_are_right() {
    // The control for the refusal tests above: with the right pins the same
    // probe does see the other side's bytes, so its zeros there mean something.
    let (viewer, agent) = (viewer(), agent());
    let (config, _) = client_config(&agent.local.identity, viewer.fp(), ALPN_PEER).unwrap();
    let (server_config, _) =
        server_config(&viewer.local.identity, ClientPolicy::Pinned(agent.fp()), ALPN_PEER).unwrap();
    let (s, c) = tokio::join!(raw_server(&viewer, server_config), raw_client(&agent, &viewer, config));
    assert_eq!(s, Raw { established: true, received: 3 });
    assert_eq!(c, Raw { established: true, received: 3 });
}
