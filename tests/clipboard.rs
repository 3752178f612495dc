//! The customer's clipboard, both ways, against a real X server and a real
//! X program (xclip): what the customer copies reaches the technician's
//! side; what the technician sends can be pasted on the customer's side;
//! a copy larger than the limit is not sent.

#![cfg(target_os = "linux")]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lifebuoy::clipboard::Clipboard;
use lifebuoy::proto::control::CLIPBOARD_MAX;

mod common;
use common::{xvfb, Started};

/// Copies `text` on `display` the way a program does (xclip keeps serving
/// it in the background until something else takes the clipboard).
fn copy(display: &str, text: &[u8]) {
    let mut xclip = Command::new("xclip")
        .env("DISPLAY", display)
        .args(["-selection", "clipboard", "-in"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("xclip (scripts/setup)");
    xclip.stdin.take().unwrap().write_all(text).unwrap();
    // xclip forks a server and exits once it holds the clipboard.
    assert!(xclip.wait().unwrap().success());
}

fn paste(display: &str) -> String {
    let out = Command::new("timeout")
        .args(["5", "xclip", "-selection", "clipboard", "-out"])
        .env("DISPLAY", display)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clipboard_text_goes_both_ways_and_is_bounded() {
    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let (copied_tx, mut copied) = tokio::sync::mpsc::channel(4);
    let clipboard = Clipboard::start(Some(&display), copied_tx).unwrap();

    // The customer copies: the technician's side gets it.
    copy(&display, "Seriennummer: ÄÖÜ-4711 €".as_bytes());
    let got =
        tokio::time::timeout(Duration::from_secs(5), copied.recv()).await.expect("no copy seen").unwrap();
    assert_eq!(got, "Seriennummer: ÄÖÜ-4711 €");

    // The technician sends text: the customer can paste it.
    clipboard.set("sudo apt install lifebuoy — grüß dich".into()).unwrap();
    let mut pasted = String::new();
    for _ in 0..50 {
        pasted = paste(&display);
        if pasted == "sudo apt install lifebuoy — grüß dich" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pasted, "sudo apt install lifebuoy — grüß dich");
    // Our own setting is not echoed back as a copy.
    assert!(tokio::time::timeout(Duration::from_millis(300), copied.recv()).await.is_err());

    // A copy beyond the limit is not sent; the next normal one is.
    copy(&display, &vec![b'x'; CLIPBOARD_MAX + 1]);
    copy(&display, b"small again");
    let got =
        tokio::time::timeout(Duration::from_secs(5), copied.recv()).await.expect("no copy seen").unwrap();
    assert_eq!(got, "small again");
    // xclip's background servers end with the X server.
    drop(started);
}

/// What the customer copies (a password from a password manager, say)
/// stays on the customer's machine until the customer switches sharing it
/// on; what the technician sends is taken either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_customer_copies_goes_to_the_technician_only_once_switched_on() {
    use lifebuoy::roles::agent::{AgentCommand, AgentEvent};
    use lifebuoy::roles::viewer::{ViewerCommand, ViewerEvent};

    let mut started = Started(Vec::new());
    let display = xvfb(&mut started, "640x480x24");
    let shown = display.clone();
    let mut drivers = common::Drivers::start(|setup| setup.display = Some(shown)).await;
    let (offer, _view) = drivers.connect().await;
    assert!(!offer.choice.clipboard_to_technician, "off unless the company or the customer turns it on");
    drivers.agent.send(AgentCommand::Allow(offer.choice)).await.unwrap();
    drivers
        .agent_until("the clipboard's state", |e| {
            matches!(e, AgentEvent::ClipboardToTechnician(false)).then_some(())
        })
        .await;
    drivers
        .viewer_until("the customer's yes", |e| match e {
            ViewerEvent::Permissions(p) => p.clipboard.then_some(()),
            _ => None,
        })
        .await;

    // The technician's text is taken.
    drivers.viewer.send(ViewerCommand::Clipboard("vom Techniker".into())).await.unwrap();
    drivers
        .agent_until("the technician's text", |e| {
            matches!(e, AgentEvent::Clipboard { to_technician: false, .. }).then_some(())
        })
        .await;
    // The customer copies a password: it stays.
    copy(&display, b"Geheim-Passwort-123");
    let leaked = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match drivers.viewer_events.recv().await {
                Some(ViewerEvent::Clipboard(text)) => return text,
                Some(_) => continue,
                None => std::future::pending().await,
            }
        }
    })
    .await;
    assert!(leaked.is_err(), "the customer's copy reached the technician: {leaked:?}");

    // Switched on, the next copy goes, and only that one.
    drivers.agent.send(AgentCommand::AllowClipboard(true)).await.unwrap();
    drivers
        .agent_until("the switch", |e| matches!(e, AgentEvent::ClipboardToTechnician(true)).then_some(()))
        .await;
    copy(&display, b"Seriennummer 4711");
    let got = drivers
        .viewer_until("the customer's copy", |e| match e {
            ViewerEvent::Clipboard(text) => Some(text),
            _ => None,
        })
        .await;
    assert_eq!(got, "Seriennummer 4711");
    drivers.agent.send(AgentCommand::End).await.unwrap();
    drop(started);
}
