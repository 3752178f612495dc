//! The customer's side: sign in with a fresh key, list the staff, request
//! one technician, connect by the best path, share, and hold the session
//! until either side ends it. [`drive`] takes the customer's commands and
//! reports events: the window renders them, and [`run`] (headless, for
//! scripts and the lab) prints them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use lifebuoy_proto::control::{Control, EndReason, Permissions};
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, Presence, Refusal, StaffEntry, ToRendezvous};
use lifebuoy_proto::{Fingerprint, Role};
use tokio::sync::mpsc;

use super::files::{describe, open_inbox, DropRefused, FileNews, Files};
use super::sharing::{open_injector, serve_streams, share_clipboard, share_screen};
use super::{say, CompanyServer, Ending, Failure};
use crate::audit::{file_record, permissions_record, AuditLog, Record};
use crate::net::candidates::host_candidates;
use crate::net::punch::connect_peer;
use crate::net::Identity;
use crate::screen::capture::MonitorInfo;
use crate::session::LocalSide;

/// How the agent is set up (the packed configuration or the command line).
#[derive(Clone, Debug)]
pub struct AgentSetup {
    /// The company's server.
    pub server: CompanyServer,
    /// The X display to share (`None`: `$DISPLAY`, if set).
    pub display: Option<String>,
    /// Start with control off (the customer can switch it on).
    pub view_only: bool,
    /// Do not exchange clipboard text.
    pub no_clipboard: bool,
    /// Refuse files and send none, with no switch to allow them.
    pub no_files: bool,
    /// Where received files go (default: Downloads/lifebuoy).
    pub inbox: Option<PathBuf>,
    /// The audit log (default: audit.jsonl in the user's data folder).
    pub audit_log: Option<PathBuf>,
}

/// What the customer does.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    /// Ask this technician for help; `label` is what the customer typed.
    Request {
        /// The technician.
        staff: Fingerprint,
        /// Name or customer number; may be empty.
        label: String,
    },
    /// Withdraw the waiting request.
    Cancel,
    /// Switch remote control on or off.
    AllowControl(bool),
    /// Switch receiving files on or off.
    AllowFiles(bool),
    /// Send these files and folders to the technician.
    SendFiles(Vec<PathBuf>),
    /// Stop a drop, either way.
    CancelTransfer(u64),
    /// End the session (or, before one, quit).
    End,
}

/// What the customer is told.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentEvent {
    /// The company server did not answer over UDP; TCP is tried too.
    TryingTcp,
    /// The staff list, with presence (again whenever it changes).
    Staff(Vec<StaffEntry>),
    /// The request is out; the technician has not answered yet.
    Waiting {
        /// Who was asked.
        technician: String,
    },
    /// The request was withdrawn; back to the list.
    Cancelled,
    /// The request was not taken; back to the list.
    Refused {
        /// Who was asked.
        technician: String,
        /// Why.
        reason: Refusal,
    },
    /// Accepted: the connection is being made.
    Connecting {
        /// Who accepted.
        technician: String,
    },
    /// The session stands.
    Connected {
        /// The technician.
        technician: String,
        /// The technician's key (pinned).
        fingerprint: Fingerprint,
        /// The code to compare on the phone.
        code: String,
        /// How the connection goes (direct, relay, tcp) and its round trip.
        path: String,
        /// Accept -> session.
        setup: Duration,
    },
    /// The screen of this X display (or this desktop) is shared.
    Sharing(String),
    /// What the technician may do now.
    Permissions(Permissions),
    /// Where received files go.
    Inbox(PathBuf),
    /// A file came or went, or is on its way.
    File(FileNews),
    /// Items of a drop that were left out (links, special files).
    Skipped(Vec<PathBuf>),
    /// A drop was refused as a whole.
    DropRefused(DropRefused),
    /// The technician looks at another monitor.
    Monitor(u8),
    /// Clipboard text moved (`to_technician`: copied here).
    Clipboard {
        /// Which way.
        to_technician: bool,
        /// Its size.
        bytes: usize,
    },
    /// The session is over; the agent exits.
    Ended(Ending),
    /// Something failed and the agent cannot go on.
    Failed(Failure),
}

