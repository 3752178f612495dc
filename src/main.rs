//! The `lifebuoy` command: one binary, one sub-command per role.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lifebuoy::config::{config_dir, RENDEZVOUS_KEY, TECHNICIAN_KEY};
use lifebuoy::net::Identity;
use lifebuoy::proto::Fingerprint;
use lifebuoy::rendezvous::limits::Rate;
use lifebuoy::rendezvous::server::Limits;
use lifebuoy::roles::{self, CompanyServer};

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

#[derive(Args, Debug, Clone, Copy)]
struct Server {
    /// The company's rendezvous server (host IP and UDP port).
    #[arg(long, value_name = "ADDR")]
    rendezvous: SocketAddr,
    /// The rendezvous server's fingerprint (`lifebuoy id --rendezvous` on the server).
    #[arg(long, value_name = "FINGERPRINT")]
    rendezvous_pin: Fingerprint,
    /// TCP port of the tunnel on the rendezvous host, used when UDP is blocked.
    #[arg(long, default_value_t = 5511, value_name = "PORT")]
    tunnel_port: u16,
}

impl From<Server> for CompanyServer {
    fn from(s: Server) -> CompanyServer {
        CompanyServer { addr: s.rendezvous, pin: s.rendezvous_pin, tunnel_port: s.tunnel_port }
    }
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
        listen: SocketAddr,
        /// Staff directory (TOML; see certs/staff.example.toml). Reloaded
        /// when it changes or on SIGHUP.
        #[arg(long, value_name = "FILE")]
        staff: PathBuf,
        /// UDP address of the relay, for customers and technicians whose
        /// NATs defeat a direct connection.
        #[arg(long, default_value = "0.0.0.0:5510", value_name = "ADDR")]
        relay: SocketAddr,
        /// TCP address of the tunnel for networks that block UDP.
        #[arg(long, default_value = "0.0.0.0:5511", value_name = "ADDR")]
        relay_tcp: SocketAddr,
        /// Run without a relay (and without the TCP tunnel).
        #[arg(long)]
        no_relay: bool,
        /// Most clients signed in at once (a twentieth of them is kept for
        /// technicians: a flood of customers cannot lock the staff out).
        #[arg(long, default_value_t = 20_000)]
        max_connections: usize,
        /// Most clients at once from one IPv4 address or IPv6 /64 (an
        /// office behind one NAT counts once; tunnel clients by their own).
        #[arg(long, default_value_t = 512)]
        max_connections_per_ip: usize,
        /// New connections per second from one IP address (bursts of five
        /// times as many pass).
        #[arg(long, default_value_t = 20.0)]
        connect_rate_per_ip: f64,
    },
    /// The customer's side: a window lists the company's support staff;
    /// double-click one to ask for help. With --staff, no window (scripts).
    Agent {
        #[command(flatten)]
        server: Server,
        /// The audit log (JSON lines; default: audit.jsonl in your data folder).
        #[arg(long, value_name = "FILE")]
        audit_log: Option<PathBuf>,
        /// Ask this technician without a window: name as listed, or fingerprint.
        #[arg(long)]
        staff: Option<String>,
        /// The company's name in the window's title.
        #[arg(long, default_value = "lifebuoy")]
        company: String,
        /// Language of the window: de or en (default: the system's).
        #[arg(long, value_name = "LANG")]
        lang: Option<String>,
        /// Your name or customer number, shown to the technician.
        #[arg(long, default_value = "")]
        label: String,
        /// End the session as soon as it stands (for scripted tests).
        #[arg(long)]
        end_after_connect: bool,
        /// End the session after this many seconds (for scripted tests).
        #[arg(long, value_name = "SECONDS")]
        end_after: Option<f64>,
        /// X display to share (default: $DISPLAY).
        #[arg(long, value_name = "DISPLAY")]
        display: Option<String>,
        /// Let the technician see the screen but not move the mouse or type.
        #[arg(long)]
        view_only: bool,
        /// Do not exchange clipboard text with the technician.
        #[arg(long)]
        no_clipboard: bool,
        /// Send what you copy to the technician from the start (otherwise
        /// only once you switch it on; text from the technician is taken either way).
        #[arg(long)]
        clipboard_to_technician: bool,
        /// Refuse files from the technician and send none.
        #[arg(long)]
        no_files: bool,
        /// Folder for files from the technician (default: Downloads/lifebuoy).
        #[arg(long, value_name = "DIR")]
        inbox: Option<PathBuf>,
        /// Send this file or folder to the technician once connected (repeatable).
        #[arg(long = "send-file", value_name = "PATH")]
        send_files: Vec<PathBuf>,
        /// With --staff: let the technician in as soon as the connection
        /// stands, without asking (for scripts that stand for the customer).
        /// Without it you are asked on the terminal, with the code.
        #[arg(long, requires = "staff")]
        allow: bool,
    },
    /// The technician's side: a window shows requests and the customer's
    /// screen. With --headless (or --accept-all), no window (scripts).
    Viewer {
        #[command(flatten)]
        server: Server,
        /// The audit log (JSON lines; default: audit.jsonl in your data folder).
        #[arg(long, value_name = "FILE")]
        audit_log: Option<PathBuf>,
        /// No window: answer requests as the flags below say.
        #[arg(long)]
        headless: bool,
        /// Language of the window: de or en (default: the system's).
        #[arg(long, value_name = "LANG")]
        lang: Option<String>,
        /// Your name as customers see it in the hello.
        #[arg(long, default_value = "technician")]
        name: String,
        /// Accept every request automatically (for scripted tests; implies --headless).
        #[arg(long)]
        accept_all: bool,
        /// Exit after this many sessions (0: keep serving).
        #[arg(long, default_value_t = 0)]
        sessions: u32,
        /// Save the last picture of each session's screen here (PPM).
        #[arg(long, value_name = "FILE")]
        screenshot: Option<PathBuf>,
        /// Show this monitor of the customer's (ids as the session lists them).
        #[arg(long, value_name = "ID")]
        monitor: Option<u8>,
        /// Type this text (then Enter) on the customer's machine once the screen shows.
        #[arg(long, value_name = "TEXT")]
        type_text: Option<String>,
        /// Put this text on the customer's clipboard once the session stands.
        #[arg(long, value_name = "TEXT")]
        clipboard: Option<String>,
        /// Folder for files from the customer (default: Downloads/lifebuoy).
        #[arg(long, value_name = "DIR")]
        inbox: Option<PathBuf>,
        /// Send this file or folder to the customer once connected (repeatable).
        #[arg(long = "send-file", value_name = "PATH")]
        send_files: Vec<PathBuf>,
        /// Measure input -> photon: send --photon-keys presses of `x` and time each until this
        /// region of the customer's screen (WxH+X+Y) changes, then end the session.
        #[arg(long, value_name = "WxH+X+Y", value_parser = lifebuoy::roles::probe::parse_region)]
        photon: Option<lifebuoy::proto::codec::Rect>,
        /// Keys for --photon.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        photon_keys: u32,
    },
    /// Try lifebuoy on this machine: rendezvous, viewer and agent on
    /// loopback, with the agent sharing its own Xvfb desktop.
    Demo {
        /// No windows: run the whole story under its own Xvfb and print a report.
        #[arg(long)]
        headless: bool,
        /// Language of the windows: de or en (default: the system's).
        #[arg(long, value_name = "LANG")]
        lang: Option<String>,
    },
    /// Make your company's agent as one file: a copy of this program with
    /// your name, rendezvous and pin inside. Customers download it and
    /// start it; nothing to set up. Sign the result (Authenticode, codesign).
    PackAgent {
        /// Your company's name, shown in the customer's window.
        #[arg(long)]
        company: String,
        /// Your rendezvous server, HOST:PORT (a name is looked up at each start).
        #[arg(long, value_name = "HOST:PORT")]
        rendezvous: String,
        /// The rendezvous server's fingerprint (`lifebuoy id --rendezvous` on the server).
        #[arg(long, value_name = "FINGERPRINT")]
        rendezvous_pin: Fingerprint,
        /// TCP port of the tunnel on the rendezvous host.
        #[arg(long, default_value_t = 5511, value_name = "PORT")]
        tunnel_port: u16,
        /// The window's language, de or en (default: the customer's system).
        #[arg(long, value_name = "LANG")]
        lang: Option<String>,
        /// Send what the customer copies to the technician from the start
        /// (the customer can switch it off; default: off until switched on).
        #[arg(long)]
        clipboard_to_technician: bool,
        /// The program to pack (default: this one; e.g. lifebuoy.exe for Windows customers).
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Where to write the agent.
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
    },
    /// Record an X display to a raw BGRX frame file (for `bench-codec`).
    Record {
        /// The display, e.g. :1.
        #[arg(long)]
        display: String,
        /// Seconds to record.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Frames per second.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Run the screen codec over a recording: kbit/s, ms per frame, bit-exactness.
    BenchCodec {
        /// Raw BGRX frames, as `record` writes them.
        #[arg(long)]
        input: Vec<PathBuf>,
        /// Frame size, e.g. 1920x1080.
        #[arg(long, default_value = "1920x1080")]
        size: String,
        /// Frame format (only bgrx).
        #[arg(long, default_value = "bgrx")]
        format: String,
        /// The recording's frame rate.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
    },
}

