//! Shared helpers for the integration tests: a per-test folder, a command
//! builder for the real `lumina-backup` binary, sample databases, and a logical
//! dump of a SQLite database (every row of every table, ordered) for equality.
//!
//! Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rusqlite::{types::ValueRef, Connection, OpenFlags};
use serde_json::Value;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lumina-backup");

/// A per-test folder (deleted on drop) holding a repository path and databases.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// A fresh folder; `name` only helps when reading leftovers.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lumina-it-{name}-"))
            .tempdir()
            .expect("creating the test folder");
        TestDir { dir }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The repository path used by [`TestDir::lb`] (`<dir>/repo`).
    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// A command for the binary with `--repo <dir>/repo`, `HOME` pointed into the
    /// test folder (so nothing touches `~/.lumina`), and no inherited
    /// `LUMINA_BACKUP_*` variables.
    pub fn lb(&self) -> Lb {
        Lb::new(&self.repo(), self.root())
    }

    /// Runs `init` on the repository and asserts it succeeded.
    pub fn init(&self) {
        self.lb().args(["init"]).ok();
    }
}

/// Builder for one run of the binary.
pub struct Lb {
    cmd: Command,
}

/// Result of one run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    fn from_output(o: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: o.status.code(),
            signal: o.status.signal(),
            stdout: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr: {}",
                self.out(),
                self.stderr
            )
        })
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}; signal {:?}\nstdout: {}\nstderr: {}",
            self.signal,
            self.out(),
            self.stderr
        );
        self
    }

    /// Asserts stderr is exactly one non-empty line (the CLI contract for failures).
    pub fn expect_one_stderr_line(&self) -> &Self {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 && !lines[0].trim().is_empty(),
            "expected exactly one line on stderr, got {}:\n{}",
            lines.len(),
            self.stderr
        );
        self
    }
}

impl Lb {
    /// A command on `repo`, with `HOME` set to `home`.
    pub fn new(repo: &Path, home: &Path) -> Self {
        Self::without_repo(home).args([std::ffi::OsStr::new("--repo"), repo.as_os_str()])
    }

    /// A command naming no repository (it comes from a configuration file
    /// or the default), with `HOME` set to `home`.
    pub fn without_repo(home: &Path) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("--quiet");
        cmd.env("HOME", home);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LUMINA_BACKUP_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::null());
        Lb { cmd }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    /// Runs in folder `dir` (for relative paths).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Sets the crash point (`LUMINA_BACKUP_CRASH_AT`).
    pub fn crash_at(self, point: &str) -> Self {
        self.env("LUMINA_BACKUP_CRASH_AT", point)
    }

    /// Runs to completion.
    pub fn run(mut self) -> Run {
        Run::from_output(self.cmd.output().expect("running lumina-backup"))
    }

    /// Runs and asserts exit code 0.
    pub fn ok(self) -> Run {
        let r = self.run();
        r.expect_code(0);
        r
    }

    /// Runs with `--json`, asserts success and parses stdout.
    pub fn json(self) -> Value {
        self.arg("--json").ok().json()
    }

    /// Starts it in the background with stdout and stderr captured
    /// (`wait_with_output` collects them).
    pub fn spawn_piped(mut self) -> Child {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning lumina-backup")
    }

    /// Runs with stdout into a pipe whose reader takes the first `N` bytes and
    /// then goes away (`... | head`); returns them and the finished process.
    pub fn read_head_then_close<const N: usize>(self) -> ([u8; N], std::process::Output) {
        use std::io::Read;
        let mut child = self.spawn_piped();
        let mut head = [0u8; N];
        child
            .stdout
            .take()
            .expect("stdout")
            .read_exact(&mut head)
            .expect("the first bytes");
        // The pipe's read end is closed here (dropped above).
        (head, child.wait_with_output().expect("wait"))
    }

    /// Starts the process without waiting (output discarded).
    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning lumina-backup")
    }
}

