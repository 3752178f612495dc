//! The technician's side without a window: sign in with the long-lived
//! key, answer requests, connect by the best path, hold each session.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use lifebuoy_proto::control::EndReason;
use lifebuoy_proto::hello::Capabilities;
use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy_proto::Role;

use super::say;
use super::CompanyServer;
use crate::net::candidates::host_candidates;
use crate::net::punch::connect_peer;
use crate::net::Identity;
use crate::session::LocalSide;

/// How the headless viewer behaves.
#[derive(Clone, Debug)]
pub struct ViewerOptions {
    /// The company's server.
    pub server: CompanyServer,
    /// The technician's name as shown to the customer.
    pub name: String,
    /// Accept every request (scripted tests); otherwise decline them.
    pub accept: bool,
    /// Exit after this many sessions (0: never).
    pub sessions: u32,
}

/// Runs the viewer.
pub async fn run(identity: Identity, options: ViewerOptions) -> anyhow::Result<()> {
    let identity = Arc::new(identity);
    let local = LocalSide {
        identity,
        role: Role::Viewer,
        name: options.name.clone(),
        capabilities: Capabilities::default(),
    };
    let (endpoint, mut rv) = super::sign_in(&options.server, &local).await?;
    say!("signed in as {} ({})", options.name, local.identity.fingerprint());
    let mut served = 0;
    loop {
        let msg = tokio::select! {
            m = rv.recv() => m?,
            _ = super::shutdown_signal() => { rv.close(); return Ok(()); }
        };
        match msg {
            Some(FromRendezvous::Incoming { request, label, agent }) => {
                say!("request {request} from {label:?} ({})", agent.short());
                if !options.accept {
                    rv.send(&ToRendezvous::Decline { request }).await?;
                    continue;
                }
                let accepted = Instant::now();
                let port = endpoint.local_addr().port();
                rv.send(&ToRendezvous::Accept { request, candidates: host_candidates(port) }).await?;
                let go = loop {
                    match rv.recv().await? {
                        Some(FromRendezvous::Go(go)) if go.request == request => break Some(go),
                        Some(FromRendezvous::Withdrawn { request: r }) if r == request => {
                            say!("request {request} was withdrawn");
                            break None;
                        }
                        Some(_) => continue,
                        None => bail!("the company server ended the connection"),
                    }
                };
                let Some(go) = go else { continue };
                let relay = options.server.relay(go.relay_port);
                match connect_peer(&endpoint, &local, &go, relay).await {
                    Ok(link) => {
                        say!(
                            "connected: {} accept_to_session_ms={:.1} code={}",
                            link.summary(),
                            accepted.elapsed().as_secs_f64() * 1e3,
                            link.session.peer.code
                        );
                        let session = link.session;
                        tokio::select! {
                            why = session.link.closed() => say!("session ended: {why}"),
                            _ = super::shutdown_signal() => {
                                session.end(EndReason::TechnicianEnded).await;
                                rv.close();
                                endpoint.quic.wait_idle().await;
                                return Ok(());
                            }
                        }
                    }
                    Err(e) => say!("could not reach the customer: {e}"),
                }
                rv.send(&ToRendezvous::SetBusy { busy: false }).await.context("signing back in")?;
                served += 1;
                if options.sessions != 0 && served >= options.sessions {
                    rv.close();
                    endpoint.quic.wait_idle().await;
                    return Ok(());
                }
            }
            Some(_) => {}
            None => bail!("the company server ended the connection"),
        }
    }
}
