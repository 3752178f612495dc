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
    },
    /// Try lifebuoy on this machine: an agent and a viewer with fresh keys
    /// connect over loopback and show their verification codes.
    Demo,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFEBUOY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Id { name } => id(cli.config_dir, &name),
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

fn id(config_dir: Option<PathBuf>, name: &str) -> anyhow::Result<()> {
    let dir = lifebuoy::config::config_dir(config_dir)
        .ok_or_else(|| anyhow::anyhow!("no home folder found: pass --config-dir"))?;
    let path = dir.join(lifebuoy::config::TECHNICIAN_KEY);
    let (identity, created) = lifebuoy::net::Identity::load_or_create(&path, name)?;
    if created {
        eprintln!("Created a new technician key in {}", path.display());
    }
    println!("{}", identity.fingerprint());
    Ok(())
}
