//! The company's rendezvous server: staff directory, presence, requests,
//! and the address exchange for hole punching.

pub mod admission;
pub mod client;
pub mod directory;
pub mod limits;
pub mod registry;
pub mod relay;
pub mod relay_server;
pub mod server;
