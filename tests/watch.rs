//! `watch`: the real binary over real databases and repositories, stopped by
//! real signals; `schedule install` output checked; hooks and the webhook
//! against a loopback server this test starts.

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{create_lumina, open, Lb, TestDir};

fn lb(t: &TestDir) -> Lb {
    t.lb().env("LUMINA_BACKUP_STATE_DIR", t.path("state"))
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig}");
}

fn pid_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Bytes the process has read through read(2) and friends so far.
fn rchar(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar")
}

/// Stops the watcher with `sig` and collects its JSON events, asserting it
/// exits within `within`.
fn stop(mut child: Child, sig: &str, within: Duration) -> (Vec<Value>, String, Option<i32>) {
    signal(&child, sig);
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(
            start.elapsed() < within,
            "watch did not stop within {within:?} of {sig}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON line ({e}): {l}")))
        .collect();
    (
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

fn snapshots(t: &TestDir) -> usize {
    lb(t)
        .args(["snapshots", "--json"])
        .ok()
        .json()
        .as_array()
        .expect("list")
        .len()
}

fn verify_clean(t: &TestDir) {
    lb(t).args(["verify", "--read-data"]).ok();
}

#[test]
fn watch_snapshots_while_a_writer_works_and_stops_on_sigterm() {
    let t = TestDir::new("watch-writer");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 200, 1);
    let child = lb(&t)
        .args([
            "watch",
            "--on-change",
            "--min-gap",
            "1s",
            "--check-every",
            "1s",
            "--json",
        ])
        .arg(&db)
        .spawn_piped();
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let db = db.clone();
        let writing = writing.clone();
        std::thread::spawn(move || {
            let c = open(&db);
            let mut n = 0;
            while writing.load(Ordering::SeqCst) {
                c.execute(
                    "UPDATE metadata SET lastModified = lastModified + 1 WHERE rowid = (SELECT min(rowid) FROM metadata)",
                    [],
                )
                .expect("the app writes while watch runs");
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            n
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    writing.store(false, Ordering::SeqCst);
    assert!(writer.join().expect("writer") > 10);
    std::thread::sleep(Duration::from_secs(3));
    let (events, stderr, code) = stop(child, "TERM", Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events[0]["event"], "started", "{events:?}");
    assert_eq!(
        events.last().expect("events")["event"],
        "stopped",
        "{events:?}"
    );
    let taken = count(&events, "snapshot-taken");
    assert!(taken >= 2, "{events:?}");
    // Debounced: at most one per min-gap (1 s) over the ~8 s run, plus the first.
    assert!(taken <= 10, "{events:?}");
    assert_eq!(snapshots(&t), taken);
    // The last change is in the last snapshot: nothing differs from the live db.
    let diff = lb(&t)
        .args(["diff", "latest", "--json", "--db"])
        .arg(&db)
        .ok()
        .json();
    let tables = diff["tables"].as_object().expect("tables");
    for (name, d) in tables {
        for k in ["added", "removed", "changed"] {
            assert!(
                d[k].as_array().is_some_and(|a| a.is_empty()),
                "{name}: {diff}"
            );
        }
    }
    verify_clean(&t);
}

#[test]
fn an_idle_database_gets_no_snapshot_and_its_pages_are_not_read() {
    let t = TestDir::new("watch-idle");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 2000, 2);
    // Let the files' times settle (changes within 2 s are not trusted), so
    // the snapshot records the database's state.
    std::thread::sleep(Duration::from_millis(2500));
    lb(&t).arg("snapshot").arg(&db).ok();
    let mut child = lb(&t)
        .args([
            "watch",
            "--on-change",
            "--min-gap",
            "1s",
            "--check-every",
            "100ms",
            "--json",
        ])
        .arg(&db)
        .spawn_piped();
    // The first look (the exact state, through SQLite) says "unchanged";
    // from then on each check reads headers only.
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut events: Vec<Value> = Vec::new();
    while !events.iter().any(|e| e["event"] == "skipped-unchanged") {
        let line = lines.next().expect("watch ended early").expect("line");
        events.push(serde_json::from_str(&line).expect("JSON line"));
    }
    let before = rchar(child.id());
    std::thread::sleep(Duration::from_secs(3));
    let after = rchar(child.id());
    let size = std::fs::metadata(&db).expect("db").len();
    let reader = std::thread::spawn(move || {
        lines
            .map(|l| serde_json::from_str::<Value>(&l.expect("line")).expect("JSON line"))
            .collect::<Vec<_>>()
    });
    let (_, stderr, code) = stop(child, "INT", Duration::from_secs(10));
    events.extend(reader.join().expect("reader"));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events.last().expect("events")["event"], "stopped");
    assert_eq!(count(&events, "snapshot-taken"), 0, "{events:?}");
    assert_eq!(snapshots(&t), 1);
    // Thirty idle checks read headers only (20 bytes of the database's, 32
    // of an empty `-wal`'s at most): less than one page of the database.
    let read = after - before;
    assert!(
        read < 4096,
        "{read} bytes read by idle checks of a {size}-byte database"
    );
}

#[test]
fn sigterm_mid_snapshot_abandons_it_and_the_repository_verifies() {
    let t = TestDir::new("watch-sigterm");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 500, 3);
    let child = lb(&t)
        .env("LUMINA_BACKUP_STOP_AT", "capture-staged")
        .args(["watch", "--every", "1h", "--json"])
        .arg(&db)
        .spawn_piped();
    let deadline = Instant::now() + Duration::from_secs(120);
    while pid_state(child.id()) != Some('T') {
        assert!(
            Instant::now() < deadline,
            "watch never reached its stop point"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGTERM waits while the process is stopped; SIGCONT delivers it.
    signal(&child, "TERM");
    let (events, stderr, code) = stop(child, "CONT", Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(events.last().expect("events")["event"], "stopped");
    assert_eq!(
        events.last().expect("events")["abandoned"],
        true,
        "{events:?}"
    );
    assert_eq!(count(&events, "snapshot-taken"), 0);
    assert_eq!(snapshots(&t), 0);
    verify_clean(&t);
}

/// A loopback HTTP server that records each request's body.
fn webhook_server() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().expect("clone"));
            let mut len = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = s.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (url, rx)
}

#[test]
fn failures_are_recorded_hooks_run_and_the_webhook_hears() {
    let t = TestDir::new("watch-failures");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 50, 4);
    let (url, bodies) = webhook_server();
    let hook_log = t.path("hooks.log");
    let hook = format!(
        "echo \"$LUMINA_BACKUP_EVENT $LUMINA_BACKUP_OPERATION $LUMINA_BACKUP_CONSECUTIVE $LUMINA_BACKUP_SNAPSHOT\" >> {}",
        hook_log.display()
    );
    // A database that is not there yet: snapshots fail, with backoff.
    let missing = t.path("later.db");
    let child = lb(&t)
        .args([
            "watch",
            "--every",
            "1s",
            "--json",
            "--on-success",
            &hook,
            "--on-failure",
            &hook,
            "--webhook",
            &url,
        ])
        .arg(&missing)
        .spawn_piped();
    let body = bodies
        .recv_timeout(Duration::from_secs(30))
        .expect("webhook called");
    let doc: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(doc["event"], "failure", "{doc}");
    assert_eq!(doc["operation"], "snapshot");
    // Wait for a second failure (after the 2 s backoff).
    let body = bodies
        .recv_timeout(Duration::from_secs(30))
        .expect("second failure");
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["consecutive"], 2, "{doc}");
    let status = lb(&t).args(["status", "--json"]).ok().json();
    let key = missing.display().to_string();
    let entry = &status["health"]["databases"][&key];
    assert!(
        entry["consecutive_failures"].as_u64() >= Some(2),
        "{status}"
    );
    assert_eq!(entry["last_failure"]["operation"], "snapshot");
    assert!(entry["last_success_ns"].is_null());
    // The database appears: the next try succeeds and the count resets.
    std::fs::copy(&db, &missing).expect("copy");
    let body = loop {
        let b = bodies
            .recv_timeout(Duration::from_secs(30))
            .expect("success");
        if b.contains("snapshot-taken") {
            break b;
        }
    };
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    let (events, stderr, code) = stop(child, "TERM", Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(count(&events, "failure") >= 2);
    let status = lb(&t).args(["status", "--json"]).ok().json();
    let real = std::fs::canonicalize(&missing)
        .expect("db")
        .display()
        .to_string();
    let entry = &status["health"]["databases"][&real];
    assert_eq!(entry["consecutive_failures"], 0, "{status}");
    assert_eq!(entry["last_success"], doc["snapshot"]);
    let human = lb(&t).arg("status").ok().out();
    assert!(human.contains("last success"), "{human}");
    // Hooks ran with the details in their environment.
    let log = std::fs::read_to_string(&hook_log).expect("hook log");
    assert!(log.contains("failure snapshot 1 "), "{log}");
    assert!(log.contains("failure snapshot 2 "), "{log}");
    let snap = doc["snapshot"].as_str().expect("id");
    assert!(log.contains(&format!("snapshot-taken   {snap}")), "{log}");
}

