//! `copy --to` (issue #11 item 4, issue #13 "copy carries the chain").
//! Invariants: a copy creates a missing destination with the source's chunking;
//! sends only what the destination lacks (a second copy sends nothing and adds
//! nothing); the destination verifies (`verify --read-data`, `verify --chain`),
//! restores the same bytes, and after a full copy proves the same history (same
//! chain head, `--expect-head` of the source holds there); tag edits and
//! deletions travel; a subset copy, plain<->encrypted and two master keys give
//! a destination whose own chain is clean; a SIGKILL or a dead server during a
//! copy leaves a destination that verifies, and the rerun sends only the rest.
//! Directions: local->local, local->S3 (Garage), S3->WebDAV (rclone),
//! WebDAV->local, started on loopback by the tests.

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::path::Path;

use common::{create_lumina, dump, Lb, TestDir};
use serde_json::Value;
use servers::{Garage, Webdav};

/// A command on `repo` (a path or URL) with the remote cache and the servers'
/// environment.
fn lb(t: &TestDir, repo: &str, env: &[(String, String)]) -> Lb {
    let mut l = Lb::new(Path::new(repo), t.root())
        .env("LUMINA_BACKUP_CACHE_DIR", t.path("cache"))
        .env("LUMINA_BACKUP_REMOTE_RETRIES", "2");
    for (k, v) in env {
        l = l.env(k, v);
    }
    l
}

fn edit(db: &Path, n: u32) {
    let c = common::open(db);
    c.execute(
        "UPDATE metadata SET aiDescription = ?1 WHERE rowid <= ?2",
        rusqlite::params![format!("edited {n}"), n],
    )
    .expect("edit");
}

/// A source repository at `repo` with three snapshots of one database (the
/// second tagged after the fact, the first forgotten), returning the database.
fn source_with_history(t: &TestDir, repo: &str, env: &[(String, String)]) -> std::path::PathBuf {
    let db = t.path("lumina.db");
    create_lumina(&db, 300, 7);
    lb(t, repo, env).arg("init").ok();
    let first = lb(t, repo, env).args(["snapshot"]).arg(&db).json();
    edit(&db, 20);
    let second = lb(t, repo, env).args(["snapshot"]).arg(&db).json();
    lb(t, repo, env)
        .args(["tag", second["id"].as_str().expect("id"), "--add", "kept"])
        .ok();
    edit(&db, 40);
    lb(t, repo, env).args(["snapshot"]).arg(&db).ok();
    lb(t, repo, env)
        .args(["forget", first["id"].as_str().expect("id")])
        .ok();
    db
}

fn copy(t: &TestDir, from: &str, to: &str, env: &[(String, String)]) -> Value {
    lb(t, from, env).args(["copy", "--to", to]).json()
}

fn head(t: &TestDir, repo: &str, env: &[(String, String)]) -> String {
    let s = lb(t, repo, env).args(["status"]).json();
    s["chain_head"]
        .as_str()
        .or_else(|| s["chain_head"]["id"].as_str())
        .unwrap_or_else(|| panic!("a chain head: {s}"))
        .to_string()
}

/// The snapshots as `snapshots --json` lists them: (time, tags).
fn listing(t: &TestDir, repo: &str, env: &[(String, String)]) -> Vec<(String, Value)> {
    let v = lb(t, repo, env).args(["snapshots"]).json();
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| {
            (
                s["time"].as_str().expect("time").to_string(),
                s["tags"].clone(),
            )
        })
        .collect()
}

/// `verify --read-data` and `verify --chain` are clean at `repo`, and its
/// latest snapshot restores to `expected`.
fn sound(t: &TestDir, repo: &str, env: &[(String, String)], expected: &common::Dump, out: &str) {
    let v = lb(t, repo, env).args(["verify", "--read-data"]).json();
    assert_eq!(v["ok"], true, "{repo}: {v}");
    let v = lb(t, repo, env).args(["verify", "--chain"]).json();
    assert_eq!(v["ok"], true, "{repo}: {v}");
    let target = t.path(out);
    lb(t, repo, env)
        .args(["restore", "latest", "--to"])
        .arg(&target)
        .ok();
    assert!(dump(&target) == *expected, "{repo}: restored other rows");
}

