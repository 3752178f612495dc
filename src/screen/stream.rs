//! Streaming the screen: the agent's capture-and-encode thread and the
//! QUIC streams it sends on (the viewer's side is [`super::receive`]).
//!
//! Pacing: the capture thread waits for a grant from the agent's window
//! of updates on the way ([`Credits`]) before it captures, so the frame
//! it sends is the newest the screen has, never one that waited in a
//! queue; a slow path simply means fewer, fresher frames. Each update
//! travels on a stream of its own. A viewer that lost the chain selects
//! the monitor again, and that starts a fresh frame.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifebuoy_proto::codec::{Encoder, Image, Rect};
use lifebuoy_proto::screen::{Screen, ScreenUpdate};
use tokio::sync::{mpsc, watch};

use super::capture::{Capture, CaptureError, CursorSample};
use super::credits::Credits;
pub use super::credits::IN_FLIGHT;
pub use super::receive::{Frame, RemoteCursor, ScreenReceiver};
use crate::session::{Link, SessionError};

/// Captures are paced by a bucket of [`BURST`] captures refilled one per
/// FRAME_INTERVAL: sustained drawing is captured at 60 Hz at most, while
/// the first change after a pause is captured at once and, since programs
/// draw in steps (a terminal erases its cursor, draws the character, draws
/// the cursor), a second capture may follow right away instead of a frame
/// interval later.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// Where the display server reports what is drawn, only that is fetched
/// and compared. The check that the reports missed nothing fetches and
/// compares one band of the screen (see [`Capture::grab_checking`]) at the
/// first quiet moment (no drawing for [`CURSOR_POLL`]) once this long has
/// passed since the last band, and under drawing that never pauses at
/// twice this. A whole screen at once would take several milliseconds of
/// the display server's time, and a key pressed then would wait for it.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Captures allowed back to back after a pause.
pub const BURST: f64 = 2.0;
/// Longest wait for a change notification before looking at the pointer
/// (which moves without changing the image) and checking anyway; also the
/// poll interval where the display has no change notification.
pub const CURSOR_POLL: Duration = Duration::from_millis(33);

/// One encoded update, ready to send.
#[derive(Debug)]
struct Encoded {
    seq: u64,
    monitor: u8,
    width: u16,
    height: u16,
    data: Vec<u8>,
}

/// Counters of the agent's screen stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct SenderStats {
    /// Updates sent.
    pub updates: u64,
    /// Bytes of update data sent.
    pub bytes: u64,
    /// Frames captured.
    pub captured: u64,
}

/// The pointer as last sampled, with the monitor it was sampled on.
type CursorWatch = Option<(u8, CursorSample)>;

/// Streams `capture` to the peer of `link` until the session ends (then
/// returns what was sent) or capture or sending fails. `monitor` says
/// which monitor to show; a change starts a fresh frame of that one.
pub async fn send_screen(
    link: Link,
    capture: Box<dyn Capture>,
    monitor: watch::Receiver<u8>,
) -> Result<SenderStats, SessionError> {
    // One grant at a time (`Credits::grant`): a channel of one never blocks.
    let (grant_tx, grant_rx) = std_mpsc::sync_channel::<usize>(1);
    let mut credits = Credits::new();
    let (updates_tx, mut updates_rx) = mpsc::channel::<Result<Encoded, CaptureError>>(1);
    let stats = Arc::new(Mutex::new(SenderStats::default()));
    let thread_stats = stats.clone();
    let (cursor_tx, cursor_rx) = watch::channel(None);
    let worker = std::thread::Builder::new()
        .name("lifebuoy-capture".into())
        .spawn(move || {
            let mut looper = CaptureLoop { capture, monitor, cursor: cursor_tx, last_cursor: None };
            looper.run(grant_rx, updates_tx, thread_stats)
        })
        .expect("spawning the capture thread");
    let cursor = tokio::spawn(send_cursor(link.clone(), cursor_rx));
    let mut sending = tokio::task::JoinSet::new();
    let result = loop {
        // At most one capture allowed ahead: each decision sees the newest
        // acknowledgements. The thread waits for it; a send that fails
        // means the thread has stopped, which the next recv tells.
        if let Some(budget) = credits.grant() {
            let _ = grant_tx.try_send(budget);
        }
        tokio::select! {
            update = updates_rx.recv() => match update {
                Some(Ok(u)) => {
                    let (seq, len) = (u.seq, u.data.len() as u64);
                    credits.sent(Instant::now(), seq, len);
                    tracing::debug!(seq, len, "screen update sent");
                    let link = link.clone();
                    let stats = stats.clone();
                    sending.spawn(async move {
                        let sent = send_update(&link, u).await;
                        if sent.is_ok() {
                            let mut s = stats.lock().expect("not poisoned");
                            s.updates += 1;
                            s.bytes += len;
                        }
                        (seq, sent)
                    });
                }
                Some(Err(e)) => break Err(SessionError::Capture(e.to_string())),
                None => break Ok(()),
            },
            Some(done) = sending.join_next(), if !sending.is_empty() => match done {
                Ok((seq, Ok(()))) => {
                    let now = Instant::now();
                    credits.on_rtt(now, link.rtt());
                    credits.acked(now, seq);
                    let e = credits.estimate();
                    tracing::debug!(
                        seq,
                        rate = e.rate().unwrap_or_default() as u64,
                        budget = e.budget().unwrap_or_default(),
                        queue_ms = e.queue_delay().as_millis() as u64,
                        "screen update acknowledged"
                    );
                }
                Ok((_, Err(e))) => break Err(e),
                Err(e) => break Err(SessionError::Capture(format!("sending a screen update: {e}"))),
            },
            // The session ended: how is told elsewhere; the stream just stops.
            _ = link.closed() => break Ok(()),
        }
    };
    cursor.abort();
    drop(updates_rx);
    drop(grant_tx);
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    let stats = *stats.lock().expect("not poisoned");
    result.map(|()| stats)
}

