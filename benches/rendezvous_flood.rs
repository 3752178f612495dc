//! The rendezvous under a flood of handshakes, against the real
//! `lifebuoy rendezvous` process on loopback: many clients from many
//! addresses sign in and leave as fast as they can, over UDP and through
//! the TCP tunnel, while technicians sign in and a real session (the
//! agent's and viewer's drivers) comes about.
//!
//! Run: `cargo bench --bench rendezvous_flood` (or `just bench`).
//! Environment: FLOOD_SECONDS (default 20), FLOOD_TASKS (concurrent
//! flooding clients over UDP, default 300), FLOOD_SOURCES (the loopback
//! addresses they come from, default 200: many places, each within its
//! limits; a few: each far beyond), FLOOD_TUNNELS (through the tunnel,
//! default 40).
//!
//! Prints, quiet and under the flood: a technician's sign-in time, the
//! time from a customer's request to a session standing, and how many
//! tries of each worked; for the flood: handshakes tried and let in per
//! second, and the server's CPU. Client and server share this machine's
//! cores, so the flood is as heavy as the clients can make it here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy::net::endpoint::endpoint_config;
use lifebuoy::net::tunnel::TcpTunnel;
use lifebuoy::net::{make_endpoint, Identity};
use lifebuoy::proto::hello::Capabilities;
use lifebuoy::proto::{Fingerprint, Role};
use lifebuoy::rendezvous::client::RendezvousClient;
use lifebuoy::roles::agent::{AgentCommand, AgentEvent, AgentSetup};
use lifebuoy::roles::viewer::{ViewerCommand, ViewerEvent, ViewerSetup};
use lifebuoy::roles::CompanyServer;
use lifebuoy::session::LocalSide;

#[path = "../tests/common/mod.rs"]
mod common;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    (fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()) as f64 / 100.0
}

fn local(identity: Arc<Identity>, role: Role) -> LocalSide {
    LocalSide { identity, role, name: "flood".into(), capabilities: Capabilities::default() }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[derive(Default)]
struct Counts {
    tried: AtomicU64,
    in_: AtomicU64,
}

/// One flooding client: signs in and leaves, again and again.
async fn flood_udp(source: IpAddr, server: SocketAddr, pin: Fingerprint, counts: Arc<Counts>) {
    let endpoint = make_endpoint(SocketAddr::new(source, 0), None).unwrap();
    loop {
        let me = local(Arc::new(Identity::generate("flood").unwrap()), Role::Agent);
        counts.tried.fetch_add(1, Ordering::Relaxed);
        let attempt = RendezvousClient::connect(&endpoint, server, &me, pin);
        if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(3), attempt).await {
            counts.in_.fetch_add(1, Ordering::Relaxed);
            client.close();
        }
    }
}

/// One flooding client through the tunnel, from `source`.
async fn flood_tunnel(
    source: IpAddr,
    tcp: SocketAddr,
    server: SocketAddr,
    pin: Fingerprint,
    counts: Arc<Counts>,
) {
    loop {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else { return };
        if socket.bind(SocketAddr::new(source, 0)).is_err() {
            return;
        }
        let Ok(stream) = socket.connect(tcp).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (control, _) = tokio::sync::mpsc::channel(16);
        let Ok(tunnel) = TcpTunnel::over(stream, server, control) else { continue };
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config(),
            None,
            tunnel,
            Arc::new(quinn::TokioRuntime),
        )
        .unwrap();
        for _ in 0..20 {
            let me = local(Arc::new(Identity::generate("flood").unwrap()), Role::Agent);
            counts.tried.fetch_add(1, Ordering::Relaxed);
            let attempt = RendezvousClient::connect(&endpoint, server, &me, pin);
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(client)) => {
                    counts.in_.fetch_add(1, Ordering::Relaxed);
                    client.close();
                }
                _ => break,
            }
        }
    }
}

/// A technician's sign-in: how long, if it worked within 10 s.
async fn technician_signs_in(key: Arc<Identity>, server: SocketAddr, pin: Fingerprint) -> Option<f64> {
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let me = local(key, Role::Viewer);
    let started = Instant::now();
    let attempt = RendezvousClient::connect(&endpoint, server, &me, pin);
    let client = tokio::time::timeout(Duration::from_secs(10), attempt).await.ok()?.ok()?;
    let took = started.elapsed().as_secs_f64() * 1e3;
    client.close();
    endpoint.wait_idle().await;
    Some(took)
}

