//! Streaming the screen: a capture-and-encode thread on the agent, a
//! decode thread on the viewer, and the QUIC streams between them.
//!
//! Pacing: at most [`IN_FLIGHT`] updates are on the way at once. The
//! capture thread takes a credit before it captures, so the frame it sends
//! is the newest the screen has, never one that waited in a queue; a slow
//! path simply means fewer, fresher frames. Each update travels on a stream
//! of its own; the viewer applies them in sequence order (streams may
//! arrive out of order) from a reorder window of [`IN_FLIGHT`] updates.

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifebuoy_proto::codec::{Decoder, Encoder, Image};
use lifebuoy_proto::screen::{CursorShape, Screen, ScreenUpdate};
use tokio::sync::{mpsc, watch};

use super::capture::{Capture, CaptureError, CursorSample};
use super::changes::ChangeLog;
use crate::session::{FramedRecv, Link, SessionError};

/// Updates on the way at once.
pub const IN_FLIGHT: usize = 2;
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
    let (credit_tx, credit_rx) = std_mpsc::channel::<()>();
    for _ in 0..IN_FLIGHT {
        let _ = credit_tx.send(());
    }
    let (updates_tx, mut updates_rx) = mpsc::channel::<Result<Encoded, CaptureError>>(1);
    let stats = Arc::new(Mutex::new(SenderStats::default()));
    let thread_stats = stats.clone();
    let (cursor_tx, cursor_rx) = watch::channel(None);
    let worker = std::thread::Builder::new()
        .name("lifebuoy-capture".into())
        .spawn(move || {
            let mut looper = CaptureLoop { capture, monitor, cursor: cursor_tx, last_cursor: None };
            looper.run(credit_rx, updates_tx, thread_stats)
        })
        .expect("spawning the capture thread");
    let cursor = tokio::spawn(send_cursor(link.clone(), cursor_rx));
    let mut sending = tokio::task::JoinSet::new();
    let result = loop {
        tokio::select! {
            update = updates_rx.recv() => match update {
                Some(Ok(u)) => {
                    let link = link.clone();
                    let credit = credit_tx.clone();
                    let stats = stats.clone();
                    sending.spawn(async move {
                        let len = u.data.len() as u64;
                        let sent = send_update(&link, u).await;
                        if sent.is_ok() {
                            let mut s = stats.lock().expect("not poisoned");
                            s.updates += 1;
                            s.bytes += len;
                        }
                        let _ = credit.send(());
                        sent
                    });
                }
                Some(Err(e)) => break Err(SessionError::Capture(e.to_string())),
                None => break Ok(()),
            },
            Some(done) = sending.join_next(), if !sending.is_empty() => {
                if let Ok(Err(e)) = done {
                    break Err(e);
                }
            }
            // The session ended: how is told elsewhere; the stream just stops.
            _ = link.closed() => break Ok(()),
        }
    };
    cursor.abort();
    drop(updates_rx);
    drop(credit_tx);
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
    // Acknowledged by the peer: only then is a credit returned.
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
        credits: std_mpsc::Receiver<()>,
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
        loop {
            // A credit per update: wait for one before capturing, so what
            // is captured is sent at once. The pointer is watched meanwhile.
            match credits.recv_timeout(CURSOR_POLL) {
                Ok(()) => {}
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    self.poll_cursor(selected);
                    if updates.is_closed() {
                        return;
                    }
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
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
                    let wanted = *self.monitor.borrow_and_update();
                    if wanted != selected {
                        if let Err(e) = self.capture.select(wanted) {
                            let _ = updates.blocking_send(Err(e));
                            return;
                        }
                        selected = wanted;
                        encoder.reset();
                        fresh = true;
                        self.last_cursor = None;
                    }
                }
                let changed = fresh || self.capture.wait_change(CURSOR_POLL);
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
                // A key's echo beside a scrolling log goes out first, as an
                // update of its own, while the log's tiles are compared and packed.
                let mut sent_first = false;
                if !grabbed.first.is_empty() {
                    if let Some((data, _)) = encoder.encode_frame(grabbed.image, Some(grabbed.first)) {
                        seq += 1;
                        let encoded = Encoded { seq, monitor: selected, width, height, data };
                        if updates.blocking_send(Ok(encoded)).is_err() {
                            return;
                        }
                        sent_first = true;
                    }
                }
                if let Some((data, _)) = encoder.encode_frame(grabbed.image, grabbed.damage) {
                    // The rest, after a first part, needs a credit of its own.
                    if sent_first && credits.recv().is_err() {
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

/// A copy of the decoder's image to publish. `spare` is the image
/// published two updates ago, if the viewer let go of it: brought up to
/// date with the tiles of both updates since (`before`, `now`) instead of
/// copying the whole frame, unless it has another shape or the newest
/// update started a fresh frame.
fn publishable(spare: Option<Image>, img: &Image, before: &[u32], now: &[u32], fresh: bool) -> Image {
    match spare {
        Some(mut s) if !fresh && (s.width, s.height) == (img.width, img.height) => {
            for &index in before.iter().chain(now) {
                let r = img.tile_rect(index);
                for dy in 0..r.h {
                    s.row_mut(r, dy).copy_from_slice(img.row(r, dy));
                }
            }
            s
        }
        _ => img.clone(),
    }
}

/// The newest complete image on the viewer.
#[derive(Clone, Debug)]
pub struct Frame {
    /// How many updates it took.
    pub seq: u64,
    /// The agent's monitor it shows.
    pub monitor: u8,
    /// The pixels.
    pub image: Arc<Image>,
}

/// The customer's pointer, for the viewer to draw over the image.
#[derive(Clone, Debug, Default)]
pub struct RemoteCursor {
    /// Monitor id.
    pub monitor: u8,
    /// Column in that monitor's pixels.
    pub x: i32,
    /// Row in that monitor's pixels.
    pub y: i32,
    /// Whether to draw it.
    pub visible: bool,
    /// The newest shape, once one came.
    pub shape: Option<Arc<CursorShape>>,
}

/// The viewer's side: decodes updates in order and publishes the image
/// and the pointer.
#[derive(Debug)]
pub struct ScreenReceiver {
    decoded: mpsc::Sender<(u64, u8, Vec<u8>)>,
    /// The newest complete image.
    pub image: watch::Receiver<Option<Frame>>,
    /// The tiles each published image changed, recorded before it is
    /// published.
    pub changes: Arc<Mutex<ChangeLog>>,
    cursor_tx: watch::Sender<RemoteCursor>,
    /// The newest pointer state.
    pub cursor: watch::Receiver<RemoteCursor>,
}

impl ScreenReceiver {
    /// Starts the decode thread.
    pub fn start() -> ScreenReceiver {
        let (tx, mut rx) = mpsc::channel::<(u64, u8, Vec<u8>)>(IN_FLIGHT * 2);
        let (image_tx, image_rx) = watch::channel(None);
        let changes = Arc::new(Mutex::new(ChangeLog::default()));
        let log = changes.clone();
        std::thread::Builder::new()
            .name("lifebuoy-decode".into())
            .spawn(move || {
                let mut decoder = Decoder::new();
                let mut waiting = BTreeMap::new();
                // The published image the viewer has let go of, reused.
                let mut spare: Option<Image> = None;
                let mut touched_before: Vec<u32> = Vec::new();
                let mut next = 1u64;
                let mut shown = None;
                while let Some((seq, monitor, data)) = rx.blocking_recv() {
                    if seq < next || waiting.len() > IN_FLIGHT * 4 {
                        // A repeat, or a peer ignoring the window: stop.
                        return;
                    }
                    waiting.insert(seq, (monitor, data));
                    while let Some((monitor, data)) = waiting.remove(&next) {
                        match decoder.decode(&data) {
                            Ok(_) => {
                                let img = decoder.image().expect("just decoded");
                                let (touched, fresh) = decoder.touched();
                                let copy = publishable(spare.take(), img, &touched_before, touched, fresh);
                                touched_before.clear();
                                touched_before.extend_from_slice(touched);
                                let whole = fresh || shown != Some((monitor, img.width, img.height));
                                shown = Some((monitor, img.width, img.height));
                                log.lock().expect("not poisoned").record(next, whole, touched);
                                let frame = Frame { seq: next, monitor, image: Arc::new(copy) };
                                let old = image_tx.send_replace(Some(frame));
                                spare = old.and_then(|f| Arc::try_unwrap(f.image).ok());
                                if spare.is_none() {
                                    // Else the next update copies the whole frame
                                    // while the technician waits for it: copy now,
                                    // while nothing does (after a first frame, or
                                    // while the viewer still held the old one).
                                    spare = decoder.image().cloned();
                                    // That copy is up to date already.
                                    touched_before.clear();
                                }
                            }
                            Err(e) => {
                                tracing::warn!("screen update {next} refused: {e}");
                                return;
                            }
                        }
                        next += 1;
                    }
                }
            })
            .expect("spawning the decode thread");
        let (cursor_tx, cursor) = watch::channel(RemoteCursor::default());
        ScreenReceiver { decoded: tx, image: image_rx, changes, cursor_tx, cursor }
    }

    /// Hands one update to the decode thread.
    pub async fn feed(&self, seq: u64, monitor: u8, data: Vec<u8>) -> Result<(), SessionError> {
        self.decoded.send((seq, monitor, data)).await.map_err(|_| SessionError::StreamClosed)
    }

    /// Reads one screen stream: updates go to the decoder, the pointer to
    /// [`ScreenReceiver::cursor`].
    pub async fn take(&self, mut stream: FramedRecv<Screen>) -> Result<(), SessionError> {
        while let Some(msg) = stream.recv().await? {
            match msg {
                Screen::Update(u) => self.feed(u.seq, u.monitor, u.data).await?,
                Screen::CursorShape(shape) => self.cursor_tx.send_modify(|c| c.shape = Some(Arc::new(shape))),
                Screen::CursorPosition { monitor, x, y, visible } => self.cursor_tx.send_modify(|c| {
                    (c.monitor, c.x, c.y, c.visible) = (monitor, x, y, visible);
                }),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(w: u32, h: u32, v: u8) -> Image {
        Image { width: w, height: h, pixels: vec![v; (w * h * 4) as usize] }
    }

    #[test]
    fn a_reused_image_takes_the_changed_tiles_and_never_keeps_another_shape() {
        // Two updates ago everything was 1; tile 0 changed then, tile 3 now.
        let mut img = filled(256, 128, 1);
        for i in [0u32, 3] {
            let r = img.tile_rect(i);
            for dy in 0..r.h {
                img.row_mut(r, dy).fill(9);
            }
        }
        assert!(publishable(Some(filled(256, 128, 1)), &img, &[0], &[3], false) == img);
        // As many pixels, turned: a fresh copy, whatever the tiles say.
        let turned = filled(128, 256, 5);
        let out = publishable(Some(filled(256, 128, 1)), &turned, &[0, 1, 2, 3, 4, 5, 6, 7], &[0], false);
        assert!(out == turned);
        assert!(publishable(Some(filled(256, 128, 1)), &img, &[], &[], true) == img);
    }
}