/// Creates a sample Lumina database (WAL mode) with `items` photos.
pub fn create_lumina(path: &Path, items: u64, seed: u64) {
    lumina_backup::create_lumina_db(path, items, seed).expect("creating a Lumina db");
}

/// Opens a database read-write (as an application would).
pub fn open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    c.busy_timeout(std::time::Duration::from_secs(30))
        .expect("busy timeout");
    c
}

/// A database at `path` in `journal` mode with one table `blobs(id, data)` of
/// `rows` random blobs of `size` bytes (pages that neither compress nor
/// deduplicate).
pub fn blobs_db(path: &Path, journal: &str, rows: u32, size: u32) {
    open(path)
        .execute_batch(&format!(
            "PRAGMA journal_mode = {journal};
             CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO blobs SELECT i, randomblob({size}) FROM n;"
        ))
        .expect("blobs");
}

/// The logical content of a database: schema, `user_version`, and every row of
/// every table (rows rendered and sorted), tables by name.
pub type Dump = Vec<(String, Vec<String>)>;

/// Dumps the logical content of the database at `path`.
pub fn dump(path: &Path) -> Dump {
    dump_conn(&open(path))
}

/// Dumps through an existing connection (sees its WAL).
pub fn dump_conn(c: &Connection) -> Dump {
    let mut out = Vec::new();
    let mut schema: Vec<String> = c
        .prepare("SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_schema")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .expect("reading schema");
    schema.sort();
    let uv: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    schema.push(format!("user_version {uv}"));
    out.push(("<schema>".to_string(), schema));
    let tables: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .expect("listing tables");
    for t in tables {
        let mut stmt = c
            .prepare(&format!("SELECT * FROM \"{}\"", t.replace('"', "\"\"")))
            .expect("select");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut s = String::new();
                for i in 0..n {
                    let v = match r.get_ref(i)? {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(x) => format!("i{x}"),
                        ValueRef::Real(x) => format!("r{x:?}"),
                        ValueRef::Text(t) => format!("t{:?}", String::from_utf8_lossy(t)),
                        ValueRef::Blob(b) => format!("b{}", hex::encode(b)),
                    };
                    s.push_str(&v);
                    s.push('|');
                }
                Ok(s)
            })
            .and_then(|rows| rows.collect())
            .expect("reading rows");
        rows.sort();
        out.push((t, rows));
    }
    out
}

/// Dumps a copy of `path` (with its `-wal`, without `-shm`) so that the original
/// and its sidecar files stay exactly as they are.
pub fn dump_via_copy(path: &Path) -> Dump {
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("copy.db");
    std::fs::copy(path, &copy).expect("copying db");
    let wal = sidecar(path, "-wal");
    if wal.exists() {
        std::fs::copy(&wal, sidecar(&copy, "-wal")).expect("copying wal");
    }
    dump(&copy)
}

/// `<path><suffix>`, e.g. the `-wal` beside a database.
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// `PRAGMA integrity_check` on a file opened read-only and immutable.
pub fn integrity_ok(path: &Path) -> bool {
    let uri = format!("file:{}?immutable=1", path.display());
    let c = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .expect("opening for integrity_check");
    let lines: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .unwrap_or_else(|e| vec![e.to_string()]);
    lines == ["ok"]
}

/// Checkpoints the WAL fully into the database file and truncates it.
pub fn checkpoint(path: &Path) {
    let c = open(path);
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .expect("checkpoint");
    assert_eq!(busy, 0, "checkpoint of {} was blocked", path.display());
}

/// BLAKE3 of a file, hex.
pub fn blake3_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    blake3::hash(&bytes).to_hex().to_string()
}

