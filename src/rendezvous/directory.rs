//! The staff directory: who may register as a technician.
//!
//! A TOML file the administrator edits (see `certs/staff.example.toml`):
//! one `[[staff]]` table per technician with a name, the fingerprint
//! `lifebuoy id` printed on their machine, and an optional group. Any
//! mistake is reported with the entry it is in; a directory with a mistake
//! is never half-loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lifebuoy_proto::hello::NAME_MAX;
use lifebuoy_proto::rendezvous::{FromRendezvous, Presence, StaffEntry, STAFF_MAX};
use lifebuoy_proto::text::check_label;
use lifebuoy_proto::Fingerprint;
use lifebuoy_proto::StreamKind;
use serde::Deserialize;

/// Largest directory file read.
const FILE_MAX: u64 = 4 * 1024 * 1024;

/// One technician.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staff {
    /// Shown to customers.
    pub name: String,
    /// Their certificate.
    pub fingerprint: Fingerprint,
    /// Optional team.
    pub group: Option<String>,
}

/// The parsed directory, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    staff: Vec<Staff>,
    index: HashMap<Fingerprint, usize>,
}

/// What is wrong with a directory file.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The file could not be read.
    #[error("staff directory {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid TOML, or not the expected tables.
    #[error("staff directory: {0}")]
    Syntax(String),
    /// An entry breaks a rule.
    #[error("staff directory, entry {entry} ({name:?}): {problem}")]
    Entry {
        /// 1-based position in the file.
        entry: usize,
        /// Its name as written.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// More entries than a staff list can carry.
    #[error("staff directory has {0} entries; at most {STAFF_MAX} are supported")]
    TooMany(usize),
    /// The staff list would not fit one message to the customers.
    #[error(
        "staff directory: the staff list would be {bytes} bytes, more than the {max} one message may carry; \
         shorten names and groups or list fewer people"
    )]
    TooLarge {
        /// The list's size.
        bytes: usize,
        /// What a message may carry.
        max: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    staff: Vec<Line>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: String,
    fingerprint: String,
    group: Option<String>,
}

impl Directory {
    /// Parses directory text.
    pub fn parse(text: &str) -> Result<Directory, DirectoryError> {
        let file: File = toml::from_str(text).map_err(|e| DirectoryError::Syntax(e.to_string()))?;
        if file.staff.len() > STAFF_MAX {
            return Err(DirectoryError::TooMany(file.staff.len()));
        }
        let mut dir = Directory::default();
        for (i, line) in file.staff.into_iter().enumerate() {
            let problem =
                |problem: String| DirectoryError::Entry { entry: i + 1, name: line.name.clone(), problem };
            if line.name.trim().is_empty() {
                return Err(problem("the name is empty".into()));
            }
            check_label("name", &line.name, NAME_MAX).map_err(|e| problem(e.to_string()))?;
            if let Some(g) = &line.group {
                check_label("group", g, NAME_MAX).map_err(|e| problem(e.to_string()))?;
            }
            let fingerprint: Fingerprint = line.fingerprint.parse().map_err(|e| problem(format!("{e}")))?;
            if let Some(&other) = dir.index.get(&fingerprint) {
                return Err(problem(format!(
                    "same fingerprint as entry {} ({:?})",
                    other + 1,
                    dir.staff[other].name
                )));
            }
            dir.index.insert(fingerprint, dir.staff.len());
            dir.staff.push(Staff { name: line.name, fingerprint, group: line.group });
        }
        dir.check_fits()?;
        Ok(dir)
    }

    /// Every customer gets the whole list in one message: refuse a
    /// directory whose list would not fit one (presence takes one byte
    /// whatever it is, so this is the list's size at any time).
    fn check_fits(&self) -> Result<(), DirectoryError> {
        let list = FromRendezvous::Staff {
            entries: self
                .staff
                .iter()
                .map(|s| StaffEntry {
                    name: s.name.clone(),
                    group: s.group.clone(),
                    fingerprint: s.fingerprint,
                    presence: Presence::Offline,
                })
                .collect(),
        };
        let mut frame = Vec::new();
        let bytes = match lifebuoy_proto::encode(&list, &mut frame) {
            Ok(()) => frame.len(),
            Err(_) => usize::MAX,
        };
        let max = StreamKind::Rendezvous.max_frame();
        if bytes > max {
            return Err(DirectoryError::TooLarge { bytes, max });
        }
        Ok(())
    }

    /// Reads and parses a directory file.
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let io = |source| DirectoryError::Io { path: path.to_owned(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, FILE_MAX), &mut text).map_err(io)?;
        Directory::parse(&text)
    }

    /// The technician with this certificate, if listed.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&Staff> {
        self.index.get(fingerprint).map(|&i| &self.staff[i])
    }

    /// Everyone, in file order.
    pub fn staff(&self) -> &[Staff] {
        &self.staff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP1: &str = "3f5c1b0e6a9d4e2f8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a";
    const FP2: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn example_file_in_certs_parses() {
        let text = include_str!("../../certs/staff.example.toml");
        let dir = Directory::parse(text).unwrap();
        assert_eq!(dir.staff().len(), 2);
        assert_eq!(dir.staff()[1].name, "Jürgen Weiß");
        assert_eq!(dir.get(&FP1.parse().unwrap()).unwrap().group.as_deref(), Some("Support"));
    }

    #[test]
    fn mistakes_name_their_entry() {
        let text = format!(
            "[[staff]]\nname = \"A\"\nfingerprint = \"{FP1}\"\n[[staff]]\nname = \"B\"\nfingerprint = \"abc\"\n"
        );
        let e = Directory::parse(&text).unwrap_err().to_string();
        assert!(e.contains("entry 2") && e.contains("\"B\"") && e.contains("64 hex digits"), "{e}");

        let dup = format!(
            "[[staff]]\nname = \"A\"\nfingerprint = \"{FP1}\"\n[[staff]]\nname = \"B\"\nfingerprint = \"{}\"\n",
            FP1.to_uppercase()
        );
        let e = Directory::parse(&dup).unwrap_err().to_string();
        assert!(e.contains("same fingerprint as entry 1"), "{e}");

        let unknown = format!("[[staff]]\nname = \"A\"\nfingerprint = \"{FP2}\"\nrole = \"admin\"\n");
        assert!(matches!(Directory::parse(&unknown), Err(DirectoryError::Syntax(_))));

        let control = format!("[[staff]]\nname = \"A\\u001b[31m\"\nfingerprint = \"{FP2}\"\n");
        assert!(Directory::parse(&control).unwrap_err().to_string().contains("control characters"));
    }

    #[test]
    fn a_directory_whose_staff_list_would_not_fit_one_message_is_refused() {
        let entry = |i: usize, len: usize| {
            format!(
                "[[staff]]\nname = \"{:0len$}\"\ngroup = \"{}\"\nfingerprint = \"{:064x}\"\n",
                i,
                "g".repeat(len),
                i + 1
            )
        };
        // The most entries, with short names, fit.
        let short: String = (0..STAFF_MAX).map(|i| entry(i, 8)).collect();
        assert_eq!(Directory::parse(&short).unwrap().staff().len(), STAFF_MAX);
        // As many with the longest names and groups do not.
        let long: String = (0..STAFF_MAX).map(|i| entry(i, 64)).collect();
        let e = Directory::parse(&long).unwrap_err();
        assert!(matches!(e, DirectoryError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("shorten names"), "{e}");
    }

    #[test]
    fn empty_file_is_an_empty_directory() {
        assert_eq!(Directory::parse("").unwrap().staff().len(), 0);
    }
}
