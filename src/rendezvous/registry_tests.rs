//! The request flow and presence rules, driven without a network.

use super::*;
use lifebuoy_proto::rendezvous::PeerAddr;

const ANNA: Fingerprint = Fingerprint([0xa1; 32]);
const BERND: Fingerprint = Fingerprint([0xb2; 32]);
const AGENT: Fingerprint = Fingerprint([0xc3; 32]);
const AGENT2: Fingerprint = Fingerprint([0xc4; 32]);

fn directory(names: &[(&str, Fingerprint)]) -> Directory {
    let text: String =
        names.iter().map(|(n, fp)| format!("[[staff]]\nname = \"{n}\"\nfingerprint = \"{fp}\"\n")).collect();
    Directory::parse(&text).unwrap()
}

fn registry() -> Registry {
    let mut n = 0u8;
    Registry::new(
        directory(&[("Anna", ANNA), ("Bernd", BERND)]),
        5510,
        Box::new(move || {
            n += 1;
            [n; 16]
        }),
        RegistryLimits::default(),
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Where a connection from `s` counts for limits.
fn source(s: &str) -> IpAddr {
    addr(s).ip()
}

const MS: Duration = Duration::from_millis(1);

fn host(s: &str) -> Candidate {
    Candidate { addr: addr(s).into(), kind: CandidateKind::Host }
}

fn presence_of(list: &FromRendezvous, fp: Fingerprint) -> Presence {
    match list {
        FromRendezvous::Staff { entries } => entries.iter().find(|e| e.fingerprint == fp).unwrap().presence,
        other => panic!("not a staff list: {other:?}"),
    }
}

/// Anna online on connection 1, an agent on connection 10 that has listed the staff.
fn anna_and_agent(now: Instant) -> Registry {
    let mut r = registry();
    r.connect(1, Who::Viewer(ANNA), addr("198.51.100.2:40000"), source("198.51.100.2:40000"), 30 * MS)
        .unwrap();
    r.connect(10, Who::Agent(AGENT), addr("198.51.100.9:50000"), source("198.51.100.9:50000"), 10 * MS)
        .unwrap();
    let list = r.message(now, 10, ToRendezvous::ListStaff, 10 * MS);
    assert!(matches!(&list[..], [Action::Send(10, FromRendezvous::Staff { .. })]));
    r
}

fn request(r: &mut Registry, now: Instant) -> u64 {
    let actions = r.message(
        now,
        10,
        ToRendezvous::Request {
            staff: ANNA,
            label: "Kd. 4711".into(),
            candidates: vec![host("10.0.1.2:50000")],
        },
        10 * MS,
    );
    match &actions[..] {
        [Action::Send(1, FromRendezvous::Incoming { request, label, agent })] => {
            assert_eq!(label, "Kd. 4711");
            assert_eq!(*agent, AGENT);
            *request
        }
        other => panic!("expected the viewer to be asked, got {other:?}"),
    }
}

#[test]
fn viewer_not_in_directory_is_refused() {
    let mut r = registry();
    let stranger = Fingerprint([9; 32]);
    assert_eq!(
        r.connect(1, Who::Viewer(stranger), addr("127.0.0.1:1"), source("127.0.0.1:1"), MS),
        Err(ConnectRefused::NotInDirectory)
    );
    assert_eq!(r.connections(), 0);
    // Agents are anonymous: any key may connect.
    assert!(r.connect(2, Who::Agent(stranger), addr("127.0.0.1:2"), source("127.0.0.1:2"), MS).is_ok());
}

#[test]
fn staff_list_shows_online_busy_and_offline() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    let list = r.staff_list();
    assert_eq!(presence_of(&list, ANNA), Presence::Online);
    assert_eq!(presence_of(&list, BERND), Presence::Offline);
    r.message(now, 1, ToRendezvous::SetBusy { busy: true }, MS);
    assert_eq!(presence_of(&r.staff_list(), ANNA), Presence::Busy);
}

#[test]
fn accepted_request_sends_go_to_both_with_each_others_pins_and_addresses() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    let id = request(&mut r, now);
    let actions = r.message(
        now,
        1,
        ToRendezvous::Accept { request: id, candidates: vec![host("10.0.2.2:40000")] },
        30 * MS,
    );
    let [Action::AllowRelay { token, observed, .. }, Action::Send(1, FromRendezvous::Go(to_viewer)), Action::Send(10, FromRendezvous::Go(to_agent))] =
        &actions[..]
    else {
        panic!("unexpected actions {actions:?}")
    };
    // The relay learns where both were seen, to tell a NAT that maps per destination.
    assert_eq!((observed.client, observed.server), (addr("198.51.100.9:50000"), addr("198.51.100.2:40000")));
    assert_eq!(to_agent.peer, ANNA);
    assert_eq!(to_viewer.peer, AGENT);
    assert_eq!((to_agent.relay_token, to_viewer.relay_token), (*token, *token));
    assert!(to_agent.quic_client && !to_viewer.quic_client);
    // Each side gets the other's host candidates plus the observed address.
    assert_eq!(
        to_agent.peer_candidates,
        vec![
            host("10.0.2.2:40000"),
            Candidate { addr: addr("198.51.100.2:40000").into(), kind: CandidateKind::Observed }
        ]
    );
    assert_eq!(to_viewer.peer_candidates.last().unwrap().addr, PeerAddr::from(addr("198.51.100.9:50000")));
    assert_eq!(to_agent.observed, PeerAddr::from(addr("198.51.100.9:50000")));
    // The agent waits for half the viewer's RTT minus half its own, plus margin.
    assert_eq!(to_agent.punch_in_ms, 15 - 5 + 10);
    assert_eq!(to_viewer.punch_in_ms, 0);
    // Anna is in a session now.
    assert_eq!(presence_of(&r.staff_list(), ANNA), Presence::Busy);
    assert_eq!(r.open_requests(), 0);
}

