//! The watcher's targets of issue #12, with the release binary as a real child
//! process over the real app's database (rollback journal).
//!
//! ```text
//! cargo bench --bench watch -- [PHOTOS] [WORKDIR]     (default 190000 /tmp/lumina-bench-watch)
//! ```
//!
//! The database is `WORKDIR/realapp-s0-PHOTOS.db` (`gen_realapp.py create --photos
//! PHOTOS --journal delete`, made when missing; 190,000 photos ≈ 1.06 GB, the same
//! file `compare`'s realapp workload makes, so `WORKDIR=/tmp/lumina-bench` reuses
//! it). It is copied to `WORKDIR/watch-live.db`, a fresh repository gets one full
//! snapshot of it, then:
//!
//! 1. **idle**: `watch live --on-change --every 1d --min-gap 5s --check-every 1s`.
//!    After its first look (the `skipped-unchanged` event) and 2 s more, the
//!    watcher's CPU time (`/proc/PID/stat` utime+stime, and the sum of its
//!    threads' `schedstat` run time, ns-precise) and its reads (`/proc/PID/io`
//!    `rchar`, `read_bytes`, `syscr`) are sampled, again after D seconds; the
//!    deltas give CPU seconds per hour and bytes read per check (D / 1 s checks).
//!    Then `strace -c -f` watches it for a few seconds (a profile of what it
//!    calls; after the measured window, so it does not perturb it).
//! 2. **change**: `watch live --on-change --min-gap Gs --check-every 1s` while
//!    `benches/watch_edits.py` edits N photos a minute for D2 seconds in the
//!    app's pattern (gen_realapp.py's `_edit_one`, 5 s busy timeout, rollback
//!    journal). Each edit k sets a `lastModified` marker; afterwards `sql` on every
//!    snapshot the watcher took gives the newest edit it holds (each writes the
//!    image to a verified temporary file: ~2-3 s at 1 GiB). For each committed
//!    edit: the first snapshot holding it, and its lag from the edit's commit to
//!    the snapshot's `snapshot-taken` event, against min-gap + that snapshot's
//!    time (from its record's time to the event) + one check interval. The
//!    repository's growth (`du`, and the snapshots' own `new_bytes`) is set
//!    against the pages that changed: between the first and last state (one
//!    `page_diff.py`), and between consecutive snapshots for a few sampled pairs
//!    (their images written out with `cat`), extrapolated to all snapshots. The
//!    app's worst commit wait and failures come from the edit driver.
//!
//! Prints a Markdown table (also `WORKDIR/watch-PHOTOS.md`), writes the CSV to
//! `benches/results/<date>-watch-<PHOTOS>.csv` (`LUMINA_BENCH_CSV` overrides) and
//! one line per edit to `WORKDIR/watch-edits.csv`.
//!
//! Environment:
//! * `LUMINA_BIN`: the binary (default: the one cargo built for this bench).
//! * `LUMINA_BENCH_SHARED`: folder of gen_realapp.py and page_diff.py (default
//!   `../shared/bench` next to the crate).
//! * `WATCH_IDLE_SECS` (D, default 600), `WATCH_CHANGE_SECS` (D2, default 1800),
//!   `WATCH_EDITS_PER_MIN` (default 10), `WATCH_MIN_GAP_SECS` (default 5),
//!   `WATCH_PAIRS` (sampled snapshot pairs, default 3), `WATCH_STRACE_SECS`
//!   (default 10; 0: no strace), `WATCH_PARTS` (`idle,change`, default both).
//!
//! Needs python3, strace (optional) and a Linux `/proc`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
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

fn du(path: &Path) -> i64 {
    sh(&format!("du -sb '{}' | cut -f1", path.display()))
        .parse()
        .unwrap_or(0)
}

/// `page_diff.py` output as numbers.
fn page_diff(shared: &Path, a: &Path, b: &Path) -> (u64, u64) {
    let out = sh(&format!(
        "python3 '{}' '{}' '{}'",
        shared.join("page_diff.py").display(),
        a.display(),
        b.display()
    ));
    let get = |k: &str| {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("pages_changed"), get("bytes_changed_deflated"))
}

