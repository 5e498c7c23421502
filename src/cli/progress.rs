//! Progress bars on stderr (indicatif), drawn only when stderr is a terminal and
//! neither `--quiet` nor `--json` was given. Bytes are shown as bytes
//! ("12.0 MiB/40.0 MiB"), items as items ("12/40 snapshots"), a phase that
//! counts nothing as a spinner.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use lumina_backup::{Outcome, Phase, PhaseInfo, Progress, Unit};

/// A progress bar, or nothing: a fresh indicatif bar per phase, drawn only
/// once its length, style and message are set.
pub struct Bar {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    /// A bar if stderr is a terminal and output is not quiet.
    pub fn new(quiet: bool) -> Self {
        Bar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    /// Clears the current phase's bar, if any.
    fn clear(&self) {
        if let Some(b) = self.bar.lock().ok().and_then(|mut g| g.take()) {
            b.finish_and_clear();
        }
    }
}

/// What the bar says a phase does.
fn label(phase: Phase) -> &'static str {
    match phase {
        Phase::OpenDatabase => "opening",
        Phase::Capture => "capturing",
        Phase::Export => "exporting",
        Phase::CompactIndex => "compacting the index",
        Phase::ReadFile => "reading",
        Phase::CheckImage => "checking",
        Phase::Diff => "comparing",
        Phase::VerifyPacks => "checking packs",
        Phase::ReadData => "reading all data",
        Phase::VerifySnapshots => "checking snapshots",
        Phase::FindReferences => "finding referenced data",
        Phase::Repack => "repacking live data",
        Phase::DeletePacks => "deleting packs",
        Phase::RebuildIndex => "reading pack descriptions",
        Phase::RepairSnapshots => "checking snapshots",
        Phase::Query => "querying",
        _ => "working",
    }
}

/// The indicatif template for a phase's unit and whether its total is known.
fn template(unit: Unit, known: bool) -> String {
    match (unit, known) {
        (Unit::Bytes, true) => {
            "{msg:30} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}".to_string()
        }
        (Unit::Bytes, false) => "{spinner} {msg:30} {bytes} {bytes_per_sec}".to_string(),
        (Unit::Items(noun), true) => format!("{{msg:30}} {{bar:30}} {{pos}}/{{len}} {noun}"),
        (Unit::Items(noun), false) => format!("{{spinner}} {{msg:30}} {{pos}} {noun}"),
        _ => "{spinner} {msg}".to_string(),
    }
}

impl Progress for Bar {
    fn phase(&self, info: &PhaseInfo<'_>) {
        if !self.enabled {
            return;
        }
        self.clear();
        let msg = match info.detail {
            Some(d) => format!("{} {d}", label(info.phase)),
            None => label(info.phase).to_string(),
        };
        let Ok(style) = ProgressStyle::with_template(&template(info.unit(), info.total.is_some()))
        else {
            return;
        };
        let b = match info.total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::no_length(),
        }
        .with_style(style)
        .with_message(msg);
        // Phases that count nothing (waiting for the database) still move.
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        if let Ok(mut g) = self.bar.lock() {
            *g = Some(b);
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            b.inc(n);
        }
    }

    fn cancelled(&self) -> bool {
        super::signals::received().is_some()
    }

    fn done(&self, _outcome: Outcome) {
        self.clear();
    }
}
