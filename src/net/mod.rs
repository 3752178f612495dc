//! Networking: identities, pinned TLS, QUIC transport settings, endpoints.

pub mod birthday;
pub mod candidates;
pub mod endpoint;
pub mod identity;
pub mod pin;
pub mod punch;
pub mod socket;
pub mod tls;
pub mod transport;
pub mod tunnel;
pub mod window;

pub use endpoint::{make_endpoint, EndpointError};
pub use identity::{Identity, IdentityError};
pub use pin::{ClientPolicy, Observed, PeerClientVerifier, PinnedServerVerifier};
