//! The progress bar of imports and backfills: the library reports through its `Progress` trait, this draws it with indicatif on
//! stderr, hidden under `--quiet`, `--json` or when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kintell_ingest::batch::{Progress, ProgressPhase, ProgressSnapshot};
use std::io::IsTerminal;
use std::sync::Mutex;

/// A bar that follows one import (or one backfill run).
pub struct Bar {
    bar: ProgressBar,
    phase: Mutex<Option<ProgressPhase>>,
    /// What the rows phase is called: `importing`, `associating`.
    verb: &'static str,
}

impl Bar {
    /// A bar drawn on stderr, or hidden when `hidden` or when stderr is not a terminal.
    pub fn new(hidden: bool) -> Self {
        Self::labelled(hidden, "importing")
    }

    /// A bar for a backfill run, which reports rows only.
    pub fn associating(hidden: bool) -> Self {
        Self::labelled(hidden, "associating")
    }

    fn labelled(hidden: bool, verb: &'static str) -> Self {
        let target = if hidden || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bar {
            bar: ProgressBar::with_draw_target(None, target),
            phase: Mutex::new(None),
            verb,
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn enter(&self, phase: ProgressPhase) {
        let Ok(mut current) = self.phase.lock() else {
            return;
        };
        if *current == Some(phase) {
            return;
        }
        *current = Some(phase);
        let template = match phase {
            ProgressPhase::Scanning => {
                "checking  [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}".to_owned()
            }
            ProgressPhase::Importing => {
                format!(
                    "{} [{{bar:30}}] {{pos}}/{{len}} rows {{msg}} ETA {{eta}}",
                    self.verb
                )
            }
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.reset();
    }
}

impl Progress for Bar {
    fn on_progress(&self, p: &ProgressSnapshot) {
        self.enter(p.phase);
        match p.phase {
            ProgressPhase::Scanning => {
                self.bar.set_length(p.bytes_total);
                self.bar.set_position(p.bytes_done);
                self.bar.set_message(format!("{} rows", p.rows_total));
            }
            ProgressPhase::Importing => {
                self.bar.set_length(p.rows_total);
                self.bar.set_position(p.rows_done);
                let rate = p
                    .rows_per_second()
                    .map_or_else(String::new, |r| format!("{r:.0} rows/s"));
                self.bar.set_message(rate);
            }
        }
    }
}
