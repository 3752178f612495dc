//! The technician's window: own name and whether the company server is
//! reachable, incoming requests with Accept / Decline, then the code to
//! compare, the customer's screen (fit or 1:1), a toolbar (monitor,
//! key combinations, send file, end session), the view-only state, and the
//! transfers. How a session ended stays on screen until the next one.

use std::path::PathBuf;

use egui::RichText;
use lifebuoy_proto::control::{Monitor, Permissions};
use lifebuoy_proto::Fingerprint;
use tokio::sync::mpsc;

use super::agent::{ending_text, failure_text};
use super::i18n::{fill, Lang, Texts};
use super::remote::{RemoteView, Scale};
use super::transfers::Transfers;
use crate::input::map::{combo, Combo};
use crate::net::Identity;
use crate::roles::viewer::{SessionView, ViewerCommand, ViewerEvent, ViewerSetup};
use crate::roles::Failure;

/// Where the technician is.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Reaching the company's server.
    SigningIn,
    /// Signed in, waiting for requests.
    Ready,
    /// Accepted; connecting to this customer.
    Connecting(String),
    /// In a session.
    Connected {
        /// The customer's label.
        label: String,
        /// The code to compare.
        code: String,
        /// Path and round trip.
        path: String,
    },
    /// The company server went away; signing in again.
    Reconnecting,
    /// Signed out by a failure.
    Failed(Failure),
}

/// A request waiting for an answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Its number.
    pub request: u64,
    /// What the customer typed.
    pub label: String,
    /// The customer's key of this run.
    pub agent: Fingerprint,
}

/// The technician's window.
pub struct ViewerWindow {
    /// Language of every text.
    pub lang: Lang,
    /// The technician's name.
    pub name: String,
    /// Signed in under this key.
    pub fingerprint: Option<Fingerprint>,
    /// Where the technician is.
    pub stage: Stage,
    /// Requests waiting.
    pub requests: Vec<Request>,
    /// How the last session ended, or why it could not start.
    pub notice: Option<String>,
    /// The customer's monitors.
    pub monitors: Vec<Monitor>,
    /// The one shown.
    pub monitor: u8,
    /// What the customer allows.
    pub permissions: Option<Permissions>,
    /// Files of the session.
    pub transfers: Transfers,
    /// Where received files go.
    pub inbox: Option<PathBuf>,
    /// Lines about drops and the clipboard.
    pub messages: Vec<String>,
    /// The screen and input of the session.
    pub view: Option<SessionView>,
    /// The session's path is silent and being restored.
    pub stalled: bool,
    /// The image's state.
    pub remote: RemoteView,
    send_path: String,
    send_open: bool,
    commands: mpsc::Sender<ViewerCommand>,
    events: mpsc::Receiver<ViewerEvent>,
}

impl ViewerWindow {
    /// A window talking to a viewer driver through these channels.
    pub fn new(
        lang: Lang,
        name: String,
        commands: mpsc::Sender<ViewerCommand>,
        events: mpsc::Receiver<ViewerEvent>,
    ) -> ViewerWindow {
        ViewerWindow {
            lang,
            name,
            fingerprint: None,
            stage: Stage::SigningIn,
            requests: Vec::new(),
            notice: None,
            monitors: Vec::new(),
            monitor: 0,
            permissions: None,
            transfers: Transfers::default(),
            inbox: None,
            messages: Vec::new(),
            view: None,
            stalled: false,
            remote: RemoteView::default(),
            send_path: String::new(),
            send_open: false,
            commands,
            events,
        }
    }

