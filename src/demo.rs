//! `lifebuoy demo`: what the product can do so far, on this machine.
//!
//! Today that is the session core: a viewer and an agent with fresh keys
//! connect over loopback with each other's pins, exchange hellos, and show
//! the same verification code. The rendezvous, screen, input and files join
//! as their issues land.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lifebuoy::net::{make_endpoint, Identity};
use lifebuoy::proto::control::{Control, EndReason};
use lifebuoy::proto::hello::Capabilities;
use lifebuoy::proto::Role;
use lifebuoy::session::{LocalSide, Session};

pub fn run() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(demo())
}

async fn demo() -> anyhow::Result<()> {
    let viewer = LocalSide {
        identity: Arc::new(Identity::generate("demo technician")?),
        role: Role::Viewer,
        name: "Demo-Techniker".into(),
        capabilities: Capabilities::default(),
    };
    let agent = LocalSide {
        identity: Arc::new(Identity::generate("lifebuoy agent")?),
        role: Role::Agent,
        name: "Kunde 4711".into(),
        capabilities: Capabilities::default(),
    };
    let viewer_ep = make_endpoint("127.0.0.1:0".parse()?, Some(&viewer.identity)).context("viewer socket")?;
    let agent_ep = make_endpoint("127.0.0.1:0".parse()?, None).context("agent socket")?;
    let viewer_addr = viewer_ep.local_addr()?;
    println!("viewer  {}  on {viewer_addr}", viewer.identity.fingerprint());
    println!("agent   {}  (fresh key, never stored)", agent.identity.fingerprint());

    let agent_pin = agent.identity.fingerprint();
    let accept = {
        let viewer = viewer.clone();
        let ep = viewer_ep.clone();
        tokio::spawn(async move {
            let incoming = ep.accept().await.context("viewer endpoint closed")?;
            Ok::<_, anyhow::Error>(Session::accept(incoming, &viewer, agent_pin).await?)
        })
    };
    let started = Instant::now();
    let mut agent_session =
        Session::connect(&agent_ep, viewer_addr, &agent, viewer.identity.fingerprint()).await?;
    let agent_ready = started.elapsed();
    let mut viewer_session = accept.await??;
    let viewer_ready = started.elapsed();

    println!(
        "session up: agent trusted after {:.2} ms, viewer after {:.2} ms, rtt {:.2} ms",
        agent_ready.as_secs_f64() * 1e3,
        viewer_ready.as_secs_f64() * 1e3,
        agent_session.link.rtt().as_secs_f64() * 1e3
    );
    println!("verification code  agent: {}   viewer: {}", agent_session.peer.code, viewer_session.peer.code);
    anyhow::ensure!(agent_session.peer.code == viewer_session.peer.code, "codes differ");

    agent_session.control.tx.send(&Control::Clipboard { text: "Grüße vom Kunden".into() }).await?;
    if let Some(Control::Clipboard { text }) = viewer_session.control.rx.recv().await? {
        println!("viewer received over the control stream: {text:?}");
    }
    agent_session.end(EndReason::CustomerEnded).await;
    let why = viewer_session.link.closed().await;
    println!("viewer saw the end: {why}");
    agent_ep.wait_idle().await;
    Ok(())
}
