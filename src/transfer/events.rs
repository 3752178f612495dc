//! What a transfer tells the people on both sides: started, progress
//! (bytes, rate, time left), done with its hash, failed and why.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// One file's news.
#[derive(Clone, Debug, PartialEq)]
pub enum TransferEvent {
    /// A file or folder began.
    Started {
        /// The drop it belongs to.
        transfer: u64,
        /// Relative path as sent.
        path: String,
        /// Bytes announced.
        size: u64,
    },
    /// Bytes moved so far (at most every 100 ms per file).
    Progress {
        /// The drop.
        transfer: u64,
        /// Relative path.
        path: String,
        /// Bytes so far.
        bytes: u64,
        /// Bytes in all.
        size: u64,
        /// Bytes per second since the start.
        rate: f64,
        /// Time left at that rate.
        eta: Option<Duration>,
    },
    /// Complete and verified (receiver), or sent whole (sender).
    Done {
        /// The drop.
        transfer: u64,
        /// Where it is now (receiver: the name it got, maybe numbered).
        path: String,
        /// Bytes.
        size: u64,
        /// Its BLAKE3, hex.
        blake3: String,
    },
    /// Nothing was kept; why, in words a person can act on.
    Failed {
        /// The drop.
        transfer: u64,
        /// Relative path as sent.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Where events go; a full channel drops progress, never the rest.
#[derive(Clone, Debug)]
pub struct Events(pub Option<mpsc::Sender<TransferEvent>>);

impl Events {
    /// No one listens.
    pub fn none() -> Events {
        Events(None)
    }

    pub(super) async fn send(&self, event: TransferEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event).await;
        }
    }

    fn try_send(&self, event: TransferEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.try_send(event);
        }
    }
}

/// Progress of one file, throttled.
pub(super) struct Meter {
    transfer: u64,
    path: String,
    size: u64,
    started: Instant,
    last: Instant,
}

impl Meter {
    pub(super) fn new(transfer: u64, path: &str, size: u64) -> Meter {
        let now = Instant::now();
        Meter { transfer, path: path.to_owned(), size, started: now, last: now }
    }

    pub(super) fn update(&mut self, events: &Events, bytes: u64) {
        if self.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = bytes as f64 / secs;
        let eta =
            (rate > 0.0).then(|| Duration::from_secs_f64((self.size.saturating_sub(bytes)) as f64 / rate));
        events.try_send(TransferEvent::Progress {
            transfer: self.transfer,
            path: self.path.clone(),
            bytes,
            size: self.size,
            rate,
            eta,
        });
    }
}
