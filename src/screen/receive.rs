//! The viewer's side of the screen stream: a decode thread that applies
//! the agent's updates in sequence order (streams may arrive out of
//! order), publishes each complete image and the pointer, and, when the
//! chain of updates breaks (an update refused, more waiting than a sender
//! keeping its window makes it hold), says so and asks for a fresh frame.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use lifebuoy_proto::codec::{Decoder, Image, FLAG_FRESH};
use lifebuoy_proto::screen::{CursorShape, Screen};
use tokio::sync::{mpsc, watch};

use super::changes::ChangeLog;
use super::credits::{IN_FLIGHT, VIEWER_WAITING_BYTES_MAX, VIEWER_WAITING_MAX};
use crate::session::{FramedRecv, SessionError};

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
    /// Whether every tile arrived since the last fresh frame: a fresh
    /// frame cut into slices on a slow path shows black where its later
    /// slices go until they come.
    pub complete: bool,
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
    /// Changes each time the chain of updates broke, to the monitor to ask
    /// a fresh frame of (the agent sends one when that monitor is selected
    /// again). The picture stays as it was until the fresh frame comes.
    pub lost: watch::Receiver<u8>,
}

/// Updates waiting for an earlier one, in sequence order.
#[derive(Default)]
struct Reorder {
    next: u64,
    waiting: BTreeMap<u64, (u8, Vec<u8>)>,
    bytes: usize,
    /// The chain broke: everything waits for a fresh frame.
    lost: bool,
}

impl Reorder {
    fn new() -> Reorder {
        Reorder { next: 1, ..Reorder::default() }
    }

    /// Takes an update; `Err` says why the chain broke.
    fn insert(&mut self, seq: u64, monitor: u8, data: Vec<u8>) -> Result<(), &'static str> {
        if self.lost {
            self.bytes += data.len();
            self.waiting.insert(seq, (monitor, data));
            // Only a fresh frame can start again; the oldest go first.
            while self.waiting.len() > VIEWER_WAITING_MAX || self.bytes > VIEWER_WAITING_BYTES_MAX {
                let Some((_, (_, d))) = self.waiting.pop_first() else { break };
                self.bytes -= d.len();
            }
            let fresh = self.waiting.iter().rev().find(|(_, (_, d))| is_fresh(d)).map(|(&s, _)| s);
            if let Some(fresh) = fresh {
                let newer = self.waiting.split_off(&fresh);
                self.waiting = newer;
                self.bytes = self.waiting.values().map(|(_, d)| d.len()).sum();
                self.next = fresh;
                self.lost = false;
            }
            return Ok(());
        }
        if seq < self.next || self.waiting.contains_key(&seq) {
            return Err("an update came twice");
        }
        self.bytes += data.len();
        self.waiting.insert(seq, (monitor, data));
        if self.waiting.len() > VIEWER_WAITING_MAX || self.bytes > VIEWER_WAITING_BYTES_MAX {
            return Err("too many updates waiting for an earlier one");
        }
        Ok(())
    }

    /// The next update in order, if it is here.
    fn pop(&mut self) -> Option<(u64, u8, Vec<u8>)> {
        if self.lost {
            return None;
        }
        let (monitor, data) = self.waiting.remove(&self.next)?;
        self.bytes -= data.len();
        self.next += 1;
        Some((self.next - 1, monitor, data))
    }

    fn break_chain(&mut self) {
        self.waiting.clear();
        self.bytes = 0;
        self.lost = true;
    }
}

fn is_fresh(update: &[u8]) -> bool {
    update.get(1).is_some_and(|flags| flags & FLAG_FRESH != 0)
}

/// The decode thread's state between updates.
struct Decoding {
    decoder: Decoder,
    /// The published image the viewer has let go of, reused.
    spare: Option<Image>,
    touched_before: Vec<u32>,
    shown: Option<(u8, u32, u32)>,
    /// Tiles not yet received since the last fresh frame.
    missing: Vec<bool>,
    missing_count: usize,
    image: watch::Sender<Option<Frame>>,
    log: Arc<Mutex<ChangeLog>>,
}

