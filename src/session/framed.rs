//! Typed message streams over quinn: frames in, messages out.
//!
//! Thin on purpose: the framing and every check are in `lifebuoy-proto`;
//! this only moves bytes between quinn and the frame decoder.

use std::marker::PhantomData;

use lifebuoy_proto::{decode, encode, FrameDecoder, Message, ProtoError};

use super::error::SessionError;

/// Largest read from quinn at once.
const READ_CHUNK: usize = 256 * 1024;

/// Sends messages of type `M` on one QUIC stream.
#[derive(Debug)]
pub struct FramedSend<M> {
    stream: quinn::SendStream,
    buf: Vec<u8>,
    _m: PhantomData<fn(M)>,
}

impl<M: Message> FramedSend<M> {
    /// Wraps a stream whose tag (if any) has already been written.
    pub fn new(stream: quinn::SendStream) -> Self {
        FramedSend { stream, buf: Vec::new(), _m: PhantomData }
    }

    /// Sends one message. It is on its way when this returns; quinn's flow
    /// control is what makes this wait.
    pub async fn send(&mut self, msg: &M) -> Result<(), SessionError> {
        self.buf.clear();
        encode(msg, &mut self.buf)?;
        self.stream.write_all(&self.buf).await.map_err(SessionError::from_write)
    }

    /// Writes bytes as they are: the stream tag, or frames encoded elsewhere.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.stream.write_all(bytes).await.map_err(SessionError::from_write)
    }

    /// Appends a message to a batch sent by [`FramedSend::flush`], so many
    /// small messages share packets.
    pub fn queue(&mut self, msg: &M) -> Result<(), SessionError> {
        encode(msg, &mut self.buf).map_err(SessionError::from)
    }

    /// Sends what [`FramedSend::queue`] collected.
    pub async fn flush(&mut self) -> Result<(), SessionError> {
        let result = self.stream.write_all(&self.buf).await.map_err(SessionError::from_write);
        self.buf.clear();
        result
    }

    /// Ends the stream after everything sent so far.
    pub fn finish(&mut self) -> Result<(), SessionError> {
        // Only fails if the stream was already finished or reset.
        self.stream.finish().map_err(|_| SessionError::StreamClosed)
    }

    /// Abandons the stream: unsent data is dropped and the peer sees `code`.
    pub fn reset(&mut self, code: u32) {
        let _ = self.stream.reset(quinn::VarInt::from_u32(code));
    }

    /// Waits until the peer has everything (after [`FramedSend::finish`]) or stopped the stream.
    pub async fn stopped(&mut self) -> Result<(), SessionError> {
        self.stream.stopped().await.map(|_| ()).map_err(|_| SessionError::StreamClosed)
    }

    /// Like [`FramedSend::stopped`]; the peer's stop code if it stopped the
    /// stream, `None` if it took everything.
    pub async fn stopped_code(&mut self) -> Result<Option<u32>, SessionError> {
        self.stream
            .stopped()
            .await
            .map(|code| code.map(|c| c.into_inner() as u32))
            .map_err(|_| SessionError::StreamClosed)
    }

    /// Sets the stream's send priority (higher goes first).
    pub fn set_priority(&self, priority: i32) {
        let _ = self.stream.set_priority(priority);
    }

    /// The same stream carrying another message type of the same kind.
    pub fn retype<N: Message>(self) -> FramedSend<N> {
        FramedSend { stream: self.stream, buf: self.buf, _m: PhantomData }
    }
}

/// Receives messages of type `M` from one QUIC stream.
#[derive(Debug)]
pub struct FramedRecv<M> {
    stream: quinn::RecvStream,
    decoder: FrameDecoder,
    _m: PhantomData<fn() -> M>,
}

impl<M: Message> FramedRecv<M> {
    /// Wraps a stream whose tag (if any) has already been read.
    pub fn new(stream: quinn::RecvStream) -> Self {
        FramedRecv { stream, decoder: FrameDecoder::new(M::KIND.max_frame()), _m: PhantomData }
    }

    /// The next message, `None` at a clean end of the stream.
    pub async fn recv(&mut self) -> Result<Option<M>, SessionError> {
        self.recv_with(decode::<M>).await?.transpose().map_err(SessionError::from)
    }

    /// The next frame payload handed to `f`, for the hello, whose version is
    /// read before the rest.
    pub async fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, SessionError> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(payload)) => return Ok(Some(f(payload))),
                Ok(None) => {}
                Err(source) => return Err(ProtoError::Frame { kind: M::KIND, source }.into()),
            }
            let want = self.decoder.wants().clamp(64 * 1024, READ_CHUNK);
            match self.stream.read_chunk(want, true).await.map_err(SessionError::from_read)? {
                Some(chunk) => self
                    .decoder
                    .push(&chunk.bytes)
                    .map_err(|source| ProtoError::Frame { kind: M::KIND, source })?,
                None => {
                    self.decoder.finish().map_err(|source| ProtoError::Frame { kind: M::KIND, source })?;
                    return Ok(None);
                }
            }
        }
    }

    /// Tells the peer to stop sending on this stream.
    pub fn stop(&mut self, code: u32) {
        let _ = self.stream.stop(quinn::VarInt::from_u32(code));
    }

    /// The same stream carrying another message type (after the hello); the
    /// bytes already buffered stay, the new type's frame limit applies.
    pub fn retype<N: Message>(self) -> FramedRecv<N> {
        let mut decoder = self.decoder;
        decoder.set_max(N::KIND.max_frame());
        FramedRecv { stream: self.stream, decoder, _m: PhantomData }
    }
}
