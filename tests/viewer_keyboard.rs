//! The technician's real window with keys from the real X keyboard (XTEST
//! on the technician's display): while the remote view has the focus they
//! reach the customer's terminal, Ctrl+C, Ctrl+V and Ctrl+X included
//! (egui keeps those for its own clipboard, so they are taken before egui
//! sees them); typed into the window's own path field they stay there.

mod common;

use std::time::{Duration, Instant};

use common::{xdotool, xvfb, Started};

#[test]
fn keys_on_the_technicians_keyboard_reach_the_customers_terminal_shortcuts_included() {
    let mut started = Started(Vec::new());
    let work = tempfile::tempdir().unwrap();
    let (customer, technician) = (xvfb(&mut started, "1024x768x24"), xvfb(&mut started, "1600x1000x24"));
    let typed = work.path().join("typed.bin");
    common::terminal_with_tty(&mut started, &customer, "80x10+0+0", &typed, "raw -echo");
    let window = common::viewer_window_session(&mut started, work.path(), &customer, &technician);
    std::thread::sleep(Duration::from_secs(2));
    xdotool(&technician, &["windowfocus", "--sync", &window]);
    xdotool(&technician, &["mousemove", "--window", &window, "250", "150", "click", "1"]);
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&technician, &["type", "--delay", "40", "hello "]);
    xdotool(&technician, &["key", "--delay", "40", "shift+a", "ctrl+c", "ctrl+v", "ctrl+x", "Up", "Return"]);
    // Raw tty: Ctrl+C, V, X are bytes 3, 0x16, 0x18; Up is ESC [ A; Enter a CR.
    let expected = b"hello A\x03\x16\x18\x1b[A\r";
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && std::fs::read(&typed).unwrap_or_default().len() < expected.len() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Anything late (or more) would come now.
    std::thread::sleep(Duration::from_millis(300));
    let got = std::fs::read(&typed).unwrap_or_default();
    assert_eq!(got.escape_ascii().to_string(), expected.escape_ascii().to_string());

    // Typing into the window's own field: "Send file …", a click into its
    // path field, a path, "Send". The keys are the field's (the file
    // arrives), none of them the customer's.
    let note = work.path().join("notiz.txt");
    std::fs::write(&note, "für den Kunden\n").unwrap();
    xdotool(&technician, &["mousemove", "--window", &window, "490", "44", "click", "1"]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&technician, &["mousemove", "--window", &window, "200", "66", "click", "1"]);
    xdotool(&technician, &["type", "--delay", "20", note.to_str().unwrap()]);
    xdotool(&technician, &["mousemove", "--window", &window, "473", "66", "click", "1"]);
    let arrived = work.path().join("customer-inbox/notiz.txt");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && std::fs::read(&arrived).ok() != std::fs::read(&note).ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let said = std::fs::read_to_string(work.path().join("agent.out")).unwrap();
    assert_eq!(
        std::fs::read(&arrived).ok(),
        std::fs::read(&note).ok(),
        "the path typed into the field was sent: {said}"
    );
    let got = std::fs::read(&typed).unwrap_or_default();
    assert_eq!(
        got.escape_ascii().to_string(),
        expected.escape_ascii().to_string(),
        "keys of the field reached the customer"
    );
}
