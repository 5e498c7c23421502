//! Issue #8 (items 6, 17, 22, 26, 27, 28, 32): time and history are exact.
//!
//! Invariants guarded here, driving the real binary on real SQLite files with
//! the time zone set through `TZ` and snapshot times set through the test clock
//! (`LUMINA_BACKUP_TEST_NOW`):
//! - a local time means the instant with the UTC offset in force at that
//!   instant (DST), in `--at/--since/--until`, in listings and in retention's
//!   day buckets, in several zones, with or without the system's tzdata;
//! - a database's history follows its parent chain: after the clock went back,
//!   `latest`, `status` and `forget --keep-last` still pick the newest state,
//!   and the snapshot and the listing warn;
//! - `latest` is the newest snapshot of the database in question; ambiguous is
//!   refused naming the databases;
//! - `forget` never removes all of a database's snapshots or (by rules) its
//!   newest without `--allow-empty`; `forget SNAP...` removes exactly those;
//! - tags that would break listings are refused; control characters in notes
//!   and tags never reach the terminal raw;
//! - `config set keep-last 0` is refused; a date alone is a whole day; times out
//!   of range say the supported range.

mod common;

use std::path::Path;

use common::*;
use rusqlite::Connection;
use serde_json::Value;

const NY: &str = "America/New_York";

/// A command in time zone `tz`, with the test clock at `now` (RFC 3339).
fn lb_at(dir: &TestDir, tz: &str, now: &str) -> Lb {
    dir.lb().env("TZ", tz).env("LUMINA_BACKUP_TEST_NOW", now)
}

/// A command in time zone `tz` (clock: November, EST in New York).
fn lb_tz(dir: &TestDir, tz: &str) -> Lb {
    lb_at(dir, tz, "2026-11-20T12:00:00Z")
}

/// Takes a snapshot of `db` at instant `now`; returns the JSON output.
fn snap_at(dir: &TestDir, db: &Path, now: &str) -> Value {
    lb_at(dir, NY, now).arg("snapshot").arg(db).json()
}

/// The id `snapshots --at TIME` chooses (in zone `tz`).
fn chosen_at(dir: &TestDir, tz: &str, at: &str) -> String {
    let v = lb_tz(dir, tz).args(["snapshots", "--at", at]).json();
    let list = v.as_array().expect("array");
    assert_eq!(list.len(), 1, "{v}");
    id_of(&list[0])
}

fn ids(v: &Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .iter()
        .map(id_of)
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Issue #8 item 26: `restore --at` a local time uses the offset in force on
/// that date, not today's: in July (EDT) and in December (EST), whatever the
/// clock says now.
#[test]
fn restore_at_local_time_uses_the_offset_of_that_date() {
    let dir = TestDir::new("tz-restore-at");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "july-14");
    snap_at(&dir, &db, "2026-07-14T20:00:00Z"); // 16:00 EDT, 14 July
    set_value(&db, "july-15-0030");
    snap_at(&dir, &db, "2026-07-15T04:30:00Z"); // 00:30 EDT, 15 July
    set_value(&db, "dec-14-2000");
    snap_at(&dir, &db, "2026-12-15T01:00:00Z"); // 20:00 EST, 14 December
    set_value(&db, "dec-14-2330");
    snap_at(&dir, &db, "2026-12-15T04:30:00Z"); // 23:30 EST, 14 December

    for (clock, at, want) in [
        // Midnight starting 15 July is 04:00Z: the 00:30 snapshot is after it.
        ("2026-11-20T12:00:00Z", "2026-07-15 00:00", "july-14"),
        ("2026-07-20T12:00:00Z", "2026-07-15 00:00", "july-14"),
        // 23:45 EST on 14 December is 04:45Z: the 23:30 snapshot is before it.
        ("2026-07-20T12:00:00Z", "2026-12-14 23:45", "dec-14-2330"),
        ("2026-11-20T12:00:00Z", "2026-12-14 23:45", "dec-14-2330"),
    ] {
        let out = dir.path("out.db");
        let _ = std::fs::remove_file(&out);
        lb_at(&dir, NY, clock)
            .args(["restore", "--at", at, "--to"])
            .arg(&out)
            .ok();
        assert_eq!(value(&out), want, "--at {at} with the clock at {clock}");
    }
}