#[test]
fn local_copy_mirrors_the_history_and_a_second_copy_sends_nothing() {
    let t = TestDir::new("copy-local");
    let src = t.path("src").display().to_string();
    let dst = t.path("dst").display().to_string();
    let db = source_with_history(&t, &src, &[]);
    let r = copy(&t, &src, &dst, &[]);
    assert_eq!(r["created"], true, "{r}");
    assert_eq!(r["mode"], "mirror", "{r}");
    assert_eq!(r["snapshots_copied"], 2, "{r}");
    assert!(r["bytes_sent"].as_u64().expect("bytes") > 0, "{r}");
    assert!(
        r["chain_events_copied"].as_u64().expect("events") >= 2,
        "{r}"
    );
    // The same history: same listing (tags included), same head, and the
    // source's head is a witness the destination satisfies.
    assert_eq!(listing(&t, &src, &[]), listing(&t, &dst, &[]));
    let h = head(&t, &src, &[]);
    assert_eq!(h, head(&t, &dst, &[]));
    let v = lb(&t, &dst, &[])
        .args(["verify", "--chain", "--expect-head", &h])
        .json();
    assert_eq!(v["ok"], true, "{v}");
    sound(&t, &dst, &[], &dump(&db), "r1.db");
    // A second copy sends and adds nothing.
    let again = copy(&t, &src, &dst, &[]);
    assert_eq!(again["snapshots_copied"], 0, "{again}");
    assert_eq!(again["bytes_sent"], 0, "{again}");
    assert_eq!(again["already_present"], 2, "{again}");
    // New history at the source (a snapshot, a tag edit, a forget) travels.
    edit(&db, 60);
    let newest = lb(&t, &src, &[]).args(["snapshot"]).arg(&db).json();
    lb(&t, &src, &[])
        .args(["tag", newest["id"].as_str().expect("id"), "--add", "newest"])
        .ok();
    let list = lb(&t, &src, &[]).args(["snapshots"]).json();
    let oldest = list[0]["id"].as_str().expect("id").to_string();
    lb(&t, &src, &[]).args(["forget", &oldest]).ok();
    let r = copy(&t, &src, &dst, &[]);
    assert_eq!(r["mode"], "mirror", "{r}");
    assert_eq!(r["snapshots_copied"], 1, "{r}");
    assert_eq!(r["snapshots_removed"], 1, "{r}");
    assert_eq!(listing(&t, &src, &[]), listing(&t, &dst, &[]));
    assert_eq!(head(&t, &src, &[]), head(&t, &dst, &[]));
    sound(&t, &dst, &[], &dump(&db), "r2.db");
}

