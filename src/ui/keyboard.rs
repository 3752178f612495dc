//! The remote view's keyboard: while the view has the focus and the
//! technician control, the window system's key events go from the event
//! loop straight to the session's input stream, before eframe and egui
//! see them.
//!
//! Why not through egui: every event egui sees costs a whole frame of the
//! window (about 20 ms on software OpenGL), so a key cost one frame before
//! its echo cost the next; and egui keeps Ctrl+C, Ctrl+X and Ctrl+V for
//! its own clipboard, so the customer never got them.

use std::sync::{Arc, Mutex};

use eframe::{EframeWinitApplication, UserEvent};
use winit::application::ApplicationHandler;
use winit::event::{DeviceEvent, DeviceId, ElementState, StartCause, WindowEvent};
use winit::event_loop::ActiveEventLoop;
use winit::keyboard::{ModifiersState, PhysicalKey};
use winit::window::WindowId;

use crate::input::keys::{KeyMapper, KeyPress};
use crate::input::InputSender;

/// Where the window's keys go: set by the remote view on every frame.
#[derive(Default)]
pub struct Keyboard {
    to: Mutex<Option<Arc<InputSender>>>,
}

impl Keyboard {
    /// From now on, keys go to `to` (the session's input), or to egui.
    pub fn route(&self, to: Option<&Arc<InputSender>>) {
        *self.to.lock().expect("not poisoned") = to.cloned();
    }

    /// Whether keys skip egui now.
    pub fn routed(&self) -> bool {
        self.target().is_some()
    }

    fn target(&self) -> Option<Arc<InputSender>> {
        self.to.lock().expect("not poisoned").clone()
    }
}

/// eframe's application with the keyboard taken off in front of it.
pub(super) struct Intercept<'a> {
    app: EframeWinitApplication<'a>,
    keyboard: Arc<Keyboard>,
    mapper: KeyMapper,
    held: ModifiersState,
    /// A modifier change egui has not seen yet: it costs a frame too, so
    /// it waits until something else goes to egui.
    modifiers_for_egui: Option<(WindowId, WindowEvent)>,
}

impl<'a> Intercept<'a> {
    pub(super) fn new(app: EframeWinitApplication<'a>, keyboard: Arc<Keyboard>) -> Self {
        Intercept {
            app,
            keyboard,
            mapper: KeyMapper::default(),
            held: ModifiersState::empty(),
            modifiers_for_egui: None,
        }
    }

    /// Sends a key to the session; false if it must go to egui after all
    /// (a synthetic key, winit's guess at a focus change, or a session
    /// whose input has closed).
    fn send_key(&mut self, to: &InputSender, event: &WindowEvent) -> bool {
        let WindowEvent::KeyboardInput { event: key, is_synthetic: false, .. } = event else { return false };
        let code = match key.physical_key {
            PhysicalKey::Code(code) => Some(code),
            PhysicalKey::Unidentified(_) => None,
        };
        let press = KeyPress {
            code,
            logical: &key.logical_key,
            text: key.text.as_deref(),
            pressed: key.state == ElementState::Pressed,
            repeat: key.repeat,
        };
        let mut out = Vec::new();
        self.mapper.map(press, self.held, &mut out);
        out.into_iter().all(|input| to.send(input).is_ok())
    }
}

impl ApplicationHandler<UserEvent> for Intercept<'_> {
    fn window_event(&mut self, event_loop: &ActiveEventLoop, window: WindowId, event: WindowEvent) {
        if let WindowEvent::ModifiersChanged(m) = &event {
            self.held = m.state();
        }
        if let Some(to) = self.keyboard.target() {
            if let WindowEvent::ModifiersChanged(_) = event {
                self.modifiers_for_egui = Some((window, event));
                return;
            }
            if self.send_key(&to, &event) {
                return;
            }
        }
        if let Some((id, modifiers)) = self.modifiers_for_egui.take() {
            self.app.window_event(event_loop, id, modifiers);
        }
        self.app.window_event(event_loop, window, event);
    }

    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        self.app.resumed(event_loop);
    }

    fn new_events(&mut self, event_loop: &ActiveEventLoop, cause: StartCause) {
        self.app.new_events(event_loop, cause);
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: UserEvent) {
        self.app.user_event(event_loop, event);
    }

    fn device_event(&mut self, event_loop: &ActiveEventLoop, device: DeviceId, event: DeviceEvent) {
        self.app.device_event(event_loop, device, event);
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        self.app.about_to_wait(event_loop);
    }

    fn suspended(&mut self, event_loop: &ActiveEventLoop) {
        self.app.suspended(event_loop);
    }

    fn exiting(&mut self, event_loop: &ActiveEventLoop) {
        self.app.exiting(event_loop);
    }

    fn memory_warning(&mut self, event_loop: &ActiveEventLoop) {
        self.app.memory_warning(event_loop);
    }
}
