//! The customer's screen in the technician's window: the newest decoded
//! image as a texture, shrunk to fit the window (smooth; never enlarged) or at 1:1 with
//! scroll bars (nearest-pixel, so text stays crisp), the customer's pointer
//! drawn over it, and while the view has focus every key and pointer event
//! mapped to the remote monitor and sent.

use std::sync::Arc;

use egui::emath::GuiRounding as _;
use egui::{Color32, ColorImage, Rect, Sense, TextureHandle, TextureOptions, Vec2};
use lifebuoy_proto::codec::{Image, Rect as PixelRect};
use lifebuoy_proto::input::Input;

use crate::input::map::{map_event, ViewGeometry};
use crate::input::InputSender;
use crate::screen::stream::ScreenReceiver;

use super::keyboard::Keyboard;

/// How the image is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Shrunk into the window, aspect kept; never enlarged.
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
    /// Where the picture was drawn in the last frame, in points.
    pub drawn: Rect,
    /// Where the window's keys go (the window's event loop reads it).
    pub keyboard: Arc<Keyboard>,
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
            drawn: Rect::NOTHING,
            keyboard: Arc::default(),
        }
    }
}

/// Where more than 1/PARTIAL_UP_TO of the tiles changed (a window that
/// fell behind, a page scrolled), the whole image goes up: one large
/// upload costs less than many small ones.
const PARTIAL_UP_TO: usize = 2;

/// One rectangle of the image, BGRA (alpha ignored: X leaves it 0), in
/// egui's colours.
fn to_color_image(image: &Image, r: PixelRect) -> ColorImage {
    let mut pixels = Vec::with_capacity(r.w as usize * r.h as usize);
    for dy in 0..r.h {
        pixels.extend(image.row(r, dy).chunks_exact(4).map(|p| Color32::from_rgb(p[2], p[1], p[0])));
    }
    ColorImage { size: [r.w as usize, r.h as usize], source_size: Vec2::new(r.w as f32, r.h as f32), pixels }
}

