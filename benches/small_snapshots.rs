//! Small-snapshot benchmark (issue #10 item 8): N snapshots of a ~4 MB Lumina
//! database with one `metadata` row changed between them, then `prune`.
//!
//! ```text
//! cargo bench --bench small_snapshots -- [N] [WORKDIR]   (default 10000 /tmp/lumina-bench-small)
//! ```
//!
//! Snapshots are taken in-process through the library (image only unless
//! `SMALL_EXPORTS=1`). Reports, for the snapshots after the first (which stores
//! the whole database): bytes added per snapshot to packs, to the index and to
//! snapshot records, separately, and the pack file count; then the same after
//! `Repository::prune` (default `--max-unused 10`). Prints one Markdown table.

use std::path::Path;
use std::time::Instant;

use lumina_backup::{NoProgress, OpenOptions, Repository, SnapshotOptions};

fn du(path: &Path) -> (u64, u64) {
    let (mut total, mut files) = (0, 0);
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
                files += 1;
            }
        }
    }
    (total, files)
}

#[derive(Clone, Copy)]
struct Sizes {
    packs: u64,
    pack_files: u64,
    index: u64,
    records: u64,
}

fn sizes(repo: &Path) -> Sizes {
    let (packs, pack_files) = du(&repo.join("packs"));
    Sizes {
        packs,
        pack_files,
        index: std::fs::metadata(repo.join("index.redb"))
            .map(|m| m.len())
            .unwrap_or(0),
        records: du(&repo.join("snapshots")).0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let work = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "/tmp/lumina-bench-small".into());
    let work = Path::new(&work);
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("workdir");
    let db = work.join("app.db");
    let repo_path = work.join("repo");
    // ~4 MB: 4,000 photos of the sample schema.
    lumina_backup::create_lumina_db(&db, 4_000, 5).expect("db");
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let db_size = std::fs::metadata(&db).expect("db").len();
    eprintln!("database {db_size} B; {n} snapshots");

    Repository::init(&repo_path).expect("init");
    let mut repo = Repository::open(&repo_path, &OpenOptions::default()).expect("open");
    let opts = SnapshotOptions {
        no_exports: std::env::var_os("SMALL_EXPORTS").is_none(),
        ..Default::default()
    };
    let max: i64 = conn
        .query_row("SELECT max(rowid) FROM metadata", [], |r| r.get(0))
        .expect("rows");
    let mut rng = lumina_backup::SampleRng::new(42);
    repo.snapshot(&db, &opts, &NoProgress).expect("snapshot");
    let first = sizes(&repo_path);
    let t = Instant::now();
    for i in 1..n {
        let rowid = 1 + rng.below(max as u64) as i64;
        conn.execute(
            "UPDATE metadata SET colorTag = ?1, lastModified = lastModified + 1 WHERE rowid = ?2",
            rusqlite::params![format!("bench-{i}"), rowid],
        )
        .expect("update");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        repo.snapshot(&db, &opts, &NoProgress).expect("snapshot");
        if i % 500 == 0 {
            eprintln!("{i} snapshots in {:.1?}", t.elapsed());
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let before = sizes(&repo_path);
    let t = Instant::now();
    let report = repo.prune(10.0, &NoProgress).expect("prune");
    let prune_secs = t.elapsed().as_secs_f64();
    drop(repo);
    let after = sizes(&repo_path);
    let k = (n.max(2) - 1) as f64;
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / k;
    println!("| {n} snapshots of a {db_size} B database, one row changed | packs | index | records | total | pack files |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, s: Sizes| {
        println!(
            "| {name} | {:.0} B/snap | {:.0} B/snap | {:.0} B/snap | {:.0} B/snap | {} |",
            per(s.packs, first.packs),
            per(s.index, first.index),
            per(s.records, first.records),
            per(
                s.packs + s.index + s.records,
                first.packs + first.index + first.records
            ),
            s.pack_files
        )
    };
    row("after the snapshots", before);
    row("after prune", after);
    println!(
        "\nfirst snapshot: packs {} B, index {} B; totals before prune: packs {} B, index {} B, records {} B; \
         {:.1} ms per snapshot; prune {prune_secs:.1} s ({} packs repacked into {})",
        first.packs,
        first.index,
        before.packs,
        before.index,
        before.records,
        secs * 1000.0 / k,
        report.packs_repacked,
        report.packs_written
    );
}
