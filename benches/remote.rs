//! Remote repositories against a real S3 store (issue #11's targets): lumina-backup
//! beside `rclone copy` and restic, against a 1-node Garage cluster this bench
//! starts on loopback (and stops at the end), in one run.
//!
//! ```text
//! cargo bench --bench remote -- [PHOTOS] [WORKDIR]     (default 190000 /tmp/lumina-rbench)
//! ```
//!
//! The database is the shipping app's schema (`gen_realapp.py create --photos PHOTOS
//! --journal delete`, ≈ 5.6 KB per photo: 190,000 ≈ 1.06 GB, 9,000 ≈ 50 MB), S0;
//! S1 = S0 + 100 photo edits (`gen_realapp.py edit --edits 100 --seed 12`). States are
//! reused when they exist in WORKDIR (S0 has compare.rs's name, so both benches share it).
//!
//! Each run (`LUMINA_BENCH_RUNS`, default 3) does, every command under GNU time:
//! 1. **copy**: `lumina-backup copy --to s3://lumina-copy/rN` of a fresh local
//!    repository holding one full snapshot of S0 (made once, before the runs), against
//!    `rclone copy` of the same repository folder to `rclone-copy/rN`;
//! 2. **snapshots straight to S3**: `--repo s3://lumina-s3/rN` init, full snapshot of
//!    S0, then incremental snapshot of S1; restic `backup` of the same states to
//!    `s3:…/restic/rN` (restic's full backup is the copy's reference too);
//!    the same for `--no-exports` (`lumina-s3-noexp/rN`);
//! 3. **restore** of the latest snapshot (S1) from S3: `restore latest` against
//!    `restic restore latest`; each restored file is compared with S1.
//!
//! For every timed command: wall seconds and peak RSS (`/usr/bin/time -f '%e %M'`),
//! **bytes sent** as the growth of the command's prefix in its bucket (`rclone size`,
//! before and after: stored object bytes, not HTTP bytes on the wire), and the
//! **S3 requests** the command made, by endpoint (PutObject, GetObject, HeadObject,
//! ListObjectsV2, DeleteObject...): the difference of Garage's admin-API Prometheus
//! counter `api_s3_request_counter` before and after the command (nothing else talks
//! to Garage meanwhile). Both tools keep their local caches in `WORKDIR/cache`
//! (lumina's index cache of a remote repository, restic's cache), as a user's would.
//! The reference for an incremental snapshot's bytes is the changed pages, deflated
//! (`page_diff.py S0 S1`, as compare.rs).
//!
//! Prints what was measured, one table of medians over the runs, and the targets of
//! issue #11 with the per-run ratios; writes the raw rows as CSV to
//! `benches/results/<date>-remote-<photos>.csv` (`LUMINA_BENCH_CSV` overrides) and the
//! Markdown to `WORKDIR/remote-<photos>.md`.
//!
//! Environment: `LUMINA_BIN` (default: the binary cargo built), `LUMINA_BENCH_SHARED`
//! (default `../shared/bench`), `LUMINA_BENCH_RUNS` (default 3), `LUMINA_BENCH_TOOLS`
//! (comma list of `lumina,lumina-noexp,rclone,restic`, default all), and
//! `LUMINA_TEST_GARAGE` / `LUMINA_TEST_RCLONE` as for the tests. Needs garage, restic,
//! rclone, python3 and GNU time.

#[path = "../tests/common/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One measured command of one run.
#[derive(Clone, Debug)]
struct Row {
    run: usize,
    tool: String,
    op: String,
    wall: f64,
    rss_kib: u64,
    /// Growth of the command's prefix in its bucket (bytes stored).
    sent: Option<i64>,
    /// S3 requests by endpoint; error answers as `ENDPOINT STATUS!`
    /// (also counted under their endpoint).
    requests: BTreeMap<String, u64>,
    note: String,
    load: String,
}

impl Row {
    /// Requests, error answers not counted twice.
    fn total_requests(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| !k.ends_with('!'))
            .map(|(_, v)| v)
            .sum()
    }
}

fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "command failed ({}): {cmd}",
        out.status
    );
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

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Reads `path` once (page cache warm) and flushes earlier writes, as compare.rs.
fn warm(path: &Path) {
    sh(&format!("cat '{}' >/dev/null; sync", path.display()));
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
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

/// The Garage node, its admin API and the rclone remote `garage:` (from the
/// environment) that measures a prefix's size.
struct Bench {
    work: PathBuf,
    garage: servers::Garage,
    rows: Vec<Row>,
    warnings: Vec<String>,
}

impl Bench {
    /// Bytes stored under `bucket/prefix` (one listing, outside any measured window).
    fn stored(&self, target: &str) -> i64 {
        let out = Command::new("rclone")
            .args(["size", "--json", &format!("garage:{target}")])
            .output()
            .expect("running rclone size");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("directory not found") {
            return 0; // nothing under the prefix yet
        }
        assert!(
            out.status.success(),
            "rclone size garage:{target}: {stderr}"
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["bytes"].as_i64())
            .unwrap_or_else(|| panic!("rclone size garage:{target}: no bytes in its answer"))
    }

    /// Runs `cmd` under GNU time; with `target` (`bucket/prefix`) measures the
    /// bytes it adds there. Records the row and returns the command's stdout.
    fn measure(
        &mut self,
        run: usize,
        tool: &str,
        op: &str,
        cmd: &str,
        target: Option<&str>,
    ) -> String {
        let before = target.map(|t| self.stored(t));
        let load = loadavg();
        let req0 = self.garage.s3_requests();
        let tfile = self.work.join(".t");
        let _ = fs::remove_file(&tfile);
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%e %M", "-o"])
            .arg(&tfile)
            .args(["bash", "-c", cmd])
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
        let req1 = self.garage.s3_requests();
        assert!(
            out.status.success(),
            "command failed ({}): {cmd}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let t = fs::read_to_string(&tfile).expect("GNU time's output");
        let mut it = t.lines().last().unwrap_or("0 0").split_whitespace();
        let wall: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let rss_kib: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let requests = servers::Garage::requests_between(&req0, &req1);
        let sent = match (target, before) {
            (Some(t), Some(b)) => Some(self.stored(t) - b),
            _ => None,
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let row = Row {
            run,
            tool: tool.into(),
            op: op.into(),
            wall,
            rss_kib,
            sent,
            requests,
            note: String::new(),
            load,
        };
        eprintln!(
            "  run {run} {:<28} {:<22} {:>7.2} s {:>5} MiB  sent {:>11}  requests {:>5} {}",
            row.tool,
            row.op,
            row.wall,
            row.rss_kib / 1024,
            row.sent.map(|s| s.to_string()).unwrap_or("-".into()),
            row.total_requests(),
            requests_detail(&row.requests)
        );
        self.rows.push(row);
        stdout
    }

    fn note_last(&mut self, note: String) {
        if let Some(r) = self.rows.last_mut() {
            if r.note.is_empty() {
                r.note = note;
            } else {
                r.note = format!("{}; {note}", r.note);
            }
        }
    }

    fn rows_of(&self, tool: &str, op: &str) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.tool == tool && r.op == op)
            .collect()
    }

    /// Creates `bucket` and lets the test key read and write it.
    fn bucket(&self, bucket: &str) {
        self.garage.cli(&["bucket", "create", bucket]);
        self.garage.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "lumina-test",
        ]);
    }

    /// Whether the restored file under `dir` equals `expected`; records a
    /// warning if not.
    fn check_restored(&mut self, name: &str, dir: &Path, expected: &Path) {
        let got = sh(&format!(
            "find '{}' -name lumina.db -type f | head -1",
            dir.display()
        ));
        let same = !got.is_empty()
            && Command::new("cmp")
                .arg("-s")
                .arg(&got)
                .arg(expected)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if !same {
            self.warnings
                .push(format!("{name}: restored file {got:?} differs from S1"));
        }
        self.note_last(if same { "equals S1" } else { "DIFFERS from S1" }.into());
    }
}

