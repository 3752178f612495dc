//! The customer's clipboard on X11: text the customer copies goes to the
//! technician, text the technician sends becomes the customer's clipboard.
//!
//! A thread of its own with its own X connection and a hidden window: it
//! learns of every new clipboard owner from XFixes (no polling), asks the
//! owner for UTF-8 text, and, when it holds the clipboard itself, answers
//! other programs' requests. Bounded both ways at `CLIPBOARD_MAX` bytes:
//! larger clipboards (and the INCR protocol that carries them) are not
//! taken. Only the CLIPBOARD selection (Ctrl+C / Ctrl+V), not PRIMARY.

use std::os::fd::AsFd;
use std::sync::mpsc as std_mpsc;

use lifebuoy_proto::control::CLIPBOARD_MAX;
use tokio::sync::mpsc;
use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, SelectionNotifyEvent,
    SelectionRequestEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::CURRENT_TIME;

/// Why the clipboard cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the clipboard is unavailable: {0}")]
pub struct ClipboardError(String);

fn failed(e: impl std::fmt::Display) -> ClipboardError {
    ClipboardError(e.to_string())
}

/// Sets the customer's clipboard; dropping it stops the thread.
#[derive(Debug)]
pub struct Clipboard {
    set: std_mpsc::Sender<String>,
}

impl Clipboard {
    /// Watches the clipboard of X `display`; what the customer copies is
    /// sent to `copied` (newest first; a full channel drops the text).
    pub fn start(display: Option<&str>, copied: mpsc::Sender<String>) -> Result<Clipboard, ClipboardError> {
        let (conn, screen) = x11rb::connect(display).map_err(failed)?;
        let root = conn.setup().roots[screen].root;
        conn.xfixes_query_version(4, 0).map_err(failed)?.reply().map_err(failed)?;
        let window = conn.generate_id().map_err(failed)?;
        conn.create_window(
            0,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )
        .map_err(failed)?;
        let atom = |name: &[u8]| -> Result<Atom, ClipboardError> {
            Ok(conn.intern_atom(false, name).map_err(failed)?.reply().map_err(failed)?.atom)
        };
        let atoms = Atoms {
            clipboard: atom(b"CLIPBOARD")?,
            utf8: atom(b"UTF8_STRING")?,
            targets: atom(b"TARGETS")?,
            incr: atom(b"INCR")?,
            property: atom(b"LIFEBUOY_CLIPBOARD")?,
        };
        conn.xfixes_select_selection_input(window, atoms.clipboard, SelectionEventMask::SET_SELECTION_OWNER)
            .map_err(failed)?
            .check()
            .map_err(failed)?;
        let (set, set_rx) = std_mpsc::channel();
        let mut worker = Worker { conn, window, atoms, owned: None, copied };
        std::thread::Builder::new()
            .name("lifebuoy-clipboard".into())
            .spawn(move || worker.run(set_rx))
            .map_err(failed)?;
        Ok(Clipboard { set })
    }

    /// Makes `text` the customer's clipboard (cut to CLIPBOARD_MAX bytes).
    pub fn set(&self, text: String) -> Result<(), ClipboardError> {
        self.set.send(text).map_err(|_| ClipboardError("the clipboard thread has stopped".into()))
    }
}

#[derive(Clone, Copy)]
struct Atoms {
    clipboard: Atom,
    utf8: Atom,
    targets: Atom,
    incr: Atom,
    property: Atom,
}

struct Worker {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
    /// The text we hold the clipboard with, if we do.
    owned: Option<Vec<u8>>,
    copied: mpsc::Sender<String>,
}

impl Worker {
    fn run(&mut self, set: std_mpsc::Receiver<String>) {
        loop {
            match set.try_recv() {
                Ok(text) => self.own(text),
                Err(std_mpsc::TryRecvError::Disconnected) => return,
                Err(std_mpsc::TryRecvError::Empty) => {}
            }
            if self.copied.is_closed() {
                return;
            }
            while let Ok(Some(event)) = self.conn.poll_for_event() {
                self.handle(event);
            }
            let _ = self.conn.flush();
            let mut fds = [nix::poll::PollFd::new(self.conn.stream().as_fd(), nix::poll::PollFlags::POLLIN)];
            // Short, so a text to set is not kept waiting long.
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16));
        }
    }

    fn own(&mut self, mut text: String) {
        while text.len() > CLIPBOARD_MAX {
            text.pop();
        }
        self.owned = Some(text.into_bytes());
        let _ = self.conn.set_selection_owner(self.window, self.atoms.clipboard, CURRENT_TIME);
        let _ = self.conn.flush();
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::XfixesSelectionNotify(e) if e.owner != self.window && e.owner != x11rb::NONE => {
                // Someone copied: ask for the text, delivered to our property.
                self.owned = None;
                let _ = self.conn.convert_selection(
                    self.window,
                    self.atoms.clipboard,
                    self.atoms.utf8,
                    self.atoms.property,
                    e.timestamp,
                );
            }
            Event::SelectionNotify(e) if e.property != x11rb::NONE => {
                if let Some(text) = self.read_property() {
                    // The newest matters; if the session is behind, skip.
                    let _ = self.copied.try_send(text);
                }
            }
            Event::SelectionRequest(e) => self.answer(&e),
            Event::SelectionClear(_) => self.owned = None,
            _ => {}
        }
    }

    /// The text the owner put into our property, if it is small enough.
    fn read_property(&self) -> Option<String> {
        let max_words = (CLIPBOARD_MAX / 4 + 1) as u32;
        let reply = self
            .conn
            .get_property(true, self.window, self.atoms.property, AtomEnum::ANY, 0, max_words)
            .ok()?
            .reply()
            .ok()?;
        // INCR (a clipboard too large for one property) and anything over
        // the limit are not taken.
        if reply.type_ == self.atoms.incr || reply.bytes_after > 0 || reply.value.len() > CLIPBOARD_MAX {
            tracing::info!("clipboard: the customer's copy is too large to send");
            return None;
        }
        let text = String::from_utf8_lossy(&reply.value).into_owned();
        (!text.is_empty()).then_some(text)
    }

    /// Gives a program that pastes what we hold.
    fn answer(&self, e: &SelectionRequestEvent) {
        let property = if e.property == x11rb::NONE { e.target } else { e.property };
        let ok = match &self.owned {
            Some(text) if e.selection == self.atoms.clipboard => {
                if e.target == self.atoms.targets {
                    let targets = [self.atoms.targets, self.atoms.utf8, AtomEnum::STRING.into()];
                    self.conn
                        .change_property32(PropMode::REPLACE, e.requestor, property, AtomEnum::ATOM, &targets)
                        .is_ok()
                } else if e.target == self.atoms.utf8 || e.target == u32::from(AtomEnum::STRING) {
                    self.conn
                        .change_property8(PropMode::REPLACE, e.requestor, property, e.target, text)
                        .is_ok()
                } else {
                    false
                }
            }
            _ => false,
        };
        let notify = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: e.time,
            requestor: e.requestor,
            selection: e.selection,
            target: e.target,
            property: if ok { property } else { x11rb::NONE },
        };
        let _ = self.conn.send_event(false, e.requestor, EventMask::NO_EVENT, notify);
        let _ = self.conn.flush();
    }
}
