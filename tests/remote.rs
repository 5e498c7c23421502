//! Remote repositories (issue #11) against real servers the tests start on
//! loopback: Garage (S3, 1 node) and `rclone serve webdav`. Guards: every
//! command works on a remote repository; the local index cache is rebuilt
//! when deleted; lock objects keep a second writer out while live and are
//! cleared when stale (store-format.md 6.10); wrong credentials exit 2 saying
//! so; a server killed mid-snapshot fails the snapshot with exit 1 and one
//! line, leaves nothing half-visible, and the next run succeeds with every
//! earlier snapshot intact. A missing server binary fails the test.

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::path::Path;

use common::{create_lumina, dump, Lb, TestDir};
use servers::{Garage, Webdav};

/// A command on the remote repository `url`, its cache inside the test folder.
fn lb(t: &TestDir, url: &str, env: &[(String, String)]) -> Lb {
    let mut l = Lb::new(Path::new(url), t.root())
        .env("LUMINA_BACKUP_CACHE_DIR", t.path("cache"))
        .env("LUMINA_BACKUP_REMOTE_RETRIES", "2");
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
    ] {
        l = l.env_remove(k);
    }
    for (k, v) in env {
        l = l.env(k, v);
    }
    l
}

/// A small Lumina database with `edits` items changed after creation.
fn database(t: &TestDir, name: &str) -> std::path::PathBuf {
    let db = t.path(name);
    create_lumina(&db, 300, 7);
    db
}

fn edit(db: &Path, n: u32) {
    let c = common::open(db);
    c.execute(
        "UPDATE metadata SET aiDescription = ?1 WHERE rowid <= ?2",
        rusqlite::params![format!("edited {n}"), n],
    )
    .expect("edit");
}

/// init, snapshot ×2, snapshots, show, cat, diff, restore, verify
/// --read-data, tag, status, forget, prune, repair index, and the index
/// cache rebuilt after it is deleted.
fn every_command(t: &TestDir, url: &str, env: &[(String, String)]) {
    let db = database(t, "lumina.db");
    lb(t, url, env).arg("init").ok();
    lb(t, url, env)
        .arg("init")
        .run()
        .expect_code(2)
        .expect_one_stderr_line();
    let first = lb(t, url, env).args(["--json", "snapshot"]).arg(&db).json();
    let first_id = first["id"].as_str().expect("id").to_string();
    let before = dump(&db);
    edit(&db, 20);
    let second = lb(t, url, env)
        .args(["--json", "snapshot", "--tag", "second"])
        .arg(&db)
        .json();
    let second_id = second["id"].as_str().expect("id").to_string();
    let list = lb(t, url, env).args(["--json", "snapshots"]).json();
    assert_eq!(list.as_array().expect("array").len(), 2, "{list}");
    lb(t, url, env).args(["show", &first_id]).ok();
    let cat = lb(t, url, env)
        .args(["cat", &first_id, "manifest.json"])
        .ok();
    assert!(cat.out().contains("manifest_version"), "{}", cat.out());
    let diff = lb(t, url, env)
        .args(["--json", "diff", &first_id, &second_id])
        .json();
    assert!(diff["tables"]["metadata"]["changed"]
        .as_array()
        .is_some_and(|c| c.len() == 20));
    let out = t.path("restored.db");
    lb(t, url, env)
        .args(["restore", &first_id, "--to"])
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), before, "restored from {url}");
    let v = lb(t, url, env)
        .args(["--json", "verify", "--read-data"])
        .json();
    assert_eq!(v["ok"], true, "{v}");
    lb(t, url, env)
        .args(["tag", &first_id, "--add", "kept"])
        .ok();
    lb(t, url, env).args(["status"]).ok();
    // The cache is only a cache: delete it, and the next command rebuilds it
    // from the pack descriptions.
    std::fs::remove_dir_all(t.path("cache")).expect("remove cache");
    let list = lb(t, url, env).args(["--json", "snapshots"]).json();
    assert_eq!(list.as_array().expect("array").len(), 2, "{list}");
    assert!(t.path("cache").is_dir(), "the cache was made again");
    lb(t, url, env).args(["repair", "index"]).ok();
    lb(t, url, env).args(["forget", "--keep-last", "1"]).ok();
    lb(t, url, env).args(["prune"]).ok();
    let list = lb(t, url, env).args(["--json", "snapshots"]).json();
    assert_eq!(list.as_array().expect("array").len(), 1, "{list}");
    let v = lb(t, url, env)
        .args(["--json", "verify", "--read-data"])
        .json();
    assert_eq!(v["ok"], true, "{v}");
    let out2 = t.path("restored2.db");
    lb(t, url, env)
        .args(["restore", "latest", "--to"])
        .arg(&out2)
        .ok();
    assert_eq!(dump(&out2), dump(&db));
}

