//! The technician's side: sign in with the long-lived key, answer
//! requests, connect by the best path, and hold each session until either
//! side ends it; when the company server goes away, sign in again with a
//! growing wait, a session in progress untouched. [`drive`] takes the
//! technician's commands and reports events: the window renders them, and
//! [`run`] (headless, for scripts and the lab) prints them.

mod headless;

pub use headless::{run, ViewerOptions};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy_proto::control::{Control, EndReason, Monitor, Permissions};
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy_proto::{Fingerprint, Role};
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::files::{open_inbox, DropRefused, FileNews, Files};
use super::path::{Keeper, Keeping, Kept};
use super::{CompanyServer, Ending, Failure};
use crate::audit::{file_record, permissions_record, AuditLog, Record};
use crate::input::InputSender;
use crate::net::candidates::host_candidates;
use crate::net::punch::connect_peer;
use crate::net::socket::PeerEndpoint;
use crate::net::Identity;
use crate::rendezvous::client::RendezvousClient;
use crate::screen::stream::ScreenReceiver;
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
    /// Signed in (again); requests can come.
    SignedIn {
        /// This technician's fingerprint.
        fingerprint: Fingerprint,
    },
    /// The company server went away; the next try to sign in again comes
    /// after this wait (a session in progress goes on meanwhile).
    CompanyServerLost {
        /// The wait.
        retry_in: Duration,
        /// What happened, for the curious.
        why: String,
    },
    /// The session's path went silent and is being restored (true), or is
    /// back (false).
    PathStalled(bool),
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
    // The first sign-in's failure is the technician's to see and fix.
    let mut signed_in = super::sign_in(&setup.server, &local, || ()).await?;
    let mut backoff = Backoff::default();
    loop {
        let (endpoint, rv) = signed_in;
        let _ = events.send(ViewerEvent::SignedIn { fingerprint: local.identity.fingerprint() }).await;
        backoff.reset();
        let mut lost = match serve(&endpoint, rv, &local, setup, commands, events).await {
            Served::Quit => return Ok(()),
            Served::Lost(why) => why,
        };
        drop(endpoint);
        signed_in = loop {
            let retry_in = backoff.next(rand::random());
            let why = lost.to_string();
            let _ = events.send(ViewerEvent::CompanyServerLost { retry_in, why }).await;
            let again = async {
                tokio::time::sleep(retry_in).await;
                super::sign_in(&setup.server, &local, || ()).await
            };
            tokio::select! {
                result = again => match result {
                    Ok(s) => break s,
                    // Refused by the server it reached: the key is not (or no
                    // longer) listed, or the pin is wrong. No use trying on.
                    Err(f @ Failure::Refused(_)) => return Err(f),
                    Err(f) => lost = f,
                },
                command = commands.recv() => match command {
                    Some(ViewerCommand::Quit) | None => return Ok(()),
                    // Nothing to answer or end while signed out.
                    Some(_) => {}
                },
            }
        };
    }
}

/// How a signed-in stretch ended.
enum Served {
    /// The technician quit.
    Quit,
    /// The company server went away.
    Lost(Failure),
}

