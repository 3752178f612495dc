//! A customer asks a technician for help through the company's rendezvous
//! server on loopback: staff list with presence, request, accept or
//! decline, the go signal, and then a real pinned session between the two
//! on the same sockets they used for the rendezvous.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use lifebuoy::net::{make_endpoint, Identity};
use lifebuoy::proto::close::CloseCode;
use lifebuoy::proto::hello::Capabilities;
use lifebuoy::proto::rendezvous::{
    Candidate, CandidateKind, FromRendezvous, Presence, Refusal, ToRendezvous,
};
use lifebuoy::proto::{Fingerprint, Role};
use lifebuoy::rendezvous::client::RendezvousClient;
use lifebuoy::rendezvous::server::{Limits, Server, ServerConfig};
use lifebuoy::session::{LocalSide, NonceGate, Session, SessionError};

struct Company {
    server: Server,
    fingerprint: Fingerprint,
    staff_file: tempfile::NamedTempFile,
}

fn staff_toml(staff: &[(&str, Fingerprint)]) -> String {
    staff.iter().map(|(n, fp)| format!("[[staff]]\nname = \"{n}\"\nfingerprint = \"{fp}\"\n")).collect()
}

async fn company(staff: &[(&str, Fingerprint)], limits: Limits) -> Company {
    let mut staff_file = tempfile::NamedTempFile::new().unwrap();
    staff_file.write_all(staff_toml(staff).as_bytes()).unwrap();
    let identity = Arc::new(Identity::generate("lifebuoy rendezvous").unwrap());
    let fingerprint = identity.fingerprint();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        identity,
        directory: staff_file.path().to_owned(),
        relay: Some("127.0.0.1:0".parse().unwrap()),
        relay_tcp: Some("127.0.0.1:0".parse().unwrap()),
        limits,
    })
    .await
    .unwrap();
    Company { server, fingerprint, staff_file }
}

struct Person {
    local: LocalSide,
    endpoint: quinn::Endpoint,
}

fn person(role: Role, name: &str) -> Person {
    let identity = Arc::new(Identity::generate(name).unwrap());
    let endpoint = make_endpoint("127.0.0.1:0".parse().unwrap(), Some(&identity)).unwrap();
    Person {
        local: LocalSide { identity, role, name: name.into(), capabilities: Capabilities::default() },
        endpoint,
    }
}

impl Person {
    fn fp(&self) -> Fingerprint {
        self.local.identity.fingerprint()
    }

    async fn sign_in(&self, company: &Company) -> Result<RendezvousClient, SessionError> {
        RendezvousClient::connect(
            &self.endpoint,
            company.server.local_addr(),
            &self.local,
            company.fingerprint,
        )
        .await
    }

    fn host_candidate(&self) -> Vec<Candidate> {
        vec![Candidate { addr: self.endpoint.local_addr().unwrap().into(), kind: CandidateKind::Host }]
    }
}

async fn next(client: &mut RendezvousClient) -> FromRendezvous {
    tokio::time::timeout(Duration::from_secs(5), client.recv())
        .await
        .expect("no message in 5 s")
        .unwrap()
        .unwrap()
}

/// The next message that is not a presence push.
async fn next_signal(client: &mut RendezvousClient) -> FromRendezvous {
    loop {
        match next(client).await {
            FromRendezvous::Staff { .. } => continue,
            other => return other,
        }
    }
}

fn presence(list: &FromRendezvous, fp: Fingerprint) -> Presence {
    match list {
        FromRendezvous::Staff { entries } => {
            entries.iter().find(|e| e.fingerprint == fp).expect("listed").presence
        }
        other => panic!("not a staff list: {other:?}"),
    }
}

