//! Files in the headless roles: where received files go, what is said
//! about them, and sending files named on the command line.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::say;
use crate::session::{FramedRecv, Link};
use crate::transfer::{collect, receive_file, send, Events, Inbox, TransferEvent};

/// Says every file's start, end and failure (progress stays quiet).
fn announce() -> Events {
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                TransferEvent::Done { path, size, blake3, .. } => {
                    say!("file done: {path} ({size} bytes, blake3 {blake3})")
                }
                TransferEvent::Failed { path, reason, .. } => say!("file failed: {path}: {reason}"),
                TransferEvent::Started { .. } | TransferEvent::Progress { .. } => {}
            }
        }
    });
    Events(Some(tx))
}

/// The folder received files go to (`dir`, or Downloads/lifebuoy).
pub fn inbox(dir: Option<PathBuf>) -> Option<Arc<Inbox>> {
    let dir = match dir {
        Some(d) => d,
        None => match crate::transfer::default_inbox() {
            Ok(d) => d,
            Err(e) => {
                say!("files cannot be received: {e}");
                return None;
            }
        },
    };
    match Inbox::new(dir.clone(), announce()) {
        Ok(inbox) => {
            say!("files received go to {}", dir.display());
            Some(Arc::new(inbox))
        }
        Err(e) => {
            say!("files cannot be received into {}: {e}", dir.display());
            None
        }
    }
}

/// Receives one file stream in the background.
pub fn receive(stream: FramedRecv<lifebuoy_proto::file::File>, inbox: Arc<Inbox>) {
    tokio::spawn(async move {
        // The reason was announced as an event already.
        let _ = receive_file(stream, &inbox).await;
    });
}

/// Sends `paths` (files and folders) as one drop, in the background.
pub fn send_paths(link: Link, paths: Vec<PathBuf>) {
    tokio::spawn(async move {
        let (entries, skipped) = match collect(&paths) {
            Ok(found) => found,
            Err(e) => {
                say!("cannot send: {e}");
                return;
            }
        };
        for s in skipped {
            say!("not sent (a link or special file): {}", s.display());
        }
        let (_keep, cancel) = tokio::sync::watch::channel(false);
        let transfer = rand::random();
        match send(&link, transfer, entries, announce(), cancel).await {
            Ok(()) => say!("sent {} item(s)", paths.len()),
            Err(e) => say!("sending failed: {e}"),
        }
    });
}
