//! The thin shell between a window's state and eframe: the role's driver
//! runs on tokio and reports through a channel; each report wakes the UI
//! thread, which drains it and draws. Closing the window is reported to
//! the state (which ends the session) before the process goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use super::keyboard::{Intercept, Keyboard};

/// Wakes the UI thread once its context exists.
#[derive(Clone, Default)]
pub struct Waker(Arc<OnceLock<egui::Context>>);

impl Waker {
    /// Asks for a new frame.
    pub fn wake(&self) {
        if let Some(ctx) = self.0.get() {
            ctx.request_repaint();
        }
    }

    /// Closes the window (as its close button would).
    pub fn close(&self) {
        if let Some(ctx) = self.0.get() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            ctx.request_repaint();
        }
    }

    fn set(&self, ctx: &egui::Context) {
        let _ = self.0.set(ctx.clone());
    }
}

/// A waker, twice: one for the drivers' side, one for the window.
pub fn waker() -> (Waker, Waker) {
    let w = Waker::default();
    (w.clone(), w)
}

/// A sender whose every message also wakes the UI (spawned on `runtime`).
pub fn forward<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    to: mpsc::Sender<T>,
    wake: Waker,
) -> mpsc::Sender<T> {
    let (tx, mut rx) = mpsc::channel::<T>(1024);
    runtime.spawn(async move {
        while let Some(item) = rx.recv().await {
            if to.send(item).await.is_err() {
                break;
            }
            wake.wake();
        }
        wake.wake();
    });
    tx
}

struct Shell<W, D, C> {
    window: W,
    draw: D,
    on_close: C,
    waker: Waker,
    closed: bool,
}

impl<W, D, C> eframe::App for Shell<W, D, C>
where
    D: FnMut(&mut W, &mut egui::Ui) -> bool,
    C: Fn(&W),
{
    // The close is looked for here, not in `ui`: eframe runs only `logic`
    // while the window is minimized or occluded (closed from the taskbar)
    // and closes it after that pass, so `ui` would never see the request
    // and the session would end only from `on_exit`, at shutdown.
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        if ctx.input(|i| i.viewport().close_requested()) && !self.closed {
            self.closed = true;
            (self.on_close)(&self.window);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.waker.set(ui.ctx());
        let frame = unfilled(ui.style());
        let done =
            egui::CentralPanel::default().frame(frame).show(ui, |ui| (self.draw)(&mut self.window, ui)).inner;
        if done {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        visuals.panel_fill.to_normalized_gamma_f32()
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if !self.closed {
            self.closed = true;
            (self.on_close)(&self.window);
        }
    }
}

/// A central panel's frame without its fill: the window's background is
/// the GL clear instead. On software OpenGL every pixel a shape covers
/// costs, and each filled panel under the remote image shaded the window
/// once more.
pub fn unfilled(style: &egui::Style) -> egui::Frame {
    egui::Frame::central_panel(style).fill(egui::Color32::TRANSPARENT)
}

/// Opens a window and runs it until it closes. `draw` draws a frame and
/// says whether the window should close; `on_close` runs once when the
/// person closes it; `keyboard` says when keys skip the window.
pub fn run<W: 'static>(
    title: &str,
    size: [f32; 2],
    waker: Waker,
    keyboard: Arc<Keyboard>,
    window: W,
    draw: impl FnMut(&mut W, &mut egui::Ui) -> bool + 'static,
    on_close: impl Fn(&W) + 'static,
) -> anyhow::Result<()> {
    use winit::platform::run_on_demand::EventLoopExtRunOnDemand as _;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_app_id("lifebuoy")
            .with_inner_size(size)
            .with_drag_and_drop(true)
            .with_icon(super::icon::window_icon()),
        ..Default::default()
    };
    let shell = Shell { window, draw, on_close, waker, closed: false };
    let opened = Arc::new(AtomicBool::new(false));
    let mut event_loop = winit::event_loop::EventLoop::<eframe::UserEvent>::with_user_event()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    let creator = {
        let opened = opened.clone();
        Box::new(move |_: &eframe::CreationContext<'_>| {
            opened.store(true, Ordering::Relaxed);
            Ok(Box::new(shell) as Box<dyn eframe::App>)
        })
    };
    let app = eframe::create_native(title, options, creator, &event_loop);
    event_loop
        .run_app_on_demand(&mut Intercept::new(app, keyboard))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    // eframe logs why it could not make the window (no OpenGL, say) and
    // leaves its event loop without ever making the app.
    anyhow::ensure!(opened.load(Ordering::Relaxed), "cannot open the window (see the log above)");
    Ok(())
}

/// On SIGTERM or Ctrl+C (the service manager, `kill`, the demo ending):
/// sends `last` (End, Quit), gives the driver a second to say goodbye to
/// the other side (`done` turns true when it has), then closes the window
/// the normal way, so the process ends as it does when the person closes
/// it (exiting from this thread while the UI thread draws can crash in the
/// GL driver's exit handlers).
fn exit_on_signal<C: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    commands: mpsc::Sender<C>,
    last: C,
    mut done: tokio::sync::watch::Receiver<bool>,
    window: Waker,
) {
    runtime.spawn(async move {
        crate::roles::shutdown_signal().await;
        let _ = commands.send(last).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), done.wait_for(|d| *d)).await;
        window.close();
        // A window that never came up cannot be closed: leave anyway.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        std::process::exit(0);
    });
}

/// A role's driver running on its own runtime beside a window.
pub struct Running {
    /// The runtime (the window enters it to spawn its watchers).
    pub runtime: tokio::runtime::Runtime,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a driver (`drive(commands, events)`) with the window's channels:
/// its events wake the window, and a signal sends it `last`. Returns the
/// running driver, the window's command sender and event receiver, and the
/// window's waker.
#[allow(clippy::type_complexity)]
pub fn start<C, E, F>(
    last: C,
    drive: impl FnOnce(mpsc::Receiver<C>, mpsc::Sender<E>) -> F,
) -> anyhow::Result<(Running, mpsc::Sender<C>, mpsc::Receiver<E>, Waker)>
where
    C: Send + 'static,
    E: Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (commands, command_rx) = mpsc::channel(64);
    let (event_tx, events) = mpsc::channel(1024);
    let (wake_tx, wake) = waker();
    let events_out = forward(runtime.handle(), event_tx, wake_tx);
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let driving = drive(command_rx, events_out);
    let task = runtime.spawn(async move {
        driving.await;
        let _ = done_tx.send(true);
    });
    exit_on_signal(runtime.handle(), commands.clone(), last, done, wake.clone());
    Ok((Running { runtime, task }, commands, events, wake))
}

impl Running {
    /// The window is gone: gives the driver a second to end the session
    /// and tell the other side, then stops.
    pub fn stop(self) {
        let task = self.task;
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), task).await;
        });
        self.runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    }
}
