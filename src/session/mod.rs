//! The session both roles use: a pinned QUIC connection, the hello
//! exchange, the verification code, and typed streams.
//!
//! A [`Session`] value exists only after the other side's first message
//! arrived and checked out. Until then nothing is trusted: TLS 1.3 lets a
//! client finish its handshake before the server has judged the client's
//! certificate, so the client waits for the server's hello, which the
//! server sends only after accepting it.
//!
//! The QUIC client speaks first: it opens the control stream and sends its
//! hello with a commitment to its verification nonce; the server answers
//! with its hello and nonce; the client reveals its nonce. See
//! `proto/PROTOCOL.md` §3.

pub mod error;
pub mod framed;
pub mod link;
pub mod nonce;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lifebuoy_proto::close::CloseCode;
use lifebuoy_proto::control::{Control, EndReason};
use lifebuoy_proto::hello::{peek_version, Capabilities};
use lifebuoy_proto::verification::{check_reveal, commitment, NONCE_LEN};
use lifebuoy_proto::{decode, Fingerprint, Hello, ProtocolVersion, Role, StreamKind, VerificationCode};

pub use error::SessionError;
pub use framed::{FramedRecv, FramedSend};
pub use link::{IncomingStream, Link};
pub use nonce::NonceGate;

use crate::net::identity::Identity;
use crate::net::pin::{ClientPolicy, Observed};
use crate::net::tls::{client_config, server_config, ALPN_PEER, SERVER_NAME};

/// Longest wait for the peer to acknowledge the end of a session.
pub const END_GRACE: Duration = Duration::from_millis(500);

/// The whole setup (QUIC handshake and hellos) must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who this side is.
#[derive(Clone, Debug)]
pub struct LocalSide {
    /// Key and certificate.
    pub identity: Arc<Identity>,
    /// Agent or viewer.
    pub role: Role,
    /// Technician name, or the customer's label.
    pub name: String,
    /// What this side supports.
    pub capabilities: Capabilities,
}

impl LocalSide {
    pub(crate) fn hello(&self, verification: [u8; NONCE_LEN]) -> Hello {
        Hello {
            version: ProtocolVersion::CURRENT,
            role: self.role,
            software: concat!("lifebuoy ", env!("CARGO_PKG_VERSION")).to_owned(),
            name: self.name.clone(),
            capabilities: self.capabilities,
            verification,
        }
    }

    fn peer_role(&self) -> Role {
        match self.role {
            Role::Agent => Role::Viewer,
            _ => Role::Agent,
        }
    }
}

/// What is known of the other side once the session stands.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its certificate fingerprint (equal to the pin).
    pub fingerprint: Fingerprint,
    /// Its hello.
    pub hello: Hello,
    /// The code both people compare.
    pub code: VerificationCode,
}

/// Both halves of the control stream.
#[derive(Debug)]
pub struct ControlChannel {
    /// Sending half.
    pub tx: FramedSend<Control>,
    /// Receiving half.
    pub rx: FramedRecv<Control>,
}

/// A trusted session with a pinned peer.
#[derive(Debug)]
pub struct Session {
    /// The other side.
    pub peer: PeerInfo,
    /// The control stream.
    pub control: ControlChannel,
    /// The connection, for streams.
    pub link: Link,
}

fn nonce() -> [u8; NONCE_LEN] {
    rand::random()
}

async fn within<T>(
    stage: &'static str,
    fut: impl std::future::Future<Output = Result<T, SessionError>>,
) -> Result<T, SessionError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| SessionError::Timeout { stage, seconds: HANDSHAKE_TIMEOUT.as_secs() })?
}

/// Explains a failed TLS handshake by what our verifier saw.
pub(crate) fn explain(observed: Observed, expected: Option<Fingerprint>, err: SessionError) -> SessionError {
    let refused = matches!(err, SessionError::Refused { .. });
    match observed {
        Observed { presented: Some(presented), pin_ok: false, .. } => match expected {
            Some(expected) => SessionError::WrongPeer { expected, presented },
            None => err,
        },
        Observed { presented: Some(presented), signature_ok: Some(false), .. } => {
            SessionError::ForgedCertificate { presented }
        }
        Observed { presented: None, .. } if refused && expected.is_some() => SessionError::NoPeerCertificate,
        _ => err,
    }
}

