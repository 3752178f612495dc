// Shared by the message targets: decode must not panic, and whatever decodes
// re-encodes to a frame that decodes to the same message.

use lifebuoy_proto::{decode, encode, FrameDecoder, Message};

pub fn check<M: Message + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(msg) = decode::<M>(data) else { return };
    let mut wire = Vec::new();
    encode(&msg, &mut wire).expect("a message that passed its checks must encode");
    let mut decoder = FrameDecoder::new(M::KIND.max_frame());
    decoder.push(&wire).expect("own frame");
    let payload = decoder.next_frame().expect("own frame").expect("complete frame");
    assert_eq!(decode::<M>(payload).expect("own message decodes"), msg);
}
