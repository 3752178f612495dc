//! Receiving files into the chosen folder, and nowhere else.
//!
//! Every name passes the protocol's checks first. Folders on the way are
//! created inside the folder, never through a symbolic link (an existing
//! link on the way is refused). Data goes into a hidden temporary file in
//! the target folder, is synced to disk, checked against its BLAKE3, and
//! only then gets its name, without replacing anything: a taken name gets
//! " (1)", " (2)" ... On any failure (bad hash, full disk, cancel, session
//! lost) the temporary file is deleted: no half-written file ever carries
//! a real name. Runs of zeros are skipped, not written (sparse files stay
//! sparse).

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lifebuoy_proto::file::{EntryKind, File, FileHeader};
use lifebuoy_proto::transfer::{numbered, Receive, SafePath, Step, TransferError};

use super::events::{Events, Meter, TransferEvent};
use crate::session::{FramedRecv, SessionError};

/// Stream stop code when the receiver refuses or fails a file.
pub const STOP_REFUSED: u32 = 0x10;

/// Why a file was not received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The stream broke the protocol's rules (name, order, size, hash).
    #[error("{0}")]
    Transfer(#[from] TransferError),
    /// The session ended or the stream was reset.
    #[error("the connection ended during the transfer: {0}")]
    Session(#[from] SessionError),
    /// The disk is full.
    #[error("not enough free space for {path} ({size} bytes)")]
    DiskFull {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// Cancelled on this side.
    #[error("cancelled here")]
    Cancelled,
    /// A path on the way is a file or a link, not a folder.
    #[error("cannot create {0}: something that is not a folder is in the way")]
    InTheWay(String),
    /// Any other disk error.
    #[error("cannot write {path}: {error}")]
    Disk {
        /// The file.
        path: String,
        /// What the system said.
        error: std::io::Error,
    },
}

/// Where received files go.
#[derive(Debug)]
pub struct Inbox {
    root: PathBuf,
    events: Events,
    /// Per drop, what its outermost name became (a folder "Projekt" that
    /// already existed is received as "Projekt (1)", all its files too).
    tops: Mutex<HashMap<(u64, String), String>>,
    /// Drops the person on this side cancelled.
    cancelled: Mutex<std::collections::HashSet<u64>>,
}

fn disk_error(path: &str, error: std::io::Error, size: u64) -> ReceiveError {
    if error.kind() == std::io::ErrorKind::StorageFull || error.raw_os_error() == Some(28) {
        ReceiveError::DiskFull { path: path.to_owned(), size }
    } else {
        ReceiveError::Disk { path: path.to_owned(), error }
    }
}

impl Inbox {
    /// Receives into `root`, which must be an existing folder.
    pub fn new(root: PathBuf, events: Events) -> std::io::Result<Inbox> {
        let meta = std::fs::metadata(&root)?;
        if !meta.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"));
        }
        Ok(Inbox { root, events, tops: Mutex::default(), cancelled: Mutex::default() })
    }

    /// Cancels drop `transfer` on this side: its files still arriving are
    /// stopped and deleted (the sender sees them refused).
    pub fn cancel(&self, transfer: u64) {
        self.cancelled.lock().expect("not poisoned").insert(transfer);
    }

    fn is_cancelled(&self, transfer: u64) -> bool {
        self.cancelled.lock().expect("not poisoned").contains(&transfer)
    }

    /// The folder files go to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The outermost name for this drop: the sent one, or a numbered
    /// alternative if something of that name was there before the drop.
    fn top(&self, transfer: u64, path: &SafePath, entry: EntryKind) -> SafePath {
        if path.components().len() == 1 && entry == EntryKind::File {
            // A single file: numbered when it is committed.
            return path.clone();
        }
        let sent = path.components()[0].clone();
        let mut tops = self.tops.lock().expect("not poisoned");
        let top = tops
            .entry((transfer, sent.clone()))
            .or_insert_with(|| {
                let mut n = 0;
                let mut name = sent.clone();
                while std::fs::symlink_metadata(self.root.join(&name)).is_ok() {
                    n += 1;
                    name = numbered(&sent, n);
                }
                // Claim it now, so this drop's other files land beside it.
                let _ = std::fs::create_dir(self.root.join(&name));
                name
            })
            .clone();
        path.with_top(top)
    }

    /// Creates the folders of `names` under the root, refusing links and
    /// files in the way; returns the innermost folder.
    fn folders(&self, names: &[String]) -> Result<PathBuf, ReceiveError> {
        let mut at = self.root.clone();
        for name in names {
            at.push(name);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(ReceiveError::InTheWay(at.display().to_string())),
                Err(_) => match std::fs::create_dir(&at) {
                    Ok(()) => {}
                    // Made by a file of the same drop arriving beside this one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
                            return Err(ReceiveError::InTheWay(at.display().to_string()));
                        }
                    }
                    Err(e) => return Err(disk_error(&at.display().to_string(), e, 0)),
                },
            }
        }
        Ok(at)
    }
}

