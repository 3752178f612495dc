//! A peer that opens streams as fast as it can, once let in: the other
//! side's memory and open files stay bounded, and the session goes on to
//! a plain end. Both ways: a technician flooding the customer with files
//! that never end, a customer flooding the technician with screen updates
//! of the largest size, each cut one byte short. The honest side is the
//! real program, measured from outside (/proc); the hostile one is a raw
//! session of the test's own through the same rendezvous.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy::net::candidates::host_candidates;
use lifebuoy::net::punch::{connect_peer, PeerLink};
use lifebuoy::net::socket::PeerEndpoint;
use lifebuoy::net::Identity;
use lifebuoy::proto::control::{Control, EndReason, Permissions};
use lifebuoy::proto::file::{EntryKind, File, FileHeader};
use lifebuoy::proto::hello::Capabilities;
use lifebuoy::proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy::proto::screen::{Screen, ScreenUpdate};
use lifebuoy::proto::Role;
use lifebuoy::roles::files::RECEIVING_MAX;
use lifebuoy::roles::CompanyServer;
use lifebuoy::session::LocalSide;

const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    kib / 1024
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The temporary files of files being received under `dir`.
fn parts(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            n += parts(&entry.path());
        } else if name.starts_with(".lifebuoy-") && name.ends_with(".part") {
            n += 1;
        }
    }
    n
}

/// The highest of `measure` until the returned flag is set, sampled every 20 ms.
fn peak_of<F: Fn() -> u64 + Send + 'static>(measure: F) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            peak = peak.max(measure());
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    (stop, sampler)
}

fn local(identity: Identity, role: Role) -> LocalSide {
    LocalSide {
        identity: Arc::new(identity),
        role,
        name: "raw".into(),
        capabilities: Capabilities::default(),
    }
}

