//! Helpers shared by the tests that need a real X server.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Processes started here, ended when the test ends however it ends.
pub struct Started(pub Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts Xvfb on a free display (it picks one and writes its number to
/// the descriptor given, here its standard output).
pub fn xvfb(started: &mut Started, size: &str) -> String {
    let child = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", size, "-noreset", "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb must be installed (scripts/setup)");
    display_of(started, child)
}

/// The display an X server started with `-displayfd 1` and a piped
/// standard output has chosen; the server joins `started`.
pub fn display_of(started: &mut Started, mut child: Child) -> String {
    let mut out = child.stdout.take().unwrap();
    started.0.push(child);
    let mut number = String::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        number.push(byte[0] as char);
    }
    assert!(!number.is_empty(), "the X server did not report its display");
    format!(":{number}")
}

/// Presses and releases `keycode` with XTEST, as a keyboard would; returns
/// when the request left.
pub fn tap(conn: &impl x11rb::connection::Connection, root: u32, keycode: u8) -> std::time::Instant {
    use x11rb::protocol::xtest::ConnectionExt as _;
    let started = std::time::Instant::now();
    conn.xtest_fake_input(2, keycode, 0, root, 0, 0, 0).unwrap(); // KeyPress
    conn.xtest_fake_input(3, keycode, 0, root, 0, 0, 0).unwrap(); // KeyRelease
    conn.flush().unwrap();
    started
}

/// The keycode that types `x` in the X server's keymap.
pub fn keycode_of_x(conn: &impl x11rb::connection::Connection) -> u8 {
    use x11rb::protocol::xproto::ConnectionExt as _;
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn.get_keyboard_mapping(min, max - min + 1).unwrap().reply().unwrap();
    let per = map.keysyms_per_keycode as usize;
    let index = map.keysyms.chunks(per).position(|syms| syms.first() == Some(&0x78)).expect("a key for 'x'");
    min + index as u8
}

pub fn xterm(started: &mut Started, display: &str) -> String {
    let child = Command::new("xterm")
        .env("DISPLAY", display)
        .args(["-geometry", "50x12+40+30", "-title", "lifebuoy-test", "-e", "sh", "-c"])
        .arg("printf 'lifebuoy screen test\\nGr\\303\\274\\303\\237e 123\\n'; sleep 600")
        .spawn()
        .expect("xterm must be installed (scripts/setup)");
    started.0.push(child);
    let out = Command::new("xdotool")
        .env("DISPLAY", display)
        .args(["search", "--sync", "--name", "lifebuoy-test"])
        .output()
        .expect("xdotool must be installed (scripts/setup)");
    let window = String::from_utf8(out.stdout).unwrap().lines().next().expect("the xterm window").to_owned();
    // Let it draw its text.
    std::thread::sleep(Duration::from_millis(700));
    window
}

/// An agent and a viewer session, pinned to each other, on loopback.
pub async fn session_pair() -> (lifebuoy::session::Session, lifebuoy::session::Session) {
    use std::sync::Arc;

    use lifebuoy::net::{make_endpoint, Identity};
    use lifebuoy::proto::hello::Capabilities;
    use lifebuoy::proto::Role;
    use lifebuoy::session::{LocalSide, NonceGate, Session};

    let side = |role| {
        let identity = Arc::new(Identity::generate("test").unwrap());
        let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), Some(&identity)).unwrap();
        (LocalSide { identity, role, name: String::new(), capabilities: Capabilities::default() }, endpoint)
    };
    let (viewer, viewer_ep) = side(Role::Viewer);
    let (agent, agent_ep) = side(Role::Agent);
    let addr = viewer_ep.local_addr().unwrap();
    let (v, a) = tokio::join!(
        async {
            Session::accept(
                viewer_ep.accept().await.unwrap(),
                &viewer,
                agent.identity.fingerprint(),
                &NonceGate::new(),
            )
            .await
        },
        Session::connect(&agent_ep, addr, &agent, viewer.identity.fingerprint())
    );
    (a.unwrap(), v.unwrap())
}

