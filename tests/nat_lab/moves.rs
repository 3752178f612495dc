//! Sessions whose path changes under them: a NAT that maps anew, one that
//! turns symmetric, a relayed side that moves, a rendezvous that crashes.

use std::process::Command;
use std::time::{Duration, Instant};

use super::lab::*;

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
    // The technician was told meanwhile, and is told when it is over (on
    // stdout, the log on stderr: either may come first).
    let told = "the connection to the customer is interrupted; restoring it";
    assert!(viewer_log.iter().any(|l| l == told), "{viewer_log:?}");
    let back = "the connection to the customer is back";
    if !viewer_log.iter().any(|l| l == back) {
        wait_for(&viewer_out, back, Duration::from_secs(2), "viewer");
    }
    agent_log.push(agent_back);
    viewer_log.push(viewer_back);

    // Past the idle timeout, the session still carries the customer's end.
    std::thread::sleep(Duration::from_secs(6));
    lab.signal("hosta", "TERM");
    let ended = wait_for(&viewer_out, "session ended:", Duration::from_secs(10), "viewer");
    assert!(ended.contains("CustomerEnded"), "the session survived the move: {ended}");
    (agent_log, viewer_log)
}

// The bound: a survived rebinding costs at most 2 s without packets.
#[test]
fn case8_the_agents_nat_maps_anew_mid_session_and_the_session_goes_on() {
    let (agent, viewer) = mapping_change("nata");
    eprintln!("gaps: agent {agent} ms, viewer {viewer} ms");
    assert!(agent.max(viewer) <= 2000, "agent {agent} ms, viewer {viewer} ms");
}

#[test]
fn case9_the_technicians_nat_maps_anew_mid_session_and_the_session_goes_on() {
    let (agent, viewer) = mapping_change("natb");
    eprintln!("gaps: agent {agent} ms, viewer {viewer} ms");
    assert!(agent.max(viewer) <= 2000, "agent {agent} ms, viewer {viewer} ms");
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
