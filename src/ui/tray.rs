//! The lifebuoy in the tray while the agent runs, with one item: Close,
//! which ends the session and exits at once. Linux: StatusNotifierItem
//! over the session D-Bus (KDE, GNOME with the AppIndicator extension,
//! XFCE, ...). Where there is no tray, the agent says so in its log and
//! the window's own End and close remain.

use tokio::sync::mpsc;

use super::i18n::{fill, Texts};
use crate::roles::agent::AgentCommand;

/// The agent's tray icon (its texts are read by the Linux tray only; the
/// tray on Windows and macOS is not built yet).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub struct AgentTray {
    tip: String,
    close: &'static str,
    commands: mpsc::Sender<AgentCommand>,
}

impl AgentTray {
    /// A tray icon for `company`'s agent that sends End to `commands`.
    pub fn new(t: &'static Texts, company: &str, commands: mpsc::Sender<AgentCommand>) -> AgentTray {
        AgentTray { tip: fill(t.tray_tip, &[("company", company)]), close: t.tray_close, commands }
    }

    /// What Close does: the session ends, the agent exits.
    pub fn close(&self) {
        let _ = self.commands.try_send(AgentCommand::End);
    }
}

#[cfg(target_os = "linux")]
impl ksni::Tray for AgentTray {
    fn id(&self) -> String {
        "lifebuoy-agent".into()
    }

    fn title(&self) -> String {
        self.tip.clone()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        [22, 32, 48]
            .map(|s| ksni::Icon { width: s as i32, height: s as i32, data: super::icon::lifebuoy_argb(s) })
            .into()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip { title: self.tip.clone(), ..Default::default() }
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        vec![ksni::menu::StandardItem {
            label: self.close.into(),
            activate: Box::new(|tray: &mut Self| tray.close()),
            ..Default::default()
        }
        .into()]
    }
}

/// Puts the icon in the tray, if there is one; `None` (and a line in the
/// log) where there is not.
#[cfg(target_os = "linux")]
pub async fn show(tray: AgentTray) -> Option<ksni::Handle<AgentTray>> {
    use ksni::TrayMethods as _;
    match tray.spawn().await {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::info!("no tray icon ({e}); the window's own controls remain");
            None
        }
    }
}

/// No tray on this system yet: the window's own controls remain.
#[cfg(not(target_os = "linux"))]
pub async fn show(_tray: AgentTray) -> Option<()> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use ksni::Tray as _;

    #[test]
    fn the_trays_only_item_is_close_and_it_ends_the_session() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut tray = AgentTray::new(&crate::ui::i18n::DE, "Muster GmbH", tx);
        let menu = tray.menu();
        assert_eq!(menu.len(), 1);
        let ksni::MenuItem::Standard(close) = &menu[0] else { panic!("a standard item") };
        assert_eq!(close.label, "Schließen (beendet die Sitzung)");
        (close.activate)(&mut tray);
        assert_eq!(rx.try_recv().ok(), Some(AgentCommand::End));
        assert_eq!(tray.tool_tip().title, "Muster GmbH: Fernwartung läuft");
        assert_eq!(tray.icon_pixmap()[1].data.len(), 32 * 32 * 4);
    }
}