/// The CLI with the bench's repository, home and state folder.
struct Lb {
    bin: PathBuf,
    repo: PathBuf,
    home: PathBuf,
    state: PathBuf,
}

impl Lb {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--repo")
            .arg(&self.repo)
            .env("HOME", &self.home)
            .env("LUMINA_BACKUP_STATE_DIR", &self.state)
            .env_remove("LUMINA_BACKUP_REPO")
            .env_remove("LUMINA_BACKUP_PASSWORD");
        c
    }

    /// Runs `--quiet --json ARGS`; stdout. Panics if it fails.
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(["--quiet", "--json"])
            .args(args)
            .output()
            .expect("running lumina-backup");
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }
}

/// A running `watch --json`, its events stamped with their arrival (unix s).
struct Watch {
    child: Child,
    events: Arc<Mutex<Vec<(f64, Value)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(lb: &Lb, args: &[&str]) -> Watch {
        let mut child = lb
            .command()
            .args(["--json", "watch"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting watch");
        let out = child.stdout.take().expect("stdout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let t = unix_now();
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("watch printed {line:?}: {e}"));
                sink.lock().expect("events").push((t, v));
            }
        });
        Watch {
            child,
            events,
            reader: Some(reader),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn events(&self) -> Vec<(f64, Value)> {
        self.events.lock().expect("events").clone()
    }

    /// Waits for an event from index `from` on that satisfies `want`.
    fn wait_for(
        &mut self,
        from: usize,
        timeout: Duration,
        want: impl Fn(f64, &Value) -> bool,
    ) -> Option<(usize, f64, Value)> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some((i, (t, v))) = self
                .events()
                .into_iter()
                .enumerate()
                .skip(from)
                .find(|(_, (t, v))| want(*t, v))
            {
                return Some((i, t, v));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the watcher exited ({status}) while waited for");
            }
            sleep(Duration::from_millis(100));
        }
        None
    }

    /// SIGTERM; (seconds until it exited, its status, all its events).
    fn stop(mut self) -> (f64, ExitStatus, Vec<(f64, Value)>) {
        let t = Instant::now();
        sh(&format!("kill -TERM {}", self.pid()));
        let status = self.child.wait().expect("wait");
        let secs = t.elapsed().as_secs_f64();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (secs, status, self.events())
    }
}

fn event_is(v: &Value, name: &str) -> bool {
    v["event"] == name
}

/// A look at a process: CPU ticks (utime+stime), threads' run time (ns),
/// rchar, read_bytes, syscr.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    ticks: u64,
    run_ns: u64,
    rchar: u64,
    read_bytes: u64,
    syscr: u64,
}

fn sample(pid: u32) -> Sample {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let ticks = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    let mut run_ns = 0;
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("schedstat")) {
                run_ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    let io = fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    let get = |k: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Sample {
        at: Instant::now(),
        ticks,
        run_ns,
        rchar: get("rchar"),
        read_bytes: get("read_bytes"),
        syscr: get("syscr"),
    }
}

/// One figure of the table and the CSV.
struct Row {
    part: &'static str,
    what: String,
    value: String,
    target: String,
    verdict: String,
}

struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(
        &mut self,
        part: &'static str,
        what: impl Into<String>,
        value: impl Into<String>,
        target: &str,
        ok: Option<bool>,
    ) {
        let verdict = match ok {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        self.rows.push(Row {
            part,
            what: what.into(),
            value: value.into(),
            target: target.into(),
            verdict: verdict.into(),
        });
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn mb(b: f64) -> String {
    format!("{:.3} MB", b / 1e6)
}

fn idle(lb: &Lb, live: &Path, work: &Path, secs: f64, report: &mut Report) {
    let live_s = live.display().to_string();
    let mut w = Watch::start(
        lb,
        &[
            &live_s,
            "--on-change",
            "--every",
            "1d",
            "--min-gap",
            "5s",
            "--check-every",
            "1s",
        ],
    );
    let startup = Instant::now();
    w.wait_for(0, Duration::from_secs(300), |_, v| {
        event_is(v, "skipped-unchanged") || event_is(v, "snapshot-taken")
    })
    .expect("the watcher's first look within 300 s");
    sleep(Duration::from_secs(2));
    let startup_s = startup.elapsed().as_secs_f64();
    let pid = w.pid();
    let before = w.events().len();
    let a = sample(pid);
    eprintln!("idle: measuring the watcher (pid {pid}) for {secs} s...");
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if let Ok(Some(s)) = w.child.try_wait() {
            panic!("the watcher exited while idle: {s}");
        }
        sleep(Duration::from_millis(500).min(end.saturating_duration_since(Instant::now())));
    }
    let b = sample(pid);
    let during: Vec<_> = w.events().into_iter().skip(before).collect();
    let strace_secs = env_f64("WATCH_STRACE_SECS", 10.0);
    let strace_file = work.join("watch-idle-strace.txt");
    let mut strace_top = String::new();
    if strace_secs > 0.0 && Command::new("strace").arg("-V").output().is_ok() {
        let _ = fs::remove_file(&strace_file);
        let _ = Command::new("timeout")
            .args(["-s", "INT", &format!("{strace_secs}")])
            .args(["strace", "-c", "-f", "-o"])
            .arg(&strace_file)
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        strace_top = fs::read_to_string(&strace_file)
            .map(|s| s.lines().take(14).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
    }
    let (stop_s, status, _) = w.stop();
    let clk: f64 = sh("getconf CLK_TCK").parse().unwrap_or(100.0);
    let elapsed = b.at.duration_since(a.at).as_secs_f64();
    let checks = (elapsed / 1.0).floor().max(1.0);
    let cpu_ticks_s = (b.ticks - a.ticks) as f64 / clk;
    let cpu_run_s = (b.run_ns - a.run_ns) as f64 / 1e9;
    let per_hour = |s: f64| s / elapsed * 3600.0;
    let rchar = (b.rchar - a.rchar) as f64 / checks;
    let read_bytes = (b.read_bytes - a.read_bytes) as f64 / checks;
    let syscr = (b.syscr - a.syscr) as f64 / checks;
    let snaps = during
        .iter()
        .filter(|(_, v)| event_is(v, "snapshot-taken"))
        .count();
    let p = "idle";
    report.add(
        p,
        "measured window",
        format!("{elapsed:.0} s, {checks:.0} checks at 1 s"),
        "",
        None,
    );
    report.add(
        p,
        "start-up (first look + 2 s)",
        format!("{startup_s:.1} s"),
        "",
        None,
    );
    report.add(
        p,
        "CPU per hour (utime+stime, 1/CLK_TCK s resolution)",
        format!(
            "{:.3} s/h ({cpu_ticks_s:.2} s in the window)",
            per_hour(cpu_ticks_s)
        ),
        "< 1 s/h",
        Some(per_hour(cpu_ticks_s) < 1.0),
    );
    report.add(
        p,
        "CPU per hour (threads' schedstat run time)",
        format!("{:.3} s/h", per_hour(cpu_run_s)),
        "< 1 s/h",
        Some(per_hour(cpu_run_s) < 1.0),
    );
    report.add(
        p,
        "bytes read per check (rchar)",
        format!("{rchar:.1} B"),
        "header-sized (≤ 100 B)",
        Some(rchar <= 100.0),
    );
    report.add(
        p,
        "bytes read from storage per check (read_bytes)",
        format!("{read_bytes:.1} B"),
        "header-sized",
        Some(read_bytes <= 100.0),
    );
    report.add(
        p,
        "read calls per check (syscr)",
        format!("{syscr:.2}"),
        "",
        None,
    );
    report.add(
        p,
        "events while idle",
        format!("{} ({snaps} snapshots)", during.len()),
        "no snapshot",
        Some(snaps == 0),
    );
    report.add(
        p,
        "SIGTERM to exit",
        format!("{stop_s:.2} s, {status}"),
        "within seconds",
        Some(stop_s < 5.0 && status.success()),
    );
    if !strace_top.is_empty() {
        eprintln!("strace -c -f of the idle watcher for {strace_secs} s:\n{strace_top}");
        report.add(p, "strace -c", strace_file.display().to_string(), "", None);
    }
}

struct ChangeArgs<'a> {
    shared: &'a Path,
    base: &'a Path,
    live: &'a Path,
    work: &'a Path,
    secs: f64,
    per_minute: f64,
    min_gap: f64,
}

fn change(lb: &Lb, a: &ChangeArgs<'_>, report: &mut Report) {
    let live_s = a.live.display().to_string();
    let gap = format!("{}s", a.min_gap);
    let repo_before = du(&lb.repo);
    let index_len = || {
        fs::metadata(lb.repo.join("index.redb"))
            .map(|m| m.len() as i64)
            .unwrap_or(0)
    };
    let index_before = index_len();
    let mut w = Watch::start(
        lb,
        &[
            &live_s,
            "--on-change",
            "--min-gap",
            &gap,
            "--check-every",
            "1s",
        ],
    );
    w.wait_for(0, Duration::from_secs(300), |_, v| {
        event_is(v, "skipped-unchanged") || event_is(v, "snapshot-taken")
    })
    .expect("the watcher's first look within 300 s");
    let first = w.events().len();
    let phase_start = unix_now();
    let out_json = a.work.join("watch-edits.json");
    let _ = fs::remove_file(&out_json);
    eprintln!(
        "change: {} edits a minute for {} s...",
        a.per_minute, a.secs
    );
    let driver = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/watch_edits.py"))
        .arg(a.shared)
        .arg(a.live)
        .arg(&out_json)
        .args(["--per-minute", &a.per_minute.to_string()])
        .args(["--seconds", &a.secs.to_string()])
        .status()
        .expect("python3 runs");
    let edits: Value =
        serde_json::from_str(&fs::read_to_string(&out_json).expect("the driver's report"))
            .expect("the driver's JSON");
    let marker_base = edits["marker_base"].as_i64().expect("marker_base");
    let list = edits["edits"].as_array().cloned().unwrap_or_default();
    let last_commit = list
        .iter()
        .filter_map(|e| e["commit"].as_f64())
        .fold(phase_start, f64::max);
    // The snapshot of the last edit: one taken after its commit.
    let wait = Duration::from_secs_f64(a.min_gap + 300.0);
    let tail = w.wait_for(first, wait, |t, v| {
        event_is(v, "snapshot-taken") && t > last_commit
    });
    // Then quiet: no snapshot for min-gap + 5 s (the one holding the last
    // edit may start after a snapshot that was under way at its commit).
    let quiet_end = Instant::now() + Duration::from_secs(300);
    while tail.is_some() && Instant::now() < quiet_end {
        let last = w
            .events()
            .iter()
            .filter(|(_, v)| event_is(v, "snapshot-taken"))
            .map(|(t, _)| *t)
            .fold(0.0, f64::max);
        if unix_now() - last > a.min_gap + 5.0 {
            break;
        }
        sleep(Duration::from_millis(500));
    }
    let (stop_s, status, events) = w.stop();
    let p = "change";
    let summary = &edits["summary"];
    let committed: Vec<&Value> = list.iter().filter(|e| e["error"].is_null()).collect();
    report.add(
        p,
        "edits (driver)",
        format!(
            "{} in {:.0} s, {} failed, driver {driver}",
            list.len(),
            last_commit - phase_start,
            summary["failed"]
        ),
        "none failed",
        Some(summary["failed"].as_u64() == Some(0)),
    );
    let max_wait = summary["max_latency_s"].as_f64().unwrap_or(f64::NAN);
    report.add(
        p,
        "app's worst commit wait (p50)",
        format!(
            "{max_wait:.3} s ({:.3} s)",
            summary["p50_latency_s"].as_f64().unwrap_or(f64::NAN)
        ),
        "< 5 s busy timeout",
        Some(max_wait < 5.0),
    );
    // The watcher's snapshots: id -> (arrival, new_bytes).
    let taken: Vec<(f64, String, u64)> = events
        .iter()
        .skip(first)
        .filter(|(_, v)| event_is(v, "snapshot-taken"))
        .map(|(t, v)| {
            (
                *t,
                v["snapshot"].as_str().unwrap_or_default().to_string(),
                v["new_bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let failures = events
        .iter()
        .filter(|(_, v)| event_is(v, "failure"))
        .count();
    let list_json = lb.json(&["snapshots"]);
    let records = list_json.as_array().cloned().unwrap_or_default();
    let start_s = |id: &str| -> Option<f64> {
        let r = records.iter().find(|r| r["id"] == id)?;
        let ts: jiff::Timestamp = r["time"].as_str()?.parse().ok()?;
        Some(ts.as_nanosecond() as f64 / 1e9)
    };
    // The newest edit each snapshot holds.
    eprintln!("change: reading {} snapshots' newest edit...", taken.len());
    let mut snaps: Vec<(f64, f64, i64, u64, String)> = Vec::new();
    for (arrival, id, new_bytes) in &taken {
        let q = lb.json(&["sql", id.as_str(), "SELECT max(lastModified) FROM metadata"]);
        let max = q["rows"][0][0].as_i64().unwrap_or(i64::MIN);
        let held = if max >= marker_base {
            max - marker_base
        } else {
            -1
        };
        let started = start_s(id).unwrap_or(*arrival);
        snaps.push((*arrival, started, held, *new_bytes, id.clone()));
    }
    let monotonic = snaps.windows(2).all(|w| w[0].2 <= w[1].2);
    // Each committed edit: the first snapshot holding it.
    let mut rows_csv =
        String::from("k,commit_unix,latency_s,snapshot,lag_s,snapshot_s,bound_s,ok\n");
    let (mut missing, mut late, mut late_strict) = (0usize, 0usize, 0usize);
    let mut worst_lag = 0.0f64;
    let mut worst_over = f64::NEG_INFINITY;
    for e in &committed {
        let k = e["k"].as_i64().unwrap_or(-1);
        let commit = e["commit"].as_f64().unwrap_or(0.0);
        let found = snaps.iter().find(|s| s.2 >= k);
        let (id, lag, dur, bound, ok) = match found {
            Some((arrival, started, _, _, id)) => {
                let lag = arrival - commit;
                let dur = (arrival - started).max(0.0);
                let bound = a.min_gap + dur + 1.0;
                worst_lag = worst_lag.max(lag);
                worst_over = worst_over.max(lag - (a.min_gap + dur));
                if lag > a.min_gap + dur {
                    late_strict += 1;
                }
                if lag > bound {
                    late += 1;
                }
                (
                    id.get(..12).unwrap_or(id).to_string(),
                    lag,
                    dur,
                    bound,
                    lag <= bound,
                )
            }
            None => {
                missing += 1;
                (String::new(), f64::NAN, f64::NAN, f64::NAN, false)
            }
        };
        let _ = writeln!(
            rows_csv,
            "{k},{commit:.3},{},{id},{lag:.3},{dur:.3},{bound:.3},{ok}",
            e["latency_s"]
        );
    }
    let _ = fs::write(a.work.join("watch-edits.csv"), rows_csv);
    let durs: Vec<f64> = snaps.iter().map(|s| (s.0 - s.1).max(0.0)).collect();
    let mean_dur = durs.iter().sum::<f64>() / durs.len().max(1) as f64;
    let max_dur = durs.iter().copied().fold(0.0, f64::max);
    report.add(
        p,
        "snapshots taken (failures reported)",
        format!("{} ({failures})", snaps.len()),
        "",
        Some(failures == 0),
    );
    report.add(
        p,
        "snapshot time, mean / max (record time to event)",
        format!("{mean_dur:.2} s / {max_dur:.2} s"),
        "",
        None,
    );
    report.add(
        p,
        "committed edits in no snapshot",
        format!("{missing} of {}", committed.len()),
        "0",
        Some(missing == 0 && monotonic),
    );
    report.add(
        p,
        "edits later than min-gap + snapshot time + 1 s check",
        format!("{late} (worst lag {worst_lag:.2} s)"),
        "0",
        Some(late == 0 && missing == 0),
    );
    report.add(
        p,
        "edits later than min-gap + snapshot time (no check slack)",
        format!("{late_strict} (worst by {worst_over:+.2} s)"),
        "",
        None,
    );
    // Growth against the changed pages.
    let repo_after = du(&lb.repo);
    let new_sum: u64 = snaps.iter().map(|s| s.3).sum();
    let (union_pages, union_deflated) = page_diff(a.shared, a.base, a.live);
    report.add(
        p,
        "repository growth (du; of it index.redb) / snapshots' new_bytes",
        format!(
            "{} ({}) / {}",
            mb((repo_after - repo_before) as f64),
            mb((index_len() - index_before) as f64),
            mb(new_sum as f64)
        ),
        "",
        None,
    );
    report.add(
        p,
        "pages changed first to last state (deflated)",
        format!("{union_pages} pages ({})", mb(union_deflated as f64)),
        "",
        None,
    );
    let pairs = env_f64("WATCH_PAIRS", 3.0) as usize;
    let n = snaps.len();
    if pairs > 0 && n >= 2 {
        let (pa, pb) = (
            a.work.join("watch-pair-a.db"),
            a.work.join("watch-pair-b.db"),
        );
        let mut sum_pages = 0u64;
        let mut sum_deflated = 0u64;
        let mut sum_new = 0u64;
        let picks: Vec<usize> = (0..pairs.min(n - 1))
            .map(|j| 1 + j * (n - 1) / pairs.min(n - 1))
            .collect();
        for &i in &picks {
            for (file, id) in [(&pa, &snaps[i - 1].4), (&pb, &snaps[i].4)] {
                let out = lb
                    .command()
                    .args(["--quiet", "cat", id.as_str(), "image"])
                    .stdout(fs::File::create(file).expect("pair file"))
                    .status()
                    .expect("cat");
                assert!(out.success(), "cat {id} image failed");
            }
            let (pages, deflated) = page_diff(a.shared, &pa, &pb);
            sum_pages += pages;
            sum_deflated += deflated;
            sum_new += snaps[i].3;
        }
        let _ = fs::remove_file(&pa);
        let _ = fs::remove_file(&pb);
        let k = picks.len() as f64;
        let est = sum_deflated as f64 / k * n as f64;
        report.add(
            p,
            format!(
                "per snapshot, {} sampled pairs: pages changed (deflated) / new_bytes",
                picks.len()
            ),
            format!(
                "{:.1} pages ({}) / {}",
                sum_pages as f64 / k,
                mb(sum_deflated as f64 / k),
                mb(sum_new as f64 / k)
            ),
            "",
            None,
        );
        let ratio = (repo_after - repo_before) as f64 / est.max(1.0);
        report.add(
            p,
            "growth (du; new_bytes) / changed pages deflated, extrapolated to all snapshots",
            format!(
                "{ratio:.2}x; {:.2}x ({} estimated changed)",
                new_sum as f64 / est.max(1.0),
                mb(est)
            ),
            "about the changed pages",
            None,
        );
    }
    report.add(
        p,
        "SIGTERM to exit",
        format!("{stop_s:.2} s, {status}"),
        "within seconds",
        Some(stop_s < 5.0 && status.success()),
    );
    if tail.is_none() {
        report.add(
            p,
            "snapshot after the last edit",
            "none within min-gap + 300 s",
            "one",
            Some(false),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let photos: u64 = args
        .first()
        .map(|s| s.parse().expect("PHOTOS"))
        .unwrap_or(190_000);
    let work = PathBuf::from(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("/tmp/lumina-bench-watch"),
    );
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("LUMINA_BENCH_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join("../shared/bench"));
    let bin = std::env::var_os("LUMINA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lumina-backup")));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release",
        bin.display()
    );
    let parts = std::env::var("WATCH_PARTS").unwrap_or_else(|_| "idle,change".into());
    let want = |p: &str| parts.split(',').any(|x| x == p);
    let idle_secs = env_f64("WATCH_IDLE_SECS", 600.0);
    let change_secs = env_f64("WATCH_CHANGE_SECS", 1800.0);
    let per_minute = env_f64("WATCH_EDITS_PER_MIN", 10.0);
    let min_gap = env_f64("WATCH_MIN_GAP_SECS", 5.0);
    fs::create_dir_all(&work).expect("workdir");
    let work = fs::canonicalize(&work).expect("workdir");

    let base = work.join(format!("realapp-s0-{photos}.db"));
    if !base.exists() {
        eprintln!(
            "generating {} ({photos} photos, rollback journal)...",
            base.display()
        );
        sh(&format!(
            "python3 '{}' create --photos {photos} --journal delete --out '{}' >/dev/null",
            shared.join("gen_realapp.py").display(),
            base.display()
        ));
    }
    let live = work.join("watch-live.db");
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", live.display()));
    }
    fs::copy(&base, &live).expect("copy of the database");
    let size = fs::metadata(&live).expect("live").len();
    let lb = Lb {
        bin: bin.clone(),
        repo: work.join("watch-repo"),
        home: work.join("watch-home"),
        state: work.join("watch-state"),
    };
    for d in [&lb.repo, &lb.home, &lb.state] {
        let _ = fs::remove_dir_all(d);
    }
    fs::create_dir_all(&lb.home).expect("home");
    lb.run(&["init"]);
    let t = Instant::now();
    lb.run(&["snapshot", &live.display().to_string()]);
    let full_s = t.elapsed().as_secs_f64();
    let mut report = Report { rows: Vec::new() };
    report.add(
        "setup",
        "database",
        format!("{} ({photos} photos, rollback journal)", mb(size as f64)),
        "",
        None,
    );
    report.add(
        "setup",
        "first (full) snapshot",
        format!("{full_s:.2} s"),
        "",
        None,
    );
    report.add(
        "setup",
        "load average at start",
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        "",
        None,
    );
    if want("idle") {
        idle(&lb, &live, &work, idle_secs, &mut report);
    }
    if want("change") {
        let a = ChangeArgs {
            shared: &shared,
            base: &base,
            live: &live,
            work: &work,
            secs: change_secs,
            per_minute,
            min_gap,
        };
        change(&lb, &a, &mut report);
    }

    let mut md = format!(
        "Watcher, {} real-app database; idle {idle_secs} s; change {change_secs} s at {per_minute} edits/min, min-gap {min_gap} s; binary {}\n\n| part | figure | value | target | |\n|---|---|---|---|---|\n",
        mb(size as f64),
        bin.display()
    );
    let mut csv = String::from("part,figure,value,target,verdict\n");
    for r in &report.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r.part, r.what, r.value, r.target, r.verdict
        );
        let _ = writeln!(
            csv,
            "{},{},{},{},{}",
            csv_field(r.part),
            csv_field(&r.what),
            csv_field(&r.value),
            csv_field(&r.target),
            csv_field(&r.verdict)
        );
    }
    println!("{md}");
    let _ = fs::write(work.join(format!("watch-{photos}.md")), &md);
    let date = sh("date -u +%F");
    let csv_path = std::env::var_os("LUMINA_BENCH_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join(format!("benches/results/{date}-watch-{photos}.csv")));
    fs::write(&csv_path, csv).expect("CSV");
    eprintln!(
        "CSV: {}; per edit: {}",
        csv_path.display(),
        work.join("watch-edits.csv").display()
    );
}
