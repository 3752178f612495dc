//! lifebuoy: peer-to-peer remote support over pinned QUIC.
//!
//! The wire protocol lives in the `lifebuoy-proto` crate and does no I/O;
//! this crate holds the shells that do (identities on disk, pinned TLS, the
//! QUIC endpoint, the session both roles use, the rendezvous, transfers,
//! the roles' drivers) and the sans-IO cores beside them (the registry,
//! admission and relay rules, the injector's plan). The feature `desktop`
//! (on by default) adds what needs a desktop: the windows and tray, screen
//! capture, input injection, the clipboard; the fuzz targets build
//! without it.

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