/// The rectangles to upload for `tiles` (sorted): a run of neighbouring
/// tiles in one tile row is one rectangle. `None`: upload everything.
fn uploads(image: &Image, tiles: &[u32]) -> Option<Vec<PixelRect>> {
    let (cols, rows) = image.tiles();
    if tiles.len() * PARTIAL_UP_TO > (cols * rows) as usize {
        return None;
    }
    let mut runs: Vec<(u32, PixelRect)> = Vec::new();
    for &index in tiles {
        if index >= cols * rows {
            return None;
        }
        let r = image.tile_rect(index);
        match runs.last_mut() {
            Some((last, run)) if *last + 1 == index && index % cols != 0 => {
                run.w += r.w;
                *last = index;
            }
            _ => runs.push((index, r)),
        }
    }
    Some(runs.into_iter().map(|(_, r)| r).collect())
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

    /// Takes the newest image into the texture, if it changed: only the
    /// tiles changed since the image the texture shows, where they are
    /// known.
    pub fn refresh(&mut self, ctx: &egui::Context, screen: &ScreenReceiver) {
        let options = match self.scale {
            Scale::Fit => TextureOptions::LINEAR,
            Scale::Actual => TextureOptions::NEAREST,
        };
        let frame = screen.image.borrow().clone();
        let Some(frame) = frame else { return };
        let same_options = self.texture_scale == Some(self.scale);
        if frame.seq == self.seq && same_options {
            return;
        }
        let image = &frame.image;
        let size = (image.width, image.height);
        let partial = match &self.texture {
            Some(_) if same_options && self.size == size => {
                let tiles = screen.changes.lock().expect("not poisoned").since(self.seq, frame.seq);
                tiles.and_then(|tiles| uploads(image, &tiles))
            }
            _ => None,
        };
        match (&mut self.texture, partial) {
            (Some(t), Some(rects)) => {
                for r in rects {
                    t.set_partial([r.x as usize, r.y as usize], to_color_image(image, r), options);
                }
            }
            (Some(t), None) => t.set(to_color_image(image, image.rect()), options),
            (None, _) => {
                self.texture =
                    Some(ctx.load_texture("remote-screen", to_color_image(image, image.rect()), options))
            }
        }
        (self.seq, self.size, self.monitor) = (frame.seq, size, frame.monitor);
        self.texture_scale = Some(self.scale);
    }

    /// A new session: no picture, nothing held. The keyboard stays: the
    /// window's event loop holds it.
    pub fn reset(&mut self) {
        *self = RemoteView { keyboard: self.keyboard.clone(), ..RemoteView::default() };
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
                // Shrunk to fit, never enlarged: a screen smaller than the
                // view stays at one texel per physical pixel, crisp.
                let avail = ui.available_size();
                let ppp = ui.ctx().pixels_per_point();
                let s = (avail.x / w).min(avail.y / h).min(1.0 / ppp).max(0.01);
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
        self.drawn = rect;
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
        // While the view has the keyboard, the window's keys skip egui
        // (they come here only where no window system does: tests).
        self.keyboard.route((control && focused).then_some(input));
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

#[cfg(test)]
mod tests {
    use egui::epaint::ImageDelta;
    use egui::{ImageData, RawInput};
    use lifebuoy_proto::codec::Encoder;

    use super::*;
    use crate::screen::changes::KEPT;

    /// An image whose every pixel differs from its neighbours, so an
    /// upload put in the wrong place shows.
    fn pattern(w: u32, h: u32) -> Image {
        let pixels =
            (0..w * h).flat_map(|i| [(i % 251) as u8, (i % 241) as u8, (i / w % 239) as u8, 0]).collect();
        Image { width: w, height: h, pixels }
    }

    fn paint(image: &mut Image, r: PixelRect, v: u8) {
        for dy in 0..r.h {
            for p in image.row_mut(r, dy).chunks_exact_mut(4) {
                p[..3].copy_from_slice(&[v, v.wrapping_mul(3), v.wrapping_add(7)]);
            }
        }
    }

    /// A viewer window's remote view fed by a real encoder through the
    /// decode thread; `gpu` is what the graphics card holds after applying
    /// the texture updates the view handed to egui.
    struct Rig {
        runtime: tokio::runtime::Runtime,
        screen: ScreenReceiver,
        encoder: Encoder,
        seq: u64,
        latest: Image,
        ctx: egui::Context,
        view: RemoteView,
        gpu: Vec<Color32>,
    }

    impl Rig {
        fn new() -> Rig {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let screen = runtime.block_on(async { ScreenReceiver::start() });
            let (encoder, ctx, view) = (Encoder::new(), egui::Context::default(), RemoteView::default());
            Rig { runtime, screen, encoder, seq: 0, latest: pattern(1, 1), ctx, view, gpu: Vec::new() }
        }

        /// The customer's screen becomes `image`; the viewer decodes it.
        fn send(&mut self, image: &Image) {
            let (data, _) = self.encoder.encode(image.clone()).expect("the image changed");
            self.seq += 1;
            let (screen, seq) = (&self.screen, self.seq);
            self.runtime.block_on(async {
                screen.feed(seq, 0, data).await.unwrap();
                let mut published = screen.image.clone();
                published.wait_for(|f| f.as_ref().is_some_and(|f| f.seq == seq)).await.unwrap();
            });
            self.latest = image.clone();
        }

        /// One frame of the window; returns the pixels uploaded and checks
        /// that the texture then equals the customer's screen.
        fn show(&mut self) -> usize {
            let mut out = self.ctx.run_pass(RawInput::default(), |ctx| self.view.refresh(ctx, &self.screen));
            let id = self.view.texture.as_ref().expect("a texture").id();
            let deltas = out.textures_delta.set.get(&id).map(|d| d.to_vec()).unwrap_or_default();
            out.textures_delta.clear();
            let uploaded = deltas.iter().map(|d| apply(&mut self.gpu, self.latest.width as usize, d)).sum();
            assert!(
                self.gpu == to_color_image(&self.latest, self.latest.rect()).pixels,
                "the texture shows the screen"
            );
            uploaded
        }
    }

    /// Applies one texture update as the painter does; returns its pixels.
    fn apply(gpu: &mut Vec<Color32>, width: usize, delta: &ImageDelta) -> usize {
        let ImageData::Color(image) = &delta.image;
        let [w, h] = image.size;
        match delta.pos {
            None => *gpu = image.pixels.clone(),
            Some([x, y]) => {
                for row in 0..h {
                    let at = (y + row) * width + x;
                    gpu[at..at + w].copy_from_slice(&image.pixels[row * w..(row + 1) * w]);
                }
            }
        }
        w * h
    }

    #[test]
    fn the_texture_takes_only_the_changed_tiles_and_always_equals_the_screen() {
        // Not a multiple of the tile size: the right and bottom tiles are cut.
        let (w, h) = (1000u32, 700u32);
        let all = (w * h) as usize;
        let mut rig = Rig::new();
        let mut screen = pattern(w, h);
        rig.send(&screen);
        assert_eq!(rig.show(), all, "the first image is uploaded whole");
        assert_eq!(rig.show(), 0, "nothing new, nothing uploaded");

        // A key's echo: one character cell.
        paint(&mut screen, PixelRect { x: 130, y: 70, w: 9, h: 16 }, 200);
        rig.send(&screen);
        assert_eq!(rig.show(), 64 * 64, "one tile");

        // Three updates come while the window is busy elsewhere; the last
        // touches the cut bottom-right corner and spans two tiles of a row.
        paint(&mut screen, PixelRect { x: 500, y: 300, w: 4, h: 4 }, 1);
        rig.send(&screen);
        paint(&mut screen, PixelRect { x: 120, y: 60, w: 30, h: 30 }, 2);
        rig.send(&screen);
        paint(&mut screen, PixelRect { x: 950, y: 690, w: 50, h: 10 }, 3);
        rig.send(&screen);
        // One tile, four, and two cut ones (the last column is 40 wide,
        // the last row 60 high): their union, each once.
        assert_eq!(rig.show(), 64 * 64 + 4 * 64 * 64 + (64 + 40) * 60, "the union of the three");

        // Another scale: the same image, the whole texture again.
        rig.view.scale = Scale::Actual;
        assert_eq!(rig.show(), all);

        // More than half the screen changes: one upload of everything.
        paint(&mut screen, PixelRect { x: 0, y: 0, w, h: 500 }, 4);
        rig.send(&screen);
        assert_eq!(rig.show(), all);

        // A window further behind than the change log: everything.
        for i in 0..=KEPT as u32 {
            paint(&mut screen, PixelRect { x: i * 10, y: 600, w: 5, h: 5 }, 100 + i as u8);
            rig.send(&screen);
        }
        assert_eq!(rig.show(), all);
        paint(&mut screen, PixelRect { x: 0, y: 0, w: 1, h: 1 }, 77);
        rig.send(&screen);
        assert_eq!(rig.show(), 64 * 64);

        // Another shape (the customer changed the resolution): whole.
        let screen = pattern(640, 480);
        rig.send(&screen);
        assert_eq!(rig.show(), 640 * 480);
    }
}