#[test]
fn webdav_every_command() {
    let t = TestDir::new("webdav-all");
    let w = Webdav::start(&t.path("dav"), None);
    every_command(&t, &w.url("repos/one"), &[]);
    // Nothing half-visible: no temp file is left on the server.
    let leftovers: Vec<_> = walk(&t.path("dav"))
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A pack damaged on the server is named by verify --read-data (exit 3).
    let pack = walk(&t.path("dav/repos/one/packs"))
        .into_iter()
        .next()
        .expect("a pack on the server");
    let path = t.path("dav/repos/one/packs").join(&pack);
    let mut bytes = std::fs::read(&path).expect("read pack");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).expect("damage pack");
    let name = pack.rsplit('/').next().expect("name");
    let r = lb(&t, &w.url("repos/one"), &[])
        .args(["verify", "--read-data"])
        .run();
    r.expect_code(3);
    assert!(
        r.out().contains(&name[..12]) || r.stderr.contains(&name[..12]),
        "{}\n{}",
        r.out(),
        r.stderr
    );
}

#[test]
fn s3_every_command() {
    let t = TestDir::new("s3-all");
    let g = Garage::start(&t.path("garage"), "lumina");
    every_command(&t, &g.url("repo"), &g.env());
}

#[test]
fn s3_encrypted_keys() {
    let t = TestDir::new("s3-keys");
    let g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("enc");
    let env = g.env();
    let pw = |l: Lb| l.env("LUMINA_BACKUP_PASSWORD", "first secret");
    pw(lb(&t, &url, &env)).args(["init", "--encrypt"]).ok();
    let db = database(&t, "lumina.db");
    pw(lb(&t, &url, &env)).arg("snapshot").arg(&db).ok();
    pw(lb(&t, &url, &env))
        .env("LUMINA_BACKUP_NEW_PASSWORD", "second secret")
        .args(["key", "add"])
        .ok();
    let keys = pw(lb(&t, &url, &env))
        .args(["--json", "key", "list"])
        .json();
    assert_eq!(keys.as_array().map(|k| k.len()), Some(2), "{keys}");
    lb(&t, &url, &env)
        .env("LUMINA_BACKUP_PASSWORD", "second secret")
        .args(["--json", "snapshots"])
        .ok();
    lb(&t, &url, &env)
        .env("LUMINA_BACKUP_PASSWORD", "wrong")
        .args(["snapshots"])
        .run()
        .expect_code(2);
}