/// Answers requests and holds sessions while signed in.
async fn serve(
    endpoint: &PeerEndpoint,
    mut rv: RendezvousClient,
    local: &LocalSide,
    setup: &ViewerSetup,
    commands: &mut mpsc::Receiver<ViewerCommand>,
    events: &mpsc::Sender<ViewerEvent>,
) -> Served {
    let emit = |e| async { events.send(e).await.is_ok() };
    let gone = || Failure::CompanyServerGone(String::new());
    let mut labels = std::collections::HashMap::new();
    loop {
        let (request, go) = tokio::select! {
            msg = rv.recv() => match msg {
                Ok(Some(FromRendezvous::Incoming { request, label, agent })) => {
                    labels.insert(request, label.clone());
                    emit(ViewerEvent::Incoming { request, label, agent }).await;
                    continue;
                }
                Ok(Some(FromRendezvous::Withdrawn { request })) => {
                    labels.remove(&request);
                    emit(ViewerEvent::Withdrawn(request)).await;
                    continue;
                }
                Ok(Some(_)) => continue,
                Ok(None) => return Served::Lost(gone()),
                Err(e) => return Served::Lost(Failure::company(e)),
            },
            command = commands.recv() => match command {
                Some(ViewerCommand::Accept(request)) if labels.contains_key(&request) => {
                    let port = endpoint.local_addr().port();
                    let accept = ToRendezvous::Accept { request, candidates: host_candidates(port) };
                    if let Err(e) = rv.send(&accept).await {
                        return Served::Lost(Failure::company(e));
                    }
                    emit(ViewerEvent::Connecting(request)).await;
                    let accepted = Instant::now();
                    let go = loop {
                        match rv.recv().await {
                            Ok(Some(FromRendezvous::Go(go))) if go.request == request => break Some(go),
                            Ok(Some(FromRendezvous::Withdrawn { request: r })) => {
                                emit(ViewerEvent::Withdrawn(r)).await;
                                if r == request { break None; }
                            }
                            Ok(Some(FromRendezvous::Incoming { request, label, agent })) => {
                                labels.insert(request, label.clone());
                                emit(ViewerEvent::Incoming { request, label, agent }).await;
                            }
                            Ok(Some(_)) => continue,
                            Ok(None) => return Served::Lost(gone()),
                            Err(e) => return Served::Lost(Failure::company(e)),
                        }
                    };
                    match go {
                        Some(go) => (request, (go, accepted)),
                        None => continue,
                    }
                }
                Some(ViewerCommand::Decline(request)) if labels.remove(&request).is_some() => {
                    if let Err(e) = rv.send(&ToRendezvous::Decline { request }).await {
                        return Served::Lost(Failure::company(e));
                    }
                    continue;
                }
                Some(ViewerCommand::Quit) | None => {
                    rv.close();
                    endpoint.quic.wait_idle().await;
                    return Served::Quit;
                }
                Some(_) => continue,
            },
        };
        let (go, accepted) = go;
        let label = labels.remove(&request).unwrap_or_default();
        let relay = setup.server.relay(go.relay_port);
        match connect_peer(endpoint, local, &go, relay).await {
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
                let (stalled_tx, stalled) = tokio::sync::watch::channel(false);
                let keeper = Keeper::of(&link, endpoint, &go, relay).telling(stalled_tx);
                let keeping = Keeping::start(keeper, rv);
                let quit = hold(setup, link.session, screen, allowed_tx, stalled, commands, events).await;
                // The relay may forget the pair now (the path may have been direct).
                if let Some(relay) = relay {
                    endpoint.release_relay(relay, go.relay_token);
                }
                rv = match keeping.stop().await {
                    Kept::Over(rv) => rv,
                    Kept::ServerLost(e) if !quit => return Served::Lost(Failure::company(e)),
                    Kept::ServerLost(_) => return Served::Quit,
                };
                if quit {
                    rv.close();
                    endpoint.quic.wait_idle().await;
                    return Served::Quit;
                }
            }
            Err(e) => {
                emit(ViewerEvent::ConnectFailed(e.to_string())).await;
            }
        }
        // The server may have gone while the session ran: then sign in again.
        if let Err(e) = rv.send(&ToRendezvous::SetBusy { busy: false }).await {
            return Served::Lost(Failure::company(e));
        }
    }
}

/// Holds one session until it ends; true when the technician quits.
async fn hold(
    setup: &ViewerSetup,
    mut session: crate::session::Session,
    screen: Arc<ScreenReceiver>,
    allowed: tokio::sync::watch::Sender<bool>,
    mut stalled: tokio::sync::watch::Receiver<bool>,
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
    let mut lost = screen.lost.clone();
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
                Ok(None) | Err(_) => break (Ending::after_control(peer_end, &session.link).await, false),
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
            // The picture lost its chain of updates: the agent sends a
            // fresh frame of a monitor selected again.
            Ok(()) = lost.changed() => {
                let id = *lost.borrow_and_update();
                let _ = session.control.tx.send(&Control::SelectMonitor { id }).await;
            }
            Ok(()) = stalled.changed() => {
                let now = *stalled.borrow_and_update();
                emit(ViewerEvent::PathStalled(now)).await;
            }
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