/// Chunks the source holds in two packs (an index rebuilt while one pack was
/// set aside, so the next snapshot stored its pages again, then the pack put
/// back) go to the destination's index once: both packs arrive whole in one
/// index batch, and the destination holds as many chunks as the source and
/// restores both snapshots.
#[test]
fn chunks_stored_twice_at_the_source_are_indexed_once() {
    let t = TestDir::new("copy-dup");
    let src = t.path("src").display().to_string();
    let dst = t.path("dst").display().to_string();
    let db = t.path("dup.db");
    common::blobs_db(&db, "delete", 300, 2000);
    lb(&t, &src, &[]).arg("init").ok();
    let v1 = std::fs::read(&db).expect("db");
    let first = lb(&t, &src, &[])
        .args(["snapshot", "--no-exports"])
        .arg(&db)
        .json();
    let packs = common::pack_files(Path::new(&src));
    assert_eq!(packs.len(), 1, "{packs:?}");
    let aside = t.path("aside.pack");
    std::fs::rename(&packs[0], &aside).expect("set aside");
    std::fs::remove_file(Path::new(&src).join("index.redb")).expect("index");
    common::open(&db)
        .execute_batch("UPDATE blobs SET data = randomblob(2000) WHERE id <= 10;")
        .expect("change");
    let v2 = std::fs::read(&db).expect("db");
    let second = lb(&t, &src, &[])
        .args(["snapshot", "--no-exports"])
        .arg(&db)
        .json();
    std::fs::rename(&aside, &packs[0]).expect("put back");
    lb(&t, &src, &[]).args(["repair", "index"]).ok();
    let stored = lb(&t, &src, &[]).arg("status").json()["chunks_stored"].clone();
    assert!(stored.as_u64().expect("chunks") > 0, "{stored}");

    let r = copy(&t, &src, &dst, &[]);
    assert_eq!(r["snapshots_copied"], 2, "{r}");
    assert_eq!(r["packs_copied"], 2, "{r}");
    assert_eq!(r["chunks_sent"], stored, "{r}");
    let theirs = lb(&t, &dst, &[]).arg("status").json();
    assert_eq!(theirs["chunks_stored"], stored, "{theirs}");
    let v = lb(&t, &dst, &[]).args(["verify", "--read-data"]).json();
    assert_eq!(v["ok"], true, "{v}");
    for (snap, want, name) in [(&first, &v1, "r1.db"), (&second, &v2, "r2.db")] {
        let out = t.path(name);
        lb(&t, &dst, &[])
            .args(["restore", snap["id"].as_str().expect("id"), "--to"])
            .arg(&out)
            .ok();
        assert!(
            std::fs::read(&out).expect("restored") == *want,
            "{name} differs"
        );
    }
}

#[test]
fn subset_copy_rechains_and_the_rest_follows() {
    let t = TestDir::new("copy-subset");
    let src = t.path("src").display().to_string();
    let dst = t.path("dst").display().to_string();
    let db = source_with_history(&t, &src, &[]);
    let list = lb(&t, &src, &[]).args(["snapshots"]).json();
    let older = list[0]["id"].as_str().expect("id").to_string();
    let r = lb(&t, &src, &[])
        .args(["copy", "--to", &dst, &older[..12]])
        .json();
    assert_eq!(r["mode"], "rechain", "{r}");
    assert_eq!(r["snapshots_copied"], 1, "{r}");
    let theirs = lb(&t, &dst, &[]).args(["snapshots"]).json();
    assert_eq!(theirs.as_array().map(Vec::len), Some(1), "{theirs}");
    assert_eq!(theirs[0]["tags"], list[0]["tags"], "the tag edit travels");
    let v = lb(&t, &dst, &[]).args(["verify", "--chain"]).json();
    assert_eq!(v["ok"], true, "{v}");
    // The same snapshot again: nothing; then all: only the other one.
    let again = lb(&t, &src, &[])
        .args(["copy", "--to", &dst, &older])
        .json();
    assert_eq!(again["snapshots_copied"], 0, "{again}");
    assert_eq!(again["bytes_sent"], 0, "{again}");
    let rest = copy(&t, &src, &dst, &[]);
    assert_eq!(rest["mode"], "rechain", "{rest}");
    assert_eq!(rest["snapshots_copied"], 1, "{rest}");
    assert_eq!(rest["already_present"], 1, "{rest}");
    assert_eq!(listing(&t, &src, &[]), listing(&t, &dst, &[]));
    sound(&t, &dst, &[], &dump(&db), "r.db");
    // A snapshot the source does not have: exit 2, one line.
    lb(&t, &src, &[])
        .args(["copy", "--to", &dst, "abcdef123456"])
        .run()
        .expect_code(2)
        .expect_one_stderr_line();
    // The source itself as destination: exit 2.
    lb(&t, &src, &[])
        .args(["copy", "--to", &src])
        .run()
        .expect_code(2)
        .expect_one_stderr_line();
}

