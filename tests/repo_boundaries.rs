//! Invariants at the repository's boundaries with its file system and the
//! processes around it:
//! - a repository on a read-only mount serves every read command and is not
//!   written to (issue #8 item 14);
//! - on a full disk, reads, restores, `forget` and `prune` still run (item 15);
//! - `init` refuses a file, a non-empty folder (without `--force`) and a folder
//!   inside another repository, and makes the root folder private (items 24, 29);
//! - foreign files in `packs/` and `snapshots/` do not break listing (item 29);
//! - an interrupted snapshot (SIGINT, SIGTERM) or one that fills the disk says
//!   so in one line, records nothing, leaves no partial data, and is recorded for
//!   `status` (items 25, 30);
//! - a lock held by a stopped process is named with its pid and state, and the
//!   message says how to resume it (item 32).
//!
//! Mount-based tests need the right to mount (we run as root); where mounting is
//! refused they print why and return early.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

/// A mount, unmounted on drop (declare it after the `TestDir` it lives in).
struct Mount {
    at: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn mount(args: &[&str], at: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .map_err(|e| format!("running mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A tmpfs of `size` (e.g. "16m") at `at`, or None (with the reason printed).
fn tmpfs(at: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(at).expect("mkdir");
    match mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at) {
        Ok(()) => Some(Mount {
            at: at.to_path_buf(),
        }),
        Err(e) => {
            eprintln!("skipping: cannot mount a tmpfs here ({e})");
            None
        }
    }
}

/// A read-only view of `src` at `at` (a read-only bind mount), or None.
fn read_only_bind(src: &Path, at: &Path) -> Option<Mount> {
    std::fs::create_dir_all(at).expect("mkdir");
    if let Err(e) = mount(&["--bind", &src.to_string_lossy()], at) {
        eprintln!("skipping: cannot bind-mount here ({e})");
        return None;
    }
    let m = Mount {
        at: at.to_path_buf(),
    };
    if let Err(e) = mount(&["-o", "remount,bind,ro"], at) {
        eprintln!("skipping: cannot remount read-only here ({e})");
        return None;
    }
    Some(m)
}

/// A database of about `mib` MiB of incompressible rows (rollback journal mode).
fn random_db(path: &Path, mib: u64) {
    random_db_paged(path, mib, 4096);
}

/// [`random_db`] with pages of `page_size` bytes.
fn random_db_paged(path: &Path, mib: u64, page_size: u32) {
    let _ = std::fs::remove_file(path);
    let c = open(path);
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode=DELETE; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);"
    ))
    .expect("schema");
    c.execute(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)
         INSERT INTO t(b) SELECT randomblob(16384) FROM n",
        [mib * 64],
    )
    .expect("rows");
}

/// Every file under `dir` with its bytes (to show nothing changed).
fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect()
}

/// Fills the file system holding `dir` until a write fails with ENOSPC.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let block = vec![0x5au8; 64 << 10];
    loop {
        if let Err(e) = f.write_all(&block).and_then(|_| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            break;
        }
    }
    for _ in 0..64 {
        if f.write_all(&[0u8; 512]).and_then(|_| f.sync_all()).is_err() {
            break;
        }
    }
}

fn pid_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn wait_stopped(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while pid_state(child.id()) != Some('T') {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the snapshot ended ({status}) before its stop point");
        }
        assert!(Instant::now() < deadline, "the snapshot never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill failed");
}

