//! Prune benchmark (issue #5): a repository with many snapshots of a generated
//! Lumina database, 95% of them forgotten, then `prune` timed with its peak RSS.
//!
//! ```text
//! cargo bench --bench prune -- [ITEMS] [SNAPSHOTS] [WORKDIR]   (default 25000 500 /tmp/lumina-bench-prune)
//! ```
//!
//! The database is `lumina_backup::create_lumina_db(ITEMS, seed 5)`; the
//! snapshots are taken in-process through the library (with the JSON exports, as
//! the CLI does), each after 20 `metadata` rows changed. Then the CLI runs, each
//! under `/usr/bin/time -f '%e %M'` (wall seconds, peak RSS KiB):
//! `forget --keep-last N/20` (keeps 5%), `prune --dry-run`, `prune` (default
//! `--max-unused 10`), and
//! `verify --read-data` on the result (a sanity check, also timed). Prints one
//! Markdown table. `LUMINA_BIN` overrides the binary; `PRUNE_DB=PATH` starts from a
//! copy of that database instead of a generated one; `PRUNE_NO_EXPORTS=1` takes
//! image-only snapshots.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use lumina_backup::{NoProgress, OpenOptions, Repository, SnapshotOptions};

fn du(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let items: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(25_000);
    let snapshots: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let work = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "/tmp/lumina-bench-prune".into()),
    );
    let bin = std::env::var_os("LUMINA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lumina-backup")));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("workdir");
    let db = work.join("lumina.db");
    let repo_path = work.join("repo");

    let t = Instant::now();
    // PRUNE_DB=PATH starts from a copy of an existing Lumina database (the 1 GB
    // benchmark state s0-500000.db) instead of a generated one.
    match std::env::var_os("PRUNE_DB") {
        Some(src) => {
            std::fs::copy(&src, &db).expect("copying PRUNE_DB");
        }
        None => lumina_backup::create_lumina_db(&db, items, 5).expect("generating the db"),
    }
    let db_size = std::fs::metadata(&db).expect("db").len();
    eprintln!(
        "generated {} ({items} items) in {:.1?}",
        mib(db_size),
        t.elapsed()
    );

    Repository::init(&repo_path).expect("init");
    let t = Instant::now();
    {
        let mut repo = Repository::open(&repo_path, &OpenOptions::default()).expect("open");
        let conn = rusqlite::Connection::open(&db).expect("db");
        let max: i64 = conn
            .query_row("SELECT max(rowid) FROM metadata", [], |r| r.get(0))
            .expect("rows");
        let mut rng = lumina_backup::SampleRng::new(42);
        for i in 0..snapshots {
            if i > 0 {
                for k in 0..20 {
                    let rowid = 1 + rng.below(max as u64) as i64;
                    conn.execute(
                        "UPDATE metadata SET colorTag = ?1, lastModified = lastModified + 1 WHERE rowid = ?2",
                        rusqlite::params![format!("bench-{i}-{k}"), rowid],
                    )
                    .expect("update");
                }
            }
            // PRUNE_NO_EXPORTS=1: image-only snapshots (what makes 500 snapshots of
            // the 1 GB database take minutes rather than hours).
            let opts = SnapshotOptions {
                no_exports: std::env::var_os("PRUNE_NO_EXPORTS").is_some(),
                ..Default::default()
            };
            repo.snapshot(&db, &opts, &NoProgress).expect("snapshot");
            if (i + 1) % 50 == 0 {
                eprintln!("{} snapshots in {:.1?}", i + 1, t.elapsed());
            }
        }
    }
    let build_secs = t.elapsed().as_secs_f64();
    let packs_dir = repo_path.join("packs");
    let before = du(&packs_dir);
    let before_all = du(&repo_path);

    let keep = (snapshots / 20).max(1).to_string();
    let (f_secs, f_rss, _) = common::timed(&bin, &repo_path, &["forget", "--keep-last", &keep]);
    let (d_secs, d_rss, _) = common::timed(&bin, &repo_path, &["prune", "--dry-run"]);
    let (p_secs, p_rss, p_out) = common::timed(&bin, &repo_path, &["prune"]);
    let report: serde_json::Value = serde_json::from_str(&p_out).expect("prune json");
    let after = du(&packs_dir);
    let after_all = du(&repo_path);
    let (v_secs, v_rss, _) = common::timed(&bin, &repo_path, &["verify", "--read-data"]);

    println!(
        "database: {} ({items} items), {snapshots} snapshots (built in {build_secs:.0} s), kept {keep}",
        mib(db_size)
    );
    println!();
    println!("| step | wall time | peak RSS | result |");
    println!("|---|---|---|---|");
    println!(
        "| `forget --keep-last {keep}` | {f_secs:.2} s | {:.1} MiB | {} snapshots removed |",
        f_rss as f64 / 1024.0,
        snapshots - keep.parse::<usize>().expect("n")
    );
    println!(
        "| `prune --dry-run` (mark and plan only) | {d_secs:.2} s | {:.1} MiB | |",
        d_rss as f64 / 1024.0
    );
    println!(
        "| `prune` | {p_secs:.2} s | {:.1} MiB | packs {} → {} ({} of {} deleted, {} repacked into {}), {} referenced chunks, freed {}, rewrote {} |",
        p_rss as f64 / 1024.0,
        mib(before),
        mib(after),
        report["packs_deleted"],
        report["packs_before"],
        report["packs_repacked"],
        report["packs_written"],
        report["chunks_referenced"],
        mib(report["bytes_freed"].as_u64().unwrap_or(0)),
        mib(report["bytes_rewritten"].as_u64().unwrap_or(0)),
    );
    println!(
        "| `verify --read-data` after | {v_secs:.2} s | {:.1} MiB | ok |",
        v_rss as f64 / 1024.0
    );
    println!();
    println!(
        "repository folder (with index): {} before, {} after",
        mib(before_all),
        mib(after_all)
    );
}
