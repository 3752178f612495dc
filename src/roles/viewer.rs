//! The technician's side: sign in with the long-lived key, answer
//! requests, connect by the best path, and hold each session until either
//! side ends it. [`drive`] takes the technician's commands and reports
//! events: the window renders them, and [`run`] (headless, for scripts and
//! the lab) prints them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use lifebuoy_proto::control::{Control, EndReason, Monitor, Permissions};
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy_proto::{Fingerprint, Role};
use tokio::sync::mpsc;

use super::files::{describe, open_inbox, DropRefused, FileNews, Files};
use super::{say, CompanyServer, Ending, Failure};
use crate::audit::{file_record, permissions_record, AuditLog, Record};
use crate::input::InputSender;
use crate::net::candidates::host_candidates;
use crate::net::punch::connect_peer;
use crate::net::Identity;
use crate::screen::stream::{Frame, ScreenReceiver};
use crate::session::{IncomingStream, LocalSide};

/// How the viewer is set up.
#[derive(Clone, Debug)]
pub struct ViewerSetup {
    /// The company's server.
    pub server: CompanyServer,
    /// The technician's name as shown to the customer.
    pub name: String,
    /// Where received files go (default: Downloads/lifebuoy).
    pub inbox: Option<PathBuf>,
    /// The audit log (default: audit.jsonl in the user's data folder).
    pub audit_log: Option<PathBuf>,
}

/// What the technician does.
#[derive(Clone, Debug, PartialEq)]
pub enum ViewerCommand {
    /// Take this request.
    Accept(u64),
    /// Turn this request down.
    Decline(u64),
    /// Show another of the customer's monitors.
    SelectMonitor(u8),
    /// Put text on the customer's clipboard.
    Clipboard(String),
    /// Send these files and folders to the customer.
    SendFiles(Vec<PathBuf>),
    /// Stop a drop, either way.
    CancelTransfer(u64),
    /// End the session; stay signed in.
    End,
    /// End any session and sign out.
    Quit,
}

/// The live parts of a session the window draws and feeds.
#[derive(Clone)]
pub struct SessionView {
    /// The customer's screen and pointer.
    pub screen: Arc<ScreenReceiver>,
    /// Where keyboard and mouse go.
    pub input: Arc<InputSender>,
    /// The connection (its round-trip time, live).
    pub link: crate::session::Link,
    /// Whether the customer has let the technician in (nothing is shown
    /// and no input goes out before).
    pub allowed: tokio::sync::watch::Receiver<bool>,
}

