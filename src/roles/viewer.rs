//! The technician's side without a window: sign in with the long-lived
//! key, answer requests, connect by the best path, hold each session.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use lifebuoy_proto::control::{Control, EndReason};
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy_proto::Role;

use super::say;
use super::CompanyServer;
use crate::net::candidates::host_candidates;
use crate::net::punch::connect_peer;
use crate::net::Identity;
use crate::screen::stream::{Frame, ScreenReceiver};
use crate::session::{IncomingStream, LocalSide};

/// How the headless viewer behaves.
#[derive(Clone, Debug)]
pub struct ViewerOptions {
    /// The company's server.
    pub server: CompanyServer,
    /// The technician's name as shown to the customer.
    pub name: String,
    /// Accept every request (scripted tests); otherwise decline them.
    pub accept: bool,
    /// Exit after this many sessions (0: never).
    pub sessions: u32,
    /// Where to write the last screen image of each session (PPM).
    pub screenshot: Option<std::path::PathBuf>,
    /// The customer's monitor to show, if not the first.
    pub monitor: Option<u8>,
    /// Text to type on the customer's machine (then Enter) once the screen
    /// shows (scripted tests and the demo).
    pub type_text: Option<String>,
    /// Text to put on the customer's clipboard once the screen shows.
    pub clipboard: Option<String>,
    /// Where received files go (default: Downloads/lifebuoy).
    pub inbox: Option<std::path::PathBuf>,
    /// Files and folders to send to the customer once connected.
    pub send_files: Vec<std::path::PathBuf>,
}

/// Hands the peer's streams to whoever handles them.
async fn route_streams(
    link: crate::session::Link,
    screen: Arc<ScreenReceiver>,
    inbox: Option<Arc<crate::transfer::Inbox>>,
) {
    while let Ok(stream) = link.accept().await {
        match stream {
            IncomingStream::Screen(s) => {
                let screen = screen.clone();
                tokio::spawn(async move {
                    if let Err(e) = screen.take(s).await {
                        tracing::debug!("screen stream: {e}");
                    }
                });
            }
            IncomingStream::File(mut f) => match &inbox {
                Some(inbox) => super::files::receive(f, inbox.clone()),
                None => f.stop(crate::transfer::receiver::STOP_REFUSED),
            },
            IncomingStream::Input(mut i) => i.stop(lifebuoy_proto::close::STREAM_PROTOCOL_ERROR),
        }
    }
}

