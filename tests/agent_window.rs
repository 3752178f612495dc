//! The customer's window, driven as the customer would (egui_kittest:
//! clicks, typing, dropped files) against events as the agent's driver
//! sends them; what the window asks the driver to do is checked.

use std::time::Duration;

use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use lifebuoy::proto::control::{EndReason, Permissions};
use lifebuoy::proto::rendezvous::{Presence, Refusal, StaffEntry};
use lifebuoy::proto::Fingerprint;
use lifebuoy::roles::agent::{AgentCommand, AgentEvent, Choice, Offer};
use lifebuoy::roles::files::FileNews;
use lifebuoy::roles::Ending;
use lifebuoy::transfer::TransferEvent;
use lifebuoy::ui::agent::{AgentWindow, Stage};
use lifebuoy::ui::Lang;
use tokio::sync::mpsc;

struct Customer {
    harness: Harness<'static, AgentWindow>,
    events: mpsc::Sender<AgentEvent>,
    commands: mpsc::Receiver<AgentCommand>,
}

/// What a customer with every switch available is asked.
const OFFER: Offer = Offer {
    choice: Choice { control: true, files: true, clipboard_to_technician: false },
    files: true,
    clipboard: true,
};

fn fp(n: u8) -> Fingerprint {
    Fingerprint([n; 32])
}

fn staff() -> Vec<StaffEntry> {
    let entry =
        |name: &str, n, presence| StaffEntry { name: name.into(), group: None, fingerprint: fp(n), presence };
    vec![
        entry("Anna Berger", 1, Presence::Online),
        entry("Bernd Keller", 2, Presence::Busy),
        entry("Carla Wolf", 3, Presence::Offline),
    ]
}

fn customer(lang: Lang) -> Customer {
    let (command_tx, commands) = mpsc::channel(16);
    let (events, event_rx) = mpsc::channel(16);
    let window = AgentWindow::new(lang, "Muster GmbH".into(), command_tx, event_rx);
    let harness = Harness::builder()
        .with_size(egui::vec2(460.0, 640.0))
        .with_step_dt(0.05)
        .build_ui_state(|ui, w: &mut AgentWindow| w.ui(ui), window);
    Customer { harness, events, commands }
}

impl Customer {
    fn tell(&mut self, event: AgentEvent) {
        self.events.try_send(event).unwrap();
        self.harness.step();
        self.harness.step();
    }

    fn asked(&mut self) -> Option<AgentCommand> {
        self.commands.try_recv().ok()
    }

    fn double_click(&mut self, label: &str) {
        // Apart from any click before, as a person's double click is.
        for _ in 0..10 {
            self.harness.step();
        }
        self.harness.get_by_label(label).click();
        self.harness.step();
        self.harness.get_by_label(label).click();
        self.harness.step();
    }

    /// The connection stands; the customer is asked.
    fn asked_to_allow(&mut self) {
        self.tell(AgentEvent::Staff(staff()));
        self.tell(AgentEvent::Connecting { technician: "Anna Berger".into() });
        self.tell(AgentEvent::Connected {
            technician: "Anna Berger".into(),
            fingerprint: fp(1),
            code: "123 456".into(),
            path: "path=direct rtt_ms=0.40".into(),
            setup: Duration::from_millis(15),
            offer: OFFER,
        });
    }

    fn connected(&mut self) {
        self.asked_to_allow();
        self.tell(AgentEvent::Allowed(OFFER.choice));
        self.tell(AgentEvent::ClipboardToTechnician(false));
        self.tell(AgentEvent::Inbox("/tmp/inbox".into()));
        self.tell(AgentEvent::Permissions(Permissions {
            view: true,
            control: true,
            files: true,
            clipboard: true,
        }));
    }
}

/// A file as the desktop hands it over when dropped.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn drop_file<S>(harness: &mut Harness<'_, S>, path: &str) {
    harness.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(path.into())));
}

#[test]
fn the_staff_list_speaks_german_and_english() {
    let mut de = customer(Lang::De);
    de.harness.step();
    de.harness.get_by_label("Verbindung zu Muster GmbH wird hergestellt …");
    de.tell(AgentEvent::Staff(staff()));
    de.harness.get_by_label("Support-Mitarbeiter");
    de.harness.get_by_label(
        "Bitte rufen Sie uns zuerst an. Doppelklicken Sie dann auf die Person, mit der Sie sprechen.",
    );
    de.harness.get_by_label("beschäftigt");
    de.harness.get_by_label("Muster GmbH – Fernwartung");

    let mut en = customer(Lang::En);
    en.tell(AgentEvent::Staff(staff()));
    en.harness.get_by_label("Support staff");
    en.harness.get_by_label("busy");
    en.harness.get_by_label("Muster GmbH remote support");
    assert!(en.harness.query_by_label("Support-Mitarbeiter").is_none());
}

