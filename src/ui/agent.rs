//! The customer's window: the company's support staff with presence, the
//! request and its answer, the code to read out, and while connected who
//! is there and what they may do, the switches for control and files, the
//! files that came and went, and a big "End session". The state is a
//! plain struct fed by the agent's events; drawing it yields commands.

use std::path::PathBuf;

use egui::{Color32, RichText};
use lifebuoy_proto::control::{EndReason, Permissions};
use lifebuoy_proto::rendezvous::{Presence, Refusal, StaffEntry};
use tokio::sync::mpsc;

use super::i18n::{fill, Lang, Texts};
use super::transfers::Transfers;
use crate::roles::agent::{AgentCommand, AgentEvent, AgentSetup, Choice, Offer};
use crate::roles::{Ending, Failure};

/// Where the customer is.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Reaching the company's server.
    SigningIn,
    /// The staff list.
    Choosing,
    /// Asked someone; no answer yet.
    Waiting(String),
    /// Accepted; the connection is being made.
    Connecting(String),
    /// Connected; the customer is asked, with the code, whether to let
    /// the technician in. Nothing is shared yet.
    Asking {
        /// The technician.
        technician: String,
        /// The code to compare.
        code: String,
        /// Path and round trip.
        path: String,
    },
    /// In a session.
    Connected {
        /// The technician.
        technician: String,
        /// The code to read out.
        code: String,
        /// Path and round trip.
        path: String,
    },
    /// Over (the window closes).
    Ended(Ending),
    /// Cannot go on.
    Failed(Failure),
}

/// The customer's window.
pub struct AgentWindow {
    /// Language of every text.
    pub lang: Lang,
    /// Shown in the title.
    pub company: String,
    /// Where the customer is.
    pub stage: Stage,
    /// The staff list.
    pub staff: Vec<StaffEntry>,
    /// What the customer typed as name or customer number.
    pub label: String,
    /// The line under the list (a refusal, someone offline).
    pub notice: Option<String>,
    /// What the technician may do.
    pub permissions: Permissions,
    /// The switches while asked (the customer's choice).
    pub choice: Choice,
    /// Which switches the setup lets the customer turn on.
    pub offer: Option<Offer>,
    /// Whether what the customer copies goes to the technician.
    pub clipboard_to_technician: bool,
    /// Files of the session.
    pub transfers: Transfers,
    /// Where received files go.
    pub inbox: Option<PathBuf>,
    /// Lines about drops (left-out links, refusals).
    pub messages: Vec<String>,
    /// UDP got no answer; TCP is being tried.
    pub trying_tcp: bool,
    /// The technician whose request went when the company server went away.
    lost_request: Option<String>,
    /// Set when the session is over and the window should close.
    pub exit: bool,
    selected: Option<usize>,
    commands: mpsc::Sender<AgentCommand>,
    events: mpsc::Receiver<AgentEvent>,
}

impl AgentWindow {
    /// A window talking to an agent driver through these channels.
    pub fn new(
        lang: Lang,
        company: String,
        commands: mpsc::Sender<AgentCommand>,
        events: mpsc::Receiver<AgentEvent>,
    ) -> AgentWindow {
        AgentWindow {
            lang,
            company,
            stage: Stage::SigningIn,
            staff: Vec::new(),
            label: String::new(),
            notice: None,
            permissions: Permissions::default(),
            choice: Choice::default(),
            offer: None,
            clipboard_to_technician: false,
            transfers: Transfers::default(),
            inbox: None,
            messages: Vec::new(),
            exit: false,
            trying_tcp: false,
            lost_request: None,
            selected: None,
            commands,
            events,
        }
    }