/// Waits for a process to exit, 10 s at most.
fn exits(child: &mut Child, who: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{who} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hostile technician: signs in with the listed key, accepts the first
/// request, connects and waits for the customer's yes.
async fn hostile_technician(company: CompanyServer, key: Identity) -> (PeerEndpoint, PeerLink) {
    let me = local(key, Role::Viewer);
    let (endpoint, mut rv) = lifebuoy::roles::sign_in(&company, &me, || ()).await.unwrap();
    let go = loop {
        match rv.recv().await.unwrap().expect("the rendezvous stays") {
            FromRendezvous::Incoming { request, .. } => {
                let candidates = host_candidates(endpoint.local_addr().port());
                rv.send(&ToRendezvous::Accept { request, candidates }).await.unwrap();
            }
            FromRendezvous::Go(go) => break go,
            _ => {}
        }
    };
    let mut link = connect_peer(&endpoint, &me, &go, None).await.unwrap();
    loop {
        match link.session.control.rx.recv().await.unwrap() {
            Some(Control::Permissions(p)) if p.files => return (endpoint, link),
            Some(_) => continue,
            None => panic!("the customer ended before allowing"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_flooding_file_streams_gets_a_bounded_customer_and_a_plain_end() {
    let mut company = common::company_of_one("Anna").await;
    let key = company.technician.take().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let mut agent = Command::new(BIN)
        .args(["agent", "--staff", "Anna", "--allow", "--no-clipboard"])
        .args(["--rendezvous", &company.company.addr.to_string()])
        .args(["--rendezvous-pin", &company.company.pin.to_string(), "--tunnel-port", "9"])
        .arg("--inbox")
        .arg(&inbox)
        .arg("--audit-log")
        .arg(dir.path().join("audit.jsonl"))
        .env_remove("DISPLAY")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = agent.id();
    let (_endpoint, link) =
        tokio::time::timeout(Duration::from_secs(20), hostile_technician(company.company, key))
            .await
            .expect("the customer let the technician in");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss, files) = (rss_mib(pid), open_files(pid));

    // Streams as fast as the connection lets them open: each a header for a
    // gigabyte, some data, and then nothing, for ever. (Little data each, so
    // the connection's window does not run dry before every header is in.)
    let (stop, sampler) = peak_of(move || rss_mib(pid));
    let peer = link.session.link.clone();
    let flood = tokio::spawn(async move {
        let mut data = Vec::new();
        lifebuoy::proto::encode(&File::Data(vec![0x5a; 64 << 10]), &mut data).unwrap();
        let data = Arc::new(data);
        let mut writers = Vec::new();
        for i in 0u64.. {
            let Ok(mut tx) = peer.open::<File>().await else { break };
            let data = data.clone();
            writers.push(tokio::spawn(async move {
                let path = format!("flut-{i}.bin");
                let header =
                    FileHeader { transfer: i, path, entry: EntryKind::File, size: 1 << 30, modified: None };
                if tx.send(&File::Header(header)).await.is_err() {
                    return;
                }
                for _ in 0..4 {
                    if tx.write_raw(&data).await.is_err() {
                        return;
                    }
                }
                std::future::pending::<()>().await;
            }));
        }
        writers
    });
    let deadline = Instant::now() + Duration::from_secs(4);
    let (mut most, mut most_fds) = (0, 0);
    while Instant::now() < deadline && most < RECEIVING_MAX {
        most = most.max(parts(&inbox));
        most_fds = most_fds.max(open_files(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let opened = most_fds.saturating_sub(files);
    eprintln!("file flood: {most} files at once, {opened} more descriptors, memory {rss} -> {peak} MiB");
    assert!(most >= RECEIVING_MAX / 2, "the flood did not reach the customer ({most} files)");
    assert!(most <= RECEIVING_MAX, "{most} files written at once");
    assert!(opened <= RECEIVING_MAX + 8, "{opened} more descriptors open");
    assert!(peak.saturating_sub(rss) < 300, "memory grew from {rss} to {peak} MiB");

    // The session still answers: the technician ends it, and the customer's
    // program exits cleanly with nothing half-written left behind.
    flood.abort();
    link.session.end(EndReason::TechnicianEnded).await;
    let status = exits(&mut agent, "the customer's program");
    assert!(status.success(), "the agent exited with {status}");
    assert_eq!(parts(&inbox), 0, "unfinished files stayed after the session");
    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 0, "nothing of the flood was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_flooding_screen_streams_gets_a_bounded_technician_and_a_plain_end() {
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str| {
        let out =
            Command::new(BIN).arg("--config-dir").arg(dir.path().join(name)).arg("id").output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let tech = key("tech");
    let staff = dir.path().join("staff.toml");
    std::fs::write(&staff, format!("[[staff]]\nname = \"Anna\"\nfingerprint = \"{tech}\"\n")).unwrap();
    let identity = Arc::new(Identity::generate("lifebuoy rendezvous").unwrap());
    let pin = identity.fingerprint();
    let server = lifebuoy::rendezvous::server::Server::start(lifebuoy::rendezvous::server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity,
        directory: staff,
        relay: None,
        relay_tcp: None,
        limits: Default::default(),
    })
    .await
    .unwrap();
    let company = CompanyServer { addr: server.local_addr(), pin, tunnel_port: 9 };
    let mut viewer = Command::new(BIN)
        .arg("--config-dir")
        .arg(dir.path().join("tech"))
        .args(["viewer", "--accept-all", "--sessions", "1"])
        .args(["--rendezvous", &company.addr.to_string(), "--rendezvous-pin", &pin.to_string()])
        .arg("--inbox")
        .arg(dir.path())
        .arg("--audit-log")
        .arg(dir.path().join("audit.jsonl"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = viewer.id();

    // The hostile customer signs in and asks Anna like any other.
    let me = local(Identity::generate("customer").unwrap(), Role::Agent);
    let (endpoint, mut rv) = lifebuoy::roles::sign_in(&company, &me, || ()).await.unwrap();
    let anna = loop {
        rv.send(&ToRendezvous::ListStaff).await.unwrap();
        match rv.recv().await.unwrap() {
            Some(FromRendezvous::Staff { entries })
                if entries[0].presence != lifebuoy::proto::rendezvous::Presence::Offline =>
            {
                break entries[0].fingerprint
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let candidates = host_candidates(endpoint.local_addr().port());
    rv.send(&ToRendezvous::Request { staff: anna, label: "Kunde".into(), candidates }).await.unwrap();
    let go = loop {
        match rv.recv().await.unwrap().expect("the rendezvous stays") {
            FromRendezvous::Go(go) => break go,
            _ => continue,
        }
    };
    let link = connect_peer(&endpoint, &me, &go, None).await.unwrap();
    let mut session = link.session;
    let permissions = Permissions { view: true, control: false, files: false, clipboard: false };
    session.control.tx.send(&Control::Permissions(permissions)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss = rss_mib(pid);

    // Updates of the largest size, one stream each, as fast as they go,
    // each but its last byte: every stream holds a frame it cannot finish.
    let (stop, sampler) = peak_of(move || rss_mib(pid));
    let peer = session.link.clone();
    let flood = tokio::spawn(async move {
        let update =
            ScreenUpdate { seq: 1, monitor: 0, width: 1920, height: 1080, data: vec![0x33; 15 << 20] };
        let mut frame = Vec::new();
        lifebuoy::proto::encode(&Screen::Update(update), &mut frame).unwrap();
        let mut open = Vec::new();
        while let Ok(mut tx) = peer.open::<Screen>().await {
            if tx.write_raw(&frame[..frame.len() - 1]).await.is_err() {
                break;
            }
            open.push(tx);
        }
        open.len()
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    flood.abort();
    eprintln!("screen flood: memory {rss} -> {peak} MiB");
    assert!(peak > rss + 30, "the flood did not reach the technician ({rss} -> {peak} MiB)");
    assert!(peak.saturating_sub(rss) < 300, "memory grew from {rss} to {peak} MiB");

    // The customer ends; the technician's program, done with its one
    // session, exits cleanly.
    session.end(EndReason::CustomerEnded).await;
    let status = exits(&mut viewer, "the technician's program");
    assert!(status.success(), "the viewer exited with {status}");
}
