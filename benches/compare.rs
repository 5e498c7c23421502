//! End-to-end comparison of lumina-backup with restic, borg, `sqlite3 .backup` and
//! `b3sum` on the same generated Lumina database states, in one run.
//!
//! ```text
//! cargo bench --bench compare -- [ITEMS] [WORKDIR]      (default 500000 /tmp/lumina-bench)
//! ```
//!
//! Two workloads (`LUMINA_BENCH_WORKLOAD`):
//! * `seed` (default): states built exactly like `../shared/bench/baseline.sh` (and
//!   reused when they exist): S0 = `gen_db.py --items ITEMS` (WAL mode, the seed
//!   schema); S1 = S0 + 1,000 updates + 1,000 inserts (seed 11); S2 = S1 + 100
//!   updates (seed 12).
//! * `realapp`: the shipping app's schema in rollback-journal mode:
//!   S0 = `gen_realapp.py create --photos ITEMS --journal delete`; S1 = S0 + 1,000
//!   photo edits (`gen_realapp.py edit --edits 1000 --seed 11`, the app's own
//!   `INSERT OR REPLACE` pattern); S2 = S1 + 100 edits (seed 12).
//!
//! Every backup step copies the state to the same "live" path (so incremental tools find their parent), reads it once to
//! warm the page cache and `sync`s (so no step pays for earlier writeback), then
//! runs the tool under `/usr/bin/time -f '%e %M'` (wall seconds, peak RSS).
//! "bytes added" is the growth of the repository folder (`du -sb`, so lumina's
//! redb index counts); for lumina its own `new_bytes` from `snapshot --json`
//! (packs only) is given too.
//!
//! Prints one Markdown table and a ratio section against the targets of issues #2
//! and #10; writes the raw CSV to `benches/results/<date>-<workload>-<items>.csv`
//! (override with `LUMINA_BENCH_CSV`) and the Markdown to
//! `WORKDIR/compare-<workload>-<items>.md`.
//!
//! Environment:
//! * `LUMINA_BIN`: the lumina-backup binary (default: the one cargo built for this
//!   bench, i.e. `target/release/lumina-backup`).
//! * `LUMINA_BENCH_SHARED`: folder with gen_db.py, mutate_db.py, page_diff.py
//!   (default `../shared/bench` next to the crate).
//! * `LUMINA_BENCH_TOOLS`: comma list of
//!   `lumina,lumina-noexp,lumina-enc,stall,restic,borg,misc` (default all) to run a
//!   subset while developing (`stall`: `app_stall.py` on a copy of S0 in
//!   rollback-journal mode while three default snapshots run).
//!
//! Needs restic, borgbackup, sqlite3, b3sum, zstd and GNU time on PATH.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One measured operation.
#[derive(Clone, Debug)]
struct Row {
    tool: String,
    op: String,
    wall: f64,
    /// MB (1e6) processed, for MB/s; 0 = not meaningful.
    mb: f64,
    rss_kib: u64,
    /// Growth of the repository folder, if this step writes to one.
    added: Option<i64>,
    /// lumina's own new_bytes, if reported.
    new_bytes: Option<u64>,
    /// Extra figure (integrity_check seconds, compressed size, ...).
    note: String,
    load: String,
}

struct Bench {
    work: PathBuf,
    live: PathBuf,
    rows: Vec<Row>,
    warnings: Vec<String>,
}

fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    if !out.status.success() {
        panic!("command failed ({}): {cmd}", out.status);
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn tool_version(cmd: &str) -> String {
    Command::new("bash")
        .arg("-c")
        .arg(format!("{cmd} 2>&1 | head -1"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn du(path: &Path) -> i64 {
    if !path.exists() {
        return 0;
    }
    sh(&format!("du -sb '{}' | cut -f1", path.display()))
        .parse()
        .unwrap_or(0)
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Reads `path` once (page cache warm, like baseline.sh) and flushes dirty pages
/// left by earlier steps, so no step pays for another's writeback when it fsyncs.
fn warm(path: &Path) {
    sh(&format!("cat '{}' >/dev/null; sync", path.display()));
}

impl Bench {
    /// Runs `argv` (through bash if `shell`) under GNU time; returns (wall, rss KiB, stdout).
    fn timed(&self, cmd: &str, cwd: Option<&Path>) -> (f64, u64, String) {
        let tfile = self.work.join(".t");
        let _ = fs::remove_file(&tfile);
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f")
            .arg("%e %M")
            .arg("-o")
            .arg(&tfile)
            .arg("bash")
            .arg("-c")
            .arg(cmd);
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        let out = c
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
        if !out.status.success() {
            panic!(
                "command failed ({}): {cmd}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let t = fs::read_to_string(&tfile).expect("time output");
        let last = t.lines().last().unwrap_or("0 0");
        let mut it = last.split_whitespace();
        let wall: f64 = it.next().unwrap_or("0").parse().unwrap_or(0.0);
        let rss: u64 = it.next().unwrap_or("0").parse().unwrap_or(0);
        (wall, rss, String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn push(&mut self, row: Row) {
        eprintln!(
            "  {:<22} {:<16} {:>7.2} s  {:>6} MiB  added {:>12}  {}  load {}",
            row.tool,
            row.op,
            row.wall,
            row.rss_kib / 1024,
            row.added.map(|a| a.to_string()).unwrap_or("-".into()),
            row.note,
            row.load
        );
        self.rows.push(row);
    }

    /// The four backup steps (full, 1k+1k, 100, unchanged) and a restore for one tool.
    /// `backup(k)` and `restore` are shell commands; `restored` finds the restored file.
    #[allow(clippy::too_many_arguments)] // one call per tool; a struct would only rename them
    fn run_backup_tool(
        &mut self,
        name: &str,
        repo: &Path,
        init: &str,
        backup: &dyn Fn(usize) -> String,
        restore: &str,
        restore_dir: &Path,
        states: &[PathBuf; 3],
        parse_new_bytes: bool,
    ) {
        eprintln!("== {name}");
        let _ = fs::remove_dir_all(repo);
        // lumina's kept copy (XDG_CACHE_HOME points here): each tool's full
        // snapshot starts without one, as a first snapshot does.
        let _ = fs::remove_dir_all(self.work.join("cache"));
        let _ = fs::remove_dir_all(self.live.parent().unwrap());
        let _ = fs::remove_dir_all(restore_dir);
        fs::create_dir_all(self.live.parent().unwrap()).unwrap();
        fs::create_dir_all(restore_dir).unwrap();
        sh(&format!("{init} >/dev/null"));
        let steps: [(&str, Option<&PathBuf>); 4] = [
            ("full", Some(&states[0])),
            ("incr 1k+1k", Some(&states[1])),
            ("incr 100", Some(&states[2])),
            ("unchanged", None),
        ];
        for (k, (label, state)) in steps.iter().enumerate() {
            if let Some(state) = state {
                fs::copy(state, &self.live).expect("copy state to live");
            }
            warm(&self.live);
            let before = du(repo);
            let load = loadavg();
            let (wall, rss, out) = self.timed(&backup(k + 1), None);
            let added = du(repo) - before;
            let new_bytes = if parse_new_bytes {
                serde_json::from_str::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|v| v["new_bytes"].as_u64())
            } else {
                None
            };
            let mb = fs::metadata(&self.live).unwrap().len() as f64 / 1e6;
            // lumina's redb index is part of the repository growth: show its size.
            let note = fs::metadata(repo.join("index.redb"))
                .map(|m| format!("index.redb {} B", m.len()))
                .unwrap_or_default();
            self.push(Row {
                tool: name.into(),
                op: label.to_string(),
                wall,
                mb,
                rss_kib: rss,
                added: Some(added),
                new_bytes,
                note,
                load,
            });
        }
        sh("sync");
        let load = loadavg();
        let (wall, rss, out) = self.timed(restore, Some(restore_dir));
        let mut note = String::new();
        if parse_new_bytes {
            if let Some(ic) = serde_json::from_str::<serde_json::Value>(&out)
                .ok()
                .and_then(|v| v["integrity_check_secs"].as_f64())
            {
                note = format!("check {ic:.2} s");
            }
        }
        let got = sh(&format!(
            "find '{}' -name lumina.db -type f | head -1",
            restore_dir.display()
        ));
        let same = !got.is_empty()
            && Command::new("cmp")
                .arg("-s")
                .arg(&got)
                .arg(&states[2])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if !same {
            self.warnings
                .push(format!("{name}: restored file {got:?} differs from S2"));
        }
        let restored_note = if same { "equals S2" } else { "DIFFERS from S2" };
        note = if note.is_empty() {
            restored_note.to_string()
        } else {
            format!("{note}; {restored_note}")
        };
        let mb = fs::metadata(&states[2]).unwrap().len() as f64 / 1e6;
        self.push(Row {
            tool: name.into(),
            op: "restore latest".into(),
            wall,
            mb,
            rss_kib: rss,
            added: None,
            new_bytes: None,
            note,
            load,
        });
        let _ = fs::remove_dir_all(restore_dir);
    }

    fn simple(&mut self, tool: &str, op: &str, cmd: &str, mb: f64, note: String) {
        warm(&self.live);
        let load = loadavg();
        let (wall, rss, _) = self.timed(cmd, None);
        self.push(Row {
            tool: tool.into(),
            op: op.into(),
            wall,
            mb,
            rss_kib: rss,
            added: None,
            new_bytes: None,
            note,
            load,
        });
    }

    fn get(&self, tool: &str, op: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.tool == tool && r.op == op)
    }
}

fn parse_page_diff(s: &str) -> BTreeMap<String, u64> {
    s.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn main() {
    // cargo bench appends `--bench`; ignore flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let items: u64 = args
        .first()
        .map(|s| s.parse().expect("ITEMS"))
        .unwrap_or(500_000);
    let work = PathBuf::from(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("/tmp/lumina-bench"),
    );
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("LUMINA_BENCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join("../shared/bench"));
    let bin = std::env::var_os("LUMINA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lumina-backup")));
    let tools: Vec<String> = std::env::var("LUMINA_BENCH_TOOLS")
        .unwrap_or_else(|_| "lumina,lumina-noexp,lumina-enc,stall,restic,borg,misc".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let want = |t: &str| tools.iter().any(|x| x == t);
    assert!(
        bin.exists(),
        "{} missing: cargo build --release",
        bin.display()
    );
    fs::create_dir_all(&work).unwrap();
    let work = fs::canonicalize(&work).unwrap();

    let workload = std::env::var("LUMINA_BENCH_WORKLOAD").unwrap_or_else(|_| "seed".into());
    assert!(
        workload == "seed" || workload == "realapp",
        "LUMINA_BENCH_WORKLOAD is seed or realapp"
    );
    let realapp = workload == "realapp";
    let s = |k: u32| {
        if realapp {
            work.join(format!("realapp-s{k}-{items}.db"))
        } else {
            work.join(format!("s{k}-{items}.db"))
        }
    };
    let states = [s(0), s(1), s(2)];
    let py = |script: &str| shared.join(script).display().to_string();
    if realapp {
        // ---- the shipping app's schema, rollback journal, the app's edit pattern
        if !states[0].exists() {
            eprintln!("generating S0 ({items} photos, rollback journal)...");
            sh(&format!(
                "python3 '{}' create --photos {items} --journal delete --out '{}' >/dev/null",
                py("gen_realapp.py"),
                states[0].display()
            ));
        }
        for (k, edits, seed) in [(1usize, 1000, 11), (2, 100, 12)] {
            if !states[k].exists() {
                fs::copy(&states[k - 1], &states[k]).unwrap();
                sh(&format!(
                    "python3 '{}' edit '{}' --edits {edits} --seed {seed} >/dev/null",
                    py("gen_realapp.py"),
                    states[k].display()
                ));
            }
        }
    }
    // ---- seed states, exactly like baseline.sh
    if !states[0].exists() {
        eprintln!("generating S0 ({items} items)...");
        sh(&format!(
            "python3 '{}' --items {items} --out '{}' >/dev/null",
            py("gen_db.py"),
            states[0].display()
        ));
    }
    if !states[1].exists() {
        fs::copy(&states[0], &states[1]).unwrap();
        sh(&format!(
            "python3 '{}' '{}' --updates 1000 --inserts 1000 --seed 11 >/dev/null",
            py("mutate_db.py"),
            states[1].display()
        ));
    }
    if !states[2].exists() {
        fs::copy(&states[1], &states[2]).unwrap();
        sh(&format!(
            "python3 '{}' '{}' --updates 100 --inserts 0 --seed 12 >/dev/null",
            py("mutate_db.py"),
            states[2].display()
        ));
    }
    let size0 = fs::metadata(&states[0]).unwrap().len();
    let mb0 = size0 as f64 / 1e6;
    let diff01 = sh(&format!(
        "python3 '{}' '{}' '{}'",
        py("page_diff.py"),
        states[0].display(),
        states[1].display()
    ));
    let diff12 = sh(&format!(
        "python3 '{}' '{}' '{}'",
        py("page_diff.py"),
        states[1].display(),
        states[2].display()
    ));
    let d01 = parse_page_diff(&diff01)["bytes_changed_deflated"];
    let d12 = parse_page_diff(&diff12)["bytes_changed_deflated"];

    let date = sh("date -u +%F");
    let mut head = String::new();
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'");
    let mem = sh("free -g | awk '/Mem:/{print $2}'");
    writeln!(
        head,
        "database: {workload} workload, {items} {}, {size0} bytes; {} cores ({cpu}), {mem} GiB RAM; {date}",
        if realapp { "photos" } else { "items" },
        sh("nproc")
    )
    .unwrap();
    writeln!(head, "load average at start: {}", loadavg()).unwrap();
    writeln!(
        head,
        "lumina-backup: {} ({})",
        bin.display(),
        tool_version(&format!("'{}' --version", bin.display()))
    )
    .unwrap();
    writeln!(
        head,
        "source tree: {}",
        sh(&format!(
            "cd '{}' && git describe --always --dirty 2>/dev/null || echo unknown",
            crate_dir.display()
        ))
    )
    .unwrap();
    for v in [
        "restic version",
        "borg --version",
        "sqlite3 --version",
        "b3sum --version",
        "zstd --version",
    ] {
        writeln!(head, "{v}: {}", tool_version(v)).unwrap();
    }
    writeln!(head, "changed pages S0->S1: {diff01}").unwrap();
    writeln!(head, "changed pages S1->S2: {diff12}").unwrap();
    eprint!("{head}");

    let live = work.join("live/lumina.db");
    let mut b = Bench {
        work: work.clone(),
        live: live.clone(),
        rows: Vec::new(),
        warnings: Vec::new(),
    };
    let restore_dir = work.join("restore");
    let lb = bin.display().to_string();
    let live_s = live.display().to_string();

    // ---- lumina-backup (CLI, as shipped), and the image-only variant when the CLI has it
    let has_no_exports = sh(&format!("'{lb}' snapshot --help")).contains("--no-exports");
    let mut variants: Vec<(&str, &str)> = Vec::new();
    // Encrypted repositories read their passphrase from here (plain ones ignore it).
    std::env::set_var("LUMINA_BACKUP_PASSWORD", "bench passphrase");
    // lumina's staged and kept copies go here (emptied before each tool's run).
    std::env::set_var("XDG_CACHE_HOME", work.join("cache"));
    if want("lumina") {
        variants.push(("lumina-backup", ""));
    }
    if want("lumina-noexp") {
        if has_no_exports {
            variants.push(("lumina-backup --no-exports", "--no-exports"));
            if want("lumina-enc") {
                variants.push(("lumina-backup --no-exports (encrypted)", "--no-exports"));
            }
        } else {
            b.warnings
                .push("the CLI has no --no-exports flag: image-only variant not measured".into());
        }
    }
    for (name, flag) in variants {
        let repo = work.join("lumina-repo");
        let repo_s = repo.display().to_string();
        let flag = flag.to_string();
        let init_flag = if name.contains("encrypted") {
            "--encrypt"
        } else {
            ""
        };
        let backup = |_k: usize| {
            format!("'{lb}' --repo '{repo_s}' --quiet --json snapshot {flag} '{live_s}'")
        };
        b.run_backup_tool(
            name,
            &repo,
            &format!("'{lb}' --repo '{repo_s}' --quiet init {init_flag}"),
            &backup,
            &format!(
                "'{lb}' --repo '{repo_s}' --quiet --json restore latest --to '{}'",
                restore_dir.join("lumina.db").display()
            ),
            &restore_dir,
            &states,
            true,
        );
        if name == "lumina-backup" {
            // Issue #4: diff of the snapshots of S0 and S1 (1,000 updates + 1,000
            // inserts), against sqlite3 reading the four tables of both in key order.
            let list: serde_json::Value =
                serde_json::from_str(&sh(&format!("'{lb}' --repo '{repo_s}' --json snapshots")))
                    .unwrap_or_default();
            let id = |i: usize| list[i]["id"].as_str().unwrap_or("").to_string();
            b.simple(
                name,
                "diff S0 S1",
                &format!(
                    "'{lb}' --repo '{repo_s}' --quiet --json diff {} {} >/dev/null",
                    id(0),
                    id(1)
                ),
                0.0,
                String::new(),
            );
            // Issue #10: diff after 100 updates (S1 -> S2) within 0.5 s.
            b.simple(
                name,
                "diff S1 S2",
                &format!(
                    "'{lb}' --repo '{repo_s}' --quiet --json diff {} {} >/dev/null",
                    id(1),
                    id(2)
                ),
                0.0,
                String::new(),
            );
            if !realapp {
                let q = "SELECT * FROM collections ORDER BY id; SELECT * FROM tags ORDER BY id; SELECT * FROM metadata ORDER BY id; SELECT * FROM item_tags ORDER BY itemId, tagId;";
                let read =
                    |s: &PathBuf| format!("sqlite3 -readonly '{}' '{q}' >/dev/null", s.display());
                b.simple(
                    "sqlite3",
                    "read S0+S1 tables in key order",
                    &format!("{} && {}", read(&states[0]), read(&states[1])),
                    0.0,
                    String::new(),
                );
            }
        }
        if name.contains("encrypted") {
            // Opening an encrypted repository runs Argon2id once; `snapshots` does
            // little else, so its wall time is the unlock time (plus a listing).
            b.simple(
                name,
                "unlock (Argon2id) + list",
                &format!("'{lb}' --repo '{repo_s}' --quiet snapshots"),
                0.0,
                String::new(),
            );
        }
        let _ = fs::remove_dir_all(&repo);
    }

    // ---- the app's stall while default snapshots run back to back (issue #10):
    // app_stall.py converts a copy of S0 to rollback-journal mode, commits a small
    // edit every 50 ms with a 5 s busy timeout, and runs three snapshots.
    if want("lumina") && want("stall") {
        eprintln!("== app stall");
        let dir = work.join("stall");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let db = dir.join("lumina.db");
        fs::copy(&states[0], &db).unwrap();
        let repo = dir.join("repo");
        sh(&format!("'{lb}' --repo '{}' --quiet init", repo.display()));
        warm(&db);
        let load = loadavg();
        let out = sh(&format!(
            "python3 '{}' '{}' --journal delete --rounds 3 --cmd \"'{lb}' --repo '{}' --quiet snapshot '{}'\"",
            py("app_stall.py"),
            db.display(),
            repo.display(),
            db.display()
        ));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let max = v["stall_max"].as_f64().unwrap_or(f64::NAN);
        let snaps: Vec<String> = v["snapshots"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| format!("{} s rc {}", x["s"], x["rc"]))
                    .collect()
            })
            .unwrap_or_default();
        b.push(Row {
            tool: "lumina-backup".into(),
            op: "app stall (max)".into(),
            wall: max,
            mb: 0.0,
            rss_kib: 0,
            added: None,
            new_bytes: None,
            note: format!(
                "app commits {}, failed {}, p50 {} s, p99 {} s; snapshots: {}",
                v["app_commits"],
                v["app_failures"],
                v["stall_p50"],
                v["stall_p99"],
                snaps.join(", ")
            ),
            load,
        });
        if v["app_failures"].as_u64() != Some(0) {
            b.warnings
                .push(format!("app stall: failed app commits: {}", v["failures"]));
        }
        let _ = fs::remove_dir_all(&dir);
    }

    // ---- restic
    if want("restic") {
        let repo = work.join("restic");
        std::env::set_var("RESTIC_PASSWORD", "bench");
        std::env::set_var("RESTIC_CACHE_DIR", work.join("restic-cache"));
        let _ = fs::remove_dir_all(work.join("restic-cache"));
        let r = repo.display().to_string();
        let backup = |_k: usize| format!("restic -r '{r}' backup '{live_s}'");
        b.run_backup_tool(
            "restic",
            &repo,
            &format!("restic init -r '{r}'"),
            &backup,
            &format!(
                "restic -r '{r}' restore latest --target '{}'",
                restore_dir.display()
            ),
            &restore_dir,
            &states,
            false,
        );
        let _ = fs::remove_dir_all(&repo);
    }

    // ---- borg (zstd,3)
    if want("borg") {
        let repo = work.join("borg");
        std::env::set_var("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes");
        std::env::set_var("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
        let r = repo.display().to_string();
        let backup = |k: usize| format!("borg create --compression zstd,3 '{r}::s{k}' '{live_s}'");
        b.run_backup_tool(
            "borg (zstd,3)",
            &repo,
            &format!("borg init --encryption=none '{r}'"),
            &backup,
            &format!("borg extract '{r}::s4'"),
            &restore_dir,
            &states,
            false,
        );
        let _ = fs::remove_dir_all(&repo);
    }

    // ---- SQLite and plain file tools, on S0
    if want("misc") {
        eprintln!("== misc");
        fs::create_dir_all(live.parent().unwrap()).unwrap();
        fs::copy(&states[0], &live).unwrap();
        let copy = work.join("copy.db");
        let _ = fs::remove_file(&copy);
        b.simple(
            "sqlite3",
            ".backup",
            &format!("sqlite3 '{live_s}' \".backup '{}'\"", copy.display()),
            mb0,
            String::new(),
        );
        fs::copy(&states[2], &copy).unwrap();
        for pragma in ["integrity_check", "quick_check"] {
            b.simple(
                "sqlite3",
                &format!("PRAGMA {pragma} (S2)"),
                &format!("sqlite3 '{}' 'PRAGMA {pragma}' >/dev/null", copy.display()),
                mb0,
                String::new(),
            );
        }
        let _ = fs::remove_file(&copy);
        b.simple(
            "cp",
            "copy",
            &format!("cp '{live_s}' '{}'", copy.display()),
            mb0,
            String::new(),
        );
        let _ = fs::remove_file(&copy);
        b.simple(
            "b3sum",
            "hash (1 thread)",
            &format!("b3sum --num-threads 1 '{live_s}'"),
            mb0,
            String::new(),
        );
        b.simple(
            "b3sum",
            "hash (all cores)",
            &format!("b3sum '{live_s}'"),
            mb0,
            String::new(),
        );
        let zsize = sh(&format!("zstd -3 -T0 -c '{live_s}' | wc -c"));
        b.simple(
            "zstd -3 -T0",
            "compress",
            &format!("zstd -3 -T0 -c '{live_s}' >/dev/null"),
            mb0,
            format!("{zsize} B compressed"),
        );
    }
    let _ = fs::remove_dir_all(work.join("live"));

    // ---- report
    let mut md = head.clone();
    md.push('\n');
    md.push_str("| tool | operation | wall s (MB/s) | peak RSS MiB | bytes added | notes |\n|---|---|---|---|---|---|\n");
    for r in &b.rows {
        let speed = if r.mb > 0.0 {
            format!("{:.2} ({:.0})", r.wall, r.mb / r.wall.max(0.001))
        } else {
            format!("{:.2}", r.wall)
        };
        let added = match (r.added, r.new_bytes) {
            (Some(a), Some(n)) => format!("{a} (new_bytes {n})"),
            (Some(a), None) => a.to_string(),
            _ => "-".into(),
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.tool,
            r.op,
            speed,
            r.rss_kib / 1024,
            added,
            r.note
        )
        .unwrap();
    }

    // ---- ratios against issue #2, for every lumina variant measured
    let mut ratios = String::new();
    for l in ["lumina-backup", "lumina-backup --no-exports"] {
        if b.get(l, "full").is_some() {
            targets(&b, l, d01, d12, &mut ratios);
        }
    }
    targets_issue10(&b, d12, &mut ratios);
    // Issue #3: encryption costs at most 15% of full-snapshot throughput, and an
    // unlock (Argon2id with the default parameters) takes 0.2–1 s.
    let enc = "lumina-backup --no-exports (encrypted)";
    if let (Some(plain), Some(sealed)) = (
        b.get("lumina-backup --no-exports", "full"),
        b.get(enc, "full"),
    ) {
        let ratio = sealed.wall / plain.wall.max(0.001);
        writeln!(
            ratios,
            "\n### Targets (issue #3)\n\n| target | measured | result |\n|---|---|---|"
        )
        .unwrap();
        writeln!(
            ratios,
            "| encrypted full snapshot within 15% of unencrypted | {:.2} s vs {:.2} s = {:.2}x | {} |",
            sealed.wall,
            plain.wall,
            ratio,
            if ratio <= 1.15 { "PASS" } else { "MISS" }
        )
        .unwrap();
        if let Some(u) = b.get(enc, "unlock (Argon2id) + list") {
            let ok = (0.2..=1.0).contains(&u.wall);
            writeln!(
                ratios,
                "| unlock takes 0.2–1 s | {:.2} s (whole command) | {} |",
                u.wall,
                if ok { "PASS" } else { "MISS" }
            )
            .unwrap();
        }
    }
    if let (Some(d), Some(s)) = (
        b.get("lumina-backup", "diff S0 S1"),
        b.get("sqlite3", "read S0+S1 tables in key order"),
    ) {
        let ratio = d.wall / s.wall.max(0.001);
        let rss = d.rss_kib / 1024;
        writeln!(
            ratios,
            "\n### Targets (issue #4)\n\n| target | measured | result |\n|---|---|---|"
        )
        .unwrap();
        writeln!(ratios, "| diff within 2x sqlite3 reading both in key order | {:.2} s vs {:.2} s = {ratio:.2}x | {} |", d.wall, s.wall, if ratio <= 2.0 { "PASS" } else { "MISS" }).unwrap();
        writeln!(
            ratios,
            "| diff peak RSS < 256 MiB | {rss} MiB | {} |",
            if rss < 256 { "PASS" } else { "MISS" }
        )
        .unwrap();
    }
    md.push_str(&ratios);
    if !b.warnings.is_empty() {
        md.push_str("\nWarnings:\n");
        for w in &b.warnings {
            writeln!(md, "- {w}").unwrap();
        }
    }
    print!("{md}");
    fs::write(work.join(format!("compare-{workload}-{items}.md")), &md).unwrap();

    // ---- CSV
    let csv_path = std::env::var_os("LUMINA_BENCH_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate_dir.join(format!("benches/results/{date}-{workload}-{items}.csv"))
        });
    if let Some(d) = csv_path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    let mut csv = String::from("date,items,tool,operation,wall_s,mb,mb_per_s,peak_rss_kib,bytes_added,new_bytes,note,loadavg\n");
    for r in &b.rows {
        writeln!(
            csv,
            "{date},{items},\"{}\",\"{}\",{:.2},{:.1},{:.1},{},{},{},\"{}\",\"{}\"",
            r.tool,
            r.op,
            r.wall,
            r.mb,
            if r.mb > 0.0 {
                r.mb / r.wall.max(0.001)
            } else {
                0.0
            },
            r.rss_kib,
            r.added.map(|a| a.to_string()).unwrap_or_default(),
            r.new_bytes.map(|a| a.to_string()).unwrap_or_default(),
            r.note,
            r.load
        )
        .unwrap();
    }
    fs::write(&csv_path, csv).unwrap();
    eprintln!("CSV: {}", csv_path.display());
}

/// The head of a targets table; rows by [`target_row`].
const TARGETS_HEADER: &str = "| target | measured | limit | result |\n|---|---|---|---|";

/// One row of a targets table: PASS when `ok`, else MISS.
/// `X s = Rx WHAT (Y s)`: a time against another tool's in the same run.
fn time_vs(x: &Row, r: &Row, what: &str) -> String {
    format!(
        "{:.2} s = {:.2}x {what} ({:.2} s)",
        x.wall,
        x.wall / r.wall.max(0.01),
        r.wall
    )
}

/// The peak RSS of `tool` over all its steps (which step), and whether it is
/// within 100 MiB.
fn peak_rss(b: &Bench, tool: &str) -> Option<(String, bool)> {
    let top = b
        .rows
        .iter()
        .filter(|r| r.tool == tool)
        .max_by_key(|r| r.rss_kib)?;
    Some((
        format!("{} MiB ({})", top.rss_kib / 1024, top.op),
        top.rss_kib <= 100 * 1024,
    ))
}

fn target_row(out: &mut String, name: &str, measured: String, limit: String, ok: bool) {
    let res = if ok { "PASS" } else { "MISS" };
    writeln!(out, "| {name} | {measured} | {limit} | {res} |").unwrap();
}

/// One table of the issue #2 targets for the lumina variant `l`. Bytes are judged
/// on the growth of the repository folder; the packs alone (`new_bytes`) are shown
/// in brackets with their own verdict.
fn targets(b: &Bench, l: &str, d01: u64, d12: u64, out: &mut String) {
    writeln!(out, "\n### Targets (issue #2) for `{l}`\n").unwrap();
    writeln!(
        out,
        "Bytes: growth of the whole repository folder (packs + snapshot record + redb index); \
         in brackets the packs alone (`new_bytes`) and their own verdict.\n"
    )
    .unwrap();
    writeln!(out, "{TARGETS_HEADER}").unwrap();
    let mut check = |name: &str, measured: String, limit: String, ok: bool| {
        target_row(out, name, measured, limit, ok)
    };
    let verdict = |ok: bool| if ok { "pass" } else { "miss" };
    let lum = |op: &str| b.get(l, op).cloned();
    let res = |op: &str| b.get("restic", op).cloned();
    if let (Some(x), Some(r)) = (lum("full"), res("full")) {
        check(
            "full: time ≤ 0.5x restic",
            time_vs(&x, &r, "restic"),
            format!("{:.2} s", 0.5 * r.wall),
            x.wall <= 0.5 * r.wall,
        );
        let (xa, ra) = (x.added.unwrap(), r.added.unwrap());
        let nb = x.new_bytes.unwrap_or(0) as i64;
        check(
            "full: stored ≤ restic",
            format!(
                "{xa} B = {:.3}x restic ({ra} B) [packs {nb} B = {:.3}x: {}]",
                xa as f64 / ra as f64,
                nb as f64 / ra as f64,
                verdict(nb <= ra)
            ),
            format!("{ra} B"),
            xa <= ra,
        );
    }
    for (op, d, restic_factor) in [("incr 1k+1k", d01, Some(0.25)), ("incr 100", d12, None)] {
        let Some(x) = lum(op) else { continue };
        let a = x.added.unwrap().max(0) as u64;
        let nb = x.new_bytes.unwrap_or(0);
        check(
            &format!("{op}: bytes ≤ 2x changed pages deflated"),
            format!(
                "{a} B = {:.2}x deflated ({d} B) [packs {nb} B = {:.2}x: {}]",
                a as f64 / d as f64,
                nb as f64 / d as f64,
                verdict(nb <= 2 * d)
            ),
            format!("{} B", 2 * d),
            a <= 2 * d,
        );
        if let (Some(f), Some(r)) = (restic_factor, res(op)) {
            check(
                &format!("{op}: time ≤ {f}x restic"),
                time_vs(&x, &r, "restic"),
                format!("{:.2} s", f * r.wall),
                x.wall <= f * r.wall,
            );
        }
    }
    if let Some(x) = lum("unchanged") {
        let a = x.added.unwrap();
        let nb = x.new_bytes.unwrap_or(0);
        check(
            "unchanged: adds < 16 KiB",
            format!("{a} B [packs {nb} B: {}]", verdict(nb < 16384)),
            "16384 B".into(),
            a < 16384,
        );
        if let Some(h) = b.get("b3sum", "hash (1 thread)").cloned() {
            check(
                "unchanged: time ≤ b3sum 1 thread",
                time_vs(&x, &h, "b3sum"),
                format!("{:.2} s", h.wall),
                x.wall <= h.wall,
            );
        }
    }
    if let (Some(x), Some(r)) = (lum("restore latest"), res("restore latest")) {
        check(
            "restore (all checksums + integrity_check) ≤ 0.75x restic",
            format!("{}; {}", time_vs(&x, &r, "restic"), x.note),
            format!("{:.2} s", 0.75 * r.wall),
            x.wall <= 0.75 * r.wall,
        );
    }
    if let Some((measured, ok)) = peak_rss(b, l) {
        check("peak RSS ≤ 100 MiB", measured, "100 MiB".into(), ok);
    }
}

/// The targets of issue #10 ("snapshots that cost what changed"), for the default
/// variant (with exports) and the image-only one, against restic in the same run.
fn targets_issue10(b: &Bench, d12: u64, out: &mut String) {
    let def = "lumina-backup";
    let img = "lumina-backup --no-exports";
    if b.get(def, "full").is_none() && b.get(img, "full").is_none() {
        return;
    }
    writeln!(out, "\n### Targets (issue #10)\n\n{TARGETS_HEADER}").unwrap();
    let mut check = |name: &str, measured: String, limit: String, ok: bool| {
        target_row(out, name, measured, limit, ok)
    };
    let res = |op: &str| b.get("restic", op).cloned();
    // Time ratios against restic.
    for (l, op, f, what) in [
        (img, "full", 0.6, "full, image only"),
        (def, "full", 1.2, "full, with exports"),
        (img, "incr 100", 0.2, "incr. 100, image only"),
        (def, "incr 100", 0.3, "incr. 100, with exports"),
        (def, "unchanged", 0.25, "unchanged"),
        (def, "restore latest", 0.75, "restore (quick_check)"),
    ] {
        if let (Some(x), Some(r)) = (b.get(l, op), res(op)) {
            check(
                &format!("{what}: time ≤ {f}x restic"),
                time_vs(x, &r, "restic"),
                format!("{:.2} s", f * r.wall),
                x.wall <= f * r.wall,
            );
        }
    }
    if let Some(x) = b.get(def, "unchanged") {
        check(
            "unchanged: ≤ 0.1 s",
            format!("{:.2} s", x.wall),
            "0.10 s".into(),
            x.wall <= 0.1,
        );
        let a = x.added.unwrap_or(0);
        check(
            "unchanged: adds < 16 KiB",
            format!("{a} B"),
            "16384 B".into(),
            a < 16384,
        );
    }
    // Bytes after 100 updates against the changed pages, deflated.
    for (l, f, what) in [(img, 2, "image only"), (def, 3, "with exports")] {
        if let Some(x) = b.get(l, "incr 100") {
            let a = x.added.unwrap_or(0).max(0) as u64;
            check(
                &format!("incr. 100, {what}: bytes ≤ {f}x changed pages deflated"),
                format!("{a} B = {:.2}x ({d12} B)", a as f64 / d12.max(1) as f64),
                format!("{} B", f * d12),
                a <= f * d12,
            );
        }
    }
    if let Some(x) = b.get(def, "app stall (max)") {
        let b3 = b.get("b3sum", "hash (1 thread)").map(|h| h.wall);
        let none_failed = x.note.contains("failed 0,");
        check(
            "app never fails while snapshots run",
            x.note.clone(),
            "0 failed commits".into(),
            none_failed,
        );
        if let Some(h) = b3 {
            check(
                "longest app stall ≤ 1.5x b3sum (1 thread)",
                format!("{:.2} s (b3sum {h:.2} s)", x.wall),
                format!("{:.2} s", 1.5 * h),
                x.wall <= 1.5 * h,
            );
        }
    }
    if let Some(x) = b.get(def, "diff S1 S2") {
        check(
            "diff after 100 updates ≤ 0.5 s",
            format!("{:.2} s", x.wall),
            "0.50 s".into(),
            x.wall <= 0.5,
        );
    }
    // Index size and stored size of the full snapshot.
    for l in [img, def] {
        let Some(x) = b.get(l, "full") else { continue };
        let index: i64 = x
            .note
            .strip_prefix("index.redb ")
            .and_then(|n| n.strip_suffix(" B"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let added = x.added.unwrap_or(0);
        let packs = x.new_bytes.unwrap_or(0) as i64;
        if packs > 0 {
            check(
                &format!("index ≤ 10% of packs ({l})"),
                format!(
                    "{index} B = {:.1}% of {packs} B",
                    100.0 * index as f64 / packs as f64
                ),
                format!("{} B", packs / 10),
                index * 10 <= packs,
            );
        }
        if let Some(r) = res("full") {
            let ra = r.added.unwrap_or(0);
            check(
                &format!("full stored size ≤ restic's ({l})"),
                format!(
                    "{added} B = {:.2}x ({ra} B)",
                    added as f64 / ra.max(1) as f64
                ),
                format!("{ra} B"),
                added <= ra,
            );
        }
    }
    for l in [img, def] {
        if let Some((measured, ok)) = peak_rss(b, l) {
            check(
                &format!("peak RSS ≤ 100 MiB ({l})"),
                measured,
                "100 MiB".into(),
                ok,
            );
        }
    }
}