    fn t(&self) -> &'static Texts {
        self.lang.texts()
    }

    /// The window's title.
    pub fn title(&self) -> String {
        fill(self.t().agent_title, &[("company", &self.company)])
    }

    fn send(&self, command: AgentCommand) {
        // The driver reads commands promptly; a full queue means it is gone.
        let _ = self.commands.try_send(command);
    }

    /// Takes every event that came since the last frame.
    pub fn poll(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.apply(event);
        }
    }

    /// Takes one event.
    pub fn apply(&mut self, event: AgentEvent) {
        let t = self.t();
        match event {
            AgentEvent::TryingTcp => self.trying_tcp = true,
            AgentEvent::CompanyServerLost { retry_in, request_lost } => {
                let seconds = format!("{}", retry_in.as_secs_f64().ceil() as u64);
                self.notice = Some(fill(t.server_lost, &[("seconds", &seconds)]));
                self.lost_request = request_lost.or(self.lost_request.take());
                self.stage = Stage::SigningIn;
            }
            AgentEvent::Staff(entries) => {
                self.staff = entries;
                if self.stage == Stage::SigningIn {
                    self.stage = Stage::Choosing;
                    // Back after the server went away: say what became of the request.
                    self.notice =
                        self.lost_request.take().map(|name| fill(t.request_lost, &[("name", &name)]));
                }
            }
            AgentEvent::Waiting { technician } => {
                self.notice = None;
                self.stage = Stage::Waiting(technician);
            }
            AgentEvent::Cancelled => self.stage = Stage::Choosing,
            AgentEvent::Refused { technician, reason } => {
                self.notice = Some(fill(refusal(t, reason), &[("name", &technician)]));
                self.stage = Stage::Choosing;
            }
            AgentEvent::Connecting { technician } => self.stage = Stage::Connecting(technician),
            AgentEvent::Connected { technician, code, path, offer, .. } => {
                self.choice = offer.choice;
                self.offer = Some(offer);
                self.stage = Stage::Asking { technician, code, path };
            }
            AgentEvent::Allowed(choice) => {
                if let Stage::Asking { technician, code, path } = self.stage.clone() {
                    self.stage = Stage::Connected { technician, code, path };
                }
                self.choice = choice;
            }
            AgentEvent::ClipboardToTechnician(on) => self.clipboard_to_technician = on,
            AgentEvent::Permissions(p) => self.permissions = p,
            AgentEvent::Inbox(dir) => self.inbox = Some(dir),
            AgentEvent::File(news) => self.transfers.apply(news),
            AgentEvent::Skipped(paths) => {
                for p in paths {
                    self.messages.push(fill(t.skipped, &[("path", &p.display().to_string())]));
                }
            }
            AgentEvent::DropRefused(why) => self.messages.push(super::transfers::refused(t, &why)),
            AgentEvent::Sharing(_)
            | AgentEvent::Monitor(_)
            | AgentEvent::Clipboard { .. }
            | AgentEvent::Denied => {}
            AgentEvent::Ended(ending) => {
                self.stage = Stage::Ended(ending);
                self.exit = true;
            }
            AgentEvent::Failed(failure) => self.stage = Stage::Failed(failure),
        }
    }

    /// Files dropped onto the window go to the technician while connected.
    pub fn take_dropped(&mut self, ctx: &egui::Context) {
        let paths: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !paths.is_empty() && matches!(self.stage, Stage::Connected { .. }) {
            self.send(AgentCommand::SendFiles(paths));
        }
    }

    /// The customer closed the window (or chose Close in the tray).
    pub fn close(&self) {
        self.send(AgentCommand::End);
    }

    /// Polls events, takes dropped files and draws the window.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll();
        self.take_dropped(ui.ctx());
        let t = self.t();
        ui.heading(self.title());
        ui.add_space(6.0);
        match self.stage.clone() {
            Stage::SigningIn => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(fill(t.signing_in, &[("company", &self.company)]));
                });
                if self.trying_tcp {
                    ui.label(t.trying_tcp);
                }
                if let Some(notice) = &self.notice {
                    ui.colored_label(ui.visuals().warn_fg_color, notice);
                }
            }
            Stage::Choosing => self.staff_list(ui),
            Stage::Waiting(name) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(RichText::new(fill(t.waiting, &[("name", &name)])).size(16.0));
                });
                ui.add_space(8.0);
                if ui.button(t.cancel).clicked() {
                    self.send(AgentCommand::Cancel);
                }
            }
            Stage::Connecting(name) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(fill(t.connecting_to_technician, &[("name", &name)]));
                });
                ui.add_space(8.0);
                if ui.button(t.cancel).clicked() {
                    self.send(AgentCommand::End);
                }
            }
            Stage::Asking { technician, code, path } => self.asking(ui, &technician, &code, &path),
            Stage::Connected { technician, code, path } => self.connected(ui, &technician, &code, &path),
            Stage::Ended(ending) => {
                ui.label(RichText::new(ending_text(t, &ending)).size(16.0));
            }
            Stage::Failed(failure) => {
                let (headline, detail) = failure_text(t, &failure);
                ui.colored_label(ui.visuals().error_fg_color, RichText::new(headline).size(16.0));
                ui.collapsing(t.details, |ui| ui.label(detail));
                ui.add_space(8.0);
                if ui.button(t.close).clicked() {
                    self.exit = true;
                }
            }
        }
    }

    fn staff_list(&mut self, ui: &mut egui::Ui) {
        let t = self.t();
        ui.label(t.call_first);
        ui.add_space(6.0);
        ui.add(
            egui::TextEdit::singleline(&mut self.label).hint_text(t.label_hint).desired_width(f32::INFINITY),
        );
        ui.add_space(6.0);
        ui.strong(t.staff);
        if self.staff.is_empty() {
            ui.label(t.nobody);
        }
        let mut request = None;
        egui::Grid::new("staff").num_columns(2).spacing([24.0, 6.0]).striped(true).show(ui, |ui| {
            for (i, s) in self.staff.iter().enumerate() {
                let (word, colour) = presence(t, s.presence);
                let row = ui.selectable_label(self.selected == Some(i), RichText::new(&s.name).size(16.0));
                ui.horizontal(|ui| {
                    // A dot drawn, not a glyph: the built-in fonts have no bullet this size.
                    let (dot, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                    ui.painter().circle_filled(dot.center(), 5.0, colour);
                    ui.colored_label(colour, word);
                });
                ui.end_row();
                if row.clicked() {
                    self.selected = Some(i);
                }
                if row.double_clicked() {
                    request = Some(i);
                }
            }
        });
        if let Some(i) = request {
            let s = &self.staff[i];
            match s.presence {
                Presence::Online => self.send(AgentCommand::Request {
                    staff: s.fingerprint,
                    label: self.label.trim().to_owned(),
                }),
                Presence::Busy => self.notice = Some(fill(t.is_busy, &[("name", &s.name)])),
                Presence::Offline => self.notice = Some(fill(t.is_offline, &[("name", &s.name)])),
            }
        }
        if let Some(notice) = &self.notice {
            ui.add_space(6.0);
            ui.colored_label(ui.visuals().warn_fg_color, notice);
        }
    }

    fn asking(&mut self, ui: &mut egui::Ui, technician: &str, code: &str, path: &str) {
        let t = self.t();
        egui::Frame::new()
            .fill(Color32::from_rgb(0xd0, 0x8a, 0x00))
            .inner_margin(8.0)
            .corner_radius(4.0)
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(
                    RichText::new(fill(t.ask_headline, &[("name", technician)]))
                        .color(Color32::WHITE)
                        .size(18.0)
                        .strong(),
                );
            });
        ui.add_space(6.0);
        ui.label(fill(t.ask_compare, &[("name", technician)]));
        ui.label(RichText::new(code).monospace().size(30.0).strong());
        ui.small(path);
        ui.add_space(8.0);
        ui.strong(fill(t.ask_may, &[("name", technician)]));
        let mut see = true;
        ui.add_enabled(false, egui::Checkbox::new(&mut see, t.may_see));
        ui.checkbox(&mut self.choice.control, t.allow_control);
        let offer = self.offer;
        if offer.is_some_and(|o| o.files) {
            ui.checkbox(&mut self.choice.files, t.allow_files);
        }
        if offer.is_some_and(|o| o.clipboard) {
            ui.checkbox(&mut self.choice.clipboard_to_technician, t.allow_clipboard);
        }
        ui.add_space(12.0);
        let width = (ui.available_width() - 8.0) / 2.0;
        ui.horizontal(|ui| {
            let allow = egui::Button::new(RichText::new(t.allow).size(20.0).strong().color(Color32::WHITE))
                .fill(Color32::from_rgb(0x1e, 0x7e, 0x34))
                .min_size(egui::vec2(width, 44.0));
            if ui.add(allow).clicked() {
                self.send(AgentCommand::Allow(self.choice));
            }
            let deny = egui::Button::new(RichText::new(t.deny).size(20.0).strong())
                .min_size(egui::vec2(width, 44.0));
            if ui.add(deny).clicked() {
                self.send(AgentCommand::Deny);
            }
        });
    }

    fn connected(&mut self, ui: &mut egui::Ui, technician: &str, code: &str, path: &str) {
        let t = self.t();
        egui::Frame::new()
            .fill(Color32::from_rgb(0xd9, 0x3a, 0x2b))
            .inner_margin(8.0)
            .corner_radius(4.0)
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(
                    RichText::new(fill(t.connected_to, &[("name", technician)]))
                        .color(Color32::WHITE)
                        .size(18.0)
                        .strong(),
                );
            });
        ui.add_space(6.0);
        ui.label(fill(t.read_code, &[("name", technician)]));
        ui.label(RichText::new(code).monospace().size(30.0).strong());
        ui.small(path);
        ui.add_space(8.0);
        ui.strong(fill(t.may, &[("name", technician)]));
        let mut see = self.permissions.view;
        ui.add_enabled(false, egui::Checkbox::new(&mut see, t.may_see));
        let mut control = self.permissions.control;
        if ui.add_enabled(self.permissions.view, egui::Checkbox::new(&mut control, t.allow_control)).changed()
        {
            self.send(AgentCommand::AllowControl(control));
        }
        let mut files = self.permissions.files;
        if ui.add_enabled(self.inbox.is_some(), egui::Checkbox::new(&mut files, t.allow_files)).changed() {
            self.send(AgentCommand::AllowFiles(files));
        }
        let mut clipboard = self.clipboard_to_technician;
        let clipboard_switch = egui::Checkbox::new(&mut clipboard, t.allow_clipboard);
        if ui.add_enabled(self.permissions.clipboard, clipboard_switch).changed() {
            self.send(AgentCommand::AllowClipboard(clipboard));
        }
        ui.add_space(8.0);
        ui.strong(t.files);
        ui.small(t.drop_here);
        if let Some(dir) = &self.inbox {
            ui.small(dir.display().to_string());
        }
        if let Some(transfer) = self.transfers.show(ui, t) {
            self.send(AgentCommand::CancelTransfer(transfer));
        }
        for m in &self.messages {
            ui.small(m);
        }
        ui.add_space(12.0);
        let end = egui::Button::new(RichText::new(t.end_session).size(20.0).strong().color(Color32::WHITE))
            .fill(Color32::from_rgb(0xb0, 0x1e, 0x14))
            .min_size(egui::vec2(ui.available_width(), 44.0));
        if ui.add(end).clicked() {
            self.send(AgentCommand::End);
        }
    }
}

