//! Progress bars on stderr (indicatif), drawn only when stderr is a terminal and
//! neither `--quiet` nor `--json` was given. Bytes are shown as bytes
//! ("12.0 MiB/40.0 MiB"), items as items ("12/40 snapshots"), a phase that
//! counts nothing as a spinner.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use lumina_backup::{Outcome, Phase, PhaseInfo, Progress, Unit};

/// A progress bar, or nothing.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar if stderr is a terminal and output is not quiet.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            // Phases that count nothing (waiting for the database) still move.
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Bar { bar }
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
        Phase::CheckImage => "integrity_check of",
        Phase::Diff => "comparing",
        Phase::VerifyPacks => "checking packs",
        Phase::ReadData => "reading all data",
        Phase::VerifySnapshots => "checking snapshots",
        Phase::FindReferences => "finding referenced data",
        Phase::Repack => "repacking live data",
        Phase::DeletePacks => "deleting packs",
        Phase::RebuildIndex => "reading pack descriptions",
        Phase::RepairSnapshots => "checking snapshots",
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
        let Some(b) = &self.bar else { return };
        let msg = match info.detail {
            Some(d) => format!("{} {d}", label(info.phase)),
            None => label(info.phase).to_string(),
        };
        if let Ok(style) =
            ProgressStyle::with_template(&template(info.unit(), info.total.is_some()))
        {
            b.set_style(style);
        }
        b.reset();
        match info.total {
            Some(t) => b.set_length(t),
            None => b.unset_length(),
        }
        b.set_message(msg);
    }

    fn advance(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn cancelled(&self) -> bool {
        super::signals::received().is_some()
    }

    fn done(&self, _outcome: Outcome) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
