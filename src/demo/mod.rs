//! `lifebuoy demo`: the whole product on this machine. A rendezvous with a
//! staff directory of one, a technician's viewer signed in to it, and a
//! customer's agent sharing a desktop of its own (Xvfb with a terminal),
//! all on loopback. With a desktop, the two windows as two processes of
//! this program; headless, the story told by [`headless`] with a report.

mod desktop;
mod headless;

pub use headless::run;

use std::sync::Arc;

use anyhow::Context;
use lifebuoy::net::Identity;
use lifebuoy::rendezvous::server::{Limits, Server, ServerConfig};
use lifebuoy::roles::CompanyServer;

use desktop::Desktop;

/// The demo with windows: the technician's viewer and the customer's agent
/// as two processes of this binary, on this desktop, until the agent closes.
pub fn run_windows(lang: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(windows(lang))
}

async fn windows(lang: &str) -> anyhow::Result<()> {
    use std::process::Command;
    let dir = tempfile::tempdir().context("a temporary folder for the demo")?;
    let (technician, _) =
        Identity::load_or_create(&dir.path().join(lifebuoy::config::TECHNICIAN_KEY), "Demo-Techniker")?;
    let (company, server) = company(dir.path(), &technician).await?;
    let exe = std::env::current_exe().context("finding this program")?;
    let server_args = |cmd: &mut Command| {
        cmd.args(["--rendezvous", &company.addr.to_string(), "--rendezvous-pin", &company.pin.to_string()])
            .args(["--tunnel-port", &company.tunnel_port.to_string(), "--lang", lang]);
    };
    println!("== the technician's window (Demo-Techniker)");
    let mut viewer = Command::new(&exe);
    viewer.args(["--config-dir", &dir.path().display().to_string(), "viewer", "--name", "Demo-Techniker"]);
    viewer.arg("--inbox").arg(inbox(dir.path(), "technician-inbox")?);
    viewer.arg("--audit-log").arg(dir.path().join("technician-audit.jsonl"));
    server_args(&mut viewer);
    let mut viewer = viewer.spawn().context("starting the viewer")?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // The customer's screen is a desktop of its own (with an xterm), so the
    // technician does not look at a picture of their own window.
    let desktop = match Desktop::start(dir.path()) {
        Ok(d) => Some(d),
        Err(e) => {
            println!("== the customer's agent shows this desktop: {e:#}");
            None
        }
    };
    println!(
        "== the customer's window: double-click Demo-Techniker, accept in the technician's window, \
         then compare the code and allow in the customer's window"
    );
    let mut agent = Command::new(&exe);
    agent.args(["agent", "--company", "Demo GmbH", "--label", "Kunde 4711"]);
    agent.arg("--inbox").arg(inbox(dir.path(), "customer-inbox")?);
    agent.arg("--audit-log").arg(dir.path().join("customer-audit.jsonl"));
    if let Some(d) = &desktop {
        println!("== the customer's desktop: Xvfb {} with a terminal", d.display);
        agent.args(["--display", &d.display]);
    }
    server_args(&mut agent);
    let mut agent = agent.spawn().context("starting the agent")?;
    match exited(&mut agent).await? {
        Some(status) => {
            println!(
                "== the customer's agent exited ({status}); close the technician's window to end the demo"
            );
            if exited(&mut viewer).await?.is_none() {
                stop(&mut viewer);
            }
        }
        None => {
            // Ended with Ctrl+C or SIGTERM: the windows go with the demo.
            stop(&mut agent);
            stop(&mut viewer);
        }
    }
    drop(desktop);
    server.shutdown().await;
    Ok(())
}

/// Waits until `child` exits (its status) or the demo is told to stop (None).
async fn exited(child: &mut std::process::Child) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let signal = lifebuoy::roles::shutdown_signal();
    tokio::pin!(signal);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        tokio::select! {
            _ = &mut signal => return Ok(None),
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    }
}

/// Asks a window process to end as a customer's tray Close would (SIGTERM),
/// and makes sure it is gone.
fn stop(child: &mut std::process::Child) {
    #[cfg(target_os = "linux")]
    {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..20 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A folder for received files, inside the demo's own.
fn inbox(dir: &std::path::Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let inbox = dir.join(name);
    std::fs::create_dir_all(&inbox)?;
    Ok(inbox)
}

/// A rendezvous on loopback whose staff directory lists `technician`.
async fn company(dir: &std::path::Path, technician: &Identity) -> anyhow::Result<(CompanyServer, Server)> {
    let staff = dir.join("staff.toml");
    std::fs::write(
        &staff,
        format!(
            "[[staff]]\nname = \"Demo-Techniker\"\nfingerprint = \"{}\"\ngroup = \"Support\"\n",
            technician.fingerprint()
        ),
    )?;
    let rendezvous = Arc::new(Identity::generate("lifebuoy rendezvous")?);
    let pin = rendezvous.fingerprint();
    let server = Server::start(ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        identity: rendezvous,
        directory: staff,
        relay: Some("127.0.0.1:0".parse()?),
        relay_tcp: Some("127.0.0.1:0".parse()?),
        limits: Limits::default(),
    })
    .await?;
    let company = CompanyServer {
        addr: server.local_addr(),
        pin,
        tunnel_port: server.relay_tcp_addr().map_or(5511, |a| a.port()),
    };
    println!("== rendezvous on {} (fingerprint {})", company.addr, pin.short());
    Ok((company, server))
}
