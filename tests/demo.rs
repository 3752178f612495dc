//! `lifebuoy demo --headless`, the README's first command without a desktop:
//! the whole story through three roles on a real Xvfb (request, accept,
//! screen, typing into a terminal, input -> photon on an idle and a busy
//! screen, a 64 MiB file each way, the technician's end), and its report.

#![cfg(target_os = "linux")]

use std::process::Command;

#[test]
fn the_headless_demo_tells_the_whole_story_and_reports_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_lifebuoy"))
        .args(["demo", "--headless"])
        .env_remove("DISPLAY")
        .output()
        .expect("running the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap_or_else(|| panic!("no report row {name:?} in:\n{stdout}"))
            .to_owned()
    };
    assert!(row("path").contains("direct"), "{}", row("path"));
    assert!(row("same verification code").ends_with("| yes |"));
    assert!(row("typed \"Grüße aus der Technik\"").ends_with("| yes |"));
    for way in ["technician -> customer", "customer -> technician"] {
        let r = row(&format!("64 MiB file {way}"));
        assert!(r.contains("BLAKE3 equal: yes"), "{r}");
    }
    // Every measured row carries a number (the numbers themselves are
    // docs/performance.md's business, not a test's).
    for name in ["allow -> first full frame", "input -> photon, idle", "input -> photon, busy"] {
        let r = row(name);
        assert!(r.contains(" ms") && r.chars().any(|c| c.is_ascii_digit()), "{r}");
        assert!(!r.contains("NaN"), "{r}");
    }
    assert!(row("technician ends -> agent exited").contains(" ms"));
}
