//! Files in a session, for either side: the inbox received files go to
//! (when the person allows files), drops sent by the person, cancelling
//! either, and one stream of news about all of them for the window or the
//! headless log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use crate::session::{FramedRecv, Link};
use crate::transfer::{collect, receive_file, send, Events, Inbox, TransferEvent};

/// One file's news, with the way it went.
#[derive(Clone, Debug, PartialEq)]
pub struct FileNews {
    /// Sent by this side (else received).
    pub outgoing: bool,
    /// What happened.
    pub event: TransferEvent,
}

/// Why the files of a drop were not sent at all.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DropRefused {
    /// The other side does not take files.
    #[error("the other side does not accept files")]
    NotAllowed,
    /// Nothing in the drop could be read.
    #[error("{0}")]
    Unreadable(String),
}

/// The folder received files go to (`dir`, or Downloads/lifebuoy).
pub fn open_inbox(dir: Option<PathBuf>, events: Events) -> Result<Arc<Inbox>, String> {
    let dir = match dir {
        Some(d) => d,
        None => crate::transfer::default_inbox().map_err(|e| format!("no folder for received files: {e}"))?,
    };
    let inbox = Inbox::new(dir.clone(), events)
        .map(Arc::new)
        .map_err(|e| format!("files cannot be received into {}: {e}", dir.display()))?;
    // What a killed transfer left behind goes now, beside the session.
    tokio::task::spawn_blocking(move || {
        let removed = crate::transfer::receiver::clean_leftovers(&dir);
        if removed > 0 {
            tracing::info!(
                "removed {removed} unfinished file(s) of an earlier transfer from {}",
                dir.display()
            );
        }
    });
    Ok(inbox)
}

/// The files of one session.
pub struct Files {
    link: Link,
    inbox: Option<Arc<Inbox>>,
    /// The person's switch for receiving (the agent's "allow files").
    receiving: AtomicBool,
    /// Whether the other side takes files (from its Permissions).
    peer_takes: AtomicBool,
    outgoing: Mutex<HashMap<u64, watch::Sender<bool>>>,
    sent_events: Events,
    receiving_slots: Arc<tokio::sync::Semaphore>,
}

/// Files received at once, at most: what an honest sender sends at once.
pub const RECEIVING_MAX: usize = crate::transfer::sender::PARALLEL_FILES;

impl Files {
    /// Files for `link`: received into `inbox` (none: refused), news into
    /// `news`; `peer_takes` says whether the other side takes files until
    /// it says otherwise. The returned sender is the one the inbox must
    /// report to.
    pub fn new(link: Link, news: mpsc::Sender<FileNews>, peer_takes: bool) -> (Files, Events) {
        let received = forward(news.clone(), false);
        let files = Files {
            link,
            inbox: None,
            receiving: AtomicBool::new(false),
            peer_takes: AtomicBool::new(peer_takes),
            outgoing: Mutex::new(HashMap::new()),
            sent_events: forward(news, true),
            receiving_slots: Arc::new(tokio::sync::Semaphore::new(RECEIVING_MAX)),
        };
        (files, received)
    }

    /// Sets the folder and turns receiving on.
    pub fn with_inbox(mut self, inbox: Arc<Inbox>) -> Files {
        self.inbox = Some(inbox);
        self.receiving = AtomicBool::new(true);
        self
    }

    /// Where received files go, if anywhere.
    pub fn inbox_dir(&self) -> Option<&std::path::Path> {
        self.inbox.as_deref().map(Inbox::root)
    }

    /// Whether files from the other side are taken now.
    pub fn receiving(&self) -> bool {
        self.inbox.is_some() && self.receiving.load(Ordering::Relaxed)
    }

    /// The person turns receiving on or off (no effect without an inbox).
    pub fn set_receiving(&self, on: bool) {
        self.receiving.store(on, Ordering::Relaxed);
    }

    /// What the other side said about taking files.
    pub fn set_peer_takes(&self, takes: bool) {
        self.peer_takes.store(takes, Ordering::Relaxed);
    }

    /// Receives one file stream in the background, or refuses it. At most
    /// [`RECEIVING_MAX`] are written at once (each holds a file open);
    /// more wait, unread, and QUIC's flow control holds their senders.
    pub fn receive(&self, mut stream: FramedRecv<lifebuoy_proto::file::File>) -> bool {
        match &self.inbox {
            Some(inbox) if self.receiving() => {
                let (inbox, slots) = (inbox.clone(), self.receiving_slots.clone());
                tokio::spawn(async move {
                    let Ok(_slot) = slots.acquire().await else { return };
                    // The reason was announced as an event already.
                    let _ = receive_file(stream, &inbox).await;
                });
                true
            }
            _ => {
                stream.stop(crate::transfer::receiver::STOP_REFUSED);
                false
            }
        }
    }

    /// Sends `paths` (files and folders) as one drop in the background;
    /// returns its id and what was left out (links, special files).
    pub fn send(&self, paths: Vec<PathBuf>) -> Result<(u64, Vec<PathBuf>), DropRefused> {
        if !self.peer_takes.load(Ordering::Relaxed) {
            return Err(DropRefused::NotAllowed);
        }
        let (entries, skipped) = collect(&paths).map_err(|e| DropRefused::Unreadable(e.to_string()))?;
        let transfer: u64 = rand::random();
        let (cancel_tx, cancel) = watch::channel(false);
        self.outgoing.lock().expect("not poisoned").insert(transfer, cancel_tx);
        let (link, events) = (self.link.clone(), self.sent_events.clone());
        tokio::spawn(async move {
            if let Err(e) = send(&link, transfer, entries, events, cancel).await {
                tracing::debug!("drop {transfer:x}: {e}");
            }
        });
        Ok((transfer, skipped))
    }

    /// Stops a drop, either way.
    pub fn cancel(&self, transfer: u64) {
        if let Some(cancel) = self.outgoing.lock().expect("not poisoned").get(&transfer) {
            let _ = cancel.send(true);
        }
        if let Some(inbox) = &self.inbox {
            inbox.cancel(transfer);
        }
    }
}

/// Events of one direction, forwarded as news.
fn forward(news: mpsc::Sender<FileNews>, outgoing: bool) -> Events {
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            // Progress may be dropped when the reader lags; the rest may not.
            let item = FileNews { outgoing, event };
            if matches!(item.event, TransferEvent::Progress { .. }) {
                let _ = news.try_send(item);
            } else if news.send(item).await.is_err() {
                break;
            }
        }
    });
    Events(Some(tx))
}

/// The headless log's line for a file's news (progress stays quiet).
pub fn describe(news: &FileNews) -> Option<String> {
    match &news.event {
        TransferEvent::Done { path, size, blake3, .. } => {
            Some(format!("file done: {path} ({size} bytes, blake3 {blake3})"))
        }
        TransferEvent::Failed { path, reason, .. } => Some(format!("file failed: {path}: {reason}")),
        TransferEvent::Started { .. } | TransferEvent::Progress { .. } => None,
    }
}
