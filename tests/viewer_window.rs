//! The technician's window during a session, against events as the
//! viewer's driver sends them, over a real session on loopback (the window
//! reads the connection's round-trip time and sends input on it).

mod common;

use std::sync::Arc;
use std::time::Duration;

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use lifebuoy::input::InputSender;
use lifebuoy::proto::control::Permissions;
use lifebuoy::proto::Fingerprint;
use lifebuoy::roles::viewer::{SessionView, ViewerEvent};
use lifebuoy::screen::stream::ScreenReceiver;
use lifebuoy::ui::viewer::ViewerWindow;
use lifebuoy::ui::Lang;
use tokio::sync::mpsc;

const INTERRUPTED_DE: &str = "Verbindung zum Kunden unterbrochen, wird wiederhergestellt …";
const INTERRUPTED_EN: &str = "Connection to the customer interrupted, restoring it …";

#[test]
fn the_toolbar_says_while_the_path_to_the_customer_is_being_restored() {
    for (lang, interrupted) in [(Lang::De, INTERRUPTED_DE), (Lang::En, INTERRUPTED_EN)] {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let _inside = runtime.enter();
        let (_agent, viewer) = runtime.block_on(common::session_pair());
        let (allowed_tx, allowed) = tokio::sync::watch::channel(false);
        let view = SessionView {
            screen: Arc::new(ScreenReceiver::start()),
            input: Arc::new(InputSender::start(viewer.link.clone(), allowed.clone())),
            link: viewer.link.clone(),
            allowed,
        };
        let (commands, _asked) = mpsc::channel(16);
        let (events, event_rx) = mpsc::channel(16);
        let mut harness =
            Harness::builder().with_size(egui::vec2(1000.0, 700.0)).with_step_dt(0.05).build_ui_state(
                |ui, w: &mut ViewerWindow| w.ui(ui),
                ViewerWindow::new(lang, "Anna Berger".into(), commands, event_rx),
            );
        let tell = |harness: &mut Harness<'_, ViewerWindow>, event| {
            events.try_send(event).unwrap();
            harness.step();
            harness.step();
        };
        tell(
            &mut harness,
            ViewerEvent::Connected {
                label: "Kunde 4711".into(),
                fingerprint: Fingerprint([3; 32]),
                code: "123 456".into(),
                path: "path=direct (through NAT) rtt_ms=0.40".into(),
                setup: Duration::from_millis(15),
                view,
            },
        );
        allowed_tx.send_replace(true);
        tell(
            &mut harness,
            ViewerEvent::Permissions(Permissions {
                view: true,
                control: true,
                files: true,
                clipboard: false,
            }),
        );
        assert!(harness.query_by_label(interrupted).is_none(), "{lang:?}: not while the path holds");

        tell(&mut harness, ViewerEvent::PathStalled(true));
        assert!(harness.query_by_label(interrupted).is_some(), "{lang:?}: said while silent");
        assert!(harness.query_by_label("123 456").is_some(), "{lang:?}: the session stays on screen");

        tell(&mut harness, ViewerEvent::PathStalled(false));
        assert!(harness.query_by_label(interrupted).is_none(), "{lang:?}: gone when the path is back");
    }
}
