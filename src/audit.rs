//! The audit log: what happened in each session, as JSON lines a person
//! can read, on the machine where it happened (the agent's copy stays on
//! the customer's computer). One line per fact: the session's start (the
//! peer's name and fingerprint, the path, the verification code), every
//! change of what the technician may do, every file with its size and
//! BLAKE3, and the end. Lines are appended whole and flushed at once, so a
//! crash loses at most the line being written.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// One fact.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// A session stands.
    SessionStart {
        /// The other side's name (technician) or label (customer).
        peer: String,
        /// The other side's certificate fingerprint.
        fingerprint: String,
        /// How the connection goes.
        path: String,
        /// The code both people compared.
        code: String,
    },
    /// The customer's answer when asked to let the technician in, with the
    /// code in front of them.
    Consent {
        /// Yes or no.
        allowed: bool,
        /// Mouse and keyboard, as chosen.
        control: bool,
        /// Files, as chosen.
        files: bool,
        /// What the customer copies goes to the technician, as chosen.
        clipboard_to_technician: bool,
    },
    /// What the technician may do (at the start and at every change).
    Permissions {
        /// See the screen.
        view: bool,
        /// Mouse and keyboard.
        control: bool,
        /// Send files.
        files: bool,
        /// Clipboard.
        clipboard: bool,
    },
    /// A file arrived whole or was sent whole.
    File {
        /// "sent" or "received".
        direction: &'static str,
        /// Its name (received: where it was written, inside the inbox).
        path: String,
        /// Bytes.
        size: u64,
        /// BLAKE3, hex.
        blake3: String,
    },
    /// A file did not make it; nothing of it was kept.
    FileFailed {
        /// "sent" or "received".
        direction: &'static str,
        /// Its name.
        path: String,
        /// Why.
        reason: String,
    },
    /// The session ended.
    SessionEnd {
        /// Who ended it, or how it was lost.
        how: String,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    role: &'a str,
    #[serde(flatten)]
    record: &'a Record,
}

/// An open audit log.
#[derive(Debug)]
pub struct AuditLog {
    role: &'static str,
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

/// The default place: `audit.jsonl` in the user's data folder
/// (~/.local/share/lifebuoy on Linux, %APPDATA%\lifebuoy\data on Windows).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "lifebuoy").map(|d| d.data_dir().join("audit.jsonl"))
}

impl AuditLog {
    /// Opens (creating, owner-only) the log at `path` for appending.
    pub fn open(path: &Path, role: &'static str) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        Ok(AuditLog { role, path: path.to_owned(), file: Mutex::new(file) })
    }

    /// Opens the log at `path` or the default place; a log that cannot be
    /// opened is reported and support goes on without it.
    pub fn open_or_warn(path: Option<PathBuf>, role: &'static str) -> Option<AuditLog> {
        let path = path.or_else(default_path)?;
        AuditLog::open(&path, role)
            .inspect_err(|e| tracing::warn!("no audit log at {}: {e}", path.display()))
            .ok()
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line.
    pub fn record(&self, record: &Record) {
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            role: self.role,
            record,
        };
        let Ok(mut text) = serde_json::to_string(&line) else { return };
        text.push('\n');
        let mut file = self.file.lock().expect("not poisoned");
        // One write of the whole line: appends do not interleave.
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!("audit log {}: {e}", self.path.display());
        }
    }
}

/// The record for a file's news, if it is an end.
pub fn file_record(news: &crate::roles::files::FileNews) -> Option<Record> {
    use crate::transfer::TransferEvent;
    let direction = if news.outgoing { "sent" } else { "received" };
    match &news.event {
        TransferEvent::Done { path, size, blake3, .. } => {
            Some(Record::File { direction, path: path.clone(), size: *size, blake3: blake3.clone() })
        }
        TransferEvent::Failed { path, reason, .. } => {
            Some(Record::FileFailed { direction, path: path.clone(), reason: reason.clone() })
        }
        _ => None,
    }
}

/// The record of a permission state.
pub fn permissions_record(p: &lifebuoy_proto::control::Permissions) -> Record {
    Record::Permissions { view: p.view, control: p.control, files: p.files, clipboard: p.clipboard }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_time_role_and_event_appended_to_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        let log = AuditLog::open(&path, "agent").unwrap();
        log.record(&Record::SessionStart {
            peer: "Anna \"Support\"".into(),
            fingerprint: "ab".into(),
            path: "direct".into(),
            code: "123 456".into(),
        });
        drop(log);
        let log = AuditLog::open(&path, "agent").unwrap();
        log.record(&Record::SessionEnd { how: "ended on this side".into() });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["event"], "session_start");
        assert_eq!(lines[0]["peer"], "Anna \"Support\"");
        assert_eq!(lines[0]["role"], "agent");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["event"], "session_end");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
