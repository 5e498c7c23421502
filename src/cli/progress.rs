//! Progress bars on stderr (indicatif), drawn only when stderr is a terminal and
//! neither `--quiet` nor `--json` was given.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use lumina_backup::Progress;

/// A progress bar, or nothing.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar if stderr is a terminal and output is not quiet.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:30} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .expect("static template is valid"),
            );
            b
        });
        Bar { bar }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
            b.set_position(0);
            b.set_length(total.unwrap_or(0));
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn cancelled(&self) -> bool {
        super::signals::received().is_some()
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
