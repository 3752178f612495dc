//! Protocol version: what each side speaks, and whether two sides can talk.
//!
//! The major number changes when an old peer could misread a new one; the
//! minor number when something was only added (a message variant, a stream
//! kind, a capability) that is sent only to peers whose minor says they know
//! it. Two peers with the same major always interoperate.

use serde::{Deserialize, Serialize};

/// A protocol version as it travels in the hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ProtocolVersion {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
}

impl ProtocolVersion {
    /// The version this crate implements.
    pub const CURRENT: ProtocolVersion = ProtocolVersion { major: 1, minor: 2 };

    /// Whether a peer announcing `theirs` can talk to us.
    pub fn check_peer(self, theirs: ProtocolVersion) -> Result<(), VersionMismatch> {
        if self.major == theirs.major {
            Ok(())
        } else {
            Err(VersionMismatch { ours: self, theirs })
        }
    }
}

impl core::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The peer speaks a major version we do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the other side speaks lifebuoy protocol {theirs}, this side speaks {ours}: \
     both must run a release with protocol {}.x; update the older one", ours.major
)]
pub struct VersionMismatch {
    /// Our version.
    pub ours: ProtocolVersion,
    /// The version the peer announced.
    pub theirs: ProtocolVersion,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_major_is_compatible_whatever_the_minor() {
        let ours = ProtocolVersion { major: 1, minor: 1 };
        assert!(ours.check_peer(ProtocolVersion { major: 1, minor: 7 }).is_ok());
    }

    #[test]
    fn other_major_is_refused_with_both_versions_named() {
        let ours = ProtocolVersion { major: 1, minor: 2 };
        let err = ours.check_peer(ProtocolVersion { major: 2, minor: 0 }).unwrap_err();
        assert_eq!(err.theirs.major, 2);
        let text = err.to_string();
        assert!(text.contains("2.0") && text.contains("1.2"), "{text}");
    }
}
