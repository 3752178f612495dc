//! The product end to end with real processes: a rendezvous, a technician's
//! viewer and a customer's agent sharing a real X display (Xvfb with an
//! xterm), all on loopback. The technician's last picture of the screen
//! equals the screen, what the technician types arrives in a terminal on
//! the customer's display, the clipboard goes both ways, and a file sent
//! each way arrives whole.

#![cfg(target_os = "linux")]

use std::process::{Command, Stdio};
use std::time::Duration;

use lifebuoy::screen::x11::X11Capture;
use lifebuoy::screen::Capture;

mod common;
use common::{xterm, xvfb, Started};

const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");

fn id(dir: &std::path::Path, rendezvous: bool) -> String {
    let mut c = Command::new(BIN);
    c.arg("--config-dir").arg(dir).arg("id");
    if rendezvous {
        c.arg("--rendezvous");
    }
    String::from_utf8(c.output().unwrap().stdout).unwrap().trim().to_owned()
}

/// Reads a PPM as written by `lifebuoy viewer --screenshot`.
fn read_ppm(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap();
    let header = std::str::from_utf8(&bytes[..header_end]).unwrap();
    let fields: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(fields[0], "P6");
    (fields[1].parse().unwrap(), fields[2].parse().unwrap(), bytes[header_end + 1..].to_vec())
}

#[test]
fn technician_sees_the_screen_types_shares_the_clipboard_and_files_go_both_ways() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "800x600x24");
    let _window = xterm(&mut started, &display);
    let dir = tempfile::tempdir().unwrap();
    // A terminal that writes what is typed into it to a file, focused.
    let typed = dir.path().join("typed.txt");
    common::typing_terminal(&mut started, &display, "60x5+300+300", &typed);
    let rv_pin = id(&dir.path().join("rv"), true);
    let tech = id(&dir.path().join("tech"), false);
    let staff = dir.path().join("staff.toml");
    std::fs::write(&staff, format!("[[staff]]\nname = \"Anna\"\nfingerprint = \"{tech}\"\n")).unwrap();

    let rv = common::rendezvous_process(&dir.path().join("rv"), &staff, &[], Stdio::inherit());
    let addr = rv.udp.to_string();
    started.0.push(rv.child);

    let shot = dir.path().join("screen.ppm");
    // A file each way, and where each side receives.
    let (to_customer, to_technician) = (dir.path().join("Anleitung.pdf"), dir.path().join("Logdatei.txt"));
    std::fs::write(&to_customer, (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>())
        .unwrap();
    std::fs::write(&to_technician, "Fehler 0x80070005 beim Start\n".repeat(10_000)).unwrap();
    let (viewer_inbox, agent_inbox) =
        (dir.path().join("technician inbox"), dir.path().join("customer inbox"));
    std::fs::create_dir(&viewer_inbox).unwrap();
    std::fs::create_dir(&agent_inbox).unwrap();
    let viewer = Command::new(BIN)
        .arg("--config-dir")
        .arg(dir.path().join("tech"))
        .args([
            "viewer",
            "--rendezvous",
            &addr,
            "--rendezvous-pin",
            &rv_pin,
            "--accept-all",
            "--sessions",
            "1",
        ])
        .arg("--screenshot")
        .arg(&shot)
        .args(["--type-text", "Grüße aus dem Support"])
        .args(["--clipboard", "Kundennummer 4711"])
        .arg("--send-file")
        .arg(&to_customer)
        .arg("--inbox")
        .arg(&viewer_inbox)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    started.0.push(viewer);
    std::thread::sleep(Duration::from_millis(500));

    // The customer copies something while the session runs.
    let copier = {
        let display = display.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            let mut xclip = Command::new("xclip")
                .env("DISPLAY", &display)
                .args(["-selection", "clipboard", "-in"])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut xclip.stdin.take().unwrap(), "Fehlercode 0x80070005".as_bytes())
                .unwrap();
            xclip.wait().unwrap();
        })
    };
    let agent = Command::new(BIN)
        .args([
            "agent",
            "--rendezvous",
            &addr,
            "--rendezvous-pin",
            &rv_pin,
            "--staff",
            "Anna",
            "--allow",
            "--clipboard-to-technician",
            "--end-after",
            "2",
        ])
        .args(["--display", &display])
        .arg("--send-file")
        .arg(&to_technician)
        .arg("--inbox")
        .arg(&agent_inbox)
        .output()
        .unwrap();
    let agent_out = String::from_utf8_lossy(&agent.stdout);
    assert!(agent.status.success(), "agent failed: {agent_out}{}", String::from_utf8_lossy(&agent.stderr));
    assert!(agent_out.contains(&format!("sharing display {display}")), "{agent_out}");

    // The viewer writes its picture when the session ends, then exits.
    let viewer = started.0.last_mut().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while viewer.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the viewer did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut viewer_out = String::new();
    std::io::Read::read_to_string(viewer.stdout.as_mut().unwrap(), &mut viewer_out).unwrap();
    assert!(viewer_out.contains("screen: saved"), "{viewer_out}");
    copier.join().unwrap();
    // Each file arrived whole on the other side.
    let same =
        |a: &std::path::Path, b: &std::path::Path| std::fs::read(a).unwrap() == std::fs::read(b).unwrap();
    assert!(same(&to_customer, &agent_inbox.join("Anleitung.pdf")), "{agent_out}");
    assert!(same(&to_technician, &viewer_inbox.join("Logdatei.txt")), "{viewer_out}");
    assert!(agent_out.contains("file done: Anleitung.pdf (3000000 bytes"), "{agent_out}");
    assert!(agent_out.contains("control yes, clipboard yes"), "{agent_out}");
    assert!(agent_out.contains("clipboard from the technician: 17 bytes"), "{agent_out}");
    assert!(viewer_out.contains("clipboard from the customer: 21 bytes"), "{viewer_out}");
    assert_eq!(std::fs::read_to_string(&typed).unwrap(), "Grüße aus dem Support\n", "{viewer_out}");

    let (w, h, rgb) = read_ppm(&shot);
    let screen = X11Capture::open(Some(&display)).unwrap().snapshot().unwrap();
    assert_eq!((w, h), (screen.width, screen.height));
    let expected: Vec<u8> = screen.pixels.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
    assert!(rgb == expected, "the technician's picture differs from the customer's screen");
}
