//! The viewer without a window, for scripts, tests and the lab: accepts
//! (or declines) every request, prints what happens, does what the options
//! script (type, send files, measure), and saves the last picture.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use tokio::sync::mpsc;

use super::{drive, SessionView, ViewerCommand, ViewerEvent, ViewerSetup};
use crate::net::Identity;
use crate::roles::files::describe;
use crate::roles::{say, Ending};
use crate::screen::stream::{Frame, ScreenReceiver};

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
/// has come (so the technician, like a person, acts on what is shown) and
/// the customer's yes is known here: the picture and the yes travel on
/// different streams, and input made before the yes arrives is dropped.
async fn type_when_shown(view: SessionView, text: String) {
    let (mut image, mut allowed) = (view.screen.image.clone(), view.allowed.clone());
    if image.wait_for(|f| f.is_some()).await.is_err()
        || allowed.wait_for(|yes| *yes).await.is_err()
        || view.type_line(&text).is_err()
    {
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
    use crate::roles::probe;
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
    let Some(Frame { seq: updates, monitor, image, .. }) = screen.image.borrow().clone() else {
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
            _ = crate::roles::shutdown_signal() => { send(ViewerCommand::Quit).await; continue; }
        };
        let Some(event) = event else { break Ok(()) };
        match event {
            ViewerEvent::SignedIn { fingerprint } => {
                say!("signed in as {} ({fingerprint})", options.setup.name)
            }
            ViewerEvent::CompanyServerLost { retry_in, why } => {
                say!(
                    "the company server went away ({why}); signing in again in {:.1} s",
                    retry_in.as_secs_f64()
                )
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
            ViewerEvent::PathStalled(true) => {
                say!("the connection to the customer is interrupted; restoring it")
            }
            ViewerEvent::PathStalled(false) => say!("the connection to the customer is back"),
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