impl SessionView {
    /// Types `text` as characters, then Enter, on the customer's machine.
    pub fn type_line(&self, text: &str) -> Result<(), crate::input::InputClosed> {
        use lifebuoy_proto::input::{Input, Modifiers};
        let enter = |pressed| Input::Key { physical: 0x28, logical: None, pressed, modifiers: Modifiers(0) };
        for input in [Input::Text { text: text.to_owned() }, enter(true), enter(false)] {
            self.input.send(input)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionView")
    }
}

/// What the technician is told.
#[derive(Clone, Debug)]
pub enum ViewerEvent {
    /// Signed in; requests can come.
    SignedIn {
        /// This technician's fingerprint.
        fingerprint: Fingerprint,
    },
    /// A customer asks for help.
    Incoming {
        /// Its number, for Accept/Decline.
        request: u64,
        /// What the customer typed as name or customer number.
        label: String,
        /// The customer's key of this run.
        agent: Fingerprint,
    },
    /// The customer withdrew (or gave up on) the request.
    Withdrawn(u64),
    /// Accepted: the connection is being made.
    Connecting(u64),
    /// The session stands.
    Connected {
        /// The customer's label.
        label: String,
        /// The customer's key of this run (pinned).
        fingerprint: Fingerprint,
        /// The code to compare on the phone.
        code: String,
        /// How the connection goes (direct, relay, tcp) and its round trip.
        path: String,
        /// Accept -> session.
        setup: Duration,
        /// What to draw and where input goes.
        view: SessionView,
    },
    /// No path to the customer worked; waiting for requests again.
    ConnectFailed(String),
    /// The customer's monitors.
    Layout(Vec<Monitor>),
    /// What the customer allows now.
    Permissions(Permissions),
    /// Where received files go.
    Inbox(PathBuf),
    /// A file came or went, or is on its way.
    File(FileNews),
    /// Items of a drop that were left out (links, special files).
    Skipped(Vec<PathBuf>),
    /// A drop was refused as a whole.
    DropRefused(DropRefused),
    /// The customer copied text.
    Clipboard(String),
    /// The session is over; waiting for requests again (unless quitting).
    Ended(Ending),
    /// Signed out or failed; nothing more will come.
    Failed(Failure),
}

/// Runs the technician's side until `Quit`, the commands channel closes,
/// or a failure. The last event is `Failed` (or nothing after `Quit`).
pub async fn drive(
    identity: Identity,
    setup: ViewerSetup,
    mut commands: mpsc::Receiver<ViewerCommand>,
    events: mpsc::Sender<ViewerEvent>,
) {
    let audit = AuditLog::open_or_warn(setup.audit_log.clone(), "viewer");
    let (tx, forwarder) = super::audited(audit, events, records);
    if let Err(failure) = flow(identity, &setup, &mut commands, &tx).await {
        let _ = tx.send(ViewerEvent::Failed(failure)).await;
    }
    drop(tx);
    let _ = forwarder.await;
}

/// What of an event goes into the audit log.
fn records(event: &ViewerEvent) -> Option<Record> {
    match event {
        ViewerEvent::Connected { label, fingerprint, code, path, .. } => Some(Record::SessionStart {
            peer: label.clone(),
            fingerprint: fingerprint.to_string(),
            path: path.clone(),
            code: code.clone(),
        }),
        ViewerEvent::Permissions(p) => Some(permissions_record(p)),
        ViewerEvent::File(news) => file_record(news),
        ViewerEvent::Ended(ending) => Some(Record::SessionEnd { how: ending.to_string() }),
        _ => None,
    }
}

async fn flow(
    identity: Identity,
    setup: &ViewerSetup,
    commands: &mut mpsc::Receiver<ViewerCommand>,
    events: &mpsc::Sender<ViewerEvent>,
) -> Result<(), Failure> {
    let identity = Arc::new(identity);
    let local = LocalSide {
        identity,
        role: Role::Viewer,
        name: setup.name.clone(),
        capabilities: Capabilities::default(),
    };
    let (endpoint, mut rv) = super::sign_in(&setup.server, &local, || ()).await?;
    let emit = |e| async { events.send(e).await.is_ok() };
    emit(ViewerEvent::SignedIn { fingerprint: local.identity.fingerprint() }).await;
    let mut labels = std::collections::HashMap::new();
    loop {
        let (request, go) = tokio::select! {
            msg = rv.recv() => match msg.map_err(Failure::company)? {
                Some(FromRendezvous::Incoming { request, label, agent }) => {
                    labels.insert(request, label.clone());
                    emit(ViewerEvent::Incoming { request, label, agent }).await;
                    continue;
                }
                Some(FromRendezvous::Withdrawn { request }) => {
                    labels.remove(&request);
                    emit(ViewerEvent::Withdrawn(request)).await;
                    continue;
                }
                Some(_) => continue,
                None => return Err(Failure::CompanyServerGone(String::new())),
            },
            command = commands.recv() => match command {
                Some(ViewerCommand::Accept(request)) if labels.contains_key(&request) => {
                    let port = endpoint.local_addr().port();
                    rv.send(&ToRendezvous::Accept { request, candidates: host_candidates(port) })
                        .await
                        .map_err(Failure::company)?;
                    emit(ViewerEvent::Connecting(request)).await;
                    let accepted = Instant::now();
                    let go = loop {
                        match rv.recv().await.map_err(Failure::company)? {
                            Some(FromRendezvous::Go(go)) if go.request == request => break Some(go),
                            Some(FromRendezvous::Withdrawn { request: r }) => {
                                emit(ViewerEvent::Withdrawn(r)).await;
                                if r == request { break None; }
                            }
                            Some(FromRendezvous::Incoming { request, label, agent }) => {
                                labels.insert(request, label.clone());
                                emit(ViewerEvent::Incoming { request, label, agent }).await;
                            }
                            Some(_) => continue,
                            None => return Err(Failure::CompanyServerGone(String::new())),
                        }
                    };
                    match go {
                        Some(go) => (request, (go, accepted)),
                        None => continue,
                    }
                }
                Some(ViewerCommand::Decline(request)) if labels.remove(&request).is_some() => {
                    rv.send(&ToRendezvous::Decline { request }).await.map_err(Failure::company)?;
                    continue;
                }
                Some(ViewerCommand::Quit) | None => {
                    rv.close();
                    endpoint.quic.wait_idle().await;
                    return Ok(());
                }
                Some(_) => continue,
            },
        };
        let (go, accepted) = go;
        let label = labels.remove(&request).unwrap_or_default();
        let relay = setup.server.relay(go.relay_port);
        match connect_peer(&endpoint, &local, &go, relay).await {
            Ok(link) => {
                let screen = Arc::new(ScreenReceiver::start());
                let (allowed_tx, allowed) = tokio::sync::watch::channel(false);
                let input = Arc::new(InputSender::start(link.session.link.clone(), allowed.clone()));
                emit(ViewerEvent::Connected {
                    label,
                    fingerprint: link.session.peer.fingerprint,
                    code: link.session.peer.code.to_string(),
                    path: link.summary(),
                    setup: accepted.elapsed(),
                    view: SessionView {
                        screen: screen.clone(),
                        input,
                        link: link.session.link.clone(),
                        allowed,
                    },
                })
                .await;
                let quit = hold(setup, link.session, screen, allowed_tx, commands, events).await;
                // The relay may forget the pair now (the path may have been direct).
                if let Some(relay) = relay {
                    endpoint.release_relay(relay, go.relay_token);
                }
                if quit {
                    rv.close();
                    endpoint.quic.wait_idle().await;
                    return Ok(());
                }
            }
            Err(e) => {
                emit(ViewerEvent::ConnectFailed(e.to_string())).await;
            }
        }
        rv.send(&ToRendezvous::SetBusy { busy: false }).await.map_err(Failure::company)?;
    }
}

/// Holds one session until it ends; true when the technician quits.
async fn hold(
    setup: &ViewerSetup,
    mut session: crate::session::Session,
    screen: Arc<ScreenReceiver>,
    allowed: tokio::sync::watch::Sender<bool>,
    commands: &mut mpsc::Receiver<ViewerCommand>,
    events: &mpsc::Sender<ViewerEvent>,
) -> bool {
    let emit = |e| async { events.send(e).await.is_ok() };
    let (news_tx, mut news) = mpsc::channel::<FileNews>(256);
    // Nothing goes to the customer before the customer has said what it takes.
    let (files, inbox_events) = Files::new(session.link.clone(), news_tx, false);
    let files = Arc::new(match open_inbox(setup.inbox.clone(), inbox_events) {
        Ok(inbox) => files.with_inbox(inbox),
        Err(e) => {
            tracing::warn!("{e}");
            files
        }
    });
    if let Some(dir) = files.inbox_dir() {
        emit(ViewerEvent::Inbox(dir.to_owned())).await;
    }
    let streams = tokio::spawn(route_streams(session.link.clone(), screen, files.clone()));
    let mut peer_end = None;
    let (ending, quit) = loop {
        tokio::select! {
            // The customer's End comes before the connection closes: read it first.
            biased;
            msg = session.control.rx.recv() => match msg {
                Ok(Some(Control::ScreenLayout { monitors })) => { emit(ViewerEvent::Layout(monitors)).await; }
                // The first says the customer let the technician in.
                Ok(Some(Control::Permissions(p))) => {
                    files.set_peer_takes(p.files);
                    allowed.send_replace(true);
                    emit(ViewerEvent::Permissions(p)).await;
                }
                Ok(Some(Control::Clipboard { text })) => { emit(ViewerEvent::Clipboard(text)).await; }
                Ok(Some(Control::End { reason })) => peer_end = Some(reason),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break (Ending::after(peer_end, session.link.closed().await), false),
            },
            command = commands.recv() => match command {
                Some(ViewerCommand::SelectMonitor(id)) => {
                    let _ = session.control.tx.send(&Control::SelectMonitor { id }).await;
                }
                Some(ViewerCommand::Clipboard(text)) => {
                    let _ = session.control.tx.send(&Control::Clipboard { text }).await;
                }
                Some(ViewerCommand::SendFiles(paths)) => match files.send(paths) {
                    Ok((_, skipped)) if !skipped.is_empty() => { emit(ViewerEvent::Skipped(skipped)).await; }
                    Ok(_) => {}
                    Err(e) => { emit(ViewerEvent::DropRefused(e)).await; }
                },
                Some(ViewerCommand::CancelTransfer(t)) => files.cancel(t),
                Some(ViewerCommand::End) => {
                    session.end(EndReason::TechnicianEnded).await;
                    break (Ending::Here, false);
                }
                Some(ViewerCommand::Quit) | None => {
                    session.end(EndReason::TechnicianEnded).await;
                    break (Ending::Here, true);
                }
                // Requests are answered between sessions.
                Some(ViewerCommand::Accept(_) | ViewerCommand::Decline(_)) => {}
            },
            Some(item) = news.recv() => { emit(ViewerEvent::File(item)).await; }
            why = session.link.closed() => break (Ending::after(peer_end, why), false),
        }
    };
    streams.abort();
    while let Ok(item) = news.try_recv() {
        emit(ViewerEvent::File(item)).await;
    }
    emit(ViewerEvent::Ended(ending)).await;
    quit
}

/// Screen streams read at once, at most: the updates in flight, the
/// pointer's stream and one to spare. Each may buffer a whole update (up
/// to 16 MiB), so a peer opening more only waits, unread.
pub const SCREEN_STREAMS_MAX: usize = crate::screen::stream::IN_FLIGHT + 2;

/// Hands the customer's streams to whoever handles them.
async fn route_streams(link: crate::session::Link, screen: Arc<ScreenReceiver>, files: Arc<Files>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(SCREEN_STREAMS_MAX));
    while let Ok(stream) = link.accept().await {
        match stream {
            IncomingStream::Screen(s) => {
                let (screen, slots) = (screen.clone(), slots.clone());
                tokio::spawn(async move {
                    let Ok(_slot) = slots.acquire().await else { return };
                    if let Err(e) = screen.take(s).await {
                        tracing::debug!("screen stream: {e}");
                    }
                });
            }
            IncomingStream::File(f) => {
                files.receive(f);
            }
            IncomingStream::Input(mut i) => i.stop(lifebuoy_proto::close::STREAM_PROTOCOL_ERROR),
        }
    }
}

