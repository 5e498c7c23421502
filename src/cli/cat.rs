//! `cat`: write one file of a snapshot to stdout.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use lumina_backup::Error;

use super::common::Ctx;

/// `cat` arguments.
#[derive(Args, Debug)]
pub(super) struct CatArgs {
    /// Snapshot id, unique prefix, or `latest`.
    snap: String,
    /// File name inside the snapshot (`image` for the database image).
    file: String,
    /// With `latest`: which database's newest (needed when the repository has several).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

pub(super) fn run(ctx: &Ctx, CatArgs { snap, file, db }: CatArgs) -> Result<(), Error> {
    let repo = ctx.open_read("cat")?;
    let s = repo.resolve_in(&snap, db.as_deref())?;
    let entry = s.file(&file)?;
    let stdout = std::io::stdout();
    // What reaches stdout cannot be taken back: the order and set of chunks
    // is checked first (each chunk is checked as it is read).
    repo.check_chunk_list(entry)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let written = repo
        .read_file(entry, &mut out, &lumina_backup::NoProgress)
        .and_then(|_| out.flush().map_err(|e| Error::io("writing", "stdout", e)));
    if let Err(e) = &written {
        if super::errors::closed_pipe(e) {
            // The reader went away (`cat ... | head`): end quietly, as Unix tools do.
            std::process::exit(crate::EXIT_CLOSED_STDOUT);
        }
    }
    written.map(|_| ())
}
