//! The company packs its agent into one file; the customer starts it with
//! no arguments and reaches the company's staff: the real program packed,
//! started under Xvfb against a rendezvous whose pin is only in the file.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{xvfb, Started};
use lifebuoy::roles::viewer::{ViewerEvent, ViewerSetup};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_lifebuoy");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packed_agent_starts_with_no_set_up_and_reaches_the_companys_staff() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "1024x768x24");
    let mut rendezvous = common::company_of_one("Anna").await;
    let (company, technician, pin) =
        (rendezvous.company, rendezvous.technician.take().unwrap(), rendezvous.company.pin);
    let dir = tempfile::tempdir().unwrap();
    let (_commands, command_rx) = mpsc::channel(16);
    let (event_tx, mut events) = mpsc::channel(256);
    let setup = ViewerSetup {
        server: company,
        name: "Anna".into(),
        inbox: None,
        audit_log: Some(dir.path().join("a.jsonl")),
    };
    tokio::spawn(lifebuoy::roles::viewer::drive(technician, setup, command_rx, event_tx));
    assert!(matches!(events.recv().await, Some(ViewerEvent::SignedIn { .. })));

    // The company packs; "localhost" is looked up when the customer starts it.
    let agent_file = dir.path().join("Muster-Support");
    let out = Command::new(BIN)
        .args(["pack-agent", "--company", "Muster GmbH", "--lang", "de", "--tunnel-port", "9"])
        .args([
            "--rendezvous",
            &format!("localhost:{}", company.addr.port()),
            "--rendezvous-pin",
            &pin.to_string(),
        ])
        .arg("-o")
        .arg(&agent_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let help = Command::new(&agent_file).arg("--help").output().unwrap();
    assert!(help.status.success(), "with arguments it is still the whole program");

    // The customer double-clicks it: no arguments.
    let mut agent =
        Command::new(&agent_file).env("DISPLAY", &display).current_dir(dir.path()).spawn().unwrap();
    let xdotool = |args: &[&str]| {
        let ok =
            Command::new("timeout").arg("20").arg("xdotool").args(args).env("DISPLAY", &display).status();
        assert!(ok.unwrap().success(), "xdotool {args:?}");
    };
    xdotool(&["search", "--sync", "--name", "^Muster GmbH"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let label = loop {
        assert!(Instant::now() < deadline, "no request came from the packed agent");
        xdotool(&["search", "--name", "^Muster GmbH", "mousemove", "--window", "%1", "30", "135"]);
        xdotool(&["click", "--repeat", "2", "--delay", "80", "1"]);
        match tokio::time::timeout(Duration::from_millis(700), events.recv()).await {
            Ok(Some(ViewerEvent::Incoming { label, .. })) => break label,
            Ok(other) => panic!("the technician got {other:?}"),
            Err(_) => continue,
        }
    };
    assert_eq!(label, "", "nothing about the customer is sent unless typed");
    let pid = nix::unistd::Pid::from_raw(agent.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = agent.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// Runs a program this process has just written. Another test's child,
/// forked in the moment the file was still open for writing, holds it
/// open until it execs, and Linux refuses to run a file open for writing
/// (ETXTBSY): try again after that moment.
fn output_of_just_written(mut command: Command) -> std::process::Output {
    for _ in 0..100 {
        match command.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result.unwrap(),
        }
    }
    panic!("the file stayed busy for 2 s")
}

#[test]
fn a_damaged_packed_agent_says_so_and_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let agent_file = dir.path().join("agent");
    let out = Command::new(BIN)
        .args(["pack-agent", "--company", "X", "--rendezvous", "example.com:5515"])
        .args(["--rendezvous-pin", &"ab".repeat(32), "-o"])
        .arg(&agent_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut bytes = std::fs::read(&agent_file).unwrap();
    let n = bytes.len();
    bytes[n - 60] ^= 0x20; // inside the configuration
    std::fs::write(&agent_file, &bytes).unwrap();
    let mut damaged = Command::new(&agent_file);
    damaged.env_remove("DISPLAY");
    let run = output_of_just_written(damaged);
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("damaged"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let bad = Command::new(BIN)
        .args(["pack-agent", "--company", "X", "--rendezvous", "example.com"])
        .args(["--rendezvous-pin", &"ab".repeat(32), "-o"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HOST:PORT"));
    assert!(!dir.path().join("other").exists(), "nothing half-made");
}