/// How the headless viewer behaves.
#[derive(Clone, Debug)]
pub struct ViewerOptions {
    /// How the viewer is set up.
    pub setup: ViewerSetup,
    /// Accept every request (scripted tests); otherwise decline them.
    pub accept: bool,
    /// Exit after this many sessions (0: never).
    pub sessions: u32,
    /// Where to write the last screen image of each session (PPM).
    pub screenshot: Option<PathBuf>,
    /// The customer's monitor to show, if not the first.
    pub monitor: Option<u8>,
    /// Text to type on the customer's machine (then Enter) once the screen
    /// shows (scripted tests and the demo).
    pub type_text: Option<String>,
    /// Text to put on the customer's clipboard once the screen shows.
    pub clipboard: Option<String>,
    /// Files and folders to send to the customer once connected.
    pub send_files: Vec<PathBuf>,
    /// Measure input -> photon in this region with this many keys, then
    /// end the session.
    pub photon: Option<(lifebuoy_proto::codec::Rect, usize)>,
}

/// Types `text` and Enter on the customer's machine once the first picture
/// has come (so the technician, like a person, acts on what is shown).
async fn type_when_shown(view: SessionView, text: String) {
    let mut image = view.screen.image.clone();
    if image.wait_for(|f| f.is_some()).await.is_err() || view.type_line(&text).is_err() {
        return;
    }
    say!("typed {text:?}");
}

