//! An app embedding lumina-backup: snapshots a WAL and a rollback-journal
//! database, restores them, checks the restored files are byte-identical to the
//! committed databases, and prints the capture route each snapshot used.
//!
//! Usage: `lumina-embed-example WORK_DIR` (an empty folder). Exit 0 when every
//! restore is byte-identical; prints one `route NAME ROUTE` line per database and
//! `dbpage PRESENT` (whether the linked SQLite has `sqlite_dbpage`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lumina_backup::{NoProgress, OpenOptions, Repository, RestoreOptions, SnapshotOptions};
use rusqlite::Connection;

fn main() -> ExitCode {
    let Some(work) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: lumina-embed-example WORK_DIR");
        return ExitCode::from(2);
    };
    match run(&work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lumina-embed-example: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn run(work: &Path) -> Res<()> {
    std::fs::create_dir_all(work)?;
    let probe = Connection::open_in_memory()?;
    let dbpage: i64 = probe.query_row(
        "SELECT count(*) FROM pragma_module_list WHERE name = 'sqlite_dbpage'",
        [],
        |r| r.get(0),
    )?;
    println!("dbpage {}", dbpage > 0);

    let repo_path = work.join("repo");
    Repository::init(&repo_path)?;
    let mut repo = Repository::open(&repo_path, &OpenOptions::default())?;

    for (name, mode) in [("wal.db", "WAL"), ("rollback.db", "DELETE")] {
        let db = work.join(name);
        // The app's own connection stays open: in WAL mode the committed pages
        // stay in the -wal file, not yet in the database file.
        let app = make_db(&db, mode)?;
        let summary = repo.snapshot(&db, &SnapshotOptions::default(), &NoProgress)?;
        let snap = summary.snapshot;
        let mut manifest = Vec::new();
        repo.read_file(snap.file("manifest.json")?, &mut manifest, &NoProgress)?;
        let manifest: serde_json::Value = serde_json::from_slice(&manifest)?;
        let route = manifest["capture_route"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        println!("route {name} {route}");

        let restored = work.join(format!("{name}.restored"));
        repo.restore(
            &snap.id.to_hex(),
            &restored,
            &RestoreOptions::default(),
            &NoProgress,
        )?;
        // The committed database as one file: what every route must yield.
        app.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        drop(app);
        let (want, got) = (hash(&db)?, hash(&restored)?);
        if want != got {
            return Err(format!("{name} ({route}): restored {got}, committed {want}").into());
        }
        println!("identical {name} {got}");
    }
    Ok(())
}

fn make_db(path: &Path, mode: &str) -> Res<Connection> {
    let c = Connection::open(path)?;
    c.execute_batch(&format!(
        "PRAGMA journal_mode = {mode}; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE photos(id INTEGER PRIMARY KEY, name TEXT, thumb BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO photos SELECT i, 'photo ' || i, randomblob(200 + i % 300) FROM n;
         DELETE FROM photos WHERE id % 9 = 0;
         UPDATE photos SET name = name || ' (edited)' WHERE id % 4 = 0;
         PRAGMA user_version = 3;"
    ))?;
    Ok(c)
}

fn hash(path: &Path) -> Res<String> {
    Ok(blake3::hash(&std::fs::read(path)?).to_hex().to_string())
}
