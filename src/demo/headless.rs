//! `lifebuoy demo --headless`: the whole story with no window, through the
//! same drivers the windows use, on a private Xvfb: the technician signs
//! in, the customer asks, the technician accepts, the screen comes, the
//! technician types into the customer's terminal, input -> photon is
//! timed on an idle and a busy screen, a file goes each way, the
//! technician ends and the agent is gone. Then a short report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use lifebuoy::net::Identity;
use lifebuoy::roles::agent::{AgentCommand, AgentEvent, AgentSetup};
use lifebuoy::roles::files::FileNews;
use lifebuoy::roles::probe::{self, Latencies};
use lifebuoy::roles::viewer::{SessionView, ViewerCommand, ViewerEvent, ViewerSetup};
use lifebuoy::roles::Ending;
use lifebuoy::transfer::TransferEvent;
use tokio::sync::mpsc;

use super::desktop::{Desktop, Drawn, TYPING};

/// Keys timed on each of the idle and the busy screen.
const KEYS: usize = 100;
/// Size of the file sent each way.
const FILE_BYTES: usize = 64 << 20;
/// What the technician types into the customer's terminal.
const GREETING: &str = "Grüße aus der Technik";
/// How long any one step may take before the demo calls it failed.
const STEP: Duration = Duration::from_secs(30);

/// Runs the story and prints the report.
pub fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(story())
}

/// The report's lines, filled as the story goes.
#[derive(Default)]
struct Report {
    path: String,
    code_matches: bool,
    setup: Duration,
    first_frame: Duration,
    screen: (u32, u32),
    typed: bool,
    idle: Photon,
    busy: Photon,
    to_customer: Moved,
    to_technician: Moved,
    agent_gone: Duration,
}

/// One file's trip.
#[derive(Default)]
struct Moved {
    seconds: f64,
    hash_equal: bool,
}

impl Moved {
    fn rate(&self) -> f64 {
        FILE_BYTES as f64 / self.seconds / 1e6
    }
}

async fn story() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("a temporary folder for the demo")?;
    let technician = Identity::generate("Demo-Techniker")?;
    let (company, server) = super::company(dir.path(), &technician).await?;
    let mut desktop = Desktop::start(dir.path())?;
    println!("== the customer's desktop: Xvfb {} with a terminal", desktop.display);
    let inboxes =
        (super::inbox(dir.path(), "technician-inbox")?, super::inbox(dir.path(), "customer-inbox")?);
    let mut report = Report::default();

    println!("== the technician signs in");
    let (viewer, viewer_rx) = mpsc::channel(16);
    let (tx, mut viewer_events) = mpsc::channel(1024);
    let setup = ViewerSetup {
        server: company,
        name: "Demo-Techniker".into(),
        inbox: Some(inboxes.0.clone()),
        audit_log: Some(dir.path().join("technician-audit.jsonl")),
    };
    let viewer_driver = tokio::spawn(lifebuoy::roles::viewer::drive(technician, setup, viewer_rx, tx));
    until(&mut viewer_events, "the sign-in", |e| matches!(e, ViewerEvent::SignedIn { .. }).then_some(()))
        .await?;

    println!("== the customer starts the agent and asks Demo-Techniker for help");
    let (agent, agent_rx) = mpsc::channel(16);
    let (tx, mut agent_events) = mpsc::channel(1024);
    let setup = AgentSetup {
        server: company,
        display: Some(desktop.display.clone()),
        view_only: false,
        no_clipboard: false,
        clipboard_to_technician: false,
        no_files: false,
        inbox: Some(inboxes.1.clone()),
        audit_log: Some(dir.path().join("customer-audit.jsonl")),
    };
    let agent_driver = tokio::spawn(lifebuoy::roles::agent::drive(setup, agent_rx, tx));
    let staff = until(&mut agent_events, "the staff list", |e| match e {
        AgentEvent::Staff(entries) => entries.into_iter().find(|s| s.name == "Demo-Techniker"),
        _ => None,
    })
    .await?;
    agent.send(AgentCommand::Request { staff: staff.fingerprint, label: "Kunde 4711".into() }).await?;

    let request = until(&mut viewer_events, "the request", |e| match e {
        ViewerEvent::Incoming { request, .. } => Some(request),
        _ => None,
    })
    .await?;
    println!("== the technician accepts");
    viewer.send(ViewerCommand::Accept(request)).await?;
    let (code, path, setup, view) = until(&mut viewer_events, "the session", |e| match e {
        ViewerEvent::Connected { code, path, setup, view, .. } => Some((code, path, setup, view)),
        _ => None,
    })
    .await?;
    let (agent_code, offer) = until(&mut agent_events, "the agent's session", |e| match e {
        AgentEvent::Connected { code, offer, .. } => Some((code, offer)),
        _ => None,
    })
    .await?;
    println!("== the customer compares the code and allows");
    let allowed = Instant::now();
    agent.send(AgentCommand::Allow(offer.choice)).await?;
    let shown = within(probe::first_frame(&view), "the first picture").await??;
    let frame = view.screen.image.borrow().clone().context("a first picture")?;
    (report.path, report.code_matches, report.setup) = (path, agent_code == code, setup);
    report.first_frame = shown - allowed;
    report.screen = (frame.image.width, frame.image.height);
    println!("== connected, code {code} on both sides: {}", if report.code_matches { "yes" } else { "NO" });

    println!("== the technician types {GREETING:?} into the customer's terminal");
    report.typed = typed(&view, &desktop.typed).await?;

    println!("== input -> photon: {KEYS} keys on the idle screen");
    let drawn = desktop.watch_typing()?;
    report.idle = photon(&view, &drawn).await?;
    println!("== input -> photon: {KEYS} keys while a build log scrolls elsewhere");
    desktop.make_busy()?;
    report.busy = photon(&view, &drawn).await?;
    desktop.make_idle();

    println!("== a {} MiB file each way", FILE_BYTES >> 20);
    let outgoing = random_file(dir.path(), "fuer-den-kunden.bin")?;
    viewer.send(ViewerCommand::SendFiles(vec![outgoing.clone()])).await?;
    report.to_customer = arrived(&mut agent_events, &inboxes.1, &outgoing, |e| match e {
        AgentEvent::File(news) => Some(news),
        _ => None,
    })
    .await?;
    let outgoing = random_file(dir.path(), "vom-kunden.bin")?;
    agent.send(AgentCommand::SendFiles(vec![outgoing.clone()])).await?;
    report.to_technician = arrived(&mut viewer_events, &inboxes.0, &outgoing, |e| match e {
        ViewerEvent::File(news) => Some(news),
        _ => None,
    })
    .await?;

    println!("== the technician ends the session");
    let ended = Instant::now();
    viewer.send(ViewerCommand::End).await?;
    let ending = until(&mut agent_events, "the agent's end", |e| match e {
        AgentEvent::Ended(ending) => Some(ending),
        _ => None,
    })
    .await?;
    within(agent_driver, "the agent to exit").await??;
    report.agent_gone = ended.elapsed();
    if !matches!(ending, Ending::ByPeer(_)) {
        bail!("the agent's session ended otherwise than by the technician: {ending}");
    }
    viewer.send(ViewerCommand::Quit).await?;
    drop(viewer);
    let _ = within(viewer_driver, "the viewer to quit").await;
    server.shutdown().await;
    print(&report);
    if !(report.code_matches
        && report.typed
        && report.to_customer.hash_equal
        && report.to_technician.hash_equal)
    {
        bail!("the demo did not go as it should: see the report");
    }
    Ok(())
}

