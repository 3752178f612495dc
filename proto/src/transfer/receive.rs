//! The receiving side of one file stream as a state machine: header, then
//! exactly the announced number of bytes, then a BLAKE3 that must match.
//! It says what to do (create, write, commit) and refuses everything out
//! of order, beyond the announced size, or with a wrong hash; the caller
//! only moves bytes to and from the disk.

use super::name::{check_path, NameError, SafePath};
use crate::file::{CancelReason, EntryKind, File, FileHeader};

/// Why a file stream is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The name failed the checks.
    #[error("refused name: {0}")]
    Name(#[from] NameError),
    /// A message where another was due (data before the header, two headers...).
    #[error("file stream out of order")]
    Order,
    /// More data than the header announced.
    #[error("more data than announced")]
    TooLong,
    /// The end came before all announced data.
    #[error("the file ended early: {received} of {size} bytes")]
    Short {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        size: u64,
    },
    /// The data does not match its hash: corrupted on the way or forged.
    #[error("the file's BLAKE3 does not match: it was damaged on the way")]
    Hash,
    /// The sender gave up.
    #[error("the sender cancelled ({0:?})")]
    Cancelled(CancelReason),
}

/// What the receiver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Start a file (into a temporary file) or create a folder.
    Create {
        /// The header as sent.
        header: &'a FileHeader,
        /// Its checked path.
        path: SafePath,
    },
    /// Append these bytes.
    Write(&'a [u8]),
    /// All bytes arrived and match: make the file visible under its name.
    Commit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Data { size: u64 },
    Folder,
    Done,
}

/// One file stream's receiving state.
#[derive(Debug)]
pub struct Receive {
    state: State,
    hasher: blake3::Hasher,
    received: u64,
}

impl Default for Receive {
    fn default() -> Self {
        Receive { state: State::Header, hasher: blake3::Hasher::new(), received: 0 }
    }
}

impl Receive {
    /// Waiting for a header.
    pub fn new() -> Receive {
        Receive::default()
    }

    /// Bytes of data accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the file was committed.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next message. After an error the stream is finished with:
    /// the caller deletes whatever it wrote.
    pub fn on_message<'a>(&mut self, msg: &'a File) -> Result<Step<'a>, TransferError> {
        let result = self.step(msg);
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn step<'a>(&mut self, msg: &'a File) -> Result<Step<'a>, TransferError> {
        match (self.state, msg) {
            (_, File::Cancel { reason }) if self.state != State::Done => {
                Err(TransferError::Cancelled(*reason))
            }
            (State::Header, File::Header(header)) => {
                let path = check_path(&header.path)?;
                self.state = match header.entry {
                    EntryKind::File => State::Data { size: header.size },
                    EntryKind::Folder => State::Folder,
                };
                Ok(Step::Create { header, path })
            }
            (State::Data { size }, File::Data(bytes)) => {
                let len = bytes.len() as u64;
                if self.received.checked_add(len).is_none_or(|total| total > size) {
                    return Err(TransferError::TooLong);
                }
                self.received += len;
                self.hasher.update(bytes);
                Ok(Step::Write(bytes))
            }
            (State::Data { size }, File::End { blake3 }) => {
                if self.received != size {
                    return Err(TransferError::Short { received: self.received, size });
                }
                self.finish(blake3)
            }
            (State::Folder, File::End { blake3 }) => self.finish(blake3),
            _ => Err(TransferError::Order),
        }
    }

    fn finish(&mut self, expected: &[u8; 32]) -> Result<Step<'static>, TransferError> {
        // Constant time is not needed (the hash is not a secret), equality is.
        if self.hasher.finalize().as_bytes() != expected {
            return Err(TransferError::Hash);
        }
        self.state = State::Done;
        Ok(Step::Commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, entry: EntryKind, size: u64) -> File {
        File::Header(FileHeader { transfer: 1, path: path.into(), entry, size, modified: None })
    }

    #[test]
    fn a_file_is_created_written_and_committed() {
        let mut r = Receive::new();
        let h = header("a/b.txt", EntryKind::File, 5);
        assert!(matches!(r.on_message(&h), Ok(Step::Create { .. })));
        let d1 = File::Data(b"hel".to_vec());
        let d2 = File::Data(b"lo".to_vec());
        assert_eq!(r.on_message(&d1), Ok(Step::Write(b"hel")));
        assert_eq!(r.on_message(&d2), Ok(Step::Write(b"lo")));
        let end = File::End { blake3: *blake3::hash(b"hello").as_bytes() };
        assert_eq!(r.on_message(&end), Ok(Step::Commit));
        assert!(r.done());
        // Nothing after the end.
        assert_eq!(r.on_message(&d1), Err(TransferError::Order));
    }

    #[test]
    fn wrong_hash_short_long_and_disorder_are_refused() {
        let end_of = |b: &[u8]| File::End { blake3: *blake3::hash(b).as_bytes() };
        let mut r = Receive::new();
        r.on_message(&header("x", EntryKind::File, 2)).unwrap();
        r.on_message(&File::Data(b"ab".to_vec())).unwrap();
        assert_eq!(r.on_message(&end_of(b"ax")), Err(TransferError::Hash));

        let mut r = Receive::new();
        r.on_message(&header("x", EntryKind::File, 3)).unwrap();
        r.on_message(&File::Data(b"ab".to_vec())).unwrap();
        assert_eq!(r.on_message(&end_of(b"ab")), Err(TransferError::Short { received: 2, size: 3 }));

        let mut r = Receive::new();
        r.on_message(&header("x", EntryKind::File, 1)).unwrap();
        assert_eq!(r.on_message(&File::Data(b"ab".to_vec())), Err(TransferError::TooLong));

        let mut r = Receive::new();
        assert_eq!(r.on_message(&File::Data(b"ab".to_vec())), Err(TransferError::Order));
        let mut r = Receive::new();
        r.on_message(&header("x", EntryKind::File, 0)).unwrap();
        assert_eq!(r.on_message(&header("y", EntryKind::File, 0)), Err(TransferError::Order));
        let mut r = Receive::new();
        r.on_message(&header("dir", EntryKind::Folder, 0)).unwrap();
        assert_eq!(r.on_message(&File::Data(b"a".to_vec())), Err(TransferError::Order));
    }

    #[test]
    fn bad_names_and_cancels_are_errors() {
        let mut r = Receive::new();
        assert!(matches!(r.on_message(&header("../x", EntryKind::File, 0)), Err(TransferError::Name(_))));
        let mut r = Receive::new();
        r.on_message(&header("x", EntryKind::File, 9)).unwrap();
        assert_eq!(
            r.on_message(&File::Cancel { reason: CancelReason::User }),
            Err(TransferError::Cancelled(CancelReason::User))
        );
    }

    #[test]
    fn folders_and_empty_files_end_with_the_hash_of_nothing() {
        let nothing = File::End { blake3: *blake3::hash(b"").as_bytes() };
        let mut r = Receive::new();
        r.on_message(&header("dir", EntryKind::Folder, 0)).unwrap();
        assert_eq!(r.on_message(&nothing), Ok(Step::Commit));
        let mut r = Receive::new();
        r.on_message(&header("empty", EntryKind::File, 0)).unwrap();
        assert_eq!(r.on_message(&nothing), Ok(Step::Commit));
    }
}
