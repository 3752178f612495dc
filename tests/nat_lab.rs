//! The NAT lab: the real `lifebuoy` binaries (rendezvous, viewer, agent) in
//! network namespaces behind real NATs made with nftables, one topology per
//! case (see `lab/natlab`), each asserting the path both sides report.
//!
//! Needs root (CI runs as root). Without it these tests fail, loudly: they
//! are the proof that hole punching and the relay work.

#[path = "nat_lab/lab.rs"]
mod lab;
#[path = "nat_lab/moves.rs"]
mod moves;

use lab::*;

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
