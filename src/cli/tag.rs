//! `tag`: add or remove tags, or set the note, of a snapshot.

use std::path::PathBuf;

use clap::Args;

use lumina_backup::Error;

use super::common::Ctx;
use super::output::{clean, clean_tags, print_json, ListJson};

/// `tag` arguments.
#[derive(Args, Debug)]
pub(super) struct TagArgs {
    /// Snapshot id, unique prefix, or `latest`.
    snap: String,
    /// Tag to add (repeatable).
    #[arg(long = "add", value_name = "T")]
    add: Vec<String>,
    /// Tag to remove (repeatable).
    #[arg(long = "remove", value_name = "T")]
    remove: Vec<String>,
    /// New note.
    #[arg(long)]
    note: Option<String>,
    /// With `latest`: which database's newest (needed when the repository has several).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

pub(super) fn run(
    ctx: &Ctx,
    TagArgs {
        snap,
        add,
        remove,
        note,
        db,
    }: TagArgs,
) -> Result<(), Error> {
    let mut repo = ctx.open("tag")?;
    let id = repo.resolve_in(&snap, db.as_deref())?.id.to_hex();
    let s = repo.edit_snapshot(&id, &add, &remove, note.as_deref())?;
    if ctx.global.json {
        print_json(&ListJson::from(&s));
    } else {
        let tags = if s.record.tags.is_empty() {
            "no tags".to_string()
        } else {
            clean_tags(&s.record.tags)
        };
        ctx.say(format!(
            "snapshot {} now: {tags}; note \"{}\"",
            s.id.short(),
            clean(&s.record.note)
        ));
    }
    Ok(())
}
