//! The lab itself: its namespaces, the real binaries in them, and waiting
//! for what they print.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");
pub(crate) const RENDEZVOUS: &str = "203.0.113.10:5515";
pub(crate) const RELAY: &str = "203.0.113.10:5510";

/// Punching is timing-sensitive: one lab at a time on a 2-core machine.
pub(crate) static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
pub(crate) static NEXT: AtomicU32 = AtomicU32::new(0);

pub(crate) fn natlab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/natlab")
}

pub(crate) struct Lab {
    pub(crate) prefix: String,
    pub(crate) children: Vec<Child>,
    pub(crate) dir: tempfile::TempDir,
}

impl Lab {
    pub(crate) fn up(case: &str) -> Lab {
        assert!(
            nix_is_root(),
            "the NAT lab needs root for network namespaces and nftables (CI runs as root)"
        );
        let prefix = format!("lb{}n{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let status = Command::new(natlab()).args(["up", &prefix, case]).status().expect("running lab/natlab");
        assert!(status.success(), "building the lab for {case} failed");
        Lab { prefix, children: Vec::new(), dir: tempfile::tempdir().unwrap() }
    }

    pub(crate) fn command(&self, node: &str, env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(natlab());
        c.args(["exec", &self.prefix, node, "--", "env"]);
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(BIN);
        c
    }

    /// Runs a command to its end (at most 30 s): exit success and all output.
    pub(crate) fn finish(&self, mut command: Command) -> (bool, String) {
        let out = command.output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    pub(crate) fn key(&self, who: &str, rendezvous: bool) -> String {
        let mut c = Command::new(BIN);
        c.arg("--config-dir").arg(self.dir.path().join(who)).arg("id");
        if rendezvous {
            c.arg("--rendezvous");
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Sends `signal` to what runs in `node` (the program itself: the
    /// children are the scripts that started it).
    pub(crate) fn signal(&self, node: &str, signal: &str) {
        let ns = format!("{}-{node}", self.prefix);
        let pids = Command::new("ip").args(["netns", "pids", &ns]).output().unwrap();
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = Command::new("kill").args([&format!("-{signal}"), pid]).status();
        }
    }

    /// The agent on hosta asking Anna, with `env` and its last argument
    /// `end` (how it ends: `--end-after-connect`, `--allow`).
    pub(crate) fn agent(&self, env: &[(&str, &str)], rv_pin: &str, end: &str) -> Command {
        let mut agent = self.command("hosta", env);
        agent.args(["agent", "--rendezvous", RENDEZVOUS, "--rendezvous-pin", rv_pin, "--staff", "Anna", end]);
        agent
    }

    /// Starts a process and returns its output lines as they come.
    pub(crate) fn spawn(&mut self, mut command: Command) -> std::sync::mpsc::Receiver<String> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        self.children.push(child);
        rx
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new(natlab()).args(["down", &self.prefix]).status();
    }
}

pub(crate) fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// Waits for a line starting with `prefix`; panics with everything seen if
/// it does not come in time.
pub(crate) fn wait_for(
    rx: &std::sync::mpsc::Receiver<String>,
    prefix: &str,
    within: Duration,
    who: &str,
) -> String {
    wait_for_after(rx, prefix, within, who).0
}

/// [`wait_for`], also returning the lines that came before it.
pub(crate) fn wait_for_after(
    rx: &std::sync::mpsc::Receiver<String>,
    prefix: &str,
    within: Duration,
    who: &str,
) -> (String, Vec<String>) {
    wait_until(rx, &format!("starting with {prefix:?}"), |l| l.starts_with(prefix), within, who)
}

/// Waits for a line that `wanted` takes; panics with everything seen if
/// none comes in time. Also returns the lines before it.
pub(crate) fn wait_until(
    rx: &std::sync::mpsc::Receiver<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
    within: Duration,
    who: &str,
) -> (String, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if wanted(&line) => return (line, seen),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("{who}: no line {what} within {within:?}; output was:\n{}", seen.join("\n"));
}

/// What one run of a case reported.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) agent: String,
    /// The agent's log before it connected: why it took the relay.
    pub(crate) agent_log: Vec<String>,
    pub(crate) viewer: String,
    /// How the viewer saw the session end (the agent ends it at once).
    pub(crate) viewer_end: String,
}

/// Starts the rendezvous in the lab with a staff directory listing
/// `listed` as Anna; returns the rendezvous pin.
pub(crate) fn start_rendezvous(lab: &mut Lab, listed: &str) -> String {
    let rv_pin = lab.key("rv", true);
    let staff = lab.dir.path().join("staff.toml");
    std::fs::write(&staff, format!("[[staff]]\nname = \"Anna\"\nfingerprint = \"{listed}\"\n")).unwrap();
    let mut rv = lab.command("rdv", &[]);
    rv.arg("--config-dir").arg(lab.dir.path().join("rv"));
    rv.args(["rendezvous", "--listen", RENDEZVOUS, "--relay", RELAY, "--staff"]).arg(&staff);
    let rv_out = lab.spawn(rv);
    wait_for(&rv_out, "rendezvous fingerprint", Duration::from_secs(10), "rendezvous");
    rv_pin
}

pub(crate) fn run_case(case: &str, viewer_env: &[(&str, &str)]) -> Outcome {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up(case);
    let tech = lab.key("tech", false);
    let rv_pin = start_rendezvous(&mut lab, &tech);

    let mut viewer = lab.command("hostb", viewer_env);
    viewer.arg("--config-dir").arg(lab.dir.path().join("tech"));
    viewer.args([
        "viewer",
        "--rendezvous",
        RENDEZVOUS,
        "--rendezvous-pin",
        &rv_pin,
        "--accept-all",
        "--sessions",
        "1",
    ]);
    let viewer_out = lab.spawn(viewer);
    wait_for(&viewer_out, "signed in", Duration::from_secs(10), "viewer");

    let agent =
        lab.agent(&[("LIFEBUOY_LOG", "warn,lifebuoy::net::punch=info")], &rv_pin, "--end-after-connect");
    let agent_out = lab.spawn(agent);
    let (agent_line, agent_log) = wait_for_after(&agent_out, "connected:", Duration::from_secs(20), "agent");
    let viewer_line = wait_for(&viewer_out, "connected:", Duration::from_secs(20), "viewer");
    // The technician learns at once that the customer ended the session
    // (not after the idle timeout), through the relay too.
    let viewer_end = wait_for(&viewer_out, "session ended:", Duration::from_secs(2), "viewer");
    Outcome { agent: agent_line, agent_log, viewer: viewer_line, viewer_end }
}

pub(crate) fn assert_path(outcome: &Outcome, path: &str) {
    assert_paths(outcome, path, path);
}

/// Each side reports its own leg: through the relay, one may be TCP and the other UDP.
pub(crate) fn assert_paths(outcome: &Outcome, agent: &str, viewer: &str) {
    assert!(
        outcome.agent.contains(&format!("path={agent} ")),
        "agent: expected {agent}, got: {}",
        outcome.agent
    );
    assert!(
        outcome.viewer.contains(&format!("path={viewer} ")),
        "viewer: expected {viewer}, got: {}",
        outcome.viewer
    );
    // Both people read the same verification code.
    let code = |l: &str| l.split("code=").nth(1).map(str::to_owned);
    assert_eq!(code(&outcome.agent), code(&outcome.viewer));
    // The agent's end of the session reached the viewer with its reason.
    assert!(outcome.viewer_end.contains("CustomerEnded"), "{}", outcome.viewer_end);
}

/// Why the agent took the relay, from its log ("" if it did not).
pub(crate) fn relay_reason(outcome: &Outcome) -> &str {
    outcome.agent_log.iter().find_map(|l| l.split_once(": trying the relay")).map_or("", |(why, _)| why)
}

pub(crate) const NO_DIRECT: &str = "a NAT maps each destination to its own port, no direct path";

/// The session's setup time as the agent reports it.
pub(crate) fn setup_ms(outcome: &Outcome) -> f64 {
    let field = outcome.agent.split("setup_ms=").nth(1).and_then(|r| r.split(' ').next());
    field.and_then(|f| f.parse().ok()).unwrap_or_else(|| panic!("no setup time: {}", outcome.agent))
}

/// Waits for a line that contains `needle` (and the lines before it).
pub(crate) fn wait_for_containing(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    within: Duration,
    who: &str,
) -> (String, Vec<String>) {
    wait_until(rx, &format!("with {needle:?}"), |l| l.contains(needle), within, who)
}

/// The silence a side reported when its path came back (`gap_ms=`).
pub(crate) fn gap_ms(line: &str) -> u64 {
    // Without the log's colours (their codes hold digits).
    let mut plain = String::new();
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (false, c) => plain.push(c),
            (true, _) => {}
        }
    }
    let digits: String = plain
        .split("gap_ms")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("no gap in {line:?}"))
}
