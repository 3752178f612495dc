//! The six-digit verification code customer and technician compare on the
//! phone.
//!
//! Pinning makes each side talk only to the key it was told about; the
//! rendezvous is the one that told them. The code catches a rendezvous that
//! lied about both keys and sits in the middle: the two halves of such a
//! connection see different fingerprints, so the code differs.
//!
//! A code of six digits alone could be ground: a man in the middle who learns
//! the agent's fresh key could try a million keys of its own until one gives
//! the code the technician sees. So each code also mixes a random nonce from
//! each side, and the side that speaks first (the QUIC client) commits to its
//! nonce before it sees the other's and reveals it after. Whoever is in the
//! middle must fix its choices before the last unknown is revealed, and
//! matches with a chance of one in a million per attempt (the commitment
//! scheme of ZRTP, RFC 6189 §4.4.1).

use core::fmt;

use sha2::{Digest, Sha256};

use crate::Fingerprint;

/// Length of a verification nonce in bytes.
pub const NONCE_LEN: usize = 32;

const COMMIT_DOMAIN: &[u8] = b"lifebuoy verification commitment v1\0";
const CODE_DOMAIN: &[u8] = b"lifebuoy verification code v1\0";

/// The commitment the client puts in its hello: SHA-256 over a domain label
/// and its nonce.
pub fn commitment(nonce: &[u8; NONCE_LEN]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMIT_DOMAIN);
    h.update(nonce);
    h.finalize().into()
}

/// The revealed nonce does not match the commitment made in the hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the other side's verification nonce does not match its commitment")]
pub struct CommitmentMismatch;

/// Checks a revealed nonce against the commitment from the hello.
pub fn check_reveal(
    commitment_from_hello: &[u8; 32],
    revealed: &[u8; NONCE_LEN],
) -> Result<(), CommitmentMismatch> {
    if &commitment(revealed) == commitment_from_hello {
        Ok(())
    } else {
        Err(CommitmentMismatch)
    }
}

/// Most server nonces one accepting side hands out for one request.
///
/// The commitment stops grinding within one exchange, not across many: a
/// man in the middle who opened N connections to the QUIC server at once,
/// each with its own commitment, would learn N server nonces, compute N
/// codes, and reveal only on the one that matches the code the other half
/// of his connection shows: N chances in a million. So a server hands a
/// nonce to one exchange at a time and to this many in all; a genuine
/// client needs one (a few when several of its paths arrive at once).
pub const NONCES_PER_REQUEST: u8 = 4;

/// The server nonces one request may still get: at most one exchange
/// holds one at a time, at most [`NONCES_PER_REQUEST`] are handed out in
/// all. Time plays no part; the caller ends each exchange it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NonceBudget {
    handed_out: u8,
    in_use: bool,
}

/// Why no nonce was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NonceRefused {
    /// Another exchange holds the request's nonce until it reveals or ends.
    #[error("another connection is in the middle of the verification exchange")]
    Busy,
    /// The request has had all its nonces.
    #[error("this request has had {NONCES_PER_REQUEST} verification exchanges, the most allowed")]
    Spent,
}

impl NonceBudget {
    /// Takes the request's nonce for one exchange, if it is free and any is left.
    pub fn take(&mut self) -> Result<(), NonceRefused> {
        if self.in_use {
            Err(NonceRefused::Busy)
        } else if self.handed_out >= NONCES_PER_REQUEST {
            Err(NonceRefused::Spent)
        } else {
            self.in_use = true;
            self.handed_out += 1;
            Ok(())
        }
    }

    /// The exchange that took the nonce failed or gave up; another may try
    /// (the nonce handed out still counts).
    pub fn release(&mut self) {
        self.in_use = false;
    }

    /// Nonces handed out so far.
    pub fn handed_out(&self) -> u8 {
        self.handed_out
    }
}

/// A six-digit code, shown as `123 456`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationCode(u32);

impl VerificationCode {
    /// Derives the code from both certificate fingerprints (in either
    /// order) and the two nonces of the exchange.
    pub fn derive(
        a: &Fingerprint,
        b: &Fingerprint,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
    ) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut h = Sha256::new();
        h.update(CODE_DOMAIN);
        h.update(lo.0);
        h.update(hi.0);
        h.update(client_nonce);
        h.update(server_nonce);
        let digest: [u8; 32] = h.finalize().into();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 2^64 is not a multiple of 10^6; the bias is below 10^-13.
        VerificationCode((u64::from_be_bytes(first) % 1_000_000) as u32)
    }

    /// The code as a number below 1,000,000.
    pub fn value(&self) -> u32 {
        self.0
    }
}

impl fmt::Display for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationCode({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Fingerprint = Fingerprint([1; 32]);
    const B: Fingerprint = Fingerprint([2; 32]);
    const NC: [u8; 32] = [7; 32];
    const NS: [u8; 32] = [9; 32];

    #[test]
    fn both_orders_give_the_same_code() {
        assert_eq!(VerificationCode::derive(&A, &B, &NC, &NS), VerificationCode::derive(&B, &A, &NC, &NS));
    }

    #[test]
    fn another_key_on_either_side_changes_the_code() {
        let base = VerificationCode::derive(&A, &B, &NC, &NS);
        let mut changed = 0;
        for i in 0..32u8 {
            let other = Fingerprint([100 + i; 32]);
            changed += (VerificationCode::derive(&other, &B, &NC, &NS) != base) as u32;
            changed += (VerificationCode::derive(&A, &other, &NC, &NS) != base) as u32;
        }
        // A collision has a chance of 1e-6 per pair; 64 pairs all differ.
        assert_eq!(changed, 64);
    }

    #[test]
    fn nonces_change_the_code() {
        let base = VerificationCode::derive(&A, &B, &NC, &NS);
        assert_ne!(VerificationCode::derive(&A, &B, &NS, &NC), base);
        assert_ne!(VerificationCode::derive(&A, &B, &[0; 32], &NS), base);
    }

    #[test]
    fn code_is_six_digits_with_a_space() {
        let code = VerificationCode(42);
        assert_eq!(code.to_string(), "000 042");
        let code = VerificationCode::derive(&A, &B, &NC, &NS);
        assert!(code.value() < 1_000_000);
        assert_eq!(code.to_string().len(), 7);
    }

    #[test]
    fn a_request_hands_its_nonce_to_one_exchange_at_a_time_and_a_few_in_all() {
        let mut budget = NonceBudget::default();
        assert_eq!(budget.take(), Ok(()));
        assert_eq!(budget.take(), Err(NonceRefused::Busy), "one exchange holds it");
        budget.release();
        for _ in 1..NONCES_PER_REQUEST {
            assert_eq!(budget.take(), Ok(()));
            budget.release();
        }
        assert_eq!(budget.take(), Err(NonceRefused::Spent));
        assert_eq!(budget.handed_out(), NONCES_PER_REQUEST);
    }

    #[test]
    fn reveal_must_match_commitment() {
        let c = commitment(&NC);
        assert!(check_reveal(&c, &NC).is_ok());
        assert_eq!(check_reveal(&c, &NS), Err(CommitmentMismatch));
    }
}