fn presence(t: &Texts, p: Presence) -> (&'static str, Color32) {
    match p {
        Presence::Online => (t.online, Color32::from_rgb(0x1e, 0x9e, 0x3a)),
        Presence::Busy => (t.busy, Color32::from_rgb(0xd0, 0x8a, 0x00)),
        Presence::Offline => (t.offline, Color32::GRAY),
    }
}

fn refusal(t: &Texts, r: Refusal) -> &'static str {
    match r {
        Refusal::UnknownStaff => t.refused_unknown,
        Refusal::Offline => t.refused_offline,
        Refusal::Busy => t.refused_busy,
        Refusal::Declined => t.refused_declined,
        Refusal::NoAnswer => t.refused_no_answer,
        Refusal::RateLimited => t.refused_rate,
        Refusal::AlreadyRequested => t.refused_already,
    }
}

/// A failure as a headline a person can act on, and the detail.
pub fn failure_text(t: &Texts, f: &Failure) -> (&'static str, String) {
    let headline = match f {
        Failure::Unreachable(_) => t.fail_unreachable,
        Failure::Refused(_) => t.fail_refused,
        Failure::Busy(_) => t.fail_busy,
        Failure::CompanyServerGone(_) => t.fail_server_gone,
        Failure::Peer(_) => t.fail_peer,
        Failure::Local(_) => t.fail_local,
    };
    (headline, f.to_string())
}