impl Decoding {
    fn apply(&mut self, seq: u64, monitor: u8, data: &[u8]) -> Result<(), lifebuoy_proto::codec::CodecError> {
        self.decoder.decode(data)?;
        let img = self.decoder.image().expect("just decoded");
        let (touched, fresh) = self.decoder.touched();
        let copy = publishable(self.spare.take(), img, &self.touched_before, touched, fresh);
        self.touched_before.clear();
        self.touched_before.extend_from_slice(touched);
        if fresh {
            let (cols, rows) = img.tiles();
            self.missing = vec![true; (cols * rows) as usize];
            self.missing_count = self.missing.len();
        }
        for &index in touched {
            if self.missing.get(index as usize).is_some_and(|m| *m) {
                self.missing[index as usize] = false;
                self.missing_count -= 1;
            }
        }
        let whole = fresh || self.shown != Some((monitor, img.width, img.height));
        self.shown = Some((monitor, img.width, img.height));
        self.log.lock().expect("not poisoned").record(seq, whole, touched);
        let frame = Frame { seq, monitor, image: Arc::new(copy), complete: self.missing_count == 0 };
        let old = self.image.send_replace(Some(frame));
        self.spare = old.and_then(|f| Arc::try_unwrap(f.image).ok());
        if self.spare.is_none() {
            // Else the next update copies the whole frame while the
            // technician waits for it: copy now, while nothing does (after
            // a first frame, or while the viewer still held the old one).
            self.spare = self.decoder.image().cloned();
            // That copy is up to date already.
            self.touched_before.clear();
        }
        Ok(())
    }
}

impl ScreenReceiver {
    /// Starts the decode thread.
    pub fn start() -> ScreenReceiver {
        let (tx, mut rx) = mpsc::channel::<(u64, u8, Vec<u8>)>(IN_FLIGHT * 2);
        let (image_tx, image_rx) = watch::channel(None);
        let (lost_tx, lost) = watch::channel(0u8);
        let changes = Arc::new(Mutex::new(ChangeLog::default()));
        let log = changes.clone();
        std::thread::Builder::new()
            .name("lifebuoy-decode".into())
            .spawn(move || {
                let mut decoding = Decoding {
                    decoder: Decoder::new(),
                    spare: None,
                    touched_before: Vec::new(),
                    shown: None,
                    missing: Vec::new(),
                    missing_count: 0,
                    image: image_tx,
                    log,
                };
                let mut order = Reorder::new();
                while let Some((seq, monitor, data)) = rx.blocking_recv() {
                    let mut broke = order.insert(seq, monitor, data).err().map(str::to_owned);
                    while broke.is_none() {
                        let Some((seq, monitor, data)) = order.pop() else { break };
                        if let Err(e) = decoding.apply(seq, monitor, &data) {
                            broke = Some(format!("update {seq} refused: {e}"));
                        }
                    }
                    if let Some(why) = broke {
                        tracing::warn!("screen: {why}; asking the customer's side for a fresh frame");
                        order.break_chain();
                        let ask = decoding.shown.map_or(monitor, |s| s.0);
                        lost_tx.send_replace(ask);
                    }
                }
            })
            .expect("spawning the decode thread");
        let (cursor_tx, cursor) = watch::channel(RemoteCursor::default());
        ScreenReceiver { decoded: tx, image: image_rx, changes, cursor_tx, cursor, lost }
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

    fn update(fresh: bool) -> Vec<u8> {
        vec![lifebuoy_proto::codec::VERSION, if fresh { FLAG_FRESH } else { 0 }, 1]
    }

    fn drain(order: &mut Reorder) -> Vec<u64> {
        std::iter::from_fn(|| order.pop().map(|(seq, _, _)| seq)).collect()
    }

    #[test]
    fn updates_are_applied_in_order_whatever_order_they_come_in() {
        let mut order = Reorder::new();
        order.insert(2, 0, update(false)).unwrap();
        assert!(drain(&mut order).is_empty());
        order.insert(1, 0, update(true)).unwrap();
        assert_eq!(drain(&mut order), [1, 2]);
        assert!(order.insert(2, 0, update(false)).is_err(), "a repeat breaks the chain");
    }

    #[test]
    fn a_broken_chain_waits_for_a_fresh_frame_even_one_that_comes_after_its_successors() {
        let mut order = Reorder::new();
        order.insert(1, 0, update(true)).unwrap();
        assert_eq!(drain(&mut order), [1]);
        // Update 2 never comes; the rest pile up until the window is exceeded.
        let mut seq = 3;
        while order.insert(seq, 0, update(false)).is_ok() {
            seq += 1;
        }
        assert_eq!(seq, 3 + VIEWER_WAITING_MAX as u64);
        order.break_chain();
        // Late stragglers of the old chain and the fresh frame's successors
        // come before the fresh frame.
        order.insert(2, 0, update(false)).unwrap();
        order.insert(41, 0, update(false)).unwrap();
        assert!(drain(&mut order).is_empty());
        order.insert(40, 0, update(true)).unwrap();
        assert_eq!(drain(&mut order), [40, 41]);
        order.insert(42, 0, update(false)).unwrap();
        assert_eq!(drain(&mut order), [42]);
    }

    #[test]
    fn a_lost_chain_holds_a_bounded_number_of_updates() {
        let mut order = Reorder::new();
        order.break_chain();
        for seq in 1..1000 {
            order.insert(seq, 0, update(false)).unwrap();
        }
        assert!(order.waiting.len() <= VIEWER_WAITING_MAX);
    }
}
