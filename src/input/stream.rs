//! The input stream between the two sides: the viewer's sender, which
//! coalesces pointer moves and never drops or reorders anything else, and
//! the agent's receiver, which feeds an injection thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lifebuoy_proto::input::Input;
use tokio::sync::{mpsc, Notify};

use super::inject::{Applied, Injector};
use crate::session::{FramedRecv, Link, SessionError};

/// Inputs waiting to be sent at most; more means the path is gone.
pub const QUEUE_MAX: usize = 4096;
/// Inputs waiting for the injection thread at most (backpressure beyond).
const INJECT_QUEUE: usize = 256;

/// The viewer's input sender.
#[derive(Debug)]
pub struct InputSender {
    queue: Arc<Mutex<VecDeque<Input>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<Result<(), SessionError>>,
}

/// The session's input stream has ended.
#[derive(Debug, thiserror::Error)]
#[error("the remote session no longer takes input")]
pub struct InputClosed;

impl InputSender {
    /// Starts sending on `link` once `allowed` says the customer let the
    /// technician in: only then is the input stream opened, and anything
    /// queued before is dropped (it was made without the customer's yes).
    pub fn start(link: Link, allowed: tokio::sync::watch::Receiver<bool>) -> InputSender {
        let queue: Arc<Mutex<VecDeque<Input>>> = Arc::default();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(send_loop(link, allowed, queue.clone(), wake.clone()));
        InputSender { queue, wake, task }
    }

    /// Queues one input. A pointer move replaces a move still waiting, so
    /// a slow path carries the newest position, never a backlog; buttons,
    /// keys and text are kept in order.
    pub fn send(&self, input: Input) -> Result<(), InputClosed> {
        if self.task.is_finished() {
            return Err(InputClosed);
        }
        {
            let mut queue = self.queue.lock().expect("not poisoned");
            let full = queue.len() >= QUEUE_MAX;
            match (queue.back_mut(), &input) {
                (Some(last @ Input::PointerMove { .. }), Input::PointerMove { .. }) => *last = input,
                _ if full => return Err(InputClosed),
                _ => queue.push_back(input),
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Stops sending: the agent releases whatever is still held when the
    /// stream ends.
    pub fn close(self) {
        self.task.abort();
    }
}

/// Pointer moves go out at most this often (about twice the capture rate):
/// more would only make the agent move the pointer through positions no
/// frame shows. Buttons, keys and text never wait for it.
pub const MOVE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(8);

async fn send_loop(
    link: Link,
    mut allowed: tokio::sync::watch::Receiver<bool>,
    queue: Arc<Mutex<VecDeque<Input>>>,
    wake: Arc<Notify>,
) -> Result<(), SessionError> {
    if !*allowed.borrow_and_update() {
        allowed.wait_for(|yes| *yes).await.map_err(|_| SessionError::StreamClosed)?;
        queue.lock().expect("not poisoned").clear();
    }
    let mut tx = link.open::<Input>().await?;
    let mut last_move = tokio::time::Instant::now() - MOVE_INTERVAL;
    loop {
        wake.notified().await;
        loop {
            let only_moves = {
                let q = queue.lock().expect("not poisoned");
                !q.is_empty() && q.iter().all(|i| matches!(i, Input::PointerMove { .. }))
            };
            let due = last_move + MOVE_INTERVAL;
            if !only_moves || tokio::time::Instant::now() >= due {
                break;
            }
            // Wait for the move's turn; anything else queued meanwhile ends the wait.
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = wake.notified() => {}
            }
        }
        // Everything waiting goes out in one write: a burst of keys shares packets.
        let batch: Vec<Input> = queue.lock().expect("not poisoned").drain(..).collect();
        if batch.is_empty() {
            continue;
        }
        if batch.iter().any(|i| matches!(i, Input::PointerMove { .. })) {
            last_move = tokio::time::Instant::now();
        }
        for input in &batch {
            tx.queue(input)?;
        }
        tx.flush().await?;
    }
}

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
