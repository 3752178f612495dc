//! The session on the customer's side once it stands: first the question
//! (nothing is shared, no stream of the technician's is taken, until the
//! customer allows it with the code in front of them), then the sharing
//! itself until either side ends it.

use std::sync::Arc;

use lifebuoy_proto::close::STREAM_PROTOCOL_ERROR;
use lifebuoy_proto::control::{Control, EndReason, Permissions, MONITORS_MAX};
use tokio::sync::mpsc;

use super::{AgentCommand, AgentEvent, AgentSetup, Choice};
use crate::roles::files::{open_inbox, FileNews, Files};
use crate::roles::sharing::{open_injector, serve_streams, share_clipboard, share_screen};
use crate::roles::Ending;
use crate::screen::capture::MonitorInfo;
use crate::session::{IncomingStream, Link, Session};
use crate::transfer::receiver::STOP_REFUSED;

/// What the customer said.
pub(super) enum Asked {
    /// Yes, with these switches.
    Allowed(Box<Session>, Choice),
    /// The session is over before it began (no, the customer closed the
    /// window, or the technician gave up).
    Over(Ending),
}

enum Answer {
    Allow(Choice),
    Deny,
    Quit,
    Gone(Ending),
}

/// Waits for the customer's answer. Meanwhile every stream the technician
/// opens is refused: nothing of theirs is applied before the yes.
pub(super) async fn consent(mut session: Session, commands: &mut mpsc::Receiver<AgentCommand>) -> Asked {
    let refuser = tokio::spawn(refuse_streams(session.link.clone()));
    let mut peer_end = None;
    let answer = loop {
        tokio::select! {
            biased;
            msg = session.control.rx.recv() => match msg {
                Ok(Some(Control::End { reason })) => peer_end = Some(reason),
                // Nothing else means anything before the customer's yes.
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break Answer::Gone(Ending::after_control(peer_end, &session.link).await),
            },
            why = session.link.closed() => break Answer::Gone(Ending::after(peer_end, why)),
            command = commands.recv() => match command {
                Some(AgentCommand::Allow(choice)) => break Answer::Allow(choice),
                Some(AgentCommand::Deny) => break Answer::Deny,
                Some(AgentCommand::End) | None => break Answer::Quit,
                Some(_) => {}
            },
        }
    };
    refuser.abort();
    match answer {
        Answer::Allow(choice) => Asked::Allowed(Box::new(session), choice),
        Answer::Deny => {
            let reason = EndReason::CustomerDeclined.for_peer(session.peer.hello.version);
            session.end(reason).await;
            Asked::Over(Ending::Declined)
        }
        Answer::Quit => {
            session.end(EndReason::CustomerEnded).await;
            Asked::Over(Ending::Here)
        }
        Answer::Gone(ending) => Asked::Over(ending),
    }
}

/// Refuses every stream the technician opens until the task is stopped.
async fn refuse_streams(link: Link) {
    while let Ok(stream) = link.accept().await {
        match stream {
            IncomingStream::File(mut f) => f.stop(STOP_REFUSED),
            IncomingStream::Input(mut s) => s.stop(STREAM_PROTOCOL_ERROR),
            IncomingStream::Screen(mut s) => s.stop(STREAM_PROTOCOL_ERROR),
        }
    }
}

/// Shares what the customer allowed and holds the session until it ends.
pub(super) async fn hold(
    setup: &AgentSetup,
    mut session: Session,
    choice: Choice,
    commands: &mut mpsc::Receiver<AgentCommand>,
    events: &mpsc::Sender<AgentEvent>,
) -> Ending {
    let emit = |e| async { events.send(e).await.is_ok() };
    emit(AgentEvent::Allowed(choice)).await;
    let screen = share_screen(&session, setup.display.as_deref());
    if let Some(shared) = &screen {
        let display = setup.display.clone().or_else(|| std::env::var("DISPLAY").ok()).unwrap_or_default();
        emit(AgentEvent::Sharing(display)).await;
        let monitors = shared.monitors.iter().take(MONITORS_MAX).map(MonitorInfo::to_wire).collect();
        let _ = session.control.tx.send(&Control::ScreenLayout { monitors }).await;
    }
    let injector = screen.as_ref().and_then(|s| {
        open_injector(s, setup.display.as_deref(), choice.control).inspect_err(|e| tracing::warn!("{e}")).ok()
    });
    let (news_tx, mut news) = mpsc::channel::<FileNews>(256);
    let (files, inbox_events) = Files::new(session.link.clone(), news_tx, true);
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
    files.set_receiving(choice.files);
    if let Some(dir) = files.inbox_dir() {
        emit(AgentEvent::Inbox(dir.to_owned())).await;
    }
    let (copied_tx, mut copied) = mpsc::channel::<String>(4);
    let clipboard = match setup.no_clipboard || screen.is_none() {
        true => None,
        false => share_clipboard(setup.display.as_deref(), copied_tx),
    };
    let mut to_technician = choice.clipboard_to_technician && clipboard.is_some();
    emit(AgentEvent::ClipboardToTechnician(to_technician)).await;
    let mut permissions = Permissions {
        view: screen.is_some(),
        control: injector.is_some() && choice.control,
        files: files.receiving(),
        clipboard: clipboard.is_some(),
    };
    // The first Permissions tells the technician the customer said yes.
    let _ = session.control.tx.send(&Control::Permissions(permissions)).await;
    emit(AgentEvent::Permissions(permissions)).await;
    serve_streams(session.link.clone(), injector.clone(), files.clone());

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
                Ok(None) | Err(_) => break Ending::after_control(peer_end, &session.link).await,
            },
            Some(text) = copied.recv() => {
                // What the customer copies is theirs unless they share it.
                if to_technician {
                    emit(AgentEvent::Clipboard { to_technician: true, bytes: text.len() }).await;
                    let _ = session.control.tx.send(&Control::Clipboard { text }).await;
                }
            }
            Some(item) = news.recv() => { emit(AgentEvent::File(item)).await; }
            why = session.link.closed() => break Ending::after(peer_end, why),
            command = commands.recv() => match command {
                Some(AgentCommand::AllowControl(on)) => {
                    if let Some(handle) = &injector {
                        // At once: not behind the technician's queued input.
                        handle.set_allowed(on);
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
                Some(AgentCommand::AllowClipboard(on)) => {
                    if clipboard.is_some() {
                        to_technician = on;
                        emit(AgentEvent::ClipboardToTechnician(on)).await;
                    }
                }
                Some(AgentCommand::SendFiles(paths)) if !setup.no_files => match files.send(paths) {
                    Ok((_, skipped)) if !skipped.is_empty() => { emit(AgentEvent::Skipped(skipped)).await; }
                    Ok(_) => {}
                    Err(e) => { emit(AgentEvent::DropRefused(e)).await; }
                },
                Some(AgentCommand::CancelTransfer(t)) => files.cancel(t),
                Some(AgentCommand::End) | None => {
                    if let Some(handle) = &injector {
                        handle.set_allowed(false);
                    }
                    session.end(EndReason::CustomerEnded).await;
                    break Ending::Here;
                }
                Some(_) => {}
            },
        }
    };
    // Nothing more is injected; whatever is held is released when the
    // injection thread's last handle goes.
    if let Some(handle) = &injector {
        handle.set_allowed(false);
    }
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
