//! The company's rendezvous under abuse, with real sockets:
//! - clients of the TCP tunnel that send garbage and go leave nothing open;
//! - clients behind the tunnel are limited by their own address, not all
//!   together as the tunnel's;
//! - with its descriptors exhausted, the tunnel's accept loop waits
//!   instead of spinning (the real program, under a descriptor limit).

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy::net::endpoint::{endpoint_config, make_endpoint};
use lifebuoy::net::tunnel::TcpTunnel;
use lifebuoy::net::Identity;
use lifebuoy::proto::Role;
use lifebuoy::rendezvous::client::RendezvousClient;
use lifebuoy::rendezvous::server::{Limits, Server, ServerConfig};

/// The descriptor counts need the process to themselves.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A rendezvous with a relay and tunnel on loopback, and its pin.
async fn server(limits: Limits) -> (Server, lifebuoy::proto::Fingerprint, tempfile::NamedTempFile) {
    let staff = tempfile::NamedTempFile::new().unwrap();
    let identity = Arc::new(Identity::generate("lifebuoy rendezvous").unwrap());
    let pin = identity.fingerprint();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity,
        directory: staff.path().to_owned(),
        relay: Some("127.0.0.1:0".parse().unwrap()),
        relay_tcp: Some("127.0.0.1:0".parse().unwrap()),
        limits,
    })
    .await
    .unwrap();
    (server, pin, staff)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_clients_that_send_garbage_and_go_leave_nothing_open() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (server, _pin, _staff) = server(Limits::default()).await;
    let tcp = server.relay_tcp_addr().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = open_files();
    let kinds: [(&str, Vec<u8>); 5] = [
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: support.example.com\r\n\r\n".to_vec()),
        ("a huge length", [&b"LBT1"[..], &[0xff, 0xff, 1, 2, 3]].concat()),
        ("a channel that does not exist", [&b"LBT1"[..], &[0, 4, 7, 1, 2, 3]].concat()),
        ("zeros", vec![0; 4096]),
        ("the magic, then nothing", b"LBT1".to_vec()),
    ];
    for (kind, bytes) in &kinds {
        for _ in 0..20 {
            let mut c = std::net::TcpStream::connect(tcp).unwrap();
            c.write_all(bytes).unwrap();
            drop(c);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while open_files() > before {
            assert!(
                Instant::now() < deadline,
                "after 20 clients sending {kind}: {} descriptors more than before",
                open_files() - before
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Signs in through the tunnel over a TCP connection from `from`.
async fn through_tunnel(
    from: &str,
    tcp: SocketAddr,
    rendezvous: SocketAddr,
    pin: lifebuoy::proto::Fingerprint,
) -> Result<RendezvousClient, String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(from.parse().unwrap()).unwrap();
    let stream = socket.connect(tcp).await.map_err(|e| e.to_string())?;
    let (control, _) = tokio::sync::mpsc::channel(16);
    let tunnel = TcpTunnel::over(stream, rendezvous, control).unwrap();
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        endpoint_config(),
        None,
        tunnel,
        Arc::new(quinn::TokioRuntime),
    )
    .unwrap();
    sign_in(&endpoint, rendezvous, pin).await
}

async fn over_udp(
    from: &str,
    rendezvous: SocketAddr,
    pin: lifebuoy::proto::Fingerprint,
) -> Result<RendezvousClient, String> {
    let endpoint = make_endpoint(from.parse().unwrap(), None).unwrap();
    sign_in(&endpoint, rendezvous, pin).await
}

/// A customer's sign-in on `endpoint`, if it is let in within 2 s.
async fn sign_in(
    endpoint: &quinn::Endpoint,
    rendezvous: SocketAddr,
    pin: lifebuoy::proto::Fingerprint,
) -> Result<RendezvousClient, String> {
    let me = common::side(Role::Agent, "customer");
    let attempt = RendezvousClient::connect(endpoint, rendezvous, &me, pin);
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("not let in".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_the_tunnel_are_limited_by_their_own_address() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut limits = Limits::default();
    limits.admission.connections_per_source = 2;
    let (server, pin, _staff) = server(limits).await;
    let (udp, tcp) = (server.local_addr(), server.relay_tcp_addr().unwrap());
    // 127.0.0.1, where the tunnel's own sockets are, has used its share.
    let held =
        [over_udp("127.0.0.1:0", udp, pin).await.unwrap(), over_udp("127.0.0.1:0", udp, pin).await.unwrap()];
    assert!(over_udp("127.0.0.1:0", udp, pin).await.is_err(), "a third from one address");
    // Someone at 127.0.0.7 behind the tunnel still gets in, twice, and no more.
    let tunnelled = [
        through_tunnel("127.0.0.7:0", tcp, udp, pin).await.unwrap(),
        through_tunnel("127.0.0.7:0", tcp, udp, pin).await.unwrap(),
    ];
    assert!(through_tunnel("127.0.0.7:0", tcp, udp, pin).await.is_err(), "a third through the tunnel");
    // And 127.0.0.8 is someone else again.
    let other = through_tunnel("127.0.0.8:0", tcp, udp, pin).await;
    assert!(other.is_ok(), "{:?}", other.err());
    drop((held, tunnelled, other));
}

/// CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn open_files_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn out_of_descriptors_the_tunnel_waits_instead_of_spinning() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let staff = dir.path().join("staff.toml");
    std::fs::write(&staff, "").unwrap();
    let rendezvous =
        common::rendezvous_process(dir.path(), &staff, &[("LIFEBUOY_LOG", "warn")], Stdio::piped());
    let (mut server, tcp) = (rendezvous.child, rendezvous.tcp);
    let pid = server.id();
    // Ten tunnels that stay (a TCP connection and a UDP socket each) ...
    std::thread::sleep(Duration::from_millis(300));
    let before = open_files_of(pid);
    let mut held: Vec<std::net::TcpStream> =
        (0..10).map(|_| std::net::TcpStream::connect(tcp).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_files_of(pid) < before + 20 {
        assert!(Instant::now() < deadline, "the tunnels did not open");
        std::thread::sleep(Duration::from_millis(10));
    }
    // ... and not one descriptor more: the limit (a bound on descriptor
    // numbers) below the first free number, so every new one fails.
    let numbers: std::collections::BTreeSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let first_free = (0..).find(|n| !numbers.contains(n)).unwrap();
    let limit = first_free - 4;
    let set = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(set.success());
    // Now more come than it can take: they wait in the backlog.
    held.extend((0..20).filter_map(|_| std::net::TcpStream::connect(tcp).ok()));
    std::thread::sleep(Duration::from_millis(300));
    let (start, at) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let busy = (cpu_seconds(pid) - start) / at.elapsed().as_secs_f64();
    let _ = server.kill();
    let _ = server.wait();
    let mut log = String::new();
    server.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    drop(held);
    assert!(busy < 0.2, "the server used {:.0} % of a core with its descriptors exhausted", busy * 100.0);
    assert!(log.contains("cannot accept connections"), "nothing logged: {log}");
    assert!(log.lines().count() < 20, "a line for every try: {log}");
}
