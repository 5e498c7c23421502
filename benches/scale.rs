//! Scale benchmark (issue #10 item 9): time grows with the database, not with
//! the history, and peak RSS stays under 100 MiB.
//!
//! ```text
//! cargo bench --bench scale -- history [N] [WORKDIR]      (default 1000 /tmp/lumina-bench-scale)
//! cargo bench --bench scale -- big PHOTOS [WORKDIR]        (gen_realapp.py --photos PHOTOS)
//! ```
//!
//! `history`: a small generated Lumina database (`create_lumina_db(500, seed 5)`)
//! gets N snapshots, each after one row changed, taken in-process through the
//! library (with the JSON exports, as the CLI does). At N = 10, 100, 1000 (those
//! not above N) the CLI runs under `/usr/bin/time -f '%e %M'` (wall seconds, peak
//! RSS KiB): `snapshots` (open + list), a snapshot after one row changed, and a
//! snapshot of the unchanged database. Prints one Markdown table.
//!
//! `big`: `gen_realapp.py create --photos PHOTOS --journal delete` (the real
//! app's rollback mode; `SCALE_GEN` overrides the script's path), then through
//! the CLI: the full default snapshot, `gen_realapp.py edit` (100 edits) and the
//! incremental snapshot, an unchanged snapshot, and `restore` of the last one,
//! each with its wall time and the child's peak RSS. `LUMINA_BIN` overrides the
//! binary. Machine load matters: run it alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lumina_backup::{NoProgress, OpenOptions, Repository, SnapshotOptions};

/// Runs the CLI under GNU time; returns (wall s, peak RSS KiB).
fn timed(bin: &Path, repo: &Path, args: &[&str]) -> (f64, u64) {
    let (secs, rss, _) = common::timed(bin, repo, args);
    (secs, rss)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn touch_row(db: &Path, i: usize) {
    let conn = rusqlite::Connection::open(db).expect("db");
    conn.execute(
        "UPDATE metadata SET colorTag = ?1 WHERE rowid = (SELECT min(rowid) FROM metadata)",
        [format!("scale-{i}")],
    )
    .expect("update");
}

fn history(bin: &Path, n: usize, work: &Path) {
    let db = work.join("small.db");
    let repo_path = work.join("repo");
    lumina_backup::create_lumina_db(&db, 500, 5).expect("generating the db");
    Repository::init(&repo_path).expect("init");
    let db_str = db.to_str().expect("utf-8 path");
    println!("| snapshots | open + list | RSS | snapshot (1 row) | RSS | unchanged | RSS |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let marks: Vec<usize> = [10, 100, 1000, n].into_iter().filter(|m| *m <= n).collect();
    let mut taken = 0;
    let start = Instant::now();
    for &mark in &marks {
        if mark <= taken {
            continue;
        }
        {
            let mut repo = Repository::open(&repo_path, &OpenOptions::default()).expect("open");
            while taken < mark {
                touch_row(&db, taken);
                repo.snapshot(&db, &SnapshotOptions::default(), &NoProgress)
                    .expect("snapshot");
                taken += 1;
            }
        }
        eprintln!("{taken} snapshots in {:.1?}", start.elapsed());
        let (l_s, l_rss) = timed(bin, &repo_path, &["snapshots"]);
        touch_row(&db, taken);
        let (s_s, s_rss) = timed(bin, &repo_path, &["snapshot", db_str]);
        let (u_s, u_rss) = timed(bin, &repo_path, &["snapshot", db_str]);
        taken += 2;
        println!(
            "| {mark} | {l_s:.2} s | {} | {s_s:.2} s | {} | {u_s:.2} s | {} |",
            mib(l_rss),
            mib(s_rss),
            mib(u_rss)
        );
    }
}

fn big(bin: &Path, photos: u64, work: &Path) {
    let gen = std::env::var_os("SCALE_GEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // `../shared` beside the main checkout; a worktree sits one level deeper.
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let near = root.join("../shared/bench/gen_realapp.py");
            if near.exists() {
                near
            } else {
                root.join("../../shared/bench/gen_realapp.py")
            }
        });
    let db = work.join("realapp.db");
    let repo_path = work.join("repo");
    let t = Instant::now();
    let ok = Command::new("python3")
        .arg(&gen)
        .args([
            "create",
            "--photos",
            &photos.to_string(),
            "--journal",
            "delete",
        ])
        .arg("--out")
        .arg(&db)
        .status()
        .expect("running gen_realapp.py")
        .success();
    assert!(ok, "gen_realapp.py create failed");
    let size = std::fs::metadata(&db).expect("db").len();
    eprintln!(
        "generated {} ({photos} photos) in {:.1?}",
        mib(size / 1024),
        t.elapsed()
    );
    Repository::init(&repo_path).expect("init");
    let db_str = db.to_str().expect("utf-8 path");
    println!(
        "| {} ({photos} photos) | wall | peak RSS |",
        mib(size / 1024)
    );
    println!("|---|---:|---:|");
    let row = |what: &str, (s, rss): (f64, u64)| println!("| {what} | {s:.2} s | {} |", mib(rss));
    row(
        "full snapshot",
        timed(bin, &repo_path, &["snapshot", db_str]),
    );
    let ok = Command::new("python3")
        .arg(&gen)
        .args(["edit"])
        .arg(&db)
        .args(["--edits", "100"])
        .status()
        .expect("running gen_realapp.py edit")
        .success();
    assert!(ok, "gen_realapp.py edit failed");
    row(
        "incremental (100 edits)",
        timed(bin, &repo_path, &["snapshot", db_str]),
    );
    row("unchanged", timed(bin, &repo_path, &["snapshot", db_str]));
    let out = work.join("restored.db");
    let out_str = out.to_str().expect("utf-8 path");
    row(
        "restore",
        timed(bin, &repo_path, &["restore", "latest", "--to", out_str]),
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let bin = std::env::var_os("LUMINA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lumina-backup")));
    let mode = args.first().map(String::as_str).unwrap_or("history");
    let work = |i: usize| {
        let w = PathBuf::from(
            args.get(i)
                .cloned()
                .unwrap_or_else(|| "/tmp/lumina-bench-scale".into()),
        );
        let _ = std::fs::remove_dir_all(&w);
        std::fs::create_dir_all(&w).expect("workdir");
        w
    };
    match mode {
        "history" => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
            history(&bin, n, &work(2));
        }
        "big" => {
            let photos = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .expect("big PHOTOS [WORKDIR]");
            big(&bin, photos, &work(2));
        }
        other => panic!("unknown mode {other}: history [N] [WORKDIR] | big PHOTOS [WORKDIR]"),
    }
}
