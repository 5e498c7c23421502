//! Argument parsing (clap), dispatch to the library, output and exit codes.
//! Holds no storage logic.

mod demo;
mod output;
mod progress;
mod secret;

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
    /// Repairs.
    Repair {
        #[command(subcommand)]
        what: RepairWhat,
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
        Command::Init { encrypt } => {
            let path = ctx.repo_path();
            let passphrase = if encrypt {
                Some(ctx.passphrase(true)?)
            } else {
                None
            };
            let opts = lumina_backup::InitOptions {
                passphrase,
                ..Default::default()
            };
            let config = Repository::init_with(&path, &opts)?;
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
            let s = repo.snapshot(&db, &opts, &bar)?;
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
        Command::Snapshots { db, tag } => {
            let repo = ctx.open("snapshots")?;
            let db = db.map(|p| {
                std::fs::canonicalize(&p)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            });
            let list: Vec<_> = repo
                .list()?
                .into_iter()
                .filter(|s| db.as_ref().is_none_or(|d| &s.record.source == d))
                .filter(|s| tag.as_ref().is_none_or(|t| s.record.tags.contains(t)))
                .collect();
            if ctx.global.json {
                print_json(&list.iter().map(ListJson::from).collect::<Vec<_>>());
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
                    ctx.say(format!(
                        "{}  {}  {:>10}  +{:<10} {}{tags}{note}",
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
            let repo = ctx.open("show")?;
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
            let repo = ctx.open("cat")?;
            let s = repo.resolve(&snap)?;
            let entry = s.file(&file)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            repo.read_file(entry, &mut out, &lumina_backup::NoProgress)?;
            out.flush().map_err(|e| Error::io("writing", "stdout", e))?;
        }
        Command::Restore {
            snap,
            to,
            force,
            all,
        } => {
            let snap = snap.unwrap_or_else(|| "latest".into());
            let mut repo = ctx.open("restore")?;
            let bar = ctx.bar();
            let opts = RestoreOptions { force };
            let report = if all {
                repo.restore_all(&snap, &to, &opts, &bar)?
            } else {
                repo.restore(&snap, &to, &opts, &bar)?
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
            let repo = ctx.open("verify")?;
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
    }
    Ok(0)
}

fn key_command(ctx: &Ctx, what: KeyCommand) -> Result<(), Error> {
    let kdf = lumina_backup::crypto::KdfParams::default();
    match what {
        KeyCommand::List => {
            let repo = ctx.open("key list")?;
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

/// Used by the demo to print paths.
fn show_path(p: &Path) -> String {
    p.display().to_string()
}
