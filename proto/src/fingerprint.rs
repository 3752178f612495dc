//! Certificate fingerprints: how a peer is named and pinned.
//!
//! A fingerprint is the SHA-256 of the DER bytes of a peer's end-entity
//! certificate. Technicians and the rendezvous are known by theirs; an agent
//! gets a fresh one at every start.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The first 8 hex digits, for log lines and narrow UI; never for pinning.
    pub fn short(&self) -> String {
        let mut s = String::with_capacity(8);
        for b in &self.0[..4] {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Display for Fingerprint {
    /// 64 lowercase hex digits, the form `lifebuoy id` prints and the staff
    /// directory holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A fingerprint string that is not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a certificate fingerprint: expected 64 hex digits (separators ':', '-' and spaces allowed), got {digits} hex digits{}", if *.bad_char { " and other characters" } else { "" })]
pub struct ParseFingerprintError {
    /// How many hex digits were found.
    pub digits: usize,
    /// Whether a character other than a hex digit or separator was found.
    pub bad_char: bool,
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    /// Accepts what people paste: any case, with ':', '-' or spaces between
    /// digits, and an optional `sha256:` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix("sha256:").or_else(|| s.strip_prefix("SHA256:")).unwrap_or(s);
        let mut out = [0u8; 32];
        let mut digits = 0usize;
        let mut bad_char = false;
        for c in s.chars() {
            match c {
                ':' | '-' | ' ' => continue,
                _ => match c.to_digit(16) {
                    Some(v) => {
                        if digits < 64 {
                            out[digits / 2] |= (v as u8) << if digits.is_multiple_of(2) { 4 } else { 0 };
                        }
                        digits += 1;
                    }
                    None => bad_char = true,
                },
            }
        }
        if digits != 64 || bad_char {
            return Err(ParseFingerprintError { digits, bad_char });
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let fp = Fingerprint::of_certificate(b"not really a certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn parse_accepts_separators_case_and_prefix() {
        let fp = Fingerprint([0xab; 32]);
        let grouped: Vec<String> = fp.0.iter().map(|b| format!("{b:02X}")).collect();
        let pasted = format!("SHA256:{}", grouped.join(":"));
        assert_eq!(pasted.parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn parse_rejects_wrong_length_and_junk() {
        assert_eq!(
            "abcd".parse::<Fingerprint>().unwrap_err(),
            ParseFingerprintError { digits: 4, bad_char: false }
        );
        let junk = format!("{}zz", "a".repeat(64));
        assert!(junk.parse::<Fingerprint>().unwrap_err().bad_char);
        assert!("a".repeat(66).parse::<Fingerprint>().is_err());
    }

    #[test]
    fn fingerprint_is_sha256_of_der() {
        // SHA-256 of the empty string, a published test vector.
        assert_eq!(
            Fingerprint::of_certificate(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