/// Waits for the first event `pick` takes, and fails on a failure or an
/// end that comes first.
async fn until<E: Story, T>(
    events: &mut mpsc::Receiver<E>,
    what: &str,
    mut pick: impl FnMut(E) -> Option<T>,
) -> anyhow::Result<T> {
    within(
        async {
            loop {
                let event = events.recv().await.ok_or_else(|| anyhow!("it stopped before {what}"))?;
                if let Some(trouble) = event.trouble() {
                    bail!("{trouble}, waiting for {what}");
                }
                if let Some(t) = pick(event) {
                    return Ok(t);
                }
            }
        },
        what,
    )
    .await?
}

async fn within<T>(step: impl std::future::Future<Output = T>, what: &str) -> anyhow::Result<T> {
    tokio::time::timeout(STEP, step).await.map_err(|_| anyhow!("{what} took more than {STEP:?}"))
}

/// The events that end the story early.
trait Story {
    fn trouble(&self) -> Option<String>;
}

impl Story for AgentEvent {
    fn trouble(&self) -> Option<String> {
        match self {
            AgentEvent::Failed(f) => Some(format!("the agent failed: {f}")),
            AgentEvent::Refused { technician, reason } => Some(format!("{technician} refused: {reason:?}")),
            AgentEvent::File(FileNews { event: TransferEvent::Failed { path, reason, .. }, .. }) => {
                Some(format!("{path} did not arrive: {reason}"))
            }
            _ => None,
        }
    }
}

impl Story for ViewerEvent {
    fn trouble(&self) -> Option<String> {
        match self {
            ViewerEvent::Failed(f) => Some(format!("the viewer failed: {f}")),
            ViewerEvent::ConnectFailed(why) => Some(format!("the viewer could not connect: {why}")),
            ViewerEvent::Ended(ending) => Some(format!("the session ended: {ending}")),
            ViewerEvent::File(FileNews { event: TransferEvent::Failed { path, reason, .. }, .. }) => {
                Some(format!("{path} did not arrive: {reason}"))
            }
            _ => None,
        }
    }
}