/// `PutObject 12, GetObject 3, ...`, most first.
fn requests_detail(m: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const LUMINA: &str = "lumina-backup";
const LUMINA_NOEXP: &str = "lumina-backup --no-exports";
const RESTIC: &str = "restic";
const RCLONE: &str = "rclone";

fn main() {
    // cargo bench appends `--bench`; ignore flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let photos: u64 = args
        .first()
        .map(|s| s.parse().expect("PHOTOS is a number of photos"))
        .unwrap_or(190_000);
    let work = PathBuf::from(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("/tmp/lumina-rbench"),
    );
    let runs: usize = std::env::var("LUMINA_BENCH_RUNS")
        .ok()
        .map(|v| v.parse().expect("LUMINA_BENCH_RUNS is a number"))
        .unwrap_or(3)
        .max(1);
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("LUMINA_BENCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join("../shared/bench"));
    let bin = std::env::var_os("LUMINA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lumina-backup")));
    let tools: Vec<String> = std::env::var("LUMINA_BENCH_TOOLS")
        .unwrap_or_else(|_| "lumina,lumina-noexp,rclone,restic".into())
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
    let py = |script: &str| shared.join(script).display().to_string();

    // ---- the states: S0 (compare.rs's name, shared) and S1 = S0 + 100 edits
    let s0 = work.join(format!("realapp-s0-{photos}.db"));
    let s1 = work.join(format!("remote-s1-{photos}.db"));
    // Each state is made beside its name and renamed, so an interrupted
    // generation is not taken for a state by the next run.
    let tmp = work.join("state.tmp");
    let _ = fs::remove_file(&tmp);
    if !s0.exists() {
        eprintln!("generating S0 ({photos} photos, rollback journal)...");
        sh(&format!(
            "python3 '{}' create --photos {photos} --journal delete --out '{}' >/dev/null",
            py("gen_realapp.py"),
            tmp.display()
        ));
        fs::rename(&tmp, &s0).unwrap();
    }
    if !s1.exists() {
        fs::copy(&s0, &tmp).unwrap();
        sh(&format!(
            "python3 '{}' edit '{}' --edits 100 --seed 12 >/dev/null",
            py("gen_realapp.py"),
            tmp.display()
        ));
        fs::rename(&tmp, &s1).unwrap();
    }
    let size0 = fs::metadata(&s0).unwrap().len();
    let diff01 = sh(&format!(
        "python3 '{}' '{}' '{}'",
        py("page_diff.py"),
        s0.display(),
        s1.display()
    ));
    let deflated = parse_page_diff(&diff01)
        .get("bytes_changed_deflated")
        .copied()
        .expect("page_diff.py's bytes_changed_deflated");

    // ---- Garage, 1 node on loopback, a bucket per tool
    let gdir = work.join("garage");
    let _ = fs::remove_dir_all(&gdir);
    eprintln!("starting Garage (1 node) in {}...", gdir.display());
    let garage = servers::Garage::start(&gdir, "lumina-copy");
    for (k, v) in garage.env() {
        std::env::set_var(k, v);
    }
    std::env::set_var("AWS_DEFAULT_REGION", "garage");
    // Plain HTTP on loopback: no CA bundle is needed, and one in the environment
    // makes rclone's AWS SDK refuse to start ("unable to load custom CA bundle").
    std::env::remove_var("AWS_CA_BUNDLE");
    let endpoint = format!("http://127.0.0.1:{}", garage.s3_port);
    // rclone's remote `garage:` from the environment only.
    let rclone_conf = work.join("rclone.conf");
    fs::write(&rclone_conf, "").unwrap();
    std::env::set_var("RCLONE_CONFIG", &rclone_conf);
    for (k, v) in [
        ("TYPE", "s3"),
        ("PROVIDER", "Other"),
        ("ENDPOINT", endpoint.as_str()),
        ("REGION", "garage"),
        ("ACCESS_KEY_ID", garage.key_id.as_str()),
        ("SECRET_ACCESS_KEY", garage.secret.as_str()),
        ("FORCE_PATH_STYLE", "true"),
    ] {
        std::env::set_var(format!("RCLONE_CONFIG_GARAGE_{k}"), v);
    }
    std::env::set_var("RESTIC_PASSWORD", "bench passphrase");
    let cache = work.join("cache");
    let _ = fs::remove_dir_all(&cache);
    std::env::set_var("XDG_CACHE_HOME", &cache);
    let mut b = Bench {
        work: work.clone(),
        garage,
        rows: Vec::new(),
        warnings: Vec::new(),
    };
    for bucket in ["rclone-copy", "lumina-s3", "lumina-s3-noexp", "restic"] {
        b.bucket(bucket);
    }

    // ---- what is measured
    let date = sh("date -u +%F");
    let mut head = String::new();
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'");
    writeln!(
        head,
        "database: realapp workload, {photos} photos, {size0} bytes; S1 = S0 + 100 edits; {} cores ({cpu}), {} GiB RAM; {date}",
        sh("nproc"),
        sh("free -g | awk '/Mem:/{print $2}'")
    )
    .unwrap();
    writeln!(head, "load average at start: {}", loadavg()).unwrap();
    writeln!(
        head,
        "lumina-backup: {} ({}); source tree {}",
        bin.display(),
        tool_version(&format!("'{}' --version", bin.display())),
        sh(&format!(
            "cd '{}' && git describe --always --dirty 2>/dev/null || echo unknown",
            crate_dir.display()
        ))
    )
    .unwrap();
    for v in ["restic version", "rclone version", "garage --version"] {
        let cmd = if v.starts_with("garage") {
            format!(
                "'{}' --version",
                std::env::var("LUMINA_TEST_GARAGE").unwrap_or_else(|_| sh(
                    "command -v garage || echo /work/tools/garage/bin/garage"
                ))
            )
        } else {
            v.to_string()
        };
        writeln!(head, "{v}: {}", tool_version(&cmd)).unwrap();
    }
    writeln!(head, "changed pages S0->S1: {diff01}").unwrap();
    writeln!(
        head,
        "Garage 1 node on loopback (replication 1, sqlite metadata, same disk); {runs} runs of every step. \
         Per command: wall s and peak RSS (GNU time); bytes sent = growth of the command's prefix in its bucket \
         (stored bytes, `rclone size`); requests = Garage's api_s3_request_counter difference, by endpoint."
    )
    .unwrap();
    eprint!("{head}");

    let lb = bin.display().to_string();
    let live = work.join("live/lumina.db");
    let live_s = live.display().to_string();
    let restore_dir = work.join("restore");
    let _ = fs::remove_dir_all(live.parent().unwrap());
    fs::create_dir_all(live.parent().unwrap()).unwrap();
    let restic_repo = |r: usize| format!("s3:{endpoint}/restic/r{r}");

    // ---- the fresh local repository that every copy sends (one full snapshot of S0)
    let local = work.join("local-repo");
    let local_s = local.display().to_string();
    if want("lumina") || want("rclone") {
        let _ = fs::remove_dir_all(&local);
        fs::copy(&s0, &live).unwrap();
        sh(&format!("'{lb}' --repo '{local_s}' --quiet init"));
        sh(&format!(
            "'{lb}' --repo '{local_s}' --quiet snapshot '{live_s}'"
        ));
        let files = sh(&format!("find '{local_s}' -type f | wc -l"));
        let bytes = sh(&format!("du -sb '{local_s}' | cut -f1"));
        writeln!(
            head,
            "local repository copied: {files} files, {bytes} bytes (one full snapshot of S0 with exports; rclone copies its index.redb and lock too, lumina's copy sends packs and records only)"
        )
        .unwrap();
    }

    for r in 1..=runs {
        eprintln!("== run {r} of {runs}");
        // 1. copy of the fresh local repository
        if want("lumina") {
            sh("sync");
            b.measure(
                r,
                LUMINA,
                "copy to S3",
                &format!(
                    "'{lb}' --repo '{local_s}' --quiet --json copy --to 's3://lumina-copy/r{r}'"
                ),
                Some(&format!("lumina-copy/r{r}")),
            );
        }
        if want("rclone") {
            sh("sync");
            b.measure(
                r,
                RCLONE,
                "copy to S3",
                &format!("rclone copy '{local_s}' 'garage:rclone-copy/r{r}'"),
                Some(&format!("rclone-copy/r{r}")),
            );
        }
        // 2. full snapshot of S0 then incremental of S1, straight to S3
        let mut variants: Vec<(&str, &str, &str)> = Vec::new();
        if want("lumina") {
            variants.push((LUMINA, "", "lumina-s3"));
        }
        if want("lumina-noexp") {
            variants.push((LUMINA_NOEXP, "--no-exports", "lumina-s3-noexp"));
        }
        for (name, flag, bucket) in &variants {
            let url = format!("s3://{bucket}/r{r}");
            sh(&format!("'{lb}' --repo '{url}' --quiet init"));
            for (op, state) in [("full snapshot", &s0), ("incr 100 snapshot", &s1)] {
                fs::copy(state, &live).unwrap();
                warm(&live);
                let out = b.measure(
                    r,
                    name,
                    op,
                    &format!("'{lb}' --repo '{url}' --quiet --json snapshot {flag} '{live_s}'"),
                    Some(&format!("{bucket}/r{r}")),
                );
                if let Some(n) = serde_json::from_str::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|v| v["new_bytes"].as_u64())
                {
                    b.note_last(format!("new_bytes {n}"));
                }
            }
        }
        if want("restic") {
            let repo = restic_repo(r);
            sh(&format!("restic -r '{repo}' init >/dev/null"));
            for (op, state) in [("full snapshot", &s0), ("incr 100 snapshot", &s1)] {
                fs::copy(state, &live).unwrap();
                warm(&live);
                b.measure(
                    r,
                    RESTIC,
                    op,
                    &format!("restic -r '{repo}' --quiet backup '{live_s}'"),
                    Some(&format!("restic/r{r}")),
                );
            }
        }
        // 3. restore of S1 from S3
        for (name, _, bucket) in &variants {
            let _ = fs::remove_dir_all(&restore_dir);
            fs::create_dir_all(&restore_dir).unwrap();
            sh("sync");
            b.measure(
                r,
                name,
                "restore from S3",
                &format!(
                    "'{lb}' --repo 's3://{bucket}/r{r}' --quiet --json restore latest --to '{}'",
                    restore_dir.join("lumina.db").display()
                ),
                None,
            );
            b.check_restored(name, &restore_dir, &s1);
        }
        if want("restic") {
            let _ = fs::remove_dir_all(&restore_dir);
            fs::create_dir_all(&restore_dir).unwrap();
            sh("sync");
            b.measure(
                r,
                RESTIC,
                "restore from S3",
                &format!(
                    "restic -r '{}' --quiet restore latest --target '{}'",
                    restic_repo(r),
                    restore_dir.display()
                ),
                None,
            );
            b.check_restored(RESTIC, &restore_dir, &s1);
        }
    }
    let _ = fs::remove_dir_all(&restore_dir);
    let _ = fs::remove_dir_all(live.parent().unwrap());

    // ---- report
    let mut md = String::new();
    md.push_str("```text\n");
    md.push_str(&head);
    md.push_str("```\n\n");
    md.push_str(&medians_table(&b));
    md.push_str(&targets(&b, deflated));
    if !b.warnings.is_empty() {
        md.push_str("\nWarnings:\n");
        for w in &b.warnings {
            writeln!(md, "- {w}").unwrap();
        }
    }
    print!("{md}");
    fs::write(work.join(format!("remote-{photos}.md")), &md).unwrap();

    let csv_path = std::env::var_os("LUMINA_BENCH_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join(format!("benches/results/{date}-remote-{photos}.csv")));
    if let Some(d) = csv_path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    let mut csv = String::from(
        "date,photos,run,tool,operation,wall_s,peak_rss_kib,bytes_sent,requests,requests_by_endpoint,note,loadavg\n",
    );
    for r in &b.rows {
        writeln!(
            csv,
            "{date},{photos},{},\"{}\",\"{}\",{:.2},{},{},{},\"{}\",\"{}\",\"{}\"",
            r.run,
            r.tool,
            r.op,
            r.wall,
            r.rss_kib,
            r.sent.map(|s| s.to_string()).unwrap_or_default(),
            r.total_requests(),
            requests_detail(&r.requests),
            r.note,
            r.load
        )
        .unwrap();
    }
    fs::write(&csv_path, csv).unwrap();
    eprintln!("CSV: {}", csv_path.display());
    // Stop Garage and drop its data (the states stay for the next run).
    drop(b);
    let _ = fs::remove_dir_all(&gdir);
}

