//! Argument parsing (clap), dispatch to the library, output and exit codes.
//! Holds no storage logic.

mod demo;
mod diff;
mod exports;
mod output;
mod progress;
mod retention;
mod secret;
mod signals;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use time::UtcOffset;

use lumina_backup::{Error, OpenOptions, Repository, RestoreOptions, SnapshotOptions};
use output::{bytes, local_time, print_json, ListJson, SnapshotJson};
use progress::Bar;

/// Exit code when `verify` found problems.
pub const EXIT_PROBLEMS: i32 = 3;

/// lumina-backup: deduplicating, verified snapshots of SQLite databases.
#[derive(Parser, Debug)]
#[command(name = "lumina-backup", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Global {
    /// Repository folder.
    #[arg(long, global = true, env = "LUMINA_BACKUP_REPO", value_name = "PATH")]
    repo: Option<PathBuf>,
    /// File holding the passphrase of an encrypted repository (or set LUMINA_BACKUP_PASSWORD).
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Seconds to wait for another lumina-backup process using the repository.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECONDS")]
    lock_wait: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a repository.
    Init {
        /// Encrypt it (XChaCha20-Poly1305; key from the passphrase with Argon2id).
        #[arg(long)]
        encrypt: bool,
        /// Create it in a folder that already holds other files.
        #[arg(long)]
        force: bool,
    },
    /// Manage the passphrases of an encrypted repository.
    Key {
        #[command(subcommand)]
        what: KeyCommand,
    },
    /// Take a snapshot of a database (default ~/.lumina/lumina.db).
    Snapshot {
        /// The SQLite database.
        db: Option<PathBuf>,
        /// A tag (repeatable).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
        /// Store the database image only, without the JSON exports of Lumina's tables.
        #[arg(long)]
        no_exports: bool,
    },
    /// List snapshots, oldest first.
    #[command(alias = "log")]
    Snapshots {
        /// Only snapshots of this database.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Only snapshots with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only snapshots taken at or after TIME.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only snapshots taken at or before TIME.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Show only the snapshot `restore --at TIME` would choose.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Show the files of a snapshot with sizes, checksums and table row counts.
    Show {
        /// Snapshot id, unique prefix (6+ hex), or `latest`.
        snap: String,
    },
    /// Write one file of a snapshot to stdout (`lumina.db`, `metadata.json`, `manifest.json`, ...).
    Cat {
        /// Snapshot id, unique prefix, or `latest`.
        snap: String,
        /// File name inside the snapshot (`image` for the database image).
        file: String,
    },
    /// Restore a snapshot's database (verified, then swapped in atomically).
    Restore {
        /// Snapshot id, unique prefix, or `latest` (default `latest`).
        snap: Option<String>,
        /// Instead of SNAP: the newest snapshot taken at or before TIME (RFC 3339 or
        /// `YYYY-MM-DD[ HH:MM[:SS]]` local time).
        #[arg(long, value_name = "TIME", conflicts_with = "snap")]
        at: Option<String>,
        /// With --at: which database's history (needed when the repository has several).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Target database path (or folder with --all).
        #[arg(long, value_name = "PATH")]
        to: PathBuf,
        /// Replace an existing target (its state is first saved as a `pre-restore` snapshot).
        #[arg(long)]
        force: bool,
        /// Write every file of the snapshot into the folder given by --to.
        #[arg(long)]
        all: bool,
    },
    /// Check the repository; exit 3 if any problem is found.
    Verify {
        /// Also read and re-hash every byte of data.
        #[arg(long)]
        read_data: bool,
    },
    /// Add or remove tags, or set the note, of a snapshot (its id changes; no data is rewritten).
    Tag {
        /// Snapshot id, unique prefix, or `latest`.
        snap: String,
        /// Tag to add (repeatable).
        #[arg(long = "add", value_name = "T")]
        add: Vec<String>,
        /// Tag to remove (repeatable).
        #[arg(long = "remove", value_name = "T")]
        remove: Vec<String>,
        /// New note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Newest snapshot per database, last failure, repository size and deduplication.
    Status,
    /// Row-level differences between two snapshots, or a snapshot and the live database.
    Diff {
        /// The older snapshot.
        snap_a: String,
        /// The newer snapshot (or --db).
        snap_b: Option<String>,
        /// Compare with this live database instead of a second snapshot.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// List the keys (and changed columns) of every differing row.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Export Lumina tables from a database, or from a snapshot, to JSON or CSV.
    Export {
        /// A database path, or a snapshot (id, prefix, `latest`) when no such file exists.
        source: String,
        /// metadata, collections, tags, item_tags, or all.
        #[arg(long, default_value = "all")]
        table: String,
        /// json or csv.
        #[arg(long, default_value = "json")]
        format: String,
        /// Output file (one table) or folder (all).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// gzip the output (the app's old `.json.gz` format).
        #[arg(long)]
        gzip: bool,
    },
    /// Import an export file (.json or .json.gz) into a database, in one transaction.
    Import {
        /// The database (created if missing).
        db: PathBuf,
        /// The export file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Refuse the import when rows point at missing collections or tags.
        #[arg(long)]
        strict: bool,
    },
    /// Repairs.
    Repair {
        #[command(subcommand)]
        what: RepairWhat,
    },
    /// Remove snapshots by retention policy (per database; the union of the rules).
    Forget(retention::ForgetArgs),
    /// Delete data no snapshot references; repack mostly-dead packs.
    Prune(retention::PruneArgs),
    /// Repository settings (retention rules `forget` applies by default).
    Config {
        #[command(subcommand)]
        what: retention::ConfigCommand,
    },
    /// Walk the whole cycle on a sample Lumina database in a fresh folder.
    Demo {
        /// Folder to use (default: a new folder under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// List the keys (one per passphrase).
    List,
    /// Add a passphrase (from LUMINA_BACKUP_NEW_PASSWORD, --new-password-file, or the terminal).
    Add {
        /// File holding the new passphrase.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        /// A label shown by `key list`.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Remove a key by id or unique prefix (never the last one, nor the one in use).
    Remove {
        /// Key id or prefix.
        id: String,
    },
    /// Change the passphrase in use (rewrites its key file only).
    Passwd {
        /// File holding the new passphrase.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum RepairWhat {
    /// Rebuild the index from the pack and snapshot files.
    Index,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn default_repo() -> PathBuf {
    home().join(".lumina").join("backups")
}

fn default_db() -> PathBuf {
    home().join(".lumina").join("lumina.db")
}

/// Runs the CLI; returns the exit code.
pub fn main() -> i32 {
    // The local offset must be read before any thread starts (time's soundness rule).
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli, offset) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lumina-backup: {e}");
            e.exit_code()
        }
    }
}

struct Ctx {
    global: Global,
    offset: UtcOffset,
}

impl Ctx {
    fn repo_path(&self) -> PathBuf {
        self.global.repo.clone().unwrap_or_else(default_repo)
    }

    fn open(&self, purpose: &str) -> Result<Repository, Error> {
        Repository::open(&self.repo_path(), &self.open_options(purpose)?)
    }

    /// Opens for a command that only reads: writes nothing to the repository
    /// (works on a read-only mount or a full disk; shares the lock with readers).
    fn open_read(&self, purpose: &str) -> Result<Repository, Error> {
        Repository::open_read_only(&self.repo_path(), &self.open_options(purpose)?)
    }

    fn open_options(&self, purpose: &str) -> Result<OpenOptions, Error> {
        let path = self.repo_path();
        let passphrase = if Repository::is_encrypted(&path)? {
            Some(self.passphrase(false)?)
        } else {
            None
        };
        Ok(OpenOptions {
            lock_wait: Duration::from_secs(self.global.lock_wait),
            purpose: purpose.to_string(),
            passphrase,
        })
    }

    fn passphrase(&self, confirm: bool) -> Result<zeroize::Zeroizing<String>, Error> {
        let src = secret::Source {
            env: "LUMINA_BACKUP_PASSWORD",
            file: self.global.password_file.as_deref(),
            prompt: "repository passphrase",
        };
        secret::read(&src, confirm, &self.repo_path())
    }

    fn new_passphrase(&self, file: Option<&Path>) -> Result<zeroize::Zeroizing<String>, Error> {
        let src = secret::Source {
            env: "LUMINA_BACKUP_NEW_PASSWORD",
            file,
            prompt: "new passphrase",
        };
        secret::read(&src, true, &self.repo_path())
    }

    fn bar(&self) -> Bar {
        Bar::new(self.global.quiet || self.global.json)
    }

    /// Human lines go to stdout unless `--json`.
    fn say(&self, line: impl AsRef<str>) {
        if !self.global.json {
            println!("{}", line.as_ref());
        }
    }
}

fn run(cli: Cli, offset: UtcOffset) -> Result<i32, Error> {
    let ctx = Ctx {
        global: cli.global,
        offset,
    };
    match cli.command {
        Command::Init { encrypt, force } => {
            let path = ctx.repo_path();
            let passphrase = if encrypt {
                Some(ctx.passphrase(true)?)
            } else {
                None
            };
            let opts = lumina_backup::InitOptions {
                passphrase,
                force,
                ..Default::default()
            };
            let config = Repository::init_with(&path, &opts)?;
            warn_if_not_private(&path);
            if ctx.global.json {
                print_json(
                    &serde_json::json!({"repo": path, "repo_id": config.repo_id, "encrypted": encrypt}),
                );
            } else {
                let kind = if encrypt { "encrypted" } else { "unencrypted" };
                ctx.say(format!(
                    "created {kind} repository {} at {}",
                    &config.repo_id[..12],
                    path.display()
                ));
                if encrypt {
                    ctx.say("keep the passphrase safe: without it the snapshots cannot be read");
                }
            }
        }
        Command::Key { what } => key_command(&ctx, what)?,
        Command::Snapshot {
            db,
            tags,
            note,
            no_exports,
        } => {
            let db = db.unwrap_or_else(default_db);
            let mut repo = ctx.open("snapshot")?;
            let bar = ctx.bar();
            let opts = SnapshotOptions {
                tags,
                note,
                no_exports,
            };
            signals::install();
            let s = match repo.snapshot(&db, &opts, &bar) {
                Ok(s) => s,
                Err(e) => {
                    let (message, code) = match (&e, signals::received()) {
                        (Error::SnapshotNotRecorded { partial, .. }, Some(sig)) => (
                            format!(
                                "interrupted by {}; nothing was recorded; {partial}",
                                signals::name(sig)
                            ),
                            Some(128 + sig),
                        ),
                        _ => (e.to_string(), None),
                    };
                    // Failures are kept for `status` (and the app); a failure to
                    // record one must not hide the original error.
                    let _ = repo.record_failure("snapshot", &db.display().to_string(), &message);
                    return match code {
                        Some(code) => {
                            eprintln!("lumina-backup: {message}");
                            Ok(code)
                        }
                        None => Err(e),
                    };
                }
            };
            let snap = &s.snapshot;
            if ctx.global.json {
                print_json(&SnapshotJson::from(snap));
            } else {
                let r = &snap.record;
                ctx.say(format!(
                    "snapshot {} of {}: {} in {} files, {} new",
                    snap.id.short(),
                    r.source,
                    bytes(r.total_bytes),
                    r.files.len(),
                    bytes(r.new_bytes)
                ));
                for w in &r.warnings {
                    ctx.say(format!("  warning: {w}"));
                }
            }
        }
        Command::Snapshots {
            db,
            tag,
            since,
            until,
            at,
        } => {
            let repo = ctx.open_read("snapshots")?;
            let parse = |t: Option<String>| {
                t.map(|t| lumina_backup::timespec::parse_time(&t, ctx.offset))
                    .transpose()
            };
            let list: Vec<_> = match parse(at)? {
                Some(t) => vec![repo.snapshot_at(db.as_deref(), t)?],
                None => {
                    let filter = lumina_backup::snapshot::Filter {
                        db: db.as_deref().map(lumina_backup::repo::source_key),
                        tag,
                        since_ns: parse(since)?,
                        until_ns: parse(until)?,
                    };
                    repo.list_filtered(&filter)?
                }
            };
            let known = repo.known_changes()?;
            if ctx.global.json {
                print_json(
                    &list
                        .iter()
                        .map(|s| ListJson::with_changes(s, &known))
                        .collect::<Vec<_>>(),
                );
            } else if list.is_empty() {
                ctx.say("no snapshots");
            } else {
                for s in &list {
                    let r = &s.record;
                    let tags = if r.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", r.tags.join(", "))
                    };
                    let note = if r.note.is_empty() {
                        String::new()
                    } else {
                        format!(" \"{}\"", r.note)
                    };
                    let changes = match known.get(&s.id) {
                        Some(n) => format!("  {n} rows changed"),
                        None => String::new(),
                    };
                    ctx.say(format!(
                        "{}  {}  {:>10}  +{:<10} {}{tags}{note}{changes}",
                        s.id.short(),
                        local_time(r.time_ns, ctx.offset),
                        bytes(r.total_bytes),
                        bytes(r.new_bytes),
                        r.source
                    ));
                }
            }
        }
        Command::Show { snap } => {
            let repo = ctx.open_read("show")?;
            let s = repo.resolve(&snap)?;
            let mut manifest = Vec::new();
            let tables = match s.file("manifest.json") {
                Ok(entry) => {
                    repo.read_file(entry, &mut manifest, &lumina_backup::NoProgress)?;
                    serde_json::from_slice::<serde_json::Value>(&manifest)
                        .ok()
                        .and_then(|m| m.get("tables").cloned())
                }
                Err(_) => None,
            };
            if ctx.global.json {
                let mut doc = serde_json::to_value(SnapshotJson::from(&s))
                    .map_err(|e| Error::BadInput(e.to_string()))?;
                doc["tables"] = tables.unwrap_or(serde_json::Value::Null);
                doc["sqlite"] = serde_json::json!({
                    "page_size": s.record.sqlite.page_size,
                    "page_count": s.record.sqlite.page_count,
                    "user_version": s.record.sqlite.user_version,
                    "sqlite_version": s.record.sqlite.sqlite_version,
                    "journal_mode": s.record.sqlite.journal_mode,
                    "lumina": s.record.sqlite.lumina,
                });
                doc["encrypted"] = serde_json::json!(repo.encrypted());
                print_json(&doc);
            } else {
                let r = &s.record;
                ctx.say(format!("snapshot {}", s.id));
                let kind = if repo.encrypted() {
                    "encrypted (XChaCha20-Poly1305, Argon2id keys)"
                } else {
                    "unencrypted"
                };
                ctx.say(format!("  repository {kind}"));
                ctx.say(format!("  time      {}", local_time(r.time_ns, ctx.offset)));
                ctx.say(format!("  database  {} (host {})", r.source, r.hostname));
                if let Some(p) = r.parent {
                    ctx.say(format!("  parent    {}", p.short()));
                }
                if !r.tags.is_empty() {
                    ctx.say(format!("  tags      {}", r.tags.join(", ")));
                }
                if !r.note.is_empty() {
                    ctx.say(format!("  note      {}", r.note));
                }
                ctx.say(format!(
                    "  sqlite    {} pages of {} bytes, user_version {}, {} mode",
                    r.sqlite.page_count,
                    r.sqlite.page_size,
                    r.sqlite.user_version,
                    r.sqlite.journal_mode
                ));
                ctx.say(format!(
                    "  size      {} ({} added by this snapshot)",
                    bytes(r.total_bytes),
                    bytes(r.new_bytes)
                ));
                ctx.say("  files:");
                for f in &r.files {
                    ctx.say(format!(
                        "    {:<18} {:>12}  blake3 {}",
                        f.name,
                        bytes(f.size),
                        hex::encode(f.blake3)
                    ));
                }
                if let Some(serde_json::Value::Object(t)) = tables {
                    ctx.say("  tables:");
                    for (name, rows) in t {
                        ctx.say(format!("    {name:<18} {rows} rows"));
                    }
                }
                for w in &r.warnings {
                    ctx.say(format!("  warning: {w}"));
                }
            }
        }
        Command::Cat { snap, file } => {
            let repo = ctx.open_read("cat")?;
            let s = repo.resolve(&snap)?;
            let entry = s.file(&file)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            repo.read_file(entry, &mut out, &lumina_backup::NoProgress)?;
            out.flush().map_err(|e| Error::io("writing", "stdout", e))?;
        }
        Command::Restore {
            snap,
            at,
            db,
            to,
            force,
            all,
        } => {
            // Only replacing an existing target writes (its pre-restore snapshot).
            let mut repo = if force && to.exists() {
                ctx.open("restore")?
            } else {
                ctx.open_read("restore")?
            };
            let chosen = match at {
                Some(t) => repo.snapshot_at(
                    db.as_deref(),
                    lumina_backup::timespec::parse_time(&t, ctx.offset)?,
                )?,
                None => repo.resolve(snap.as_deref().unwrap_or("latest"))?,
            };
            let bar = ctx.bar();
            let opts = RestoreOptions { force };
            let report = if all {
                repo.restore_all(chosen, &to, &opts, &bar)?
            } else {
                repo.restore_snapshot(chosen, &to, &opts, &bar)?
            };
            if ctx.global.json {
                print_json(&serde_json::json!({
                    "id": report.snapshot.id.to_hex(),
                    "to": to,
                    "files": report.written,
                    "bytes": report.bytes,
                    "pre_restore": report.pre_restore.as_ref().map(|p| p.id.to_hex()),
                    "integrity_check_secs": report.integrity_secs,
                }));
            } else {
                if let Some(p) = &report.pre_restore {
                    ctx.say(format!(
                        "saved the previous state of {} as snapshot {} (tag pre-restore)",
                        to.display(),
                        p.id.short()
                    ));
                }
                ctx.say(format!(
                    "restored snapshot {} to {} ({}, every chunk and the whole file verified, integrity_check ok)",
                    report.snapshot.id.short(),
                    to.display(),
                    bytes(report.bytes)
                ));
                ctx.say(format!(
                    "integrity_check took {:.2} s",
                    report.integrity_secs
                ));
            }
        }
        Command::Verify { read_data } => {
            let repo = ctx.open_read("verify")?;
            let bar = ctx.bar();
            let report = repo.verify(read_data, &bar)?;
            if ctx.global.json {
                print_json(&report);
            } else {
                for p in &report.problems {
                    ctx.say(format!("problem: {p}"));
                }
                ctx.say(format!(
                    "{}: {} snapshots, {} chunks, {} packs checked{}",
                    if report.ok { "ok" } else { "PROBLEMS FOUND" },
                    report.snapshots_checked,
                    report.chunks_checked,
                    report.packs_checked,
                    if read_data {
                        format!(", {} read and re-hashed", bytes(report.bytes_read))
                    } else {
                        String::new()
                    }
                ));
            }
            if !report.ok {
                if !ctx.global.json {
                    eprintln!(
                        "lumina-backup: verify found {} problem(s); see above",
                        report.problems.len()
                    );
                }
                return Ok(EXIT_PROBLEMS);
            }
        }
        Command::Repair {
            what: RepairWhat::Index,
        } => {
            let bar = ctx.bar();
            let (_repo, report) = Repository::open_and_rebuild_index(
                &ctx.repo_path(),
                &ctx.open_options("repair index")?,
                &bar,
            )?;
            if ctx.global.json {
                print_json(&report);
            } else {
                for s in &report.skipped {
                    ctx.say(format!("skipped: {s}"));
                }
                ctx.say(format!(
                    "index rebuilt: {} packs, {} chunks, {} snapshots",
                    report.packs, report.chunks, report.snapshots
                ));
            }
        }
        Command::Demo { dir } => demo::run(dir.as_deref(), &ctx)?,
        Command::Forget(args) => retention::forget(&ctx, args)?,
        Command::Prune(args) => retention::prune(&ctx, args)?,
        Command::Config { what } => retention::config(&ctx, what)?,
        Command::Export {
            source,
            table,
            format,
            out,
            gzip,
        } => exports::export(&ctx, &source, &table, &format, out, gzip)?,
        Command::Import { db, from, strict } => exports::import(&ctx, &db, &from, strict)?,
        Command::Diff {
            snap_a,
            snap_b,
            db,
            verbose,
        } => diff::run(&ctx, &snap_a, snap_b.as_deref(), db, verbose)?,
        Command::Tag {
            snap,
            add,
            remove,
            note,
        } => {
            let mut repo = ctx.open("tag")?;
            let s = repo.edit_snapshot(&snap, &add, &remove, note.as_deref())?;
            if ctx.global.json {
                print_json(&ListJson::from(&s));
            } else {
                let tags = if s.record.tags.is_empty() {
                    "no tags".to_string()
                } else {
                    s.record.tags.join(", ")
                };
                ctx.say(format!(
                    "snapshot {} now: {tags}; note \"{}\"",
                    s.id.short(),
                    s.record.note
                ));
            }
        }
        Command::Status => {
            let repo = ctx.open_read("status")?;
            let st = repo.status()?;
            if ctx.global.json {
                print_json(&st);
            } else {
                let kind = if st.encrypted {
                    "encrypted"
                } else {
                    "unencrypted"
                };
                ctx.say(format!(
                    "repository {} ({kind}), {} snapshots",
                    st.repository, st.snapshots
                ));
                for d in &st.databases {
                    let id = d.latest_id.get(..12).unwrap_or(&d.latest_id);
                    ctx.say(format!(
                        "  {}: {} snapshots, newest {id} at {}",
                        d.db,
                        d.snapshots,
                        local_time(d.latest_time_ns, ctx.offset)
                    ));
                }
                match &st.last_failure {
                    Some(f) => ctx.say(format!(
                        "last failure: {} {} at {}: {}",
                        f.operation,
                        f.db,
                        local_time(f.time_ns, ctx.offset),
                        f.message
                    )),
                    None => ctx.say("last failure: none recorded"),
                }
                ctx.say(format!(
                    "stored {} for {} of snapshots (deduplication {:.1}x); {} chunks in {} packs",
                    bytes(st.stored_bytes),
                    bytes(st.logical_bytes),
                    st.dedup_ratio,
                    st.chunks,
                    st.packs
                ));
            }
        }
    }
    Ok(0)
}

fn key_command(ctx: &Ctx, what: KeyCommand) -> Result<(), Error> {
    let kdf = lumina_backup::crypto::KdfParams::default();
    match what {
        KeyCommand::List => {
            let repo = ctx.open_read("key list")?;
            let keys = repo.key_list()?;
            if ctx.global.json {
                print_json(&keys);
            } else {
                for k in keys {
                    let when = output::rfc3339(k.created.saturating_mul(1_000_000_000));
                    let cur = if k.current { " (in use)" } else { "" };
                    ctx.say(format!(
                        "{}  {when}  argon2id m={} KiB t={} p={}  {}{cur}",
                        k.id, k.params.m_cost_kib, k.params.t_cost, k.params.p_cost, k.label
                    ));
                }
            }
        }
        KeyCommand::Add {
            new_password_file,
            label,
        } => {
            let repo = ctx.open("key add")?;
            let pw = ctx.new_passphrase(new_password_file.as_deref())?;
            let id = repo.key_add(&pw, kdf, &label)?;
            ctx.say(format!("added key {id}"));
            if ctx.global.json {
                print_json(&serde_json::json!({"added": id}));
            }
        }
        KeyCommand::Remove { id } => {
            let repo = ctx.open("key remove")?;
            let removed = repo.key_remove(&id)?;
            ctx.say(format!("removed key {removed}"));
            if ctx.global.json {
                print_json(&serde_json::json!({"removed": removed}));
            }
        }
        KeyCommand::Passwd { new_password_file } => {
            let mut repo = ctx.open("key passwd")?;
            let pw = ctx.new_passphrase(new_password_file.as_deref())?;
            let id = repo.key_passwd(&pw, kdf)?;
            ctx.say(format!("passphrase changed (new key {id})"));
            if ctx.global.json {
                print_json(&serde_json::json!({"key": id}));
            }
        }
    }
    Ok(())
}

/// `init` makes the repository folder 0700; say so when the file system kept
/// another mode (no Unix modes, or a folder owned by someone else).
fn warn_if_not_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "lumina-backup: note: {} keeps mode {mode:o} (this file system or its owner did not allow 0700); other users may list the repository's files",
                path.display()
            );
        }
    }
}

/// Used by the demo to print paths.
fn show_path(p: &Path) -> String {
    p.display().to_string()
}
