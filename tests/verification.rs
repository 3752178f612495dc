//! The six-digit code protects only if it cannot be ground and only the
//! side the customer chose is reached. Checked against the real endpoints
//! and connect logic, with the attacker played by raw QUIC clients that
//! hold the key a lying rendezvous would have handed out:
//! - the technician's side gives its verification nonce to one exchange at
//!   a time and to a few in all, however many connections arrive at once;
//! - it refuses, at once, every connection that comes while no punch waits;
//! - the customer's side answers no connection at all;
//! - the customer's side acts on a go only for the technician it asked,
//!   and only as the QUIC client.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy::net::punch::connect_peer;
use lifebuoy::net::socket::{Accepting, PeerEndpoint};
use lifebuoy::net::tls::{client_config, server_config, ALPN_PEER, ALPN_RENDEZVOUS, SERVER_NAME};
use lifebuoy::net::{make_endpoint, ClientPolicy, Identity};
use lifebuoy::proto::hello::{Capabilities, Hello};
use lifebuoy::proto::rendezvous::{
    Candidate, CandidateKind, FromRendezvous, Go, Presence, StaffEntry, ToRendezvous,
};
use lifebuoy::proto::verification::{commitment, NONCES_PER_REQUEST};
use lifebuoy::proto::{encode, Fingerprint, ProtocolVersion, Role, StreamKind};
use lifebuoy::roles::agent::{AgentCommand, AgentEvent, AgentSetup};
use lifebuoy::roles::CompanyServer;
use lifebuoy::session::{FramedRecv, FramedSend, LocalSide, SessionError};

fn local(role: Role, name: &str) -> LocalSide {
    LocalSide {
        identity: Arc::new(Identity::generate(name).unwrap()),
        role,
        name: name.into(),
        capabilities: Capabilities::default(),
    }
}

fn hello(role: Role, verification: [u8; 32]) -> Hello {
    Hello {
        version: ProtocolVersion::CURRENT,
        role,
        software: "attacker".into(),
        name: String::new(),
        capabilities: Capabilities::default(),
        verification,
    }
}

/// The viewer's side of one accepted request, as `connect_peer` runs it.
fn go_for_viewer(agent: Fingerprint) -> Go {
    Go {
        request: 1,
        peer: agent,
        peer_candidates: Vec::new(),
        observed: "127.0.0.1:9".parse::<SocketAddr>().unwrap().into(),
        relay_token: [7; 16],
        relay_port: 0,
        quic_client: false,
        punch_in_ms: 0,
    }
}