/// Issue #8 item 14: every read command works on a repository mounted read-only,
/// also when its index is missing, and nothing in it changes; a writing command
/// fails with one line saying the repository is read-only.
#[test]
fn read_only_repository_serves_every_read_command() {
    let t = TestDir::new("ro");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 300, 1);
    let a = id_of(&t.lb().arg("snapshot").arg(&db).json());
    touch_metadata_rows(&db, 20, 2);
    let b = id_of(&t.lb().arg("snapshot").arg(&db).json());
    let ro = t.path("ro");
    let Some(_m) = read_only_bind(&t.repo(), &ro) else {
        return;
    };
    let lb = || Lb::new(&ro, t.root());
    for round in ["with its index", "without its index"] {
        let before = tree_bytes(&t.repo());
        let list = lb().arg("snapshots").json();
        assert_eq!(list.as_array().map(|a| a.len()), Some(2), "{round}");
        lb().args(["show", &b]).ok();
        let cat = lb().args(["cat", &a, "manifest.json"]).ok();
        assert!(cat.out().contains("\"source\""), "{round}");
        lb().args(["diff", &a, &b]).ok();
        let target = t.path(&format!("restored-{}.db", round.len()));
        lb().args(["restore", &a, "--to"]).arg(&target).ok();
        assert!(integrity_ok(&target), "{round}");
        lb().args(["verify", "--read-data"]).ok();
        lb().args(["export", &b, "--table", "tags", "--out"])
            .arg(t.path(&format!("tags-{}.json", round.len())))
            .ok();
        lb().arg("status").ok();
        lb().args(["snapshots", "--db"]).arg(&db).ok();
        let r = lb().arg("snapshot").arg(&db).run();
        r.expect_code(1).expect_one_stderr_line();
        assert!(r.stderr.contains("read-only"), "{round}: {}", r.stderr);
        assert!(
            before == tree_bytes(&t.repo()),
            "{round}: the repository changed"
        );
        // Second round: the index is gone (rebuilt in memory, not on disk).
        let _ = std::fs::remove_file(t.repo().join("index.redb"));
    }
    assert!(!t.repo().join("index.redb").exists());
}

/// Issue #8 item 15: with no free space on the repository's disk, reads and
/// restores run, and `forget` and `prune` run and free space (prune deletes the
/// packs with no live data; repacking, which needs room, is skipped and said).
#[test]
fn full_disk_still_lists_restores_forgets_and_prunes() {
    let t = TestDir::new("full");
    let disk = t.path("disk");
    let Some(_m) = tmpfs(&disk, "24m") else {
        return;
    };
    let repo = disk.join("repo");
    let lb = || Lb::new(&repo, t.root());
    lb().arg("init").ok();
    let db = t.path("data.db");
    random_db(&db, 4);
    let first = id_of(&lb().arg("snapshot").arg(&db).json());
    // Other pages (another page size): the first snapshot's data all dies.
    random_db_paged(&db, 4, 8192);
    let second = id_of(&lb().arg("snapshot").arg(&db).json());
    fill(&disk);

    assert_eq!(
        lb().arg("snapshots").json().as_array().map(|a| a.len()),
        Some(2)
    );
    lb().arg("status").ok();
    let out = t.path("restored.db");
    lb().args(["restore", &first, "--to"]).arg(&out).ok();
    assert!(integrity_ok(&out));
    lb().arg("verify").ok();
    lb().args(["forget", "--keep-last", "1"]).ok();
    assert_eq!(list_ids_of(&lb), vec![second.clone()]);
    let pruned = lb().arg("prune").json();
    assert!(
        pruned["bytes_freed"].as_u64().unwrap_or(0) > 3 << 20,
        "prune freed too little: {pruned}"
    );
    lb().args(["verify", "--read-data"]).ok();
    lb().args(["restore", &second, "--to"])
        .arg(t.path("second.db"))
        .ok();
}

fn list_ids_of(lb: &dyn Fn() -> Lb) -> Vec<String> {
    let list = lb().arg("snapshots").json();
    list.as_array().expect("array").iter().map(id_of).collect()
}