#[test]
fn encrypted_copies_with_another_passphrase_and_across_encryption() {
    let t = TestDir::new("copy-crypt");
    let src = t.path("src").display().to_string();
    let db = t.path("lumina.db");
    create_lumina(&db, 300, 7);
    let spw = |l: Lb| l.env("LUMINA_BACKUP_PASSWORD", "source secret");
    spw(lb(&t, &src, &[])).args(["init", "--encrypt"]).ok();
    spw(lb(&t, &src, &[])).arg("snapshot").arg(&db).ok();
    edit(&db, 30);
    spw(lb(&t, &src, &[])).arg("snapshot").arg(&db).ok();
    let expected = dump(&db);

    // Encrypted -> new encrypted, another passphrase: the same history.
    let a = t.path("a").display().to_string();
    let r = spw(lb(&t, &src, &[]))
        .env("LUMINA_BACKUP_TO_PASSWORD", "dest secret")
        .args(["copy", "--to", &a])
        .json();
    assert_eq!(r["mode"], "mirror", "{r}");
    sound(
        &t,
        &a,
        &[("LUMINA_BACKUP_PASSWORD".into(), "dest secret".into())],
        &expected,
        "a.db",
    );
    lb(&t, &a, &[])
        .env("LUMINA_BACKUP_PASSWORD", "source secret")
        .arg("snapshots")
        .run()
        .expect_code(2);
    // A wrong destination passphrase: exit 2, one line, nothing sent.
    spw(lb(&t, &src, &[]))
        .env("LUMINA_BACKUP_TO_PASSWORD", "wrong")
        .args(["copy", "--to", &a])
        .run()
        .expect_code(2)
        .expect_one_stderr_line();
    let r = spw(lb(&t, &src, &[]))
        .env("LUMINA_BACKUP_TO_PASSWORD", "dest secret")
        .args(["copy", "--to", &a])
        .json();
    assert_eq!(r["bytes_sent"], 0, "{r}");

    // Encrypted -> new encrypted with its own master key: re-chunked.
    let b = t.path("b").display().to_string();
    let r = spw(lb(&t, &src, &[]))
        .env("LUMINA_BACKUP_TO_PASSWORD", "other secret")
        .args(["copy", "--to-new-key", "--to", &b])
        .json();
    assert_eq!(r["mode"], "translate", "{r}");
    assert_eq!(r["snapshots_copied"], 2, "{r}");
    let benv = [(
        "LUMINA_BACKUP_PASSWORD".to_string(),
        "other secret".to_string(),
    )];
    sound(&t, &b, &benv, &expected, "b.db");
    let r = spw(lb(&t, &src, &[]))
        .env("LUMINA_BACKUP_TO_PASSWORD", "other secret")
        .args(["copy", "--to", &b])
        .json();
    assert_eq!(r["snapshots_copied"], 0, "{r}");
    assert_eq!(r["bytes_sent"], 0, "{r}");

    // Encrypted -> plain: refused without --to-plain (exit 2), then done.
    let c = t.path("c").display().to_string();
    spw(lb(&t, &src, &[]))
        .args(["copy", "--to", &c])
        .run()
        .expect_code(2)
        .expect_one_stderr_line();
    assert!(!t.path("c").join("config").exists());
    let r = spw(lb(&t, &src, &[]))
        .args(["copy", "--to-plain", "--to", &c])
        .json();
    assert_eq!(r["mode"], "translate", "{r}");
    sound(&t, &c, &[], &expected, "c.db");

    // Plain -> new encrypted: re-chunked, then nothing the second time.
    let d = t.path("d").display().to_string();
    let r = lb(&t, &c, &[])
        .env("LUMINA_BACKUP_TO_PASSWORD", "d secret")
        .args(["copy", "--to", &d])
        .json();
    assert_eq!(r["mode"], "translate", "{r}");
    assert_eq!(r["snapshots_copied"], 2, "{r}");
    let denv = [("LUMINA_BACKUP_PASSWORD".to_string(), "d secret".to_string())];
    sound(&t, &d, &denv, &expected, "d.db");
    let r = lb(&t, &c, &[])
        .env("LUMINA_BACKUP_TO_PASSWORD", "d secret")
        .args(["copy", "--to", &d])
        .json();
    assert_eq!(r["bytes_sent"], 0, "{r}");
    // A copy of a copy is recognised by its origin: d already holds c's
    // snapshots, which are copies of src's... and src's own are not sent twice.
    assert_eq!(r["snapshots_copied"], 0, "{r}");
}

