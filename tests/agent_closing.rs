//! Closing the customer's agent, as the customer would: the tray's Close
//! (a real StatusNotifierItem on a private D-Bus, clicked through the
//! dbusmenu interface a desktop's tray uses), the window's close button
//! (the message a window manager sends for it), or SIGTERM. Either way the
//! technician's session ends within a second and the agent process is gone;
//! then no socket of it remains, the rendezvous counts it gone, and nothing
//! answers at its old address for its old key. The agent is the real binary
//! with its window, on Xvfb.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{xvfb, Started};
use lifebuoy::roles::viewer::{ViewerCommand, ViewerEvent, ViewerSetup};
use lifebuoy::roles::Ending;
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");

/// A stand-in for the desktop's tray host: it takes items' registrations.
struct Watcher(Arc<Mutex<Vec<String>>>);

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(&self, service: &str) {
        self.0.lock().unwrap().push(service.to_owned());
    }

    fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

/// A private session bus.
fn dbus(started: &mut Started) -> String {
    let mut child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon (package dbus)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    started.0.push(child);
    line.trim().to_owned()
}

struct Setup {
    started: Started,
    bus: zbus::Connection,
    items: Arc<Mutex<Vec<String>>>,
    agent: Child,
    commands: mpsc::Sender<ViewerCommand>,
    events: mpsc::Receiver<ViewerEvent>,
    rendezvous: common::CompanyOfOne,
    /// The agent's address as the technician's session saw it, and its key.
    peer: (std::net::SocketAddr, lifebuoy::proto::Fingerprint),
    /// The agent's UDP sockets while the session stood (inodes).
    sockets: Vec<u64>,
    /// The agent's display.
    display: String,
}

/// A rendezvous and a technician in this process, the customer's agent
/// window as a process with its own display and bus; the session stands
/// and the customer has let the technician in.
async fn session() -> Setup {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "1024x768x24");
    let address = dbus(&mut started);
    let items = Arc::new(Mutex::new(Vec::new()));
    let bus = zbus::connection::Builder::address(address.as_str())
        .unwrap()
        .name("org.kde.StatusNotifierWatcher")
        .unwrap()
        .serve_at("/StatusNotifierWatcher", Watcher(items.clone()))
        .unwrap()
        .build()
        .await
        .unwrap();

    let mut rendezvous = common::company_of_one("Anna").await;
    let (company, technician, pin) =
        (rendezvous.company, rendezvous.technician.take().unwrap(), rendezvous.company.pin);
    let (commands, command_rx) = mpsc::channel(16);
    let (event_tx, mut events) = mpsc::channel(256);
    let setup = ViewerSetup {
        server: company,
        name: "Anna".into(),
        inbox: Some(std::env::temp_dir()),
        audit_log: Some(std::path::PathBuf::from("/dev/null")),
    };
    tokio::spawn(lifebuoy::roles::viewer::drive(technician, setup, command_rx, event_tx));
    assert!(matches!(events.recv().await, Some(ViewerEvent::SignedIn { .. })));

    let agent = Command::new(BIN)
        .args(["agent", "--lang", "de", "--company", "Muster GmbH", "--label", "Kunde 4711"])
        .args(["--rendezvous", &company.addr.to_string(), "--rendezvous-pin", &pin.to_string()])
        .args(["--tunnel-port", "9", "--no-files", "--no-clipboard"])
        .env("DISPLAY", &display)
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .spawn()
        .unwrap();
    let xdotool = |args: &[&str]| {
        let ok =
            Command::new("timeout").arg("20").arg("xdotool").args(args).env("DISPLAY", &display).status();
        assert!(ok.unwrap().success(), "xdotool {args:?}");
    };
    xdotool(&["search", "--sync", "--name", "Fernwartung$"]);
    // The staff list needs a moment to come; then the customer double-clicks Anna.
    let deadline = Instant::now() + Duration::from_secs(30);
    let request = loop {
        if Instant::now() > deadline {
            let _ = Command::new("import")
                .args(["-window", "root", "/tmp/agent-closing.png"])
                .env("DISPLAY", &display)
                .status();
            panic!("no request came from the agent's window (its screen: /tmp/agent-closing.png)");
        }
        xdotool(&["search", "--name", "Fernwartung$", "mousemove", "--window", "%1", "30", "135"]);
        xdotool(&["click", "--repeat", "2", "--delay", "80", "1"]);
        match tokio::time::timeout(Duration::from_millis(700), events.recv()).await {
            Ok(Some(ViewerEvent::Incoming { request, .. })) => break request,
            Ok(other) => panic!("the technician got {other:?}"),
            Err(_) => continue,
        }
    };
    // While it asks, the customer is signed in beside the technician; it
    // leaves the rendezvous once the session stands.
    assert_eq!(rendezvous.server().stats().connections.load(Ordering::Relaxed), 2, "technician and customer");
    commands.send(ViewerCommand::Accept(request)).await.unwrap();
    let peer = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await.expect("the session stands")
        {
            Some(ViewerEvent::Connected { view, fingerprint, .. }) => {
                break (view.link.remote_address(), fingerprint)
            }
            Some(ViewerEvent::ConnectFailed(why)) => panic!("{why}"),
            _ => {}
        }
    };
    // The customer compares the code and clicks Erlauben (left of the two
    // buttons under the switches); the technician then learns of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the customer's yes never reached the technician");
        xdotool(&["search", "--name", "Fernwartung$", "mousemove", "--window", "%1", "116", "274"]);
        xdotool(&["click", "1"]);
        match tokio::time::timeout(Duration::from_millis(700), events.recv()).await {
            Ok(Some(ViewerEvent::Permissions(p))) => {
                assert!(p.view, "{p:?}");
                break;
            }
            Ok(Some(_)) | Err(_) => continue,
            Ok(None) => panic!("the technician's driver stopped"),
        }
    }
    let sockets = udp_sockets_of(agent.id());
    assert!(!sockets.is_empty(), "the agent holds UDP sockets while the session stands");
    Setup { started, bus, items, agent, commands, events, rendezvous, peer, sockets, display }
}

