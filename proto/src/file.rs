//! File stream messages, either direction, one stream per file: a header,
//! the bytes in chunks, and the BLAKE3 hash at the end.
//!
//! The path in a header is relative, `/`-separated and hostile until the
//! receiver's name checks pass; this module bounds its size and characters.

use serde::{Deserialize, Serialize};

use crate::message::Message;
use crate::stream::FILE_CHUNK_MAX;
use crate::text::{check_label, InvalidField};
use crate::StreamKind;

/// Longest relative path in a header, in UTF-8 bytes.
pub const PATH_MAX: usize = 4096;

/// A message on a file stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum File {
    /// First message: what follows.
    Header(FileHeader),
    /// Up to [`FILE_CHUNK_MAX`] bytes of content, in order.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Last message of a complete file.
    End {
        /// BLAKE3 of all the data.
        blake3: [u8; 32],
    },
    /// The sender gives up; the receiver deletes what it wrote.
    Cancel {
        /// Why.
        reason: CancelReason,
    },
}

/// What a file stream carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct FileHeader {
    /// Groups the files of one drop (a folder and its contents).
    pub transfer: u64,
    /// Relative path inside the drop, `/`-separated.
    pub path: String,
    /// A file, or an (empty) folder to create.
    pub entry: EntryKind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Modification time, seconds since 1970, if known.
    pub modified: Option<i64>,
}

/// File or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum EntryKind {
    /// Regular file: data follows.
    File,
    /// Folder: nothing follows but the end.
    Folder,
}

/// Why a transfer was abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum CancelReason {
    /// A person pressed cancel.
    User,
    /// The sender could not read the file.
    ReadError,
    /// The receiver refused it (disabled, bad name, no space).
    Refused,
}

impl Message for File {
    const KIND: StreamKind = StreamKind::File;

    fn check(&self) -> Result<(), InvalidField> {
        match self {
            File::Header(h) => {
                if h.path.is_empty() {
                    return Err(InvalidField::new("path", "empty"));
                }
                check_label("path", &h.path, PATH_MAX)?;
                if h.entry == EntryKind::Folder && h.size != 0 {
                    return Err(InvalidField::new("folder", "has a size"));
                }
                Ok(())
            }
            File::Data(bytes) if bytes.len() > FILE_CHUNK_MAX => {
                Err(InvalidField::new("file data", "chunk too large"))
            }
            File::Data(bytes) if bytes.is_empty() => Err(InvalidField::new("file data", "empty chunk")),
            _ => Ok(()),
        }
    }
}