async fn send_update(link: &Link, u: Encoded) -> Result<(), SessionError> {
    let mut tx = link.open::<Screen>().await?;
    let update =
        ScreenUpdate { seq: u.seq, monitor: u.monitor, width: u.width, height: u.height, data: u.data };
    tx.send(&Screen::Update(update)).await?;
    tx.finish()?;
    // Acknowledged by the peer: only then is its place in the window free.
    tx.stopped().await
}

/// Sends the pointer on one long-lived screen stream: a new shape when its
/// id changes, then the position. Only the newest sample matters, so the
/// watch channel drops the ones a slow path could not carry.
async fn send_cursor(link: Link, mut samples: watch::Receiver<CursorWatch>) -> Result<(), SessionError> {
    let mut tx = None;
    let mut shape_sent = None;
    while samples.changed().await.is_ok() {
        let Some((monitor, c)) = samples.borrow_and_update().clone() else { continue };
        let tx = match &mut tx {
            Some(tx) => tx,
            None => tx.insert(link.open::<Screen>().await?),
        };
        if let Some(shape) = c.shape.filter(|s| shape_sent != Some(s.id)) {
            shape_sent = Some(shape.id);
            tx.send(&Screen::CursorShape(shape)).await?;
        }
        tx.send(&Screen::CursorPosition { monitor, x: c.x, y: c.y, visible: c.visible }).await?;
    }
    Ok(())
}

/// The capture pacing (see [`FRAME_INTERVAL`]).
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self) {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() / FRAME_INTERVAL.as_secs_f64();
        self.tokens = (self.tokens + earned).min(BURST);
        self.at = now;
    }

    /// How long until a capture is allowed.
    fn wait(&mut self) -> Duration {
        self.refill();
        FRAME_INTERVAL.mul_f64((1.0 - self.tokens).max(0.0))
    }

    fn take(&mut self) {
        self.refill();
        self.tokens -= 1.0;
    }

    /// An urgent capture may run ahead of the pacing by one frame at most.
    fn may_borrow(&mut self) -> bool {
        self.refill();
        self.tokens >= 0.0
    }
}

/// The capture thread's state.
struct CaptureLoop {
    capture: Box<dyn Capture>,
    monitor: watch::Receiver<u8>,
    cursor: watch::Sender<CursorWatch>,
    last_cursor: Option<CursorSample>,
}

impl CaptureLoop {
    fn poll_cursor(&mut self, monitor: u8) {
        if let Some(c) = self.capture.cursor() {
            if self.last_cursor.as_ref() != Some(&c) {
                self.cursor.send_replace(Some((monitor, c.clone())));
                self.last_cursor = Some(c);
            }
        }
    }