/// The checksum a plain format-2 repository records for the database image
/// at `path` (store-format.md 4.2): the chunk-list digest of its pages, one
/// chunk per page (the default page chunker), ids unkeyed.
pub fn image_digest(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let ps = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => usize::from(n),
    };
    let mut h = blake3::Hasher::new();
    h.update(b"lumina-backup chunk-list v2\n");
    for page in bytes.chunks(ps) {
        h.update(blake3::hash(page).as_bytes());
        h.update(&(page.len() as u64).to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Changes `n` rows of `metadata` (spread by a seeded generator) in one transaction.
pub fn touch_metadata_rows(path: &Path, n: u64, seed: u64) {
    let mut c = open(path);
    let total: i64 = c
        .query_row("SELECT max(rowid) FROM metadata", [], |r| r.get(0))
        .expect("count");
    let mut rng = lumina_backup::SampleRng::new(seed);
    let tx = c.transaction().expect("tx");
    for k in 0..n {
        let rowid = 1 + rng.below(total as u64) as i64;
        tx.execute(
            "UPDATE metadata SET colorTag = ?1, lastModified = lastModified + 1 WHERE rowid = ?2",
            rusqlite::params![format!("touched-{seed}-{k}"), rowid],
        )
        .expect("update");
    }
    tx.commit().expect("commit");
}

/// Parses a `snapshot --json` (or `snapshots --json`) id field.
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id is a string").to_string()
}

/// Ids of `snapshots --json`.
pub fn list_ids(dir: &TestDir) -> Vec<String> {
    let list = dir.lb().args(["snapshots"]).json();
    list.as_array().expect("array").iter().map(id_of).collect()
}

/// All regular files under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Pack files of the repository at `repo`.
pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    files_under(&repo.join("packs"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .map(|n| n.len() == 64 && !n.to_string_lossy().starts_with('.'))
                .unwrap_or(false)
        })
        .collect()
}

/// Copies a folder tree (files and folders only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

/// A database whose damage only `integrity_check` sees: an index whose schema
/// now claims every row of `t` while its b-tree holds half of them (a schema
/// edit on page 1; `quick_check` does not compare them), so a snapshot of it
/// is taken and only a restore drill fails.
pub fn make_db_only_integrity_check_faults(path: &Path) {
    let c = Connection::open(path).expect("db");
    c.execute_batch(
        "CREATE TABLE t(x INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO t SELECT i FROM n;
         CREATE INDEX tx ON t(x) WHERE x > 100;
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = 'CREATE INDEX tx ON t(x)' WHERE name = 'tx';
         PRAGMA writable_schema = OFF;",
    )
    .expect("an index that holds half the rows it claims");
}

/// A tiny plain database `t(id, v)` with one row holding `v` (rollback journal,
/// SQLite's default).
pub fn make_db(path: &Path, v: &str) {
    let c = Connection::open(path).expect("create db");
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .expect("schema");
    c.execute("INSERT INTO t VALUES (1, ?1)", [v]).expect("row");
}

/// Sets the one value of a [`make_db`] database.
pub fn set_value(path: &Path, v: &str) {
    let c = Connection::open(path).expect("open db");
    c.execute("UPDATE t SET v = ?1 WHERE id = 1", [v])
        .expect("update");
}

/// The one value of a [`make_db`] database.
pub fn value(path: &Path) -> String {
    let c = Connection::open(path).expect("open db");
    c.query_row("SELECT v FROM t WHERE id = 1", [], |r| r.get(0))
        .expect("read v")
}

/// Runs `lb` (a snapshot) with its cache folder (`XDG_CACHE_HOME`) on a 64 KiB
/// tmpfs mounted at `dir` (created): the run and the files it left in the
/// staging folder. `None` when no tmpfs can be mounted here (it needs root).
pub fn run_with_tiny_cache(dir: &Path, lb: Lb) -> Option<(Run, Vec<PathBuf>)> {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        return None;
    }
    let r = lb.env("XDG_CACHE_HOME", dir).run();
    let left = std::fs::read_dir(dir.join("lumina-backup"))
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    let _ = Command::new("umount").arg("-l").arg(dir).status();
    Some((r, left))
}