#[test]
fn declined_request_tells_the_agent() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    let id = request(&mut r, now);
    assert_eq!(
        r.message(now, 1, ToRendezvous::Decline { request: id }, MS),
        vec![Action::Send(10, FromRendezvous::Refused { reason: Refusal::Declined })]
    );
    // The agent may ask again.
    request(&mut r, now);
}

#[test]
fn requests_to_absent_unknown_or_busy_staff_are_refused() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    let ask = |r: &mut Registry, staff| {
        r.message(now, 10, ToRendezvous::Request { staff, label: String::new(), candidates: vec![] }, MS)
    };
    let refused = |reason| vec![Action::Send(10, FromRendezvous::Refused { reason })];
    assert_eq!(ask(&mut r, BERND), refused(Refusal::Offline));
    assert_eq!(ask(&mut r, Fingerprint([7; 32])), refused(Refusal::UnknownStaff));
    r.message(now, 1, ToRendezvous::SetBusy { busy: true }, MS);
    assert_eq!(ask(&mut r, ANNA), refused(Refusal::Busy));
}

#[test]
fn one_open_request_per_agent() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    request(&mut r, now);
    let again = r.message(
        now,
        10,
        ToRendezvous::Request { staff: ANNA, label: String::new(), candidates: vec![] },
        MS,
    );
    assert_eq!(again, vec![Action::Send(10, FromRendezvous::Refused { reason: Refusal::AlreadyRequested })]);
}

#[test]
fn technician_with_many_waiting_requests_shows_busy() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    for i in 0..PENDING_PER_VIEWER as u64 {
        r.connect(
            100 + i,
            Who::Agent(Fingerprint([i as u8; 32])),
            addr("127.0.0.1:9"),
            source("127.0.0.1:9"),
            MS,
        )
        .unwrap();
        let a = r.message(
            now,
            100 + i,
            ToRendezvous::Request { staff: ANNA, label: String::new(), candidates: vec![] },
            MS,
        );
        assert!(matches!(&a[..], [Action::Send(1, FromRendezvous::Incoming { .. })]), "{a:?}");
    }
    let a = r.message(
        now,
        10,
        ToRendezvous::Request { staff: ANNA, label: String::new(), candidates: vec![] },
        MS,
    );
    assert_eq!(a, vec![Action::Send(10, FromRendezvous::Refused { reason: Refusal::Busy })]);
}

#[test]
fn cancel_and_agent_exit_withdraw_the_request() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    let id = request(&mut r, now);
    assert_eq!(
        r.message(now, 10, ToRendezvous::Cancel, MS),
        vec![Action::Send(1, FromRendezvous::Withdrawn { request: id })]
    );
    let id = request(&mut r, now);
    assert_eq!(r.disconnect(10), vec![Action::Send(1, FromRendezvous::Withdrawn { request: id })]);
    // Accepting a withdrawn request does nothing.
    assert_eq!(r.message(now, 1, ToRendezvous::Accept { request: id, candidates: vec![] }, MS), vec![]);
}