/// Says when the customer let the technician in (after Accept), and how
/// long the first full picture took after that; with a `photon` region,
/// measures input -> photon there and ends the session.
async fn measure(
    view: SessionView,
    accepted: Instant,
    photon: Option<(lifebuoy_proto::codec::Rect, usize)>,
    commands: mpsc::Sender<ViewerCommand>,
) {
    use super::probe;
    let mut allowed = view.allowed.clone();
    if allowed.wait_for(|yes| *yes).await.is_err() {
        return;
    }
    let allowed_at = Instant::now();
    say!("allowed_after_ms={:.1}", (allowed_at - accepted).as_secs_f64() * 1e3);
    match probe::first_frame(&view).await {
        // From the customer's yes: the time before it is theirs, not ours.
        Ok(at) => say!("first_frame_ms={:.1}", (at - allowed_at).as_secs_f64() * 1e3),
        Err(e) => return say!("first frame: {e}"),
    }
    let Some((region, keys)) = photon else { return };
    match probe::input_to_photon(&view, region, keys).await {
        Ok(run) => {
            let l = run.latencies();
            let at = |p| l.percentile(p).unwrap_or(0.0);
            say!(
                "input_to_photon_ms p50={:.2} p99={:.2} max={:.2} keys={}",
                at(0.5),
                at(0.99),
                at(1.0),
                l.len()
            )
        }
        Err(e) => say!("input to photon: {e}"),
    }
    let _ = commands.send(ViewerCommand::End).await;
}