#[tokio::test]
async fn customer_requests_technician_accepts_and_they_connect() {
    let anna = person(Role::Viewer, "Anna");
    let bernd = person(Role::Viewer, "Bernd");
    let company =
        company(&[("Anna Schmidt", anna.fp()), ("Bernd Weiß", bernd.fp())], Limits::default()).await;
    let mut anna_rv = anna.sign_in(&company).await.unwrap();
    assert_eq!(anna_rv.server_hello().role, Role::Rendezvous);

    let agent = person(Role::Agent, "lifebuoy agent");
    let mut agent_rv = agent.sign_in(&company).await.unwrap();
    agent_rv.send(&ToRendezvous::ListStaff).await.unwrap();
    let list = next(&mut agent_rv).await;
    assert_eq!(presence(&list, anna.fp()), Presence::Online);
    assert_eq!(presence(&list, bernd.fp()), Presence::Offline);

    agent_rv
        .send(&ToRendezvous::Request {
            staff: anna.fp(),
            label: "Kd.-Nr. 4711".into(),
            candidates: agent.host_candidate(),
        })
        .await
        .unwrap();
    let request = match next_signal(&mut anna_rv).await {
        FromRendezvous::Incoming { request, label, agent: agent_fp } => {
            assert_eq!(label, "Kd.-Nr. 4711");
            assert_eq!(agent_fp, agent.fp());
            request
        }
        other => panic!("expected a request, got {other:?}"),
    };
    anna_rv.send(&ToRendezvous::Accept { request, candidates: anna.host_candidate() }).await.unwrap();
    let FromRendezvous::Go(to_anna) = next_signal(&mut anna_rv).await else { panic!("no go for the viewer") };
    let FromRendezvous::Go(to_agent) = next_signal(&mut agent_rv).await else {
        panic!("no go for the agent")
    };
    assert_eq!(to_agent.peer, anna.fp());
    assert_eq!(to_anna.peer, agent.fp());
    assert!(to_agent.quic_client && !to_anna.quic_client);
    // The observed address is the socket both use for the rendezvous and the peer.
    let observed: std::net::SocketAddr = to_agent.observed.into();
    assert_eq!(observed, agent.endpoint.local_addr().unwrap());

    // The two connect on the same endpoints, each pinning what the go said.
    let anna_addr: std::net::SocketAddr = to_agent.peer_candidates[0].addr.into();
    let accept = async {
        let incoming = anna.endpoint.accept().await.unwrap();
        Session::accept(incoming, &anna.local, to_anna.peer, &NonceGate::new()).await
    };
    let (v, a) =
        tokio::join!(accept, Session::connect(&agent.endpoint, anna_addr, &agent.local, to_agent.peer));
    let (v, a) = (v.unwrap(), a.unwrap());
    assert_eq!(v.peer.code, a.peer.code);

    // Anna shows busy to the next customer.
    let other = person(Role::Agent, "agent 2");
    let mut other_rv = other.sign_in(&company).await.unwrap();
    other_rv.send(&ToRendezvous::ListStaff).await.unwrap();
    assert_eq!(presence(&next(&mut other_rv).await, anna.fp()), Presence::Busy);
}

#[tokio::test]
async fn declined_and_offline_requests_reach_the_customer() {
    let anna = person(Role::Viewer, "Anna");
    let bernd = person(Role::Viewer, "Bernd");
    let company = company(&[("Anna", anna.fp()), ("Bernd", bernd.fp())], Limits::default()).await;
    let mut anna_rv = anna.sign_in(&company).await.unwrap();
    let agent = person(Role::Agent, "agent");
    let mut agent_rv = agent.sign_in(&company).await.unwrap();

    agent_rv
        .send(&ToRendezvous::Request { staff: bernd.fp(), label: String::new(), candidates: vec![] })
        .await
        .unwrap();
    assert_eq!(next_signal(&mut agent_rv).await, FromRendezvous::Refused { reason: Refusal::Offline });

    agent_rv
        .send(&ToRendezvous::Request { staff: anna.fp(), label: String::new(), candidates: vec![] })
        .await
        .unwrap();
    let FromRendezvous::Incoming { request, .. } = next_signal(&mut anna_rv).await else { panic!() };
    anna_rv.send(&ToRendezvous::Decline { request }).await.unwrap();
    assert_eq!(next_signal(&mut agent_rv).await, FromRendezvous::Refused { reason: Refusal::Declined });

    // Cancel reaches the technician.
    agent_rv
        .send(&ToRendezvous::Request { staff: anna.fp(), label: String::new(), candidates: vec![] })
        .await
        .unwrap();
    let FromRendezvous::Incoming { request, .. } = next_signal(&mut anna_rv).await else { panic!() };
    agent_rv.send(&ToRendezvous::Cancel).await.unwrap();
    assert_eq!(next_signal(&mut anna_rv).await, FromRendezvous::Withdrawn { request });
}

#[tokio::test]
async fn technician_missing_from_the_directory_is_refused() {
    let anna = person(Role::Viewer, "Anna");
    let company = company(&[], Limits::default()).await;
    match anna.sign_in(&company).await.unwrap_err() {
        SessionError::PeerClosed { code: CloseCode::NotAuthorized, reason } => {
            assert!(reason.contains("not in the company's staff directory"), "{reason}")
        }
        e => panic!("unexpected: {e}"),
    }
}

#[tokio::test]
async fn agent_pinned_to_another_rendezvous_is_refused() {
    let company = company(&[], Limits::default()).await;
    let agent = person(Role::Agent, "agent");
    let other = Identity::generate("other rendezvous").unwrap();
    let err = RendezvousClient::connect(
        &agent.endpoint,
        company.server.local_addr(),
        &agent.local,
        other.fingerprint(),
    )
    .await
    .unwrap_err();
    match err {
        SessionError::WrongPeer { expected, presented } => {
            assert_eq!(expected, other.fingerprint());
            assert_eq!(presented, company.fingerprint);
        }
        e => panic!("unexpected: {e}"),
    }
}