/// A real session through the drivers: the customer asks, the technician
/// accepts, the customer allows. Request -> the technician hears the yes.
async fn session(company: CompanyServer, technician: Identity) -> Option<f64> {
    let (viewer, rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut viewer_events) = tokio::sync::mpsc::channel(256);
    let setup = ViewerSetup {
        server: company,
        name: "T0".into(),
        inbox: Some(std::env::temp_dir()),
        audit_log: Some("/dev/null".into()),
    };
    let technician = tokio::spawn(lifebuoy::roles::viewer::drive(technician, setup, rx, tx));
    let (agent, rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut agent_events) = tokio::sync::mpsc::channel(256);
    let setup = AgentSetup {
        server: company,
        display: None,
        view_only: false,
        no_clipboard: true,
        clipboard_to_technician: false,
        no_files: true,
        inbox: None,
        audit_log: Some("/dev/null".into()),
    };
    let customer = tokio::spawn(lifebuoy::roles::agent::drive(setup, rx, tx));
    let flow = async {
        loop {
            match viewer_events.recv().await? {
                ViewerEvent::SignedIn { .. } => break,
                ViewerEvent::Failed(_) => return None,
                _ => {}
            }
        }
        let staff = loop {
            match agent_events.recv().await? {
                AgentEvent::Staff(list) => {
                    if let Some(s) = list.into_iter().find(|s| s.name == "T0" && s.presence.is_online()) {
                        break s;
                    }
                }
                AgentEvent::Failed(_) => return None,
                _ => {}
            }
        };
        let asked = Instant::now();
        agent.send(AgentCommand::Request { staff: staff.fingerprint, label: String::new() }).await.ok()?;
        loop {
            tokio::select! {
                event = viewer_events.recv() => match event? {
                    ViewerEvent::Incoming { request, .. } => viewer.send(ViewerCommand::Accept(request)).await.ok()?,
                    ViewerEvent::Permissions(_) => return Some(asked.elapsed().as_secs_f64() * 1e3),
                    ViewerEvent::ConnectFailed(_) | ViewerEvent::Failed(_) => return None,
                    _ => {}
                },
                event = agent_events.recv() => match event? {
                    AgentEvent::Connected { offer, .. } => agent.send(AgentCommand::Allow(offer.choice)).await.ok()?,
                    AgentEvent::Failed(_) | AgentEvent::Refused { .. } => return None,
                    _ => {}
                },
            }
        }
    };
    let took = tokio::time::timeout(Duration::from_secs(20), flow).await.ok().flatten();
    let _ = agent.send(AgentCommand::End).await;
    let _ = viewer.send(ViewerCommand::Quit).await;
    drop((agent, viewer, agent_events, viewer_events));
    // Both gone before the next session signs the technician in again.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = customer.await;
        let _ = technician.await;
    })
    .await;
    took
}

trait Online {
    fn is_online(&self) -> bool;
}

impl Online for lifebuoy::proto::rendezvous::Presence {
    fn is_online(&self) -> bool {
        *self == lifebuoy::proto::rendezvous::Presence::Online
    }
}