/// Every (tool, operation) in the order first measured.
fn ops(b: &Bench) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for r in &b.rows {
        let k = (r.tool.clone(), r.op.clone());
        if !seen.contains(&k) {
            seen.push(k);
        }
    }
    seen
}

/// One line per (tool, operation): medians over the runs, and the range.
fn medians_table(b: &Bench) -> String {
    let mut md = String::from(
        "Medians over the runs (min–max in brackets); requests by endpoint are medians too \
         (`GetObject 404!`: error answers, counted under their endpoint as well).\n\n\
         | tool | operation | wall s | peak RSS MiB | bytes sent | S3 requests | by endpoint | notes (run 1) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (tool, op) in ops(b) {
        let rows = b.rows_of(&tool, &op);
        let walls: Vec<f64> = rows.iter().map(|r| r.wall).collect();
        let lo = walls.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = walls.iter().copied().fold(0.0, f64::max);
        let rss = median(rows.iter().map(|r| r.rss_kib as f64).collect());
        let rss_max = rows.iter().map(|r| r.rss_kib).max().unwrap_or(0);
        let sent = if rows.iter().all(|r| r.sent.is_some()) {
            format!(
                "{:.0}",
                median(rows.iter().map(|r| r.sent.unwrap_or(0) as f64).collect())
            )
        } else {
            "-".into()
        };
        let req = median(rows.iter().map(|r| r.total_requests() as f64).collect());
        let mut endpoints: BTreeMap<String, u64> = BTreeMap::new();
        for r in &rows {
            for k in r.requests.keys() {
                endpoints.insert(k.clone(), 0);
            }
        }
        for (k, v) in endpoints.iter_mut() {
            *v = median(
                rows.iter()
                    .map(|r| r.requests.get(k).copied().unwrap_or(0) as f64)
                    .collect(),
            ) as u64;
        }
        writeln!(
            md,
            "| {tool} | {op} | {:.2} ({lo:.2}–{hi:.2}) | {:.0} (max {:.0}) | {sent} | {req:.0} | {} | {} |",
            median(walls),
            rss / 1024.0,
            rss_max as f64 / 1024.0,
            requests_detail(&endpoints),
            rows.first().map(|r| r.note.as_str()).unwrap_or("")
        )
        .unwrap();
    }
    md
}