/// Issue #8 item 26: around the DST changes `--at` never picks a snapshot whose
/// local time is after the time typed: a skipped local time means the jump, a
/// repeated one its later instant.
#[test]
fn at_around_the_dst_changes() {
    let dir = TestDir::new("tz-dst");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "x");
    let before_jump = id_of(&snap_at(&dir, &db, "2026-03-08T06:50:00Z")); // 01:50 EST
    let after_jump = id_of(&snap_at(&dir, &db, "2026-03-08T07:10:00Z")); // 03:10 EDT
    assert_eq!(chosen_at(&dir, NY, "2026-03-08 02:30"), before_jump);
    assert_eq!(chosen_at(&dir, NY, "2026-03-08 03:10"), after_jump);

    let first_0110 = id_of(&snap_at(&dir, &db, "2026-11-01T05:10:00Z")); // 01:10 EDT
    let second_0120 = id_of(&snap_at(&dir, &db, "2026-11-01T06:20:00Z")); // 01:20 EST
    let _second_0140 = snap_at(&dir, &db, "2026-11-01T06:40:00Z"); // 01:40 EST
    assert_eq!(chosen_at(&dir, NY, "2026-11-01 01:30"), second_0120);
    assert_eq!(chosen_at(&dir, NY, "2026-11-01T01:15:00-04:00"), first_0110);
    // The listing tells the two 01:xx apart.
    let list = lb_tz(&dir, NY).args(["snapshots"]).ok().out();
    assert!(list.contains("2026-11-01 01:10:00 EDT"), "{list}");
    assert!(list.contains("2026-11-01 01:20:00 EST"), "{list}");
    assert!(list.contains("2026-03-08 01:50:00 EST"), "{list}");
    assert!(list.contains("2026-03-08 03:10:00 EDT"), "{list}");
    assert!(
        !list.contains("02:10:00"),
        "a local time that never existed: {list}"
    );
}

/// Issue #8 item 26: listings show each snapshot's local time with the offset
/// in force then, in several zones, also without the system's tzdata (the
/// database built into the binary).
#[test]
fn listings_in_several_zones() {
    let dir = TestDir::new("tz-list");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "x");
    snap_at(&dir, &db, "2026-07-15T04:30:00Z");
    snap_at(&dir, &db, "2026-12-15T04:30:00Z");
    let empty = dir.path("no-tzdata");
    std::fs::create_dir(&empty).expect("mkdir");
    for (tz, tzdir, want) in [
        (
            NY,
            None,
            ["2026-07-15 00:30:00 EDT", "2026-12-14 23:30:00 EST"],
        ),
        (
            NY,
            Some(&empty),
            ["2026-07-15 00:30:00 EDT", "2026-12-14 23:30:00 EST"],
        ),
        (
            "Europe/Paris",
            None,
            ["2026-07-15 06:30:00 CEST", "2026-12-15 05:30:00 CET"],
        ),
        (
            "Asia/Kolkata",
            None,
            ["2026-07-15 10:00:00 IST", "2026-12-15 10:00:00 IST"],
        ),
        (
            "UTC",
            None,
            ["2026-07-15 04:30:00 UTC", "2026-12-15 04:30:00 UTC"],
        ),
    ] {
        let mut lb = lb_tz(&dir, tz).args(["snapshots"]);
        if let Some(d) = tzdir {
            lb = lb.env("TZDIR", d);
        }
        let out = lb.ok().out();
        for w in want {
            assert!(
                out.contains(w),
                "TZ={tz} TZDIR={tzdir:?}: want {w} in\n{out}"
            );
        }
    }
}

/// Issue #8 item 26: `forget --keep-daily` puts each snapshot in its own local
/// day (00:30 EDT is the 15th, 23:30 EST is the 14th), whatever today's offset.
#[test]
fn keep_daily_uses_each_snapshots_local_day() {
    let dir = TestDir::new("tz-daily");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "x");
    let a = id_of(&snap_at(&dir, &db, "2026-07-14T20:00:00Z")); // 14 Jul 16:00 EDT
    let b = id_of(&snap_at(&dir, &db, "2026-07-15T03:00:00Z")); // 14 Jul 23:00 EDT
    let c = id_of(&snap_at(&dir, &db, "2026-07-15T04:30:00Z")); // 15 Jul 00:30 EDT
    let d = id_of(&snap_at(&dir, &db, "2026-12-14T15:00:00Z")); // 14 Dec 10:00 EST
    let e = id_of(&snap_at(&dir, &db, "2026-12-15T04:30:00Z")); // 14 Dec 23:30 EST
    let f = id_of(&snap_at(&dir, &db, "2026-12-15T05:30:00Z")); // 15 Dec 00:30 EST
    for clock in ["2026-11-20T12:00:00Z", "2027-07-20T12:00:00Z"] {
        let plan = lb_at(&dir, NY, clock)
            .args(["forget", "--keep-daily", "4", "--dry-run"])
            .json();
        assert_eq!(
            ids(&plan, "kept"),
            sorted(vec![b.clone(), c.clone(), e.clone(), f.clone()]),
            "clock {clock}: {plan}"
        );
        assert_eq!(ids(&plan, "removed"), sorted(vec![a.clone(), d.clone()]));
    }
    // Kolkata (+05:30): 20:00Z on 14 July is 01:30 on the 15th.
    let plan = lb_tz(&dir, "Asia/Kolkata")
        .args(["forget", "--keep-daily", "1", "--dry-run"])
        .json();
    assert_eq!(ids(&plan, "kept"), vec![f.clone()], "{plan}");
}

