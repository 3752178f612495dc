//! The customer's side without a window: sign in with a fresh key, pick a
//! technician, request, connect by the best path, hold the session.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use lifebuoy_proto::control::{Control, EndReason, Permissions};
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, Presence, Refusal, StaffEntry, ToRendezvous};
use lifebuoy_proto::Role;

use super::say;
use super::CompanyServer;
use crate::net::candidates::host_candidates;
use crate::net::punch::connect_peer;
use crate::net::Identity;
use crate::screen::capture::MonitorInfo;
use crate::session::LocalSide;

/// What the customer chose.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The company's server.
    pub server: CompanyServer,
    /// Technician name (case-insensitive) or fingerprint.
    pub staff: String,
    /// What the customer typed as name or customer number.
    pub label: String,
    /// End the session right after it stands (scripted tests).
    pub end_after_connect: bool,
    /// End the session after this long (scripted tests, the headless demo).
    pub end_after: Option<std::time::Duration>,
    /// The X display to share (`None`: `$DISPLAY`, if set).
    pub display: Option<String>,
    /// Let the technician see but not control.
    pub view_only: bool,
    /// Do not exchange clipboard text.
    pub no_clipboard: bool,
    /// Refuse files, send none.
    pub no_files: bool,
    /// Where received files go (default: Downloads/lifebuoy).
    pub inbox: Option<std::path::PathBuf>,
    /// Files and folders to send to the technician once connected.
    pub send_files: Vec<std::path::PathBuf>,
}

/// Why no technician could be reached, in the customer's words.
fn refusal_text(reason: Refusal) -> &'static str {
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

fn choose<'a>(staff: &'a [StaffEntry], wanted: &str) -> Option<&'a StaffEntry> {
    let fp = wanted.parse().ok();
    staff.iter().find(|s| Some(s.fingerprint) == fp || s.name.eq_ignore_ascii_case(wanted.trim()))
}