/// Types the greeting and Enter; whether the customer's terminal got it.
async fn typed(view: &SessionView, file: &Path) -> anyhow::Result<bool> {
    // The yes travels apart from the picture; input made before it is dropped.
    let mut allowed = view.allowed.clone();
    within(allowed.wait_for(|yes| *yes), "the customer's yes").await?.context("the session closed")?;
    view.type_line(GREETING).map_err(|_| anyhow!("the session closed while typing"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::fs::read_to_string(file).unwrap_or_default().contains(&format!("{GREETING}\n")) {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(false)
}

/// Input -> photon in the typing terminal, split where the customer's X
/// server drew the key, and the screen's kbit/s meanwhile.
async fn photon(view: &SessionView, drawn: &Drawn) -> anyhow::Result<Photon> {
    let (bytes, started) = (received(view), Instant::now());
    let run = probe::input_to_photon(view, TYPING, KEYS).await?;
    let kbit = (received(view) - bytes) as f64 * 8.0 / started.elapsed().as_secs_f64() / 1e3;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let split: Vec<(f64, f64)> = run
        .keys
        .iter()
        .filter_map(|&(sent, shown)| drawn.between(sent, shown).map(|at| (ms(at - sent), ms(shown - at))))
        .collect();
    Ok(Photon {
        whole: run.latencies(),
        to_drawn: Latencies::new(split.iter().map(|s| s.0).collect()),
        drawn_to_viewer: Latencies::new(split.iter().map(|s| s.1).collect()),
        kbit,
    })
}

/// One screen's input -> photon.
#[derive(Default)]
struct Photon {
    /// Key sent -> the viewer's image shows it.
    whole: Latencies,
    /// Key sent -> the customer's X server drew it.
    to_drawn: Latencies,
    /// Drawn -> the viewer's image shows it.
    drawn_to_viewer: Latencies,
    /// The screen stream meanwhile.
    kbit: f64,
}

/// Bytes the technician's side has received (UDP payloads, all streams).
fn received(view: &SessionView) -> u64 {
    view.link.connection().stats().udp_rx.bytes
}

/// A file of random bytes (nothing for zstd or sparse runs to shortcut).
fn random_file(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut bytes = vec![0u8; FILE_BYTES];
    rand::fill(&mut bytes[..]);
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// Waits for `sent` to be complete on the receiving side; its trip time
/// and whether the received file's BLAKE3 equals the sent one's.
async fn arrived<E: Story>(
    events: &mut mpsc::Receiver<E>,
    inbox: &Path,
    sent: &Path,
    news: impl Fn(E) -> Option<FileNews>,
) -> anyhow::Result<Moved> {
    let started = Instant::now();
    let name = sent.file_name().context("a file name")?.to_string_lossy().into_owned();
    let (path, blake3) = until(events, &name, |e| match news(e)? {
        FileNews { outgoing: false, event: TransferEvent::Done { path, blake3, .. } } => Some((path, blake3)),
        _ => None,
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let on_disk = blake3::hash(&std::fs::read(inbox.join(&path))?).to_hex().to_string();
    let original = blake3::hash(&std::fs::read(sent)?).to_hex().to_string();
    Ok(Moved { seconds, hash_equal: on_disk == original && blake3 == original })
}

fn print(r: &Report) {
    let yes = |b: bool| if b { "yes" } else { "NO" };
    let latency = |l: &Latencies, p| l.percentile(p).unwrap_or(f64::NAN);
    println!();
    println!("| lifebuoy demo --headless | |");
    println!("|---|---|");
    println!("| path | {} |", r.path.trim_start_matches("path="));
    println!("| same verification code on both sides | {} |", yes(r.code_matches));
    println!("| accept -> session | {:.1} ms |", r.setup.as_secs_f64() * 1e3);
    println!(
        "| allow -> first full frame ({}x{}) | {:.1} ms |",
        r.screen.0,
        r.screen.1,
        r.first_frame.as_secs_f64() * 1e3
    );
    println!("| typed {GREETING:?} arrived in the customer's terminal | {} |", yes(r.typed));
    for (name, p) in [("idle", &r.idle), ("busy", &r.busy)] {
        println!(
            "| input -> photon, {name} screen ({} keys) | p50 {:.2} ms, p99 {:.2} ms |",
            p.whole.len(),
            latency(&p.whole, 0.5),
            latency(&p.whole, 0.99)
        );
        println!(
            "| of which key -> drawn on the customer's screen / drawn -> viewer (p50) | {:.2} ms / {:.2} ms |",
            latency(&p.to_drawn, 0.5),
            latency(&p.drawn_to_viewer, 0.5)
        );
        println!("| screen stream while typing, {name} | {:.0} kbit/s |", p.kbit);
    }
    for (name, m) in
        [("technician -> customer", &r.to_customer), ("customer -> technician", &r.to_technician)]
    {
        println!(
            "| {} MiB file {name} | {:.1} MB/s, BLAKE3 equal: {} |",
            FILE_BYTES >> 20,
            m.rate(),
            yes(m.hash_equal)
        );
    }
    println!("| technician ends -> agent exited | {:.0} ms |", r.agent_gone.as_secs_f64() * 1e3);
}
