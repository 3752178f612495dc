//! The two windows (eframe): the customer's agent and the technician's
//! viewer, in German and English. Each window is a plain struct fed by its
//! role's events (`crate::roles`) and drawn by a function of it, so tests
//! drive it without a display (egui_kittest); `app` is the eframe shell.

pub mod agent;
mod app;
pub mod i18n;
pub mod icon;
pub mod keyboard;
pub mod remote;
pub mod transfers;
pub mod tray;
pub mod viewer;

pub use i18n::Lang;
