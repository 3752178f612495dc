//! The agent's end of the input stream: one thread owns the injector and
//! applies what the stream reader hands it, behind the customer's switch,
//! which both read before every event (so "off" is never stuck behind a
//! queue of them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use lifebuoy_proto::input::Input;
use tokio::sync::mpsc;

use super::inject::{Applied, Injector};
use super::stream::InputClosed;
use crate::session::{FramedRecv, SessionError};

/// Inputs waiting for the injection thread at most (backpressure beyond).
const INJECT_QUEUE: usize = 256;

/// The customer's switch, as the injection thread and the stream reader
/// see it: read before every event, so turning control off (or ending)
/// takes effect before the next one, never behind a queue of them.
#[derive(Debug)]
struct Switch {
    allowed: AtomicBool,
    /// Counts every turn of the switch: an event queued before a turn is
    /// dropped after it, so nothing sent while control was off (or before
    /// it was last turned off) is applied once it is on again.
    turns: AtomicU64,
    blocked: AtomicU64,
}

impl Switch {
    fn allows(&self, turn: u64) -> bool {
        self.allowed.load(Ordering::SeqCst) && self.turns.load(Ordering::SeqCst) == turn
    }
}

/// An input waiting for the injection thread, with the turn of the switch
/// it came in.
#[derive(Debug)]
enum Queued {
    Input {
        input: Input,
        turn: u64,
    },
    /// The switch turned: release what is held if it is off now.
    Turned,
}

/// The agent's injection thread: owns the injector, so its drop (releasing
/// every key) happens when the last handle is gone, however the session ends.
#[derive(Clone, Debug)]
pub struct InjectorHandle {
    tx: mpsc::Sender<Queued>,
    switch: Arc<Switch>,
}

impl InjectorHandle {
    /// Starts the thread; control starts as `allowed`.
    pub fn start(mut injector: Injector, allowed: bool) -> InjectorHandle {
        let (tx, mut rx) = mpsc::channel::<Queued>(INJECT_QUEUE);
        let switch = Arc::new(Switch {
            allowed: AtomicBool::new(allowed),
            turns: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
        });
        let state = switch.clone();
        std::thread::Builder::new()
            .name("lifebuoy-input".into())
            .spawn(move || {
                let mut seen_turn = 0;
                while let Some(item) = rx.blocking_recv() {
                    // Whatever the switch did since (off, or off and on
                    // again), nothing held before it stays held.
                    let turn = state.turns.load(Ordering::SeqCst);
                    if turn != seen_turn {
                        if let Err(e) = injector.release_all() {
                            tracing::warn!("input: {e}");
                        }
                    }
                    seen_turn = turn;
                    let Queued::Input { input, turn } = item else { continue };
                    let result = match input {
                        // Releasing is always allowed: it only lets go.
                        Input::ReleaseAll => injector.release_all().map(|()| Applied::Done),
                        _ if !state.allows(turn) => Ok(Applied::Blocked),
                        _ => injector.apply(&input, &|| state.allows(turn)),
                    };
                    match result {
                        Ok(Applied::Blocked) => {
                            state.blocked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Applied::Done) => {}
                        Err(e) => tracing::warn!("input: {e}"),
                    }
                }
                // Dropping the injector releases everything it holds.
            })
            .expect("spawning the input thread");
        InjectorHandle { tx, switch }
    }

    /// Turns control on or off, at once: the event being applied is the
    /// last (a wheel stops between notches, text between characters), what
    /// is queued is dropped, and everything held is released.
    pub fn set_allowed(&self, allowed: bool) {
        self.switch.allowed.store(allowed, Ordering::SeqCst);
        self.switch.turns.fetch_add(1, Ordering::SeqCst);
        // Wakes an idle thread to release; a busy one sees the turn anyway.
        let _ = self.tx.try_send(Queued::Turned);
    }

    /// Whether control is on.
    pub fn allowed(&self) -> bool {
        self.switch.allowed.load(Ordering::SeqCst)
    }

    /// Passes an input to the thread, in order; while control is off it is
    /// dropped here (the queue never fills with what will not be applied).
    pub async fn send(&self, input: Input) -> Result<(), InputClosed> {
        let turn = self.switch.turns.load(Ordering::SeqCst);
        if !matches!(input, Input::ReleaseAll) && !self.switch.allows(turn) {
            self.switch.blocked.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.tx.send(Queued::Input { input, turn }).await.map_err(|_| InputClosed)
    }

    /// Inputs dropped because control was off.
    pub fn blocked(&self) -> u64 {
        self.switch.blocked.load(Ordering::Relaxed)
    }
}

/// Reads one input stream into the injection thread. However the stream
/// ends (finished, reset, connection lost), everything held is released.
pub async fn receive_input(
    mut stream: FramedRecv<Input>,
    injector: &InjectorHandle,
) -> Result<(), SessionError> {
    let result = async {
        while let Some(input) = stream.recv().await? {
            injector.send(input).await.map_err(|_| SessionError::StreamClosed)?;
        }
        Ok(())
    }
    .await;
    let _ = injector.send(Input::ReleaseAll).await;
    result
}