/// Issue #8 item 24: `init` on a file is bad input (exit 2, "is a file"); a
/// non-empty folder that is not a repository is refused unless `--force`; an
/// existing root folder is made private (0700).
#[test]
fn init_refuses_a_file_and_a_non_empty_folder_and_makes_the_root_private() {
    let t = TestDir::new("init");
    let file = t.path("afile");
    std::fs::write(&file, b"not a folder").expect("write");
    let r = Lb::new(&file, t.root()).arg("init").run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("is a file"), "{}", r.stderr);
    assert_eq!(std::fs::read(&file).expect("read"), b"not a folder");

    let full = t.path("full");
    std::fs::create_dir(&full).expect("mkdir");
    std::fs::write(full.join("photo.jpg"), b"jpeg").expect("write");
    let r = Lb::new(&full, t.root()).arg("init").run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_dir(&full).expect("ls").count(),
        1,
        "refused init wrote"
    );
    Lb::new(&full, t.root()).args(["init", "--force"]).ok();
    assert_eq!(
        std::fs::read(full.join("photo.jpg")).expect("kept"),
        b"jpeg"
    );
    Lb::new(&full, t.root()).arg("snapshots").ok();

    let empty = t.path("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Lb::new(&empty, t.root()).arg("init").ok();
    let mode = std::fs::metadata(&empty)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the root folder keeps mode {mode:o}");
    assert!(empty.join("lock").exists(), "init creates the lock file");
}

/// Issue #8 item 29: `init` inside another repository's folder is refused (exit
/// 2, naming that repository), however deep.
#[test]
fn init_inside_a_repository_is_refused() {
    let t = TestDir::new("nested");
    t.init();
    for inner in ["packs/new", "inner", "snapshots/a/b"] {
        let path = t.repo().join(inner);
        let r = Lb::new(&path, t.root()).arg("init").run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(
            r.stderr.contains(&*t.repo().to_string_lossy()),
            "{inner}: the message names the repository: {}",
            r.stderr
        );
        assert!(!path.exists(), "{inner}: refused init created the folder");
    }
}

/// Issue #8 item 29: foreign files and folders in `packs/` and `snapshots/`
/// (e.g. a database restored there) are skipped by listing, not fatal.
#[test]
fn foreign_files_in_the_repository_do_not_break_commands() {
    let t = TestDir::new("foreign");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 200, 1);
    let a = id_of(&t.lb().arg("snapshot").arg(&db).json());
    let repo = t.repo();
    std::fs::write(repo.join("packs/x.db"), b"a restored database").expect("write");
    std::fs::create_dir_all(repo.join("packs/notes")).expect("mkdir");
    std::fs::write(repo.join("packs/notes/readme"), b"hi").expect("write");
    std::fs::create_dir_all(repo.join("snapshots/old")).expect("mkdir");
    std::fs::write(repo.join("snapshots/readme.txt"), b"hi").expect("write");
    let pack_dir = pack_files(&repo)[0].parent().expect("dir").to_path_buf();
    std::fs::write(pack_dir.join("notes.txt"), b"hi").expect("write");
    std::fs::create_dir(pack_dir.join("sub")).expect("mkdir");

    assert_eq!(list_ids(&t), vec![a.clone()]);
    touch_metadata_rows(&db, 10, 3);
    t.lb().arg("snapshot").arg(&db).ok();
    t.lb()
        .args(["restore", &a, "--to"])
        .arg(t.path("r.db"))
        .ok();
    t.lb().arg("status").ok();
    t.lb().arg("prune").ok();
    t.lb().args(["repair", "index"]).ok();
    let r = t.lb().arg("verify").run();
    assert_ne!(r.code, Some(1), "verify failed: {}", r.stderr);
    assert!(!r.stderr.contains("Not a directory"), "{}", r.stderr);
    assert!(
        repo.join("packs/x.db").exists(),
        "a foreign file was removed"
    );
}

/// A repository in a tmpfs of `size`, and a database of `mib` random MiB.
fn interrupted_setup(t: &TestDir, mib: u64) -> PathBuf {
    t.init();
    let db = t.path("big.db");
    random_db(&db, mib);
    db
}

/// Starts `snapshot DB` (stdout and stderr piped) that stops itself (SIGSTOP)
/// after writing its first pack.
fn spawn_stopping_snapshot(t: &TestDir, db: &Path) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("--repo")
        .arg(t.repo())
        .arg("--quiet")
        .arg("snapshot")
        .arg(db);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LUMINA_BACKUP_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", t.root())
        .env("LUMINA_BACKUP_STOP_AT", "after-pack");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning lumina-backup")
}

