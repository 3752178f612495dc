//! File transfer without I/O: which names may be written ([`name`]), and
//! the receiving side of a file stream as a state machine ([`receive`]).

pub mod name;
pub mod receive;

pub use name::{check_path, numbered, NameError, SafePath};
pub use receive::{Receive, Step, TransferError};