/// Object-store requests cost money (issue #11: fewer than 20 per incremental
/// snapshot), counted by Garage itself: an incremental snapshot after a few
/// edits makes at most 11 (5 listings), and reads the config once without a
/// HEAD before it; a
/// location with no repository still says so (exit 2, one line), from the
/// GET's "not found".
#[test]
fn s3_incremental_snapshot_request_budget() {
    let t = TestDir::new("s3-requests");
    let g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("budget");
    let env = g.env();
    lb(&t, &url, &env).arg("init").ok();
    let db = database(&t, "lumina.db");
    lb(&t, &url, &env).arg("snapshot").arg(&db).ok();
    edit(&db, 20);
    let before = g.s3_requests();
    lb(&t, &url, &env).arg("snapshot").arg(&db).ok();
    let asked = Garage::requests_between(&before, &g.s3_requests());
    let total: u64 = asked
        .iter()
        .filter(|(k, _)| !k.ends_with('!'))
        .map(|(_, n)| n)
        .sum();
    eprintln!("incremental snapshot: {total} requests: {asked:?}");
    // 11: config GET; LIST keys/ (downgrade check), PUT + LIST locks/, LIST
    // packs/ and snapshots/ (index), the parent's export map (its tree frames
    // come from the local cache), PUT pack, LIST chain/, PUT snapshot,
    // DELETE lock (it was 16 before the shared frame cache,
    // the single lock listing and the single config read, 12 before the tree
    // frame cache).
    assert!(total <= 11, "{total} requests: {asked:?}");
    assert!(
        asked.get("ListObjectsV2").is_some_and(|&n| n <= 5),
        "{asked:?}"
    );
    assert_eq!(
        asked.get("HeadObject"),
        None,
        "the config is read with one GET, no HEAD first: {asked:?}"
    );
    assert!(asked.get("PutObject").is_some_and(|&n| n >= 2), "{asked:?}");
    let none = lb(&t, &g.url("nothing-here"), &env).arg("snapshots").run();
    none.expect_code(2).expect_one_stderr_line();
    assert!(none.stderr.contains("no repository"), "{}", none.stderr);
}

#[test]
fn wrong_credentials_exit_2_saying_so() {
    let t = TestDir::new("creds");
    let g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("repo");
    lb(&t, &url, &g.env()).arg("init").ok();
    let mut bad = g.env();
    bad[1].1 = "0".repeat(64);
    let r = lb(&t, &url, &bad).arg("snapshots").run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("credentials"), "{}", r.stderr);
    assert!(
        !r.stderr.contains(&"0".repeat(64)),
        "the secret is not shown"
    );
    let none = lb(&t, &url, &[]).arg("snapshots").run();
    none.expect_code(2).expect_one_stderr_line();
    assert!(none.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", none.stderr);

    let w = Webdav::start(&t.path("dav"), Some(("lumina", "right")));
    let url = w.url("repo");
    let user = |pw: &str| {
        vec![
            (
                "LUMINA_BACKUP_WEBDAV_USER".to_string(),
                "lumina".to_string(),
            ),
            ("LUMINA_BACKUP_WEBDAV_PASSWORD".to_string(), pw.to_string()),
        ]
    };
    lb(&t, &url, &user("right")).arg("init").ok();
    let r = lb(&t, &url, &user("wrong")).arg("snapshots").run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("credentials"), "{}", r.stderr);
}

#[test]
fn malformed_locations_exit_2() {
    let t = TestDir::new("bad-url");
    for url in [
        "s3://",
        "webdav://:1/x",
        "sftp://u:p@h/x",
        "gdrive:",
        "ftp://x/y",
    ] {
        let r = lb(&t, url, &[]).arg("snapshots").run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(r.stderr.contains(url), "{url}: {}", r.stderr);
    }
    // A drive without a token: exit 2 naming the variable (no network needed).
    let r = lb(&t, "dropbox:Backups/lumina", &[]).arg("snapshots").run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(
        r.stderr.contains("LUMINA_BACKUP_DROPBOX_ACCESS_TOKEN"),
        "{}",
        r.stderr
    );
}

