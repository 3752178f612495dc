//! Load on the rendezvous: many signed-in customers and a steady stream of
//! requests, against the real `lifebuoy rendezvous` process on loopback.
//!
//! Run: `cargo bench --bench rendezvous_load` (or `just bench`).
//! Environment: LOAD_CONNECTIONS (default 10000), LOAD_RATE requests/s
//! (default 100), LOAD_SECONDS (default 20).
//!
//! Prints: time to sign in all connections, the server's memory per
//! connection (resident set growth / connections), request latency
//! (request sent -> refusal received, through a technician who declines),
//! the rate held, and the server's CPU use while holding it.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy::net::{make_endpoint, Identity};
use lifebuoy::proto::hello::Capabilities;
use lifebuoy::proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy::proto::{Fingerprint, Role};
use lifebuoy::rendezvous::client::RendezvousClient;
use lifebuoy::session::LocalSide;
use tokio::sync::{mpsc, Semaphore};

const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");
const VIEWERS: usize = 20;
const SOURCE_IPS: u8 = 100;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn local(role: Role, name: &str) -> LocalSide {
    LocalSide {
        identity: Arc::new(Identity::generate(name).unwrap()),
        role,
        name: name.into(),
        capabilities: Capabilities::default(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let connections = env("LOAD_CONNECTIONS", 10_000) as usize;
    let rate = env("LOAD_RATE", 100);
    let seconds = env("LOAD_SECONDS", 20);
    let dir = tempfile::tempdir().unwrap();
    let viewers: Vec<LocalSide> =
        (0..VIEWERS).map(|i| local(Role::Viewer, &format!("Techniker {i}"))).collect();
    let staff: String = viewers
        .iter()
        .map(|v| {
            format!("[[staff]]\nname = \"{}\"\nfingerprint = \"{}\"\n", v.name, v.identity.fingerprint())
        })
        .collect();
    std::fs::write(dir.path().join("staff.toml"), staff).unwrap();
    let pin_out =
        Command::new(BIN).arg("--config-dir").arg(dir.path()).args(["id", "--rendezvous"]).output().unwrap();
    let pin: Fingerprint = String::from_utf8(pin_out.stdout).unwrap().trim().parse().unwrap();
    let mut server = Command::new(BIN)
        .arg("--config-dir")
        .arg(dir.path())
        .args(["rendezvous", "--listen", "127.0.0.1:0", "--no-relay", "--max-connections", "50000"])
        .args(["--max-connections-per-ip", "5000", "--connect-rate-per-ip", "2000", "--staff"])
        .arg(dir.path().join("staff.toml"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let addr: SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("rendezvous listening on ").map(|a| a.trim_end_matches(" (UDP)").parse().unwrap())
        })
        .expect("the server did not start");
    std::thread::sleep(Duration::from_millis(300));
    let baseline = rss_kib(pid);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = rt.block_on(async move {
        let endpoints: Vec<quinn::Endpoint> = (1..=SOURCE_IPS)
            .map(|i| {
                make_endpoint(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, i)), 0), None).unwrap()
            })
            .collect();
        // Technicians who decline every request at once.
        for (i, v) in viewers.into_iter().enumerate() {
            let mut rv =
                RendezvousClient::connect(&endpoints[i % endpoints.len()], addr, &v, pin).await.unwrap();
            tokio::spawn(async move {
                while let Ok(Some(msg)) = rv.recv().await {
                    if let FromRendezvous::Incoming { request, .. } = msg {
                        if rv.send(&ToRendezvous::Decline { request }).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }

        // Customers sign in and list the staff.
        let started = Instant::now();
        let gate = Arc::new(Semaphore::new(200));
        let mut joins = Vec::with_capacity(connections);
        for i in 0..connections {
            let endpoint = endpoints[i % endpoints.len()].clone();
            let gate = gate.clone();
            joins.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                let me = LocalSide {
                    identity: Arc::new(Identity::generate("agent").unwrap()),
                    role: Role::Agent,
                    name: String::new(),
                    capabilities: Capabilities::default(),
                };
                let mut rv = RendezvousClient::connect(&endpoint, addr, &me, pin).await?;
                rv.send(&ToRendezvous::ListStaff).await?;
                let staff = match rv.recv().await? {
                    Some(FromRendezvous::Staff { entries }) => entries,
                    other => panic!("expected the staff list, got {other:?}"),
                };
                Ok::<_, lifebuoy::session::SessionError>((rv, staff))
            }));
        }
        let mut agents = Vec::with_capacity(connections);
        let mut staff = Vec::new();
        for j in joins {
            let (rv, list) = j.await.unwrap().expect("sign-in failed");
            staff = list;
            agents.push(rv);
        }
        let signed_in = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let connected_rss = rss_kib(pid);

        // Each customer gets a reader task; requests wait on a channel for the answer.
        let mut senders = Vec::with_capacity(agents.len());
        for rv in agents {
            let (mut tx, mut rx, conn) = rv.split();
            let (ask_tx, mut ask_rx) =
                mpsc::channel::<(ToRendezvous, tokio::sync::oneshot::Sender<FromRendezvous>)>(1);
            tokio::spawn(async move {
                let _conn = conn;
                while let Some((msg, reply)) = ask_rx.recv().await {
                    if tx.send(&msg).await.is_err() {
                        return;
                    }
                    loop {
                        match rx.recv().await {
                            Ok(Some(FromRendezvous::Staff { .. })) => continue,
                            Ok(Some(answer)) => {
                                let _ = reply.send(answer);
                                break;
                            }
                            _ => return,
                        }
                    }
                }
            });
            senders.push(ask_tx);
        }
        let ticks_before = cpu_ticks(pid);
        let phase = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        let mut pending = Vec::new();
        let total = rate * seconds;
        for n in 0..total as usize {
            tick.tick().await;
            let agent = senders[n % senders.len()].clone();
            let target = staff[n % staff.len()].fingerprint;
            pending.push(tokio::spawn(async move {
                let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
                let sent = Instant::now();
                let request =
                    ToRendezvous::Request { staff: target, label: String::new(), candidates: vec![] };
                agent.send((request, reply_tx)).await.ok()?;
                let answer = tokio::time::timeout(Duration::from_secs(10), reply_rx).await.ok()?.ok()?;
                Some((sent.elapsed(), answer))
            }));
        }
        let mut latencies = Vec::new();
        let mut wrong = 0;
        for p in pending {
            match p.await.unwrap() {
                Some((latency, FromRendezvous::Refused { .. })) => {
                    latencies.push(latency.as_secs_f64() * 1e3)
                }
                _ => wrong += 1,
            }
        }
        let phase_secs = phase.elapsed().as_secs_f64();
        let cpu = (cpu_ticks(pid) - ticks_before) as f64 / 100.0 / phase_secs;
        latencies.sort_by(f64::total_cmp);
        (signed_in, connected_rss, latencies, wrong, phase_secs, cpu, total)
    });
    let (signed_in, connected_rss, latencies, wrong, phase_secs, cpu, total) = report;
    let per_conn = (connected_rss.saturating_sub(baseline)) as f64 * 1024.0 / connections as f64;
    println!("rendezvous load, {connections} connections from {SOURCE_IPS} loopback addresses, {VIEWERS} technicians");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| sign-in of all connections (200 at a time) | {:.1} s |", signed_in.as_secs_f64());
    println!(
        "| server resident memory, idle / with all connections | {} MiB / {} MiB |",
        baseline / 1024,
        connected_rss / 1024
    );
    println!("| memory per connection | {:.1} KiB |", per_conn / 1024.0);
    println!("| requests answered / sent | {} / {total} ({wrong} lost or wrong) |", latencies.len());
    println!("| request rate held | {:.1} /s |", latencies.len() as f64 / phase_secs);
    println!(
        "| request -> answer latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!("| server CPU while holding the rate | {:.0} % of one core |", cpu * 100.0);
    let _ = server.kill();
    let _ = server.wait();
}