#[test]
fn double_clicking_an_online_technician_sends_the_request_with_the_typed_label() {
    let mut c = customer(Lang::En);
    c.tell(AgentEvent::Staff(staff()));
    c.harness.get_by_role(egui::Role::TextInput).click();
    c.harness.step();
    c.harness.get_by_role(egui::Role::TextInput).type_text("Kunde 4711 ");
    c.harness.step();
    // One click selects; it asks nobody (and half a second later, it is
    // not half of a double click either).
    c.harness.get_by_label("Anna Berger").click();
    for _ in 0..10 {
        c.harness.step();
    }
    assert_eq!(c.asked(), None);
    c.double_click("Anna Berger");
    assert_eq!(c.asked(), Some(AgentCommand::Request { staff: fp(1), label: "Kunde 4711".into() }));
}

#[test]
fn a_lost_company_server_is_said_and_so_is_the_request_that_went_with_it() {
    let mut c = customer(Lang::De);
    c.tell(AgentEvent::Staff(staff()));
    c.double_click("Anna Berger");
    assert!(matches!(c.asked(), Some(AgentCommand::Request { .. })));
    c.tell(AgentEvent::Waiting { technician: "Anna Berger".into() });
    c.tell(AgentEvent::CompanyServerLost {
        retry_in: Duration::from_millis(1800),
        request_lost: Some("Anna Berger".into()),
    });
    c.harness.get_by_label("Verbindung zum Firmenserver unterbrochen, neuer Versuch in 2 s …");
    assert!(c.harness.query_by_label("Anna Berger").is_none(), "no list while signed out");
    // Still away at the next try: the request is still what it was.
    c.tell(AgentEvent::CompanyServerLost { retry_in: Duration::from_secs(4), request_lost: None });
    c.harness.get_by_label("Verbindung zum Firmenserver unterbrochen, neuer Versuch in 4 s …");
    c.tell(AgentEvent::Staff(staff()));
    c.harness.get_by_label(
        "Die Verbindung zum Firmenserver war unterbrochen; Ihre Anfrage an Anna Berger ging dabei verloren. \
         Bitte doppelklicken Sie noch einmal.",
    );
    c.double_click("Anna Berger");
    assert_eq!(c.asked(), Some(AgentCommand::Request { staff: fp(1), label: String::new() }));
}

#[test]
fn offline_and_busy_people_are_not_asked_and_the_customer_is_told_why() {
    let mut c = customer(Lang::De);
    c.tell(AgentEvent::Staff(staff()));
    c.double_click("Carla Wolf");
    assert_eq!(c.asked(), None);
    c.harness.get_by_label("Carla Wolf ist gerade nicht online.");
    c.double_click("Bernd Keller");
    assert_eq!(c.asked(), None);
    c.harness.get_by_label("Bernd Keller ist gerade in einer anderen Sitzung.");
}

#[test]
fn waiting_can_be_cancelled_and_a_decline_is_said_plainly() {
    let mut c = customer(Lang::En);
    c.tell(AgentEvent::Staff(staff()));
    c.tell(AgentEvent::Waiting { technician: "Anna Berger".into() });
    c.harness.get_by_label("Waiting for Anna Berger to accept …");
    c.harness.get_by_label("Cancel").click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::Cancel));
    c.tell(AgentEvent::Cancelled);
    c.harness.get_by_label("Support staff");

    c.tell(AgentEvent::Waiting { technician: "Anna Berger".into() });
    c.tell(AgentEvent::Refused { technician: "Anna Berger".into(), reason: Refusal::Declined });
    c.harness.get_by_label("Anna Berger declined the request.");
    assert_eq!(c.harness.state().stage, Stage::Choosing);
}

#[test]
fn the_customer_is_asked_with_the_code_and_chooses_what_to_allow() {
    let mut c = customer(Lang::De);
    c.asked_to_allow();
    c.harness.get_by_label("Anna Berger möchte auf Ihren Computer zugreifen");
    c.harness.get_by_label("123 456");
    c.harness.get_by_label(
        "Vergleichen Sie den Prüfcode mit dem, den Anna Berger Ihnen am Telefon vorliest. \
         Erlauben Sie den Zugriff nur, wenn beide gleich sind.",
    );
    assert!(c.harness.query_by_label("Sitzung beenden").is_none(), "no session before the yes");
    // Nothing dropped on the window goes anywhere before the yes.
    drop_file(&mut c.harness, "/home/kunde/Rechnung.pdf");
    c.harness.step();
    assert_eq!(c.asked(), None);
    // Files off, the clipboard on, then Erlauben.
    c.harness.get_by_label("Ihnen Dateien senden").click();
    c.harness.step();
    c.harness.get_by_label("erhalten, was Sie kopieren (Zwischenablage)").click();
    c.harness.step();
    assert_eq!(c.asked(), None, "switching while asked asks nothing yet");
    c.harness.get_by_label("Erlauben").click();
    c.harness.step();
    assert_eq!(
        c.asked(),
        Some(AgentCommand::Allow(Choice { control: true, files: false, clipboard_to_technician: true }))
    );
    c.tell(AgentEvent::Allowed(Choice { control: true, files: false, clipboard_to_technician: true }));
    c.harness.get_by_label("Verbunden mit Anna Berger");
}