/// `x` against `y` run by run (same run number): the ratios and their median.
fn ratios(
    b: &Bench,
    x: (&str, &str),
    y: (&str, &str),
    f: impl Fn(&Row) -> f64,
) -> Option<(f64, f64, f64, String)> {
    let xs = b.rows_of(x.0, x.1);
    let ys = b.rows_of(y.0, y.1);
    if xs.is_empty() || ys.is_empty() {
        return None;
    }
    let mut per_run = Vec::new();
    for xr in &xs {
        if let Some(yr) = ys.iter().find(|r| r.run == xr.run) {
            per_run.push(f(xr) / f(yr).max(0.001));
        }
    }
    let list = per_run
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some((
        median(xs.iter().map(|r| f(r)).collect()),
        median(ys.iter().map(|r| f(r)).collect()),
        median(per_run),
        list,
    ))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// The targets of issue #11, each with its medians and per-run ratios.
fn targets(b: &Bench, deflated: u64) -> String {
    let mut md = String::from(
        "\n### Targets (issue #11)\n\n| target | measured (medians) | per-run ratios | limit | result |\n|---|---|---|---|---|\n",
    );
    let wall = |r: &Row| r.wall;
    let time_target =
        |md: &mut String, what: &str, x: (&str, &str), y: (&str, &str), limit: f64| {
            if let Some((mx, my, ratio, list)) = ratios(b, x, y, wall) {
                writeln!(
                    md,
                    "| {what} | {mx:.2} s vs {my:.2} s = {ratio:.2}x | {list} | {limit}x | {} |",
                    verdict(ratio <= limit)
                )
                .unwrap();
            }
        };
    time_target(
        &mut md,
        "copy of a fresh repository ≤ rclone copy",
        (LUMINA, "copy to S3"),
        (RCLONE, "copy to S3"),
        1.0,
    );
    for l in [LUMINA, LUMINA_NOEXP] {
        time_target(
            &mut md,
            &format!("incr. 100 snapshot to S3 ≤ 0.5x restic ({l})"),
            (l, "incr 100 snapshot"),
            (RESTIC, "incr 100 snapshot"),
            0.5,
        );
    }
    for l in [LUMINA, LUMINA_NOEXP] {
        let rows = b.rows_of(l, "incr 100 snapshot");
        if rows.is_empty() {
            continue;
        }
        let sent = median(rows.iter().map(|r| r.sent.unwrap_or(0) as f64).collect());
        let per_run = rows
            .iter()
            .map(|r| format!("{:.2}", r.sent.unwrap_or(0) as f64 / deflated.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ");
        let ratio = sent / deflated.max(1) as f64;
        let restic = b.rows_of(RESTIC, "incr 100 snapshot");
        let restic_note = if restic.is_empty() {
            String::new()
        } else {
            format!(
                " (restic: {:.0} B)",
                median(restic.iter().map(|r| r.sent.unwrap_or(0) as f64).collect())
            )
        };
        writeln!(
            md,
            "| incr. 100 bytes sent ≤ 2x changed pages deflated ({l}) | {sent:.0} B = {ratio:.2}x {deflated} B{restic_note} | {per_run} | {} B | {} |",
            2 * deflated,
            verdict(ratio <= 2.0)
        )
        .unwrap();
        let req = median(rows.iter().map(|r| r.total_requests() as f64).collect());
        let per_run = rows
            .iter()
            .map(|r| r.total_requests().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let restic_req = b.rows_of(RESTIC, "incr 100 snapshot");
        let restic_note = if restic_req.is_empty() {
            String::new()
        } else {
            format!(
                " (restic: {:.0})",
                median(
                    restic_req
                        .iter()
                        .map(|r| r.total_requests() as f64)
                        .collect()
                )
            )
        };
        writeln!(
            md,
            "| incr. 100 requests < 20 ({l}) | {req:.0}{restic_note} | {per_run} (counts) | < 20 | {} |",
            verdict(req < 20.0)
        )
        .unwrap();
    }
    for l in [LUMINA, LUMINA_NOEXP] {
        time_target(
            &mut md,
            &format!("restore from S3 ≤ 0.75x restic ({l})"),
            (l, "restore from S3"),
            (RESTIC, "restore from S3"),
            0.75,
        );
    }
    for l in [LUMINA, LUMINA_NOEXP] {
        if let Some(top) = b
            .rows
            .iter()
            .filter(|r| r.tool == l)
            .max_by_key(|r| r.rss_kib)
        {
            writeln!(
                md,
                "| peak RSS ≤ 100 MiB ({l}) | {} MiB ({}, run {}) | | 100 MiB | {} |",
                top.rss_kib / 1024,
                top.op,
                top.run,
                verdict(top.rss_kib <= 100 * 1024)
            )
            .unwrap();
        }
    }
    // For comparison only (no target): the full snapshot and the copy against restic's backup.
    let mut info = String::new();
    for (x, y) in [
        ((LUMINA, "full snapshot"), (RESTIC, "full snapshot")),
        ((LUMINA_NOEXP, "full snapshot"), (RESTIC, "full snapshot")),
        ((LUMINA, "copy to S3"), (RESTIC, "full snapshot")),
    ] {
        if let Some((mx, my, ratio, list)) = ratios(b, x, y, wall) {
            writeln!(
                info,
                "| {} {} vs {} {} | {mx:.2} s vs {my:.2} s = {ratio:.2}x | {list} |",
                x.0, x.1, y.0, y.1
            )
            .unwrap();
        }
    }
    if !info.is_empty() {
        md.push_str(
            "\nFor comparison (no target):\n\n| what | medians | per-run ratios |\n|---|---|---|\n",
        );
        md.push_str(&info);
    }
    md
}