/// Issue #8 item 32: `--since D --until D` with a date alone is that whole
/// local day.
#[test]
fn since_and_until_one_date_is_that_day() {
    let dir = TestDir::new("tz-since-until");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "x");
    snap_at(&dir, &db, "2026-07-14T17:00:00Z"); // 14 Jul 22:30 IST
    let morning = id_of(&snap_at(&dir, &db, "2026-07-14T19:00:00Z")); // 15 Jul 00:30 IST
    let evening = id_of(&snap_at(&dir, &db, "2026-07-15T18:00:00Z")); // 15 Jul 23:30 IST
    snap_at(&dir, &db, "2026-07-15T19:00:00Z"); // 16 Jul 00:30 IST
    {
        let tz = "Asia/Kolkata";
        let v = lb_tz(&dir, tz)
            .args([
                "snapshots",
                "--since",
                "2026-07-15",
                "--until",
                "2026-07-15",
            ])
            .json();
        let got: Vec<String> = v.as_array().expect("array").iter().map(id_of).collect();
        assert_eq!(got, vec![morning.clone(), evening.clone()], "TZ={tz}");
    }
    let v = lb_tz(&dir, "UTC")
        .args([
            "snapshots",
            "--since",
            "2026-07-14",
            "--until",
            "2026-07-14",
        ])
        .json();
    assert_eq!(v.as_array().expect("array").len(), 2, "{v}");
}

