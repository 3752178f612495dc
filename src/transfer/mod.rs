//! File transfer by drag-and-drop, either way: the sender walks what was
//! dropped and sends one stream per file (`sender`); the receiver writes
//! into its chosen folder and nowhere else, nothing half-written under a
//! real name (`receiver`); both report progress (`events`). The rules for
//! names and streams are in `lifebuoy_proto::transfer`.

pub mod events;
pub mod receiver;
pub mod sender;

pub use events::{Events, TransferEvent};
pub use receiver::{receive_file, Inbox, ReceiveError};
pub use sender::{collect, send, Entry, SendError};

/// The default folder for received files: `lifebuoy` in the user's
/// Downloads (created if missing).
pub fn default_inbox() -> std::io::Result<std::path::PathBuf> {
    let downloads = directories::UserDirs::new()
        .and_then(|d| d.download_dir().map(std::path::Path::to_path_buf))
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().join("Downloads")))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no home folder"))?;
    let inbox = downloads.join("lifebuoy");
    std::fs::create_dir_all(&inbox)?;
    Ok(inbox)
}