/// Says what the screen stream showed, and saves its last picture if asked.
fn report_screen(screen: &ScreenReceiver, screenshot: Option<&std::path::Path>) {
    let Some(Frame { seq: updates, monitor, image }) = screen.image.borrow().clone() else {
        say!("screen: nothing received");
        return;
    };
    say!("screen: {updates} updates, last {}x{} of monitor {monitor}", image.width, image.height);
    let cursor = screen.cursor.borrow().clone();
    if let Some(shape) = &cursor.shape {
        say!(
            "cursor: at {},{} on monitor {}, {}, shape {}x{}",
            cursor.x,
            cursor.y,
            cursor.monitor,
            if cursor.visible { "visible" } else { "hidden" },
            shape.width,
            shape.height
        );
    }
    if let Some(path) = screenshot {
        let mut ppm = format!("P6 {} {} 255\n", image.width, image.height).into_bytes();
        ppm.reserve(image.pixels.len() / 4 * 3);
        image.pixels.chunks_exact(4).for_each(|p| ppm.extend_from_slice(&[p[2], p[1], p[0]]));
        match std::fs::write(path, ppm) {
            Ok(()) => say!("screen: saved {}", path.display()),
            Err(e) => say!("screen: cannot save {}: {e}", path.display()),
        }
    }
}