    fn run(
        &mut self,
        grants: std_mpsc::Receiver<usize>,
        updates: mpsc::Sender<Result<Encoded, CaptureError>>,
        stats: Arc<Mutex<SenderStats>>,
    ) {
        let mut selected = *self.monitor.borrow_and_update();
        if let Err(e) = self.capture.select(selected) {
            let _ = updates.blocking_send(Err(e));
            return;
        }
        let mut encoder = Encoder::new();
        let mut seq = 0u64;
        let mut fresh = true;
        let (mut checked, mut band) = (Instant::now(), 0u32);
        let mut bucket = Bucket { tokens: BURST, at: Instant::now() };
        // Changed tiles a budget left out, as damage for the next capture.
        let mut left: Vec<Rect> = Vec::new();
        loop {
            // A grant per update: wait for one before capturing, so what
            // is captured is sent at once. The pointer is watched meanwhile.
            let budget = match grants.recv_timeout(CURSOR_POLL) {
                Ok(budget) => budget,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    self.poll_cursor(selected);
                    if updates.is_closed() {
                        return;
                    }
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            };
            loop {
                // Paced: wait for the next frame's turn, unless drawing starts
                // somewhere new (then capture at once, within a small debt).
                let wait = bucket.wait();
                if !wait.is_zero() {
                    let urgent = self.capture.wait_urgent(wait);
                    if !(urgent && bucket.may_borrow()) {
                        std::thread::sleep(bucket.wait());
                    }
                }
                if self.monitor.has_changed().unwrap_or(false) {
                    // The same monitor again is a viewer that lost the
                    // chain: it gets a fresh frame too.
                    let wanted = *self.monitor.borrow_and_update();
                    if wanted != selected {
                        if let Err(e) = self.capture.select(wanted) {
                            let _ = updates.blocking_send(Err(e));
                            return;
                        }
                        selected = wanted;
                    }
                    encoder.reset();
                    fresh = true;
                    left.clear();
                    self.last_cursor = None;
                }
                let changed = fresh || !left.is_empty() || self.capture.wait_change(CURSOR_POLL);
                self.poll_cursor(selected);
                let check = !fresh && checked.elapsed() >= CHECK_INTERVAL * if changed { 2 } else { 1 };
                if !changed && !check {
                    if updates.is_closed() {
                        return;
                    }
                    continue;
                }
                bucket.take();
                let grabbed = if check {
                    checked = Instant::now();
                    band += 1;
                    self.capture.grab_checking(band)
                } else {
                    self.capture.grab()
                };
                let grabbed = match grabbed {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = updates.blocking_send(Err(e));
                        return;
                    }
                };
                stats.lock().expect("not poisoned").captured += 1;
                let (width, height) = (grabbed.image.width as u16, grabbed.image.height as u16);
                // What a budget left last time is compared again, with
                // whatever was drawn since: the newest pixels go.
                let damage = grabbed.damage.map(|d| [d, &left[..]].concat());
                left.clear();
                // A key's echo beside a scrolling log goes out first, as an
                // update of its own, while the log's tiles are compared and packed.
                let mut sent_first = false;
                if !grabbed.first.is_empty() {
                    let sliced = encoder.encode_frame_within(grabbed.image, Some(grabbed.first), budget);
                    left.extend(tile_rows(grabbed.image, &sliced.left));
                    if let Some((data, _)) = sliced.update {
                        seq += 1;
                        let encoded = Encoded { seq, monitor: selected, width, height, data };
                        if updates.blocking_send(Ok(encoded)).is_err() {
                            return;
                        }
                        sent_first = true;
                    }
                }
                let sliced = encoder.encode_frame_within(grabbed.image, damage.as_deref(), budget);
                left.extend(tile_rows(grabbed.image, &sliced.left));
                if let Some((data, _)) = sliced.update {
                    // The rest, after a first part, needs a grant of its own.
                    if sent_first && grants.recv().is_err() {
                        return;
                    }
                    seq += 1;
                    fresh = false;
                    let encoded = Encoded { seq, monitor: selected, width, height, data };
                    if updates.blocking_send(Ok(encoded)).is_err() {
                        return;
                    }
                    break;
                }
                if sent_first {
                    break;
                }
                if updates.is_closed() {
                    return;
                }
            }
        }
    }
}

/// Tiles `tiles` (ascending) of `image` as rectangles, one per run of
/// neighbours in a row of tiles.
fn tile_rows(image: &Image, tiles: &[u32]) -> Vec<Rect> {
    let mut out: Vec<Rect> = Vec::new();
    let mut last = None;
    for &index in tiles {
        let r = image.tile_rect(index);
        match out.last_mut() {
            Some(run) if last == Some(index.wrapping_sub(1)) && run.y == r.y => run.w += r.w,
            _ => out.push(r),
        }
        last = Some(index);
    }
    out
}