/// A man in the middle's connection to the technician: pinned handshake
/// with the key the lying rendezvous named, a hello with a commitment,
/// then it waits for the technician's hello (and its nonce), never
/// revealing. Whether a nonce came, and the connection.
async fn commit_and_wait(
    endpoint: quinn::Endpoint,
    attacker: Arc<Identity>,
    viewer: SocketAddr,
    viewer_pin: Fingerprint,
) -> (bool, Option<quinn::Connection>) {
    let (config, _) = client_config(&attacker, viewer_pin, ALPN_PEER).unwrap();
    let Ok(connecting) = endpoint.connect_with(config, viewer, SERVER_NAME) else { return (false, None) };
    let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connecting).await else {
        return (false, None);
    };
    let got_nonce = async {
        let (send, recv) = conn.open_bi().await.ok()?;
        let mut tx = FramedSend::<Hello>::new(send);
        let mut first = vec![StreamKind::Control.tag()];
        encode(&hello(Role::Agent, commitment(&rand::random())), &mut first).unwrap();
        tx.write_raw(&first).await.ok()?;
        let mut rx = FramedRecv::<Hello>::new(recv);
        let answer = rx.recv().await.ok()??;
        // Keep the stream open: the exchange stays in the middle.
        std::mem::forget(tx);
        Some(answer.verification != [0; 32])
    };
    let got = tokio::time::timeout(Duration::from_secs(3), got_nonce).await.ok().flatten().unwrap_or(false);
    (got, Some(conn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once_get_one_nonce_at_a_time_and_a_few_in_all() {
    let viewer = local(Role::Viewer, "Anna");
    let attacker = Arc::new(Identity::generate("man in the middle").unwrap());
    let endpoint =
        PeerEndpoint::bind("127.0.0.1:0".parse().unwrap(), &viewer.identity, Accepting::WhilePunching)
            .unwrap();
    let addr = endpoint.local_addr();
    let go = go_for_viewer(attacker.fingerprint());
    let punch = tokio::spawn({
        let viewer = viewer.clone();
        async move { connect_peer(&endpoint, &viewer, &go, None).await.map(|_| ()) }
    });
    // Rounds of 12 connections at once, from 12 sockets; none reveals, and
    // each round gives up before the next, as a grinder would.
    let clients: Vec<quinn::Endpoint> =
        (0..12).map(|_| make_endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap()).collect();
    let mut nonces = 0;
    for round in 0..NONCES_PER_REQUEST + 2 {
        let pin = viewer.identity.fingerprint();
        let attempts = clients.iter().map(|c| commit_and_wait(c.clone(), attacker.clone(), addr, pin));
        let results = futures_join_all(attempts).await;
        let given = results.iter().filter(|(got, _)| *got).count();
        assert!(given <= 1, "round {round}: {given} connections at once got a nonce");
        nonces += given;
        for (_, conn) in results {
            if let Some(conn) = conn {
                conn.close(0u32.into(), b"giving up");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(nonces >= 1, "a genuine exchange must get its nonce");
    assert!(
        nonces <= usize::from(NONCES_PER_REQUEST),
        "{nonces} nonces for one request: the code could be ground"
    );
    punch.abort();
}

/// Runs futures side by side and collects their results in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.into_iter().enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out: Vec<(usize, F::Output)> = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_punch_the_technician_refuses_at_once_and_the_customer_never_answers() {
    let viewer = local(Role::Viewer, "Anna");
    let agent = local(Role::Agent, "customer");
    let knocker = Identity::generate("someone").unwrap();
    let client = make_endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let bind = |side: &LocalSide, accepting| {
        PeerEndpoint::bind("127.0.0.1:0".parse().unwrap(), &side.identity, accepting).unwrap()
    };
    let (technician, customer) = (bind(&viewer, Accepting::WhilePunching), bind(&agent, Accepting::Never));

    // The technician's endpoint between sessions: refused, not queued.
    let (config, _) = client_config(&knocker, viewer.identity.fingerprint(), ALPN_PEER).unwrap();
    let started = Instant::now();
    let refused = client.connect_with(config, technician.local_addr(), SERVER_NAME).unwrap().await;
    assert!(
        matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(ref c)) if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(900), "refused at once, not after a timeout");

    // The customer's endpoint has no server side: nothing comes back.
    let (config, _) = client_config(&knocker, agent.identity.fingerprint(), ALPN_PEER).unwrap();
    let attempt = client.connect_with(config, customer.local_addr(), SERVER_NAME).unwrap();
    let answered = tokio::time::timeout(Duration::from_millis(1500), attempt).await;
    assert!(!matches!(answered, Ok(Ok(_))), "a connection to the customer came about: {answered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_is_never_the_side_that_answers_hellos() {
    let agent = local(Role::Agent, "customer");
    let endpoint =
        PeerEndpoint::bind("127.0.0.1:0".parse().unwrap(), &agent.identity, Accepting::Never).unwrap();
    let mut go = go_for_viewer(Fingerprint([3; 32]));
    go.quic_client = false;
    let result = connect_peer(&endpoint, &agent, &go, None).await;
    assert!(matches!(result, Err(SessionError::WrongSide)), "{result:?}");
}

/// A rendezvous that lies: it lists two technicians and answers the
/// customer's request for one with a go for the other (or with a go that
/// makes the customer the QUIC server).
struct LyingRendezvous {
    addr: SocketAddr,
    pin: Fingerprint,
    task: tokio::task::JoinHandle<()>,
}

impl LyingRendezvous {
    fn start(staff: Vec<StaffEntry>, goes: Vec<Go>) -> LyingRendezvous {
        let identity = Identity::generate("lifebuoy rendezvous").unwrap();
        let pin = identity.fingerprint();
        let (config, _) = server_config(&identity, ClientPolicy::AnyProvenKey, ALPN_RENDEZVOUS).unwrap();
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let conn = endpoint.accept().await.unwrap().await.unwrap();
            let (send, mut recv) = conn.accept_bi().await.unwrap();
            let mut tag = [0u8; 1];
            recv.read_exact(&mut tag).await.unwrap();
            let mut rx = FramedRecv::<Hello>::new(recv);
            rx.recv().await.unwrap().unwrap();
            let mut tx = FramedSend::<Hello>::new(send);
            tx.send(&hello(Role::Rendezvous, [0; 32])).await.unwrap();
            let (mut tx, mut rx) = (tx.retype::<FromRendezvous>(), rx.retype::<ToRendezvous>());
            while let Ok(Some(msg)) = rx.recv().await {
                match msg {
                    ToRendezvous::ListStaff => {
                        tx.send(&FromRendezvous::Staff { entries: staff.clone() }).await.unwrap()
                    }
                    ToRendezvous::Request { .. } => {
                        for go in &goes {
                            tx.send(&FromRendezvous::Go(go.clone())).await.unwrap();
                        }
                    }
                    _ => {}
                }
            }
            let _keep = endpoint;
        });
        LyingRendezvous { addr, pin, task }
    }
}

impl Drop for LyingRendezvous {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_for_another_technician_or_the_wrong_side_connects_nowhere() {
    let entry = |name: &str, n: u8| StaffEntry {
        name: name.into(),
        group: None,
        fingerprint: Fingerprint([n; 32]),
        presence: Presence::Online,
    };
    // Where "Bert" would be reached: a socket that must hear nothing.
    let bert = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let at_bert = Candidate { addr: bert.local_addr().unwrap().into(), kind: CandidateKind::Observed };
    let go = |peer: u8, quic_client: bool| Go {
        request: 1,
        peer: Fingerprint([peer; 32]),
        peer_candidates: vec![at_bert],
        observed: "127.0.0.1:9".parse::<SocketAddr>().unwrap().into(),
        relay_token: [7; 16],
        relay_port: 0,
        quic_client,
        punch_in_ms: 0,
    };
    // The customer asks Anna (1); the server says go for Bert (2), then for
    // Anna but with the customer as the QUIC server.
    let rendezvous =
        LyingRendezvous::start(vec![entry("Anna", 1), entry("Bert", 2)], vec![go(2, true), go(1, false)]);
    let setup = AgentSetup {
        server: CompanyServer { addr: rendezvous.addr, pin: rendezvous.pin, tunnel_port: 9 },
        display: None,
        view_only: false,
        no_clipboard: true,
        clipboard_to_technician: false,
        no_files: true,
        inbox: None,
        audit_log: Some("/dev/null".into()),
    };
    let (commands, rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut events) = tokio::sync::mpsc::channel(256);
    tokio::spawn(lifebuoy::roles::agent::drive(setup, rx, tx));
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.expect("the agent's events") {
                AgentEvent::Staff(_) => {
                    commands
                        .send(AgentCommand::Request { staff: Fingerprint([1; 32]), label: String::new() })
                        .await
                        .unwrap();
                }
                AgentEvent::Failed(failure) => return failure,
                other => seen.push(other),
            }
        }
    })
    .await
    .expect("the agent gave up on the bad go");
    assert!(
        seen.iter().all(|e| !matches!(e, AgentEvent::Connecting { technician } if technician == "Bert")),
        "{seen:?}"
    );
    assert!(outcome.to_string().contains("wrong part"), "{outcome}");
    let mut buf = [0u8; 1500];
    let heard = tokio::time::timeout(Duration::from_millis(300), bert.recv_from(&mut buf)).await;
    assert!(heard.is_err(), "a packet went to the technician the customer did not ask");
}
