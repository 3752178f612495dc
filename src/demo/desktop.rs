//! The customer's desktop in the demo: a private Xvfb with a terminal that
//! greets, echoes every key at once (so input -> photon can be seen in it)
//! and keeps what was typed in a file (so typing can be checked); on
//! request a second terminal scrolling a build log elsewhere (the busy
//! screen). Everything started here ends with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lifebuoy::proto::codec::Rect;

/// Size of the customer's screen.
pub const SCREEN: &str = "1280x800x24";
/// Where the typing terminal is (80x12 characters at the top left, about
/// 490x160 pixels) with room to spare, and nothing else is.
pub const TYPING: Rect = Rect { x: 0, y: 0, w: 600, h: 300 };
const TYPING_TITLE: &str = "lifebuoy-demo-customer";

/// A private X server and its applications.
pub struct Desktop {
    /// Its display name (`:N`).
    pub display: String,
    /// What was typed into the terminal.
    pub typed: PathBuf,
    children: Vec<Child>,
    busy: Option<Child>,
}

impl Desktop {
    /// Starts Xvfb and the typing terminal, focused; the error says what to install.
    pub fn start(dir: &Path) -> anyhow::Result<Desktop> {
        use std::io::Read;
        let mut xvfb = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", SCREEN, "-noreset", "-nolisten", "tcp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb (install it: just setup)")?;
        let mut out = xvfb.stdout.take().context("Xvfb's display number")?;
        let mut number = String::new();
        let mut byte = [0u8; 1];
        while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
            number.push(byte[0] as char);
        }
        let mut desktop = Desktop {
            display: format!(":{number}"),
            typed: dir.join("typed.txt"),
            children: vec![xvfb],
            busy: None,
        };
        if number.is_empty() {
            bail!("Xvfb did not start");
        }
        // `tee` shows each key in the terminal and keeps it in the file;
        // without canonical mode the terminal hands it over at once.
        let terminal = desktop
            .xterm("80x12+0+0", TYPING_TITLE)
            .arg(format!(
                "echo 'Hallo vom Kunden - lifebuoy demo'; stty -icanon -echo; tee '{}'",
                desktop.typed.display()
            ))
            .spawn()
            .context("starting xterm (install it: just setup)")?;
        desktop.children.push(terminal);
        desktop.focus(TYPING_TITLE)?;
        Ok(desktop)
    }

    /// Starts noting when the X server reports drawing in [`TYPING`]: the
    /// moment a key's echo is on the customer's screen, which no remote
    /// desktop can show sooner.
    #[cfg(target_os = "linux")]
    pub fn watch_typing(&self) -> anyhow::Result<Drawn> {
        use x11rb::connection::Connection;
        use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
        use x11rb::protocol::Event;
        let (conn, screen) =
            x11rb::connect(Some(&self.display)).context("connecting to the demo's X server")?;
        let root = conn.setup().roots[screen].root;
        conn.damage_query_version(1, 1)?.reply()?;
        let damage = conn.generate_id()?;
        conn.damage_create(damage, root, ReportLevel::BOUNDING_BOX)?.check()?;
        let drawn = Drawn::default();
        let times = drawn.0.clone();
        // Ends when the X server does (with the desktop).
        std::thread::Builder::new().name("demo-damage".into()).spawn(move || {
            while let Ok(event) = conn.wait_for_event() {
                if let Event::DamageNotify(d) = event {
                    let now = Instant::now();
                    if (d.area.x as i32) < (TYPING.x + TYPING.w) as i32
                        && (d.area.y as i32) < (TYPING.y + TYPING.h) as i32
                    {
                        times.lock().expect("not poisoned").push(now);
                    }
                    if conn.damage_subtract(damage, x11rb::NONE, x11rb::NONE).is_err()
                        || conn.flush().is_err()
                    {
                        return;
                    }
                }
            }
        })?;
        Ok(drawn)
    }

    /// Watching the X server's drawing needs X11's DAMAGE (Linux here).
    #[cfg(not(target_os = "linux"))]
    pub fn watch_typing(&self) -> anyhow::Result<Drawn> {
        bail!("the headless demo watches an X server: it runs on Linux")
    }

    /// Starts a terminal scrolling a build log (about 100 lines a second)
    /// beside the typing one, which keeps the keyboard.
    pub fn make_busy(&mut self) -> anyhow::Result<()> {
        let log =
            "i=0; while :; do i=$((i+1)); echo \"step $i: compiling module_$i ... ok\"; sleep 0.01; done";
        self.busy = Some(self.xterm("100x30+640+400", "lifebuoy-demo-busy").arg(log).spawn()?);
        self.focus("lifebuoy-demo-busy")?;
        self.focus(TYPING_TITLE)
    }

    /// Stops the build log.
    pub fn make_idle(&mut self) {
        if let Some(mut busy) = self.busy.take() {
            let _ = busy.kill();
            let _ = busy.wait();
        }
    }

    fn xterm(&self, geometry: &str, title: &str) -> Command {
        let mut c = Command::new("xterm");
        c.env("DISPLAY", &self.display)
            .env("LC_ALL", "C.UTF-8")
            .args(["-u8", "-geometry", geometry, "-title", title, "-e", "sh", "-c"])
            .stderr(Stdio::null());
        c
    }

    /// Gives `title`'s window the keyboard, once it is mapped (an unmapped
    /// window cannot take it, and the title can come first).
    fn focus(&self, title: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let focused = Command::new("timeout")
                .args(["5", "xdotool", "search", "--sync", "--name", title, "windowfocus", "--sync"])
                .env("DISPLAY", &self.display)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("running xdotool (install it: just setup)")?;
            if focused.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the window {title:?} did not appear on {}", self.display);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// When the X server reported drawing in the typing terminal.
#[derive(Clone, Default)]
pub struct Drawn(std::sync::Arc<std::sync::Mutex<Vec<Instant>>>);

impl Drawn {
    /// The first report in `from..=to`.
    pub fn between(&self, from: Instant, to: Instant) -> Option<Instant> {
        self.0.lock().expect("not poisoned").iter().copied().find(|t| (from..=to).contains(t))
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        self.make_idle();
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
