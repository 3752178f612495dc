//! When a viewer's endpoint takes peers' connections: only while a punch
//! for a request the technician accepted runs. Every connection that
//! arrives at another time, or more than the punch can take, is refused at
//! once, so nothing waits for a later session.

use std::sync::Arc;

use tokio::sync::mpsc;

/// Whether an endpoint takes connections from peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepting {
    /// Never: the agent is always the QUIC client, so its endpoint has no
    /// server side at all and answers no connection attempt.
    Never,
    /// Only while a punch for an accepted request runs (the viewer); every
    /// connection that arrives at another time is refused at once.
    WhilePunching,
}

/// Connections that arrive while a punch waits for them.
pub(super) type Window = Arc<std::sync::Mutex<Option<mpsc::Sender<quinn::Incoming>>>>;
/// Connections waiting for the punch that opened the window; more are refused.
const WINDOW_QUEUE: usize = 16;

/// Hands each connection that arrives to the punch waiting for one, and
/// refuses it at once when none waits (or the punch has enough queued):
/// nothing is kept for a later session.
pub(super) async fn gate(quic: quinn::Endpoint, window: Window) {
    while let Some(incoming) = quic.accept().await {
        let open = window.lock().expect("not poisoned").clone();
        match open {
            Some(punch) => {
                if let Err(
                    mpsc::error::TrySendError::Full(incoming) | mpsc::error::TrySendError::Closed(incoming),
                ) = punch.try_send(incoming)
                {
                    incoming.refuse();
                }
            }
            None => incoming.refuse(),
        }
    }
}

/// The time during which a punch takes peers' connections.
#[derive(Debug)]
pub struct PunchWindow {
    rx: mpsc::Receiver<quinn::Incoming>,
    window: Window,
}

impl PunchWindow {
    /// Opens `window` to connections until the returned value is dropped.
    pub(super) fn open(window: &Window) -> PunchWindow {
        let (tx, rx) = mpsc::channel(WINDOW_QUEUE);
        *window.lock().expect("not poisoned") = Some(tx);
        PunchWindow { rx, window: window.clone() }
    }

    /// The next connection that arrived while the window is open.
    pub async fn next(&mut self) -> Option<quinn::Incoming> {
        self.rx.recv().await
    }
}

impl Drop for PunchWindow {
    fn drop(&mut self) {
        *self.window.lock().expect("not poisoned") = None;
        // Whatever still waits is refused as it is dropped.
        self.rx.close();
    }
}
