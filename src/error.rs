//! The one public error type, with the exit code each kind maps to.
//!
//! Lower modules keep their own small vocabularies (`format::DecodeError`,
//! `export::Error`); they convert into [`Error`] here. Messages name what failed
//! and the object, then what to do.

use std::path::PathBuf;

use crate::format::DecodeError;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "creating", ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No repository at the path.
    #[error("no repository at {0}; create one with `lumina-backup init`")]
    NoRepository(PathBuf),
    /// `init` where a repository already is.
    #[error("a repository already exists at {0}")]
    RepositoryExists(PathBuf),
    /// A repository file failed to decode or authenticate.
    #[error("{object} is damaged: {problem}; {}", corrupt_advice(.object))]
    Corrupt {
        /// The object ("pack 3fa9…", "snapshot 12ab…", "config").
        object: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A repository file was written by a newer format.
    #[error("{object} has format version {found}, this lumina-backup reads up to {supported}; upgrade lumina-backup")]
    TooNew {
        /// The object.
        object: String,
        /// Version found.
        found: u16,
        /// Highest version understood.
        supported: u16,
    },
    /// A chunk the index or a tree names is not in the store.
    #[error("chunk {0} is missing from the repository (its pack was lost); run `lumina-backup verify`, then `lumina-backup repair snapshots`")]
    MissingChunk(String),
    /// The index disagrees with the packs.
    #[error("index problem: {0}; run `lumina-backup repair index`")]
    Index(String),
    /// Another process holds the repository lock.
    #[error("the repository is locked by {holder}; waited {waited_secs} s. {advice}")]
    Locked {
        /// Who holds it (pid, host, command, and its state).
        holder: String,
        /// How long we waited.
        waited_secs: u64,
        /// What to do ("Try again when it finishes", or how to resume a stopped holder).
        advice: String,
    },
    /// A snapshot id matched nothing.
    #[error("no snapshot matches `{0}`; list them with `lumina-backup snapshots`")]
    UnknownSnapshot(String),
    /// A snapshot prefix matched several.
    #[error("prefix `{prefix}` matches {count} snapshots; give more characters")]
    AmbiguousSnapshot {
        /// The prefix given.
        prefix: String,
        /// How many matched.
        count: usize,
    },
    /// A file name is not in a snapshot.
    #[error("snapshot {snapshot} has no file `{name}`; its files are: {available}")]
    NoSuchFile {
        /// Snapshot short id.
        snapshot: String,
        /// The missing name.
        name: String,
        /// The names it has.
        available: String,
    },
    /// The input is not a SQLite database.
    #[error("{path} is not a SQLite database ({why})")]
    NotSqlite {
        /// The path.
        path: PathBuf,
        /// Why we think so.
        why: String,
    },
    /// Bad user input of another kind.
    #[error("{0}")]
    BadInput(String),
    /// The restored image failed a check; the target was left untouched.
    #[error("restore refused: {0}; the target was not touched")]
    RestoreCheck(String),
    /// SQLite reported an error.
    #[error("SQLite error on {path}: {source}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The index database failed.
    #[error("index database error: {0}; if it persists run `lumina-backup repair index`")]
    Redb(String),
    /// Export or import failed.
    #[error("{0}")]
    Export(#[from] crate::export::Error),
    /// An encrypted repository and no passphrase.
    #[error("repository {0} is encrypted: give its passphrase in LUMINA_BACKUP_PASSWORD, with --password-file, or on a terminal")]
    PassphraseRequired(PathBuf),
    /// No key file accepts the passphrase.
    #[error("wrong passphrase for repository {0} (no key accepts it); nothing was changed")]
    WrongPassphrase(PathBuf),
    /// The operation was cancelled through the progress callback.
    #[error("cancelled; the repository is unchanged")]
    Cancelled,
    /// A restore target is open in other processes (replacing the file would
    /// leave them writing to the old one).
    #[error("{path} is open in {holders}; close the app's connections (or pass --live to restore through SQLite into the open database); nothing was changed")]
    InUse {
        /// The target.
        path: PathBuf,
        /// Who has it open ("pid 412 (python3)").
        holders: String,
    },
    /// The repository cannot be written (read-only mount or permissions) and the
    /// command writes to it.
    #[error("repository {path} is read-only ({reason}): `{what}` writes to it; the commands that only read (snapshots, show, cat, diff, restore to a new file, verify, export, status) work")]
    ReadOnlyRepository {
        /// The repository folder.
        path: PathBuf,
        /// The command.
        what: String,
        /// The OS error.
        reason: String,
    },
    /// A snapshot stopped (cancelled, or its disk filled up) before it was
    /// recorded; `partial` says what became of the data it had written.
    #[error("{}", .cause.message(.partial))]
    SnapshotNotRecorded {
        /// Why it stopped.
        cause: StopCause,
        /// The packs it had written.
        partial: PartialData,
    },
    /// A source database cannot be read (locked, hot journal or WAL on a read-only
    /// mount); `why` says why and what to do.
    #[error("cannot read database {path}: {why}")]
    SourceUnavailable {
        /// The database.
        path: PathBuf,
        /// Why, and what to do.
        why: String,
    },
    /// `--at` a time before the first snapshot (of the database in question).
    /// The time is carried, not formatted: the caller shows it in local time.
    #[error("no snapshot at or before that time; the earliest is {earliest}, taken {}", crate::snapshot::rfc3339(*.time_ns))]
    BeforeFirstSnapshot {
        /// Short id of the earliest snapshot.
        earliest: String,
        /// When it was taken (unix ns).
        time_ns: i64,
    },
    /// Something that should not happen did (a clock out of range, a worker
    /// thread that panicked, a chunk over 4 GiB): not the user's input (exit 1).
    #[error("internal error: {0}; nothing was recorded; please report it")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error: 2 for bad usage or input, 1 otherwise.
    /// (3, "verify found problems", is not an error but a verify result.)
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoRepository(_)
            | Error::RepositoryExists(_)
            | Error::UnknownSnapshot(_)
            | Error::AmbiguousSnapshot { .. }
            | Error::NoSuchFile { .. }
            | Error::NotSqlite { .. }
            | Error::PassphraseRequired(_)
            | Error::WrongPassphrase(_)
            | Error::BadInput(_) => 2,
            Error::Export(e) if e.is_user_error() => 2,
            Error::InUse { .. } => 2,
            Error::BeforeFirstSnapshot { .. } => 2,
            _ => 1,
        }
    }

    /// Whether this is a failure of the index file itself (redb error, damaged
    /// entry, or a redb panic turned into an error): the index is a cache, so
    /// such a failure is answered by rebuilding it from the files.
    pub fn is_index_damage(&self) -> bool {
        matches!(self, Error::Index(_) | Error::Redb(_))
    }

    /// Helper for I/O errors with their path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Helper for decode failures of a named object.
    pub fn corrupt(object: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            object: object.into(),
            problem: problem.to_string(),
        }
    }

    /// Maps a format decode error of `object`.
    pub fn decode(object: impl Into<String>, e: DecodeError) -> Self {
        match e {
            DecodeError::TooNew { found, supported } => Error::TooNew {
                object: object.into(),
                found,
                supported,
            },
            other => Error::corrupt(object, other),
        }
    }

    /// Helper for SQLite errors on a path.
    pub fn sqlite(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        Error::Sqlite {
            path: path.into(),
            source,
        }
    }
}

