//! `demo`: the whole cycle on a generated sample Lumina database in a fresh
//! folder, printing each step.

use std::path::{Path, PathBuf};

use clap::Args;

use lumina_backup::create_lumina_db;
use lumina_backup::{Error, NoProgress, OpenOptions, Repository, RestoreOptions, SnapshotOptions};

use super::common::Ctx;
use super::output::bytes;

/// `demo` arguments.
#[derive(Args, Debug)]
pub(super) struct DemoArgs {
    /// Folder to use (default: a new folder under the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub(super) fn run(ctx: &Ctx, DemoArgs { dir }: DemoArgs) -> Result<(), Error> {
    let dir = dir.as_deref();
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "lumina-backup-demo-{}-{}",
            std::process::id(),
            rand_suffix()
        )),
    };
    // The demo writes `lumina.db`, `repo/` and `restored-first.db`: it only ever
    // uses a new or empty folder, so no file of the user's can be touched, and
    // never one inside a repository (its files would be foreign files there).
    if let Some(repo) = lumina_backup::repository_holding(&dir) {
        return Err(Error::invalid_input(format!(
            "{} is inside the lumina-backup repository {}; give --dir a folder outside it",
            dir.display(),
            repo.display()
        )));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(Error::invalid_input(format!(
            "{} is not a folder; give a new or empty folder to --dir",
            dir.display()
        )));
    }
    if dir.exists() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("reading", &dir, e))?;
        if entries.count() > 0 {
            return Err(Error::invalid_input(format!(
                "{} is not empty; the demo needs a new or empty folder (give another --dir)",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let db = dir.join("lumina.db");
    let repo_path = dir.join("repo");
    let say = |s: String| ctx.say(s);

    say(format!(
        "1. sample Lumina database with 3,000 photos: {}",
        show_path(&db)
    ));
    create_lumina_db(&db, 3000, 1)?;
    say(format!("2. new repository: {}", show_path(&repo_path)));
    Repository::init(&repo_path)?;
    let mut repo = Repository::open(&repo_path, &OpenOptions::default())?;

    let first = repo.snapshot(
        &db,
        &SnapshotOptions {
            tags: vec!["demo".into()],
            note: "first".into(),
            no_exports: false,
            ..Default::default()
        },
        &NoProgress,
    )?;
    let r = &first.snapshot.record;
    say(format!(
        "3. snapshot {}: {}, {} total, {} stored",
        first.snapshot.id.short(),
        super::output::count(first.snapshot.user_files().count() as u64, "file"),
        bytes(r.total_bytes),
        bytes(r.new_bytes)
    ));

    say("4. the app changes 12 photos' tags and imports 3 new ones".into());
    {
        let conn = rusqlite::Connection::open(&db).map_err(|e| Error::sqlite(&db, e))?;
        conn.execute_batch(
            "UPDATE metadata SET manualTags = '[\"favourite\"]', lastModified = lastModified + 1
               WHERE id IN (SELECT id FROM metadata ORDER BY id LIMIT 12);
             INSERT INTO metadata (id, collectionId, aiDescription, aiTags, aiTagsDetailed, manualTags, isHidden, lastModified, createdAt)
               VALUES ('/photos/new/IMG_A.jpg', 'col-01', 'new import', '[]', '[]', '[]', 0, 1800000000, 1800000000),
                      ('/photos/new/IMG_B.jpg', 'col-01', 'new import', '[]', '[]', '[]', 0, 1800000000, 1800000000),
                      ('/photos/new/IMG_C.jpg', 'col-02', 'new import', '[]', '[]', '[]', 0, 1800000000, 1800000000);",
        )
        .map_err(|e| Error::sqlite(&db, e))?;
    }

    let second = repo.snapshot(
        &db,
        &SnapshotOptions {
            tags: vec!["demo".into()],
            note: "after edits".into(),
            no_exports: false,
            ..Default::default()
        },
        &NoProgress,
    )?;
    let r2 = &second.snapshot.record;
    say(format!(
        "5. snapshot {}: {} total, only {} new ({:.1}% of the first)",
        second.snapshot.id.short(),
        bytes(r2.total_bytes),
        bytes(r2.new_bytes),
        100.0 * r2.new_bytes as f64 / r.new_bytes.max(1) as f64
    ));

    say("6. history:".into());
    for s in repo.list()? {
        say(format!(
            "   {}  {}  +{}  \"{}\"",
            s.id.short(),
            super::output::local_time(s.record.time_ns, &ctx.tz),
            bytes(s.record.new_bytes),
            s.record.note
        ));
    }

    let changes = repo.diff(
        &first.snapshot,
        lumina_backup::DiffTarget::Snapshot(&second.snapshot),
        &NoProgress,
    )?;
    say("   diff of the two snapshots, row by row:".into());
    for (table, d) in &changes.tables {
        if !d.is_empty() {
            say(format!(
                "   {table}: {} changed, {} added, {} removed",
                d.changed.len(),
                d.added.len(),
                d.removed.len()
            ));
        }
    }
    let restored = dir.join("restored-first.db");
    let report = repo.restore(
        &first.snapshot.id.to_hex(),
        &restored,
        &RestoreOptions::default(),
        &NoProgress,
    )?;
    say(format!(
        "7. restored the first snapshot to {} ({}; chunks, checksum and SQLite's quick_check verified)",
        show_path(&restored),
        bytes(report.bytes)
    ));
    let count = |p: &Path| -> Result<i64, Error> {
        let c = rusqlite::Connection::open(p).map_err(|e| Error::sqlite(p, e))?;
        c.query_row("SELECT count(*) FROM metadata", [], |r| r.get(0))
            .map_err(|e| Error::sqlite(p, e))
    };
    say(format!(
        "   photos now: {}, photos in the restored copy: {}",
        count(&db)?,
        count(&restored)?
    ));

    let v = repo.verify(true, &NoProgress)?;
    say(format!(
        "8. verify --read-data: {} ({}, {} re-hashed)",
        if v.ok { "ok" } else { "PROBLEMS" },
        super::output::count(v.snapshots_checked as u64, "snapshot"),
        super::output::count(v.chunks_checked as u64, "chunk")
    ));
    say(format!("done; everything is in {}", show_path(&dir)));
    if ctx.global.json {
        super::output::print_json(&serde_json::json!({
            "dir": dir, "snapshots": [first.snapshot.id.to_hex(), second.snapshot.id.to_hex()], "verify_ok": v.ok
        }));
    }
    Ok(())
}

fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Used by the demo to print paths.
fn show_path(p: &Path) -> String {
    p.display().to_string()
}