fn assert_nothing_left(t: &TestDir, what: &str) {
    assert!(list_ids(t).is_empty(), "{what}: a snapshot was recorded");
    assert!(
        pack_files(&t.repo()).is_empty(),
        "{what}: partial packs stayed: {:?}",
        pack_files(&t.repo())
    );
    t.lb().args(["verify", "--read-data"]).ok();
    let st = t.lb().arg("status").json();
    let failure = st["last_failure"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        failure.contains("nothing was recorded"),
        "{what}: status: {st}"
    );
}

/// Issue #8 item 25: SIGINT or SIGTERM mid-snapshot prints one line
/// ("interrupted; nothing was recorded ..."), exits 128+signal, removes the
/// partial packs, and is recorded for `status`.
#[test]
fn interrupted_snapshot_says_so_and_leaves_no_partial_data() {
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let t = TestDir::new("interrupt");
        let db = interrupted_setup(&t, 24);
        let mut child = spawn_stopping_snapshot(&t, &db);
        wait_stopped(&mut child);
        assert!(!pack_files(&t.repo()).is_empty(), "stopped after a pack");
        signal(&child, sig);
        signal(&child, libc::SIGCONT);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(128 + sig), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains("interrupted") && stderr.contains("nothing was recorded"),
            "{name}: {stderr}"
        );
        assert_nothing_left(&t, name);
    }
}

/// Issue #8 item 30: a snapshot that fills the repository's disk says "no space
/// left", exits 1, and removes the packs it wrote; the repository stays usable.
#[test]
fn full_disk_mid_snapshot_says_no_space_and_removes_partial_packs() {
    let t = TestDir::new("enospc");
    let disk = t.path("disk");
    let Some(_m) = tmpfs(&disk, "20m") else {
        return;
    };
    let repo = disk.join("repo");
    let lb = || Lb::new(&repo, t.root());
    lb().arg("init").ok();
    let db = t.path("big.db");
    random_db(&db, 40);
    let r = lb().arg("snapshot").arg(&db).run();
    r.expect_code(1).expect_one_stderr_line();
    assert!(r.stderr.contains("no space left"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was recorded"), "{}", r.stderr);
    assert!(!r.stderr.contains("cancelled"), "{}", r.stderr);
    assert!(
        pack_files(&repo).is_empty(),
        "partial packs stayed: {:?}",
        pack_files(&repo)
    );
    assert!(lb()
        .arg("snapshots")
        .json()
        .as_array()
        .is_some_and(|a| a.is_empty()));
    lb().args(["verify", "--read-data"]).ok();
    let st = lb().arg("status").json();
    assert!(
        st["last_failure"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no space left"),
        "{st}"
    );
    let small = t.path("small.db");
    random_db(&small, 2);
    lb().arg("snapshot").arg(&small).ok();
}

/// Issue #8 item 32: a lock held by a stopped process names its pid and state
/// and says how to resume it (not "try again when it finishes").
#[test]
fn lock_held_by_a_stopped_process_names_it_and_says_how_to_resume() {
    let t = TestDir::new("stopped");
    let db = interrupted_setup(&t, 24);
    let mut child = spawn_stopping_snapshot(&t, &db);
    wait_stopped(&mut child);
    let pid = child.id();
    for args in [vec!["snapshots"], vec!["prune"]] {
        let r = t.lb().args(["--lock-wait", "1"]).args(&args).run();
        r.expect_code(1).expect_one_stderr_line();
        assert!(r.stderr.contains(&format!("pid {pid}")), "{}", r.stderr);
        assert!(r.stderr.contains("stopped"), "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!("kill -CONT {pid}")),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("when it finishes"), "{}", r.stderr);
    }
    signal(&child, libc::SIGCONT);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(list_ids(&t).len(), 1);
}