/// How the session ended, in words.
pub fn ending_text(t: &Texts, e: &Ending) -> &'static str {
    match e {
        Ending::Here => t.ended_here,
        Ending::Declined => t.ended_you_declined,
        Ending::ByPeer(EndReason::CustomerDeclined) => t.ended_customer_declined,
        Ending::ByPeer(EndReason::CustomerEnded) => t.ended_by_customer,
        Ending::ByPeer(EndReason::TechnicianEnded) => t.ended_by_technician,
        Ending::ByPeer(_) | Ending::Lost(_) => t.ended_lost,
    }
}

/// Opens the customer's window showing a failure that came before any
/// connection (a packed agent whose server name cannot be looked up).
pub fn open_failed(company: String, lang: Lang, failure: Failure) -> anyhow::Result<()> {
    let (commands, _ignored) = mpsc::channel(1);
    let (events_tx, events) = mpsc::channel(1);
    let _ = events_tx.try_send(AgentEvent::Failed(failure));
    let (_, wake) = super::app::waker();
    show(AgentWindow::new(lang, company, commands, events), wake, |_| {})
}

/// Runs the window until it closes (its own exit, or the customer's).
fn show(window: AgentWindow, wake: super::app::Waker, on_close: fn(&AgentWindow)) -> anyhow::Result<()> {
    let title = window.title();
    let draw = |w: &mut AgentWindow, ui: &mut egui::Ui| {
        w.ui(ui);
        w.exit
    };
    // The customer's window forwards no keys: they all stay egui's.
    super::app::run(&title, [460.0, 620.0], wake, Default::default(), window, draw, on_close)
}

/// Opens the customer's window and runs until the session ends or the
/// customer closes it; the agent's driver runs beside it.
pub fn open(setup: AgentSetup, company: String, label: String, lang: Lang) -> anyhow::Result<()> {
    let (running, commands, events, wake) =
        super::app::start(AgentCommand::End, |c, e| crate::roles::agent::drive(setup, c, e))?;
    // The tray lives as long as the runtime: until the agent exits.
    let tray = super::tray::AgentTray::new(lang.texts(), &company, commands.clone());
    let _tray = running.runtime.block_on(super::tray::show(tray));
    let mut window = AgentWindow::new(lang, company, commands, events);
    window.label = label;
    let result = show(window, wake, AgentWindow::close);
    // The window is gone: the session ends with it, within a second.
    running.stop();
    result
}