#[test]
fn lock_objects_live_and_stale() {
    let t = TestDir::new("locks");
    let w = Webdav::start(&t.path("dav"), None);
    let url = w.url("repo");
    lb(&t, &url, &[]).arg("init").ok();
    let db = database(&t, "lumina.db");
    lb(&t, &url, &[]).arg("snapshot").arg(&db).ok();
    let locks = || walk(&t.path("dav/repo/locks"));
    assert!(locks().is_empty(), "a finished command removes its lock");

    // A killed writer on this host: its lock object stays, and the next
    // command clears it (its process has ended) and says so.
    edit(&db, 3);
    let r = lb(&t, &url, &[])
        .arg("snapshot")
        .arg(&db)
        .crash_at("after-pack")
        .run();
    assert_eq!(r.signal, Some(9), "{}", r.stderr);
    assert_eq!(locks().len(), 1, "the killed writer left its lock");
    let r = lb(&t, &url, &[]).arg("snapshot").arg(&db).ok();
    assert!(
        r.stderr.contains("removed the stale lock object"),
        "{}",
        r.stderr
    );

    // A live lock of another machine: refused, naming it.
    edit(&db, 4);
    let r = lb(&t, &url, &[])
        .env("LUMINA_BACKUP_TEST_HOST", "other-machine")
        .arg("snapshot")
        .arg(&db)
        .crash_at("after-pack")
        .run();
    assert_eq!(r.signal, Some(9), "{}", r.stderr);
    let r = lb(&t, &url, &[])
        .args(["--lock-wait", "0", "snapshot"])
        .arg(&db)
        .run();
    r.expect_code(1).expect_one_stderr_line();
    assert!(r.stderr.contains("other-machine"), "{}", r.stderr);
    let r = lb(&t, &url, &[])
        .args(["--lock-wait", "0", "snapshots"])
        .run();
    r.expect_code(1);
    // 31 minutes later it is stale: cleared, and the snapshot goes through.
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(31);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let r = lb(&t, &url, &[])
        .env("LUMINA_BACKUP_TEST_NOW", &later)
        .arg("snapshot")
        .arg(&db)
        .ok();
    assert!(
        r.stderr.contains("not refreshed for 31 min"),
        "{}",
        r.stderr
    );
    assert!(locks().is_empty());
    let v = lb(&t, &url, &[])
        .args(["--json", "verify", "--read-data"])
        .json();
    assert_eq!(v["ok"], true, "{v}");
}

/// Kills the server while a snapshot is between packs; `kind` picks it.
fn server_killed_mid_snapshot(
    t: &TestDir,
    url: &str,
    env: &[(String, String)],
    kill: &mut dyn FnMut(bool),
) {
    let db = database(t, "lumina.db");
    lb(t, url, env).arg("init").ok();
    let first = lb(t, url, env).args(["--json", "snapshot"]).arg(&db).json();
    let first_id = first["id"].as_str().expect("id").to_string();
    let before = dump(&db);
    edit(&db, 50);
    // Stop the snapshot after its first pack, kill the server, let it go on.
    let child = lb(t, url, env)
        .env("LUMINA_BACKUP_STOP_AT", "after-pack")
        .arg("snapshot")
        .arg(&db)
        .spawn_piped();
    let pid = child.id() as i32;
    wait_stopped(pid);
    kill(false);
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    kill(true);
    // Nothing of the failed snapshot is visible; the next run succeeds.
    let list = lb(t, url, env).args(["--json", "snapshots"]).json();
    assert_eq!(list.as_array().expect("array").len(), 1, "{list}");
    lb(t, url, env).arg("snapshot").arg(&db).ok();
    let v = lb(t, url, env)
        .args(["--json", "verify", "--read-data"])
        .json();
    assert_eq!(v["ok"], true, "{v}");
    let out = t.path("first.db");
    lb(t, url, env)
        .args(["restore", &first_id, "--to"])
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), before, "the earlier snapshot is intact");
}

#[test]
fn s3_server_killed_mid_snapshot() {
    let t = TestDir::new("s3-kill");
    let mut g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("repo");
    let env = g.env();
    server_killed_mid_snapshot(&t, &url, &env, &mut |restart| {
        if restart {
            g.restart()
        } else {
            g.kill()
        }
    });
}

#[test]
fn webdav_server_killed_mid_snapshot() {
    let t = TestDir::new("dav-kill");
    let mut w = Webdav::start(&t.path("dav"), None);
    let url = w.url("repo");
    server_killed_mid_snapshot(&t, &url, &[], &mut |restart| {
        if restart {
            w.restart()
        } else {
            w.kill()
        }
    });
}