#[test]
fn retention_from_the_config_file_is_applied() {
    let t = TestDir::new("watch-retention");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 50, 5);
    let child = watch_on_change(&t, &db, "retention = 2\n");
    let c = open(&db);
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(3500));
        c.execute("UPDATE metadata SET lastModified = ?1", [i])
            .expect("write");
    }
    std::thread::sleep(Duration::from_millis(3000));
    let (events, stderr, code) = stop(child, "TERM", Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    let taken = count(&events, "snapshot-taken");
    assert!(taken >= 3, "{events:?}");
    let forgotten: u64 = events.iter().filter_map(|e| e["forgotten"].as_u64()).sum();
    assert_eq!(forgotten as usize, taken - 2, "{events:?}");
    assert_eq!(snapshots(&t), 2);
    verify_clean(&t);
}

/// Starts `watch --json` with a configuration file: the test's repository,
/// `db` snapshotted on change (1 s min gap), and `extra` keys.
fn watch_on_change(t: &TestDir, db: &std::path::Path, extra: &str) -> Child {
    let config = t.path("backup.toml");
    std::fs::write(
        &config,
        format!(
            "repository = {:?}\ndatabases = [{:?}]\nschedule = \"manual\"\non_change = true\nmin_gap = \"1s\"\n{extra}",
            t.repo().display().to_string(),
            db.display().to_string()
        ),
    )
    .expect("config");
    lb(t)
        .args(["watch", "--json", "--config"])
        .arg(&config)
        .spawn_piped()
}

