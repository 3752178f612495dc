//! Both windows at once, each over its real driver: a rendezvous on
//! loopback, the customer's window and the technician's window driven
//! with egui_kittest as the two people would (double-click, Accept, End,
//! a dropped file, typing into the remote view), real QUIC between them
//! and, where the screen matters, a real Xvfb desktop on the customer's
//! side.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{xvfb, Started};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use lifebuoy::proto::control::EndReason;
use lifebuoy::roles::agent::AgentSetup;
use lifebuoy::roles::viewer::ViewerSetup;
use lifebuoy::roles::Ending;
use lifebuoy::ui::agent::{AgentWindow, Stage as AgentStage};
use lifebuoy::ui::transfers::RowState;
use lifebuoy::ui::viewer::{Stage as ViewerStage, ViewerWindow};
use lifebuoy::ui::Lang;
use tokio::sync::mpsc;

struct Both {
    agent: Harness<'static, AgentWindow>,
    viewer: Harness<'static, ViewerWindow>,
    agent_inbox: tempfile::TempDir,
    viewer_inbox: tempfile::TempDir,
    logs: tempfile::TempDir,
    _rendezvous: common::CompanyOfOne,
    // Last: the drivers stop with it.
    runtime: tokio::runtime::Runtime,
}

/// What the customer's side shares.
struct Customer {
    display: Option<String>,
    view_only: bool,
}

fn both(lang: Lang, customer: Customer) -> Both {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _inside = runtime.enter();
    let mut rendezvous = runtime.block_on(common::company_of_one("Anna Berger"));
    let (company, technician) = (rendezvous.company, rendezvous.technician.take().unwrap());
    let (agent_inbox, viewer_inbox) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let logs = tempfile::tempdir().unwrap();

    let (commands, command_rx) = mpsc::channel(64);
    let (event_tx, events) = mpsc::channel(1024);
    let viewer_setup = ViewerSetup {
        server: company,
        name: "Anna Berger".into(),
        inbox: Some(viewer_inbox.path().to_owned()),
        audit_log: Some(logs.path().join("technician.jsonl")),
    };
    runtime.spawn(lifebuoy::roles::viewer::drive(technician, viewer_setup, command_rx, event_tx));
    let viewer = Harness::builder().with_size(egui::vec2(1000.0, 800.0)).with_step_dt(0.05).build_ui_state(
        |ui, w: &mut ViewerWindow| w.ui(ui),
        ViewerWindow::new(lang, "Anna Berger".into(), commands, events),
    );

    let (commands, command_rx) = mpsc::channel(64);
    let (event_tx, events) = mpsc::channel(1024);
    let agent_setup = AgentSetup {
        server: company,
        display: customer.display,
        view_only: customer.view_only,
        no_clipboard: true,
        clipboard_to_technician: false,
        no_files: false,
        inbox: Some(agent_inbox.path().to_owned()),
        audit_log: Some(logs.path().join("customer.jsonl")),
    };
    runtime.spawn(lifebuoy::roles::agent::drive(agent_setup, command_rx, event_tx));
    let mut window = AgentWindow::new(lang, "Muster GmbH".into(), commands, events);
    window.label = "Kunde 4711".into();
    let agent = Harness::builder()
        .with_size(egui::vec2(460.0, 640.0))
        .with_step_dt(0.05)
        .build_ui_state(|ui, w: &mut AgentWindow| w.ui(ui), window);
    Both { agent, viewer, agent_inbox, viewer_inbox, logs, _rendezvous: rendezvous, runtime }
}

