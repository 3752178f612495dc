//! The hello: the first frame each side sends on a control or rendezvous
//! stream.
//!
//! Its first two fields are the protocol version, and they stay first in
//! every future version, so a peer can always read the version of a hello
//! whose remaining layout it does not know ([`peek_version`]) and say clearly
//! that the versions do not match.

use serde::{Deserialize, Serialize};

use crate::message::Message;
use crate::text::{check_label, InvalidField};
use crate::verification::NONCE_LEN;
use crate::{ProtocolVersion, StreamKind};

/// Longest display name or software string, in UTF-8 bytes.
pub const NAME_MAX: usize = 64;

/// Who is speaking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Role {
    /// The customer's side: shares its screen, takes input.
    Agent,
    /// The technician's side.
    Viewer,
    /// The company's server.
    Rendezvous,
}

/// Feature bits a side supports. Bits it does not know are ignored, so
/// capabilities can be added within a major version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// Screen updates with the tile codec.
    pub const SCREEN: u64 = 1 << 0;
    /// Remote keyboard and mouse.
    pub const INPUT: u64 = 1 << 1;
    /// File transfer.
    pub const FILES: u64 = 1 << 2;
    /// Clipboard text.
    pub const CLIPBOARD: u64 = 1 << 3;

    /// Whether every bit of `bits` is set.
    pub fn has(self, bits: u64) -> bool {
        self.0 & bits == bits
    }
}

/// The first frame each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Hello {
    /// Must stay the first field, forever.
    pub version: ProtocolVersion,
    /// Who is speaking.
    pub role: Role,
    /// Software and version, e.g. `lifebuoy 0.1.0`, for logs.
    pub software: String,
    /// What the speaker is called: the technician's name, or the label the
    /// customer typed (empty if none); empty for a rendezvous.
    pub name: String,
    /// What the speaker supports.
    pub capabilities: Capabilities,
    /// On a peer connection: from the QUIC client, the commitment to its
    /// verification nonce; from the QUIC server, its nonce (see
    /// [`crate::verification`]). All zero on a rendezvous connection.
    pub verification: [u8; NONCE_LEN],
}

impl Message for Hello {
    const KIND: StreamKind = StreamKind::Control;

    fn check(&self) -> Result<(), InvalidField> {
        check_label("software", &self.software, NAME_MAX)?;
        check_label("name", &self.name, NAME_MAX)
    }
}

/// Reads only the version from the start of a hello payload. Works on
/// hellos of any version, including ones whose other fields we cannot
/// decode.
pub fn peek_version(payload: &[u8]) -> Result<ProtocolVersion, postcard::Error> {
    postcard::take_from_bytes::<ProtocolVersion>(payload).map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, FrameDecoder};

    fn hello() -> Hello {
        Hello {
            version: ProtocolVersion::CURRENT,
            role: Role::Viewer,
            software: "lifebuoy 0.1.0".into(),
            name: "Anna Schmidt".into(),
            capabilities: Capabilities(Capabilities::SCREEN | Capabilities::FILES),
            verification: [3; 32],
        }
    }

    #[test]
    fn version_can_be_read_from_a_future_hello() {
        // A version 7 hello whose remaining fields are unknown to us.
        #[derive(Serialize)]
        struct FutureHello {
            version: ProtocolVersion,
            something_new: (u8, String, [u64; 3]),
        }
        let future = FutureHello {
            version: ProtocolVersion { major: 7, minor: 3 },
            something_new: (9, "unknown layout".into(), [1, 2, 3]),
        };
        let payload = postcard::to_allocvec(&future).unwrap();
        assert!(decode::<Hello>(&payload).is_err());
        assert_eq!(peek_version(&payload).unwrap(), ProtocolVersion { major: 7, minor: 3 });
    }

    #[test]
    fn hello_round_trips_through_a_frame() {
        let mut wire = Vec::new();
        encode(&hello(), &mut wire).unwrap();
        let mut d = FrameDecoder::new(StreamKind::Control.max_frame());
        d.push(&wire).unwrap();
        let payload = d.next_frame().unwrap().unwrap();
        assert_eq!(decode::<Hello>(payload).unwrap(), hello());
    }

    #[test]
    fn hello_with_control_characters_in_name_is_refused() {
        let mut h = hello();
        h.name = "Anna\u{1b}[31m".into();
        assert!(encode(&h, &mut Vec::new()).is_err());
        let payload = postcard::to_allocvec(&h).unwrap();
        assert!(decode::<Hello>(&payload).is_err());
    }
}
