//! Why a session could not start, or ended: errors a person can act on.

use lifebuoy_proto::close::CloseCode;
use lifebuoy_proto::version::VersionMismatch;
use lifebuoy_proto::{Fingerprint, ProtoError, Role};

use crate::net::tls::TlsConfigError;

/// Everything that can stop a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The endpoint refused to start a connection (bad address, endpoint closed).
    #[error("cannot start a connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The local socket could not be made (port taken, TCP tunnel unreachable).
    #[error("cannot use the network: {0}")]
    Endpoint(#[from] crate::net::EndpointError),
    /// Local TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The other side's certificate is not the pinned one.
    #[error(
        "the other side presented certificate {presented}, but {expected} was expected: \
         it is not who it should be, so no connection was made"
    )]
    WrongPeer {
        /// The pin.
        expected: Fingerprint,
        /// What was presented.
        presented: Fingerprint,
    },
    /// The other side presented the pinned certificate but could not sign
    /// with its key: a copied certificate.
    #[error(
        "the other side presented the expected certificate {presented} but could not prove it \
         holds its private key: an impostor, so no connection was made"
    )]
    ForgedCertificate {
        /// The fingerprint of the copied certificate.
        presented: Fingerprint,
    },
    /// A client connected without a certificate.
    #[error("the other side presented no certificate, so no connection was made")]
    NoPeerCertificate,
    /// The other side refused our certificate (it expected someone else) or
    /// the TLS handshake.
    #[error("the other side refused this side's identity or the connection setup ({detail})")]
    Refused {
        /// What quinn reported.
        detail: String,
    },
    /// The two sides speak different major protocol versions.
    #[error(transparent)]
    Version(#[from] VersionMismatch),
    /// The other side has the wrong role (two agents, or a rendezvous).
    #[error("the other side is a {theirs:?}, but this side ({ours:?}) needs the other role")]
    RoleMismatch {
        /// Ours.
        ours: Role,
        /// Theirs.
        theirs: Role,
    },
    /// The other side sent something that breaks the protocol.
    #[error("the other side broke the protocol: {0}")]
    Protocol(#[from] ProtoError),
    /// The other side's verification nonce did not match its commitment.
    #[error("the other side's verification data does not match what it committed to")]
    Commitment,
    /// This request's verification exchange is taken or used up: another
    /// connection is in the middle of it, or it was tried too often.
    #[error("refused another verification exchange: {0}")]
    NonceRefused(#[from] lifebuoy_proto::verification::NonceRefused),
    /// The company server told this side to take the other role in the
    /// connection (the agent must always be the QUIC client).
    #[error("the company server asked this side to take the wrong part in the connection; refused")]
    WrongSide,
    /// No address of the other side was worth trying, and no relay runs.
    #[error("the other side has no address this side could try, and there is no relay")]
    NoPath,
    /// The other side did not answer in time.
    #[error("no answer from the other side within {seconds} s during {stage}")]
    Timeout {
        /// What we were waiting for.
        stage: &'static str,
        /// How long we waited.
        seconds: u64,
    },
    /// The other side closed the connection, saying why.
    #[error("the other side ended the connection ({code:?}): {reason}")]
    PeerClosed {
        /// Its code.
        code: CloseCode,
        /// Its words.
        reason: String,
    },
    /// This side closed the connection.
    #[error("the connection was closed by this side")]
    LocallyClosed,
    /// The network path died (idle timeout, reset).
    #[error("the connection was lost: {0}")]
    Lost(quinn::ConnectionError),
    /// A stream ended or was reset where the protocol needs it open.
    #[error("a stream ended unexpectedly")]
    StreamClosed,
    /// The screen could not be captured.
    #[error("the screen cannot be captured: {0}")]
    Capture(String),
    /// A stream opened with a tag this side does not use here.
    #[error("the other side opened an unexpected stream")]
    UnexpectedStream,
}

impl SessionError {
    /// Maps a quinn connection error to what a person should read.
    pub fn from_connection(e: quinn::ConnectionError) -> SessionError {
        match e {
            quinn::ConnectionError::ApplicationClosed(close) => SessionError::PeerClosed {
                code: CloseCode::from_u32(close.error_code.into_inner().min(u32::MAX as u64) as u32),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            quinn::ConnectionError::LocallyClosed => SessionError::LocallyClosed,
            quinn::ConnectionError::ConnectionClosed(ref close) if is_crypto(close.error_code) => {
                SessionError::Refused { detail: e.to_string() }
            }
            quinn::ConnectionError::TransportError(ref t) if is_crypto(t.code) => {
                SessionError::Refused { detail: e.to_string() }
            }
            other => SessionError::Lost(other),
        }
    }

    /// Maps a quinn write error.
    pub fn from_write(e: quinn::WriteError) -> SessionError {
        match e {
            quinn::WriteError::ConnectionLost(c) => SessionError::from_connection(c),
            _ => SessionError::StreamClosed,
        }
    }

    /// Maps a quinn read error.
    pub fn from_read(e: quinn::ReadError) -> SessionError {
        match e {
            quinn::ReadError::ConnectionLost(c) => SessionError::from_connection(c),
            _ => SessionError::StreamClosed,
        }
    }
}

/// QUIC carries TLS alerts as transport error codes 0x100 to 0x1ff.
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}
