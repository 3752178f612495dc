//! The lifebuoy wire protocol: message types, framing with hard limits, the
//! checks every message passes before anyone acts on it, and the
//! verification code both people read out on the phone.
//!
//! Nothing here does I/O. The shells in the `lifebuoy` crate read bytes off
//! QUIC streams, feed them to a [`frame::FrameDecoder`], and act on the typed
//! messages that come out. Everything that could be tricked by a hostile
//! peer lives here, where it can be tested and fuzzed without sockets.
//!
//! `PROTOCOL.md` beside this crate is the specification; this crate is one
//! implementation of it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod codec;
pub mod control;
pub mod datagram;
pub mod file;
pub mod fingerprint;
pub mod frame;
pub mod hello;
pub mod input;
pub mod message;
pub mod rendezvous;
pub mod screen;
pub mod silence;
pub mod stream;
pub mod text;
pub mod transfer;
pub mod tunnel;
mod varint;
pub mod verification;
pub mod version;

pub use fingerprint::Fingerprint;
pub use frame::{FrameDecoder, FrameError};
pub use hello::{Hello, Role};
pub use message::{decode, encode, Message, ProtoError};
pub use stream::StreamKind;
pub use verification::VerificationCode;
pub use version::ProtocolVersion;