/// Issue #8 item 32: a time outside what a snapshot time can hold names the
/// supported range.
#[test]
fn out_of_range_times_say_the_supported_range() {
    let dir = TestDir::new("tz-range");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "x");
    dir.lb().arg("snapshot").arg(&db).ok();
    for args in [
        vec!["snapshots", "--at", "9999-12-31"],
        vec!["restore", "--at", "9999-12-31", "--to", "x.db"],
        vec!["snapshots", "--since", "1500-01-01"],
    ] {
        let r = lb_tz(&dir, "UTC").args(&args).current_dir(dir.root()).run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(
            r.stderr.contains("supported range") && r.stderr.contains("2262-04-11"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// Issue #8 item 32: `config set keep-last 0` (and the other counts at 0) is
/// refused when set, not stored to make `forget` fail later.
#[test]
fn config_set_zero_counts_is_refused() {
    let dir = TestDir::new("cfg-zero");
    dir.init();
    for key in ["keep-last", "keep-daily", "keep-yearly"] {
        let r = dir.lb().args(["config", "set", key, "0"]).run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(
            r.stderr.contains(key) && r.stderr.contains("none"),
            "{}",
            r.stderr
        );
        let got = dir.lb().args(["config", "get", key]).ok().out();
        assert_eq!(got.trim(), "", "{key} was stored");
    }
    let r = dir.lb().args(["config", "set", "keep-within", "0d"]).run();
    r.expect_code(2).expect_one_stderr_line();
    let r = dir.lb().args(["forget", "--keep-daily", "0"]).run();
    r.expect_code(2);
}

/// Issue #8 item 27: a snapshot taken after the clock went back is still the
/// newest: `latest`, `status` and `forget --keep-last 1` pick it, and the
/// snapshot and the listing warn.
#[test]
fn clock_going_back_keeps_the_newest_state() {
    let dir = TestDir::new("clock-back");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "old");
    let parent = id_of(&snap_at(&dir, &db, "2026-05-01T12:00:00Z"));
    set_value(&db, "newest");
    // The clock went back two hours.
    let human = lb_at(&dir, "UTC", "2026-05-01T10:00:00Z")
        .arg("snapshot")
        .arg(&db)
        .ok()
        .out();
    assert!(
        human.contains("warning") && human.contains("clock went back"),
        "{human}"
    );
    let list = dir.lb().args(["snapshots"]).json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    let child = list
        .iter()
        .find(|s| s["id"] != parent.as_str())
        .expect("child");
    assert_eq!(child["clock_went_back"], true, "{child}");
    let child = id_of(child);
    let text = dir.lb().args(["snapshots"]).ok().out();
    assert!(text.contains("clock went back"), "{text}");
    // The JSON of the snapshot command carries the warning too.
    set_value(&db, "newest-2");
    let v = lb_at(&dir, "UTC", "2026-05-01T09:00:00Z")
        .arg("snapshot")
        .arg(&db)
        .json();
    let w = v["warnings"].to_string();
    assert!(w.contains("clock went back"), "{v}");
    assert_eq!(
        v["parent"],
        child.as_str(),
        "parent is the newest in history"
    );
    let newest = id_of(&v);

    let out = dir.path("out.db");
    dir.lb().args(["restore", "latest", "--to"]).arg(&out).ok();
    assert_eq!(value(&out), "newest-2");
    let status = dir.lb().args(["status"]).json();
    assert_eq!(
        status["databases"][0]["latest_id"],
        newest.as_str(),
        "{status}"
    );
    let plan = dir.lb().args(["forget", "--keep-last", "1"]).json();
    assert_eq!(ids(&plan, "kept"), vec![newest.clone()], "{plan}");
    assert_eq!(list_ids(&dir), vec![newest]);
}

/// Issue #8 item 28: a policy that keeps nothing of a database, or removes its
/// newest snapshot, is refused (exit 2, saying what it would do) unless
/// `--allow-empty`; `--dry-run` shows the plan and the warning.
#[test]
fn forget_refuses_to_empty_a_database_or_drop_its_newest() {
    let dir = TestDir::new("forget-empty");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "x");
    let first = id_of(&dir.lb().args(["snapshot", "--tag", "keep"]).arg(&db).json());
    dir.lb().arg("snapshot").arg(&db).ok();
    dir.lb().arg("snapshot").arg(&db).ok();
    let all = list_ids(&dir);

    let r = dir.lb().args(["forget", "--keep-tag", "no-such-tag"]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("remove all 3 snapshots"), "{}", r.stderr);
    assert!(r.stderr.contains("--allow-empty"), "{}", r.stderr);
    assert_eq!(list_ids(&dir), all, "nothing removed");

    let r = dir.lb().args(["forget", "--keep-tag", "keep"]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("newest snapshot"), "{}", r.stderr);
    assert_eq!(list_ids(&dir), all, "nothing removed");

    let dry = dir
        .lb()
        .args(["forget", "--keep-tag", "keep", "--dry-run"])
        .ok()
        .out();
    assert!(
        dry.contains("would be refused without --allow-empty"),
        "{dry}"
    );
    let dry = dir
        .lb()
        .args(["forget", "--keep-tag", "keep", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(
        dry["dangers"].as_array().expect("dangers").len(),
        1,
        "{dry}"
    );

    let done = dir
        .lb()
        .args(["forget", "--keep-tag", "keep", "--allow-empty"])
        .json();
    assert_eq!(ids(&done, "kept"), vec![first.clone()]);
    assert_eq!(list_ids(&dir), vec![first]);
}

/// Issue #8 item 6: `latest` is the newest snapshot of the database in
/// question: `diff latest --db A` compares with A's newest, `restore latest
/// --to A` restores A's, and without a database in a repository of several,
/// `latest` is refused naming them.
#[test]
fn latest_is_per_database() {
    let dir = TestDir::new("latest-db");
    dir.init();
    let a = dir.path("a.db");
    let b = dir.path("b.db");
    make_db(&a, "a1");
    let c = Connection::open(&b).expect("b");
    c.execute_batch("CREATE TABLE u(k TEXT PRIMARY KEY); INSERT INTO u VALUES ('b');")
        .expect("b schema");
    drop(c);
    dir.lb().arg("snapshot").arg(&a).ok();
    let b_snap = id_of(&dir.lb().arg("snapshot").arg(&b).json());
    set_value(&a, "a2");

    let d = dir.lb().args(["diff", "latest", "--db"]).arg(&a).json();
    let tables: Vec<&String> = d["tables"].as_object().expect("tables").keys().collect();
    assert_eq!(tables, vec!["t"], "{d}");
    assert_eq!(
        d["tables"]["t"]["changed"]
            .as_array()
            .expect("changed")
            .len(),
        1
    );
    assert!(d["tables"]["t"]["added"]
        .as_array()
        .expect("added")
        .is_empty());

    dir.lb()
        .args(["restore", "latest", "--force", "--to"])
        .arg(&a)
        .ok();
    assert_eq!(value(&a), "a1", "A's newest snapshot, not B's");

    for args in [
        vec!["show", "latest"],
        vec!["restore", "latest", "--to", "new.db"],
        vec!["forget", "latest"],
    ] {
        let r = dir.lb().args(&args).current_dir(dir.root()).run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(
            r.stderr.contains("a.db") && r.stderr.contains("b.db") && r.stderr.contains("--db"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let show = dir.lb().args(["show", "latest", "--db"]).arg(&b).json();
    assert_eq!(show["id"], b_snap.as_str());
    // `latest` beside a named snapshot is of that snapshot's database.
    let d = dir.lb().args(["diff", &b_snap, "latest"]).json();
    assert!(
        d["tables"]["u"]["changed"]
            .as_array()
            .expect("u")
            .is_empty(),
        "{d}"
    );
}

/// Issue #8 item 22: empty tags and tags with commas, newlines or control
/// characters are refused; notes print escaped on a terminal.
#[test]
fn tags_and_notes_cannot_break_listings() {
    let dir = TestDir::new("tags");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "x");
    for bad in ["", " ", "a,b", "two\nlines", "esc\u{1b}[31m"] {
        let r = dir.lb().args(["snapshot", "--tag", bad]).arg(&db).run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(r.stderr.contains("tag"), "{bad:?}: {}", r.stderr);
    }
    assert!(list_ids(&dir).is_empty(), "no snapshot was taken");
    let note = "line one\nfake 1234567890ab  line\u{1b}[31m red";
    dir.lb()
        .args(["snapshot", "--tag", "ok tag", "--note", note])
        .arg(&db)
        .ok();
    let r = dir.lb().args(["tag", "latest", "--add", "x\ny"]).run();
    r.expect_code(2).expect_one_stderr_line();
    let r = dir.lb().args(["tag", "latest", "--add", ""]).run();
    r.expect_code(2).expect_one_stderr_line();

    let text = dir.lb().args(["snapshots"]).ok().out();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("line one\\nfake"), "{text}");
    let show = dir.lb().args(["show", "latest"]).ok().out();
    assert!(
        !show.contains('\u{1b}') && show.contains("\\u{1b}"),
        "{show:?}"
    );
    // JSON keeps the note as it is (JSON escapes it).
    let v = dir.lb().args(["snapshots"]).json();
    assert_eq!(v[0]["note"], note);
}

/// Issue #8 item 17: `forget SNAP...` forgets exactly the snapshots named
/// (dry run first), also when their data is lost; forgetting every snapshot
/// of a database needs `--allow-empty`.
#[test]
fn forget_named_snapshots() {
    let dir = TestDir::new("forget-named");
    dir.init();
    let db = dir.path("app.db");
    make_db(&db, "one");
    let s1 = id_of(&dir.lb().arg("snapshot").arg(&db).json());
    set_value(&db, "two");
    let s2 = id_of(&dir.lb().arg("snapshot").arg(&db).json());
    set_value(&db, "three");
    let s3 = id_of(&dir.lb().arg("snapshot").arg(&db).json());

    let dry = dir.lb().args(["forget", &s2[..10], "--dry-run"]).json();
    assert_eq!(ids(&dry, "removed"), vec![s2.clone()]);
    assert_eq!(list_ids(&dir).len(), 3, "dry run changed nothing");
    let r = dir.lb().args(["forget", &s2, "--keep-last", "1"]).run();
    r.expect_code(2).expect_one_stderr_line();

    let done = dir.lb().args(["forget", &s2[..10]]).json();
    assert_eq!(ids(&done, "removed"), vec![s2.clone()]);
    assert_eq!(ids(&done, "kept"), sorted(vec![s1.clone(), s3.clone()]));
    assert_eq!(sorted(list_ids(&dir)), sorted(vec![s1.clone(), s3.clone()]));

    // Lose every pack: naming a snapshot still forgets it.
    for p in pack_files(&dir.repo()) {
        std::fs::remove_file(p).expect("remove pack");
    }
    dir.lb().args(["forget", "latest"]).ok();
    assert_eq!(list_ids(&dir), vec![s1.clone()]);
    let r = dir.lb().args(["forget", &s1]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(
        r.stderr.contains("remove the only snapshot"),
        "{}",
        r.stderr
    );
    dir.lb().args(["forget", &s1, "--allow-empty"]).ok();
    assert!(list_ids(&dir).is_empty());
}