/// Polls `status --json` until `ok` holds of it, or fails after `within`.
fn wait_status(t: &TestDir, within: Duration, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let st = lb(t).args(["status", "--json"]).ok().json();
        if ok(&st) {
            return st;
        }
        assert!(start.elapsed() < within, "{what} within {within:?}: {st}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A command on another repository (a remote), same home and state folder.
fn on(t: &TestDir, repo: &str) -> Lb {
    Lb::new(std::path::Path::new(repo), t.root()).env("LUMINA_BACKUP_STATE_DIR", t.path("state"))
}

fn position(events: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

#[test]
fn copies_to_a_remote_that_is_down_fail_are_reported_and_succeed_when_it_is_back() {
    let t = TestDir::new("watch-remote-down");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 50, 4);
    let mut w = servers::Webdav::start(&t.path("dav"), None);
    let remote = w.url("copy");
    w.kill();
    let child = watch_on_change(&t, &db, &format!("remotes = [{remote:?}]\n"));
    // The remote is down: the snapshot is taken all the same, the copy fails
    // and the failure is on record for monitors.
    let st = wait_status(
        &t,
        Duration::from_secs(60),
        "a failed copy recorded",
        |st| st["health"]["remotes"][&remote]["consecutive_failures"].as_u64() >= Some(1),
    );
    assert_eq!(
        st["health"]["remotes"][&remote]["last_failure"]["operation"], "copy",
        "{st}"
    );
    assert!(st["health"]["remotes"][&remote]["last_success_ns"].is_null());
    assert!(snapshots(&t) >= 1, "the snapshot waited for the remote");
    // The remote comes back: a later try sends what it lacks.
    w.restart();
    wait_status(&t, Duration::from_secs(90), "the copy to succeed", |st| {
        let e = &st["health"]["remotes"][&remote];
        e["consecutive_failures"] == 0 && !e["last_success_ns"].is_null()
    });
    // A change after that reaches the remote too.
    open(&db)
        .execute("UPDATE metadata SET lastModified = 42", [])
        .expect("write");
    let start = Instant::now();
    loop {
        let local = snapshots(&t);
        let there = on(&t, &remote)
            .args(["snapshots", "--json"])
            .ok()
            .json()
            .as_array()
            .map_or(0, Vec::len);
        if local >= 2 && there == local {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the remote holds {there} of {local} snapshots"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (events, stderr, code) = stop(child, "TERM", Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    let failed = position(&events, |e| {
        e["event"] == "failure" && e["remote"] == remote.as_str() && e["operation"] == "copy"
    })
    .unwrap_or_else(|| panic!("no failed copy: {events:?}"));
    let taken = position(&events, |e| e["event"] == "snapshot-taken").expect("a snapshot");
    let done = position(&events, |e| {
        e["event"] == "copy-done" && e["copied"].as_u64() >= Some(1)
    })
    .unwrap_or_else(|| panic!("no copy: {events:?}"));
    assert!(taken < done && failed < done, "{events:?}");
    // The copy is whole: it verifies, reading every byte.
    on(&t, &remote).args(["verify", "--read-data"]).ok();
    let human = lb(&t).arg("status").ok().out();
    assert!(
        human.contains(&format!("remote {remote}: last success")),
        "{human}"
    );
}

#[test]
fn restore_drills_run_on_their_schedule_and_a_corrupt_snapshot_fails_its_drill() {
    let t = TestDir::new("watch-drill");
    t.init();
    let good = t.path("good.db");
    create_lumina(&good, 30, 3);
    let bad = t.path("bad.db");
    common::make_db_only_integrity_check_faults(&bad);
    let run = || {
        lb(&t)
            .args(["watch", "--json", "--every", "1h", "--restore-drill", "1d"])
            .arg(&good)
            .arg(&bad)
            .spawn_piped()
    };
    let child = run();
    let st = wait_status(&t, Duration::from_secs(60), "both drills", |st| {
        st["health"]["drills"]
            .as_object()
            .is_some_and(|d| d.len() == 2)
    });
    let (events, stderr, code) = stop(child, "TERM", Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    let good_key = std::fs::canonicalize(&good)
        .expect("good")
        .display()
        .to_string();
    let bad_key = std::fs::canonicalize(&bad)
        .expect("bad")
        .display()
        .to_string();
    let passed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "drill-passed")
        .collect();
    assert_eq!(passed.len(), 1, "{events:?}");
    assert_eq!(passed[0]["db"], good.display().to_string());
    let failed = events
        .iter()
        .find(|e| e["event"] == "failure" && e["operation"] == "restore-drill")
        .unwrap_or_else(|| panic!("no failed drill: {events:?}"));
    assert_eq!(failed["db"], bad.display().to_string());
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("integrity_check")),
        "{failed}"
    );
    assert!(
        !st["health"]["drills"][&good_key]["last_success_ns"].is_null(),
        "{st}"
    );
    assert_eq!(
        st["health"]["drills"][&bad_key]["last_failure"]["operation"], "restore-drill",
        "{st}"
    );
    // Restarted within the interval: the drills are not run again.
    let child = run();
    std::thread::sleep(Duration::from_secs(4));
    let (events, stderr, code) = stop(child, "TERM", Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "drill-passed" || e["operation"] == "restore-drill"),
        "{events:?}"
    );
    let human = lb(&t).arg("status").ok().out();
    assert!(human.contains("restore drill of"), "{human}");
}