/// Waits until process `pid` is stopped (SIGSTOP at a stop point).
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

/// Every file under `dir`, as paths relative to it.
/// The tree frames an incremental snapshot reads (its parent's chunk lists)
/// come from the local node cache (store-format.md 6.10): after this
/// machine's own snapshot, the next one (image only) GETs nothing but the
/// config. A cache
/// whose entries are damaged is read past (the frames come from the store
/// again, the snapshot and a restore are exact), and a deleted one is filled
/// again; a prune that deletes packs drops their entries.
#[test]
fn s3_tree_frames_come_from_the_local_cache() {
    let t = TestDir::new("s3-node-cache");
    let g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("trees");
    let env = g.env();
    lb(&t, &url, &env).arg("init").ok();
    let db = database(&t, "lumina.db");
    lb(&t, &url, &env)
        .args(["snapshot", "--no-exports"])
        .arg(&db)
        .ok();
    let entries = || -> Vec<std::path::PathBuf> {
        walk(&t.path("cache"))
            .into_iter()
            .filter(|p| p.contains("/trees/"))
            .map(|p| t.path("cache").join(p))
            .collect()
    };
    assert!(!entries().is_empty(), "the snapshot cached its tree frames");

    edit(&db, 20);
    let gets = |f: &dyn Fn()| {
        let before = g.s3_requests();
        f();
        let asked = Garage::requests_between(&before, &g.s3_requests());
        asked.get("GetObject").copied().unwrap_or(0)
    };
    // Image only (as every snapshot here): with exports the parent's export
    // map (data, not a tree node) is read too.
    let n = gets(&|| {
        lb(&t, &url, &env)
            .args(["snapshot", "--no-exports"])
            .arg(&db)
            .ok();
    });
    assert_eq!(n, 1, "only the config is read");

    // Damaged entries: a miss each, read from the store again.
    for e in entries() {
        let mut bytes = std::fs::read(&e).expect("read entry");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        std::fs::write(&e, bytes).expect("damage entry");
    }
    edit(&db, 30);
    let n = gets(&|| {
        lb(&t, &url, &env)
            .args(["snapshot", "--no-exports"])
            .arg(&db)
            .ok();
    });
    assert!(n > 1, "damaged entries are not used");
    let out = t.path("restored.db");
    lb(&t, &url, &env)
        .args(["restore", "latest", "--to"])
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), dump(&db));

    // Deleted: filled again by the next reads.
    for e in entries() {
        std::fs::remove_file(e).expect("remove entry");
    }
    edit(&db, 40);
    lb(&t, &url, &env)
        .args(["snapshot", "--no-exports"])
        .arg(&db)
        .ok();
    assert!(!entries().is_empty());
    let n = gets(&|| {
        lb(&t, &url, &env)
            .args(["restore", "latest", "--to"])
            .arg(t.path("again.db"))
            .ok();
    });
    assert!(n >= 1);
    assert_eq!(dump(&t.path("again.db")), dump(&db));

    // Entries of packs the store does not have are dropped on open; the
    // others stay.
    let kept = entries().len();
    let trees = entries()[0]
        .ancestors()
        .nth(2)
        .expect("trees folder")
        .to_path_buf();
    let stray = trees.join("ab".repeat(32));
    std::fs::create_dir_all(&stray).expect("stray pack folder");
    std::fs::write(stray.join("0"), b"stray").expect("stray entry");
    lb(&t, &url, &env).arg("snapshots").ok();
    assert!(
        !stray.exists(),
        "the entry of a pack not in the store is left"
    );
    assert_eq!(entries().len(), kept);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    out
}