/// Logs to stderr; `LIFEBUOY_LOG` overrides. The rendezvous says who
/// signs in and who leaves (its operator's view of presence).
fn init_log(rendezvous: bool) {
    // enigo warns about every unmapped modifier of the X keymap, winit about
    // X settings a bare X server lacks: not the customer's concern.
    let default = match rendezvous {
        true => "warn,lifebuoy::presence=info",
        false => "warn,enigo=error,winit=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFEBUOY_LOG").unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    // A packed agent started with no arguments (double-clicked by the
    // customer) opens the company's agent window.
    let packed = match std::env::args_os().len() {
        1 => lifebuoy::pack::this_program(),
        _ => Ok(None),
    };
    let result = match packed {
        Ok(Some(config)) => {
            init_log(false);
            run_packed(config)
        }
        Ok(None) => {
            let cli = Cli::parse();
            init_log(matches!(cli.command, Command::Rendezvous { .. }));
            run(cli)
        }
        Err(e) => {
            init_log(false);
            Err(e.into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifebuoy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The packed agent: the company's configuration, the customer's window.
fn run_packed(config: lifebuoy::pack::PackedConfig) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    let lang = language(config.lang.as_deref())?;
    let pin = config.pin.parse().map_err(|_| anyhow::anyhow!("the packed rendezvous pin is invalid"))?;
    // A name is looked up at each start; IPv4 first (the NAT-friendly case).
    let addrs: Vec<SocketAddr> =
        config.rendezvous.to_socket_addrs().map(Iterator::collect).unwrap_or_default();
    let Some(addr) = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied() else {
        let why = format!("cannot look up {}", config.rendezvous);
        return lifebuoy::ui::agent::open_failed(config.company, lang, roles::Failure::Unreachable(why));
    };
    let setup = roles::agent::AgentSetup {
        server: CompanyServer { addr, pin, tunnel_port: config.tunnel_port },
        display: None,
        view_only: false,
        no_clipboard: false,
        clipboard_to_technician: config.clipboard_to_technician,
        no_files: false,
        inbox: None,
        audit_log: None,
    };
    lifebuoy::ui::agent::open(setup, config.company, String::new(), lang)
}

fn pack_agent(
    config: lifebuoy::pack::PackedConfig,
    from: Option<PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let (host, port) = config
        .rendezvous
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--rendezvous must be HOST:PORT, e.g. support.example.com:5515"))?;
    anyhow::ensure!(!host.is_empty() && port.parse::<u16>().is_ok(), "--rendezvous must be HOST:PORT");
    language(config.lang.as_deref())?;
    let from = match from {
        Some(f) => f,
        None => std::env::current_exe()?,
    };
    lifebuoy::pack::pack(&from, &config, out)?;
    println!(
        "{}: the agent of {} (rendezvous {}, pin {}); customers start it with no set-up",
        out.display(),
        config.company,
        config.rendezvous,
        &config.pin[..16]
    );
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.config_dir;
    let runtime = || tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match cli.command {
        Command::Id { name, rendezvous } => {
            let identity = if rendezvous {
                key(dir, RENDEZVOUS_KEY, "lifebuoy rendezvous")?
            } else {
                key(dir, TECHNICIAN_KEY, &name)?
            };
            println!("{}", identity.fingerprint());
            Ok(())
        }
        Command::Rendezvous {
            listen,
            staff,
            relay,
            relay_tcp,
            no_relay,
            max_connections,
            max_connections_per_ip,
            connect_rate_per_ip,
        } => {
            let identity = key(dir, RENDEZVOUS_KEY, "lifebuoy rendezvous")?;
            let mut limits = Limits::with_max_connections(max_connections);
            limits.admission.connections_per_source = max_connections_per_ip;
            limits.admission.connects_per_source =
                Rate { per_second: connect_rate_per_ip, burst: connect_rate_per_ip * 5.0 };
            runtime()?.block_on(roles::rendezvous::run(
                identity,
                listen,
                staff,
                (!no_relay).then_some(relay),
                (!no_relay).then_some(relay_tcp),
                limits,
            ))
        }
        Command::Agent {
            audit_log,
            server,
            staff,
            company,
            lang,
            label,
            end_after_connect,
            end_after,
            display,
            view_only,
            no_clipboard,
            clipboard_to_technician,
            no_files,
            inbox,
            send_files,
            allow,
        } => {
            let setup = roles::agent::AgentSetup {
                audit_log,
                server: server.into(),
                display,
                view_only,
                no_clipboard,
                clipboard_to_technician,
                no_files,
                inbox,
            };
            match staff {
                Some(staff) => runtime()?.block_on(roles::agent::run(roles::agent::AgentOptions {
                    setup,
                    staff,
                    label,
                    end_after_connect,
                    end_after: end_after.map(std::time::Duration::from_secs_f64),
                    send_files,
                    consent: if allow { roles::agent::Consent::Allow } else { roles::agent::Consent::Ask },
                })),
                None => lifebuoy::ui::agent::open(setup, company, label, language(lang.as_deref())?),
            }
        }
        Command::Viewer {
            audit_log,
            server,
            headless,
            lang,
            name,
            accept_all,
            sessions,
            screenshot,
            monitor,
            type_text,
            clipboard,
            inbox,
            send_files,
            photon,
            photon_keys,
        } => {
            let identity = key(dir, TECHNICIAN_KEY, &name)?;
            let setup = roles::viewer::ViewerSetup { server: server.into(), name, inbox, audit_log };
            if !headless && !accept_all {
                return lifebuoy::ui::viewer::open(identity, setup, language(lang.as_deref())?);
            }
            runtime()?.block_on(roles::viewer::run(
                identity,
                roles::viewer::ViewerOptions {
                    setup,
                    accept: accept_all,
                    sessions,
                    screenshot,
                    monitor,
                    type_text,
                    clipboard,
                    send_files,
                    photon: photon.map(|region| (region, photon_keys as usize)),
                },
            ))
        }
        Command::Demo { headless, lang } => {
            let windows = !headless && std::env::var_os("DISPLAY").is_some();
            if !headless && !windows {
                println!("== no desktop here ($DISPLAY is not set): running the headless demo");
            }
            match windows {
                true => demo::run_windows(lang.as_deref().unwrap_or(language(None)?.code())),
                false => demo::run(),
            }
        }
        Command::PackAgent {
            company,
            rendezvous,
            rendezvous_pin,
            tunnel_port,
            lang,
            clipboard_to_technician,
            from,
            out,
        } => {
            let config = lifebuoy::pack::PackedConfig {
                company,
                rendezvous,
                pin: rendezvous_pin.to_string(),
                tunnel_port,
                lang,
                clipboard_to_technician,
            };
            pack_agent(config, from, &out)
        }
        Command::Record { display, seconds, fps, out } => record(&display, seconds, fps, &out),
        Command::BenchCodec { input, size, format, fps } => bench_codec(&input, &size, &format, fps),
    }
}

/// The window's language: `--lang`, else the system's.
fn language(lang: Option<&str>) -> anyhow::Result<lifebuoy::ui::Lang> {
    match lang {
        Some(l) => l.parse().map_err(|_| anyhow::anyhow!("--lang must be de or en, not {l:?}")),
        None => Ok(lifebuoy::ui::Lang::from_system()),
    }
}

fn key(explicit: Option<PathBuf>, file: &str, name: &str) -> anyhow::Result<Identity> {
    let dir =
        config_dir(explicit).ok_or_else(|| anyhow::anyhow!("no home folder found: pass --config-dir"))?;
    let path = dir.join(file);
    let (identity, created) = Identity::load_or_create(&path, name)?;
    if created {
        eprintln!("Created a new key in {}", path.display());
    }
    Ok(identity)
}

#[cfg(target_os = "linux")]
fn record(display: &str, seconds: f64, fps: f64, out: &std::path::Path) -> anyhow::Result<()> {
    use lifebuoy::screen::Capture;
    let mut capture = lifebuoy::screen::x11::X11Capture::open(Some(display))?;
    let m = capture.monitors()[0].clone();
    let frames = lifebuoy::screen::record::record(&mut capture, seconds, fps, out)?;
    println!("recorded {frames} frames of {}x{} to {}", m.width, m.height, out.display());
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn record(_: &str, _: f64, _: f64, _: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("recording is implemented for X11 only")
}

fn bench_codec(inputs: &[PathBuf], size: &str, format: &str, fps: f64) -> anyhow::Result<()> {
    anyhow::ensure!(format == "bgrx", "only --format bgrx is supported");
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--size must look like 1920x1080"))?;
    println!(
        "| workload | frames | updates | lifebuoy kbit/s | baseline kbit/s | encode ms p50 / p95 | decode ms p50 \
         | bit-exact | tiles raw/xor/fill/copy/back/mix |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for input in inputs {
        let r = lifebuoy::screen::codec_bench::run(input, w, h, fps)?;
        let name = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        println!(
            "| {name} | {} | {} | {:.1} | {:.0} | {:.2} / {:.2} | {:.2} | {} | {}/{}/{}/{}/{}/{} |",
            r.frames,
            r.updates,
            r.kbit_s,
            r.baseline_kbit_s,
            r.encode_ms.0,
            r.encode_ms.1,
            r.decode_ms,
            if r.exact { "yes" } else { "NO" },
            r.ops.raw,
            r.ops.xor,
            r.ops.fill,
            r.ops.copy,
            r.ops.back,
            r.ops.mix,
        );
    }
    Ok(())
}
