//! Remote input: the technician's mouse and keyboard on the customer's
//! machine. The viewer maps its window's events (`map`; its keys straight
//! from the window system, `keys`) and sends them on one ordered stream
//! (`stream`); the agent's injection thread (`injection`) applies them,
//! one planned action at a time (`plan`, `inject`), releasing whatever it
//! holds when anything ends.

pub mod hid;
#[cfg(feature = "desktop")]
pub mod inject;
#[cfg(feature = "desktop")]
pub mod injection;
#[cfg(feature = "desktop")]
pub mod keys;
#[cfg(feature = "desktop")]
pub mod map;
pub mod plan;
pub mod stream;

#[cfg(feature = "desktop")]
pub use inject::{Applied, InjectError, Injector};
#[cfg(feature = "desktop")]
pub use injection::{receive_input, InjectorHandle};
#[cfg(feature = "desktop")]
pub use map::{combo, map_event, Combo, ViewGeometry};
pub use stream::{InputClosed, InputSender};
