//! Length-prefixed framing with a hard maximum.
//!
//! A frame is a length `n` as an unsigned LEB128 varint (1 to 4 bytes, the
//! shortest form), then `n` payload bytes. The maximum is chosen per stream
//! kind; a header announcing more is refused as soon as the header is read,
//! before a byte of the payload is buffered, so a peer cannot make us
//! allocate by announcing a large frame.

/// The largest length any header may carry: four varint bytes.
pub const LENGTH_LIMIT: usize = (1 << 28) - 1;

/// What can be wrong with a stream of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces more than this stream kind allows.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes for this stream")]
    TooLarge {
        /// Announced length (saturated at [`LENGTH_LIMIT`] + 1 when the header
        /// itself runs too long).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes arrived")]
    Truncated {
        /// Bytes of the unfinished frame that arrived, header included.
        have: usize,
        /// Bytes that frame needed, header included (0 if the header itself was cut).
        need: usize,
    },
    /// A zero length, or a length not in its shortest varint form.
    #[error("malformed frame length")]
    BadLength,
}

/// Appends the varint header for `len` to `out`.
fn put_len(len: usize, out: &mut Vec<u8>) {
    crate::varint::put(out, len as u64);
}

/// Appends one frame holding `payload` to `out`.
pub fn encode_frame(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.is_empty() {
        return Err(FrameError::BadLength);
    }
    if payload.len() > max.min(LENGTH_LIMIT) {
        return Err(FrameError::TooLarge { len: payload.len(), max });
    }
    put_len(payload.len(), out);
    out.extend_from_slice(payload);
    Ok(())
}

/// Reads a header from the start of `buf`: `Ok(None)` if more bytes are needed,
/// else the payload length and the header's size.
fn get_len(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, FrameError> {
    let mut len = 0usize;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        len |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(FrameError::BadLength);
            }
            if len == 0 {
                return Err(FrameError::BadLength);
            }
            if len > max {
                return Err(FrameError::TooLarge { len, max });
            }
            return Ok(Some((len, i + 1)));
        }
    }
    if buf.len() >= 4 {
        // A fifth header byte would be needed: more than any limit allows.
        return Err(FrameError::TooLarge { len: LENGTH_LIMIT + 1, max });
    }
    Ok(None)
}

/// Turns a byte stream, fed in pieces of any size, into frame payloads.
///
/// After an error the decoder is poisoned: every later call returns the same
/// error, because the stream has lost its frame boundaries.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    buf: Vec<u8>,
    start: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max` payload bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder { max: max.min(LENGTH_LIMIT), buf: Vec::new(), start: 0, failed: None }
    }

    /// Changes the limit for the frames still to come (a stream whose first
    /// frame is a hello and the rest another kind of message).
    pub fn set_max(&mut self, max: usize) {
        self.max = max.min(LENGTH_LIMIT);
    }

    /// Adds bytes that arrived. Fails early if a header already shows an
    /// oversized frame, so the caller stops reading.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        if let Err(e) = get_len(&self.buf[self.start..], self.max) {
            self.failed = Some(e);
            return Err(e);
        }
        Ok(())
    }

    /// The next complete payload, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let rest = &self.buf[self.start..];
        let (len, header) = match get_len(rest, self.max) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = Some(e);
                return Err(e);
            }
        };
        if rest.len() < header + len {
            return Ok(None);
        }
        let from = self.start + header;
        self.start = from + len;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// How many more bytes the frame being read needs at least (1 while the
    /// header is incomplete); a hint for how much to read next.
    pub fn wants(&self) -> usize {
        let rest = &self.buf[self.start..];
        match get_len(rest, self.max) {
            Ok(Some((len, header))) => (header + len).saturating_sub(rest.len()).max(1),
            _ => 1,
        }
    }

    /// Call at the end of the stream: an error if a frame was cut off.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let rest = &self.buf[self.start..];
        if rest.is_empty() {
            return Ok(());
        }
        let need = match get_len(rest, self.max) {
            Ok(Some((len, header))) => header + len,
            _ => 0,
        };
        Err(FrameError::Truncated { have: rest.len(), need })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(decoder: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = decoder.next_frame().unwrap() {
            out.push(f.to_vec());
        }
        out
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let payloads: Vec<Vec<u8>> = vec![vec![1], vec![2; 127], vec![3; 128], vec![4; 300], vec![5; 20_000]];
        let mut wire = Vec::new();
        for p in &payloads {
            encode_frame(p, 1 << 20, &mut wire).unwrap();
        }
        let mut d = FrameDecoder::new(1 << 20);
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b)).unwrap();
            got.extend(frames(&mut d));
        }
        assert_eq!(got, payloads);
        d.finish().unwrap();
    }

    #[test]
    fn header_sizes_match_leb128() {
        for (len, header) in [(1, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3), (2_097_152, 4)] {
            let mut out = Vec::new();
            encode_frame(&vec![0; len], LENGTH_LIMIT, &mut out).unwrap();
            assert_eq!(out.len() - len, header, "len {len}");
        }
    }

    #[test]
    fn oversized_header_is_refused_before_payload_arrives() {
        let mut wire = Vec::new();
        put_len(1001, &mut wire);
        let mut d = FrameDecoder::new(1000);
        assert_eq!(d.push(&wire), Err(FrameError::TooLarge { len: 1001, max: 1000 }));
        // Poisoned: the stream cannot be resynchronised.
        assert!(d.push(&[1]).is_err());
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn encoder_refuses_oversized_payload() {
        let mut out = Vec::new();
        assert_eq!(encode_frame(&[0; 11], 10, &mut out), Err(FrameError::TooLarge { len: 11, max: 10 }));
        assert!(out.is_empty());
    }

    #[test]
    fn endless_header_is_refused() {
        let mut d = FrameDecoder::new(LENGTH_LIMIT);
        assert!(matches!(d.push(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn truncated_frames_are_reported_at_end_of_stream() {
        let mut wire = Vec::new();
        encode_frame(&[9; 200], 1000, &mut wire).unwrap();
        let mut d = FrameDecoder::new(1000);
        d.push(&wire[..150]).unwrap();
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.wants(), 52);
        assert_eq!(d.finish(), Err(FrameError::Truncated { have: 150, need: 202 }));

        let mut d = FrameDecoder::new(1000);
        d.push(&wire[..1]).unwrap();
        assert_eq!(d.finish(), Err(FrameError::Truncated { have: 1, need: 0 }));
    }

    #[test]
    fn zero_and_overlong_lengths_are_malformed() {
        let mut d = FrameDecoder::new(1000);
        assert_eq!(d.push(&[0]), Err(FrameError::BadLength));
        let mut d = FrameDecoder::new(1000);
        // 5 written in two bytes instead of one.
        assert_eq!(d.push(&[0x85, 0x00]), Err(FrameError::BadLength));
        assert_eq!(encode_frame(&[], 10, &mut Vec::new()), Err(FrameError::BadLength));
    }

    #[test]
    fn buffer_is_compacted_as_frames_are_taken() {
        let mut d = FrameDecoder::new(100);
        let mut one = Vec::new();
        encode_frame(&[1; 100], 100, &mut one).unwrap();
        for _ in 0..10_000 {
            d.push(&one).unwrap();
            assert_eq!(d.next_frame().unwrap().map(|f| f.len()), Some(100));
        }
        assert!(d.buf.capacity() < 1000, "buffer grew to {}", d.buf.capacity());
    }
}
