//! Viewer event -> injected on the agent: how long after the technician's
//! side hands an input to its sender the customer's X server has applied
//! it. Real parts: the input sender, a pinned QUIC session on loopback,
//! the agent's receiver and injection thread (enigo, XTEST), Xvfb. The X
//! server is asked (QueryPointer, QueryKeymap) in a loop from the moment
//! the event is handed over, so the numbers include up to one query round
//! trip (~0.1 ms).
//!
//! `cargo bench --bench input_latency` (part of `just bench`); prints a table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{session_pair, xvfb, Started};
use lifebuoy::input::{receive_input, Injector, InjectorHandle, InputSender};
use lifebuoy::proto::input::{Input, Modifiers, MouseButton};
use lifebuoy::screen::MonitorInfo;
use lifebuoy::session::IncomingStream;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;

const SAMPLES: usize = 300;
const KEYCODE_A: u8 = 38;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn time_until(mut done: impl FnMut() -> bool) -> f64 {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(5), "input never arrived");
        tokio::task::yield_now().await;
    }
    started.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut started = Started(Vec::new());
        let display = xvfb(&mut started, "1920x1080x24");
        let (agent, viewer) = session_pair().await;
        let monitors = vec![MonitorInfo {
            id: 0,
            name: "screen".into(),
            x: 0,
            y: 0,
            width: 1920,
            height: 1080,
            primary: true,
        }];
        let injector = InjectorHandle::start(Injector::open(Some(&display), monitors).unwrap(), true);
        {
            let (link, injector) = (agent.link.clone(), injector.clone());
            tokio::spawn(async move {
                while let Ok(IncomingStream::Input(s)) = link.accept().await {
                    let injector = injector.clone();
                    tokio::spawn(async move { receive_input(s, &injector).await });
                }
            });
        }
        let sender = InputSender::start(viewer.link.clone(), tokio::sync::watch::channel(true).1);
        let (x, screen) = x11rb::connect(Some(&display)).unwrap();
        let root = x.setup().roots[screen].root;
        let pointer = || {
            let p = x.query_pointer(root).unwrap().reply().unwrap();
            (p.root_x, p.root_y)
        };
        let button_down = || {
            let mask = x.query_pointer(root).unwrap().reply().unwrap().mask;
            u16::from(mask) & u16::from(x11rb::protocol::xproto::KeyButMask::BUTTON1) != 0
        };
        let key_down = || {
            let keys = x.query_keymap().unwrap().reply().unwrap().keys;
            keys[usize::from(KEYCODE_A / 8)] & (1 << (KEYCODE_A % 8)) != 0
        };
        // Warm up: the stream opens with the first input.
        sender.send(Input::PointerMove { monitor: 0, x: 1, y: 1 }).unwrap();
        time_until(|| pointer() == (1, 1)).await;
        // Characters the keymap lacks make enigo remap keys on the fly (and,
        // before keys bypassed it, delay every later key): type some first.
        sender.send(Input::Text { text: "Grüße".into() }).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (mut moves, mut keys, mut buttons) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..SAMPLES {
            // Longer than the sender's move interval (8 ms): this measures the path, not the pacing.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let target = (100 + (i % 50) as u16 * 7, 200 + (i % 30) as u16 * 11);
            sender.send(Input::PointerMove { monitor: 0, x: target.0, y: target.1 }).unwrap();
            moves.push(time_until(|| pointer() == (target.0 as i16, target.1 as i16)).await);
            let pressed = i % 2 == 0;
            sender
                .send(Input::Key { physical: 0x04, logical: None, pressed, modifiers: Modifiers(0) })
                .unwrap();
            keys.push(time_until(|| key_down() == pressed).await);
            sender
                .send(Input::Button { button: MouseButton::Left, pressed, modifiers: Modifiers(0) })
                .unwrap();
            buttons.push(time_until(|| button_down() == pressed).await);
        }
        buttons.sort_by(f64::total_cmp);
        moves.sort_by(f64::total_cmp);
        keys.sort_by(f64::total_cmp);
        println!("| event | samples | p50 ms | p90 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|");
        for (name, t) in [("pointer move", &moves), ("key down/up", &keys), ("button down/up", &buttons)] {
            println!(
                "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
                t.len(),
                percentile(t, 0.5),
                percentile(t, 0.9),
                percentile(t, 0.99),
                t[t.len() - 1]
            );
        }
        sender.send(Input::ReleaseAll).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
}