/// A file being written.
struct Incoming {
    temp: tempfile::NamedTempFile,
    folder: PathBuf,
    name: String,
    header: FileHeader,
    /// Bytes written (or skipped as zeros) so far.
    written: u64,
}

/// What a step of a file stream did on disk.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    /// A file was started (its temporary file made) under this name as sent.
    Started {
        /// The drop it belongs to.
        transfer: u64,
        /// Its path as sent.
        path: String,
        /// Its announced size.
        size: u64,
    },
    /// Data went into the file; so many bytes in all.
    Data(u64),
    /// The file is whole and has its name.
    Done {
        /// Where it is.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The folder is there.
    Folder(PathBuf),
}

/// The disk side of one file stream: the steps the protocol's state
/// machine allows, carried out inside the inbox (blocking: call it off
/// the async workers). Dropped before [`Wrote::Done`], it leaves nothing:
/// the temporary file goes with it.
pub struct Writing<'a> {
    inbox: &'a Inbox,
    incoming: Option<Incoming>,
    sent_path: String,
}

impl<'a> Writing<'a> {
    /// Nothing written yet.
    pub fn new(inbox: &'a Inbox) -> Writing<'a> {
        Writing { inbox, incoming: None, sent_path: String::new() }
    }

    /// Carries out one step.
    pub fn step(&mut self, step: Step<'_>) -> Result<Wrote, ReceiveError> {
        match step {
            Step::Create { header, path } => {
                self.sent_path = header.path.clone();
                let path = self.inbox.top(header.transfer, &path, header.entry);
                let names = path.components();
                match header.entry {
                    EntryKind::Folder => {
                        self.inbox.folders(names)?;
                    }
                    EntryKind::File => {
                        let folder = self.inbox.folders(&names[..names.len() - 1])?;
                        enough_space(&folder, header.size, &self.sent_path)?;
                        let temp = tempfile::Builder::new()
                            .prefix(TEMP_PREFIX)
                            .suffix(TEMP_SUFFIX)
                            .tempfile_in(&folder)
                            .map_err(|e| disk_error(&self.sent_path, e, header.size))?;
                        // Held while it is written: a cleanup of left-overs
                        // (another session's start) leaves it alone.
                        let _ = temp.as_file().try_lock();
                        self.incoming = Some(Incoming {
                            temp,
                            folder,
                            name: names[names.len() - 1].clone(),
                            header: header.clone(),
                            written: 0,
                        });
                    }
                }
                Ok(Wrote::Started { transfer: header.transfer, path: header.path.clone(), size: header.size })
            }
            Step::Write(bytes) => {
                let file = self.incoming.as_mut().ok_or(TransferError::Order)?;
                let len = bytes.len() as u64;
                let written = if bytes.iter().all(|&b| b == 0) {
                    file.temp.as_file_mut().seek(SeekFrom::Current(len as i64)).map(|_| ())
                } else {
                    file.temp.as_file_mut().write_all(bytes)
                };
                written.map_err(|e| disk_error(&self.sent_path, e, file.header.size))?;
                file.written += len;
                Ok(Wrote::Data(file.written))
            }
            Step::Commit => match self.incoming.take() {
                // A folder: already made.
                None => Ok(Wrote::Folder(self.inbox.root.join(&self.sent_path))),
                Some(file) => {
                    let size = file.header.size;
                    let path = commit(file).map_err(|e| disk_error(&self.sent_path, e, size))?;
                    Ok(Wrote::Done { path, size })
                }
            },
        }
    }
}

/// Receives one file stream into `inbox`. Whatever goes wrong, no file is
/// left behind and the reason is returned (and sent as an event).
pub async fn receive_file(mut stream: FramedRecv<File>, inbox: &Inbox) -> Result<PathBuf, ReceiveError> {
    let mut state = Receive::new();
    let mut writing = Writing::new(inbox);
    let mut meter: Option<Meter> = None;
    let mut sent_path = String::new();
    let mut transfer = 0;
    let result: Result<PathBuf, ReceiveError> = async {
        loop {
            let Some(msg) = stream.recv().await? else {
                // Finished before the end message: the sender went away.
                return Err(SessionError::StreamClosed.into());
            };
            let step = state.on_message(&msg)?;
            if let Step::Create { header, .. } = &step {
                (sent_path, transfer) = (header.path.clone(), header.transfer);
            }
            if inbox.is_cancelled(transfer) {
                return Err(ReceiveError::Cancelled);
            }
            if matches!(step, Step::Commit) {
                // The stream must end here; reading its end also tells the
                // sender everything was taken (a stream dropped unread
                // would look refused to it).
                if stream.recv().await?.is_some() {
                    return Err(TransferError::Order.into());
                }
            }
            match tokio::task::block_in_place(|| writing.step(step))? {
                Wrote::Started { transfer, path, size } => {
                    meter = Some(Meter::new(transfer, &path, size));
                    inbox.events.send(TransferEvent::Started { transfer, path, size }).await;
                }
                Wrote::Data(written) => {
                    if let Some(m) = &mut meter {
                        m.update(&inbox.events, written);
                    }
                }
                Wrote::Done { path, size } => {
                    let blake3 = match &msg {
                        File::End { blake3 } => blake3::Hash::from_bytes(*blake3).to_hex().to_string(),
                        _ => String::new(),
                    };
                    let shown = path.strip_prefix(&inbox.root).unwrap_or(&path).display().to_string();
                    inbox.events.send(TransferEvent::Done { transfer, path: shown, size, blake3 }).await;
                    return Ok(path);
                }
                Wrote::Folder(path) => return Ok(path),
            }
        }
    }
    .await;
    if let Err(e) = &result {
        // The temporary file (if any) is deleted as the writing drops.
        drop(writing);
        stream.stop(STOP_REFUSED);
        inbox
            .events
            .send(TransferEvent::Failed { transfer, path: sent_path.clone(), reason: e.to_string() })
            .await;
    }
    result
}

/// Syncs the data, then gives the file its name without replacing anything.
fn commit(file: Incoming) -> std::io::Result<PathBuf> {
    let Incoming { temp, folder, name, header, .. } = file;
    // Trailing zeros were skipped: the length makes them.
    temp.as_file().set_len(header.size)?;
    // Any number may come off the wire: a time the system cannot hold is left out.
    let when = header
        .modified
        .and_then(|s| u64::try_from(s).ok())
        .and_then(|secs| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs)));
    if let Some(when) = when {
        let _ = temp.as_file().set_modified(when);
    }
    temp.as_file().sync_all()?;
    let mut temp = temp;
    let mut n = 0;
    loop {
        let candidate = if n == 0 { name.clone() } else { numbered(&name, n) };
        let target = folder.join(&candidate);
        match temp.persist_noclobber(&target) {
            Ok(_) => {
                // The new name itself must survive a crash too.
                if let Ok(dir) = std::fs::File::open(&folder) {
                    let _ = dir.sync_all();
                }
                return Ok(target);
            }
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => {
                temp = e.file;
                n += 1;
            }
            Err(e) => return Err(e.error),
        }
    }
}