#[test]
fn the_customer_can_deny_or_close_while_asked() {
    let mut c = customer(Lang::En);
    c.asked_to_allow();
    c.harness.get_by_label("Anna Berger asks to connect to your computer");
    c.harness.get_by_label("Deny").click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::Deny));
    c.tell(AgentEvent::Ended(Ending::Declined));
    c.harness.get_by_label("You did not allow the connection. Nobody is connected.");
    assert!(c.harness.state().exit, "the agent exits after a no");

    let mut c = customer(Lang::En);
    c.asked_to_allow();
    c.harness.state().close();
    assert_eq!(c.asked(), Some(AgentCommand::End));
}

#[test]
fn switches_the_setup_forbids_are_not_offered() {
    let mut c = customer(Lang::En);
    c.tell(AgentEvent::Staff(staff()));
    c.tell(AgentEvent::Connected {
        technician: "Anna Berger".into(),
        fingerprint: fp(1),
        code: "123 456".into(),
        path: "path=direct rtt_ms=0.40".into(),
        setup: Duration::from_millis(15),
        offer: Offer {
            choice: Choice { control: false, files: false, clipboard_to_technician: false },
            files: false,
            clipboard: false,
        },
    });
    c.harness.get_by_label("control mouse and keyboard");
    assert!(c.harness.query_by_label("send you files").is_none());
    assert!(c.harness.query_by_label("receive what you copy (clipboard)").is_none());
    c.harness.get_by_label("Allow").click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::Allow(Choice::default())));
}

#[test]
fn connected_shows_who_the_code_and_the_switches_and_ends_on_the_button() {
    let mut c = customer(Lang::De);
    c.connected();
    c.harness.get_by_label("Verbunden mit Anna Berger");
    c.harness.get_by_label("123 456");
    c.harness.get_by_label("Maus und Tastatur steuern").click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::AllowControl(false)));
    c.harness.get_by_label("Ihnen Dateien senden").click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::AllowFiles(false)));
    c.harness.get_by_label("erhalten, was Sie kopieren (Zwischenablage)").click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::AllowClipboard(true)));
    c.harness.get_by_label("Sitzung beenden").click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::End));
}

#[test]
fn view_only_is_shown_as_control_switched_off() {
    let mut c = customer(Lang::En);
    c.connected();
    c.tell(AgentEvent::Permissions(Permissions { view: true, control: false, files: true, clipboard: true }));
    let control = c.harness.get_by_label("control mouse and keyboard");
    assert_eq!(format!("{:?}", control.accesskit_node().toggled()), "Some(False)", "control shown off");
    // Switched back on by the customer.
    control.click();
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::AllowControl(true)));
}

#[test]
fn a_file_dropped_on_the_window_goes_to_the_technician_and_is_listed() {
    let mut c = customer(Lang::En);
    c.connected();
    drop_file(&mut c.harness, "/home/kunde/Rechnung.pdf");
    c.harness.step();
    assert_eq!(c.asked(), Some(AgentCommand::SendFiles(vec!["/home/kunde/Rechnung.pdf".into()])));
    c.tell(AgentEvent::File(FileNews {
        outgoing: true,
        event: TransferEvent::Started { transfer: 9, path: "Rechnung.pdf".into(), size: 3_000_000 },
    }));
    c.harness.get_by_label("Rechnung.pdf");
    c.tell(AgentEvent::File(FileNews {
        outgoing: true,
        event: TransferEvent::Done {
            transfer: 9,
            path: "Rechnung.pdf".into(),
            size: 3_000_000,
            blake3: "ab".into(),
        },
    }));
    c.harness.get_by_label("3.0 MB · done");
}

#[test]
fn a_file_dropped_before_the_session_is_not_sent() {
    let mut c = customer(Lang::En);
    c.tell(AgentEvent::Staff(staff()));
    drop_file(&mut c.harness, "/home/kunde/Rechnung.pdf");
    c.harness.step();
    assert_eq!(c.asked(), None);
}

#[test]
fn the_window_closes_when_either_side_ends_and_failures_are_explained() {
    let mut c = customer(Lang::En);
    c.connected();
    c.tell(AgentEvent::Ended(Ending::ByPeer(EndReason::TechnicianEnded)));
    assert!(c.harness.state().exit, "the agent exits when the technician ends");
    c.harness.get_by_label("The technician ended the session.");

    let mut c = customer(Lang::De);
    c.tell(AgentEvent::Failed(lifebuoy::roles::Failure::Unreachable("UDP blocked".into())));
    c.harness.get_by_label(lifebuoy::ui::i18n::DE.fail_unreachable);
    assert!(!c.harness.state().exit, "the customer reads the error first");
    c.harness.get_by_label("Schließen").click();
    c.harness.step();
    assert!(c.harness.state().exit);
}

#[test]
fn closing_the_window_ends_the_session() {
    let mut c = customer(Lang::En);
    c.connected();
    c.harness.state().close();
    assert_eq!(c.asked(), Some(AgentCommand::End));
}