impl Both {
    /// Runs both windows until `done` holds (20 s at most).
    fn until(&mut self, what: &str, done: impl Fn(&AgentWindow, &ViewerWindow) -> bool) {
        let _inside = self.runtime.enter();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.agent.step();
            self.viewer.step();
            if done(self.agent.state(), self.viewer.state()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: agent at {:?}, viewer at {:?}",
                self.agent.state().stage,
                self.viewer.state().stage
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn step(&mut self) {
        let _inside = self.runtime.enter();
        self.agent.step();
        self.viewer.step();
    }

    /// The customer double-clicks the technician; the request shows.
    fn request(&mut self) {
        self.until("the staff list", |a, _| a.stage == AgentStage::Choosing);
        self.until("the technician signed in", |a, v| {
            v.stage == ViewerStage::Ready
                && a.staff
                    .first()
                    .is_some_and(|s| s.presence == lifebuoy::proto::rendezvous::Presence::Online)
        });
        for _ in 0..10 {
            self.step();
        }
        for _ in 0..2 {
            self.agent.get_by_label("Anna Berger").click();
            self.step();
        }
        // The agent says "waiting" once its request is sent, so the technician
        // may see the request a step before the customer's window does.
        self.until("the request shows on both sides", |a, v| {
            !v.requests.is_empty() && matches!(a.stage, AgentStage::Waiting(_))
        });
    }

    /// The technician accepts; the connection stands and the customer is
    /// asked, with the code, while the technician waits.
    fn accept(&mut self, accept: &str) {
        self.viewer.get_by_label(accept).click();
        self.until("the customer is asked", |a, v| {
            matches!(a.stage, AgentStage::Asking { .. }) && matches!(v.stage, ViewerStage::Connected { .. })
        });
    }

    /// The technician accepts and the customer allows: both stand in the session.
    fn accept_and_allow(&mut self, accept: &str, allow: &str) {
        self.accept(accept);
        self.agent.get_by_label(allow).click();
        self.until("the session stands", |a, v| {
            matches!(a.stage, AgentStage::Connected { .. }) && v.permissions.is_some()
        });
    }

    /// A click into the picture (at 500,450 in the window), which gives
    /// the remote view the keyboard.
    fn click_view(&mut self) {
        let at = egui::pos2(500.0, 450.0);
        self.viewer.event(egui::Event::PointerMoved(at));
        for pressed in [true, false] {
            self.viewer.event(egui::Event::PointerButton {
                pos: at,
                button: egui::PointerButton::Primary,
                pressed,
                modifiers: egui::Modifiers::NONE,
            });
        }
        self.step();
    }

    fn codes(&self) -> (String, String) {
        let (AgentStage::Connected { code: a, .. } | AgentStage::Asking { code: a, .. }) =
            &self.agent.state().stage
        else {
            panic!("agent not connected")
        };
        let ViewerStage::Connected { code: v, .. } = &self.viewer.state().stage else {
            panic!("viewer not connected")
        };
        (a.clone(), v.clone())
    }
}

#[test]
fn the_customer_asks_the_technician_accepts_both_read_the_same_code_and_the_technician_ends() {
    let mut both = both(Lang::De, Customer { display: None, view_only: false });
    both.request();
    both.viewer.get_by_label("Kunde 4711 bittet um Hilfe");
    both.agent.get_by_label("Warten, bis Anna Berger annimmt …");
    both.accept("Annehmen");
    // Asked, with the code in front of both; nothing is shared yet.
    let (a, v) = both.codes();
    assert_eq!(a, v, "the code the technician reads out is the one the customer sees");
    both.agent.get_by_label(&a);
    both.agent.get_by_label("Anna Berger möchte auf Ihren Computer zugreifen");
    both.viewer.get_by_label(&v);
    both.viewer.get_by_label("Warten, bis der Kunde den Zugriff erlaubt …");
    both.viewer.get_by_label("Lesen Sie dem Kunden diesen Prüfcode vor:");
    for _ in 0..20 {
        both.step();
    }
    assert!(both.viewer.state().permissions.is_none(), "nothing before the customer's yes");
    both.agent.get_by_label("Erlauben").click();
    both.until("the session stands", |a, v| {
        matches!(a.stage, AgentStage::Connected { .. }) && v.permissions.is_some()
    });
    both.agent.get_by_label("Verbunden mit Anna Berger");
    both.viewer.get_by_label("Sitzung beenden").click();
    both.until("the customer's window closes", |a, _| a.exit);
    assert_eq!(both.agent.state().stage, AgentStage::Ended(Ending::ByPeer(EndReason::TechnicianEnded)));
    both.until("the technician is told", |_, v| {
        v.notice.as_deref() == Some("Sie haben die Sitzung beendet.")
    });
    assert_eq!(both.viewer.state().stage, ViewerStage::Ready, "no reconnect: back to waiting");
}

#[test]
fn a_company_server_restart_is_said_in_both_windows_and_both_come_back() {
    let mut both = both(Lang::De, Customer { display: None, view_only: false });
    both.until("both signed in", |a, v| a.stage == AgentStage::Choosing && v.stage == ViewerStage::Ready);
    let runtime = both.runtime.handle().clone();
    runtime.block_on(both._rendezvous.shut_down());
    both.until("both are told", |a, v| {
        v.stage == ViewerStage::Reconnecting && a.stage == AgentStage::SigningIn && a.notice.is_some()
    });
    both.viewer.get_by_label("Neu anmelden …");
    let said = |notice: Option<&str>| {
        notice.is_some_and(|n| n.starts_with("Verbindung zum Firmenserver unterbrochen, neuer Versuch in "))
    };
    assert!(said(both.viewer.state().notice.as_deref()), "{:?}", both.viewer.state().notice);
    assert!(said(both.agent.state().notice.as_deref()), "{:?}", both.agent.state().notice);
    runtime.block_on(both._rendezvous.start_again());
    both.until("both are back, Anna online", |a, v| {
        v.stage == ViewerStage::Ready
            && v.notice.is_none()
            && a.stage == AgentStage::Choosing
            && a.staff.first().is_some_and(|s| s.presence == lifebuoy::proto::rendezvous::Presence::Online)
    });
    both.request();
    both.viewer.get_by_label("Kunde 4711 bittet um Hilfe");
}

#[test]
fn a_customer_who_denies_shares_nothing_and_both_are_told() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let mut both = both(Lang::En, Customer { display: Some(display), view_only: false });
    both.request();
    both.accept("Accept");
    both.agent.get_by_label("Deny").click();
    both.until("both see the end", |a, v| a.exit && v.stage == ViewerStage::Ready);
    both.agent.get_by_label("You did not allow the connection. Nobody is connected.");
    both.viewer.get_by_label("The customer did not allow the connection.");
    assert!(!both.viewer.state().remote.has_picture(), "not one picture went out");
    let customer = std::fs::read_to_string(both.logs.path().join("customer.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = customer.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["session_start", "consent", "session_end"], "{customer}");
    assert_eq!(lines[1]["allowed"], false);
    let technician = std::fs::read_to_string(both.logs.path().join("technician.jsonl")).unwrap();
    assert!(technician.contains("CustomerDeclined"), "{technician}");
}

#[test]
fn a_declined_request_is_said_and_a_cancelled_one_disappears() {
    let mut both = both(Lang::En, Customer { display: None, view_only: false });
    both.request();
    both.viewer.get_by_label("Decline").click();
    both.until("the customer hears of it", |a, _| a.notice.is_some());
    both.agent.get_by_label("Anna Berger declined the request.");
    assert_eq!(both.agent.state().stage, AgentStage::Choosing);
    assert!(both.viewer.state().requests.is_empty());

    both.request();
    both.agent.get_by_label("Cancel").click();
    both.until("the request is withdrawn", |a, v| a.stage == AgentStage::Choosing && v.requests.is_empty());
    both.viewer.get_by_label("Waiting for requests …");
}

#[test]
fn view_only_shows_on_the_technicians_side_and_the_customer_ends() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let _xterm = common::xterm(&mut started, &display);
    let mut both = both(Lang::En, Customer { display: Some(display), view_only: true });
    both.request();
    both.accept_and_allow("Accept", "Allow");
    both.until("the picture and the permissions", |_, v| v.remote.has_picture() && v.permissions.is_some());
    assert_eq!(both.viewer.state().remote.remote_size(), (640, 480));
    // Smaller than the view: shown at one pixel per pixel, not enlarged.
    assert_eq!(both.viewer.state().remote.drawn.size(), egui::vec2(640.0, 480.0));
    both.viewer.get_by_label("View only: the customer has not allowed control.");
    both.click_view();
    assert!(!both.viewer.state().remote.keyboard.routed(), "no control, no keys");
    assert!(
        both.viewer.get_by_label("Ctrl+Alt+Del").accesskit_node().is_disabled(),
        "no key combinations without control"
    );
    both.agent.get_by_label("End session").click();
    both.until("both see the end", |a, v| a.exit && v.stage == ViewerStage::Ready);
    both.viewer.get_by_label("The customer ended the session.");
}

fn blake3_of(path: &std::path::Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap()).to_hex().to_string()
}

#[test]
fn a_file_dropped_on_the_technicians_window_arrives_whole_and_both_list_it() {
    let mut both = both(Lang::En, Customer { display: None, view_only: false });
    both.request();
    both.accept_and_allow("Accept", "Allow");
    both.until("the permissions", |_, v| v.permissions.is_some_and(|p| p.files));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Anleitung.pdf");
    common::random_file(&file, 3_000_000, 11);
    both.viewer.input_mut().dropped_files.push(Arc::new(Dropped(file.clone())));
    both.until("the file is done on both sides", |a, v| {
        let done =
            |rows: &[lifebuoy::ui::transfers::Row]| rows.iter().any(|r| matches!(r.state, RowState::Done(_)));
        done(a.transfers.rows()) && done(v.transfers.rows())
    });
    let arrived: PathBuf = both.agent_inbox.path().join("Anleitung.pdf");
    assert_eq!(blake3_of(&arrived), blake3_of(&file));
    both.agent.get_by_label("Anleitung.pdf");
    both.viewer.get_by_label("3.0 MB · done");
    assert!(
        std::fs::read_dir(both.viewer_inbox.path()).unwrap().next().is_none(),
        "nothing came the other way"
    );

    // Both audit logs tell the same story: who, the code, the file by hash, the end.
    let (code, _) = both.codes();
    both.agent.get_by_label("End session").click();
    both.until("both see the end", |a, v| a.exit && v.stage == ViewerStage::Ready);
    let hash = blake3_of(&file);
    for (log, direction, peer) in
        [("customer.jsonl", "received", "Anna Berger"), ("technician.jsonl", "sent", "Kunde 4711")]
    {
        let text = std::fs::read_to_string(both.logs.path().join(log)).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        // The customer's log also holds the yes, with what was allowed.
        let consent = usize::from(log == "customer.jsonl");
        let expected = ["session_start", "consent", "permissions", "file", "session_end"];
        let expected: Vec<&str> =
            expected.iter().copied().filter(|e| consent == 1 || *e != "consent").collect();
        assert_eq!(events, expected, "{log}: {text}");
        assert_eq!(lines[0]["code"], code.as_str(), "{log}");
        assert_eq!(lines[0]["peer"], peer, "{log}");
        if consent == 1 {
            assert_eq!(lines[1]["allowed"], true, "{log}");
            assert_eq!(lines[1]["files"], true, "{log}");
        }
        assert_eq!(lines[2 + consent]["direction"], direction, "{log}");
        assert_eq!(lines[2 + consent]["blake3"], hash.as_str(), "{log}");
        assert_eq!(lines[2 + consent]["size"], 3_000_000, "{log}");
    }
}

#[test]
fn keys_typed_into_the_remote_view_reach_the_customers_terminal() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let dir = tempfile::tempdir().unwrap();
    let typed = dir.path().join("typed.txt");
    common::typing_terminal(&mut started, &display, "60x5+0+0", &typed);
    let mut both = both(Lang::En, Customer { display: Some(display), view_only: false });
    both.request();
    both.accept_and_allow("Accept", "Allow");
    both.until("the picture and control", |_, v| v.remote.has_picture() && v.control());
    // The technician clicks into the middle of the picture (the root
    // window there, away from the terminal, which keeps the focus) and types.
    both.click_view();
    assert!(both.viewer.state().remote.keyboard.routed(), "the window's keys skip egui now");
    both.viewer.event(egui::Event::Text("Grüße 42".into()));
    both.viewer.key_press(egui::Key::Enter);
    both.until("the terminal got the line", |_, _| {
        std::fs::read_to_string(&typed).is_ok_and(|t| t.contains('\n'))
    });
    assert_eq!(std::fs::read_to_string(&typed).unwrap(), "Grüße 42\n");
    assert!(both.viewer.state().remote.sent >= 4, "moves, the click, the text, Enter");
    both.viewer.get_by_label("End session").click();
    both.until("the session has ended", |_, v| v.stage == ViewerStage::Ready);
    both.step();
    assert!(!both.viewer.state().remote.keyboard.routed(), "no view, the keys are the window's again");
}

/// A file as the desktop hands it over when dropped.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}