/// Why no technician could be reached, in the customer's words (the window
/// has its own, translated).
pub fn refusal_text(reason: Refusal) -> &'static str {
    match reason {
        Refusal::UnknownStaff => "this technician is not (or no longer) in the company's list",
        Refusal::Offline => "the technician is offline",
        Refusal::Busy => "the technician is busy; try again in a moment or choose someone else",
        Refusal::Declined => "the technician declined the request",
        Refusal::NoAnswer => "the technician did not answer in time",
        Refusal::RateLimited => "too many requests from this network; wait a minute",
        Refusal::AlreadyRequested => "a request is already waiting",
    }
}

/// Runs the customer's side until the session ends or the customer quits.
/// Events stop when this returns; the last one is `Ended` or `Failed`.
pub async fn drive(
    setup: AgentSetup,
    mut commands: mpsc::Receiver<AgentCommand>,
    events: mpsc::Sender<AgentEvent>,
) {
    let audit = AuditLog::open_or_warn(setup.audit_log.clone(), "agent");
    let (tx, forwarder) = super::audited(audit, events, records);
    let last = match flow(&setup, &mut commands, &tx).await {
        Ok(ending) => AgentEvent::Ended(ending),
        Err(failure) => AgentEvent::Failed(failure),
    };
    let _ = tx.send(last).await;
    drop(tx);
    let _ = forwarder.await;
}

/// What of an event goes into the audit log.
fn records(event: &AgentEvent) -> Option<Record> {
    match event {
        AgentEvent::Connected { technician, fingerprint, code, path, .. } => Some(Record::SessionStart {
            peer: technician.clone(),
            fingerprint: fingerprint.to_string(),
            path: path.clone(),
            code: code.clone(),
        }),
        AgentEvent::Permissions(p) => Some(permissions_record(p)),
        AgentEvent::File(news) => file_record(news),
        AgentEvent::Ended(ending) => Some(Record::SessionEnd { how: ending.to_string() }),
        _ => None,
    }
}

async fn flow(
    setup: &AgentSetup,
    commands: &mut mpsc::Receiver<AgentCommand>,
    events: &mpsc::Sender<AgentEvent>,
) -> Result<Ending, Failure> {
    // A fresh key, never written anywhere: after exit nothing can reconnect.
    let identity = Arc::new(Identity::generate("lifebuoy agent").map_err(|e| Failure::Local(e.to_string()))?);
    let mut local =
        LocalSide { identity, role: Role::Agent, name: String::new(), capabilities: Capabilities::default() };
    let tcp = || {
        let _ = events.try_send(AgentEvent::TryingTcp);
    };
    let (endpoint, mut rv) = super::sign_in(&setup.server, &local, tcp).await?;
    rv.send(&ToRendezvous::ListStaff).await.map_err(Failure::company)?;
    let emit = |e| async { events.send(e).await.is_ok() };

    // The list, and requests until one is accepted.
    let mut staff: Vec<StaffEntry> = Vec::new();
    let mut asked: Option<StaffEntry> = None;
    let (go, technician) = loop {
        tokio::select! {
            msg = rv.recv() => match msg.map_err(Failure::company)? {
                Some(FromRendezvous::Staff { entries }) => {
                    staff = entries.clone();
                    emit(AgentEvent::Staff(entries)).await;
                }
                Some(FromRendezvous::Go(go)) => match asked.take() {
                    Some(t) => break (go, t),
                    None => continue,
                },
                Some(FromRendezvous::Refused { reason }) => {
                    if let Some(t) = asked.take() {
                        emit(AgentEvent::Refused { technician: t.name, reason }).await;
                    }
                }
                Some(_) => {}
                None => return Err(Failure::CompanyServerGone(String::new())),
            },
            command = commands.recv() => match command {
                Some(AgentCommand::Request { staff: fp, label }) if asked.is_none() => {
                    let Some(entry) = staff.iter().find(|s| s.fingerprint == fp).cloned() else {
                        emit(AgentEvent::Refused { technician: fp.short(), reason: Refusal::UnknownStaff }).await;
                        continue;
                    };
                    local.name = label.clone();
                    let port = endpoint.local_addr().port();
                    rv.send(&ToRendezvous::Request { staff: fp, label, candidates: host_candidates(port) })
                        .await
                        .map_err(Failure::company)?;
                    emit(AgentEvent::Waiting { technician: entry.name.clone() }).await;
                    asked = Some(entry);
                }
                Some(AgentCommand::Cancel) if asked.is_some() => {
                    rv.send(&ToRendezvous::Cancel).await.map_err(Failure::company)?;
                    asked = None;
                    emit(AgentEvent::Cancelled).await;
                }
                Some(AgentCommand::End) | None => {
                    rv.close();
                    return Ok(Ending::Here);
                }
                Some(_) => {}
            },
        }
    };

    emit(AgentEvent::Connecting { technician: technician.name.clone() }).await;
    let started = Instant::now();
    let relay = setup.server.relay(go.relay_port);
    let link = tokio::select! {
        link = connect_peer(&endpoint, &local, &go, relay) => link.map_err(|e| Failure::Peer(e.to_string()))?,
        // The customer may give up while the paths are tried.
        _ = wait_for_end(commands) => { rv.close(); return Ok(Ending::Here); }
    };
    // Nothing more to ask the server: the session is between the two now.
    rv.close();
    emit(AgentEvent::Connected {
        technician: technician.name.clone(),
        fingerprint: link.session.peer.fingerprint,
        code: link.session.peer.code.to_string(),
        path: link.summary(),
        setup: started.elapsed(),
    })
    .await;
    let ending = hold(setup, link.session, commands, events).await;
    endpoint.quic.wait_idle().await;
    Ok(ending)
}