/// Two machines (two caches, two host names) on one S3 repository: each
/// sees the other's snapshots; a prune on one (which deletes and rewrites
/// packs) leaves the other's stale cache to be reconciled, and the other
/// machine's next snapshot and restore are correct.
#[test]
fn s3_two_machines_share_a_repository() {
    let t = TestDir::new("s3-two");
    let g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("shared");
    let env = g.env();
    let machine = |name: &str| {
        lb(&t, &url, &env)
            .env("LUMINA_BACKUP_CACHE_DIR", t.path(&format!("cache-{name}")))
            .env("LUMINA_BACKUP_TEST_HOST", name)
    };
    machine("a").arg("init").ok();
    let db_a = database(&t, "a.db");
    let db_b = t.path("b.db");
    create_lumina(&db_b, 200, 9);
    machine("a").arg("snapshot").arg(&db_a).ok();
    machine("b").arg("snapshot").arg(&db_b).ok();
    edit(&db_a, 30);
    machine("a").arg("snapshot").arg(&db_a).ok();
    let list = machine("b").args(["--json", "snapshots"]).json();
    assert_eq!(list.as_array().expect("array").len(), 3, "{list}");
    // Machine a forgets its first snapshot and prunes.
    machine("a")
        .args(["forget", "--keep-last", "1", "--prune"])
        .ok();
    // Machine b, its cache now naming deleted packs, snapshots and restores.
    edit(&db_b, 10);
    machine("b").arg("snapshot").arg(&db_b).ok();
    let out = t.path("b-restored.db");
    machine("b")
        .args(["restore", "latest", "--db"])
        .arg(&db_b)
        .arg("--to")
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), dump(&db_b));
    let out = t.path("a-restored.db");
    machine("b")
        .args(["restore", "latest", "--db"])
        .arg(&db_a)
        .arg("--to")
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), dump(&db_a));
    for m in ["a", "b"] {
        let v = machine(m).args(["--json", "verify", "--read-data"]).json();
        assert_eq!(v["ok"], true, "{m}: {v}");
    }
}

/// Issue #11: a 3-node Garage cluster with replication factor 3 keeps
/// working with one node stopped in the middle of a snapshot: the snapshot
/// succeeds, restores, and verifies, with the node still down.
#[test]
fn s3_cluster_of_three_survives_a_node_stopped_during_a_snapshot() {
    let t = TestDir::new("s3-cluster");
    let mut c = servers::GarageCluster::start(&t.path("cluster"), 3, "lumina");
    let url = c.url("repo");
    let env = c.env();
    let db = database(&t, "lumina.db");
    lb(&t, &url, &env).arg("init").ok();
    lb(&t, &url, &env).arg("snapshot").arg(&db).ok();
    edit(&db, 60);
    let child = lb(&t, &url, &env)
        .env("LUMINA_BACKUP_STOP_AT", "after-pack")
        .arg("snapshot")
        .arg(&db)
        .spawn_piped();
    let pid = child.id() as i32;
    wait_stopped(pid);
    c.nodes[2].kill();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = t.path("restored.db");
    lb(&t, &url, &env)
        .args(["restore", "latest", "--to"])
        .arg(&target)
        .ok();
    assert_eq!(dump(&target), dump(&db));
    let v = lb(&t, &url, &env)
        .args(["--json", "verify", "--read-data"])
        .json();
    assert_eq!(v["ok"], true, "{v}");
}

/// Issue #11: the server killed while a restore reads from it: exit 1 with
/// one line, the target folder untouched (no file, no temp file), and the
/// rerun restores the same rows.
#[test]
fn s3_server_killed_during_a_restore() {
    let t = TestDir::new("s3-restore-kill");
    let mut g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("repo");
    let env = g.env();
    // Large enough that most of it is not fetched when the first batch is out.
    let db = t.path("big.db");
    create_lumina(&db, 40_000, 11);
    lb(&t, &url, &env).arg("init").ok();
    lb(&t, &url, &env).arg("snapshot").arg(&db).ok();
    let out_dir = t.path("out");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let target = out_dir.join("restored.db");
    let child = lb(&t, &url, &env)
        .env("LUMINA_BACKUP_STOP_AT", "read-batch")
        // Small read groups: when the first batch is written, most of the
        // database is not fetched yet (by default two 16 MiB groups are).
        .env("LUMINA_BACKUP_REMOTE_GROUP_BYTES", "262144")
        .args(["restore", "latest", "--to"])
        .arg(&target)
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
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("read out dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the target folder is untouched: {left:?}");
    g.restart();
    lb(&t, &url, &env)
        .args(["restore", "latest", "--to"])
        .arg(&target)
        .ok();
    assert_eq!(dump(&target), dump(&db));
}

