//! Certificate verifiers that trust exactly one pinned fingerprint.
//!
//! There is no certificate authority in lifebuoy: each side is told which
//! certificate the other must present (from the staff directory, from the
//! request, or shipped with the agent). A verifier here accepts a peer only
//! if the SHA-256 of its end-entity certificate equals the pin AND the
//! handshake signature verifies with that certificate's key, so a copy of a
//! public certificate is worthless without its private key.
//!
//! Each verifier records what it saw, so a failed handshake can be explained
//! to a person ("presented X, expected Y") instead of as a TLS alert number.

use std::sync::{Arc, Mutex};

use lifebuoy_proto::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerIncompatible, SignatureScheme,
};

/// Which client certificates a server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientPolicy {
    /// Exactly this one (peer connections).
    Pinned(Fingerprint),
    /// Any certificate whose key signs the handshake (the rendezvous: agents
    /// are anonymous and viewers are checked against the staff directory
    /// right after the handshake, by fingerprint).
    AnyProvenKey,
    /// Nobody: the endpoint's default, so a connection accepted without
    /// choosing a pin fails closed.
    Nobody,
}

/// What a verifier saw of the peer during one handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The fingerprint of the certificate the peer presented, if any.
    pub presented: Option<Fingerprint>,
    /// The certificate matched the pin (or the policy accepts any).
    pub pin_ok: bool,
    /// The handshake signature was checked: `Some(false)` if it failed.
    pub signature_ok: Option<bool>,
}

#[derive(Debug)]
struct Checker {
    algorithms: WebPkiSupportedAlgorithms,
    observed: Mutex<Observed>,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            observed: Mutex::new(Observed::default()),
        }
    }

    fn record(&self, f: impl FnOnce(&mut Observed)) {
        // A poisoned lock only means another thread panicked mid-record; the
        // value is plain data and still usable.
        f(&mut self.observed.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn check_certificate(
        &self,
        pin: Option<Fingerprint>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), Error> {
        let presented = Fingerprint::of_certificate(end_entity);
        let pin_ok = intermediates.is_empty() && pin.is_none_or(|p| p == presented);
        self.record(|o| {
            o.presented = Some(presented);
            o.pin_ok = pin_ok;
        });
        if pin_ok {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn check_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let result = verify_tls13_signature(message, cert, dss, &self.algorithms);
        self.record(|o| o.signature_ok = Some(result.is_ok()));
        result
    }

    fn observed(&self) -> Observed {
        *self.observed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Client side: accepts exactly the pinned server certificate.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    pin: Fingerprint,
    checker: Checker,
}

impl PinnedServerVerifier {
    /// A verifier for one connection to the holder of `pin`.
    pub fn new(pin: Fingerprint) -> Arc<PinnedServerVerifier> {
        Arc::new(PinnedServerVerifier { pin, checker: Checker::new() })
    }

    /// The pin.
    pub fn pin(&self) -> Fingerprint {
        self.pin
    }

    /// What the server presented, for error messages.
    pub fn observed(&self) -> Observed {
        self.checker.observed()
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // No name or validity check: the pin is the identity, and an expiry
        // date would only turn a working pin into an outage.
        self.checker.check_certificate(Some(self.pin), end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.checker.check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.checker.algorithms.supported_schemes()
    }
}

/// Server side: demands a client certificate and applies a [`ClientPolicy`].
#[derive(Debug)]
pub struct PeerClientVerifier {
    policy: ClientPolicy,
    checker: Checker,
}

impl PeerClientVerifier {
    /// A verifier for one incoming connection.
    pub fn new(policy: ClientPolicy) -> Arc<PeerClientVerifier> {
        Arc::new(PeerClientVerifier { policy, checker: Checker::new() })
    }

    /// The policy.
    pub fn policy(&self) -> ClientPolicy {
        self.policy
    }

    /// What the client presented, for error messages.
    pub fn observed(&self) -> Observed {
        self.checker.observed()
    }
}

impl ClientCertVerifier for PeerClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let pin = match self.policy {
            ClientPolicy::Pinned(p) => Some(p),
            ClientPolicy::AnyProvenKey => None,
            ClientPolicy::Nobody => {
                self.checker.record(|o| o.presented = Some(Fingerprint::of_certificate(end_entity)));
                return Err(Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
            }
        };
        self.checker.check_certificate(pin, end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::PeerIncompatible(PeerIncompatible::Tls13RequiredForQuic))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.checker.check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.checker.algorithms.supported_schemes()
    }
}
