//! The TCP tunnel (relay port 5511): UDP datagrams carried over one TCP
//! connection, for networks that block UDP.
//!
//! The client opens with [`MAGIC`], then both directions are a sequence of
//! frames:
//!
//! ```text
//! length (u16, big endian, 1..=MAX_DATAGRAM) | channel (u8) | datagram (length - 1 bytes)
//! ```
//!
//! `length` counts the channel byte and the datagram. Channel 0 carries the
//! client's QUIC connection to the rendezvous, channel 1 its datagrams to
//! and from the relay (binding, then the peer's QUIC packets). QUIC and its
//! pinned TLS run inside, end to end, exactly as over UDP.

/// What a tunnel client sends first.
pub const MAGIC: [u8; 4] = *b"LBT1";
/// Largest datagram carried (QUIC never sends more than this in one UDP datagram here).
pub const MAX_DATAGRAM: usize = 1500;

/// A tunnel channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// To and from the rendezvous.
    Rendezvous,
    /// To and from the relay.
    Relay,
}

impl Channel {
    fn byte(self) -> u8 {
        match self {
            Channel::Rendezvous => 0,
            Channel::Relay => 1,
        }
    }
}

/// A broken tunnel stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// The client did not open with the magic.
    #[error("not a lifebuoy tunnel")]
    BadMagic,
    /// A frame longer than allowed, empty, or on an unknown channel.
    #[error("malformed tunnel frame")]
    BadFrame,
}

/// Appends one frame to `out`. Datagrams above [`MAX_DATAGRAM`] are refused.
pub fn encode(channel: Channel, datagram: &[u8], out: &mut Vec<u8>) -> Result<(), TunnelError> {
    if datagram.is_empty() || datagram.len() > MAX_DATAGRAM {
        return Err(TunnelError::BadFrame);
    }
    let len = (datagram.len() + 1) as u16;
    out.extend_from_slice(&len.to_be_bytes());
    out.push(channel.byte());
    out.extend_from_slice(datagram);
    Ok(())
}

/// Splits a tunnel byte stream into datagrams.
#[derive(Debug, Default)]
pub struct TunnelDecoder {
    buf: Vec<u8>,
    start: usize,
    expect_magic: bool,
    failed: Option<TunnelError>,
}

impl TunnelDecoder {
    /// A decoder for the client-to-server direction (magic first).
    pub fn server_side() -> Self {
        TunnelDecoder { expect_magic: true, ..Default::default() }
    }

    /// A decoder for the server-to-client direction.
    pub fn client_side() -> Self {
        TunnelDecoder::default()
    }

    /// Adds bytes read from the TCP stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete datagram, if one has arrived.
    pub fn next_datagram(&mut self) -> Result<Option<(Channel, &[u8])>, TunnelError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let rest = &self.buf[self.start..];
        if self.expect_magic {
            if rest.len() < MAGIC.len() {
                return Ok(None);
            }
            if rest[..4] != MAGIC {
                self.failed = Some(TunnelError::BadMagic);
                return Err(TunnelError::BadMagic);
            }
            self.expect_magic = false;
            self.start += 4;
            return self.next_datagram();
        }
        if rest.len() < 3 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let channel = match rest[2] {
            0 => Channel::Rendezvous,
            1 => Channel::Relay,
            _ => {
                self.failed = Some(TunnelError::BadFrame);
                return Err(TunnelError::BadFrame);
            }
        };
        if !(2..=MAX_DATAGRAM + 1).contains(&len) {
            self.failed = Some(TunnelError::BadFrame);
            return Err(TunnelError::BadFrame);
        }
        if rest.len() < 2 + len {
            return Ok(None);
        }
        let from = self.start + 3;
        self.start += 2 + len;
        Ok(Some((channel, &self.buf[from..self.start])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let mut wire = MAGIC.to_vec();
        encode(Channel::Rendezvous, &[1; 1200], &mut wire).unwrap();
        encode(Channel::Relay, &[2; 1], &mut wire).unwrap();
        let mut d = TunnelDecoder::server_side();
        let mut got = Vec::new();
        for piece in wire.chunks(5) {
            d.push(piece);
            while let Some((c, dgram)) = d.next_datagram().unwrap() {
                got.push((c, dgram.to_vec()));
            }
        }
        assert_eq!(got, vec![(Channel::Rendezvous, vec![1; 1200]), (Channel::Relay, vec![2])]);
    }

    #[test]
    fn hostile_streams_are_refused() {
        let mut d = TunnelDecoder::server_side();
        d.push(b"GET / HTTP/1.1\r\n");
        assert_eq!(d.next_datagram(), Err(TunnelError::BadMagic));
        let mut d = TunnelDecoder::client_side();
        d.push(&[0xff, 0xff, 0]);
        assert_eq!(d.next_datagram(), Err(TunnelError::BadFrame));
        let mut d = TunnelDecoder::client_side();
        d.push(&[0, 5, 9, 0, 0, 0, 0]);
        assert_eq!(d.next_datagram(), Err(TunnelError::BadFrame), "unknown channel");
        assert!(encode(Channel::Relay, &[0; MAX_DATAGRAM + 1], &mut Vec::new()).is_err());
    }
}