#[test]
fn watch_creates_the_repository_its_file_names_with_the_files_compression_and_encryption() {
    let t = TestDir::new("watch-creates");
    let db = t.path("lumina.db");
    create_lumina(&db, 20, 6);
    let repo = t.path("new-repo");
    let config = t.path("backup.toml");
    std::fs::write(
        &config,
        format!(
            "repository = {:?}\ndatabases = [{:?}]\nschedule = \"1h\"\ncompression = 12\nencryption = {{ passphrase_env = \"APP_SECRET\" }}\n",
            repo.display().to_string(),
            db.display().to_string()
        ),
    )
    .expect("config");
    let child = Lb::without_repo(t.root())
        .env("LUMINA_BACKUP_STATE_DIR", t.path("state"))
        .env("APP_SECRET", "app secret")
        .args(["watch", "--json", "--config"])
        .arg(&config)
        .spawn_piped();
    let start = Instant::now();
    while Lb::new(&repo, t.root())
        .env("LUMINA_BACKUP_PASSWORD", "app secret")
        .args(["snapshots", "--json"])
        .run()
        .code
        != Some(0)
        || snapshots_with(&repo, &t) == 0
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no snapshot");
        std::thread::sleep(Duration::from_millis(250));
    }
    let (_, stderr, code) = stop(child, "TERM", Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    let cfg = Lb::new(&repo, t.root())
        .env("LUMINA_BACKUP_PASSWORD", "app secret")
        .args(["config", "show"])
        .json();
    assert_eq!(cfg["repository"]["zstd-level"], 12, "{cfg}");
    assert_eq!(cfg["repository"]["encrypted"], true, "{cfg}");
    // Encrypted under the passphrase the file points to: another is refused.
    Lb::new(&repo, t.root())
        .env("LUMINA_BACKUP_PASSWORD", "wrong")
        .args(["snapshots"])
        .run()
        .expect_code(2);
}

fn snapshots_with(repo: &std::path::Path, t: &TestDir) -> usize {
    Lb::new(repo, t.root())
        .env("LUMINA_BACKUP_PASSWORD", "app secret")
        .args(["snapshots"])
        .json()
        .as_array()
        .map_or(0, Vec::len)
}
