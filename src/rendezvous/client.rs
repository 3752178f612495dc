//! The agent's and viewer's connection to the rendezvous: pinned to the
//! company's server, one bidirectional stream, hellos, then signalling.

use std::net::SocketAddr;

use lifebuoy_proto::close::CloseCode;
use lifebuoy_proto::rendezvous::{FromRendezvous, ToRendezvous};
use lifebuoy_proto::{Fingerprint, Hello, Role, StreamKind};

use crate::net::tls::{client_config, ALPN_RENDEZVOUS, SERVER_NAME};
use crate::session::{
    explain, read_hello, FramedRecv, FramedSend, LocalSide, SessionError, HANDSHAKE_TIMEOUT,
};

/// A signed-in connection to the rendezvous.
#[derive(Debug)]
pub struct RendezvousClient {
    conn: quinn::Connection,
    tx: FramedSend<ToRendezvous>,
    rx: FramedRecv<FromRendezvous>,
    server: Hello,
}

impl RendezvousClient {
    /// Connects from `endpoint` (the same one later used for the peer, so
    /// the rendezvous observes the NAT mapping the peer must reach) to the
    /// server at `addr`, which must hold the key `pin` names.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        local: &LocalSide,
        pin: Fingerprint,
    ) -> Result<RendezvousClient, SessionError> {
        let (config, verifier) = client_config(&local.identity, pin, ALPN_RENDEZVOUS)?;
        let setup = async {
            let conn = endpoint
                .connect_with(config, addr, SERVER_NAME)?
                .await
                .map_err(SessionError::from_connection)?;
            let (send, recv) = conn.open_bi().await.map_err(SessionError::from_connection)?;
            let mut tx = FramedSend::<Hello>::new(send);
            let mut first = vec![StreamKind::Rendezvous.tag()];
            lifebuoy_proto::encode(&local.hello([0; 32]), &mut first)?;
            tx.write_raw(&first).await?;
            let mut rx = FramedRecv::<Hello>::new(recv);
            let server = match read_hello(&mut rx).await {
                Ok(h) => h,
                Err(e) => {
                    conn.close(CloseCode::ProtocolError.to_u32().into(), e.to_string().as_bytes());
                    return Err(e);
                }
            };
            if server.role != Role::Rendezvous {
                let e = SessionError::RoleMismatch { ours: local.role, theirs: server.role };
                conn.close(CloseCode::RoleMismatch.to_u32().into(), e.to_string().as_bytes());
                return Err(e);
            }
            Ok(RendezvousClient { conn, tx: tx.retype(), rx: rx.retype(), server })
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, setup).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(explain(verifier.observed(), Some(pin), e)),
            Err(_) => Err(SessionError::Timeout {
                stage: "connecting to the company server",
                seconds: HANDSHAKE_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: &ToRendezvous) -> Result<(), SessionError> {
        self.tx.send(msg).await
    }

    /// The next message; `None` when the server ended the stream.
    pub async fn recv(&mut self) -> Result<Option<FromRendezvous>, SessionError> {
        self.rx.recv().await
    }

    /// The server's hello.
    pub fn server_hello(&self) -> &Hello {
        &self.server
    }

    /// Round-trip time to the server.
    pub fn rtt(&self) -> std::time::Duration {
        self.conn.rtt()
    }

    /// Signs out.
    pub fn close(&self) {
        self.conn.close(CloseCode::Ended.to_u32().into(), b"signed out");
    }

    /// Splits into the two halves, to send and receive from different tasks.
    pub fn split(self) -> (FramedSend<ToRendezvous>, FramedRecv<FromRendezvous>, quinn::Connection) {
        (self.tx, self.rx, self.conn)
    }
}
