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
use lifebuoy_proto::screen::{Screen, ScreenUpdate};
use tokio::sync::{mpsc, watch};

use super::capture::{Capture, CaptureError};
use crate::session::{FramedRecv, Link, SessionError};

/// Updates on the way at once.
pub const IN_FLIGHT: usize = 2;
/// Shortest time between two captures.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(16);
/// Longest wait for a change notification before checking anyway (and
/// the poll interval where the display has none).
pub const IDLE_POLL: Duration = Duration::from_millis(250);

/// One encoded update, ready to send.
#[derive(Debug)]
struct Encoded {
    seq: u64,
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

/// Streams `capture` to the peer of `link` until the session ends (then
/// returns what was sent) or capture or sending fails.
pub async fn send_screen(
    link: Link,
    capture: Box<dyn Capture>,
    monitor: u8,
) -> Result<SenderStats, SessionError> {
    let (credit_tx, credit_rx) = std_mpsc::channel::<()>();
    for _ in 0..IN_FLIGHT {
        let _ = credit_tx.send(());
    }
    let (updates_tx, mut updates_rx) = mpsc::channel::<Result<Encoded, CaptureError>>(1);
    let stats = Arc::new(Mutex::new(SenderStats::default()));
    let thread_stats = stats.clone();
    let worker = std::thread::Builder::new()
        .name("lifebuoy-capture".into())
        .spawn(move || capture_loop(capture, monitor, credit_rx, updates_tx, thread_stats))
        .expect("spawning the capture thread");
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
    drop(updates_rx);
    drop(credit_tx);
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    let stats = *stats.lock().expect("not poisoned");
    result.map(|()| stats)
}

async fn send_update(link: &Link, u: Encoded) -> Result<(), SessionError> {
    let mut tx = link.open::<Screen>().await?;
    let update = ScreenUpdate { seq: u.seq, monitor: 0, width: u.width, height: u.height, data: u.data };
    tx.send(&Screen::Update(update)).await?;
    tx.finish()?;
    // Acknowledged by the peer: only then is a credit returned.
    tx.stopped().await
}

fn capture_loop(
    mut capture: Box<dyn Capture>,
    monitor: u8,
    credits: std_mpsc::Receiver<()>,
    updates: mpsc::Sender<Result<Encoded, CaptureError>>,
    stats: Arc<Mutex<SenderStats>>,
) {
    if let Err(e) = capture.select(monitor) {
        let _ = updates.blocking_send(Err(e));
        return;
    }
    let mut encoder = Encoder::new();
    let mut seq = 0u64;
    let mut last = Instant::now() - FRAME_INTERVAL;
    // A credit per update: wait for one before capturing, so what is
    // captured is sent at once.
    while credits.recv().is_ok() {
        loop {
            // At most one capture per FRAME_INTERVAL: a burst of drawing
            // becomes one update.
            std::thread::sleep(FRAME_INTERVAL.saturating_sub(last.elapsed()));
            if seq > 0 && !capture.wait_change(IDLE_POLL) {
                if updates.is_closed() {
                    return;
                }
                continue;
            }
            last = Instant::now();
            let frame = match capture.grab() {
                Ok(f) => f,
                Err(e) => {
                    let _ = updates.blocking_send(Err(e));
                    return;
                }
            };
            stats.lock().expect("not poisoned").captured += 1;
            let (width, height) = (frame.width as u16, frame.height as u16);
            if let Some((data, _)) = encoder.encode(frame) {
                seq += 1;
                if updates.blocking_send(Ok(Encoded { seq, width, height, data })).is_err() {
                    return;
                }
                break;
            }
            if updates.is_closed() {
                return;
            }
        }
    }
}

/// The viewer's side: decodes updates in order and publishes the image.
#[derive(Debug)]
pub struct ScreenReceiver {
    decoded: mpsc::Sender<(u64, Vec<u8>)>,
    /// The newest complete image, and how many updates it took.
    pub image: watch::Receiver<Option<(u64, Arc<Image>)>>,
}

impl ScreenReceiver {
    /// Starts the decode thread.
    pub fn start() -> ScreenReceiver {
        let (tx, mut rx) = mpsc::channel::<(u64, Vec<u8>)>(IN_FLIGHT * 2);
        let (image_tx, image_rx) = watch::channel(None);
        std::thread::Builder::new()
            .name("lifebuoy-decode".into())
            .spawn(move || {
                let mut decoder = Decoder::new();
                let mut waiting = BTreeMap::new();
                let mut next = 1u64;
                while let Some((seq, data)) = rx.blocking_recv() {
                    if seq < next || waiting.len() > IN_FLIGHT * 4 {
                        // A repeat, or a peer ignoring the window: stop.
                        return;
                    }
                    waiting.insert(seq, data);
                    while let Some(data) = waiting.remove(&next) {
                        match decoder.decode(&data) {
                            Ok(img) => {
                                let _ = image_tx.send(Some((next, Arc::new(img.clone()))));
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
        ScreenReceiver { decoded: tx, image: image_rx }
    }

    /// Reads one screen stream and hands its update to the decoder.
    pub async fn take(&self, mut stream: FramedRecv<Screen>) -> Result<(), SessionError> {
        while let Some(msg) = stream.recv().await? {
            if let Screen::Update(u) = msg {
                self.decoded.send((u.seq, u.data)).await.map_err(|_| SessionError::StreamClosed)?;
            }
        }
        Ok(())
    }
}