/// Waits until the customer quits (the rest is ignored while connecting).
async fn wait_for_end(commands: &mut mpsc::Receiver<AgentCommand>) {
    while let Some(c) = commands.recv().await {
        if c == AgentCommand::End {
            return;
        }
    }
}

/// Shares what the setup allows and holds the session until it ends.
async fn hold(
    setup: &AgentSetup,
    mut session: crate::session::Session,
    commands: &mut mpsc::Receiver<AgentCommand>,
    events: &mpsc::Sender<AgentEvent>,
) -> Ending {
    let emit = |e| async { events.send(e).await.is_ok() };
    let screen = share_screen(&session, setup.display.as_deref());
    if let Some(shared) = &screen {
        let display = setup.display.clone().or_else(|| std::env::var("DISPLAY").ok()).unwrap_or_default();
        emit(AgentEvent::Sharing(display)).await;
        // The layout message carries 16 monitors at most.
        let monitors = shared.monitors.iter().take(16).map(MonitorInfo::to_wire).collect();
        let _ = session.control.tx.send(&Control::ScreenLayout { monitors }).await;
    }
    let injector = screen.as_ref().and_then(|s| {
        open_injector(s, setup.display.as_deref(), !setup.view_only)
            .inspect_err(|e| tracing::warn!("{e}"))
            .ok()
    });
    let (news_tx, mut news) = mpsc::channel::<FileNews>(256);
    let (files, inbox_events) = Files::new(session.link.clone(), news_tx);
    let files = Arc::new(match setup.no_files {
        true => files,
        false => match open_inbox(setup.inbox.clone(), inbox_events) {
            Ok(inbox) => files.with_inbox(inbox),
            Err(e) => {
                tracing::warn!("{e}");
                files
            }
        },
    });
    if let Some(dir) = files.inbox_dir() {
        emit(AgentEvent::Inbox(dir.to_owned())).await;
    }
    serve_streams(session.link.clone(), injector.clone(), files.clone());
    let (copied_tx, mut copied) = mpsc::channel::<String>(4);
    let clipboard = match setup.no_clipboard || screen.is_none() {
        true => None,
        false => share_clipboard(setup.display.as_deref(), copied_tx),
    };
    let mut permissions = Permissions {
        view: screen.is_some(),
        control: injector.is_some() && !setup.view_only,
        files: files.receiving(),
        clipboard: clipboard.is_some(),
    };
    let _ = session.control.tx.send(&Control::Permissions(permissions)).await;
    emit(AgentEvent::Permissions(permissions)).await;

    let mut peer_end: Option<EndReason> = None;
    let ending = loop {
        tokio::select! {
            // The technician's End comes before the connection closes: read it first.
            biased;
            msg = session.control.rx.recv() => match msg {
                Ok(Some(Control::SelectMonitor { id })) => {
                    if let Some(shared) = screen.as_ref().filter(|s| s.monitors.iter().any(|m| m.id == id)) {
                        shared.monitor.send_replace(id);
                        emit(AgentEvent::Monitor(id)).await;
                    }
                }
                Ok(Some(Control::End { reason })) => peer_end = Some(reason),
                Ok(Some(Control::Clipboard { text })) => {
                    if let Some(c) = &clipboard {
                        emit(AgentEvent::Clipboard { to_technician: false, bytes: text.len() }).await;
                        let _ = c.set(text);
                    }
                }
                Ok(Some(Control::Permissions(p))) => files.set_peer_takes(p.files),
                Ok(Some(_)) => {}
                // The control stream is gone: the session is ending.
                Ok(None) | Err(_) => break Ending::after(peer_end, session.link.closed().await),
            },
            Some(text) = copied.recv() => {
                emit(AgentEvent::Clipboard { to_technician: true, bytes: text.len() }).await;
                let _ = session.control.tx.send(&Control::Clipboard { text }).await;
            }
            Some(item) = news.recv() => { emit(AgentEvent::File(item)).await; }
            why = session.link.closed() => break Ending::after(peer_end, why),
            command = commands.recv() => match command {
                Some(AgentCommand::AllowControl(on)) => {
                    if let Some(handle) = &injector {
                        let _ = handle.command(crate::input::Command::Allow(on)).await;
                        permissions.control = on;
                        let _ = session.control.tx.send(&Control::Permissions(permissions)).await;
                        emit(AgentEvent::Permissions(permissions)).await;
                    }
                }
                Some(AgentCommand::AllowFiles(on)) => {
                    if files.inbox_dir().is_some() {
                        files.set_receiving(on);
                        permissions.files = on;
                        let _ = session.control.tx.send(&Control::Permissions(permissions)).await;
                        emit(AgentEvent::Permissions(permissions)).await;
                    }
                }
                Some(AgentCommand::SendFiles(paths)) if !setup.no_files => match files.send(paths) {
                    Ok((_, skipped)) if !skipped.is_empty() => { emit(AgentEvent::Skipped(skipped)).await; }
                    Ok(_) => {}
                    Err(e) => { emit(AgentEvent::DropRefused(e)).await; }
                },
                Some(AgentCommand::CancelTransfer(t)) => files.cancel(t),
                Some(AgentCommand::End) | None => {
                    session.end(EndReason::CustomerEnded).await;
                    break Ending::Here;
                }
                Some(_) => {}
            },
        }
    };
    // Whatever is held is released when the injection thread's last handle goes.
    drop(injector);
    if let Some(screen) = screen {
        screen.task.abort();
    }
    // Files' last words (a failure when the session went mid-file).
    while let Ok(item) = news.try_recv() {
        emit(AgentEvent::File(item)).await;
    }
    ending
}

