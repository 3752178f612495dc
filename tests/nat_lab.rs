//! The NAT lab: the real `lifebuoy` binaries (rendezvous, viewer, agent) in
//! network namespaces behind real NATs made with nftables, one topology per
//! case (see `lab/natlab`), each asserting the path both sides report.
//!
//! Needs root (CI runs as root). Without it these tests fail, loudly: they
//! are the proof that hole punching and the relay work.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");
const RENDEZVOUS: &str = "203.0.113.10:5515";
const RELAY: &str = "203.0.113.10:5510";

/// Punching is timing-sensitive: one lab at a time on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

fn natlab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/natlab")
}

struct Lab {
    prefix: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn up(case: &str) -> Lab {
        assert!(
            nix_is_root(),
            "the NAT lab needs root for network namespaces and nftables (CI runs as root)"
        );
        let prefix = format!("lb{}n{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let status = Command::new(natlab()).args(["up", &prefix, case]).status().expect("running lab/natlab");
        assert!(status.success(), "building the lab for {case} failed");
        Lab { prefix, children: Vec::new(), dir: tempfile::tempdir().unwrap() }
    }

    fn command(&self, node: &str, env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(natlab());
        c.args(["exec", &self.prefix, node, "--", "env"]);
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(BIN);
        c
    }

    /// Runs a command to its end (at most 30 s): exit success and all output.
    fn finish(&self, mut command: Command) -> (bool, String) {
        let out = command.output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn key(&self, who: &str, rendezvous: bool) -> String {
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
    fn signal(&self, node: &str, signal: &str) {
        let ns = format!("{}-{node}", self.prefix);
        let pids = Command::new("ip").args(["netns", "pids", &ns]).output().unwrap();
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = Command::new("kill").args([&format!("-{signal}"), pid]).status();
        }
    }

    /// The agent on hosta asking Anna, with `env` and its last argument
    /// `end` (how it ends: `--end-after-connect`, `--allow`).
    fn agent(&self, env: &[(&str, &str)], rv_pin: &str, end: &str) -> Command {
        let mut agent = self.command("hosta", env);
        agent.args(["agent", "--rendezvous", RENDEZVOUS, "--rendezvous-pin", rv_pin, "--staff", "Anna", end]);
        agent
    }

    /// Starts a process and returns its output lines as they come.
    fn spawn(&mut self, mut command: Command) -> std::sync::mpsc::Receiver<String> {
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

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// Waits for a line starting with `prefix`; panics with everything seen if
/// it does not come in time.
fn wait_for(rx: &std::sync::mpsc::Receiver<String>, prefix: &str, within: Duration, who: &str) -> String {
    wait_for_after(rx, prefix, within, who).0
}

/// [`wait_for`], also returning the lines that came before it.
fn wait_for_after(
    rx: &std::sync::mpsc::Receiver<String>,
    prefix: &str,
    within: Duration,
    who: &str,
) -> (String, Vec<String>) {
    wait_until(rx, &format!("starting with {prefix:?}"), |l| l.starts_with(prefix), within, who)
}

/// Waits for a line that `wanted` takes; panics with everything seen if
/// none comes in time. Also returns the lines before it.
fn wait_until(
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
struct Outcome {
    agent: String,
    /// The agent's log before it connected: why it took the relay.
    agent_log: Vec<String>,
    viewer: String,
    /// How the viewer saw the session end (the agent ends it at once).
    viewer_end: String,
}

/// Starts the rendezvous in the lab with a staff directory listing
/// `listed` as Anna; returns the rendezvous pin.
fn start_rendezvous(lab: &mut Lab, listed: &str) -> String {
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

fn run_case(case: &str, viewer_env: &[(&str, &str)]) -> Outcome {
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

fn assert_path(outcome: &Outcome, path: &str) {
    assert_paths(outcome, path, path);
}

/// Each side reports its own leg: through the relay, one may be TCP and the other UDP.
fn assert_paths(outcome: &Outcome, agent: &str, viewer: &str) {
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
fn relay_reason(outcome: &Outcome) -> &str {
    outcome.agent_log.iter().find_map(|l| l.split_once(": trying the relay")).map_or("", |(why, _)| why)
}

const NO_DIRECT: &str = "a NAT maps each destination to its own port, no direct path";

#[test]
fn case1_both_nats_endpoint_independent_with_firewalls_connect_directly() {
    let outcome = run_case("eim-fw", &[]);
    assert_path(&outcome, "direct (through NAT)");
    assert_eq!(relay_reason(&outcome), "");
}

#[test]
fn case2_no_firewalls_near_zero_latency_still_connect_directly() {
    assert_path(&run_case("eim", &[]), "direct (through NAT)");
}

#[test]
fn case2_control_full_ttl_probes_fall_into_the_stale_entry_trap() {
    // The same lab with probes that reach the agent's NAT: the stale
    // conntrack entry they leave remaps the agent, and punching fails. This
    // is what the TTL-limited probes of case 2 avoid; if this ever connects
    // directly, the lab no longer reproduces the trap.
    let outcome = run_case("eim", &[("LIFEBUOY_PROBE_TTL", "64")]);
    assert_path(&outcome, "relay (UDP)");
    // Both NATs map endpoint-independently: the relay could not tell, so
    // the agent gave punching its full time.
    assert!(relay_reason(&outcome).ends_with("no direct path after 1 s"), "{:?}", outcome.agent_log);
}

#[test]
fn case3_both_hosts_behind_the_same_nat_connect_over_the_lan() {
    assert_path(&run_case("same-nat", &[]), "direct (LAN)");
}

/// The session's setup time as the agent reports it.
fn setup_ms(outcome: &Outcome) -> f64 {
    let field = outcome.agent.split("setup_ms=").nth(1).and_then(|r| r.split(' ').next());
    field.and_then(|f| f.parse().ok()).unwrap_or_else(|| panic!("no setup time: {}", outcome.agent))
}

#[test]
fn case4_a_customer_behind_a_symmetric_nat_connects_directly_by_probing_wide() {
    // The relay sees the agent's NAT give it another port than the
    // rendezvous saw: the agent opens many ports, the viewer probes random
    // ones (the chance that none meets is well under 1 %).
    let outcome = run_case("one-sym", &[]);
    assert_path(&outcome, "direct (through NAT, probed wide)");
    assert_eq!(relay_reason(&outcome), "");
    assert!(setup_ms(&outcome) < 3000.0, "{}", outcome.agent);
}

#[test]
fn case4c_a_symmetric_customer_50ms_away_with_loss_still_connects_directly_by_probing_wide() {
    let outcome = run_case("one-sym-far", &[]);
    assert_path(&outcome, "direct (through NAT, probed wide)");
    assert!(setup_ms(&outcome) < 3000.0, "{}", outcome.agent);
}

#[test]
fn case4b_a_technician_behind_a_symmetric_nat_connects_directly_by_probing_wide() {
    let outcome = run_case("one-sym-b", &[]);
    assert_path(&outcome, "direct (through NAT, probed wide)");
    assert!(setup_ms(&outcome) < 3000.0, "{}", outcome.agent);
}

#[test]
fn case5_both_symmetric_nats_go_through_the_relay() {
    let outcome = run_case("both-sym", &[]);
    assert_path(&outcome, "relay (UDP)");
    assert!(relay_reason(&outcome).ends_with(NO_DIRECT), "{:?}", outcome.agent_log);
}

#[test]
fn case6_udp_blocked_on_the_agents_side_goes_through_the_tcp_tunnel() {
    assert_paths(&run_case("udp-block", &[]), "relay (TCP)", "relay (UDP)");
}

#[test]
fn case7_50ms_rtt_and_2_percent_loss_still_connect_directly() {
    let outcome = run_case("impaired", &[]);
    assert_path(&outcome, "direct (through NAT)");
    // The delay line is really in the path: 2 x 25 ms.
    let rtt: f64 =
        outcome.agent.split("rtt_ms=").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!((45.0..200.0).contains(&rtt), "rtt {rtt} ms");
}

#[test]
fn case10_a_technician_behind_two_nats_connects_directly_without_settings() {
    let outcome = run_case("double-b", &[]);
    assert_path(&outcome, "direct (through NAT)");
    eprintln!("{}", outcome.agent);
}

#[test]
fn case12_a_customer_behind_two_nats_connects_directly_without_settings() {
    let outcome = run_case("double-a", &[]);
    assert_path(&outcome, "direct (through NAT)");
    eprintln!("{}", outcome.agent);
}

#[test]
fn case13_two_homes_behind_one_hairpinning_carrier_nat_connect_directly() {
    let outcome = run_case("hairpin-loopback", &[]);
    assert_path(&outcome, "direct (through NAT)");
    eprintln!("{}", outcome.agent);
}

#[test]
fn case14_two_homes_behind_one_carrier_nat_without_loopback_go_through_the_relay() {
    let outcome = run_case("hairpin", &[]);
    assert_path(&outcome, "relay (UDP)");
    eprintln!("{} / {}", outcome.agent, relay_reason(&outcome));
}

#[test]
fn case17_both_sides_with_ipv6_connect_directly_over_it() {
    let outcome = run_case("v6", &[]);
    assert_path(&outcome, "direct (IPv6)");
    eprintln!("{}", outcome.agent);
}

#[test]
fn case18_ipv6_behind_stateful_firewalls_still_connects_directly() {
    // The viewer's low-TTL probes open its own firewall, as they open its NAT.
    let outcome = run_case("v6-fw", &[]);
    assert_path(&outcome, "direct (IPv6)");
    eprintln!("{}", outcome.agent);
}

#[test]
fn agent_pinned_to_another_rendezvous_is_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up("eim-fw");
    start_rendezvous(&mut lab, &"ab".repeat(32));
    let wrong = lab.key("other-rv", true);
    let mut agent = lab.command("hosta", &[]);
    agent.args(["agent", "--rendezvous", RENDEZVOUS, "--rendezvous-pin", &wrong, "--staff", "Anna"]);
    let (ok, out) = lab.finish(agent);
    assert!(!ok, "the agent must refuse: {out}");
    assert!(out.contains(&format!("but {wrong} was expected")), "{out}");
}

#[test]
fn viewer_missing_from_the_directory_is_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up("eim-fw");
    let rv_pin = start_rendezvous(&mut lab, &"ab".repeat(32));
    let mut viewer = lab.command("hostb", &[]);
    viewer.arg("--config-dir").arg(lab.dir.path().join("stranger"));
    viewer.args(["viewer", "--rendezvous", RENDEZVOUS, "--rendezvous-pin", &rv_pin, "--accept-all"]);
    let (ok, out) = lab.finish(viewer);
    assert!(!ok, "the viewer must be refused: {out}");
    assert!(out.contains("not in the company's staff directory"), "{out}");
}

/// Waits for a line that contains `needle` (and the lines before it).
fn wait_for_containing(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    within: Duration,
    who: &str,
) -> (String, Vec<String>) {
    wait_until(rx, &format!("with {needle:?}"), |l| l.contains(needle), within, who)
}

/// The silence a side reported when its path came back (`gap_ms=`).
fn gap_ms(line: &str) -> u64 {
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

/// A session between filtering NATs (case 1) in which `nat` forgets its
/// mappings and maps anew from another port: the sides ask the
/// rendezvous, probe, and the session goes on. Returns both sides' gaps.
fn mapping_change(nat: &str) -> (u64, u64) {
    let (agent, viewer) = path_change("eim-fw", nat, "");
    for log in [&agent, &viewer] {
        assert!(!log.iter().any(|l| l.contains("to the relay")), "re-punched, not relayed: {log:?}");
    }
    (gap_ms(agent.last().unwrap()), gap_ms(viewer.last().unwrap()))
}

/// As `mapping_change`, and the NAT maps per destination from then on:
/// re-punching fails, and the session moves to the relay (whichever side
/// moves first, the other's QUIC follows when the relay forwards to it).
fn mapping_change_to_symmetric(nat: &str) -> (u64, u64) {
    let (agent, viewer) = path_change("eim-fw", nat, "sym");
    let moved = agent.iter().chain(&viewer).any(|l| l.contains("moving the session to the relay"));
    assert!(moved, "agent: {agent:?}\nviewer: {viewer:?}");
    (gap_ms(agent.last().unwrap()), gap_ms(viewer.last().unwrap()))
}

/// A session in lab `case` in which `nat` is remapped (`lab/natlab
/// remap`, with `how`); both sides' log lines up to "the path is back",
/// and the session is shown to carry the customer's end after the idle
/// timeout.
fn path_change(case: &str, nat: &str, how: &str) -> (Vec<String>, Vec<String>) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up(case);
    let tech = lab.key("tech", false);
    let rv_pin = start_rendezvous(&mut lab, &tech);
    let log = [("LIFEBUOY_LOG", "warn,lifebuoy::roles::path=info")];
    let mut viewer = lab.command("hostb", &log);
    viewer.arg("--config-dir").arg(lab.dir.path().join("tech"));
    viewer.args(["viewer", "--rendezvous", RENDEZVOUS, "--rendezvous-pin", &rv_pin, "--accept-all"]);
    let viewer_out = lab.spawn(viewer);
    wait_for(&viewer_out, "signed in", Duration::from_secs(10), "viewer");
    let agent_out = lab.spawn(lab.agent(&log, &rv_pin, "--allow"));
    let connected = wait_for(&agent_out, "connected:", Duration::from_secs(20), "agent");
    let expected = if case == "both-sym" { "path=relay (UDP)" } else { "path=direct (through NAT)" };
    assert!(connected.contains(expected), "{connected}");
    wait_for(&viewer_out, "customer allows", Duration::from_secs(20), "viewer");

    let status = Command::new(natlab()).args(["remap", &lab.prefix, nat, how]).status().unwrap();
    assert!(status.success(), "remapping {nat}");
    let (agent_back, mut agent_log) =
        wait_for_containing(&agent_out, "the path is back", Duration::from_secs(8), "agent");
    let (viewer_back, mut viewer_log) =
        wait_for_containing(&viewer_out, "the path is back", Duration::from_secs(8), "viewer");
    assert!(!viewer_log.iter().any(|l| l.starts_with("session ended")), "{viewer_log:?}");
    // The technician was told meanwhile, and is told when it is over.
    let told = "the connection to the customer is interrupted; restoring it";
    assert!(viewer_log.iter().any(|l| l == told), "{viewer_log:?}");
    wait_for(&viewer_out, "the connection to the customer is back", Duration::from_secs(2), "viewer");
    agent_log.push(agent_back);
    viewer_log.push(viewer_back);

    // Past the idle timeout, the session still carries the customer's end.
    std::thread::sleep(Duration::from_secs(6));
    lab.signal("hosta", "TERM");
    let ended = wait_for(&viewer_out, "session ended:", Duration::from_secs(10), "viewer");
    assert!(ended.contains("CustomerEnded"), "the session survived the move: {ended}");
    (agent_log, viewer_log)
}

#[test]
fn case8_the_agents_nat_maps_anew_mid_session_and_the_session_goes_on() {
    let (agent, viewer) = mapping_change("nata");
    eprintln!("gaps: agent {agent} ms, viewer {viewer} ms");
    assert!(agent.max(viewer) <= 3000, "agent {agent} ms, viewer {viewer} ms");
}

#[test]
fn case9_the_technicians_nat_maps_anew_mid_session_and_the_session_goes_on() {
    let (agent, viewer) = mapping_change("natb");
    eprintln!("gaps: agent {agent} ms, viewer {viewer} ms");
    assert!(agent.max(viewer) <= 3000, "agent {agent} ms, viewer {viewer} ms");
}

#[test]
fn case15_the_agents_nat_turns_symmetric_mid_session_and_the_session_moves_to_the_relay() {
    let (agent, viewer) = mapping_change_to_symmetric("nata");
    eprintln!("gaps: agent {agent} ms, viewer {viewer} ms");
    assert!(agent.max(viewer) <= 4000, "agent {agent} ms, viewer {viewer} ms");
}

#[test]
fn case16_the_technicians_nat_turns_symmetric_mid_session_and_the_session_moves_to_the_relay() {
    let (agent, viewer) = mapping_change_to_symmetric("natb");
    eprintln!("gaps: agent {agent} ms, viewer {viewer} ms");
    assert!(agent.max(viewer) <= 4000, "agent {agent} ms, viewer {viewer} ms");
}

#[test]
fn case19_a_relayed_customer_whose_nat_maps_anew_binds_again_and_the_session_goes_on() {
    // Both NATs symmetric: the session runs through the relay, which
    // forgets the agent's old address; the agent binds again from its new one.
    let (agent, viewer) = path_change("both-sym", "nata", "");
    eprintln!(
        "gaps: agent {} ms, viewer {} ms",
        gap_ms(agent.last().unwrap()),
        gap_ms(viewer.last().unwrap())
    );
    assert!(gap_ms(agent.last().unwrap()).max(gap_ms(viewer.last().unwrap())) <= 3000, "{agent:?}");
}

#[test]
fn case11_the_rendezvous_crashes_between_and_during_sessions_and_everyone_comes_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::up("eim-fw");
    let tech = lab.key("tech", false);
    let rv_pin = start_rendezvous(&mut lab, &tech);
    let mut viewer = lab.command("hostb", &[]);
    viewer.arg("--config-dir").arg(lab.dir.path().join("tech"));
    viewer.args(["viewer", "--rendezvous", RENDEZVOUS, "--rendezvous-pin", &rv_pin, "--accept-all"]);
    let viewer_out = lab.spawn(viewer);
    wait_for(&viewer_out, "signed in", Duration::from_secs(10), "viewer");

    // Between sessions: the technician is back by herself, and reachable.
    lab.signal("rdv", "KILL");
    assert_eq!(start_rendezvous(&mut lab, &tech), rv_pin, "the same key");
    let restarted = Instant::now();
    wait_for(&viewer_out, "signed in", Duration::from_secs(10), "viewer");
    let back = restarted.elapsed();
    let agent_out = lab.spawn(lab.agent(&[], &rv_pin, "--end-after-connect"));
    let connected = wait_for(&agent_out, "connected:", Duration::from_secs(20), "agent");
    assert!(connected.contains("path=direct (through NAT)"), "{connected}");
    wait_for(&viewer_out, "session ended:", Duration::from_secs(10), "viewer");

    // During a session: the session goes on past the idle timeout; when
    // it ends the technician signs in again.
    let agent_out = lab.spawn(lab.agent(&[], &rv_pin, "--allow"));
    wait_for(&agent_out, "connected:", Duration::from_secs(20), "agent");
    wait_for(&viewer_out, "customer allows", Duration::from_secs(20), "viewer");
    lab.signal("rdv", "KILL");
    start_rendezvous(&mut lab, &tech);
    std::thread::sleep(Duration::from_secs(7));
    lab.signal("hosta", "TERM");
    let ended = wait_for(&viewer_out, "session ended:", Duration::from_secs(10), "viewer");
    assert!(ended.contains("CustomerEnded"), "the session outlived the crash: {ended}");
    let session_over = Instant::now();
    wait_for(&viewer_out, "signed in", Duration::from_secs(10), "viewer");
    eprintln!(
        "signed in again {back:?} after a restart, {:?} after a session the crash ran through",
        session_over.elapsed()
    );
}