/// Runs the agent until the session ends.
pub async fn run(options: AgentOptions) -> anyhow::Result<()> {
    // A fresh key, never written anywhere: after exit nothing can reconnect.
    let identity = Arc::new(Identity::generate("lifebuoy agent")?);
    let local = LocalSide {
        identity,
        role: Role::Agent,
        name: options.label.clone(),
        capabilities: Capabilities::default(),
    };
    let (endpoint, mut rv) = super::sign_in(&options.server, &local).await?;
    rv.send(&ToRendezvous::ListStaff).await?;
    let staff = loop {
        match rv.recv().await? {
            Some(FromRendezvous::Staff { entries }) => break entries,
            Some(_) => continue,
            None => bail!("the company server ended the connection"),
        }
    };
    for s in &staff {
        say!("staff: {} ({:?})", s.name, s.presence);
    }
    let Some(chosen) = choose(&staff, &options.staff) else {
        bail!("no technician called {:?}", options.staff)
    };
    if chosen.presence == Presence::Offline {
        bail!("{} is offline", chosen.name);
    }
    let port = endpoint.local_addr().port();
    rv.send(&ToRendezvous::Request {
        staff: chosen.fingerprint,
        label: options.label.clone(),
        candidates: host_candidates(port),
    })
    .await?;
    say!("waiting for {} to accept", chosen.name);
    let go = loop {
        match rv.recv().await? {
            Some(FromRendezvous::Go(go)) => break go,
            Some(FromRendezvous::Refused { reason }) => bail!("{}: {}", chosen.name, refusal_text(reason)),
            Some(_) => continue,
            None => bail!("the company server ended the connection"),
        }
    };
    let started = Instant::now();
    let relay = options.server.relay(go.relay_port);
    let link = connect_peer(&endpoint, &local, &go, relay).await.context("cannot reach the technician")?;
    // Nothing more to ask the server: the session is between the two now.
    rv.close();
    say!(
        "connected: {} setup_ms={:.1} code={}",
        link.summary(),
        started.elapsed().as_secs_f64() * 1e3,
        link.session.peer.code
    );
    let session = link.session;
    if options.end_after_connect {
        session.end(EndReason::CustomerEnded).await;
        endpoint.quic.wait_idle().await;
        return Ok(());
    }
    let mut session = session;
    let screen = share_screen(&session, options.display.as_deref());
    if let Some(shared) = &screen {
        // The layout message carries 16 monitors at most.
        let monitors = shared.monitors.iter().take(16).map(MonitorInfo::to_wire).collect();
        session.control.tx.send(&Control::ScreenLayout { monitors }).await?;
    }
    let inbox = if options.no_files { None } else { super::files::inbox(options.inbox.clone()) };
    let control =
        take_input(&session, screen.as_ref(), options.display.as_deref(), !options.view_only, inbox.clone());
    if !options.send_files.is_empty() && inbox.is_some() {
        super::files::send_paths(session.link.clone(), options.send_files.clone());
    }
    let (copied_tx, mut copied) = tokio::sync::mpsc::channel::<String>(4);
    let clipboard = if options.no_clipboard || screen.is_none() {
        None
    } else {
        share_clipboard(options.display.as_deref(), copied_tx)
    };
    let permissions = Permissions {
        view: screen.is_some(),
        control: control.is_some(),
        files: inbox.is_some(),
        clipboard: clipboard.is_some(),
    };
    session.control.tx.send(&Control::Permissions(permissions)).await?;
    say!(
        "technician may: see the screen {}, control {}, clipboard {}, files {}",
        if permissions.view { "yes" } else { "no" },
        if permissions.control { "yes" } else { "no" },
        if permissions.clipboard { "yes" } else { "no" },
        if permissions.files { "yes" } else { "no" }
    );
    let deadline = async {
        match options.end_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            why = session.link.closed() => {
                say!("session ended: {why}");
                break;
            }
            msg = session.control.rx.recv() => match msg {
                Ok(Some(Control::SelectMonitor { id })) => match &screen {
                    Some(shared) if shared.monitors.iter().any(|m| m.id == id) => {
                        say!("technician shows monitor {id}");
                        shared.monitor.send_replace(id);
                    }
                    _ => say!("technician asked for monitor {id}, which does not exist"),
                },
                Ok(Some(Control::End { reason })) => say!("technician ends the session ({reason:?})"),
                Ok(Some(Control::Clipboard { text })) => match &clipboard {
                    Some(c) => {
                        say!("clipboard from the technician: {} bytes", text.len());
                        let _ = c.set(text);
                    }
                    None => say!("clipboard from the technician refused (not allowed)"),
                },
                Ok(Some(_)) => {}
                // The control stream is gone: the session is ending.
                Ok(None) | Err(_) => {
                    let why = session.link.closed().await;
                    say!("session ended: {why}");
                    break;
                }
            },
            Some(text) = copied.recv() => {
                say!("clipboard to the technician: {} bytes", text.len());
                session.control.tx.send(&Control::Clipboard { text }).await?;
            }
            _ = super::shutdown_signal() => {
                session.end(EndReason::CustomerEnded).await;
                break;
            }
            _ = &mut deadline => {
                session.end(EndReason::CustomerEnded).await;
                break;
            }
        }
    }
    if let Some(screen) = screen {
        if let Ok(Ok(stats)) = screen.task.await {
            say!(
                "screen: {} updates, {} bytes, {} frames captured",
                stats.updates,
                stats.bytes,
                stats.captured
            );
        }
    }
    endpoint.quic.wait_idle().await;
    Ok(())
}

