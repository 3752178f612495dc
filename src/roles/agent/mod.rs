//! The customer's side: sign in with a fresh key, list the staff, request
//! one technician, connect by the best path, ask the customer (with the
//! code in front of them) whether to let the technician in, share, and
//! hold the session until either side ends it. [`drive`] takes the
//! customer's commands and reports events: the window renders them, and
//! [`run`] (headless, for scripts and the lab) prints them.

mod headless;
mod share;

pub use headless::{run, AgentOptions, Consent};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifebuoy_proto::control::Permissions;
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, Refusal, StaffEntry, ToRendezvous};
use lifebuoy_proto::{Fingerprint, Role};
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::files::{DropRefused, FileNews};
use super::path::{Keeper, Keeping, Kept};
use super::{CompanyServer, Ending, Failure};
use crate::audit::{file_record, permissions_record, AuditLog, Record};
use crate::net::candidates::host_candidates;
use crate::net::punch::connect_peer;
use crate::net::socket::PeerEndpoint;
use crate::net::Identity;
use crate::rendezvous::client::RendezvousClient;
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
    /// Whether what the customer copies goes to the technician when the
    /// session starts (the company's choice when packing; the customer
    /// can switch it). Text from the technician is taken either way.
    pub clipboard_to_technician: bool,
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
    /// Let the technician in, with what the customer chose to allow.
    Allow(Choice),
    /// Do not let the technician in: the session ends.
    Deny,
    /// Switch remote control on or off.
    AllowControl(bool),
    /// Switch receiving files on or off.
    AllowFiles(bool),
    /// Switch sending what the customer copies to the technician on or off.
    AllowClipboard(bool),
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
    /// The company server went away; the next try to sign in again comes
    /// after this wait.
    CompanyServerLost {
        /// The wait.
        retry_in: Duration,
        /// The technician whose request went with it, if one was waiting.
        request_lost: Option<String>,
    },
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
    /// The connection stands; nothing is shared until the customer allows
    /// it (`AgentCommand::Allow`) or refuses (`AgentCommand::Deny`).
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
        /// The switches as the customer is asked: what the setup allows.
        offer: Offer,
    },
    /// The customer said yes: sharing starts.
    Allowed(Choice),
    /// The customer said no: nothing was shared, the session ends.
    Denied,
    /// Whether what the customer copies goes to the technician, now.
    ClipboardToTechnician(bool),
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

/// What the customer lets the technician do, chosen when asked and
/// switchable during the session. Seeing the screen comes with saying yes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    /// Move the mouse and type.
    pub control: bool,
    /// Send files to the customer.
    pub files: bool,
    /// Receive what the customer copies.
    pub clipboard_to_technician: bool,
}

/// What the customer is asked: the switches as first shown, and which of
/// them the setup lets the customer turn on at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The switches as first shown.
    pub choice: Choice,
    /// Files can be allowed (not with `no_files`).
    pub files: bool,
    /// The clipboard can be shared (not with `no_clipboard`).
    pub clipboard: bool,
}