#[test]
fn sigkill_during_a_copy_then_the_rerun_sends_only_the_rest() {
    let t = TestDir::new("copy-kill");
    let src = t.path("src").display().to_string();
    let dst = t.path("dst").display().to_string();
    let db = source_with_history(&t, &src, &[]);
    let expected = dump(&db);
    // Killed after the second pack arrived.
    let r = lb(&t, &src, &[])
        .crash_at("copy-after-pack:2")
        .args(["copy", "--to", &dst])
        .run();
    assert_eq!(r.signal, Some(9), "killed at its crash point: {}", r.stderr);
    // At least those two arrived; others in flight beside them (up to four
    // packs are sent at once) may have arrived too, not yet indexed.
    let arrived = common::pack_files(&t.path("dst")).len();
    assert!(arrived >= 2, "two packs arrived, {arrived} found");
    // Nothing half-visible: no snapshot yet, the destination verifies.
    let v = lb(&t, &dst, &[]).args(["verify"]).json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        lb(&t, &dst, &[]).args(["snapshots"]).json(),
        Value::Array(vec![])
    );
    // Killed after the first record: that snapshot is whole and restores;
    // the chain lacks the records not yet sent (the source's first snapshot
    // was forgotten, and its deletion comes later in the chain), which verify
    // reports as missing (store-format.md 6.11) until the rerun sends them.
    let r = lb(&t, &src, &[])
        .crash_at("copy-after-record:1")
        .args(["copy", "--to", &dst])
        .run();
    assert_eq!(r.signal, Some(9), "{}", r.stderr);
    let v = lb(&t, &dst, &[])
        .args(["--json", "verify", "--read-data"])
        .run();
    let v: Value = serde_json::from_slice(&v.stdout).expect("json");
    for p in v["problems"].as_array().expect("problems") {
        let p = p.as_str().expect("line");
        assert!(p.starts_with("chain:") && p.contains("is missing"), "{p}");
    }
    assert_eq!(v["chunks_missing"], 0, "{v}");
    lb(&t, &dst, &[])
        .args(["restore", "latest", "--to"])
        .arg(t.path("partial.db"))
        .ok();
    // The rerun completes, sending no pack again.
    let r = copy(&t, &src, &dst, &[]);
    assert_eq!(r["packs_copied"], 0, "{r}");
    assert_eq!(r["packs_written"], 0, "{r}");
    assert_eq!(head(&t, &src, &[]), head(&t, &dst, &[]));
    sound(&t, &dst, &[], &expected, "r.db");
}