/// Serves the technician's streams: input applied (when allowed), files
/// received into `inbox` (when allowed); refused otherwise. The returned
/// handle's thread releases every held key when the session is gone.
fn take_input(
    session: &crate::session::Session,
    screen: Option<&SharedScreen>,
    display: Option<&str>,
    allowed: bool,
    inbox: Option<std::sync::Arc<crate::transfer::Inbox>>,
) -> Option<crate::input::InjectorHandle> {
    use crate::input::{receive_input, Injector, InjectorHandle};
    use crate::session::IncomingStream;
    let injector = match screen {
        Some(shared) if allowed => {
            let display = display.map(str::to_owned).or_else(|| std::env::var("DISPLAY").ok());
            match Injector::open(display.as_deref(), shared.monitors.clone(), true) {
                Ok(i) => Some(InjectorHandle::start(i)),
                Err(e) => {
                    say!("remote control unavailable: {e}");
                    None
                }
            }
        }
        _ => None,
    };
    let (link, handle) = (session.link.clone(), injector.clone());
    tokio::spawn(async move {
        while let Ok(stream) = link.accept().await {
            match (stream, &handle) {
                (IncomingStream::Input(s), Some(handle)) => {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if let Err(e) = receive_input(s, &handle).await {
                            tracing::debug!("input stream: {e}");
                        }
                    });
                }
                // View only: refused.
                (IncomingStream::Input(mut s), None) => s.stop(lifebuoy_proto::close::STREAM_PROTOCOL_ERROR),
                (IncomingStream::File(f), _) => match &inbox {
                    Some(inbox) => super::files::receive(f, inbox.clone()),
                    None => {
                        let mut f = f;
                        say!("a file from the technician was refused (file transfer is off)");
                        f.stop(crate::transfer::receiver::STOP_REFUSED);
                    }
                },
                (IncomingStream::Screen(mut s), _) => s.stop(lifebuoy_proto::close::STREAM_PROTOCOL_ERROR),
            }
        }
    });
    injector
}

/// The customer's clipboard, where there is one to share.
#[cfg(target_os = "linux")]
fn share_clipboard(
    display: Option<&str>,
    copied: tokio::sync::mpsc::Sender<String>,
) -> Option<crate::clipboard::Clipboard> {
    let display = display.map(str::to_owned).or_else(|| std::env::var("DISPLAY").ok())?;
    crate::clipboard::Clipboard::start(Some(&display), copied)
        .inspect_err(|e| say!("clipboard unavailable: {e}"))
        .ok()
}

/// No clipboard support on this system yet.
#[cfg(not(target_os = "linux"))]
fn share_clipboard(
    _display: Option<&str>,
    _copied: tokio::sync::mpsc::Sender<String>,
) -> Option<NoClipboard> {
    None
}

/// Stands in for the clipboard where there is none.
#[cfg(not(target_os = "linux"))]
struct NoClipboard;

#[cfg(not(target_os = "linux"))]
impl NoClipboard {
    fn set(&self, _text: String) -> Result<(), ()> {
        Ok(())
    }
}

/// The screen being shared.
struct SharedScreen {
    monitors: Vec<MonitorInfo>,
    /// Which monitor the technician sees.
    monitor: tokio::sync::watch::Sender<u8>,
    task: tokio::task::JoinHandle<Result<crate::screen::stream::SenderStats, crate::session::SessionError>>,
}

/// Starts sending the screen, if there is one to capture; the session goes
/// on without it otherwise.
fn share_screen(session: &crate::session::Session, display: Option<&str>) -> Option<SharedScreen> {
    #[cfg(target_os = "linux")]
    {
        use crate::screen::capture::Capture;
        let display = display.map(str::to_owned).or_else(|| std::env::var("DISPLAY").ok())?;
        match crate::screen::x11::X11Capture::open(Some(&display)) {
            Ok(capture) => {
                say!("sharing display {display}");
                let monitors = capture.monitors();
                let first = monitors.first().map_or(0, |m| m.id);
                let (monitor, chosen) = tokio::sync::watch::channel(first);
                let link = session.link.clone();
                let task = tokio::spawn(crate::screen::stream::send_screen(link, Box::new(capture), chosen));
                Some(SharedScreen { monitors, monitor, task })
            }
            Err(e) => {
                say!("screen sharing unavailable: {e}");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (session, display);
        None
    }
}
