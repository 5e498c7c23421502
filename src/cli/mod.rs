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

use lumina_backup::{parse_time, TimeEdge as Edge, TimeZone};
use lumina_backup::{Check, Error, OpenOptions, Repository, RestoreOptions, SnapshotOptions};
use output::{bytes, clean, clean_tags, local_time, print_json, ListJson, SnapshotJson};
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

/// `restore --check` levels.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CheckArg {
    /// `PRAGMA quick_check`.
    Quick,
    /// `PRAGMA integrity_check`.
    Full,
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
        /// With `latest`: which database's newest (needed when the repository has several).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Write one file of a snapshot to stdout (`lumina.db`, `metadata.json`, `manifest.json`, ...).
    Cat {
        /// Snapshot id, unique prefix, or `latest`.
        snap: String,
        /// File name inside the snapshot (`image` for the database image).
        file: String,
        /// With `latest`: which database's newest (needed when the repository has several).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
    /// Restore a snapshot's database (verified, then swapped in atomically).
    Restore {
        /// Snapshot id, unique prefix, or `latest` (default `latest`).
        snap: Option<String>,
        /// Instead of SNAP: the newest snapshot taken at or before TIME (RFC 3339 or
        /// `YYYY-MM-DD[ HH:MM[:SS]]` local time).
        #[arg(long, value_name = "TIME", conflicts_with = "snap")]
        at: Option<String>,
        /// With `latest` or --at: which database's history (default: the target
        /// when the repository has snapshots of it; needed when it has several).
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
        /// SQLite's check of the restored image: `full` (integrity_check, the
        /// default) or `quick` (quick_check: indexes not compared with tables).
        #[arg(long, value_enum, value_name = "LEVEL", conflicts_with = "no_check")]
        check: Option<CheckArg>,
        /// Skip SQLite's check (every chunk and the whole file are still verified by checksum).
        #[arg(long)]
        no_check: bool,
        /// Restore through SQLite into the open database (for an app that keeps it
        /// open; it sees the restored content at its next transaction).
        #[arg(long)]
        live: bool,
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
        /// With `latest`: which database's newest (needed when the repository has several).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
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
        /// With SOURCE `latest`: which database's newest (needed when the repository has several).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
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
    /// Remove snapshots by retention policy (per database; the union of the
    /// rules), or the snapshots named.
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
    /// After lost data: remove the snapshots that cannot be restored (keep those
    /// whose database image is intact, without their lost exports), so that
    /// verify is clean and prune works again.
    Snapshots {
        /// Print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
    // TZ, else the system zone; each instant gets the offset in force then.
    let tz = lumina_backup::local_zone();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            // `--json` asked for one JSON document on stdout, failures included.
            if code != 0 && std::env::args_os().any(|a| a == "--json") {
                print_error_json(&usage_line(&e), code);
            }
            return code;
        }
    };
    let json = cli.global.json;
    match run(cli, tz.clone()) {
        Ok(code) => code,
        Err(e) => {
            let message = describe(&e, &tz);
            eprintln!("lumina-backup: {message}");
            let code = e.exit_code();
            if json {
                print_error_json(&message, code);
            }
            code
        }
    }
}

/// The message of an error, with the instants it carries in local time (as
/// listings show them) where the library could not know the zone.
fn describe(e: &Error, tz: &TimeZone) -> String {
    match e {
        Error::BeforeFirstSnapshot { earliest, time_ns } => format!(
            "no snapshot at or before that time; the earliest is {earliest}, taken {}",
            lumina_backup::format_local(*time_ns, tz)
        ),
        other => other.to_string(),
    }
}

/// One line from a clap usage error: its first paragraph (`error: the following
/// required arguments were not provided:` and the arguments on the lines after
/// it) joined, without the usage block.
fn usage_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let parts: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = parts.join(" ");
    let line = line.trim_start_matches("error: ").trim();
    if line.is_empty() {
        "bad usage".to_string()
    } else {
        line.to_string()
    }
}

/// The `--json` form of a failure: `{"error": message, "exit_code": code}`.
fn print_error_json(message: &str, code: i32) {
    print_json(&serde_json::json!({ "error": message, "exit_code": code }));
}