/// The inodes of the UDP sockets process `pid` holds.
fn udp_sockets_of(pid: u32) -> Vec<u64> {
    let open: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
        .collect();
    udp_inodes().into_iter().filter(|inode| open.contains(inode)).collect()
}

/// Every UDP socket on this machine (IPv4 and IPv6), by inode.
fn udp_inodes() -> Vec<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .flat_map(|table| {
            std::fs::read_to_string(table)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| line.split_whitespace().nth(9)?.parse().ok())
        .collect()
}

impl Setup {
    /// Waits for the technician's end; how long it took from `since`.
    async fn ended(&mut self, since: Instant) -> (Ending, Duration) {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.events.recv())
                .await
                .expect("the session ends")
            {
                Some(ViewerEvent::Ended(ending)) => return (ending, since.elapsed()),
                Some(_) => {}
                None => panic!("the technician's driver stopped"),
            }
        }
    }

    /// Waits for the agent process to exit.
    fn gone(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if let Some(status) = self.agent.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the agent is still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the customer's close must bring about, counted from `at`: the
    /// technician sees the customer's end within a second, the agent exits
    /// cleanly, and nothing of it is left.
    async fn customer_ended(&mut self, at: Instant) {
        let (ending, took) = self.ended(at).await;
        assert_eq!(ending, Ending::ByPeer(lifebuoy::proto::control::EndReason::CustomerEnded));
        assert!(took < Duration::from_secs(1), "the technician saw the end after {took:?}");
        let status = self.gone();
        assert!(status.success(), "the agent exited with {status}");
        self.nothing_left().await;
    }

    /// After the agent exited: none of its sockets remain, the rendezvous
    /// no longer counts it, nothing answers at its old address, and a new
    /// session to that address for its key cannot be made.
    async fn nothing_left(&self) {
        let left: Vec<u64> = udp_inodes().into_iter().filter(|i| self.sockets.contains(i)).collect();
        assert!(left.is_empty(), "sockets of the agent remain: {left:?}");
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.rendezvous.server().stats().connections.load(Ordering::Relaxed) != 1 {
            assert!(Instant::now() < deadline, "the rendezvous still counts the customer after 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (addr, key) = self.peer;
        // The path may have been IPv6 (this machine's own global address).
        let here: std::net::SocketAddr =
            if addr.is_ipv6() { "[::]:0" } else { "127.0.0.1:0" }.parse().unwrap();
        // Nothing listens there: the kernel answers "port unreachable".
        let probe = std::net::UdpSocket::bind(here).unwrap();
        probe.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        probe.connect(addr).unwrap();
        probe.send(b"anyone?").unwrap();
        let err = probe.recv(&mut [0u8; 64]).expect_err("something answered at the agent's old address");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        // And a session for the old key does not come about.
        let identity = Arc::new(lifebuoy::net::Identity::generate("Anna").unwrap());
        let endpoint = lifebuoy::net::endpoint::make_endpoint(here, Some(&identity)).unwrap();
        let local = lifebuoy::session::LocalSide {
            identity,
            role: lifebuoy::proto::Role::Viewer,
            name: "Anna".into(),
            capabilities: Default::default(),
        };
        let attempt = lifebuoy::session::Session::connect(&endpoint, addr, &local, key);
        let attempt = tokio::time::timeout(Duration::from_secs(3), attempt).await;
        assert!(!matches!(attempt, Ok(Ok(_))), "a session to the agent's old address and key came about");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trays_close_ends_the_session_and_the_agent() {
    let mut s = session().await;
    let item = s.items.lock().unwrap().first().cloned().expect("the agent's icon registered with the tray");
    let at = Instant::now();
    // What a tray host does when the person picks the menu's only item.
    s.bus
        .call_method(
            Some(item.as_str()),
            "/MenuBar",
            Some("com.canonical.dbusmenu"),
            "Event",
            &(1i32, "clicked", zbus::zvariant::Value::from(0i32), 0u32),
        )
        .await
        .expect("the tray's Close");
    s.customer_ended(at).await;
    drop(s.commands);
    drop(s.started);
}

/// What a window manager does when its close button is clicked: a
/// WM_DELETE_WINDOW message to the window (there is no window manager on
/// Xvfb to click), then the pointer moves on.
fn close_like_a_window_manager(display: &str, title: &str) {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt as _, EventMask};
    let found = Command::new("xdotool").args(["search", "--name", title]).env("DISPLAY", display).output();
    let ids = String::from_utf8(found.unwrap().stdout).unwrap();
    let window: u32 = ids.lines().next().expect("the agent's window").trim().parse().unwrap();
    let (conn, _) = x11rb::connect(Some(display)).unwrap();
    let atom = |name: &[u8]| conn.intern_atom(false, name).unwrap().reply().unwrap().atom;
    let (protocols, delete) = (atom(b"WM_PROTOCOLS"), atom(b"WM_DELETE_WINDOW"));
    let message = ClientMessageEvent::new(32, window, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
    conn.send_event(false, window, EventMask::NO_EVENT, message).unwrap();
    conn.flush().unwrap();
    // On a desktop more X events follow a close click (the pointer moves
    // on, the window manager changes the focus). Under load on a bare
    // Xvfb, with nothing after it, the close was sometimes not acted on
    // for seconds; see docs/roadmap.md.
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("xdotool").args(["mousemove", "5", "5"]).env("DISPLAY", display).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_window_ends_the_session_and_the_agent() {
    let mut s = session().await;
    let at = Instant::now();
    close_like_a_window_manager(&s.display, "Fernwartung$");
    s.customer_ended(at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_session_and_the_agent() {
    let mut s = session().await;
    let at = Instant::now();
    let pid = nix::unistd::Pid::from_raw(s.agent.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    s.customer_ended(at).await;
}