/// Runs the viewer without a window: accepts (or declines) every request,
/// prints what happens, does what the options script.
pub async fn run(identity: Identity, options: ViewerOptions) -> anyhow::Result<()> {
    let (commands, command_rx) = mpsc::channel(16);
    let (event_tx, mut events) = mpsc::channel(256);
    let driver = tokio::spawn(drive(identity, options.setup.clone(), command_rx, event_tx));
    let mut served = 0;
    let mut view: Option<SessionView> = None;
    let mut typing: Option<tokio::task::JoinHandle<()>> = None;
    let mut probing: Option<tokio::task::JoinHandle<()>> = None;
    let mut allowed = false;
    let send = |c| {
        let commands = commands.clone();
        async move {
            let _ = commands.send(c).await;
        }
    };
    let result = loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = super::shutdown_signal() => { send(ViewerCommand::Quit).await; continue; }
        };
        let Some(event) = event else { break Ok(()) };
        match event {
            ViewerEvent::SignedIn { fingerprint } => {
                say!("signed in as {} ({fingerprint})", options.setup.name)
            }
            ViewerEvent::Incoming { request, label, agent } => {
                say!("request {request} from {label:?} ({})", agent.short());
                send(if options.accept {
                    ViewerCommand::Accept(request)
                } else {
                    ViewerCommand::Decline(request)
                })
                .await;
            }
            ViewerEvent::Withdrawn(request) => say!("request {request} was withdrawn"),
            ViewerEvent::Connecting(_) => {}
            ViewerEvent::Connected { code, path, setup, view: v, .. } => {
                say!("connected: {path} accept_to_session_ms={:.1} code={code}", setup.as_secs_f64() * 1e3);
                let accepted = Instant::now() - setup;
                probing = Some(tokio::spawn(measure(v.clone(), accepted, options.photon, commands.clone())));
                if let Some(text) = options.type_text.clone() {
                    typing = Some(tokio::spawn(type_when_shown(v.clone(), text)));
                }
                view = Some(v);
                allowed = false;
            }
            ViewerEvent::ConnectFailed(why) => {
                say!("could not reach the customer: {why}");
                served += 1;
                if options.sessions != 0 && served >= options.sessions {
                    send(ViewerCommand::Quit).await;
                }
            }
            ViewerEvent::Layout(monitors) => {
                for m in &monitors {
                    say!(
                        "monitor {}: {:?} {}x{} at {},{}{}",
                        m.id,
                        m.name,
                        m.width,
                        m.height,
                        m.x,
                        m.y,
                        if m.primary { " (primary)" } else { "" }
                    );
                }
                if let Some(id) = options.monitor {
                    send(ViewerCommand::SelectMonitor(id)).await;
                }
                if let Some(text) = options.clipboard.clone() {
                    send(ViewerCommand::Clipboard(text)).await;
                }
            }
            ViewerEvent::Permissions(p) => {
                say!(
                    "customer allows: see the screen {}, control {}",
                    if p.view { "yes" } else { "no" },
                    if p.control { "yes" } else { "no" }
                );
                // Files go once the customer has let the technician in.
                if !std::mem::replace(&mut allowed, true) && !options.send_files.is_empty() {
                    send(ViewerCommand::SendFiles(options.send_files.clone())).await;
                }
            }
            ViewerEvent::Inbox(dir) => say!("files received go to {}", dir.display()),
            ViewerEvent::File(news) => {
                if let Some(line) = describe(&news) {
                    say!("{line}");
                }
            }
            ViewerEvent::Skipped(paths) => {
                for p in paths {
                    say!("not sent (a link or special file): {}", p.display());
                }
            }
            ViewerEvent::DropRefused(why) => say!("cannot send: {why}"),
            ViewerEvent::Clipboard(text) => say!("clipboard from the customer: {} bytes", text.len()),
            ViewerEvent::Ended(ending) => {
                say!("session ended: {ending}");
                for task in [typing.take(), probing.take()].into_iter().flatten() {
                    task.abort();
                }
                if let Some(v) = view.take() {
                    report_screen(&v.screen, options.screenshot.as_deref());
                }
                served += 1;
                if ending == Ending::Here || (options.sessions != 0 && served >= options.sessions) {
                    send(ViewerCommand::Quit).await;
                }
            }
            ViewerEvent::Failed(failure) => break Err(anyhow::Error::new(failure)),
        }
    };
    drop(commands);
    let _ = driver.await;
    if let Err(e) = result {
        bail!(e)
    }
    Ok(())
}
