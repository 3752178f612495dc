//! rustls and quinn crypto configuration: TLS 1.3 only, pinned verifiers on
//! both sides, no resumption, no 0-RTT, an ALPN of our own.
//!
//! Every connection gets its own configuration, because the pin differs per
//! peer and the verifier records what it saw for error messages.

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::Resumption;
use rustls::server::NoServerSessionStorage;

use super::identity::Identity;
use super::pin::{ClientPolicy, PeerClientVerifier, PinnedServerVerifier};
use super::transport::{rendezvous_transport_config, transport_config};

fn transport_for(alpn: &[u8]) -> quinn::TransportConfig {
    if alpn == ALPN_RENDEZVOUS {
        rendezvous_transport_config()
    } else {
        transport_config()
    }
}

/// ALPN of a connection between agent and viewer.
pub const ALPN_PEER: &[u8] = b"lifebuoy-peer";
/// ALPN of a connection to the rendezvous.
pub const ALPN_RENDEZVOUS: &[u8] = b"lifebuoy-rendezvous";
/// The name a client asks for. Certificates are pinned, not named, so it
/// only has to be a valid DNS name.
pub const SERVER_NAME: &str = "lifebuoy";

/// Building a TLS configuration failed (a bad key, or a provider without
/// the needed cipher suite); a programming or key-file error, not a network one.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// rustls refused the settings or the key.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the rustls configuration.
    #[error("QUIC crypto setup: {0}")]
    Quic(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration presenting `identity` and trusting only `pin`.
pub fn client_config(
    identity: &Identity,
    pin: lifebuoy_proto::Fingerprint,
    alpn: &[u8],
) -> Result<(quinn::ClientConfig, Arc<PinnedServerVerifier>), TlsConfigError> {
    let verifier = PinnedServerVerifier::new(pin);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(vec![identity.certificate().clone()], identity.private_key())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    // No tickets: an agent's session must not be resumable after it exits.
    tls.resumption = Resumption::disabled();
    tls.enable_early_data = false;
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TlsConfigError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_for(alpn)));
    Ok((config, verifier))
}

/// A server configuration presenting `identity` and applying `policy` to
/// client certificates.
pub fn server_config(
    identity: &Identity,
    policy: ClientPolicy,
    alpn: &[u8],
) -> Result<(quinn::ServerConfig, Arc<PeerClientVerifier>), TlsConfigError> {
    let verifier = PeerClientVerifier::new(policy);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(vec![identity.certificate().clone()], identity.private_key())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.send_tls13_tickets = 0;
    tls.session_storage = Arc::new(NoServerSessionStorage {});
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TlsConfigError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_for(alpn)));
    Ok((config, verifier))
}
