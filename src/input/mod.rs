//! Remote input: the technician's mouse and keyboard on the customer's
//! machine. The viewer maps its window's events (`map`; its keys straight
//! from the window system, `keys`), sends them on one
//! ordered stream (`stream`), and the agent applies them (`inject`),
//! releasing whatever it holds when anything ends.

pub mod hid;
pub mod inject;
pub mod keys;
pub mod map;
pub mod plan;
pub mod stream;

pub use inject::{Applied, InjectError, Injector};
pub use map::{combo, map_event, Combo, ViewGeometry};
pub use stream::{receive_input, InjectorHandle, InputClosed, InputSender};
