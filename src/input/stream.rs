//! The input stream between the two sides: the viewer's sender, which
//! coalesces pointer moves and never drops or reorders anything else, and
//! the agent's receiver, which feeds an injection thread.

use std::collections::VecDeque;
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
    /// Opens the input stream on `link` and starts sending.
    pub fn start(link: Link) -> InputSender {
        let queue: Arc<Mutex<VecDeque<Input>>> = Arc::default();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(send_loop(link, queue.clone(), wake.clone()));
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
    queue: Arc<Mutex<VecDeque<Input>>>,
    wake: Arc<Notify>,
) -> Result<(), SessionError> {
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

/// What the injection thread is told.
#[derive(Debug)]
pub enum Command {
    /// Apply an input.
    Input(Input),
    /// The customer turned control on or off.
    Allow(bool),
}

/// The agent's injection thread: owns the injector, so its drop (releasing
/// every key) happens when the last handle is gone, however the session ends.
#[derive(Clone, Debug)]
pub struct InjectorHandle {
    tx: mpsc::Sender<Command>,
    blocked: Arc<std::sync::atomic::AtomicU64>,
}

impl InjectorHandle {
    /// Starts the thread.
    pub fn start(mut injector: Injector) -> InjectorHandle {
        let (tx, mut rx) = mpsc::channel::<Command>(INJECT_QUEUE);
        let blocked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = blocked.clone();
        std::thread::Builder::new()
            .name("lifebuoy-input".into())
            .spawn(move || {
                while let Some(command) = rx.blocking_recv() {
                    let result = match command {
                        Command::Input(input) => injector.apply(&input).map(|applied| {
                            if applied == Applied::Blocked {
                                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }),
                        Command::Allow(allowed) => injector.allow(allowed),
                    };
                    if let Err(e) = result {
                        tracing::warn!("input: {e}");
                    }
                }
                // Dropping the injector releases everything it holds.
            })
            .expect("spawning the input thread");
        InjectorHandle { tx, blocked }
    }

    /// Passes a command to the thread, in order.
    pub async fn command(&self, command: Command) -> Result<(), InputClosed> {
        self.tx.send(command).await.map_err(|_| InputClosed)
    }

    /// Inputs dropped because control was off.
    pub fn blocked(&self) -> u64 {
        self.blocked.load(std::sync::atomic::Ordering::Relaxed)
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
            injector.command(Command::Input(input)).await.map_err(|_| SessionError::StreamClosed)?;
        }
        Ok(())
    }
    .await;
    let _ = injector.command(Command::Input(Input::ReleaseAll)).await;
    result
}
