//! lifebuoy: peer-to-peer remote support over pinned QUIC.
//!
//! The wire protocol lives in the `lifebuoy-proto` crate and does no I/O;
//! this crate holds the shells that do: identities on disk, pinned TLS, the
//! QUIC endpoint, and the session both roles use.

pub mod audit;
#[cfg(all(target_os = "linux", feature = "desktop"))]
pub mod clipboard;
pub mod config;
pub mod input;
pub mod net;
pub mod pack;
pub mod rendezvous;
pub mod roles;
pub mod screen;
pub mod session;
pub mod transfer;
#[cfg(feature = "desktop")]
pub mod ui;

pub use lifebuoy_proto as proto;