/// Why a snapshot stopped before it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopCause {
    /// The caller cancelled it (the CLI: SIGINT or SIGTERM).
    Cancelled,
    /// A write failed for lack of space; the file being written.
    NoSpace(PathBuf),
}

/// What became of the packs a snapshot wrote before it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialData {
    /// It had written none.
    None,
    /// They were removed (bytes).
    Removed(u64),
    /// They are still there (bytes); `prune` removes them.
    Left(u64),
}

impl std::fmt::Display for PartialData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |n: u64| format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64);
        match self {
            PartialData::None => write!(f, "no partial data was left"),
            PartialData::Removed(n) => {
                write!(f, "the partial data it wrote ({}) was removed", mib(*n))
            }
            PartialData::Left(n) => write!(
                f,
                "{} of partial data will be removed by `lumina-backup prune`",
                mib(*n)
            ),
        }
    }
}

impl StopCause {
    /// The message of [`Error::SnapshotNotRecorded`].
    pub fn message(&self, partial: &PartialData) -> String {
        match self {
            StopCause::Cancelled => format!("cancelled; nothing was recorded; {partial}"),
            StopCause::NoSpace(path) => format!(
                "no space left on device writing {}; nothing was recorded; {partial}; free some space and try again",
                path.display()
            ),
        }
    }
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Redb(e.to_string()) }
        }
    )*};
}
redb_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What to do about a damaged object. Packs, snapshots and chunks: `verify
/// --read-data` names all the damage and the repairs follow. The small files
/// are named already, so that advice would only repeat itself: each gets the
/// step that fixes it.
fn corrupt_advice(object: &str) -> String {
    let key = object
        .strip_prefix("key file keys/")
        .or_else(|| object.strip_prefix("key "));
    match (object, key) {
        ("config", _) => "restore the file `config` from a copy of the repository \
             (nothing else can replace it: it holds the repository's parameters)"
            .into(),
        ("retention settings", _) => "set the retention rules again with \
             `lumina-backup config set` (it replaces the file)"
            .into(),
        ("status", _) => "it only records the last failed snapshot: delete the file \
             `status` in the repository folder (the next failure writes it again)"
            .into(),
        ("repository", _) => "restore the `keys` folder from a copy of the repository".into(),
        (_, Some(id)) => format!(
            "if another passphrase opens the repository, remove this key with \
             `lumina-backup key remove {id}`; else restore keys/{id} from a copy of the repository"
        ),
        _ => "run `lumina-backup verify --read-data`".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #9: internal failures (clock, a panicked worker) are not "bad
    /// input": they exit 1, and bad input still exits 2.
    #[test]
    fn internal_failures_are_not_bad_input() {
        assert_eq!(
            Error::Internal("the clock is out of range".into()).exit_code(),
            1
        );
        assert_eq!(Error::BadInput("x".into()).exit_code(), 2);
        assert!(Error::Internal("x".into())
            .to_string()
            .starts_with("internal error: x"));
    }
}
