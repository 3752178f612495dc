//! The viewer's end of the input stream: it coalesces pointer moves and
//! never drops or reorders anything else (the agent's end is
//! `injection`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use lifebuoy_proto::input::Input;
use tokio::sync::Notify;

use crate::session::{Link, SessionError};

/// Inputs waiting to be sent at most; more means the path is gone.
pub const QUEUE_MAX: usize = 4096;

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