#[test]
fn unanswered_request_times_out() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    let id = request(&mut r, now);
    assert_eq!(r.next_tick(now).map(|t| t > now), Some(false), "a presence push is due first");
    r.tick(now);
    assert_eq!(r.next_tick(now), Some(now + REQUEST_TIMEOUT));
    assert!(r
        .tick(now + REQUEST_TIMEOUT - MS)
        .iter()
        .all(|a| !matches!(a, Action::Send(_, FromRendezvous::Refused { .. }))));
    let actions = r.tick(now + REQUEST_TIMEOUT);
    assert!(actions.contains(&Action::Send(10, FromRendezvous::Refused { reason: Refusal::NoAnswer })));
    assert!(actions.contains(&Action::Send(1, FromRendezvous::Withdrawn { request: id })));
}

#[test]
fn technician_going_offline_refuses_waiting_requests() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    request(&mut r, now);
    assert_eq!(r.disconnect(1), vec![Action::Send(10, FromRendezvous::Refused { reason: Refusal::Offline })]);
    assert_eq!(presence_of(&r.staff_list(), ANNA), Presence::Offline);
}

#[test]
fn a_viewer_cannot_answer_another_viewers_request() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    r.connect(2, Who::Viewer(BERND), addr("127.0.0.1:3"), source("127.0.0.1:3"), MS).unwrap();
    let id = request(&mut r, now);
    assert_eq!(r.message(now, 2, ToRendezvous::Accept { request: id, candidates: vec![] }, MS), vec![]);
    assert_eq!(r.message(now, 2, ToRendezvous::Decline { request: id }, MS), vec![]);
    assert_eq!(r.open_requests(), 1);
}

#[test]
fn messages_of_the_other_role_close_the_connection() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    let a = r.message(now, 10, ToRendezvous::Accept { request: 1, candidates: vec![] }, MS);
    assert_eq!(a, vec![Action::Close(10, CloseCode::ProtocolError, "message not allowed for this role")]);
    let a = r.message(
        now,
        1,
        ToRendezvous::Request { staff: ANNA, label: String::new(), candidates: vec![] },
        MS,
    );
    assert_eq!(a, vec![Action::Close(1, CloseCode::ProtocolError, "message not allowed for this role")]);
    assert_eq!(r.connections(), 0);
}

#[test]
fn directory_reload_signs_out_removed_staff_only() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    r.connect(2, Who::Viewer(BERND), addr("127.0.0.1:3"), source("127.0.0.1:3"), MS).unwrap();
    let actions = r.set_directory(directory(&[("Anna", ANNA)]));
    assert_eq!(actions, vec![Action::Close(2, CloseCode::NotAuthorized, "removed from the staff directory")]);
    assert_eq!(presence_of(&r.staff_list(), ANNA), Presence::Online);
    assert_eq!(r.connections(), 2);
}

#[test]
fn signing_in_twice_replaces_the_old_connection() {
    let mut r = registry();
    r.connect(1, Who::Viewer(ANNA), addr("127.0.0.1:1"), source("127.0.0.1:1"), MS).unwrap();
    let actions = r.connect(2, Who::Viewer(ANNA), addr("127.0.0.1:2"), source("127.0.0.1:2"), MS).unwrap();
    assert_eq!(actions, vec![Action::Close(1, CloseCode::NotAuthorized, "signed in again elsewhere")]);
    assert_eq!(r.connections(), 1);
}

