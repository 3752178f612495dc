//! The agent without a window, for scripts, tests and the lab: asks the
//! technician named on the command line and prints what happens. The
//! customer's yes comes from an explicit `--allow` or from the terminal,
//! never by default.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use lifebuoy_proto::rendezvous::{Presence, StaffEntry};
use tokio::sync::mpsc;

use super::{drive, refusal_text, AgentCommand, AgentEvent, AgentSetup, Offer};
use crate::roles::files::describe;
use crate::roles::say;

/// How the headless agent answers "let the technician in?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    /// Yes, at once (`--allow`: scripts and tests that stand for the customer).
    Allow,
    /// Ask on the terminal: "ja" or "yes" allows, anything else refuses.
    Ask,
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
    /// Who says yes.
    pub consent: Consent,
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
            _ = crate::roles::shutdown_signal() => { let _ = commands.send(AgentCommand::End).await; continue; }
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
            AgentEvent::CompanyServerLost { retry_in, request_lost } => {
                say!("the company server went away; signing in again in {:.1} s", retry_in.as_secs_f64());
                // Asked again once the list is back.
                if request_lost.is_some() {
                    asked = false;
                }
            }
            AgentEvent::Connected { technician, code, path, setup, offer, .. } => {
                say!("connected: {path} setup_ms={:.1} code={code}", setup.as_secs_f64() * 1e3);
                if options.end_after_connect {
                    let _ = commands.send(AgentCommand::End).await;
                    continue;
                }
                match options.consent {
                    Consent::Allow => {
                        let _ = commands.send(AgentCommand::Allow(offer.choice)).await;
                    }
                    // Asked aside: the technician may give up meanwhile.
                    Consent::Ask => {
                        let commands = commands.clone();
                        tokio::spawn(async move {
                            let _ = commands.send(ask(&technician, &code, offer).await).await;
                        });
                    }
                }
            }
            AgentEvent::Allowed(_) => {
                say!("allowed");
                if let Some(after) = options.end_after {
                    deadline = Box::pin(tokio::time::sleep(after));
                }
                if !options.send_files.is_empty() {
                    let _ = commands.send(AgentCommand::SendFiles(options.send_files.clone())).await;
                }
            }
            AgentEvent::Denied => say!("not allowed: the technician was not let in"),
            AgentEvent::ClipboardToTechnician(on) => {
                say!("what you copy goes to the technician: {}", yes(on))
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

/// Asks on the terminal; no answer (no terminal, end of input) is no.
async fn ask(technician: &str, code: &str, offer: Offer) -> AgentCommand {
    say!(
        "{technician} wants to see your screen{}. Compare the code {code} with what {technician} reads out.",
        if offer.choice.control { " and use your mouse and keyboard" } else { "" }
    );
    say!("Allow? Type ja or yes and Enter; anything else refuses.");
    // A thread of its own, never joined: a terminal nobody answers must not
    // keep the program from exiting when the session ends another way.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = tx.send(std::io::stdin().lock().read_line(&mut line).map(|_| line));
    });
    match rx.await {
        Ok(Ok(line)) if matches!(line.trim().to_lowercase().as_str(), "ja" | "j" | "yes" | "y") => {
            AgentCommand::Allow(offer.choice)
        }
        _ => AgentCommand::Deny,
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
