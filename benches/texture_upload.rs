//! The technician's window taking a new image into its texture: what it
//! converts and hands to the graphics card per update, for a key's echo on
//! a 1920x1080 screen and for a terminal scrolling a quarter of it. Whole:
//! every update uploads the whole image (as the window did before it took
//! only the changed tiles); changed tiles: what `RemoteView::refresh` does.
//!
//! Real parts: the codec's encoder, the viewer's decode thread and change
//! log, egui's texture manager. Not measured: the driver's copy to the
//! card, which is in proportion to the bytes (a software renderer such as
//! llvmpipe copies them once more).
//!
//! `cargo bench --bench texture_upload` (part of `just bench`); prints a table.

use std::time::Instant;

use lifebuoy::proto::codec::{Encoder, Image, Rect};
use lifebuoy::screen::stream::ScreenReceiver;
use lifebuoy::ui::remote::RemoteView;

const UPDATES: usize = 200;
const SCREEN: (u32, u32) = (1920, 1080);

fn desktop() -> Image {
    let (w, h) = SCREEN;
    let pixels =
        (0..w * h).flat_map(|i| [(i % 251) as u8, (i % 241) as u8, (i / w % 239) as u8, 0]).collect();
    Image { width: w, height: h, pixels }
}

fn paint(image: &mut Image, r: Rect, v: u8) {
    for dy in 0..r.h {
        image.row_mut(r, dy).fill(v);
    }
}

/// Median and 99th percentile of the refreshes, in ms, and the mean
/// bytes handed to the card per update.
fn run(change: fn(&mut Image, usize), whole: bool) -> (f64, f64, f64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let screen = runtime.block_on(async { ScreenReceiver::start() });
    let ctx = egui::Context::default();
    let (mut encoder, mut image) = (Encoder::new(), desktop());
    let mut view = RemoteView::default();
    let (mut times, mut bytes) = (Vec::new(), 0usize);
    for seq in 1..=UPDATES as u64 + 1 {
        if seq > 1 {
            change(&mut image, seq as usize);
        }
        let (data, _) = encoder.encode(image.clone()).expect("changed");
        runtime.block_on(async {
            screen.feed(seq, 0, data).await.unwrap();
            let mut published = screen.image.clone();
            published.wait_for(|f| f.as_ref().is_some_and(|f| f.seq == seq)).await.unwrap();
        });
        if whole {
            view = RemoteView::default();
        }
        let start = Instant::now();
        let mut out = ctx.run_pass(egui::RawInput::default(), |ctx| view.refresh(ctx, &screen));
        let took = start.elapsed();
        if seq > 1 {
            times.push(took.as_secs_f64() * 1e3);
            bytes += out
                .textures_delta
                .set
                .values()
                .flatten()
                .map(|d| d.image.bytes_per_pixel() * d.image.width() * d.image.height())
                .sum::<usize>();
        }
        out.textures_delta.clear();
    }
    times.sort_by(f64::total_cmp);
    let pick = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    (pick(0.5), pick(0.99), bytes as f64 / UPDATES as f64)
}

fn key_echo(image: &mut Image, n: usize) {
    let x = 8 + (n as u32 * 9) % 800;
    paint(image, Rect { x, y: 300, w: 9, h: 16 }, n as u8);
}

fn scrolling(image: &mut Image, n: usize) {
    // A terminal of 960x540 whose every line moved up.
    for row in 0..540 / 16 {
        paint(image, Rect { x: 960, y: 540 + row * 16, w: 960, h: 16 }, (n as u32 + row) as u8);
    }
}

fn main() {
    println!("texture refresh per update, {}x{}, {UPDATES} updates each", SCREEN.0, SCREEN.1);
    println!("| change | upload | p50 ms | p99 ms | bytes to the card |");
    println!("|---|---|---|---|---|");
    for (name, change) in
        [("key echo", key_echo as fn(&mut Image, usize)), ("terminal scrolling (1/4 screen)", scrolling)]
    {
        for whole in [true, false] {
            let (p50, p99, bytes) = run(change, whole);
            let how = if whole { "whole image" } else { "changed tiles" };
            println!("| {name} | {how} | {p50:.3} | {p99:.3} | {:.0} KB |", bytes / 1024.0);
        }
    }
}
