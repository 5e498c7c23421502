//! Argument parsing (clap), dispatch to the commands (one file each), and the
//! error-printing path. Holds no storage logic.

mod cat;
mod common;
mod config;
mod copy;
mod demo;
mod diff;
mod errors;
mod export;
mod forget;
mod import;
mod init;
mod key;
mod notify;
mod output;
mod progress;
mod prune;
mod repair;
mod restore;
mod schedule;
mod secret;
mod show;
mod signals;
mod snapshot;
mod snapshots;
mod sql;
mod status;
mod tag;
mod verify;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use lumina_backup::Error;
use lumina_backup::TimeZone;

use common::Ctx;
use output::print_json;

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
    /// Repository: a folder, or s3://BUCKET/PREFIX, webdav[s]://HOST[:PORT]/PATH,
    /// sftp://[USER@]HOST/PATH, gdrive:PATH, dropbox:PATH, onedrive:PATH
    /// (credentials from the environment; see the README).
    #[arg(
        long,
        global = true,
        env = "LUMINA_BACKUP_REPO",
        value_name = "LOCATION"
    )]
    repo: Option<String>,
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
    Init(init::InitArgs),
    /// Manage the passphrases of an encrypted repository.
    Key {
        #[command(subcommand)]
        what: key::KeyCommand,
    },
    /// Take a snapshot of a database (default ~/.lumina/lumina.db).
    Snapshot(snapshot::SnapshotArgs),
    /// List snapshots, oldest first.
    #[command(alias = "log")]
    Snapshots(snapshots::SnapshotsArgs),
    /// Show the files of a snapshot with sizes, checksums and table row counts.
    Show(show::ShowArgs),
    /// Write one file of a snapshot to stdout (`lumina.db`, `metadata.json`, `manifest.json`, ...).
    Cat(cat::CatArgs),
    /// Restore a snapshot's database (verified, then swapped in atomically).
    Restore(restore::RestoreArgs),
    /// Check the repository; exit 3 if any problem is found.
    Verify(verify::VerifyArgs),
    /// Add or remove tags, or set the note, of a snapshot (the snapshot keeps its id; an annotation record is added).
    Tag(tag::TagArgs),
    /// Newest snapshot per database, last failure, repository size and deduplication.
    Status,
    /// Row-level differences between two snapshots, or a snapshot and the live database.
    Diff(diff::DiffArgs),
    /// Run a read-only SQL query on a snapshot's database (nothing is restored over anything).
    Sql(sql::SqlArgs),
    /// Export Lumina tables from a database, or from a snapshot, to JSON or CSV.
    Export(export::ExportArgs),
    /// Import an export file (.json or .json.gz) into a database, in one transaction.
    Import(import::ImportArgs),
    /// Repairs.
    Repair {
        #[command(subcommand)]
        what: repair::RepairWhat,
    },
    /// Remove snapshots by retention policy (per database; the union of the
    /// rules), or the snapshots named.
    Forget(forget::ForgetArgs),
    /// Delete data no snapshot references; repack mostly-dead packs.
    Prune(prune::PruneArgs),
    /// Copy snapshots to another repository (created when missing), sending only what it lacks.
    Copy(copy::CopyArgs),
    /// Repository settings (retention rules `forget` applies by default).
    Config {
        #[command(subcommand)]
        what: config::ConfigCommand,
    },
    /// Walk the whole cycle on a sample Lumina database in a fresh folder.
    Demo(demo::DemoArgs),
    /// Run until stopped: snapshot on a schedule and/or when the databases
    /// change, apply retention, record failures (settings also from
    /// ~/.lumina/backup.toml; flags win).
    Watch(watch::WatchArgs),
    /// Install or remove a user service that runs `watch` (systemd, launchd,
    /// Task Scheduler).
    Schedule {
        #[command(subcommand)]
        what: schedule::ScheduleCommand,
    },
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
        // The reader of stdout went away (`... | head`): end quietly.
        Err(e) if errors::closed_pipe(&e) => crate::EXIT_CLOSED_STDOUT,
        Err(e) => {
            let message = errors::with_advice(describe(&e, &tz), &e);
            eprintln!("lumina-backup: {message}");
            let code = errors::exit_code(&e);
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
    match e.earliest_snapshot() {
        Some((earliest, time_ns)) => format!(
            "no snapshot at or before that time; the earliest is {earliest}, taken {}",
            lumina_backup::format_local(time_ns, tz)
        ),
        None => e.to_string(),
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

fn run(cli: Cli, tz: TimeZone) -> Result<i32, Error> {
    let ctx = Ctx {
        global: cli.global,
        tz,
    };
    match cli.command {
        Command::Init(args) => init::run(&ctx, args)?,
        Command::Key { what } => key::run(&ctx, what)?,
        Command::Snapshot(args) => return snapshot::run(&ctx, args),
        Command::Snapshots(args) => snapshots::run(&ctx, args)?,
        Command::Show(args) => show::run(&ctx, args)?,
        Command::Cat(args) => cat::run(&ctx, args)?,
        Command::Restore(args) => restore::run(&ctx, args)?,
        Command::Verify(args) => return verify::run(&ctx, args),
        Command::Repair { what } => repair::run(&ctx, what)?,
        Command::Demo(args) => demo::run(&ctx, args)?,
        Command::Forget(args) => forget::run(&ctx, args)?,
        Command::Prune(args) => prune::run(&ctx, args)?,
        Command::Copy(args) => copy::run(&ctx, args)?,
        Command::Config { what } => config::run(&ctx, what)?,
        Command::Export(args) => export::run(&ctx, args)?,
        Command::Import(args) => import::run(&ctx, args)?,
        Command::Diff(args) => diff::run(&ctx, args)?,
        Command::Tag(args) => tag::run(&ctx, args)?,
        Command::Sql(args) => return sql::run(&ctx, args),
        Command::Status => status::run(&ctx)?,
        Command::Watch(args) => return watch::run(&ctx, args),
        Command::Schedule { what } => schedule::run(&ctx, what)?,
    }
    Ok(0)
}
