//! The list of files that came and went in a session, for both windows:
//! each file's progress, rate and time left, its end (with hash) or why
//! it failed, and a cancel button per drop while it runs.

use std::collections::HashMap;
use std::time::Duration;

use crate::roles::files::{DropRefused, FileNews};
use crate::transfer::TransferEvent;

use super::i18n::{fill, Texts};

/// Where one file stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RowState {
    /// Moving.
    Running,
    /// Arrived whole (or sent whole), with its BLAKE3.
    Done(String),
    /// Nothing kept; why.
    Failed(String),
}

/// One file of a drop.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The drop.
    pub transfer: u64,
    /// Relative path (received: the name it got).
    pub path: String,
    /// Sent from here.
    pub outgoing: bool,
    /// Bytes moved.
    pub bytes: u64,
    /// Bytes in all.
    pub size: u64,
    /// Bytes per second.
    pub rate: f64,
    /// Time left.
    pub eta: Option<Duration>,
    /// Where it stands.
    pub state: RowState,
}

/// Every file of the session, in the order they started.
#[derive(Debug, Default)]
pub struct Transfers {
    rows: Vec<Row>,
    index: HashMap<(u64, bool, String), usize>,
}

impl Transfers {
    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn row(&mut self, transfer: u64, outgoing: bool, path: &str, size: u64) -> &mut Row {
        let key = (transfer, outgoing, path.to_owned());
        let rows = &mut self.rows;
        let i = *self.index.entry(key).or_insert_with(|| {
            rows.push(Row {
                transfer,
                path: path.to_owned(),
                outgoing,
                bytes: 0,
                size,
                rate: 0.0,
                eta: None,
                state: RowState::Running,
            });
            rows.len() - 1
        });
        &mut self.rows[i]
    }

    /// Takes one piece of news.
    pub fn apply(&mut self, news: FileNews) {
        let outgoing = news.outgoing;
        match news.event {
            TransferEvent::Started { transfer, path, size } => {
                self.row(transfer, outgoing, &path, size);
            }
            TransferEvent::Progress { transfer, path, bytes, size, rate, eta } => {
                let row = self.row(transfer, outgoing, &path, size);
                (row.bytes, row.rate, row.eta) = (bytes, rate, eta);
            }
            TransferEvent::Done { transfer, path, size, blake3 } => {
                // The receiver reports the name the file got, which may be
                // numbered: the row that started under the sent name ends.
                let open = self.rows.iter().position(|r| {
                    r.transfer == transfer
                        && r.outgoing == outgoing
                        && r.state == RowState::Running
                        && r.size == size
                        && (r.path == path || numbered_from(&path, &r.path))
                });
                let row = match open {
                    Some(i) => &mut self.rows[i],
                    None => self.row(transfer, outgoing, &path, size),
                };
                row.path = path;
                (row.bytes, row.eta, row.state) = (size, None, RowState::Done(blake3));
            }
            TransferEvent::Failed { transfer, path, reason } => {
                let row = self.row(transfer, outgoing, &path, 0);
                row.state = RowState::Failed(reason);
            }
        }
    }

    /// Whether a drop still has files running.
    pub fn running(&self, transfer: u64) -> bool {
        self.rows.iter().any(|r| r.transfer == transfer && r.state == RowState::Running)
    }

