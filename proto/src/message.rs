//! One encoding for every message: postcard inside a length-prefixed frame.
//!
//! postcard because it is compact (varints, no field names, one byte for
//! most enum tags), has a written wire specification a second implementation
//! can follow, is deterministic, and decodes without allocating more than the
//! input holds. Every decoded message then passes its own checks
//! ([`Message::check`]) before the caller sees it.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::frame::{encode_frame, FrameError};
use crate::text::InvalidField;
use crate::StreamKind;

/// A message type of the protocol: which stream it travels on, and what must
/// hold for a decoded value to be acted on.
pub trait Message: Serialize + DeserializeOwned {
    /// The stream kind this message travels on; it sets the frame limit.
    const KIND: StreamKind;

    /// Rules beyond what the types say (lengths, characters, counts).
    fn check(&self) -> Result<(), InvalidField> {
        Ok(())
    }
}

/// Anything that can be wrong with bytes from a peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The framing is broken.
    #[error("{kind:?} stream: {source}")]
    Frame {
        /// The stream kind.
        kind: StreamKind,
        /// What was wrong.
        source: FrameError,
    },
    /// The payload is not a valid encoding of the expected message.
    #[error("{kind:?} stream: malformed message ({detail})")]
    Malformed {
        /// The stream kind.
        kind: StreamKind,
        /// postcard's description.
        detail: postcard::Error,
    },
    /// The message decoded but bytes were left over in its frame.
    #[error("{kind:?} stream: {extra} stray bytes after the message")]
    TrailingBytes {
        /// The stream kind.
        kind: StreamKind,
        /// How many.
        extra: usize,
    },
    /// The message decoded but breaks a rule.
    #[error("{kind:?} stream: {source}")]
    Invalid {
        /// The stream kind.
        kind: StreamKind,
        /// The rule.
        source: InvalidField,
    },
}

/// Appends `msg` as one frame to `out`. Refuses a message that would break
/// its own checks or its stream's frame limit, so we never send what the
/// peer must refuse.
pub fn encode<M: Message>(msg: &M, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    let kind = M::KIND;
    msg.check().map_err(|source| ProtoError::Invalid { kind, source })?;
    let payload = postcard::to_allocvec(msg).map_err(|detail| ProtoError::Malformed { kind, detail })?;
    encode_frame(&payload, kind.max_frame(), out).map_err(|source| ProtoError::Frame { kind, source })
}

/// Decodes one frame payload as an `M` and checks it.
pub fn decode<M: Message>(payload: &[u8]) -> Result<M, ProtoError> {
    let kind = M::KIND;
    if payload.len() > kind.max_frame() {
        return Err(ProtoError::Frame {
            kind,
            source: FrameError::TooLarge { len: payload.len(), max: kind.max_frame() },
        });
    }
    let (msg, rest) =
        postcard::take_from_bytes::<M>(payload).map_err(|detail| ProtoError::Malformed { kind, detail })?;
    if !rest.is_empty() {
        return Err(ProtoError::TrailingBytes { kind, extra: rest.len() });
    }
    msg.check().map_err(|source| ProtoError::Invalid { kind, source })?;
    Ok(msg)
}
