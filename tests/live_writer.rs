//! Invariant: a snapshot of a database that another process keeps writing is one
//! consistent, committed point in time. A python3 writer moves amounts between
//! accounts (the total never changes), appends each move to a ledger, and bumps a
//! counter, all in one transaction; every restored snapshot passes
//! `integrity_check`, keeps the total, has counter = ledger rows, and has every
//! balance equal to what its ledger says. Both WAL and rollback-journal modes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ACCOUNTS: i64 = 100;
const START: i64 = 1000;

const WRITER: &str = r#"
import os, random, sqlite3, sys, time
db, mode, stop = sys.argv[1], sys.argv[2], sys.argv[3]
con = sqlite3.connect(db, timeout=60, isolation_level=None)
con.execute("PRAGMA journal_mode=%s" % mode)
rng = random.Random(7)
n = 0
print("ready", flush=True)
deadline = time.time() + 60
while not os.path.exists(stop) and time.time() < deadline:
    con.execute("BEGIN IMMEDIATE")
    a, b = rng.randrange(100), rng.randrange(100)
    amount = rng.randrange(1, 50)
    con.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, a))
    con.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, b))
    con.execute("INSERT INTO ledger(src, dst, amount, pad) VALUES (?, ?, ?, ?)",
                (a, b, amount, os.urandom(rng.randrange(50, 1500))))
    if n % 97 == 0:
        # Now and then a bigger transaction touching many pages.
        con.execute("UPDATE ledger SET pad = randomblob(length(pad)) WHERE id % 13 = ?", (n % 13,))
    con.execute("UPDATE counter SET n = n + 1")
    con.execute("COMMIT")
    n += 1
print(n, flush=True)
"#;

fn setup(db: &Path, mode: &str) {
    let mut c = open(db);
    c.execute_batch(&format!(
        "PRAGMA journal_mode = {mode};
         CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE ledger(id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, pad BLOB);
         CREATE TABLE counter(n INTEGER NOT NULL);
         INSERT INTO counter VALUES (0);"
    ))
    .expect("schema");
    let tx = c.transaction().expect("tx");
    for id in 0..ACCOUNTS {
        tx.execute("INSERT INTO accounts VALUES (?1, ?2)", [id, START])
            .expect("account");
    }
    tx.commit().expect("commit");
}

/// Checks the invariants on a restored image; returns the counter.
fn check_invariants(path: &Path) -> i64 {
    assert!(
        integrity_ok(path),
        "{}: integrity_check failed",
        path.display()
    );
    let c = open(path);
    let total: i64 = c
        .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
        .expect("sum");
    assert_eq!(
        total,
        ACCOUNTS * START,
        "{}: money was created or lost",
        path.display()
    );
    let n: i64 = c
        .query_row("SELECT n FROM counter", [], |r| r.get(0))
        .expect("counter");
    let rows: i64 = c
        .query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))
        .expect("ledger");
    assert_eq!(n, rows, "{}: counter and ledger disagree", path.display());
    let mismatched: i64 = c
        .query_row(
            "SELECT count(*) FROM accounts a WHERE a.balance != ?1
               - coalesce((SELECT sum(amount) FROM ledger WHERE src = a.id), 0)
               + coalesce((SELECT sum(amount) FROM ledger WHERE dst = a.id), 0)",
            [START],
            |r| r.get(0),
        )
        .expect("balances");
    assert_eq!(
        mismatched,
        0,
        "{}: balances disagree with the ledger",
        path.display()
    );
    n
}

fn snapshots_during_writes(mode: &str) {
    let t = TestDir::new(&format!("live-{mode}"));
    t.init();
    let db = t.path("live.db");
    setup(&db, mode);
    let script = t.path("writer.py");
    std::fs::write(&script, WRITER).expect("writing the writer");
    let stop = t.path("stop");
    let mut writer = Command::new("python3")
        .arg(&script)
        .arg(&db)
        .arg(mode)
        .arg(&stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut lines = BufReader::new(writer.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().expect("writer output").expect("line"), "ready");
    std::thread::sleep(Duration::from_millis(300));

    let mut ids = Vec::new();
    let start = Instant::now();
    for _ in 0..6 {
        let s = t.lb().args(["snapshot"]).arg(&db).json();
        ids.push(id_of(&s));
        std::thread::sleep(Duration::from_millis(150));
    }
    let elapsed = start.elapsed();
    std::fs::write(&stop, b"").expect("stop file");
    let status = writer.wait().expect("waiting for the writer");
    let written: i64 = lines
        .next()
        .expect("writer's count")
        .expect("line")
        .trim()
        .parse()
        .expect("a number");
    let mut err = String::new();
    if let Some(mut e) = writer.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "the writer failed: {err}");
    eprintln!("{mode}: writer committed {written} transactions; 6 snapshots in {elapsed:?}");

    let mut counters = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let out = t.path(&format!("restored-{i}.db"));
        t.lb().args(["restore", id, "--to"]).arg(&out).ok();
        counters.push(check_invariants(&out));
    }
    eprintln!("{mode}: counters seen by the snapshots: {counters:?}");
    assert!(
        counters.windows(2).all(|w| w[0] <= w[1]),
        "snapshots went back in time: {counters:?}"
    );
    assert!(
        counters.last() > counters.first(),
        "the writer made no progress between snapshots: {counters:?}"
    );
    // The source itself is intact and complete.
    assert_eq!(check_invariants(&db), written);
    t.lb().args(["verify"]).ok();
}

#[test]
fn snapshots_of_a_wal_database_being_written_are_consistent() {
    snapshots_during_writes("WAL");
}

#[test]
fn snapshots_of_a_rollback_journal_database_being_written_are_consistent() {
    snapshots_during_writes("DELETE");
}