    /// Draws the list; returns a drop whose cancel button was clicked.
    pub fn show(&self, ui: &mut egui::Ui, t: &Texts) -> Option<u64> {
        let mut cancel = None;
        let row_height = ui.spacing().interact_size.y * 2.0;
        egui::ScrollArea::vertical().id_salt("transfers").max_height(220.0).show_rows(
            ui,
            row_height,
            self.rows.len(),
            |ui, range| {
                for row in &self.rows[range] {
                    ui.horizontal(|ui| {
                        ui.weak(if row.outgoing { t.sent } else { t.received });
                        ui.label(&row.path);
                        match &row.state {
                            RowState::Running => {
                                let fraction =
                                    if row.size == 0 { 0.0 } else { row.bytes as f32 / row.size as f32 };
                                let mut text = format!("{} / {}", bytes(row.bytes), bytes(row.size));
                                if row.rate > 0.0 {
                                    text += &format!(" · {}/s", bytes(row.rate as u64));
                                }
                                if let Some(eta) = row.eta {
                                    text += " · ";
                                    text += &fill(t.left, &[("time", &duration(eta))]);
                                }
                                ui.add(egui::ProgressBar::new(fraction).text(text).desired_width(220.0));
                                if self.running(row.transfer) && ui.small_button(t.cancel).clicked() {
                                    cancel = Some(row.transfer);
                                }
                            }
                            RowState::Done(_) => {
                                ui.label(format!("{} · {}", bytes(row.size), t.done));
                            }
                            RowState::Failed(why) => {
                                ui.colored_label(
                                    ui.visuals().error_fg_color,
                                    fill(t.failed, &[("why", why)]),
                                );
                            }
                        }
                    });
                }
            },
        );
        cancel
    }
}

/// Why a drop was not sent, in the window's language.
pub fn refused(t: &Texts, why: &DropRefused) -> String {
    match why {
        DropRefused::NotAllowed => t.no_files.to_owned(),
        DropRefused::Unreadable(detail) => fill(t.drop_refused, &[("why", detail)]),
    }
}

/// Whether `got` is `sent` with a " (n)" the receiver added.
fn numbered_from(got: &str, sent: &str) -> bool {
    let (stem, ext) = match sent.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && !s.ends_with('/') => (s, Some(e)),
        _ => (sent, None),
    };
    let Some(rest) = got.strip_prefix(stem).and_then(|r| r.strip_prefix(" (")) else {
        return false;
    };
    let rest = match ext {
        Some(e) => rest.strip_suffix(&format!(".{e}")).unwrap_or(""),
        None => rest,
    };
    rest.strip_suffix(')').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `n` bytes for a person: 1.5 MB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn news(outgoing: bool, event: TransferEvent) -> FileNews {
        FileNews { outgoing, event }
    }

    #[test]
    fn a_file_runs_then_ends_under_the_name_it_got() {
        let mut t = Transfers::default();
        t.apply(news(false, TransferEvent::Started { transfer: 7, path: "a/Bericht.pdf".into(), size: 10 }));
        t.apply(news(
            false,
            TransferEvent::Progress {
                transfer: 7,
                path: "a/Bericht.pdf".into(),
                bytes: 4,
                size: 10,
                rate: 4.0,
                eta: Some(Duration::from_secs(2)),
            },
        ));
        assert_eq!(t.rows()[0].bytes, 4);
        assert!(t.running(7));
        t.apply(news(
            false,
            TransferEvent::Done {
                transfer: 7,
                path: "a/Bericht (1).pdf".into(),
                size: 10,
                blake3: "ab".into(),
            },
        ));
        assert_eq!(t.rows().len(), 1, "{:?}", t.rows());
        assert_eq!(t.rows()[0].path, "a/Bericht (1).pdf");
        assert_eq!(t.rows()[0].state, RowState::Done("ab".into()));
        assert!(!t.running(7));
    }

    #[test]
    fn the_same_name_both_ways_is_two_rows_and_failures_say_why() {
        let mut t = Transfers::default();
        t.apply(news(true, TransferEvent::Started { transfer: 1, path: "x".into(), size: 1 }));
        t.apply(news(false, TransferEvent::Started { transfer: 1, path: "x".into(), size: 1 }));
        t.apply(news(false, TransferEvent::Failed { transfer: 1, path: "x".into(), reason: "full".into() }));
        assert_eq!(t.rows().len(), 2);
        assert_eq!(t.rows()[0].state, RowState::Running);
        assert_eq!(t.rows()[1].state, RowState::Failed("full".into()));
    }

    #[test]
    fn numbered_names_and_sizes_read_well() {
        assert!(numbered_from("Bericht (2).pdf", "Bericht.pdf"));
        assert!(numbered_from("ordner (1)", "ordner"));
        assert!(!numbered_from("Bericht (x).pdf", "Bericht.pdf"));
        assert!(!numbered_from("Other (1).pdf", "Bericht.pdf"));
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(duration(Duration::from_secs(3725)), "1:02:05");
    }
}