/// Issue #11: a remote restore reads whole packs or large parts of them, the
/// next group of reads in flight while the current one is written: a
/// database of many frames (and many 4 MiB batches) restores byte-identical
/// with fewer GETs than it has frames (Garage's own counters), with the
/// default read groups and with groups so small that the file takes many.
#[test]
fn s3_restore_reads_large_ranges_ahead() {
    let t = TestDir::new("s3-restore-ranges");
    let g = Garage::start(&t.path("garage"), "lumina");
    let url = g.url("repo");
    let env = g.env();
    let db = t.path("big.db");
    create_lumina(&db, 40_000, 5);
    // Rollback journal: the file alone holds the committed state, so the
    // restored image must equal it byte for byte.
    let mode: String = common::open(&db)
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "delete");
    let original = std::fs::read(&db).expect("read db");
    // A frame closes at 1 MiB of chunks (plus at most one chunk): the data
    // fills at least this many.
    let frames = original.len() as u64 / ((1 << 20) + (64 << 10));
    assert!(frames >= 8, "{} bytes", original.len());
    lb(&t, &url, &env).arg("init").ok();
    lb(&t, &url, &env).arg("snapshot").arg(&db).ok();
    for (n, groups) in [None, Some("2097152")].into_iter().enumerate() {
        let target = t.path(&format!("restored-{n}.db"));
        let mut restore = lb(&t, &url, &env)
            .args(["restore", "latest", "--to"])
            .arg(&target);
        if let Some(bytes) = groups {
            restore = restore.env("LUMINA_BACKUP_REMOTE_GROUP_BYTES", bytes);
        }
        let before = g.s3_requests();
        restore.ok();
        let asked = Garage::requests_between(&before, &g.s3_requests());
        let restored = std::fs::read(&target).expect("read restored");
        assert!(
            restored == original,
            "groups {groups:?}: not byte-identical"
        );
        let gets = asked.get("GetObject").copied().unwrap_or(0);
        assert!(
            gets < frames,
            "groups {groups:?}: {gets} GETs for at least {frames} frames: {asked:?}"
        );
        eprintln!("groups {groups:?}: {gets} GETs, at least {frames} frames: {asked:?}");
    }
}

/// Issue #11: SFTP against Debian's `sshd` on a loopback port with generated
/// keys: every command.
#[test]
fn sftp_every_command() {
    let t = TestDir::new("sftp-all");
    let s = servers::Sshd::start(&t.path("sshd"));
    let dir = t.path("served");
    std::fs::create_dir_all(&dir).expect("served folder");
    every_command(&t, &s.url(&dir.join("repo")), &s.env());
}

/// SIGPIPE stays ignored (so SFTP's closed `ssh` pipes are errors, not a
/// kill), yet `cat` into a pipe whose reader went away still ends quietly,
/// with status 141 and nothing on stderr, as Unix tools do.
#[test]
fn cat_into_a_closed_pipe_ends_quietly() {
    let t = TestDir::new("closed-pipe");
    let db = t.path("big.db");
    create_lumina(&db, 20_000, 5);
    t.lb().arg("init").ok();
    t.lb().arg("snapshot").arg(&db).ok();
    let (head, out) = t
        .lb()
        .args(["cat", "latest", "big.db"])
        .read_head_then_close::<100>();
    assert_eq!(&head[..16], b"SQLite format 3\0");
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