/// What the temporary file of a file being received is called: hidden,
/// and plainly not the finished file.
pub const TEMP_PREFIX: &str = ".lifebuoy-";
/// See [`TEMP_PREFIX`].
pub const TEMP_SUFFIX: &str = ".part";
/// Entries looked at, at most, when cleaning up after a killed transfer.
const CLEAN_ENTRIES_MAX: usize = 20_000;

/// Deletes the temporary files a killed transfer left in `root` and its
/// folders (a process that is killed cannot delete them itself); returns
/// how many. A temporary file still being written (locked by its writer,
/// perhaps another session on this machine) is kept, links are never
/// followed, and the walk is bounded in depth and entries.
pub fn clean_leftovers(root: &Path) -> usize {
    let mut removed = 0;
    let mut seen = 0;
    let mut folders = vec![(root.to_path_buf(), 0usize)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > CLEAN_ENTRIES_MAX {
                return removed;
            }
            // The entry's own type: a link is a link, never what it points to.
            let Ok(kind) = entry.file_type() else { continue };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if kind.is_dir() && depth < lifebuoy_proto::transfer::name::DEPTH_MAX {
                folders.push((entry.path(), depth + 1));
            } else if kind.is_file() && name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                let abandoned = std::fs::File::open(entry.path())
                    .is_ok_and(|f| f.try_lock().is_ok() && f.unlock().is_ok());
                if abandoned && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// Refuses a file the disk cannot hold, before writing any of it.
fn enough_space(folder: &Path, size: u64, path: &str) -> Result<(), ReceiveError> {
    #[cfg(target_os = "linux")]
    if let Ok(stat) = nix::sys::statvfs::statvfs(folder) {
        let free = stat.blocks_available().saturating_mul(stat.fragment_size());
        if size > free {
            return Err(ReceiveError::DiskFull { path: path.to_owned(), size });
        }
    }
    let _ = (folder, size, path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_transfers_leftovers_go_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("inbox");
        let deep = root.join("Projekt/Unterordner");
        std::fs::create_dir_all(&deep).unwrap();
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir(&outside).unwrap();
        for (folder, name) in [(&root, ".lifebuoy-a1b2.part"), (&deep, ".lifebuoy-c3d4.part")] {
            std::fs::write(folder.join(name), b"half a file").unwrap();
        }
        let keep = [
            root.join("Bericht.pdf"),
            root.join(".lifebuoy-notes.txt"),
            root.join("lifebuoy-x.part"),
            outside.join(".lifebuoy-e5f6.part"),
        ];
        for path in &keep {
            std::fs::write(path, b"kept").unwrap();
        }
        // A link from the inbox to a folder elsewhere is never followed.
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        // A transfer still running (its writer holds the lock) is left alone.
        let running =
            tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).tempfile_in(&deep).unwrap();
        running.as_file().try_lock().unwrap();

        assert_eq!(clean_leftovers(&root), 2);
        assert!(!root.join(".lifebuoy-a1b2.part").exists());
        assert!(!deep.join(".lifebuoy-c3d4.part").exists());
        assert!(running.path().exists(), "a transfer still being written was removed");
        for path in &keep {
            assert!(path.exists(), "{} was removed", path.display());
        }
    }

    #[test]
    fn any_modified_time_from_the_wire_is_taken_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        for (i, modified) in [i64::MAX, i64::MIN, -1, 0, 1_700_000_000].into_iter().enumerate() {
            let header = FileHeader {
                transfer: 1,
                path: format!("f{i}"),
                entry: EntryKind::File,
                size: 3,
                modified: Some(modified),
            };
            let mut temp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
            temp.write_all(b"abc").unwrap();
            let file =
                Incoming { temp, folder: dir.path().to_owned(), name: format!("f{i}"), header, written: 3 };
            let path = commit(file).unwrap();
            assert_eq!(std::fs::read(path).unwrap(), b"abc");
        }
    }
}