/// Types `text` and Enter on the customer's machine once the first picture
/// has come (so the technician, like a person, acts on what is shown).
async fn type_when_shown(link: crate::session::Link, screen: Arc<ScreenReceiver>, text: String) {
    use lifebuoy_proto::input::{Input, Modifiers};
    let mut image = screen.image.clone();
    if image.wait_for(|f| f.is_some()).await.is_err() {
        return;
    }
    let sender = crate::input::InputSender::start(link);
    let enter = |pressed| Input::Key { physical: 0x28, logical: None, pressed, modifiers: Modifiers(0) };
    for input in [Input::Text { text: text.clone() }, enter(true), enter(false)] {
        if sender.send(input).is_err() {
            return;
        }
    }
    say!("typed {text:?}");
    // Keep the stream open until the session ends (closing it would release keys).
    std::future::pending::<()>().await;
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

/// Runs the viewer.
pub async fn run(identity: Identity, options: ViewerOptions) -> anyhow::Result<()> {
    let identity = Arc::new(identity);
    let local = LocalSide {
        identity,
        role: Role::Viewer,
        name: options.name.clone(),
        capabilities: Capabilities::default(),
    };
    let (endpoint, mut rv) = super::sign_in(&options.server, &local).await?;
    say!("signed in as {} ({})", options.name, local.identity.fingerprint());
    let mut served = 0;
    loop {
        let msg = tokio::select! {
            m = rv.recv() => m?,
            _ = super::shutdown_signal() => { rv.close(); return Ok(()); }
        };
        match msg {
            Some(FromRendezvous::Incoming { request, label, agent }) => {
                say!("request {request} from {label:?} ({})", agent.short());
                if !options.accept {
                    rv.send(&ToRendezvous::Decline { request }).await?;
                    continue;
                }
                let accepted = Instant::now();
                let port = endpoint.local_addr().port();
                rv.send(&ToRendezvous::Accept { request, candidates: host_candidates(port) }).await?;
                let go = loop {
                    match rv.recv().await? {
                        Some(FromRendezvous::Go(go)) if go.request == request => break Some(go),
                        Some(FromRendezvous::Withdrawn { request: r }) if r == request => {
                            say!("request {request} was withdrawn");
                            break None;
                        }
                        Some(_) => continue,
                        None => bail!("the company server ended the connection"),
                    }
                };
                let Some(go) = go else { continue };
                let relay = options.server.relay(go.relay_port);
                match connect_peer(&endpoint, &local, &go, relay).await {
                    Ok(link) => {
                        say!(
                            "connected: {} accept_to_session_ms={:.1} code={}",
                            link.summary(),
                            accepted.elapsed().as_secs_f64() * 1e3,
                            link.session.peer.code
                        );
                        let mut session = link.session;
                        let screen = Arc::new(ScreenReceiver::start());
                        let inbox = super::files::inbox(options.inbox.clone());
                        let streams =
                            tokio::spawn(route_streams(session.link.clone(), screen.clone(), inbox.clone()));
                        if !options.send_files.is_empty() {
                            super::files::send_paths(session.link.clone(), options.send_files.clone());
                        }
                        let typing = options.type_text.clone().map(|text| {
                            tokio::spawn(type_when_shown(session.link.clone(), screen.clone(), text))
                        });
                        let ended_here = loop {
                            tokio::select! {
                                why = session.link.closed() => {
                                    say!("session ended: {why}");
                                    break false;
                                }
                                msg = session.control.rx.recv() => match msg {
                                    Ok(Some(Control::ScreenLayout { monitors })) => {
                                        for m in &monitors {
                                            say!(
                                                "monitor {}: {:?} {}x{} at {},{}{}",
                                                m.id, m.name, m.width, m.height, m.x, m.y,
                                                if m.primary { " (primary)" } else { "" }
                                            );
                                        }
                                        if let Some(id) = options.monitor {
                                            session.control.tx.send(&Control::SelectMonitor { id }).await?;
                                        }
                                        if let Some(text) = options.clipboard.clone() {
                                            session.control.tx.send(&Control::Clipboard { text }).await?;
                                        }
                                    }
                                    Ok(Some(Control::End { reason })) => say!("customer ends the session ({reason:?})"),
                                    Ok(Some(Control::Clipboard { text })) => {
                                        say!("clipboard from the customer: {} bytes", text.len());
                                    }
                                    Ok(Some(Control::Permissions(p))) => say!(
                                        "customer allows: see the screen {}, control {}",
                                        if p.view { "yes" } else { "no" },
                                        if p.control { "yes" } else { "no" }
                                    ),
                                    Ok(Some(_)) => {}
                                    Ok(None) | Err(_) => {
                                        let why = session.link.closed().await;
                                        say!("session ended: {why}");
                                        break false;
                                    }
                                },
                                _ = super::shutdown_signal() => {
                                    session.end(EndReason::TechnicianEnded).await;
                                    break true;
                                }
                            }
                        };
                        streams.abort();
                        if let Some(t) = typing {
                            t.abort();
                        }
                        report_screen(&screen, options.screenshot.as_deref());
                        if ended_here {
                            rv.close();
                            endpoint.quic.wait_idle().await;
                            return Ok(());
                        }
                    }
                    Err(e) => say!("could not reach the customer: {e}"),
                }
                rv.send(&ToRendezvous::SetBusy { busy: false }).await.context("signing back in")?;
                served += 1;
                if options.sessions != 0 && served >= options.sessions {
                    rv.close();
                    endpoint.quic.wait_idle().await;
                    return Ok(());
                }
            }
            Some(_) => {}
            None => bail!("the company server ended the connection"),
        }
    }
}