/// Closes the connection with the code that fits `err`, then returns it.
fn fail(conn: &quinn::Connection, err: SessionError) -> SessionError {
    let code = match &err {
        SessionError::Version(_) => CloseCode::VersionMismatch,
        SessionError::RoleMismatch { .. } => CloseCode::RoleMismatch,
        SessionError::NonceRefused(_) => CloseCode::Busy,
        SessionError::Timeout { .. } | SessionError::StreamClosed => CloseCode::Ended,
        _ => CloseCode::ProtocolError,
    };
    conn.close(quinn::VarInt::from_u32(code.to_u32()), err.to_string().as_bytes());
    err
}

fn check_role(local: &LocalSide, hello: &Hello) -> Result<(), SessionError> {
    if hello.role == local.peer_role() && local.role != Role::Rendezvous {
        Ok(())
    } else {
        Err(SessionError::RoleMismatch { ours: local.role, theirs: hello.role })
    }
}

/// Reads the peer's hello: version first, so a hello of another major
/// version is reported as such rather than as garbage.
pub(crate) async fn read_hello(rx: &mut FramedRecv<Hello>) -> Result<Hello, SessionError> {
    let parsed = rx
        .recv_with(|payload| (peek_version(payload), decode::<Hello>(payload)))
        .await?
        .ok_or(SessionError::StreamClosed)?;
    match parsed {
        (Ok(v), _) if ProtocolVersion::CURRENT.check_peer(v).is_err() => {
            Err(ProtocolVersion::CURRENT.check_peer(v).unwrap_err().into())
        }
        (_, Ok(hello)) => Ok(hello),
        (_, Err(e)) => Err(e.into()),
    }
}