#[test]
fn remote_directions_and_a_server_killed_during_a_copy() {
    let t = TestDir::new("copy-remote");
    let mut g = Garage::start(&t.path("garage"), "lumina");
    let w = Webdav::start(&t.path("dav"), None);
    let env = g.env();
    let local = t.path("src").display().to_string();
    let db = source_with_history(&t, &local, &[]);
    let expected = dump(&db);
    // local -> S3, S3 -> WebDAV, WebDAV -> local.
    let s3 = g.url("copy");
    let dav = w.url("copy");
    let back = t.path("back").display().to_string();
    let r = copy(&t, &local, &s3, &env);
    assert_eq!(r["mode"], "mirror", "{r}");
    let r = copy(&t, &s3, &dav, &env);
    assert_eq!(r["mode"], "mirror", "{r}");
    assert_eq!(r["snapshots_copied"], 2, "{r}");
    let r = copy(&t, &dav, &back, &env);
    assert_eq!(r["snapshots_copied"], 2, "{r}");
    let h = head(&t, &local, &[]);
    for repo in [&s3, &dav, &back] {
        assert_eq!(head(&t, repo, &env), h, "{repo}");
    }
    sound(&t, &s3, &env, &expected, "s3.db");
    sound(&t, &back, &env, &expected, "back.db");
    let again = copy(&t, &s3, &dav, &env);
    assert_eq!(again["bytes_sent"], 0, "{again}");

    // The server killed while a copy is between packs: exit 1, one line;
    // then the rerun succeeds and the destination verifies.
    edit(&db, 80);
    lb(&t, &local, &[]).args(["snapshot"]).arg(&db).ok();
    edit(&db, 90);
    lb(&t, &local, &[]).args(["snapshot"]).arg(&db).ok();
    let child = lb(&t, &local, &env)
        .env("LUMINA_BACKUP_STOP_AT", "copy-after-pack")
        .args(["copy", "--to", &s3])
        .spawn_piped();
    let pid = child.id() as i32;
    wait_stopped(pid);
    g.kill();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    g.restart();
    let r = copy(&t, &local, &s3, &env);
    assert_eq!(r["snapshots_copied"], 2, "{r}");
    assert_eq!(head(&t, &local, &[]), head(&t, &s3, &env));
    sound(&t, &s3, &env, &dump(&db), "s3b.db");

    // An unreachable destination: exit 1, one line.
    let dead = format!("webdav://127.0.0.1:{}/x", servers::free_port());
    lb(&t, &local, &[])
        .args(["copy", "--to", &dead])
        .run()
        .expect_code(1)
        .expect_one_stderr_line();
}

fn wait_stopped(pid: i32) {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('T'))
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("process {pid} did not reach its stop point");
}

#[test]
fn a_destination_with_other_chunking_is_refused() {
    use lumina_backup::__internals::format::{
        decode, encode_named, open_file, seal_file, Config, FormatVersion, Kind,
    };
    let t = TestDir::new("copy-chunking");
    let src = t.path("src").display().to_string();
    let dst = t.path("dst").display().to_string();
    let db = t.path("lumina.db");
    create_lumina(&db, 50, 3);
    lb(&t, &src, &[]).arg("init").ok();
    lb(&t, &src, &[]).arg("snapshot").arg(&db).ok();
    lb(&t, &dst, &[]).arg("init").ok();
    // The destination's tree fan-out changed (a repository made by another
    // version or by hand): its trees would never deduplicate with the source's.
    let path = t.path("dst").join("config");
    let bytes = std::fs::read(&path).expect("config");
    let mut config: Config =
        decode(open_file(&bytes, Kind::Config).expect("open")).expect("decode");
    config.tree_fanout = 16;
    std::fs::write(
        &path,
        seal_file(FormatVersion::V2, Kind::Config, &encode_named(&config)),
    )
    .expect("write config");
    let r = lb(&t, &src, &[]).args(["copy", "--to", &dst]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("tree fan-out"), "{}", r.stderr);
    assert!(
        common::pack_files(&t.path("dst")).is_empty(),
        "nothing sent"
    );
}