/// Technician sign-ins and sessions, `n` of each: the times that worked, and how many failed.
async fn measure(
    n: usize,
    keys: &[Arc<Identity>],
    session_keys: &mut Vec<Identity>,
    company: CompanyServer,
) -> (Vec<f64>, usize, Vec<f64>, usize) {
    let (mut signs, mut sign_fail, mut sessions, mut session_fail) = (Vec::new(), 0, Vec::new(), 0);
    for i in 0..n {
        match technician_signs_in(keys[i % keys.len()].clone(), company.addr, company.pin).await {
            Some(ms) => signs.push(ms),
            None => sign_fail += 1,
        }
    }
    for _ in 0..n.min(session_keys.len()) {
        match session(company, session_keys.pop().unwrap()).await {
            Some(ms) => sessions.push(ms),
            None => session_fail += 1,
        }
    }
    signs.sort_by(f64::total_cmp);
    sessions.sort_by(f64::total_cmp);
    (signs, sign_fail, sessions, session_fail)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = env("FLOOD_SECONDS", 20);
    let tasks = env("FLOOD_TASKS", 300);
    let tunnels = env("FLOOD_TUNNELS", 40);
    let sources = env("FLOOD_SOURCES", 200).clamp(1, 200);
    let dir = tempfile::tempdir().unwrap();
    let technicians: Vec<Arc<Identity>> =
        (0..4).map(|i| Arc::new(Identity::generate(&format!("T{i}")).unwrap())).collect();
    // T0 is the technician of the sessions: a key file per session, as each
    // session's driver takes the identity.
    let t0_pem = dir.path().join("t0.pem");
    let (t0, _) = Identity::load_or_create(&t0_pem, "T0").unwrap();
    let mut staff: String = technicians
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, t)| format!("[[staff]]\nname = \"T{i}\"\nfingerprint = \"{}\"\n", t.fingerprint()))
        .collect();
    staff += &format!("[[staff]]\nname = \"T0\"\nfingerprint = \"{}\"\n", t0.fingerprint());
    std::fs::write(dir.path().join("staff.toml"), staff).unwrap();
    let rendezvous =
        common::rendezvous_process(dir.path(), &dir.path().join("staff.toml"), &[], Stdio::null());
    let (mut server, udp, tcp, pin) = (rendezvous.child, rendezvous.udp, rendezvous.tcp, rendezvous.pin);
    let pid = server.id();
    let company = CompanyServer { addr: udp, pin, tunnel_port: tcp.port() };
    let keys: Vec<Arc<Identity>> = technicians[1..].to_vec();
    let session_key = || Identity::load_or_create(&t0_pem, "T0").unwrap().0;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let mut quiet_keys: Vec<Identity> = (0..5).map(|_| session_key()).collect();
        let quiet = measure(5, &keys, &mut quiet_keys, company).await;

        let counts = Arc::new(Counts::default());
        let mut flood = Vec::new();
        for i in 0..tasks {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (i % sources) as u8));
            flood.push(tokio::spawn(flood_udp(source, udp, pin, counts.clone())));
        }
        for i in 0..tunnels {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1 + (i % sources.min(40)) as u8));
            flood.push(tokio::spawn(flood_tunnel(source, tcp, udp, pin, counts.clone())));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, t0, tried0, in0) =
            (cpu_seconds(pid), Instant::now(), counts.tried.load(Ordering::Relaxed), counts.in_.load(Ordering::Relaxed));
        let mut flood_keys: Vec<Identity> = (0..5).map(|_| session_key()).collect();
        let measuring = measure(5, &keys, &mut flood_keys, company);
        let (flooded, _) = tokio::join!(measuring, tokio::time::sleep(Duration::from_secs(seconds)));
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = (cpu_seconds(pid) - cpu0) / elapsed;
        let tried = counts.tried.load(Ordering::Relaxed) - tried0;
        let let_in = counts.in_.load(Ordering::Relaxed) - in0;
        for f in flood {
            f.abort();
        }
        let row = |what: &str, (s, sf, x, xf): &(Vec<f64>, usize, Vec<f64>, usize)| {
            println!(
                "| {what} | {:.1} / {:.1} ms ({} of {}) | {:.1} / {:.1} ms ({} of {}) |",
                percentile(s, 0.5),
                percentile(s, 1.0),
                s.len(),
                s.len() + sf,
                percentile(x, 0.5),
                percentile(x, 1.0),
                x.len(),
                x.len() + xf
            );
        };
        println!(
            "rendezvous under a flood: {tasks} clients over UDP from {sources} loopback addresses, {tunnels} through the tunnel from {} more, {seconds} s",
            sources.min(40)
        );
        println!("| | technician sign-in p50 / max | customer's request -> session stands p50 / max |");
        println!("|---|---|---|");
        row("quiet", &quiet);
        row("under the flood", &flooded);
        println!(
            "flood: {:.0} sign-ins tried/s, {:.0} let in/s; server CPU {:.0} % of one core",
            tried as f64 / elapsed,
            let_in as f64 / elapsed,
            cpu * 100.0
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}
