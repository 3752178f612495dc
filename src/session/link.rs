//! A live peer connection after the hellos: opening and accepting typed
//! streams, round-trip time, closing.

use std::time::Duration;

use lifebuoy_proto::close::{CloseCode, STREAM_PROTOCOL_ERROR, STREAM_UNKNOWN_KIND};
use lifebuoy_proto::file::File;
use lifebuoy_proto::input::Input;
use lifebuoy_proto::screen::Screen;
use lifebuoy_proto::{Message, Role, StreamKind};

use super::error::SessionError;
use super::framed::{FramedRecv, FramedSend};

/// Longest wait for the tag byte of a new stream.
pub const TAG_TIMEOUT: Duration = Duration::from_secs(2);

/// Send priority of a stream kind: input before control before screen
/// before files, so a keystroke never waits behind a file.
pub fn priority(kind: StreamKind) -> i32 {
    match kind {
        StreamKind::Input => 3,
        StreamKind::Control | StreamKind::Rendezvous => 2,
        StreamKind::Screen => 1,
        StreamKind::File => 0,
    }
}

/// Whether `sender` may open unidirectional streams of `kind` on a peer connection.
pub fn may_open(sender: Role, kind: StreamKind) -> bool {
    matches!(
        (sender, kind),
        (Role::Agent, StreamKind::Screen) | (Role::Viewer, StreamKind::Input) | (_, StreamKind::File)
    ) && sender != Role::Rendezvous
}

/// A stream the peer opened.
#[derive(Debug)]
pub enum IncomingStream {
    /// A screen update (viewer side).
    Screen(FramedRecv<Screen>),
    /// The input stream (agent side).
    Input(FramedRecv<Input>),
    /// A file.
    File(FramedRecv<File>),
}

/// Handle to the connection; cheap to clone into tasks.
#[derive(Clone, Debug)]
pub struct Link {
    conn: quinn::Connection,
    role: Role,
}

impl Link {
    pub(super) fn new(conn: quinn::Connection, role: Role) -> Link {
        Link { conn, role }
    }

    /// Opens a unidirectional stream for messages of type `M`.
    pub async fn open<M: Message>(&self) -> Result<FramedSend<M>, SessionError> {
        if M::KIND.is_bidi() || !may_open(self.role, M::KIND) {
            return Err(SessionError::UnexpectedStream);
        }
        let mut stream = self.conn.open_uni().await.map_err(SessionError::from_connection)?;
        let _ = stream.set_priority(priority(M::KIND));
        stream.write_all(&[M::KIND.tag()]).await.map_err(SessionError::from_write)?;
        Ok(FramedSend::new(stream))
    }

    /// The next stream the peer opens. Streams of an unknown kind (a newer
    /// peer) are stopped and skipped; a kind the peer's role may not open
    /// is a protocol error.
    pub async fn accept(&self) -> Result<IncomingStream, SessionError> {
        loop {
            let mut stream = self.conn.accept_uni().await.map_err(SessionError::from_connection)?;
            let mut tag = [0u8; 1];
            // A stream that never sends its tag must not hold up the others.
            match tokio::time::timeout(TAG_TIMEOUT, stream.read_exact(&mut tag)).await {
                Ok(Ok(())) => {}
                // Reset before its first byte, or silent: nothing to do with it.
                _ => {
                    let _ = stream.stop(quinn::VarInt::from_u32(STREAM_PROTOCOL_ERROR));
                    continue;
                }
            }
            let Some(kind) = StreamKind::from_tag(tag[0]) else {
                let _ = stream.stop(quinn::VarInt::from_u32(STREAM_UNKNOWN_KIND));
                continue;
            };
            let peer_role = match self.role {
                Role::Agent => Role::Viewer,
                _ => Role::Agent,
            };
            if !may_open(peer_role, kind) || kind.is_bidi() {
                let _ = stream.stop(quinn::VarInt::from_u32(STREAM_PROTOCOL_ERROR));
                return Err(SessionError::UnexpectedStream);
            }
            return Ok(match kind {
                StreamKind::Screen => IncomingStream::Screen(FramedRecv::new(stream)),
                StreamKind::Input => IncomingStream::Input(FramedRecv::new(stream)),
                _ => IncomingStream::File(FramedRecv::new(stream)),
            });
        }
    }

    /// Smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// The peer's address as this side sees it (an IPv4 address as IPv4,
    /// also on a socket for both families).
    pub fn remote_address(&self) -> std::net::SocketAddr {
        crate::net::socket::canonical(self.conn.remote_address())
    }

    /// Closes the connection at once; unsent data is dropped.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.conn.close(quinn::VarInt::from_u32(code.to_u32()), reason.as_bytes());
    }

    /// Resolves when the connection is closed, with why.
    pub async fn closed(&self) -> SessionError {
        SessionError::from_connection(self.conn.closed().await)
    }

    /// The underlying quinn connection, for statistics.
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }
}