/// A warning on stderr (shown even with `--quiet`, which silences progress only).
fn warn(message: &str) {
    eprintln!("lumina-backup: warning: {message}");
}

struct Ctx {
    global: Global,
    /// The local time zone (for typed and shown local times).
    tz: TimeZone,
}

impl Ctx {
    fn repo_path(&self) -> PathBuf {
        self.global.repo.clone().unwrap_or_else(default_repo)
    }

    fn open(&self, purpose: &str) -> Result<Repository, Error> {
        let repo = Repository::open(&self.repo_path(), &self.open_options(purpose)?)?;
        for n in repo.notices() {
            eprintln!("lumina-backup: {n}");
        }
        Ok(repo)
    }

    /// Opens for a command that only reads: writes nothing to the repository
    /// (works on a read-only mount or a full disk; shares the lock with readers).
    fn open_read(&self, purpose: &str) -> Result<Repository, Error> {
        let repo = Repository::open_read_only(&self.repo_path(), &self.open_options(purpose)?)?;
        for n in repo.notices() {
            eprintln!("lumina-backup: {n}");
        }
        Ok(repo)
    }

    fn open_options(&self, purpose: &str) -> Result<OpenOptions, Error> {
        let path = self.repo_path();
        let passphrase = if Repository::is_encrypted(&path)? {
            Some(self.passphrase(false)?)
        } else {
            if self.passphrase_given() {
                warn(&format!(
                    "repository {} is not encrypted; the passphrase given was ignored",
                    path.display()
                ));
            }
            None
        };
        Ok(OpenOptions {
            lock_wait: Duration::from_secs(self.global.lock_wait),
            purpose: purpose.to_string(),
            passphrase,
        })
    }

    /// The passphrase of the repository; `creating` for `init --encrypt`.
    fn passphrase(&self, creating: bool) -> Result<zeroize::Zeroizing<String>, Error> {
        let repo = self.repo_path();
        let missing = if creating {
            format!(
                "init --encrypt needs a passphrase for the new repository {}: set LUMINA_BACKUP_PASSWORD, use --password-file FILE, or run on a terminal",
                repo.display()
            )
        } else {
            Error::PassphraseRequired(repo).to_string()
        };
        let src = secret::Source {
            env: "LUMINA_BACKUP_PASSWORD",
            file: self.global.password_file.as_deref(),
            prompt: "repository passphrase",
            missing: &missing,
        };
        secret::read(&src, creating)
    }

    fn new_passphrase(&self, file: Option<&Path>) -> Result<zeroize::Zeroizing<String>, Error> {
        let src = secret::Source {
            env: "LUMINA_BACKUP_NEW_PASSWORD",
            file,
            prompt: "new passphrase",
            missing: "no new passphrase given: set LUMINA_BACKUP_NEW_PASSWORD, use --new-password-file FILE, or run on a terminal",
        };
        secret::read(&src, true)
    }

