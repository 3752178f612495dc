//! The company server crashes and comes back on the same port with the
//! same key: technicians and waiting customers sign in again by themselves
//! within seconds, a new request reaches the technician, and a session in
//! progress goes on untouched.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use lifebuoy::net::Identity;
use lifebuoy::proto::rendezvous::Presence;
use lifebuoy::proto::Fingerprint;
use lifebuoy::roles::agent::{AgentCommand, AgentEvent};
use lifebuoy::roles::viewer::{ViewerCommand, ViewerEvent};
use lifebuoy::roles::CompanyServer;

/// How long a restart may keep a technician away: the next keep-alive
/// (5 s), the reset it draws, the first back-off and the sign-in.
const BACK_WITHIN: Duration = Duration::from_secs(9);

/// A real rendezvous process listing Anna; its key and directory stay for
/// the restart.
struct Company {
    dir: tempfile::TempDir,
    process: common::RendezvousProcess,
}

impl Company {
    fn start(anna: &Identity) -> Company {
        let dir = tempfile::tempdir().unwrap();
        let staff = dir.path().join("staff.toml");
        std::fs::write(
            &staff,
            format!("[[staff]]\nname = \"Anna\"\nfingerprint = \"{}\"\n", anna.fingerprint()),
        )
        .unwrap();
        let process = common::rendezvous_process(&dir.path().join("rv"), &staff, &[], Stdio::inherit());
        Company { dir, process }
    }

    fn server(&self) -> CompanyServer {
        CompanyServer { addr: self.process.udp, pin: self.process.pin, tunnel_port: self.process.tcp.port() }
    }

    /// Killed without a word to anyone (a crash), then started again on
    /// the same UDP port; returns when it listens.
    fn crash_and_restart(&mut self) -> Instant {
        self.process.child.kill().unwrap();
        self.process.child.wait().unwrap();
        let listen = self.process.udp.to_string();
        let (config, staff) = (self.dir.path().join("rv"), self.dir.path().join("staff.toml"));
        let again = common::rendezvous_process_on(&listen, &config, &staff, &[], Stdio::inherit());
        assert_eq!(again.pin, self.process.pin, "the same key after the restart");
        self.process = again;
        Instant::now()
    }
}

impl Drop for Company {
    fn drop(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

fn anna_online(e: AgentEvent) -> Option<Fingerprint> {
    match e {
        AgentEvent::Staff(list) => list
            .into_iter()
            .find(|s| s.name == "Anna" && s.presence == Presence::Online)
            .map(|s| s.fingerprint),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn technician_and_waiting_customer_come_back_after_a_crash_and_a_new_request_reaches_her() {
    let anna = Identity::generate("Anna").unwrap();
    let mut company = Company::start(&anna);
    let mut d = common::Drivers::against(company.server(), anna, None, |_| {}).await;
    d.agent_until("Anna online", anna_online).await;

    let restarted = company.crash_and_restart();
    let why = d
        .viewer_until("the viewer noticing", |e| match e {
            ViewerEvent::CompanyServerLost { why, .. } => Some(why),
            _ => None,
        })
        .await;
    d.viewer_until("the viewer signed in again", |e| matches!(e, ViewerEvent::SignedIn { .. }).then_some(()))
        .await;
    let viewer_back = restarted.elapsed();
    d.agent_until("the agent noticing", |e| matches!(e, AgentEvent::CompanyServerLost { .. }).then_some(()))
        .await;
    let fingerprint = d.agent_until("Anna online again", anna_online).await;
    let listed_again = restarted.elapsed();
    eprintln!("viewer back after {viewer_back:?} ({why}), Anna listed again after {listed_again:?}");
    assert!(listed_again < BACK_WITHIN, "Anna listed online again only after {listed_again:?}");

    // A new request reaches her, and the session stands.
    d.agent.send(AgentCommand::Request { staff: fingerprint, label: "Kunde".into() }).await.unwrap();
    let request = d
        .viewer_until("the request after the restart", |e| match e {
            ViewerEvent::Incoming { request, .. } => Some(request),
            _ => None,
        })
        .await;
    d.viewer.send(ViewerCommand::Accept(request)).await.unwrap();
    let path = d
        .viewer_until("the session", |e| match e {
            ViewerEvent::Connected { path, .. } => Some(path),
            _ => None,
        })
        .await;
    eprintln!("session: {path}");
    let offer = d
        .agent_until("the customer's question", |e| match e {
            AgentEvent::Connected { offer, .. } => Some(offer),
            _ => None,
        })
        .await;

    // A crash during the session: the session does not notice; the
    // customer's yes after it still reaches the technician.
    company.crash_and_restart();
    d.agent.send(AgentCommand::Allow(offer.choice)).await.unwrap();
    d.viewer_until("the customer's yes after the crash", |e| match e {
        ViewerEvent::Permissions(_) => Some(()),
        ViewerEvent::Ended(e) => panic!("the session ended with the server: {e}"),
        _ => None,
    })
    .await;

    // When it ends, the technician signs in again.
    d.viewer.send(ViewerCommand::End).await.unwrap();
    let ended = Instant::now();
    d.viewer_until("the end of the session", |e| matches!(e, ViewerEvent::Ended(_)).then_some(())).await;
    d.viewer_until("the viewer signed in again after the session", |e| {
        matches!(e, ViewerEvent::SignedIn { .. }).then_some(())
    })
    .await;
    assert!(ended.elapsed() < BACK_WITHIN, "signed in again only {:?} after the session", ended.elapsed());
    d.viewer.send(ViewerCommand::Quit).await.unwrap();
}