/// Writes `size` bytes of xorshift noise (incompressible, reproducible by `seed`).
pub fn random_file(path: &std::path::Path, size: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

/// A terminal at `geometry` on `display` that writes what is typed into it
/// to `typed` (no echo), with the keyboard focus.
pub fn typing_terminal(started: &mut Started, display: &str, geometry: &str, typed: &std::path::Path) {
    terminal_with_tty(started, display, geometry, typed, "-echo");
}

/// `typing_terminal` with its tty set by `stty` (`raw -echo`: every byte
/// as the terminal sends it, Ctrl+C and Enter's CR included).
pub fn terminal_with_tty(
    started: &mut Started,
    display: &str,
    geometry: &str,
    typed: &std::path::Path,
    stty: &str,
) {
    let terminal = Command::new("xterm")
        .env("DISPLAY", display)
        .env("LC_ALL", "C.UTF-8")
        .args(["-u8", "-geometry", geometry, "-title", "customer-terminal", "-e", "sh", "-c"])
        .arg(format!("stty {stty}; cat > '{}'", typed.display()))
        .spawn()
        .expect("xterm must be installed (scripts/setup)");
    started.0.push(terminal);
    // The title can come before the window is mapped, and an unmapped
    // window cannot take the focus: try until it can.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let focused = Command::new("timeout")
            .args([
                "5",
                "xdotool",
                "search",
                "--sync",
                "--name",
                "customer-terminal",
                "windowfocus",
                "--sync",
            ])
            .env("DISPLAY", display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if focused.success() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the terminal did not get the focus");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A rendezvous on loopback (no relay) whose staff directory lists one
/// technician; the technician's key is returned with it.
pub struct CompanyOfOne {
    /// The server (none while shut down); dropped with the test.
    server: Option<lifebuoy::rendezvous::server::Server>,
    /// Where it is and its pin.
    pub company: lifebuoy::roles::CompanyServer,
    /// The listed technician's key.
    pub technician: Option<lifebuoy::net::Identity>,
    identity: std::sync::Arc<lifebuoy::net::Identity>,
    staff: tempfile::NamedTempFile,
}

impl CompanyOfOne {
    /// The running server.
    pub fn server(&self) -> &lifebuoy::rendezvous::server::Server {
        self.server.as_ref().expect("the rendezvous runs")
    }

    /// Shut down: every connection closed with a goodbye, the port free.
    pub async fn shut_down(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Started again after [`CompanyOfOne::shut_down`], on the same port
    /// with the same key.
    pub async fn start_again(&mut self) {
        use lifebuoy::rendezvous::server::{Limits, Server, ServerConfig};
        // The old run's tasks let go of the port as they notice the end.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let config = ServerConfig {
                listen: self.company.addr,
                identity: self.identity.clone(),
                directory: self.staff.path().to_owned(),
                relay: None,
                relay_tcp: None,
                limits: Limits::default(),
            };
            match Server::start(config).await {
                Ok(server) => break self.server = Some(server),
                Err(e) if std::time::Instant::now() > deadline => panic!("cannot start again: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

pub async fn company_of_one(name: &str) -> CompanyOfOne {
    use std::io::Write as _;

    use lifebuoy::net::Identity;
    use lifebuoy::rendezvous::server::{Limits, Server, ServerConfig};

    let technician = Identity::generate(name).unwrap();
    let mut staff = tempfile::NamedTempFile::new().unwrap();
    write!(staff, "[[staff]]\nname = \"{name}\"\nfingerprint = \"{}\"\n", technician.fingerprint()).unwrap();
    let identity = std::sync::Arc::new(Identity::generate("lifebuoy rendezvous").unwrap());
    let pin = identity.fingerprint();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity: identity.clone(),
        directory: staff.path().to_owned(),
        relay: None,
        relay_tcp: None,
        limits: Limits::default(),
    })
    .await
    .unwrap();
    let company = lifebuoy::roles::CompanyServer { addr: server.local_addr(), pin, tunnel_port: 9 };
    CompanyOfOne { server: Some(server), company, technician: Some(technician), identity, staff }
}

/// The real program's three roles as processes: a rendezvous on loopback,
/// the technician's viewer window on the display `technician` (moved to
/// 0,0), and a headless agent on `customer` asking for the technician.
/// Accept is clicked in the window; the agent allows at once (`--allow`).
/// Returns the window's id once the agent says it let the technician in.
/// Keys, files received (`customer-inbox`, `technician-inbox`), audit logs
/// and the agent's output (`agent.out`) stay in `work`. Everything is
/// ended with `started`.
pub fn viewer_window_session(
    started: &mut Started,
    work: &std::path::Path,
    customer: &str,
    technician: &str,
) -> String {
    const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");
    let id = |dir: &str, rendezvous: bool| {
        let mut c = Command::new(BIN);
        c.arg("--config-dir").arg(work.join(dir)).arg("id");
        if rendezvous {
            c.arg("--rendezvous");
        }
        let out = c.stderr(Stdio::null()).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let xdotool = |args: &[&str]| xdotool(technician, args);
    let (rv_pin, tech) = (id("rv", true), id("tech", false));
    for inbox in ["customer-inbox", "technician-inbox"] {
        std::fs::create_dir_all(work.join(inbox)).unwrap();
    }
    let staff = work.join("staff.toml");
    std::fs::write(&staff, format!("[[staff]]\nname = \"Anna\"\nfingerprint = \"{tech}\"\n")).unwrap();
    // A port the system has just handed out and taken back: free.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut rv = Command::new(BIN);
    rv.arg("--config-dir").arg(work.join("rv"));
    rv.args(["rendezvous", "--no-relay", "--listen", &listen, "--staff"]).arg(&staff);
    started.0.push(rv.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let mut viewer = Command::new(BIN);
    viewer.env("DISPLAY", technician).arg("--config-dir").arg(work.join("tech"));
    viewer.args(["viewer", "--rendezvous", &listen, "--rendezvous-pin", &rv_pin, "--lang", "en"]);
    viewer.arg("--inbox").arg(work.join("technician-inbox"));
    viewer.arg("--audit-log").arg(work.join("technician-audit.jsonl"));
    started.0.push(viewer.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let window = xdotool(&["search", "--sync", "--onlyvisible", "--name", "technician$"]);
    xdotool(&["windowmove", "--sync", &window, "0", "0"]);
    std::thread::sleep(Duration::from_millis(1500));
    let said = work.join("agent.out");
    let mut agent = Command::new(BIN);
    agent.env("DISPLAY", customer);
    agent.args(["agent", "--rendezvous", &listen, "--rendezvous-pin", &rv_pin, "--staff", "Anna", "--allow"]);
    agent.arg("--inbox").arg(work.join("customer-inbox"));
    agent.arg("--audit-log").arg(work.join("customer-audit.jsonl"));
    agent.stdout(std::fs::File::create(&said).unwrap()).stderr(Stdio::null());
    started.0.push(agent.spawn().unwrap());
    // Accept is the first request's button, where the window shows it once
    // the request has come. Clicked again only when nothing came of it for
    // 5 s: a second click on a session already there lands in the view.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(1000));
        xdotool(&["mousemove", "--window", &window, "40", "125", "click", "1"]);
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            if std::fs::read_to_string(&said).unwrap().lines().any(|l| l == "allowed") {
                return window;
            }
        }
    }
    panic!("no session: the agent said {:?}", std::fs::read_to_string(&said).unwrap());
}

/// Runs xdotool on `display` (bounded: `search --sync` would wait for
/// ever); its first line of output.
pub fn xdotool(display: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .output()
        .expect("xdotool (scripts/setup)");
    assert!(out.status.success(), "xdotool {args:?}");
    String::from_utf8(out.stdout).unwrap().lines().next().unwrap_or_default().to_owned()
}

/// The agent's and the viewer's drivers in this process, against a
/// rendezvous of one technician, as the windows drive them (commands in,
/// events out).
pub struct Drivers {
    pub agent: tokio::sync::mpsc::Sender<lifebuoy::roles::agent::AgentCommand>,
    pub agent_events: tokio::sync::mpsc::Receiver<lifebuoy::roles::agent::AgentEvent>,
    pub viewer: tokio::sync::mpsc::Sender<lifebuoy::roles::viewer::ViewerCommand>,
    pub viewer_events: tokio::sync::mpsc::Receiver<lifebuoy::roles::viewer::ViewerEvent>,
    /// Inboxes (`customer`, `technician`) and audit logs.
    pub dir: tempfile::TempDir,
    server: lifebuoy::roles::CompanyServer,
    _company: Option<CompanyOfOne>,
}

impl Drivers {
    /// Both signed in; the customer's setup as `tweak` leaves it (no
    /// display, files allowed, the clipboard not shared by default).
    pub async fn start(tweak: impl FnOnce(&mut lifebuoy::roles::agent::AgentSetup)) -> Drivers {
        let mut company = company_of_one("Anna").await;
        let technician = company.technician.take().unwrap();
        let server = company.company;
        Drivers::against(server, technician, Some(company), tweak).await
    }

    /// Both started against `server`, where `technician` is listed as
    /// Anna; the viewer has signed in.
    pub async fn against(
        server: lifebuoy::roles::CompanyServer,
        technician: lifebuoy::net::Identity,
        hold: Option<CompanyOfOne>,
        tweak: impl FnOnce(&mut lifebuoy::roles::agent::AgentSetup),
    ) -> Drivers {
        use lifebuoy::roles::agent::AgentSetup;
        use lifebuoy::roles::viewer::{ViewerEvent, ViewerSetup};
        let dir = tempfile::tempdir().unwrap();
        for inbox in ["customer", "technician"] {
            std::fs::create_dir_all(dir.path().join(inbox)).unwrap();
        }
        let (viewer, rx) = tokio::sync::mpsc::channel(64);
        let (tx, mut viewer_events) = tokio::sync::mpsc::channel(1024);
        let setup = ViewerSetup {
            server,
            name: "Anna".into(),
            inbox: Some(dir.path().join("technician")),
            audit_log: Some(dir.path().join("technician.jsonl")),
        };
        tokio::spawn(lifebuoy::roles::viewer::drive(technician, setup, rx, tx));
        assert!(matches!(viewer_events.recv().await, Some(ViewerEvent::SignedIn { .. })));
        let mut setup = AgentSetup {
            server,
            display: None,
            view_only: false,
            no_clipboard: false,
            clipboard_to_technician: false,
            no_files: false,
            inbox: Some(dir.path().join("customer")),
            audit_log: Some(dir.path().join("customer.jsonl")),
        };
        tweak(&mut setup);
        let (agent, rx) = tokio::sync::mpsc::channel(64);
        let (tx, agent_events) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(lifebuoy::roles::agent::drive(setup, rx, tx));
        Drivers { agent, agent_events, viewer, viewer_events, dir, server, _company: hold }
    }

    /// Where the rendezvous is, for a hostile peer of the test's own.
    pub fn company(&self) -> lifebuoy::roles::CompanyServer {
        self.server
    }

    /// The first agent event `pick` takes (10 s at most).
    pub async fn agent_until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(lifebuoy::roles::agent::AgentEvent) -> Option<T>,
    ) -> T {
        let wait = async {
            loop {
                let event =
                    self.agent_events.recv().await.unwrap_or_else(|| panic!("agent gone before {what}"));
                if let Some(t) = pick(event) {
                    return t;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.unwrap_or_else(|_| panic!("no {what}"))
    }

    /// The first viewer event `pick` takes (10 s at most).
    pub async fn viewer_until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(lifebuoy::roles::viewer::ViewerEvent) -> Option<T>,
    ) -> T {
        let wait = async {
            loop {
                let event =
                    self.viewer_events.recv().await.unwrap_or_else(|| panic!("viewer gone before {what}"));
                if let Some(t) = pick(event) {
                    return t;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.unwrap_or_else(|_| panic!("no {what}"))
    }

    /// The customer asks Anna, Anna accepts: the connection stands and the
    /// customer is being asked. What the customer is offered, and the
    /// technician's view of the session.
    pub async fn connect(&mut self) -> (lifebuoy::roles::agent::Offer, lifebuoy::roles::viewer::SessionView) {
        use lifebuoy::roles::agent::{AgentCommand, AgentEvent};
        use lifebuoy::roles::viewer::{ViewerCommand, ViewerEvent};
        let anna = self
            .agent_until("the staff list", |e| match e {
                AgentEvent::Staff(list) => list.into_iter().find(|s| s.name == "Anna"),
                _ => None,
            })
            .await;
        self.agent
            .send(AgentCommand::Request { staff: anna.fingerprint, label: "Kunde".into() })
            .await
            .unwrap();
        let request = self
            .viewer_until("the request", |e| match e {
                ViewerEvent::Incoming { request, .. } => Some(request),
                _ => None,
            })
            .await;
        self.viewer.send(ViewerCommand::Accept(request)).await.unwrap();
        let view = self
            .viewer_until("the technician's session", |e| match e {
                ViewerEvent::Connected { view, .. } => Some(view),
                _ => None,
            })
            .await;
        let offer = self
            .agent_until("the customer's question", |e| match e {
                AgentEvent::Connected { offer, .. } => Some(offer),
                _ => None,
            })
            .await;
        (offer, view)
    }
}

/// Who a raw test client is: a fresh key in `role`.
pub fn side(role: lifebuoy::proto::Role, name: &str) -> lifebuoy::session::LocalSide {
    lifebuoy::session::LocalSide {
        identity: std::sync::Arc::new(lifebuoy::net::Identity::generate(name).unwrap()),
        role,
        name: name.into(),
        capabilities: lifebuoy::proto::hello::Capabilities::default(),
    }
}

/// The real `lifebuoy rendezvous` on loopback with its relay and tunnel,
/// and where it listens (it says so on its standard output).
pub struct RendezvousProcess {
    pub child: Child,
    pub udp: std::net::SocketAddr,
    pub tcp: std::net::SocketAddr,
    pub pin: lifebuoy::proto::Fingerprint,
}

/// Starts it with its key in `config`, the staff directory `staff` and
/// the environment `env`; its standard error goes to `stderr`.
pub fn rendezvous_process(
    config: &std::path::Path,
    staff: &std::path::Path,
    env: &[(&str, &str)],
    stderr: Stdio,
) -> RendezvousProcess {
    rendezvous_process_on("127.0.0.1:0", config, staff, env, stderr)
}

/// [`rendezvous_process`] on UDP `listen` (a restart on the same port).
pub fn rendezvous_process_on(
    listen: &str,
    config: &std::path::Path,
    staff: &std::path::Path,
    env: &[(&str, &str)],
    stderr: Stdio,
) -> RendezvousProcess {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifebuoy"))
        .arg("--config-dir")
        .arg(config)
        .args(["rendezvous", "--listen", listen, "--relay", "127.0.0.1:0", "--relay-tcp", "127.0.0.1:0"])
        .arg("--staff")
        .arg(staff)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut udp, mut tcp) = (None, None);
    let pin = loop {
        let line = lines.next().expect("the rendezvous said where it listens").unwrap();
        if let Some(a) = line.strip_prefix("rendezvous listening on ") {
            udp = a.trim_end_matches(" (UDP)").parse().ok();
        } else if let Some(a) = line.strip_prefix("relay tunnel listening on ") {
            tcp = a.trim_end_matches(" (TCP)").parse().ok();
        } else if let Some(f) = line.strip_prefix("rendezvous fingerprint ") {
            break f.trim().parse().unwrap();
        }
    };
    // Whatever else it says must not fill a pipe nobody reads.
    std::thread::spawn(move || lines.for_each(drop));
    RendezvousProcess { child, udp: udp.unwrap(), tcp: tcp.unwrap(), pin }
}