    /// Whether the user gave a passphrase (file or environment).
    fn passphrase_given(&self) -> bool {
        self.global.password_file.is_some() || std::env::var_os("LUMINA_BACKUP_PASSWORD").is_some()
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

fn run(cli: Cli, tz: TimeZone) -> Result<i32, Error> {
    let ctx = Ctx {
        global: cli.global,
        tz,
    };
    match cli.command {
        Command::Init { encrypt, force } => {
            let path = ctx.repo_path();
            let passphrase = if encrypt {
                Some(ctx.passphrase(true)?)
            } else {
                if ctx.passphrase_given() {
                    warn("a passphrase was given but not --encrypt: the new repository is not encrypted and the passphrase was ignored");
                }
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
            let clock = s.clock_went_back.map(|parent_ns| {
                format!(
                    "this snapshot's time ({}) is earlier than its parent's ({}): the clock went back; it is still the newest snapshot of {}",
                    lumina_backup::rfc3339(snap.record.time_ns),
                    lumina_backup::rfc3339(parent_ns),
                    clean(&snap.record.source)
                )
            });
            if ctx.global.json {
                let mut doc = SnapshotJson::from(snap);
                doc.warnings.extend(clock);
                print_json(&doc);
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
                for w in r.warnings.iter().chain(&clock) {
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
            let parse =
                |t: Option<String>, edge| t.map(|t| parse_time(&t, &ctx.tz, edge)).transpose();
            let list: Vec<_> = match parse(at, Edge::End)? {
                Some(t) => vec![repo.snapshot_at(db.as_deref(), t)?],
                None => {
                    let filter = lumina_backup::SnapshotFilter {
                        db: db.as_deref().map(lumina_backup::source_key),
                        tag,
                        since_ns: parse(since, Edge::Start)?,
                        until_ns: parse(until, Edge::End)?,
                    };
                    repo.list_filtered(&filter)?
                }
            };
            let known = repo.known_changes()?;
            let went_back = lumina_backup::clock_went_back(&repo.list()?);
            if ctx.global.json {
                print_json(
                    &list
                        .iter()
                        .map(|s| ListJson {
                            clock_went_back: went_back.contains(&s.id),
                            ..ListJson::with_changes(s, &known)
                        })
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
                        format!(" [{}]", clean_tags(&r.tags))
                    };
                    let note = if r.note.is_empty() {
                        String::new()
                    } else {
                        format!(" \"{}\"", clean(&r.note))
                    };
                    let changes = match known.get(&s.id) {
                        Some(n) => format!("  {n} rows changed"),
                        None => String::new(),
                    };
                    let clock = if went_back.contains(&s.id) {
                        "  (warning: taken at an earlier time than the snapshot before it; the clock went back)"
                    } else {
                        ""
                    };
                    ctx.say(format!(
                        "{}  {}  {:>10}  +{:<10} {}{tags}{note}{changes}{clock}",
                        s.id.short(),
                        local_time(r.time_ns, &ctx.tz),
                        bytes(r.total_bytes),
                        bytes(r.new_bytes),
                        clean(&r.source)
                    ));
                }
            }
        }
        Command::Show { snap, db } => {
            let repo = ctx.open_read("show")?;
            let s = repo.resolve_in(&snap, db.as_deref())?;
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
                ctx.say(format!("  time      {}", local_time(r.time_ns, &ctx.tz)));
                ctx.say(format!(
                    "  database  {} (host {})",
                    clean(&r.source),
                    clean(&r.hostname)
                ));
                if let Some(p) = r.parent {
                    ctx.say(format!("  parent    {}", p.short()));
                }
                if !r.tags.is_empty() {
                    ctx.say(format!("  tags      {}", clean_tags(&r.tags)));
                }
                if !r.note.is_empty() {
                    ctx.say(format!("  note      {}", clean(&r.note)));
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
        Command::Cat { snap, file, db } => {
            let repo = ctx.open_read("cat")?;
            let s = repo.resolve_in(&snap, db.as_deref())?;
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
            check,
            no_check,
            live,
        } => {
            // Only replacing an existing target writes (its pre-restore snapshot).
            let mut repo = if force && to.exists() {
                ctx.open("restore")?
            } else {
                ctx.open_read("restore")?
            };
            // `latest` and --at choose in one database's history: --db, else
            // the target when it is a database the repository has snapshots of.
            let db = match db {
                Some(d) => Some(d),
                None if !all && repo.is_source(&to)? => Some(to.clone()),
                None => None,
            };
            let chosen = match at {
                Some(t) => repo.snapshot_at(db.as_deref(), parse_time(&t, &ctx.tz, Edge::End)?)?,
                None => repo.resolve_in(snap.as_deref().unwrap_or("latest"), db.as_deref())?,
            };
            let bar = ctx.bar();
            let check = match (no_check, check) {
                (true, _) => Check::None,
                (false, Some(CheckArg::Quick)) => Check::Quick,
                (false, _) => Check::Full,
            };
            let opts = RestoreOptions { force, check, live };
            let check_name = match check {
                Check::Full => "integrity_check",
                Check::Quick => "quick_check",
                _ => "none",
            };
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
                    "pre_restore_raw": report.pre_restore_raw,
                    "pre_restore_as_found": report.pre_restore_as_found.as_ref().map(|p| p.id.to_hex()),
                    "live": report.live,
                    "set_aside": report.set_aside,
                    "check": check_name,
                    "integrity_check_secs": report.integrity_secs,
                }));
            } else {
                let raw = if report.pre_restore_raw {
                    " (SQLite could not read it, so its raw bytes were saved: restore them with --no-check)"
                } else {
                    ""
                };
                // The database saved (with --all, the image's file inside the folder).
                let saved = |p: &lumina_backup::Snapshot| clean(&p.record.source);
                match (&report.pre_restore_as_found, &report.pre_restore) {
                    (Some(found), Some(p)) => ctx.say(format!(
                        "saved the previous state of {} as two snapshots (tag pre-restore): bytes as found, with the journal: {}; state after SQLite rolled the journal back: {}{raw}",
                        saved(p),
                        found.id.short(),
                        p.id.short()
                    )),
                    (_, Some(p)) => ctx.say(format!(
                        "saved the previous state of {} as snapshot {} (tag pre-restore){raw}",
                        saved(p),
                        p.id.short()
                    )),
                    _ => {}
                }
                for f in &report.set_aside {
                    // Journals and WAL files are set aside so they are never
                    // replayed; other files (`--all`) are kept because their
                    // content differed from the snapshot's.
                    let name = f
                        .file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default();
                    if name.contains(".pre-restore-") {
                        ctx.say(format!(
                            "kept the previous file as {} (its content differed from the snapshot's)",
                            f.display()
                        ));
                    } else {
                        ctx.say(format!("kept {} (set aside, not replayed)", f.display()));
                    }
                }
                let checked = match check {
                    Check::None => "no SQLite check (--no-check)".to_string(),
                    _ => format!("{check_name} ok"),
                };
                ctx.say(format!(
                    "restored snapshot {} to {} ({}, every chunk and the whole file verified, {checked}{})",
                    report.snapshot.id.short(),
                    to.display(),
                    bytes(report.bytes),
                    if report.live { ", through SQLite into the open database" } else { "" }
                ));
                if check != Check::None {
                    ctx.say(format!("{check_name} took {:.2} s", report.integrity_secs));
                }
            }
        }
        Command::Verify { read_data } => {
            let bar = ctx.bar();
            // A damaged config or key file is a verify finding (exit 3), not a
            // failure to run verify.
            let opts = match ctx.open_options("verify") {
                Ok(o) => Some(o),
                Err(Error::Corrupt { .. }) => None,
                Err(e) => return Err(e),
            };
            let report = Repository::verify_at(&ctx.repo_path(), opts.as_ref(), read_data, &bar)?;
            if ctx.global.json {
                print_json(&report);
            } else {
                for p in &report.problems {
                    ctx.say(format!("problem: {p}"));
                }
                ctx.say(format!(
                    "{}: {} snapshots, {} chunks referenced ({} chunks stored{}), {} packs checked{}",
                    if report.ok { "ok" } else { "PROBLEMS FOUND" },
                    report.snapshots_checked,
                    report.chunks_referenced,
                    report.chunks_stored,
                    match report.chunks_missing {
                        0 => String::new(),
                        n => format!(", {n} missing"),
                    },
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
                for f in &report.foreign {
                    ctx.say(format!("left alone: {f}"));
                }
                ctx.say(format!(
                    "index rebuilt: {} packs, {} chunks stored, {} snapshots",
                    report.packs, report.chunks_stored, report.snapshots
                ));
            }
        }
        Command::Repair {
            what: RepairWhat::Snapshots { dry_run },
        } => {
            let mut repo = ctx.open("repair snapshots")?;
            let plan = repo.repair_snapshots(dry_run, &ctx.bar())?;
            if ctx.global.json {
                let mut doc =
                    serde_json::to_value(&plan).map_err(|e| Error::BadInput(e.to_string()))?;
                // `id` as in every other listing, for the removed ones.
                doc["removed"] = serde_json::json!(plan
                    .removed
                    .iter()
                    .map(|r| serde_json::json!({"id": r.id, "time": output::rfc3339(r.time_ns), "db": r.db, "reason": r.reason}))
                    .collect::<Vec<_>>());
                print_json(&doc);
            } else {
                let would = if dry_run { "would remove" } else { "removed" };
                for p in &plan.damaged_packs {
                    ctx.say(format!("damaged pack (its chunks count as lost): {p}"));
                }
                for r in &plan.removed {
                    ctx.say(format!(
                        "{would} snapshot {} of {} at {}: {}",
                        &r.id[..12],
                        if r.db.is_empty() { "?" } else { &r.db },
                        local_time(r.time_ns, &ctx.tz),
                        r.reason
                    ));
                }
                for t in &plan.trimmed {
                    ctx.say(format!(
                        "{} snapshot {} of {} at {} as {} without its lost files {} (the database image is intact)",
                        if dry_run { "would keep" } else { "kept" },
                        &t.old_id[..12],
                        t.db,
                        local_time(t.time_ns, &ctx.tz),
                        &t.new_id[..12],
                        t.dropped_files.join(", ")
                    ));
                }
                for f in &plan.foreign {
                    ctx.say(format!("left alone: {f}"));
                }
                ctx.say(format!(
                    "{} snapshots checked: {} {would}, {} {}",
                    plan.snapshots_checked,
                    plan.removed.len(),
                    plan.trimmed.len(),
                    if dry_run {
                        "would be trimmed"
                    } else {
                        "trimmed"
                    }
                ));
                if dry_run {
                    ctx.say("dry run: nothing was changed");
                } else if !plan.removed.is_empty() || !plan.trimmed.is_empty() {
                    ctx.say(
                        "run `lumina-backup prune` to free the space of the lost snapshots' data",
                    );
                }
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
            db,
        } => exports::export(&ctx, &source, &table, &format, out, gzip, db.as_deref())?,
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
            db,
        } => {
            let mut repo = ctx.open("tag")?;
            let id = repo.resolve_in(&snap, db.as_deref())?.id.to_hex();
            let s = repo.edit_snapshot(&id, &add, &remove, note.as_deref())?;
            if ctx.global.json {
                print_json(&ListJson::from(&s));
            } else {
                let tags = if s.record.tags.is_empty() {
                    "no tags".to_string()
                } else {
                    clean_tags(&s.record.tags)
                };
                ctx.say(format!(
                    "snapshot {} now: {tags}; note \"{}\"",
                    s.id.short(),
                    clean(&s.record.note)
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
                        clean(&d.db),
                        d.snapshots,
                        local_time(d.latest_time_ns, &ctx.tz)
                    ));
                }
                match &st.last_failure {
                    Some(f) => ctx.say(format!(
                        "last failure: {} {} at {}: {}",
                        f.operation,
                        clean(&f.db),
                        local_time(f.time_ns, &ctx.tz),
                        f.message
                    )),
                    None => ctx.say("last failure: none recorded"),
                }
                let ratio = match (st.dedup_ratio, st.snapshots) {
                    (Some(r), _) => format!("deduplication {r:.1}x"),
                    (None, 0) => "no snapshots yet".to_string(),
                    (None, _) => format!(
                        "deduplication unknown: {}",
                        st.dedup_unknown
                            .as_deref()
                            .unwrap_or("run `lumina-backup verify`")
                    ),
                };
                ctx.say(format!(
                    "stored {} in {} packs for {} of snapshots ({ratio})",
                    bytes(st.stored_bytes),
                    st.packs,
                    bytes(st.logical_bytes),
                ));
                let referenced = st
                    .chunks_referenced
                    .map_or("unknown".to_string(), |n| n.to_string());
                ctx.say(format!(
                    "{} chunks stored, {referenced} chunks referenced by snapshots",
                    st.chunks_stored
                ));
                if let Some(u) = st.unreferenced_bytes.filter(|u| *u > 0) {
                    ctx.say(format!(
                        "{} stored that no snapshot references (interrupted snapshots or forgotten ones); `lumina-backup prune` frees it",
                        bytes(u)
                    ));
                }
            }
        }
    }
    Ok(0)
}

fn key_command(ctx: &Ctx, what: KeyCommand) -> Result<(), Error> {
    let kdf = lumina_backup::KdfParams::default();
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
/// another mode (no Unix modes, or a folder owned by someone else). Not on
/// Windows, where the folder keeps the ACL it inherited.
#[cfg(not(unix))]
fn warn_if_not_private(_path: &Path) {}

/// See above (Unix).
#[cfg(unix)]
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