impl AgentSetup {
    /// What the customer is first asked.
    pub fn offer(&self) -> Offer {
        Offer {
            choice: Choice {
                control: !self.view_only,
                files: !self.no_files,
                clipboard_to_technician: self.clipboard_to_technician && !self.no_clipboard,
            },
            files: !self.no_files,
            clipboard: !self.no_clipboard,
        }
    }
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
        AgentEvent::Allowed(choice) => Some(Record::Consent {
            allowed: true,
            control: choice.control,
            files: choice.files,
            clipboard_to_technician: choice.clipboard_to_technician,
        }),
        AgentEvent::Denied => Some(Record::Consent {
            allowed: false,
            control: false,
            files: false,
            clipboard_to_technician: false,
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
    // The first sign-in's failure is the customer's to see (the window
    // says what to check); after that the agent signs in again by itself.
    let (mut endpoint, mut rv) = super::sign_in(&setup.server, &local, tcp).await?;
    let emit = |e| async { events.send(e).await.is_ok() };
    let mut backoff = Backoff::default();
    let mut listed = rv.send(&ToRendezvous::ListStaff).await.map_err(Failure::company);

    // The list, and requests until one is accepted.
    let mut staff: Vec<StaffEntry> = Vec::new();
    let mut asked: Option<StaffEntry> = None;
    let (go, technician) = loop {
        if let Err(lost) = listed {
            let request_lost = asked.take().map(|t| t.name);
            match sign_in_again(setup, &local, commands, events, lost, request_lost, &mut backoff).await? {
                Some((e, r)) => (endpoint, rv) = (e, r),
                None => return Ok(Ending::Here),
            }
            listed = rv.send(&ToRendezvous::ListStaff).await.map_err(Failure::company);
            continue;
        }
        tokio::select! {
            msg = rv.recv() => match msg {
                Err(e) => listed = Err(Failure::company(e)),
                Ok(None) => listed = Err(Failure::CompanyServerGone(String::new())),
                Ok(Some(FromRendezvous::Staff { entries })) => {
                    staff = entries.clone();
                    emit(AgentEvent::Staff(entries)).await;
                }
                // Only the technician the customer asked, and the window
                // names: a late go from one the customer cancelled is not it.
                Ok(Some(FromRendezvous::Go(go))) => match asked.take() {
                    Some(t) if t.fingerprint == go.peer => break (go, t),
                    other => {
                        tracing::warn!("the company server sent a go for a technician not asked; ignored");
                        asked = other;
                    }
                },
                Ok(Some(FromRendezvous::Refused { reason })) => {
                    if let Some(t) = asked.take() {
                        emit(AgentEvent::Refused { technician: t.name, reason }).await;
                    }
                }
                Ok(Some(_)) => {}
            },
            command = commands.recv() => match command {
                Some(AgentCommand::Request { staff: fp, label }) if asked.is_none() => {
                    let Some(entry) = staff.iter().find(|s| s.fingerprint == fp).cloned() else {
                        emit(AgentEvent::Refused { technician: fp.short(), reason: Refusal::UnknownStaff }).await;
                        continue;
                    };
                    local.name = label.clone();
                    let port = endpoint.local_addr().port();
                    let request = ToRendezvous::Request { staff: fp, label, candidates: host_candidates(port) };
                    listed = rv.send(&request).await.map_err(Failure::company);
                    emit(AgentEvent::Waiting { technician: entry.name.clone() }).await;
                    asked = Some(entry);
                }
                Some(AgentCommand::Cancel) if asked.is_some() => {
                    listed = rv.send(&ToRendezvous::Cancel).await.map_err(Failure::company);
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
    // The server is needed again only if a NAT moves one side.
    let keeping = Keeping::start(Keeper::of(&link, &endpoint, &go, relay), rv);
    emit(AgentEvent::Connected {
        technician: technician.name.clone(),
        fingerprint: link.session.peer.fingerprint,
        code: link.session.peer.code.to_string(),
        path: link.summary(),
        setup: started.elapsed(),
        offer: setup.offer(),
    })
    .await;
    let ending = match share::consent(link.session, commands).await {
        share::Asked::Allowed(session, choice) => {
            share::hold(setup, *session, choice, commands, events).await
        }
        share::Asked::Over(ending) => {
            if ending == Ending::Declined {
                emit(AgentEvent::Denied).await;
            }
            ending
        }
    };
    // The relay may forget the pair now (the path may have been direct).
    if let Some(relay) = relay {
        endpoint.release_relay(relay, go.relay_token);
    }
    if let Kept::Over(rv) = keeping.stop().await {
        rv.close();
    }
    endpoint.quic.wait_idle().await;
    Ok(ending)
}

/// Signs in again after the company server went away (`lost`), waiting
/// with back-off; with the same key, so the customer stays who they were.
/// `None` when the customer quits meanwhile.
async fn sign_in_again(
    setup: &AgentSetup,
    local: &LocalSide,
    commands: &mut mpsc::Receiver<AgentCommand>,
    events: &mpsc::Sender<AgentEvent>,
    mut lost: Failure,
    mut request_lost: Option<String>,
    backoff: &mut Backoff,
) -> Result<Option<(PeerEndpoint, RendezvousClient)>, Failure> {
    loop {
        tracing::info!("the company server went away ({lost}); signing in again");
        let retry_in = backoff.next(rand::random());
        let _ =
            events.send(AgentEvent::CompanyServerLost { retry_in, request_lost: request_lost.take() }).await;
        let again = async {
            tokio::time::sleep(retry_in).await;
            super::sign_in(&setup.server, local, || ()).await
        };
        tokio::select! {
            result = again => match result {
                Ok(signed_in) => {
                    backoff.reset();
                    return Ok(Some(signed_in));
                }
                // The server it reached refused: trying on cannot help.
                Err(f @ Failure::Refused(_)) => return Err(f),
                Err(f) => lost = f,
            },
            command = commands.recv() => match command {
                Some(AgentCommand::End) | None => return Ok(None),
                Some(_) => {}
            },
        }
    }
}

/// Waits until the customer quits (the rest is ignored while connecting).
async fn wait_for_end(commands: &mut mpsc::Receiver<AgentCommand>) {
    while let Some(c) = commands.recv().await {
        if c == AgentCommand::End {
            return;
        }
    }
}
