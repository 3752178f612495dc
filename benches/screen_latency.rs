//! Change -> on the viewer: how long after a key reaches the customer's X
//! server the viewer holds an image that shows the typed character.
//!
//! Real parts: Xvfb at 1920x1080, an xterm running `cat` (it echoes the
//! key), the X11 capture with DAMAGE, the paced screen stream over a pinned
//! QUIC session on loopback, the viewer's decode thread. Keys go in through
//! XTEST on a connection of our own, timed from the moment the request is
//! flushed. Measured idle (nothing else moves) and busy (a second terminal
//! elsewhere on the screen scrolls a build log, ~100 lines a second). TigerVNC's anchor
//! for the same measure, measured on this kind of machine: idle p50 9.1 ms / p99 10.3 ms, busy
//! p50 10.0 / p99 16.9.
//!
//! `cargo bench --bench screen_latency` (part of `just bench`); prints a table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{session_pair, xvfb, Started};
use lifebuoy::proto::codec::{Image, Rect};
use lifebuoy::screen::stream::{send_screen, ScreenReceiver};
use lifebuoy::screen::x11::X11Capture;
use lifebuoy::session::IncomingStream;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;

const KEYS: usize = 100;
/// Where the typing terminal is: its changes are the ones timed.
const TYPING: Rect = Rect { x: 0, y: 0, w: 500, h: 200 };

fn region(image: &Image) -> Vec<u8> {
    (0..TYPING.h).flat_map(|dy| image.row(TYPING, dy).to_vec()).collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn spawn_xterm(started: &mut Started, display: &str, geometry: &str, title: &str, command: &str) {
    let child = Command::new("xterm")
        .env("DISPLAY", display)
        .args(["-geometry", geometry, "-title", title, "-e", "sh", "-c", command])
        .spawn()
        .expect("xterm (scripts/setup)");
    started.0.push(child);
    let found = Command::new("xdotool")
        .env("DISPLAY", display)
        .args(["search", "--sync", "--onlyvisible", "--name", title, "windowfocus", "--sync"])
        .status()
        .expect("xdotool (scripts/setup)");
    assert!(found.success());
}

/// Times KEYS key presses: key -> viewer shows it, and key -> the X
/// server reports the typing terminal's drawing (what no remote-desktop
/// program can be faster than); sorted milliseconds.
async fn measure(display: &str, receiver: &ScreenReceiver) -> (Vec<f64>, Vec<f64>) {
    use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
    let (conn, screen) = x11rb::connect(Some(display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let (watch, _) = x11rb::connect(Some(display)).unwrap();
    watch.damage_query_version(1, 1).unwrap().reply().unwrap();
    let damage = watch.generate_id().unwrap();
    watch.damage_create(damage, root, ReportLevel::BOUNDING_BOX).unwrap().check().unwrap();
    let keycode = common::keycode_of_x(&conn);
    let mut image = receiver.image.clone();
    let (mut times, mut drawn) = (Vec::new(), Vec::new());
    for _ in 0..KEYS {
        // A random pause: keys must not fall into step with the capture
        // pacing (60 Hz), as a person's keys do not.
        tokio::time::sleep(Duration::from_micros(60_000 + rand::random::<u64>() % 17_000)).await;
        let before = region(&image.borrow_and_update().as_ref().expect("a first frame").image);
        watch.damage_subtract(damage, x11rb::NONE, x11rb::NONE).unwrap();
        watch.get_input_focus().unwrap().reply().unwrap();
        while watch.poll_for_event().unwrap().is_some() {}
        let started = common::tap(&conn, root, keycode);
        let drawn_at = loop {
            use x11rb::protocol::Event;
            if let Event::DamageNotify(d) = watch.wait_for_event().unwrap() {
                if i32::from(d.area.x) < (TYPING.x + TYPING.w) as i32
                    && i32::from(d.area.y) < (TYPING.y + TYPING.h) as i32
                {
                    break started.elapsed();
                }
                watch.damage_subtract(damage, x11rb::NONE, x11rb::NONE).unwrap();
                watch.flush().unwrap();
            }
        };
        drawn.push(drawn_at.as_secs_f64() * 1e3);
        loop {
            tokio::time::timeout(Duration::from_secs(5), image.changed()).await.expect("no update").unwrap();
            let now = region(&image.borrow_and_update().as_ref().unwrap().image);
            if now != before {
                break;
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    drawn.sort_by(f64::total_cmp);
    (times, drawn)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut started = Started(Vec::new());
        let display = xvfb(&mut started, "1920x1080x24");
        spawn_xterm(&mut started, &display, "80x12+0+0", "typing", "stty -icanon -echo; cat");
        let capture = X11Capture::open(Some(&display)).unwrap();
        let (agent, viewer) = session_pair().await;
        let (_monitor, chosen) = tokio::sync::watch::channel(0);
        let sender = tokio::spawn(send_screen(agent.link.clone(), Box::new(capture), chosen));
        let receiver = Arc::new(ScreenReceiver::start());
        let accept = {
            let (link, receiver) = (viewer.link.clone(), receiver.clone());
            tokio::spawn(async move {
                while let Ok(IncomingStream::Screen(s)) = link.accept().await {
                    let receiver = receiver.clone();
                    tokio::spawn(async move { receiver.take(s).await });
                }
            })
        };
        let mut first = receiver.image.clone();
        first.wait_for(|f| f.is_some()).await.unwrap();
        // `cat` with the terminal's echo off echoes each key once, unbuffered.
        let idle = measure(&display, &receiver).await;
        spawn_xterm(
            &mut started,
            &display,
            "100x40+900+300",
            "busy",
            // A build log: about 100 lines a second.
            "i=0; while :; do i=$((i+1)); echo \"step $i: compiling module_$i ... ok\"; sleep 0.01; done",
        );
        // Keep typing into the first terminal.
        Command::new("xdotool")
            .env("DISPLAY", &display)
            .args(["search", "--onlyvisible", "--name", "typing", "windowfocus", "--sync"])
            .status()
            .unwrap();
        let busy = measure(&display, &receiver).await;
        println!(
            "| screen | keys | key -> viewer p50 ms | p90 | p99 | max | key -> X drew it p50 ms | p99 |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (name, (t, x)) in [("idle", &idle), ("busy (a build log scrolling elsewhere)", &busy)] {
            println!(
                "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                t.len(),
                percentile(t, 0.5),
                percentile(t, 0.9),
                percentile(t, 0.99),
                t[t.len() - 1],
                percentile(x, 0.5),
                percentile(x, 0.99),
            );
        }
        agent.link.close(lifebuoy::proto::close::CloseCode::Ended, "done");
        let _ = sender.await;
        accept.abort();
    });
}