/// The customer's choices on the command line (the window asks instead).
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// How the agent is set up.
    pub setup: AgentSetup,
    /// Technician name (case-insensitive) or fingerprint.
    pub staff: String,
    /// What the customer typed as name or customer number.
    pub label: String,
    /// End the session right after it stands (scripted tests).
    pub end_after_connect: bool,
    /// End the session after this long (scripted tests, the headless demo).
    pub end_after: Option<Duration>,
    /// Files and folders to send to the technician once connected.
    pub send_files: Vec<PathBuf>,
}

fn choose<'a>(staff: &'a [StaffEntry], wanted: &str) -> Option<&'a StaffEntry> {
    let fp = wanted.parse().ok();
    staff.iter().find(|s| Some(s.fingerprint) == fp || s.name.eq_ignore_ascii_case(wanted.trim()))
}

/// Runs the agent without a window: asks `options.staff`, prints what
/// happens, ends on a signal or the scripted deadline.
pub async fn run(options: AgentOptions) -> anyhow::Result<()> {
    let (commands, command_rx) = mpsc::channel(16);
    let (event_tx, mut events) = mpsc::channel(256);
    let driver = tokio::spawn(drive(options.setup.clone(), command_rx, event_tx));
    let mut deadline: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(std::future::pending());
    let mut asked = false;
    let result = loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = super::shutdown_signal() => { let _ = commands.send(AgentCommand::End).await; continue; }
            _ = &mut deadline => {
                deadline = Box::pin(std::future::pending());
                let _ = commands.send(AgentCommand::End).await;
                continue;
            }
        };
        let Some(event) = event else { break Ok(()) };
        match event {
            AgentEvent::Staff(entries) => {
                for s in &entries {
                    say!("staff: {} ({:?})", s.name, s.presence);
                }
                if asked {
                    continue;
                }
                let Some(chosen) = choose(&entries, &options.staff) else {
                    break Err(anyhow::anyhow!("no technician called {:?}", options.staff));
                };
                if chosen.presence == Presence::Offline {
                    break Err(anyhow::anyhow!("{} is offline", chosen.name));
                }
                asked = true;
                let _ = commands
                    .send(AgentCommand::Request { staff: chosen.fingerprint, label: options.label.clone() })
                    .await;
            }
            AgentEvent::Waiting { technician } => say!("waiting for {technician} to accept"),
            AgentEvent::Refused { technician, reason } => {
                break Err(anyhow::anyhow!("{technician}: {}", refusal_text(reason)))
            }
            AgentEvent::TryingTcp | AgentEvent::Cancelled | AgentEvent::Connecting { .. } => {}
            AgentEvent::Connected { code, path, setup, .. } => {
                say!("connected: {path} setup_ms={:.1} code={code}", setup.as_secs_f64() * 1e3);
                if options.end_after_connect {
                    let _ = commands.send(AgentCommand::End).await;
                } else if let Some(after) = options.end_after {
                    deadline = Box::pin(tokio::time::sleep(after));
                }
                if !options.send_files.is_empty() {
                    let _ = commands.send(AgentCommand::SendFiles(options.send_files.clone())).await;
                }
            }
            AgentEvent::Permissions(p) => say!(
                "technician may: see the screen {}, control {}, clipboard {}, files {}",
                yes(p.view),
                yes(p.control),
                yes(p.clipboard),
                yes(p.files)
            ),
            AgentEvent::Sharing(display) => say!("sharing display {display}"),
            AgentEvent::Inbox(dir) => say!("files received go to {}", dir.display()),
            AgentEvent::File(news) => {
                if let Some(line) = describe(&news) {
                    say!("{line}");
                }
            }
            AgentEvent::Skipped(paths) => {
                for p in paths {
                    say!("not sent (a link or special file): {}", p.display());
                }
            }
            AgentEvent::DropRefused(why) => say!("cannot send: {why}"),
            AgentEvent::Monitor(id) => say!("technician shows monitor {id}"),
            AgentEvent::Clipboard { to_technician: true, bytes } => {
                say!("clipboard to the technician: {bytes} bytes")
            }
            AgentEvent::Clipboard { to_technician: false, bytes } => {
                say!("clipboard from the technician: {bytes} bytes")
            }
            AgentEvent::Ended(ending) => say!("session ended: {ending}"),
            AgentEvent::Failed(failure) => break Err(anyhow::Error::new(failure)),
        }
    };
    if result.is_err() {
        let _ = commands.send(AgentCommand::End).await;
    }
    drop(commands);
    let _ = driver.await;
    if !asked && result.is_ok() {
        bail!("the company server sent no staff list");
    }
    result
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