    fn t(&self) -> &'static Texts {
        self.lang.texts()
    }

    fn send(&self, command: ViewerCommand) {
        let _ = self.commands.try_send(command);
    }

    /// The technician closed the window: any session ends, signed out.
    pub fn close(&self) {
        self.send(ViewerCommand::Quit);
    }

    /// Takes every event that came since the last frame.
    pub fn poll(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.events.try_recv() {
            self.apply(event, ctx);
        }
    }

    /// Takes one event.
    pub fn apply(&mut self, event: ViewerEvent, ctx: &egui::Context) {
        let t = self.t();
        match event {
            ViewerEvent::SignedIn { fingerprint } => {
                self.fingerprint = Some(fingerprint);
                if self.stage == Stage::Reconnecting {
                    self.notice = None;
                }
                if !matches!(self.stage, Stage::Connected { .. }) {
                    self.stage = Stage::Ready;
                }
            }
            ViewerEvent::PathStalled(now) => self.stalled = now,
            ViewerEvent::CompanyServerLost { retry_in, .. } => {
                // Its requests went with it.
                self.requests.clear();
                let seconds = format!("{}", retry_in.as_secs_f64().ceil() as u64);
                self.notice = Some(fill(t.server_lost, &[("seconds", &seconds)]));
                if !matches!(self.stage, Stage::Connected { .. }) {
                    self.stage = Stage::Reconnecting;
                }
            }
            ViewerEvent::Incoming { request, label, agent } => {
                self.requests.push(Request { request, label, agent });
                ctx.send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(
                    egui::UserAttentionType::Informational,
                ));
            }
            ViewerEvent::Withdrawn(request) => self.requests.retain(|r| r.request != request),
            ViewerEvent::Connecting(request) => {
                let label = self.requests.iter().find(|r| r.request == request).map(|r| r.label.clone());
                self.requests.retain(|r| r.request != request);
                self.notice = None;
                self.stage = Stage::Connecting(label.unwrap_or_default());
            }
            ViewerEvent::Connected { label, code, path, view, .. } => {
                // A new session starts clean.
                self.monitors.clear();
                self.permissions = None;
                self.transfers = Transfers::default();
                self.messages.clear();
                self.remote.reset();
                self.stalled = false;
                let wake = ctx.clone();
                // Every new picture or pointer state asks for a frame. Only
                // the receivers go into the task: it ends when the session's
                // screen is dropped, and does not keep it alive.
                let (mut image, mut cursor) = (view.screen.image.clone(), view.screen.cursor.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            r = image.changed() => if r.is_err() { break },
                            r = cursor.changed() => if r.is_err() { break },
                        }
                        wake.request_repaint();
                    }
                });
                self.view = Some(view);
                self.stage = Stage::Connected { label, code, path };
            }
            ViewerEvent::ConnectFailed(why) => {
                self.notice = Some(fill(t.connect_failed, &[("why", &why)]));
                self.stage = Stage::Ready;
            }
            ViewerEvent::Layout(monitors) => {
                self.monitor = monitors.first().map_or(0, |m| m.id);
                self.monitors = monitors;
            }
            ViewerEvent::Permissions(p) => self.permissions = Some(p),
            ViewerEvent::Inbox(dir) => self.inbox = Some(dir),
            ViewerEvent::File(news) => self.transfers.apply(news),
            ViewerEvent::Skipped(paths) => {
                for p in paths {
                    self.messages.push(fill(t.skipped, &[("path", &p.display().to_string())]));
                }
            }
            ViewerEvent::DropRefused(why) => self.messages.push(super::transfers::refused(t, &why)),
            ViewerEvent::Clipboard(text) => {
                self.messages.push(fill(t.clipboard_copied, &[("bytes", &text.len().to_string())]));
                ctx.copy_text(text);
            }
            ViewerEvent::Ended(ending) => {
                self.notice = Some(ending_text(t, &ending).to_owned());
                self.view = None;
                self.stage = Stage::Ready;
            }
            ViewerEvent::Failed(failure) => {
                self.view = None;
                self.stage = Stage::Failed(failure);
            }
        }
    }

    /// Whether the customer lets the technician control.
    pub fn control(&self) -> bool {
        self.permissions.is_some_and(|p| p.control)
    }

    fn files_allowed(&self) -> bool {
        self.permissions.is_some_and(|p| p.files)
    }

    /// Files dropped onto the window go to the customer while connected.
    fn take_dropped(&mut self, ctx: &egui::Context) {
        let paths: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if paths.is_empty() || self.view.is_none() {
            return;
        }
        if self.files_allowed() {
            self.send(ViewerCommand::SendFiles(paths));
        } else {
            self.messages.push(self.t().no_files.to_owned());
        }
    }

    /// Polls events, takes dropped files and draws the window.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        // Keys go to the customer only while a frame shows the view focused.
        self.remote.keyboard.route(None);
        self.poll(ui.ctx());
        self.take_dropped(ui.ctx());
        match self.stage.clone() {
            Stage::Connected { label, code, path } => self.session(ui, &label, &code, &path),
            stage => self.lobby(ui, stage),
        }
    }

    fn lobby(&mut self, ui: &mut egui::Ui, stage: Stage) {
        let t = self.t();
        ui.heading(t.viewer_title);
        ui.add_space(4.0);
        match &stage {
            Stage::SigningIn => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(fill(t.signing_in, &[("company", "")]).replace("  ", " "));
                });
            }
            Stage::Reconnecting => {
                ui.label(RichText::new(fill(t.signed_in_as, &[("name", &self.name)])).strong());
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.colored_label(ui.visuals().warn_fg_color, t.reconnecting);
                });
            }
            Stage::Failed(failure) => {
                let (headline, detail) = failure_text(t, failure);
                ui.colored_label(ui.visuals().error_fg_color, RichText::new(headline).size(16.0));
                ui.collapsing(t.details, |ui| ui.label(detail));
            }
            _ => {
                ui.label(RichText::new(fill(t.signed_in_as, &[("name", &self.name)])).strong());
                if let Some(fp) = self.fingerprint {
                    ui.small(fp.short());
                }
            }
        }
        if let Some(notice) = &self.notice {
            ui.add_space(6.0);
            ui.label(RichText::new(notice).size(15.0));
        }
        ui.add_space(8.0);
        if let Stage::Connecting(label) = &stage {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(fill(t.connecting_to_customer, &[("label", &shown_label(t, label))]));
            });
            return;
        }
        if stage == Stage::Ready && self.requests.is_empty() {
            ui.label(t.waiting_for_requests);
        }
        let mut answer = None;
        for r in &self.requests {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(
                    RichText::new(fill(t.asks_for_help, &[("label", &shown_label(t, &r.label))]))
                        .size(16.0)
                        .strong(),
                );
                ui.small(r.agent.short());
                ui.horizontal(|ui| {
                    if ui.button(RichText::new(t.accept).strong()).clicked() {
                        answer = Some(ViewerCommand::Accept(r.request));
                    }
                    if ui.button(t.decline).clicked() {
                        answer = Some(ViewerCommand::Decline(r.request));
                    }
                });
            });
        }
        if let Some(answer) = answer {
            if let ViewerCommand::Decline(request) = answer {
                self.requests.retain(|r| r.request != request);
            }
            self.send(answer);
        }
    }

    /// Connected, but the customer has not let the technician in yet: the
    /// code to read out, large, and a way to give up.
    fn waiting_for_consent(&mut self, ui: &mut egui::Ui, label: &str, code: &str) {
        let t = self.t();
        ui.heading(shown_label(t, label));
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(RichText::new(t.waiting_for_consent).size(16.0));
        });
        ui.add_space(8.0);
        ui.label(t.read_code_to_customer);
        ui.label(RichText::new(code).monospace().size(30.0).strong());
        ui.add_space(12.0);
        if ui.button(t.end_session).clicked() {
            self.send(ViewerCommand::End);
        }
    }

    fn session(&mut self, ui: &mut egui::Ui, label: &str, code: &str, path: &str) {
        let t = self.t();
        if self.permissions.is_none() {
            return self.waiting_for_consent(ui, label, code);
        }
        egui::Panel::top("toolbar").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new(shown_label(t, label)).strong());
                ui.separator();
                ui.label(t.compare_code);
                ui.label(RichText::new(code).monospace().strong().size(18.0));
                ui.separator();
                // The path as found; the round trip as it is now.
                let kind = path.split(" rtt_ms=").next().unwrap_or(path).trim_start_matches("path=");
                let rtt = self.view.as_ref().map_or(0.0, |v| v.link.rtt().as_secs_f64() * 1e3);
                ui.small(format!("{kind} · RTT {rtt:.1} ms"));
                ui.ctx().request_repaint_after(std::time::Duration::from_secs(1));
                if self.stalled {
                    ui.separator();
                    ui.colored_label(ui.visuals().warn_fg_color, t.path_interrupted);
                }
            });
            ui.horizontal_wrapped(|ui| {
                ui.selectable_value(&mut self.remote.scale, Scale::Fit, t.fit);
                ui.selectable_value(&mut self.remote.scale, Scale::Actual, t.one_to_one);
                if self.monitors.len() > 1 {
                    let current = self.monitors.iter().find(|m| m.id == self.monitor).map(monitor_name);
                    egui::ComboBox::from_label(t.monitor).selected_text(current.unwrap_or_default()).show_ui(
                        ui,
                        |ui| {
                            for m in self.monitors.clone() {
                                if ui.selectable_value(&mut self.monitor, m.id, monitor_name(&m)).clicked() {
                                    self.send(ViewerCommand::SelectMonitor(m.id));
                                }
                            }
                        },
                    );
                }
                ui.separator();
                let control = self.control();
                for (text, c) in [
                    (t.ctrl_alt_del, Combo::CtrlAltDel),
                    (t.alt_tab, Combo::AltTab),
                    (t.super_key, Combo::Super),
                    (t.alt_f4, Combo::AltF4),
                ] {
                    if ui.add_enabled(control, egui::Button::new(text)).clicked() {
                        if let Some(view) = &self.view {
                            for input in combo(c) {
                                let _ = view.input.send(input);
                            }
                        }
                    }
                }
                ui.separator();
                if ui.selectable_label(self.send_open, t.send_file).clicked() {
                    self.send_open = !self.send_open;
                }
                // Apart from the rest, at the right: it cannot be undone.
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button(RichText::new(t.end_session).strong()).clicked() {
                        self.send(ViewerCommand::End);
                    }
                });
            });
            if self.send_open {
                // A row, not a menu: a menu closes on the click into its field.
                ui.horizontal(|ui| {
                    let field = egui::TextEdit::singleline(&mut self.send_path).hint_text(t.path_hint);
                    ui.add(field.desired_width(420.0));
                    if ui.button(t.send).clicked() && !self.send_path.trim().is_empty() {
                        self.send(ViewerCommand::SendFiles(vec![PathBuf::from(self.send_path.trim())]));
                        self.send_path.clear();
                        self.send_open = false;
                    }
                });
            }
            if self.permissions.is_some() && !self.control() {
                ui.colored_label(ui.visuals().warn_fg_color, t.view_only);
            }
        });
        if !self.transfers.rows().is_empty() || !self.messages.is_empty() {
            egui::Panel::bottom("transfers").show(ui, |ui| {
                ui.strong(t.transfers);
                if let Some(transfer) = self.transfers.show(ui, t) {
                    self.send(ViewerCommand::CancelTransfer(transfer));
                }
                for m in &self.messages {
                    ui.small(m);
                }
            });
        }
        egui::CentralPanel::default().frame(super::app::unfilled(ui.style())).show(ui, |ui| {
            let control = self.control();
            if let Some(view) = &self.view {
                self.remote.show(ui, &view.screen, Some(&view.input), control);
            }
            if !self.remote.has_picture() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(t.first_picture);
                });
            }
        });
    }
}

fn shown_label(t: &Texts, label: &str) -> String {
    if label.trim().is_empty() {
        t.no_label.to_owned()
    } else {
        label.to_owned()
    }
}

fn monitor_name(m: &Monitor) -> String {
    format!("{} {}x{}{}", m.name, m.width, m.height, if m.primary { " *" } else { "" })
}

/// Opens the technician's window and runs until it is closed.
pub fn open(identity: Identity, setup: ViewerSetup, lang: Lang) -> anyhow::Result<()> {
    let name = setup.name.clone();
    let (running, commands, events, wake) =
        super::app::start(ViewerCommand::Quit, |c, e| crate::roles::viewer::drive(identity, setup, c, e))?;
    let window = ViewerWindow::new(lang, name, commands, events);
    let result = {
        // The window spawns repaint watchers on the runtime.
        let _inside = running.runtime.enter();
        let draw = |w: &mut ViewerWindow, ui: &mut egui::Ui| {
            w.ui(ui);
            false
        };
        let keyboard = window.remote.keyboard.clone();
        super::app::run(
            lang.texts().viewer_title,
            [1280.0, 860.0],
            wake,
            keyboard,
            window,
            draw,
            ViewerWindow::close,
        )
    };
    running.stop();
    result
}
