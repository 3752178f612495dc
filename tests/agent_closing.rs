//! Closing the customer's agent, as the customer would: the tray's Close
//! (a real StatusNotifierItem on a private D-Bus, clicked through the
//! dbusmenu interface a desktop's tray uses) or SIGTERM. Either way the
//! technician's session ends within a second and the agent process is gone.
//! The agent is the real binary with its window, on Xvfb.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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
    _rendezvous: common::CompanyOfOne,
}

/// A rendezvous and a technician in this process, the customer's agent
/// window as a process with its own display and bus; the session stands.
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
    commands.send(ViewerCommand::Accept(request)).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await.expect("the session stands")
        {
            Some(ViewerEvent::Connected { .. }) => break,
            Some(ViewerEvent::ConnectFailed(why)) => panic!("{why}"),
            _ => {}
        }
    }
    Setup { started, bus, items, agent, commands, events, _rendezvous: rendezvous }
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
    let (ending, took) = s.ended(at).await;
    assert_eq!(ending, Ending::ByPeer(lifebuoy::proto::control::EndReason::CustomerEnded));
    assert!(took < Duration::from_secs(1), "the technician saw the end after {took:?}");
    let status = s.gone();
    assert!(status.success(), "the agent exited with {status}");
    drop(s.commands);
    drop(s.started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_session_and_the_agent() {
    let mut s = session().await;
    let at = Instant::now();
    let pid = nix::unistd::Pid::from_raw(s.agent.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let (ending, took) = s.ended(at).await;
    assert_eq!(ending, Ending::ByPeer(lifebuoy::proto::control::EndReason::CustomerEnded));
    assert!(took < Duration::from_secs(1), "the technician saw the end after {took:?}");
    let status = s.gone();
    assert!(status.success(), "the agent exited with {status}");
}