/// Issue #11: S3 to S3 with credentials of its own for the destination
/// (`LUMINA_BACKUP_TO_*`), the source's key having no access there.
#[test]
fn s3_to_s3_with_the_destinations_own_credentials() {
    let t = TestDir::new("copy-two-keys");
    let g = Garage::start(&t.path("garage"), "lumina");
    let (other_id, other_secret) = g.bucket_with_key("other", "other-key");
    let env = g.env();
    let src = g.url("src");
    let db = source_with_history(&t, &src, &env);
    let dest = "s3://other/copy";
    // The source's key may not write the other bucket: refused, one line.
    let r = lb(&t, &src, &env).args(["copy", "--to", dest]).run();
    assert_ne!(r.code, Some(0), "the source's key reached the other bucket");
    r.expect_one_stderr_line();
    // With the destination's own key, the copy succeeds.
    let mut both = env.clone();
    both.push((
        "LUMINA_BACKUP_TO_AWS_ACCESS_KEY_ID".into(),
        other_id.clone(),
    ));
    both.push((
        "LUMINA_BACKUP_TO_AWS_SECRET_ACCESS_KEY".into(),
        other_secret.clone(),
    ));
    let r = copy(&t, &src, dest, &both);
    assert_eq!(r["copied"].as_array().map(Vec::len), Some(2), "{r}");
    // The copy is read with the other key, as its own repository.
    let mut theirs: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .cloned()
        .collect();
    theirs.push(("AWS_ACCESS_KEY_ID".into(), other_id));
    theirs.push(("AWS_SECRET_ACCESS_KEY".into(), other_secret));
    lb(&t, dest, &theirs).args(["verify", "--read-data"]).ok();
    let out = t.path("restored.db");
    lb(&t, dest, &theirs)
        .args(["restore", "latest", "--to"])
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), dump(&db));
}

/// Issue #11: the S3 requests of a fresh copy and of a copy with nothing to
/// send, on Garage's counters. A fresh copy PUTs each pack once and reads
/// none back (the PUT's ETag is the pack's MD5: store-format.md 6.11), so its
/// GETs do not grow with the packs; a no-op copy is a handful of requests
/// (its lock object, listings, the config) and reads no pack.
#[test]
fn s3_copy_request_counts_fresh_and_no_op() {
    let t = TestDir::new("copy-requests");
    let g = Garage::start(&t.path("garage"), "lumina");
    let env = g.env();
    let src = t.path("src").display().to_string();
    let db = source_with_history(&t, &src, &[]);
    let packs = common::pack_files(&t.path("src")).len() as u64;
    let records = ["snapshots", "chain"]
        .iter()
        .map(|d| {
            std::fs::read_dir(t.path("src").join(d))
                .map(|r| r.count() as u64)
                .unwrap_or(0)
        })
        .sum::<u64>();
    assert!(packs >= 2, "a source of several packs: {packs}");
    let dst = g.url("fresh");
    let count = |asked: &std::collections::BTreeMap<String, u64>, k: &str| {
        asked.get(k).copied().unwrap_or(0)
    };
    let before = g.s3_requests();
    let r = copy(&t, &src, &dst, &env);
    let fresh = Garage::requests_between(&before, &g.s3_requests());
    eprintln!("fresh copy of {packs} packs, {records} records: {fresh:?}");
    // The forgotten first snapshot's chunks are not sent: its pack's
    // referenced chunks are re-packed (a new pack, read back); the others
    // go whole and are not read back.
    let (whole, new) = (r["packs_copied"].as_u64(), r["packs_written"].as_u64());
    assert!(whole.is_some_and(|n| n >= 2), "{r}");
    let new = new.expect("packs_written");
    assert!(
        count(&fresh, "GetObject") <= 6 + 3 * new,
        "no whole pack read back: {fresh:?}"
    );
    // Packs, records, the new repository's config (and key) and the lock.
    assert!(
        count(&fresh, "PutObject") <= packs + records + 4,
        "each pack sent once: {fresh:?}"
    );
    let before = g.s3_requests();
    let again = copy(&t, &src, &dst, &env);
    let noop = Garage::requests_between(&before, &g.s3_requests());
    eprintln!("no-op copy: {noop:?}");
    assert_eq!(again["bytes_sent"], 0, "{again}");
    let total: u64 = noop
        .iter()
        .filter(|(k, _)| !k.ends_with('!'))
        .map(|(_, n)| n)
        .sum();
    assert!(total <= 16, "{total} requests: {noop:?}");
    assert_eq!(count(&noop, "PutObject"), 1, "only the lock: {noop:?}");
    assert!(count(&noop, "GetObject") <= 6, "{noop:?}");
    sound(&t, &dst, &env, &dump(&db), "fresh.db");
}
