//! The customer's screen in the technician's window: the newest decoded
//! image as a texture, fitted to the window (smooth) or at 1:1 with
//! scroll bars (nearest-pixel, so text stays crisp), the customer's pointer
//! drawn over it, and while the view has focus every key and pointer event
//! mapped to the remote monitor and sent.

use std::sync::Arc;

use egui::emath::GuiRounding as _;
use egui::{Color32, ColorImage, Rect, Sense, TextureHandle, TextureOptions, Vec2};
use lifebuoy_proto::input::Input;

use crate::input::map::{map_event, ViewGeometry};
use crate::input::InputSender;
use crate::screen::stream::ScreenReceiver;

/// How the image is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Fitted into the window, aspect kept.
    Fit,
    /// One remote pixel per screen pixel, scrolling.
    Actual,
}

/// The remote view's state between frames.
pub struct RemoteView {
    /// How the image is sized.
    pub scale: Scale,
    texture: Option<TextureHandle>,
    texture_scale: Option<Scale>,
    seq: u64,
    size: (u32, u32),
    monitor: u8,
    cursor: Option<(u32, TextureHandle)>,
    had_focus: bool,
    /// Inputs sent (for tests and the status line).
    pub sent: u64,
}

impl Default for RemoteView {
    fn default() -> Self {
        RemoteView {
            scale: Scale::Fit,
            texture: None,
            texture_scale: None,
            seq: 0,
            size: (0, 0),
            monitor: 0,
            cursor: None,
            had_focus: false,
            sent: 0,
        }
    }
}

/// BGRA (alpha ignored: X leaves it 0) to egui's colours.
fn to_color_image(width: u32, height: u32, bgra: &[u8]) -> ColorImage {
    let pixels = bgra.chunks_exact(4).map(|p| Color32::from_rgb(p[2], p[1], p[0])).collect();
    ColorImage {
        size: [width as usize, height as usize],
        source_size: Vec2::new(width as f32, height as f32),
        pixels,
    }
}

impl RemoteView {
    /// Whether a picture has come.
    pub fn has_picture(&self) -> bool {
        self.texture.is_some()
    }

    /// The remote monitor's size in pixels (0x0 before the first picture).
    pub fn remote_size(&self) -> (u32, u32) {
        self.size
    }

    /// Takes the newest image into the texture, if it changed.
    fn refresh(&mut self, ctx: &egui::Context, screen: &ScreenReceiver) {
        let options = match self.scale {
            Scale::Fit => TextureOptions::LINEAR,
            Scale::Actual => TextureOptions::NEAREST,
        };
        let frame = screen.image.borrow().clone();
        let Some(frame) = frame else { return };
        if frame.seq == self.seq && self.texture_scale == Some(self.scale) {
            return;
        }
        let image = to_color_image(frame.image.width, frame.image.height, &frame.image.pixels);
        match &mut self.texture {
            Some(t) => t.set(image, options),
            None => self.texture = Some(ctx.load_texture("remote-screen", image, options)),
        }
        (self.seq, self.size, self.monitor) =
            (frame.seq, (frame.image.width, frame.image.height), frame.monitor);
        self.texture_scale = Some(self.scale);
    }

    /// Draws the view into the rest of `ui`; sends input when `control`.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        screen: &ScreenReceiver,
        input: Option<&Arc<InputSender>>,
        control: bool,
    ) {
        self.refresh(ui.ctx(), screen);
        let Some(texture) = self.texture.clone() else { return };
        let (w, h) = (self.size.0 as f32, self.size.1 as f32);
        let sense = Sense::click_and_drag().union(Sense::FOCUSABLE);
        let (response, clip) = match self.scale {
            Scale::Fit => {
                let avail = ui.available_size();
                let s = (avail.x / w).min(avail.y / h).max(0.01);
                (ui.allocate_exact_size(Vec2::new(w * s, h * s), sense).1, ui.clip_rect())
            }
            Scale::Actual => {
                // One texel per physical pixel, on whole pixels.
                let ppp = ui.ctx().pixels_per_point();
                let size = Vec2::new(w / ppp, h / ppp);
                let source = egui::scroll_area::ScrollSource { mouse_wheel: !control, ..Default::default() };
                egui::ScrollArea::both()
                    .scroll_source(source)
                    .auto_shrink([false, false])
                    .show(ui, |ui| (ui.allocate_exact_size(size, sense).1, ui.clip_rect()))
                    .inner
            }
        };
        let rect = Rect::from_min_size(
            response.rect.min.round_to_pixels(ui.ctx().pixels_per_point()),
            response.rect.size(),
        );
        let painter = ui.painter().with_clip_rect(clip);
        let whole = Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        painter.image(texture.id(), rect, whole, Color32::WHITE);
        self.draw_cursor(&painter, screen, rect);
        if response.clicked() || response.drag_started() {
            response.request_focus();
        }
        let focused = response.has_focus();
        if focused {
            ui.memory_mut(|m| {
                m.set_focus_lock_filter(
                    response.id,
                    egui::EventFilter {
                        tab: true,
                        horizontal_arrows: true,
                        vertical_arrows: true,
                        escape: true,
                    },
                )
            });
        }
        let Some(input) = input else { return };
        if control && response.hovered() {
            ui.ctx().set_cursor_icon(egui::CursorIcon::None);
        }
        let geometry = ViewGeometry { monitor: self.monitor, remote: self.size, view: rect };
        let mut out = Vec::new();
        if control {
            let events = ui.input(|i| i.events.clone());
            for event in &events {
                let pointer = matches!(
                    event,
                    egui::Event::PointerMoved(_)
                        | egui::Event::PointerButton { .. }
                        | egui::Event::MouseWheel { .. }
                );
                // Pointer events over the image; keys only while it has focus.
                if (pointer && response.hovered()) || (!pointer && focused) {
                    map_event(&geometry, event, &mut out);
                }
            }
        }
        if self.had_focus && !focused {
            // Whatever was held when focus went elsewhere is let go.
            out.push(Input::ReleaseAll);
        }
        self.had_focus = focused;
        for i in out {
            if input.send(i).is_ok() {
                self.sent += 1;
            }
        }
    }

    fn draw_cursor(&mut self, painter: &egui::Painter, screen: &ScreenReceiver, rect: Rect) {
        let cursor = screen.cursor.borrow().clone();
        let Some(shape) = cursor.shape.as_ref().filter(|_| cursor.visible && cursor.monitor == self.monitor)
        else {
            return;
        };
        if self.cursor.as_ref().is_none_or(|(id, _)| *id != shape.id) {
            let image =
                ColorImage::from_rgba_unmultiplied([shape.width.into(), shape.height.into()], &shape.rgba);
            let texture = painter.ctx().load_texture("remote-cursor", image, TextureOptions::NEAREST);
            self.cursor = Some((shape.id, texture));
        }
        let Some((_, texture)) = &self.cursor else { return };
        let s = rect.width() / self.size.0.max(1) as f32;
        let at = rect.min
            + Vec2::new(
                (cursor.x - i32::from(shape.hot_x)) as f32,
                (cursor.y - i32::from(shape.hot_y)) as f32,
            ) * s;
        let size = Vec2::new(f32::from(shape.width), f32::from(shape.height)) * s.max(0.5);
        painter.with_clip_rect(rect.intersect(painter.clip_rect())).image(
            texture.id(),
            Rect::from_min_size(at, size),
            Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
            Color32::WHITE,
        );
    }
}
