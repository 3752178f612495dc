//! The `lifebuoy` command: one binary, one sub-command per role.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

/// lifebuoy: remote support for your customers, peer to peer over an
/// encrypted connection that only the technician the customer chose can
/// open.
#[derive(Parser, Debug)]
#[command(name = "lifebuoy", version, about, long_about = None)]
struct Cli {
    /// Folder for this machine's key (default: the system's config folder,
    /// e.g. ~/.config/lifebuoy; or $LIFEBUOY_CONFIG_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print this technician's certificate fingerprint, creating the key on
    /// first use. Give the fingerprint to your administrator for the staff
    /// directory; keep the key file private.
    Id {
        /// Name written into a newly created certificate.
        #[arg(long, default_value = "lifebuoy technician")]
        name: String,
        /// Print the rendezvous server's key instead (run on the server).
        #[arg(long)]
        rendezvous: bool,
    },
    /// Run the company's rendezvous server: staff directory, presence, and
    /// connection set-up between customers and technicians.
    Rendezvous {
        /// UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:5515", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Staff directory (TOML; see certs/staff.example.toml). Reloaded
        /// when it changes or on SIGHUP.
        #[arg(long, value_name = "FILE")]
        staff: PathBuf,
    },
    /// Try lifebuoy on this machine: an agent and a viewer with fresh keys
    /// connect over loopback and show their verification codes.
    Demo,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFEBUOY_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Id { name, rendezvous } => id(cli.config_dir, &name, rendezvous),
        Command::Rendezvous { listen, staff } => rendezvous(cli.config_dir, listen, staff),
        Command::Demo => demo::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifebuoy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn key(config_dir: Option<PathBuf>, file: &str, name: &str) -> anyhow::Result<lifebuoy::net::Identity> {
    let dir = lifebuoy::config::config_dir(config_dir)
        .ok_or_else(|| anyhow::anyhow!("no home folder found: pass --config-dir"))?;
    let path = dir.join(file);
    let (identity, created) = lifebuoy::net::Identity::load_or_create(&path, name)?;
    if created {
        eprintln!("Created a new key in {}", path.display());
    }
    Ok(identity)
}

fn id(config_dir: Option<PathBuf>, name: &str, rendezvous: bool) -> anyhow::Result<()> {
    let identity = if rendezvous {
        key(config_dir, lifebuoy::config::RENDEZVOUS_KEY, "lifebuoy rendezvous")?
    } else {
        key(config_dir, lifebuoy::config::TECHNICIAN_KEY, name)?
    };
    println!("{}", identity.fingerprint());
    Ok(())
}

fn rendezvous(
    config_dir: Option<PathBuf>,
    listen: std::net::SocketAddr,
    staff: PathBuf,
) -> anyhow::Result<()> {
    let identity = key(config_dir, lifebuoy::config::RENDEZVOUS_KEY, "lifebuoy rendezvous")?;
    let fingerprint = identity.fingerprint();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let server =
            lifebuoy::rendezvous::server::Server::start(lifebuoy::rendezvous::server::ServerConfig {
                listen,
                identity: std::sync::Arc::new(identity),
                directory: staff,
                limits: Default::default(),
            })
            .await?;
        println!("rendezvous listening on {} (UDP)", server.local_addr());
        println!("rendezvous fingerprint {fingerprint}");
        shutdown_signal().await;
        server.shutdown().await;
        Ok(())
    })
}

/// Ctrl+C, or SIGTERM (systemd, kill).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