#[tokio::test]
async fn directory_reload_signs_out_removed_technicians_and_lists_new_ones() {
    let anna = person(Role::Viewer, "Anna");
    let bernd = person(Role::Viewer, "Bernd");
    let company = company(&[("Anna", anna.fp())], Limits::default()).await;
    let mut anna_rv = anna.sign_in(&company).await.unwrap();
    assert!(bernd.sign_in(&company).await.is_err());

    // The administrator edits the file; the server notices by itself.
    std::fs::write(company.staff_file.path(), staff_toml(&[("Bernd", bernd.fp())])).unwrap();
    // Anna is signed out with the reason ...
    let err = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match anna_rv.recv().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended without a reason"),
                Err(e) => return e,
            }
        }
    })
    .await
    .unwrap();
    match err {
        SessionError::PeerClosed { code: CloseCode::NotAuthorized, reason } => {
            assert_eq!(reason, "removed from the staff directory")
        }
        e => panic!("unexpected: {e}"),
    }
    // ... and Bernd may sign in now.
    let _bernd_rv = bernd.sign_in(&company).await.unwrap();

    // A broken file is not loaded (here on an explicit reload, what SIGHUP
    // does): Bernd stays signed in.
    std::fs::write(company.staff_file.path(), "[[staff]]\nname = 3\n").unwrap();
    company.server.reload().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let agent = person(Role::Agent, "agent");
    let mut agent_rv = agent.sign_in(&company).await.unwrap();
    agent_rv.send(&ToRendezvous::ListStaff).await.unwrap();
    assert_eq!(presence(&next(&mut agent_rv).await, bernd.fp()), Presence::Online);
}

#[tokio::test]
async fn a_flooding_client_is_cut_off_and_others_are_still_served() {
    let anna = person(Role::Viewer, "Anna");
    let company = company(&[("Anna", anna.fp())], Limits::default()).await;
    let _anna_rv = anna.sign_in(&company).await.unwrap();
    let flooder = person(Role::Agent, "flood");
    let mut flood_rv = flooder.sign_in(&company).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(e) = flood_rv.send(&ToRendezvous::ListStaff).await {
                return e;
            }
            // Let this single-threaded runtime drive the connection.
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the flood must be cut off");
    assert!(matches!(err, SessionError::PeerClosed { code: CloseCode::Busy, .. }), "{err}");

    let customer = person(Role::Agent, "customer");
    let mut rv = customer.sign_in(&company).await.unwrap();
    rv.send(&ToRendezvous::ListStaff).await.unwrap();
    assert_eq!(presence(&next(&mut rv).await, anna.fp()), Presence::Online);
    assert!(company.server.stats().limited.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn sighup_reloads_the_directory_of_the_real_server() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_lifebuoy");
    let anna = person(Role::Viewer, "Anna");
    let placeholder = Fingerprint([0x11; 32]);
    let staff = dir.path().join("staff.toml");
    std::fs::write(&staff, staff_toml(&[("Anna", placeholder)])).unwrap();
    // Remember the file's modification time in a reference file.
    let reference = dir.path().join("reference");
    std::fs::write(&reference, "").unwrap();
    assert!(std::process::Command::new("touch")
        .arg("-r")
        .arg(&staff)
        .arg(&reference)
        .status()
        .unwrap()
        .success());
    let pin_out = std::process::Command::new(bin)
        .arg("--config-dir")
        .arg(dir.path())
        .args(["id", "--rendezvous"])
        .output()
        .unwrap();
    let pin: Fingerprint = String::from_utf8(pin_out.stdout).unwrap().trim().parse().unwrap();
    /// Kills the server however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Running(
        std::process::Command::new(bin)
            .arg("--config-dir")
            .arg(dir.path())
            .args(["rendezvous", "--listen", "127.0.0.1:0", "--no-relay", "--staff"])
            .arg(&staff)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(server.0.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("rendezvous listening on ").map(|a| a.trim_end_matches(" (UDP)").parse().unwrap())
        })
        .unwrap();
    // Keep reading, as a terminal would.
    std::thread::spawn(move || lines.for_each(drop));
    let company_pin = pin;
    let sign_in = |p: &Person| {
        let local = p.local.clone();
        let endpoint = p.endpoint.clone();
        async move { RendezvousClient::connect(&endpoint, addr, &local, company_pin).await }
    };
    assert!(sign_in(&anna).await.is_err(), "not listed yet");

    // Same length, same modification time: only the signal can tell the server.
    std::fs::write(&staff, staff_toml(&[("Anna", anna.fp())])).unwrap();
    let touched = std::process::Command::new("touch").arg("-r").arg(&reference).arg(&staff).status().unwrap();
    assert!(touched.success());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sign_in(&anna).await.is_err(), "the file watcher must not have seen it");

    let hup = std::process::Command::new("kill").args(["-HUP", &server.0.id().to_string()]).status().unwrap();
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    sign_in(&anna).await.expect("listed after SIGHUP");
}
