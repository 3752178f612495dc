//! The company's agent as one file: a copy of this program with the
//! company's name, rendezvous address and rendezvous pin appended. The
//! customer downloads it and starts it; with no arguments it opens the
//! agent window with that configuration, nothing to set up.
//!
//! Layout at the end of the file: the configuration (JSON, at most
//! [`CONFIG_MAX`] bytes), its length (u32 little-endian), its BLAKE3
//! (32 bytes), and [`MAGIC`]. The hash catches a damaged download; against
//! a changed one, sign the packed file (Authenticode, codesign): the
//! configuration is inside what is signed.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Marks a packed agent.
pub const MAGIC: &[u8; 16] = b"LIFEBUOY-AGENT1\n";
/// The longest configuration accepted.
pub const CONFIG_MAX: usize = 16 * 1024;
const TRAILER: usize = 4 + 32 + MAGIC.len();

/// What the company packs into its agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedConfig {
    /// Shown in the window's title.
    pub company: String,
    /// The rendezvous, `host:port` (a name is resolved at each start).
    pub rendezvous: String,
    /// The rendezvous server's fingerprint.
    pub pin: String,
    /// TCP port of the tunnel on the same host.
    pub tunnel_port: u16,
    /// The window's language (`de`, `en`); none: the system's.
    #[serde(default)]
    pub lang: Option<String>,
    /// Whether what the customer copies goes to the technician from the
    /// start (the customer can switch it; absent: no).
    #[serde(default)]
    pub clipboard_to_technician: bool,
}

/// Why a packed configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The configuration is longer than allowed.
    #[error("the packed configuration is {0} bytes; at most {CONFIG_MAX} are allowed")]
    TooLong(usize),
    /// The hash does not match: the file was damaged.
    #[error("the packed configuration is damaged (hash mismatch); download the support program again")]
    Damaged,
    /// The configuration does not parse.
    #[error("the packed configuration is invalid: {0}")]
    Invalid(String),
    /// The program already carries a configuration.
    #[error("{0} is already a packed agent; pack from the plain lifebuoy program")]
    AlreadyPacked(String),
}

/// Writes `from` with `config` appended to `to` (made executable).
pub fn pack(from: &Path, config: &PackedConfig, to: &Path) -> Result<(), PackError> {
    if read(from)?.is_some() {
        return Err(PackError::AlreadyPacked(from.display().to_string()));
    }
    let json = serde_json::to_vec(config).map_err(|e| PackError::Invalid(e.to_string()))?;
    if json.len() > CONFIG_MAX {
        return Err(PackError::TooLong(json.len()));
    }
    // Written beside the target and renamed: never a half-written agent.
    let dir = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut out = tempfile::NamedTempFile::new_in(dir)?;
    std::io::copy(&mut std::fs::File::open(from)?, &mut out)?;
    out.write_all(&json)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(blake3::hash(&json).as_bytes())?;
    out.write_all(MAGIC)?;
    out.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        out.as_file().set_permissions(std::fs::Permissions::from_mode(0o755))?;
    }
    out.persist(to).map_err(|e| PackError::Io(e.error))?;
    Ok(())
}

/// The configuration packed into `file`, if any.
pub fn read(file: &Path) -> Result<Option<PackedConfig>, PackError> {
    let mut f = std::fs::File::open(file)?;
    let len = f.metadata()?.len();
    let tail_len = len.min((TRAILER + CONFIG_MAX) as u64);
    let mut tail = vec![0u8; tail_len as usize];
    f.seek(SeekFrom::End(-(tail_len as i64)))?;
    f.read_exact(&mut tail)?;
    parse(&tail)
}

/// The configuration in the last bytes of a program (`tail`: up to
/// [`CONFIG_MAX`] + the trailer's length of them, fewer if the program is
/// shorter), if it is a packed agent. Nothing in `tail` is trusted: a
/// length beyond what is there, a hash that differs, or text that is not
/// a configuration is an error, never a panic.
pub fn parse(tail: &[u8]) -> Result<Option<PackedConfig>, PackError> {
    let Some(body_len) = tail.len().checked_sub(TRAILER) else { return Ok(None) };
    let trailer = &tail[body_len..];
    if &trailer[36..] != MAGIC {
        return Ok(None);
    }
    let size = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as usize;
    if size > CONFIG_MAX || size > body_len {
        return Err(PackError::TooLong(size));
    }
    let json = &tail[body_len - size..body_len];
    if blake3::hash(json).as_bytes() != &trailer[4..36] {
        return Err(PackError::Damaged);
    }
    serde_json::from_slice(json).map(Some).map_err(|e| PackError::Invalid(e.to_string()))
}

/// The configuration packed into this program, if it is a packed agent.
pub fn this_program() -> Result<Option<PackedConfig>, PackError> {
    read(&std::env::current_exe()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PackedConfig {
        PackedConfig {
            company: "Muster GmbH".into(),
            rendezvous: "support.example.com:5515".into(),
            pin: "ab".repeat(32),
            tunnel_port: 5511,
            lang: Some("de".into()),
            clipboard_to_technician: false,
        }
    }

    #[test]
    fn a_packed_program_carries_its_configuration_and_its_code_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("lifebuoy");
        std::fs::write(&plain, b"\x7fELF the program").unwrap();
        assert_eq!(read(&plain).unwrap(), None);
        let packed = dir.path().join("support-agent");
        pack(&plain, &config(), &packed).unwrap();
        assert_eq!(read(&packed).unwrap(), Some(config()));
        assert!(std::fs::read(&packed).unwrap().starts_with(b"\x7fELF the program"));
        assert!(matches!(
            pack(&packed, &config(), &dir.path().join("again")),
            Err(PackError::AlreadyPacked(_))
        ));
    }

    #[test]
    fn damage_and_lies_in_the_trailer_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("lifebuoy");
        std::fs::write(&plain, b"program").unwrap();
        let packed = dir.path().join("agent");
        pack(&plain, &config(), &packed).unwrap();
        let good = std::fs::read(&packed).unwrap();

        let mut damaged = good.clone();
        damaged[10] ^= 1; // inside the JSON
        std::fs::write(&packed, &damaged).unwrap();
        assert!(matches!(read(&packed), Err(PackError::Damaged)));

        let mut huge = good.clone();
        let at = huge.len() - TRAILER;
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&packed, &huge).unwrap();
        assert!(matches!(read(&packed), Err(PackError::TooLong(_))));

        let mut longer_than_file = good.clone();
        longer_than_file[at..at + 4].copy_from_slice(&(CONFIG_MAX as u32).to_le_bytes());
        std::fs::write(&packed, &longer_than_file).unwrap();
        assert!(matches!(read(&packed), Err(PackError::TooLong(_))));

        std::fs::write(&packed, MAGIC).unwrap();
        assert_eq!(read(&packed).unwrap(), None, "too short to be packed");
    }
}
