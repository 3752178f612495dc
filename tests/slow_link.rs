//! A customer on a slow uplink: the real binaries in the NAT lab (case
//! `far`: 15 ms each way), the agent's uplink limited to 1 Mbit/s by
//! `tc tbf`, the agent showing a real Xvfb where a big picture keeps
//! changing. A key typed by the technician must come back within a bound
//! while megabytes of that change are on their way: the update is cut into
//! slices the echo comes between, not queued behind.
//!
//! Needs root and Xvfb (CI has both); without them it fails, loudly.

mod common;
// The NAT lab's helpers, of which this uses some.
#[allow(dead_code)]
#[path = "nat_lab/lab.rs"]
mod lab;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{xvfb, Started};
use lab::*;

/// Paints noise over the lower part of the screen (1280x480, 2.4 MB a
/// picture, as good as incompressible: 20 s at 1 Mbit/s) twice a second
/// until told to stop.
fn paint_noise(display: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat};
    let (conn, screen) = x11rb::connect(Some(display)).expect("connecting to Xvfb");
    std::thread::spawn(move || {
        let root = conn.setup().roots[screen].root;
        let depth = conn.setup().roots[screen].root_depth;
        let gc = conn.generate_id().unwrap();
        conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
        let (w, strip) = (1280u16, 40u16);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut pictures = 0;
        while !stop.load(Ordering::Relaxed) {
            for y in (320..800).step_by(strip as usize) {
                let data: Vec<u8> = (0..w as usize * strip as usize)
                    .flat_map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x as u32).to_le_bytes()
                    })
                    .collect();
                conn.put_image(ImageFormat::Z_PIXMAP, root, gc, w, strip, 0, y as i16, 0, depth, &data)
                    .unwrap();
            }
            conn.flush().unwrap();
            pictures += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
        pictures
    })
}

#[test]
fn on_a_1_mbit_uplink_a_keys_echo_comes_between_the_slices_of_a_big_change() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "1280x800x24");
    // The terminal the technician types into, top left; nothing else moves yet.
    started.0.push(
        Command::new("xterm")
            .env("DISPLAY", &display)
            .args(["-geometry", "80x12+0+0", "-title", "typing", "-e", "sh", "-c", "stty -icanon -echo; cat"])
            .spawn()
            .expect("xterm must be installed (scripts/setup)"),
    );
    common::xdotool(
        &display,
        &["search", "--sync", "--onlyvisible", "--name", "typing", "windowfocus", "--sync"],
    );

    let mut lab = Lab::up("far");
    let shaped = Command::new(natlab()).args(["shape", &lab.prefix, "1mbit"]).status().unwrap();
    assert!(shaped.success(), "limiting the agent's uplink failed");
    let tech = lab.key("tech", false);
    let rv_pin = start_rendezvous(&mut lab, &tech);

    let mut viewer = lab.command("hostb", &[]);
    viewer.arg("--config-dir").arg(lab.dir.path().join("tech"));
    viewer.args(["viewer", "--rendezvous", RENDEZVOUS, "--rendezvous-pin", &rv_pin, "--accept-all"]);
    viewer.args(["--sessions", "1", "--photon", "600x300+0+0", "--photon-keys", "60"]);
    let viewer_out = lab.spawn(viewer);
    wait_for(&viewer_out, "signed in", Duration::from_secs(10), "viewer");
    let mut agent = lab.agent(&[], &rv_pin, "--allow");
    agent.args(["--display", &display]);
    let _agent_out = lab.spawn(agent);
    wait_for(&viewer_out, "connected:", Duration::from_secs(20), "viewer");
    // The first picture (a terminal on black: little) comes in seconds.
    wait_for(&viewer_out, "first_frame_ms=", Duration::from_secs(30), "viewer");

    // The keys start now; so does a change far bigger than the link can
    // carry while they are typed.
    let stop = Arc::new(AtomicBool::new(false));
    let painter = paint_noise(&display, stop.clone());
    let (line, _) = wait_until(
        &viewer_out,
        "with the input -> photon result",
        |l| l.starts_with("input_to_photon_ms") || l.starts_with("input to photon"),
        Duration::from_secs(60),
        "viewer",
    );
    stop.store(true, Ordering::Relaxed);
    let pictures = painter.join().unwrap();
    assert!(pictures >= 4, "the big change kept coming while the keys were typed ({pictures} pictures)");
    let value = |name: &str| -> f64 {
        let field = line.split_whitespace().find_map(|f| f.strip_prefix(&format!("{name}=")));
        field.unwrap_or_else(|| panic!("no {name} in {line:?}")).parse().unwrap()
    };
    eprintln!("1 Mbit/s, a big change on the way: {line}");
    assert_eq!(value("keys"), 60.0, "{line}");

    // 30 ms round trip, 1 Mbit/s: behind at most the slices on the way
    // (about two round trips of the link) and one frame of pacing.
    assert!(value("p50") <= 200.0, "key echo p50 on a 1 Mbit/s uplink: {line}");
    assert!(value("max") <= 1500.0, "key echo max on a 1 Mbit/s uplink: {line}");
}