#[test]
fn presence_changes_are_pushed_to_listing_agents_at_most_every_interval() {
    let now = Instant::now();
    let mut r = anna_and_agent(now);
    r.connect(11, Who::Agent(AGENT2), addr("127.0.0.1:4"), source("127.0.0.1:4"), MS).unwrap(); // never listed
    let pushes = |a: &[Action]| {
        a.iter().filter(|a| matches!(a, Action::Send(_, FromRendezvous::Staff { .. }))).count()
    };
    assert_eq!(pushes(&r.tick(now)), 1, "the pending change goes out");
    r.message(now, 1, ToRendezvous::SetBusy { busy: true }, MS);
    r.message(now, 1, ToRendezvous::SetBusy { busy: false }, MS);
    r.connect(2, Who::Viewer(BERND), addr("127.0.0.1:3"), source("127.0.0.1:3"), MS).unwrap();
    assert_eq!(pushes(&r.tick(now + MS)), 0, "coalesced until the interval passed");
    let later = r.tick(now + STAFF_PUSH_INTERVAL);
    assert_eq!(later.len(), 1);
    match &later[0] {
        Action::Send(10, list) => assert_eq!(presence_of(list, BERND), Presence::Online),
        other => panic!("{other:?}"),
    }
    assert_eq!(pushes(&r.tick(now + STAFF_PUSH_INTERVAL * 3)), 0, "nothing changed, nothing sent");
    // Busy and back before the push: the list is what agents saw, so nothing goes out.
    r.message(now, 1, ToRendezvous::SetBusy { busy: true }, MS);
    r.message(now, 1, ToRendezvous::SetBusy { busy: false }, MS);
    assert_eq!(pushes(&r.tick(now + STAFF_PUSH_INTERVAL * 4)), 0, "same presence, no push");
}

#[test]
fn go_caps_candidates_and_adds_the_observed_address() {
    let many: Vec<Candidate> = (0..40).map(|i| host(&format!("10.0.0.{i}:1"))).collect();
    let capped = with_observed(many, addr("203.0.113.5:7"));
    assert_eq!(capped.len(), CANDIDATES_MAX);
    assert_eq!(capped.last().unwrap().kind, CandidateKind::Observed);
}

#[test]
fn a_full_server_still_takes_its_technicians() {
    let mut n = 0u8;
    let limits = RegistryLimits { customers: 3, open_requests_per_source: 8 };
    let mut r = Registry::new(
        directory(&[("Anna", ANNA), ("Bernd", BERND)]),
        5510,
        Box::new(move || {
            n += 1;
            [n; 16]
        }),
        limits,
    );
    for i in 0..3u64 {
        let at = format!("203.0.113.{i}:4000");
        r.connect(100 + i, Who::Agent(Fingerprint([i as u8; 32])), addr(&at), source(&at), MS).unwrap();
    }
    let at = "203.0.113.9:4000";
    assert_eq!(r.connect(200, Who::Agent(AGENT), addr(at), source(at), MS), Err(ConnectRefused::Full));
    assert!(r.connect(1, Who::Viewer(ANNA), addr("198.51.100.2:1"), source("198.51.100.2:1"), MS).is_ok());
    assert!(r.connect(2, Who::Viewer(BERND), addr("198.51.100.3:1"), source("198.51.100.3:1"), MS).is_ok());
    // A customer leaving makes room for the next.
    r.disconnect(100);
    assert!(r.connect(200, Who::Agent(AGENT), addr(at), source(at), MS).is_ok());
}

#[test]
fn one_place_cannot_keep_the_whole_staff_busy() {
    let now = Instant::now();
    let mut r = registry();
    r.connect(1, Who::Viewer(ANNA), addr("198.51.100.2:1"), source("198.51.100.2:1"), MS).unwrap();
    r.connect(2, Who::Viewer(BERND), addr("198.51.100.3:1"), source("198.51.100.3:1"), MS).unwrap();
    let ask = |r: &mut Registry, conn: ConnId, staff| {
        r.message(now, conn, ToRendezvous::Request { staff, label: String::new(), candidates: vec![] }, MS)
    };
    // Eight requests from one address keep Anna busy ...
    for i in 0..8u64 {
        let at = format!("203.0.113.5:{}", 4000 + i);
        r.connect(100 + i, Who::Agent(Fingerprint([i as u8; 32])), addr(&at), source(&at), MS).unwrap();
        assert!(matches!(
            &ask(&mut r, 100 + i, ANNA)[..],
            [Action::Send(1, FromRendezvous::Incoming { .. })]
        ));
    }
    // ... but a ninth from there cannot take Bernd as well.
    let at = "203.0.113.5:5000";
    r.connect(108, Who::Agent(AGENT), addr(at), source(at), MS).unwrap();
    let refused = vec![Action::Send(108, FromRendezvous::Refused { reason: Refusal::RateLimited })];
    assert_eq!(ask(&mut r, 108, BERND), refused);
    // Someone elsewhere reaches him.
    let at = "198.51.100.77:4000";
    r.connect(109, Who::Agent(AGENT2), addr(at), source(at), MS).unwrap();
    assert!(matches!(&ask(&mut r, 109, BERND)[..], [Action::Send(2, FromRendezvous::Incoming { .. })]));
}
