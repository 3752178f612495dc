//! The company's rendezvous server: staff directory, presence, requests,
//! and the address exchange for hole punching.

pub mod directory;
pub mod registry;
