//! Glass to glass: a key pressed on the technician's keyboard -> the
//! technician's screen shows the customer's terminal echo it. Everything a
//! technician waits for is inside: the viewer window's key event, QUIC to
//! the agent, the injection, the terminal drawing, capture, encoding, QUIC
//! back, decoding, the texture upload, egui's frame and the GL swap (Mesa's
//! software renderer on Xvfb here: no GPU).
//!
//! lifebuoy: the real binary's three roles on loopback, the viewer's window
//! on one Xvfb (1920x1080) and the customer's terminal on another
//! (1280x800). TigerVNC 1.12, the anchor: Xtigervnc (1280x800) with the same
//! terminal, xtigervncviewer at its default settings on an Xvfb of its own.
//! The key goes in with XTEST on the technician's display; the time ends
//! when the screen region that shows the remote terminal differs from before
//! the key (X DAMAGE wakes the check). Idle screen, `KEYS` keys each.
//!
//! `just bench-glass` (installs TigerVNC's server and viewer, builds
//! release); prints a table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{xdotool, xvfb, Started};
use x11rb::connection::Connection;
use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
use x11rb::protocol::Event;

const KEYS: usize = 100;
/// The remote terminal: `cat` with the tty's echo off shows each key once.
const TERMINAL: &str = "stty -icanon -echo; cat";

/// A rectangle of the technician's screen, in root coordinates.
#[derive(Clone, Copy)]
struct Region {
    x: i16,
    y: i16,
    w: u16,
    h: u16,
}

fn terminal(started: &mut Started, display: &str) {
    let child = Command::new("xterm")
        .env("DISPLAY", display)
        .args(["-geometry", "80x12+0+0", "-title", "typing", "-e", "sh", "-c", TERMINAL])
        .spawn()
        .expect("xterm (scripts/setup)");
    started.0.push(child);
    xdotool(display, &["search", "--sync", "--onlyvisible", "--name", "typing", "windowfocus", "--sync"]);
}

/// Times KEYS presses of `x` on `display` until `region` changes; sorted ms.
fn measure(display: &str, region: Region) -> Vec<f64> {
    let (conn, screen) = x11rb::connect(Some(display)).unwrap();
    let root = conn.setup().roots[screen].root;
    conn.damage_query_version(1, 1).unwrap().reply().unwrap();
    let damage = conn.generate_id().unwrap();
    conn.damage_create(damage, root, ReportLevel::NON_EMPTY).unwrap().check().unwrap();
    let keycode = common::keycode_of_x(&conn);
    let pixels = || {
        let Region { x, y, w, h } = region;
        conn.get_image(ImageFormat::Z_PIXMAP, root, x, y, w, h, !0).unwrap().reply().unwrap().data
    };
    let mut times = Vec::new();
    for _ in 0..KEYS {
        // Keys must not fall into step with anybody's frame pacing.
        std::thread::sleep(Duration::from_micros(80_000 + rand::random::<u64>() % 17_000));
        let before = pixels();
        conn.damage_subtract(damage, x11rb::NONE, x11rb::NONE).unwrap();
        conn.get_input_focus().unwrap().reply().unwrap();
        while conn.poll_for_event().unwrap().is_some() {}
        let started = common::tap(&conn, root, keycode);
        loop {
            if let Event::DamageNotify(_) = conn.wait_for_event().unwrap() {
                // Subtract first: drawing after it reports again.
                conn.damage_subtract(damage, x11rb::NONE, x11rb::NONE).unwrap();
                if pixels() != before {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the key never showed");
        }
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn lifebuoy() -> Vec<f64> {
    let mut started = Started(Vec::new());
    let work = tempfile::tempdir().unwrap();
    let (customer, technician) = (xvfb(&mut started, "1280x800x24"), xvfb(&mut started, "1920x1080x24"));
    terminal(&mut started, &customer);
    let window = common::viewer_window_session(&mut started, work.path(), &customer, &technician);
    // Give the remote view the keyboard once the picture is there: a click
    // on the remote terminal.
    std::thread::sleep(Duration::from_secs(3));
    xdotool(&technician, &["windowfocus", "--sync", &window]);
    xdotool(&technician, &["mousemove", "--window", &window, "250", "150", "click", "1"]);
    std::thread::sleep(Duration::from_secs(1));
    // The remote terminal's first lines, fitted into the view.
    measure(&technician, Region { x: 17, y: 67, w: 470, h: 150 })
}

fn tigervnc() -> Option<Vec<f64>> {
    if Command::new("xtigervncviewer").arg("-help").stderr(Stdio::null()).status().is_err() {
        println!("TigerVNC: install tigervnc-standalone-server and tigervnc-viewer (just bench-glass does)");
        return None;
    }
    let mut started = Started(Vec::new());
    let port = 26000 + std::process::id() % 1000;
    let server = Command::new("Xtigervnc")
        .args([
            "-displayfd",
            "1",
            "-geometry",
            "1280x800",
            "-depth",
            "24",
            "-SecurityTypes",
            "None",
            "-localhost",
        ])
        .args(["-rfbport", &port.to_string(), "-AlwaysShared"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xtigervnc");
    let customer = common::display_of(&mut started, server);
    terminal(&mut started, &customer);
    let technician = xvfb(&mut started, "1920x1080x24");
    let viewer = Command::new("xtigervncviewer")
        .env("DISPLAY", &technician)
        .arg(format!("127.0.0.1::{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    started.0.push(viewer);
    let window = xdotool(&technician, &["search", "--sync", "--name", "TigerVNC"]);
    xdotool(&technician, &["windowmove", &window, "0", "0"]);
    std::thread::sleep(Duration::from_secs(2));
    xdotool(&technician, &["windowfocus", "--sync", &window]);
    xdotool(&technician, &["mousemove", "--window", &window, "250", "80"]);
    std::thread::sleep(Duration::from_secs(1));
    Some(measure(&technician, Region { x: 0, y: 0, w: 480, h: 150 }))
}

fn row(name: &str, t: &[f64]) {
    let p = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    println!("| {name} | {} | {:.2} | {:.2} | {:.2} |", t.len(), p(0.5), p(0.99), t[t.len() - 1]);
}

fn main() {
    println!("key on the technician's keyboard -> the technician's screen shows it (ms), idle screen");
    println!("| program | keys | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let ours = lifebuoy();
    row("lifebuoy (loopback)", &ours);
    if let Some(theirs) = tigervnc() {
        row("TigerVNC 1.12 (loopback)", &theirs);
    }
}
