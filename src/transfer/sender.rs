//! Sending dropped files and folders: one stream per file, many at once
//! (so ten thousand small files do not pay a round trip each), read in
//! 1 MiB chunks (memory stays bounded whatever the size), hashed as they
//! go. Symbolic links are never followed: not when walking a folder, not
//! when opening a file; they are skipped and said so.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifebuoy_proto::file::{CancelReason, EntryKind, File, FileHeader};
use lifebuoy_proto::stream::FILE_CHUNK_MAX;
use tokio::sync::{watch, Semaphore};

use super::events::{Events, Meter, TransferEvent};
use crate::session::{Link, SessionError};

/// Files on the way at once.
pub const PARALLEL_FILES: usize = 32;

/// One thing to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// On this machine.
    pub source: PathBuf,
    /// As the receiver will name it, `/`-separated.
    pub name: String,
    /// File or folder.
    pub kind: EntryKind,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Seconds since 1970.
    pub modified: Option<i64>,
}

/// Why a drop could not be (wholly) sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A dropped path could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The path.
        path: String,
        /// What the system said.
        error: std::io::Error,
    },
    /// The session ended or the receiver refused.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// The receiver refused the file (its reason is on its side).
    #[error("the other side refused {0}")]
    Refused(String),
    /// Cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The file changed size while it was being sent.
    #[error("{0} changed while it was being sent")]
    Changed(String),
}

fn modified(meta: &std::fs::Metadata) -> Option<i64> {
    let t = meta.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// What dropping `paths` sends: each file under its own name, each folder
/// with everything in it under the folder's name. Links and special files
/// are skipped (returned second, as paths).
pub fn collect(paths: &[PathBuf]) -> Result<(Vec<Entry>, Vec<PathBuf>), SendError> {
    let (mut entries, mut skipped) = (Vec::new(), Vec::new());
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        walk(path, name, &mut entries, &mut skipped)?;
    }
    Ok((entries, skipped))
}

fn walk(
    path: &Path,
    name: String,
    entries: &mut Vec<Entry>,
    skipped: &mut Vec<PathBuf>,
) -> Result<(), SendError> {
    let read = |error| SendError::Read { path: path.display().to_string(), error };
    let meta = std::fs::symlink_metadata(path).map_err(read)?;
    if meta.is_file() {
        entries.push(Entry {
            source: path.to_owned(),
            name,
            kind: EntryKind::File,
            size: meta.len(),
            modified: modified(&meta),
        });
    } else if meta.is_dir() {
        entries.push(Entry {
            source: path.to_owned(),
            name: name.clone(),
            kind: EntryKind::Folder,
            size: 0,
            modified: None,
        });
        let mut children: Vec<_> =
            std::fs::read_dir(path).map_err(read)?.collect::<Result<_, _>>().map_err(read)?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let child_name = format!("{name}/{}", child.file_name().to_string_lossy());
            walk(&child.path(), child_name, entries, skipped)?;
        }
    } else {
        skipped.push(path.to_owned());
    }
    Ok(())
}

/// Sends `entries` as drop `transfer`, up to PARALLEL_FILES at once.
/// Returns when every stream has been delivered, or at the first failure
/// (the others are abandoned). `cancel` set to true stops it.
pub async fn send(
    link: &Link,
    transfer: u64,
    entries: Vec<Entry>,
    events: Events,
    cancel: watch::Receiver<bool>,
) -> Result<(), SendError> {
    let slots = Arc::new(Semaphore::new(PARALLEL_FILES));
    let mut tasks = tokio::task::JoinSet::new();
    for entry in entries {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let (link, events, cancel) = (link.clone(), events.clone(), cancel.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let result = send_one(&link, transfer, &entry, &events, cancel).await;
            if let Err(e) = &result {
                let (path, reason) = (entry.name.clone(), e.to_string());
                events.send(TransferEvent::Failed { transfer, path, reason }).await;
            }
            result
        });
        // Finished ones report early failures without waiting for the rest.
        while let Some(done) = tasks.try_join_next() {
            done.expect("send task panicked")?;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("send task panicked")?;
    }
    Ok(())
}

/// Opens a file for reading without following a link put in its place.
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc_o_nofollow());
    }
    options.open(path)
}

#[cfg(unix)]
fn libc_o_nofollow() -> i32 {
    #[cfg(target_os = "linux")]
    {
        nix::fcntl::OFlag::O_NOFOLLOW.bits()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0x0100 // O_NOFOLLOW on macOS and the BSDs
    }
}

async fn send_one(
    link: &Link,
    transfer: u64,
    entry: &Entry,
    events: &Events,
    cancel: watch::Receiver<bool>,
) -> Result<(), SendError> {
    let read_err = |error| SendError::Read { path: entry.source.display().to_string(), error };
    let mut file = match entry.kind {
        EntryKind::File => Some(open_nofollow(&entry.source).map_err(read_err)?),
        EntryKind::Folder => None,
    };
    let mut tx = link.open::<File>().await?;
    let header = FileHeader {
        transfer,
        path: entry.name.clone(),
        entry: entry.kind,
        size: entry.size,
        modified: entry.modified,
    };
    tx.send(&File::Header(header)).await?;
    events.send(TransferEvent::Started { transfer, path: entry.name.clone(), size: entry.size }).await;
    let mut hasher = blake3::Hasher::new();
    let mut meter = Meter::new(transfer, &entry.name, entry.size);
    let mut sent = 0u64;
    let mut chunk = vec![0u8; FILE_CHUNK_MAX];
    if let Some(f) = &mut file {
        while sent < entry.size {
            if *cancel.borrow() {
                tx.send(&File::Cancel { reason: CancelReason::User }).await?;
                tx.finish()?;
                return Err(SendError::Cancelled);
            }
            let want = (entry.size - sent).min(FILE_CHUNK_MAX as u64) as usize;
            let n = tokio::task::block_in_place(|| read_full(f, &mut chunk[..want])).map_err(read_err)?;
            if n < want {
                // Shorter than when it was dropped: say so, keep nothing.
                tx.send(&File::Cancel { reason: CancelReason::ReadError }).await?;
                tx.finish()?;
                return Err(SendError::Changed(entry.name.clone()));
            }
            hasher.update(&chunk[..n]);
            tx.send(&File::Data(chunk[..n].to_vec())).await?;
            sent += n as u64;
            meter.update(events, sent);
        }
    }
    let hash = hasher.finalize();
    tx.send(&File::End { blake3: *hash.as_bytes() }).await?;
    tx.finish()?;
    // Delivered whole, or refused by the receiver.
    match tx.stopped_code().await? {
        None => {}
        Some(_) => return Err(SendError::Refused(entry.name.clone())),
    }
    events
        .send(TransferEvent::Done {
            transfer,
            path: entry.name.clone(),
            size: entry.size,
            blake3: hash.to_hex().to_string(),
        })
        .await;
    Ok(())
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