impl Session {
    /// Connects to the peer at `addr`, which must hold the key `pin` names.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        local: &LocalSide,
        pin: Fingerprint,
    ) -> Result<Session, SessionError> {
        let (config, verifier) = client_config(&local.identity, pin, ALPN_PEER)?;
        let connecting = endpoint.connect_with(config, addr, SERVER_NAME)?;
        let conn = within("the encrypted handshake", async {
            connecting.await.map_err(SessionError::from_connection)
        })
        .await
        .map_err(|e| explain(verifier.observed(), Some(pin), e))?;
        match within("the hello exchange", Self::client_hellos(&conn, local, pin)).await {
            Ok((peer_hello, control, code)) => Ok(Session {
                peer: PeerInfo { fingerprint: pin, hello: peer_hello, code },
                control,
                link: Link::new(conn, local.role),
            }),
            Err(e) => Err(fail(&conn, e)),
        }
    }

    async fn client_hellos(
        conn: &quinn::Connection,
        local: &LocalSide,
        pin: Fingerprint,
    ) -> Result<(Hello, ControlChannel, VerificationCode), SessionError> {
        let my_nonce = nonce();
        let (send, recv) = conn.open_bi().await.map_err(SessionError::from_connection)?;
        let mut tx = FramedSend::<Hello>::new(send);
        tx.set_priority(link::priority(StreamKind::Control));
        // Tag and hello in one write: one packet.
        let mut first = vec![StreamKind::Control.tag()];
        lifebuoy_proto::encode(&local.hello(commitment(&my_nonce)), &mut first)?;
        tx.write_raw(&first).await?;
        let mut rx = FramedRecv::<Hello>::new(recv);
        let hello = read_hello(&mut rx).await?;
        check_role(local, &hello)?;
        let mut tx = tx.retype::<Control>();
        tx.send(&Control::Reveal { nonce: my_nonce }).await?;
        // The verifier let the handshake finish only for the pinned key.
        let code =
            VerificationCode::derive(&local.identity.fingerprint(), &pin, &my_nonce, &hello.verification);
        Ok((hello, ControlChannel { tx, rx: rx.retype() }, code))
    }

    /// Accepts an incoming connection from the holder of the key `pin`
    /// names, as one of the connections that may become the session of a
    /// request whose nonces `nonces` holds.
    pub async fn accept(
        incoming: quinn::Incoming,
        local: &LocalSide,
        pin: Fingerprint,
        nonces: &NonceGate,
    ) -> Result<Session, SessionError> {
        let (config, verifier) = server_config(&local.identity, ClientPolicy::Pinned(pin), ALPN_PEER)?;
        let connecting = incoming.accept_with(Arc::new(config)).map_err(SessionError::from_connection)?;
        let conn = within("the encrypted handshake", async {
            connecting.await.map_err(SessionError::from_connection)
        })
        .await
        .map_err(|e| explain(verifier.observed(), Some(pin), e))?;
        match within("the hello exchange", Self::server_hellos(&conn, local, pin, nonces)).await {
            Ok((peer_hello, control, code)) => Ok(Session {
                peer: PeerInfo { fingerprint: pin, hello: peer_hello, code },
                control,
                link: Link::new(conn, local.role),
            }),
            Err(e) => Err(fail(&conn, e)),
        }
    }

    async fn server_hellos(
        conn: &quinn::Connection,
        local: &LocalSide,
        pin: Fingerprint,
        nonces: &NonceGate,
    ) -> Result<(Hello, ControlChannel, VerificationCode), SessionError> {
        let (send, mut recv) = conn.accept_bi().await.map_err(SessionError::from_connection)?;
        let mut tag = [0u8; 1];
        recv.read_exact(&mut tag).await.map_err(|_| SessionError::StreamClosed)?;
        if StreamKind::from_tag(tag[0]) != Some(StreamKind::Control) {
            return Err(SessionError::UnexpectedStream);
        }
        let mut rx = FramedRecv::<Hello>::new(recv);
        let mut tx = FramedSend::<Hello>::new(send);
        tx.set_priority(link::priority(StreamKind::Control));
        let my_nonce = nonce();
        let hello = match read_hello(&mut rx).await {
            Err(SessionError::Version(v)) => {
                // Tell the peer our version before closing, so it can say
                // which side must update (no nonce: there is no exchange).
                tx.send(&local.hello([0; NONCE_LEN])).await?;
                tx.finish()?;
                let _ = tokio::time::timeout(Duration::from_secs(1), tx.stopped()).await;
                return Err(v.into());
            }
            other => other?,
        };
        check_role(local, &hello)?;
        // Our nonce goes to one exchange at a time, and to a few in all.
        let ticket = nonces.take()?;
        tx.send(&local.hello(my_nonce)).await?;
        let mut rx = rx.retype::<Control>();
        match rx.recv().await? {
            Some(Control::Reveal { nonce }) => {
                check_reveal(&hello.verification, &nonce).map_err(|_| SessionError::Commitment)?;
                ticket.keep();
                let code = VerificationCode::derive(&local.identity.fingerprint(), &pin, &nonce, &my_nonce);
                Ok((hello, ControlChannel { tx: tx.retype(), rx }, code))
            }
            Some(_) => Err(SessionError::Commitment),
            None => Err(SessionError::StreamClosed),
        }
    }

    /// Ends the session: tells the peer why, then closes the connection.
    /// Call the endpoint's `wait_idle` before exiting so the close is sent.
    ///
    /// Waits up to [`END_GRACE`] for the peer to acknowledge the control
    /// stream, because closing a QUIC connection discards unsent data: a
    /// session ended right after it started would otherwise lose the reveal
    /// the peer still needs.
    pub async fn end(mut self, reason: EndReason) {
        let tx = &mut self.control.tx;
        let _ = tokio::time::timeout(END_GRACE, async {
            tx.send(&Control::End { reason }).await?;
            tx.finish()?;
            tx.stopped().await
        })
        .await;
        self.link.close(CloseCode::Ended, reason.name());
    }
}
