//! The one public error type: opaque, with a [`ErrorKind`] per area, semantic
//! accessors and the underlying I/O, SQLite or redb error kept as its source.
//!
//! Lower modules keep their own small vocabularies (`format::DecodeError`,
//! `export::Error`); they convert into [`Error`] here. Messages name what failed,
//! the object and the state things are in; they name no command, flag or
//! environment variable: a client (the CLI) adds its own advice by kind.

use std::path::{Path, PathBuf};

use crate::format::DecodeError;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with. Opaque: ask [`Error::kind`] or the
/// `is_*` accessors what it is; [`std::error::Error::source`] gives the I/O,
/// SQLite, redb or export error underneath.
pub struct Error(Box<Repr>, Option<Remedy>);

/// What the caller can change in its request to get past an error: an option
/// of the library call, named in the library's terms (a client names its own
/// control: the CLI a flag, an app a button). See [`Error::remedy`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Ask again with `force` ([`crate::RestoreOptions::force`] replaces an
    /// existing target; [`crate::InitOptions::force`] creates the repository
    /// among other files).
    Force,
    /// Restore with [`crate::RestoreOptions::live`]: through SQLite into the
    /// open database.
    Live,
    /// Restore without `live`, after closing the app's connections.
    NotLive,
    /// Restore with a weaker check ([`crate::Check::Quick`] or
    /// [`crate::Check::None`]).
    WeakerCheck,
    /// Restore without SQLite's check ([`crate::Check::None`]).
    NoCheck,
    /// Forget with `allow_empty`, after looking at the plan.
    AllowEmpty,
    /// Name the database: the repository has snapshots of several.
    NameDatabase,
    /// Give retention rules, or store them in the repository.
    GiveRules,
    /// Import reads JSON exports: export in JSON.
    ExportJson,
    /// Take a snapshot of this database first.
    TakeSnapshot(PathBuf),
    /// List the keys to find the id.
    ListKeys,
}

/// What kind of failure an [`Error`] is, one per area. Fieldless; new kinds may
/// be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No repository at the path.
    NoRepository,
    /// A repository already exists where one was to be created.
    RepositoryExists,
    /// Another process holds the repository lock.
    Locked,
    /// The repository cannot be written (read-only mount or permissions).
    ReadOnly,
    /// The repository is encrypted and no passphrase was given.
    PassphraseRequired,
    /// No key of the repository accepts the passphrase.
    WrongPassword,
    /// No snapshot matches the id, prefix or `latest` given.
    UnknownSnapshot,
    /// A snapshot id prefix matches several snapshots.
    AmbiguousSnapshot,
    /// No snapshot at or before a time ([`Error::earliest_snapshot`] names the first).
    BeforeFirstSnapshot,
    /// A file name is not in a snapshot.
    NoSuchFile,
    /// The database given does not exist ([`Error::path`] names it).
    NoSuchDatabase,
    /// The file given is not a SQLite database.
    NotADatabase,
    /// A source database cannot be read now (locked, hot journal, read-only WAL).
    SourceUnavailable,
    /// A restore target is open in other processes.
    InUse,
    /// The request conflicts with the state of things (a target exists, a folder
    /// is not empty, the key in use, a plan that would forget everything): the
    /// caller may ask again differently; nothing was changed.
    Refused,
    /// A restored image failed its check; the target was not touched.
    RestoreRefused,
    /// A repository file failed to decode or authenticate.
    Corrupt,
    /// A repository file was written by a newer format version.
    TooNew,
    /// Data a snapshot needs is missing (a chunk whose pack was lost).
    MissingData,
    /// The index (a rebuildable cache) is damaged or its database failed.
    Index,
    /// Reading or writing a file failed.
    Io,
    /// SQLite reported an error.
    Sqlite,
    /// An export or import failed.
    Export,
    /// The caller's input is invalid (a time, a tag, an option value, a path).
    InvalidInput,
    /// The operation was cancelled through [`crate::Progress::cancelled`].
    Cancelled,
    /// A write failed for lack of space.
    NoSpace,
    /// Something that should not happen did: a bug or the environment, not input.
    Internal,
    /// A remote store failed (network, server error, timeout) after retries.
    Remote,
    /// A remote store refused the credentials, or none were given.
    Credentials,
}

/// The variants behind [`Error`]; the library constructs these.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Repr {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no repository at {0}")]
    NoRepository(PathBuf),
    #[error("database {0} does not exist")]
    NoSuchDatabase(PathBuf),
    #[error("a repository already exists at {0}")]
    RepositoryExists(PathBuf),
    #[error("{object} is damaged: {problem}{}", corrupt_advice(.object))]
    Corrupt { object: String, problem: String },
    #[error("{object} has format version {found}; this version reads up to {supported}")]
    TooNew {
        object: String,
        found: u16,
        supported: u16,
    },
    #[error("chunk {0} is missing from the repository (its pack was lost)")]
    MissingChunk(String),
    #[error("index problem: {0}")]
    Index(String),
    #[error("the repository is locked by {holder}; waited {waited_secs} s. {advice}")]
    Locked {
        holder: String,
        waited_secs: u64,
        advice: String,
    },
    #[error("no snapshot matches `{0}`")]
    UnknownSnapshot(String),
    #[error("no snapshot of {0} yet")]
    NoSnapshotOf(String),
    #[error("prefix `{prefix}` matches {count} snapshots; give more characters")]
    AmbiguousSnapshot { prefix: String, count: usize },
    #[error("snapshot {snapshot} has no file `{name}`; its files are: {available}")]
    NoSuchFile {
        snapshot: String,
        name: String,
        available: String,
    },
    #[error("{path} is not a SQLite database ({why})")]
    NotSqlite { path: PathBuf, why: String },
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Refused(String),
    #[error("restore refused: {0}; the target was not touched")]
    RestoreCheck(String),
    #[error("SQLite error on {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("index database error: {0}")]
    Redb(#[source] redb::Error),
    #[error("{0}")]
    Export(#[from] crate::export::Error),
    #[error("repository {0} is encrypted and needs its passphrase")]
    PassphraseRequired(PathBuf),
    #[error("wrong passphrase for repository {0} (no key accepts it); nothing was changed")]
    WrongPassphrase(PathBuf),
    #[error("cancelled; the repository is unchanged")]
    Cancelled,
    #[error("{path} is open in {holders}; nothing was changed")]
    InUse { path: PathBuf, holders: String },
    #[error("repository {path} is read-only ({reason}); it cannot be written ({what})")]
    ReadOnlyRepository {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("{}", .cause.message(.partial))]
    SnapshotNotRecorded {
        cause: StopCause,
        partial: PartialData,
    },
    #[error("cannot read database {path}: {why}")]
    SourceUnavailable { path: PathBuf, why: String },
    /// The time is carried, not formatted: the caller shows it in local time.
    #[error("no snapshot at or before that time; the earliest is {earliest}, taken {}", crate::snapshot::rfc3339(*.time_ns))]
    BeforeFirstSnapshot { earliest: String, time_ns: i64 },
    #[error("internal error: {0}; nothing was recorded; please report it")]
    Internal(String),
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    #[error("{action} {object}: {message}")]
    Remote {
        action: &'static str,
        object: String,
        message: String,
    },
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    #[error("{location}: {message}")]
    Credentials { location: String, message: String },
}

impl From<Repr> for Error {
    fn from(r: Repr) -> Self {
        Error(Box::new(r), None)
    }
}

impl From<crate::export::Error> for Error {
    fn from(e: crate::export::Error) -> Self {
        Repr::Export(e).into()
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match &*self.0 {
            Repr::Io { source, .. } if crate::platform::is_no_space_error(source) => {
                ErrorKind::NoSpace
            }
            Repr::Io { .. } => ErrorKind::Io,
            Repr::NoRepository(_) => ErrorKind::NoRepository,
            Repr::NoSuchDatabase(_) => ErrorKind::NoSuchDatabase,
            Repr::RepositoryExists(_) => ErrorKind::RepositoryExists,
            Repr::Corrupt { .. } => ErrorKind::Corrupt,
            Repr::TooNew { .. } => ErrorKind::TooNew,
            Repr::MissingChunk(_) => ErrorKind::MissingData,
            Repr::Index(_) | Repr::Redb(_) => ErrorKind::Index,
            Repr::Locked { .. } => ErrorKind::Locked,
            Repr::UnknownSnapshot(_) | Repr::NoSnapshotOf(_) => ErrorKind::UnknownSnapshot,
            Repr::AmbiguousSnapshot { .. } => ErrorKind::AmbiguousSnapshot,
            Repr::NoSuchFile { .. } => ErrorKind::NoSuchFile,
            Repr::NotSqlite { .. } => ErrorKind::NotADatabase,
            Repr::InvalidInput(_) => ErrorKind::InvalidInput,
            Repr::Refused(_) => ErrorKind::Refused,
            Repr::RestoreCheck(_) => ErrorKind::RestoreRefused,
            Repr::Sqlite { .. } => ErrorKind::Sqlite,
            Repr::Export(e) if e.is_user_error() => ErrorKind::InvalidInput,
            Repr::Export(_) => ErrorKind::Export,
            Repr::PassphraseRequired(_) => ErrorKind::PassphraseRequired,
            Repr::WrongPassphrase(_) => ErrorKind::WrongPassword,
            Repr::Cancelled => ErrorKind::Cancelled,
            Repr::InUse { .. } => ErrorKind::InUse,
            Repr::ReadOnlyRepository { .. } => ErrorKind::ReadOnly,
            Repr::SnapshotNotRecorded { cause, .. } => match cause {
                StopCause::Cancelled => ErrorKind::Cancelled,
                StopCause::NoSpace(_) => ErrorKind::NoSpace,
            },
            Repr::SourceUnavailable { .. } => ErrorKind::SourceUnavailable,
            Repr::BeforeFirstSnapshot { .. } => ErrorKind::BeforeFirstSnapshot,
            Repr::Internal(_) => ErrorKind::Internal,
            Repr::Remote { .. } => ErrorKind::Remote,
            Repr::Credentials { .. } => ErrorKind::Credentials,
        }
    }

    /// What the caller can change in its request to get past this error, when
    /// the library knows one.
    pub fn remedy(&self) -> Option<&Remedy> {
        self.1.as_ref()
    }

    /// The same error, saying what the caller can change.
    pub(crate) fn with_remedy(mut self, remedy: Remedy) -> Self {
        self.1 = Some(remedy);
        self
    }

    /// No key of the repository accepts the passphrase given.
    pub fn is_wrong_password(&self) -> bool {
        self.kind() == ErrorKind::WrongPassword
    }

    /// The repository is encrypted and no passphrase was given.
    pub fn is_passphrase_required(&self) -> bool {
        self.kind() == ErrorKind::PassphraseRequired
    }

    /// The file given is not a SQLite database.
    pub fn is_not_a_database(&self) -> bool {
        self.kind() == ErrorKind::NotADatabase
    }

    /// Another process holds the repository lock (try again when it finishes).
    pub fn is_locked(&self) -> bool {
        self.kind() == ErrorKind::Locked
    }

    /// The operation stopped because the caller cancelled it; the repository is
    /// as it was (a snapshot's partial data: see [`Error::partial_data`]).
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// A repository file is damaged, or data a snapshot needs is missing.
    pub fn is_corrupt(&self) -> bool {
        matches!(self.kind(), ErrorKind::Corrupt | ErrorKind::MissingData)
    }

    /// Something asked for is not there: no repository, no such snapshot (or none
    /// at that time), no such file in a snapshot, no such database.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::NoRepository
                | ErrorKind::NoSuchDatabase
                | ErrorKind::UnknownSnapshot
                | ErrorKind::BeforeFirstSnapshot
                | ErrorKind::NoSuchFile
        )
    }

    /// A write failed for lack of space.
    pub fn is_no_space(&self) -> bool {
        self.kind() == ErrorKind::NoSpace
    }

    /// The caller's input is at fault (an argument, a path, a passphrase, a
    /// request the state of things refuses) rather than the system: a client
    /// that asks again differently can succeed.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::NoRepository
                | ErrorKind::RepositoryExists
                | ErrorKind::UnknownSnapshot
                | ErrorKind::AmbiguousSnapshot
                | ErrorKind::BeforeFirstSnapshot
                | ErrorKind::NoSuchFile
                | ErrorKind::NoSuchDatabase
                | ErrorKind::NotADatabase
                | ErrorKind::PassphraseRequired
                | ErrorKind::WrongPassword
                | ErrorKind::InvalidInput
                | ErrorKind::Refused
                | ErrorKind::InUse
                | ErrorKind::Credentials
        )
    }

    /// Whether this is a failure of the index file itself (redb error, damaged
    /// entry, or a redb panic turned into an error): the index is a cache, so
    /// such a failure is answered by rebuilding it from the files.
    pub fn is_index_damage(&self) -> bool {
        self.kind() == ErrorKind::Index
    }

    /// The file or folder the error is about, where it names one (an I/O error's
    /// file, the repository, the database, the restore target).
    pub fn path(&self) -> Option<&Path> {
        match &*self.0 {
            Repr::Io { path, .. }
            | Repr::NotSqlite { path, .. }
            | Repr::Sqlite { path, .. }
            | Repr::InUse { path, .. }
            | Repr::ReadOnlyRepository { path, .. }
            | Repr::SourceUnavailable { path, .. } => Some(path),
            Repr::NoRepository(p)
            | Repr::NoSuchDatabase(p)
            | Repr::RepositoryExists(p)
            | Repr::PassphraseRequired(p)
            | Repr::WrongPassphrase(p) => Some(p),
            Repr::SnapshotNotRecorded {
                cause: StopCause::NoSpace(p),
                ..
            } => Some(p),
            _ => None,
        }
    }

    /// The snapshot the error is about: the id or prefix that matched none or
    /// several, or the snapshot that lacks a file.
    pub fn snapshot(&self) -> Option<&str> {
        match &*self.0 {
            Repr::UnknownSnapshot(s) => Some(s),
            Repr::AmbiguousSnapshot { prefix, .. } => Some(prefix),
            Repr::NoSuchFile { snapshot, .. } => Some(snapshot),
            _ => None,
        }
    }

    /// The damaged or too new repository object ("config", "pack 3fa9…",
    /// "key file keys/…"), or the missing chunk's id.
    pub fn object(&self) -> Option<&str> {
        match &*self.0 {
            Repr::Corrupt { object, .. } | Repr::TooNew { object, .. } => Some(object),
            Repr::MissingChunk(id) => Some(id),
            _ => None,
        }
    }

    /// [`ErrorKind::Corrupt`]: what is wrong with the damaged object.
    pub fn damage(&self) -> Option<&str> {
        match &*self.0 {
            Repr::Corrupt { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// [`ErrorKind::BeforeFirstSnapshot`]: the earliest snapshot's short id and
    /// its time (unix ns), for the caller to show in local time.
    pub fn earliest_snapshot(&self) -> Option<(&str, i64)> {
        match &*self.0 {
            Repr::BeforeFirstSnapshot { earliest, time_ns } => Some((earliest, *time_ns)),
            _ => None,
        }
    }

    /// A snapshot that stopped before it was recorded (cancelled, or out of
    /// space): what became of the data it had written.
    pub fn partial_data(&self) -> Option<PartialData> {
        match &*self.0 {
            Repr::SnapshotNotRecorded { partial, .. } => Some(*partial),
            _ => None,
        }
    }

    /// Invalid input of the caller (exit 2 in the CLI): for clients that report
    /// their own input errors through this type.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Repr::InvalidInput(message.into()).into()
    }

    /// Something that should not happen did (exit 1 in the CLI).
    pub fn internal(message: impl Into<String>) -> Self {
        Repr::Internal(message.into()).into()
    }

    /// A request the state of things refuses; nothing was changed.
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Repr::Refused(message.into()).into()
    }

    /// A chunk the index or a tree names is not in the store.
    pub(crate) fn missing_chunk(id: impl Into<String>) -> Self {
        Repr::MissingChunk(id.into()).into()
    }

    /// The index disagrees with the packs.
    pub(crate) fn index(problem: impl Into<String>) -> Self {
        Repr::Index(problem.into()).into()
    }

    /// An I/O error saying the file does not exist (also a remote object
    /// that does not exist).
    pub(crate) fn is_io_not_found(&self) -> bool {
        matches!(&*self.0, Repr::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// The variant behind the error, for the library's own matching.
    pub(crate) fn repr(&self) -> &Repr {
        &self.0
    }

    /// The variant behind the error, owned.
    pub(crate) fn into_repr(self) -> Repr {
        *self.0
    }

    /// An I/O error on a file (`action` as "reading", "creating").
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Repr::Io {
            action,
            path: path.into(),
            source,
        }
        .into()
    }

    /// Helper for decode failures of a named object.
    pub(crate) fn corrupt(object: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Repr::Corrupt {
            object: object.into(),
            problem: problem.to_string(),
        }
        .into()
    }

    /// Maps a format decode error of `object`.
    pub(crate) fn decode(object: impl Into<String>, e: DecodeError) -> Self {
        match e {
            DecodeError::TooNew { found, supported } => Repr::TooNew {
                object: object.into(),
                found,
                supported,
            }
            .into(),
            other => Error::corrupt(object, other),
        }
    }

    /// A SQLite error on a database.
    pub fn sqlite(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        Repr::Sqlite {
            path: path.into(),
            source,
        }
        .into()
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
    /// They are still there (bytes); the next prune removes them.
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
                "{} of partial data is left in the repository (the next prune removes it)",
                mib(*n)
            ),
        }
    }
}

impl StopCause {
    /// The message of a snapshot that was not recorded.
    pub(crate) fn message(&self, partial: &PartialData) -> String {
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
            fn from(e: $t) -> Self { Repr::Redb(e.into()).into() }
        }
    )*};
}
redb_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

/// What to do about a damaged small file, where the library can say it without
/// naming a command: the file is named already, so each gets the step that
/// fixes it. (Packs, snapshots, chunks, keys and the retention settings: the
/// client adds its advice.)
fn corrupt_advice(object: &str) -> &'static str {
    match object {
        "config" => {
            "; restore the file `config` from a copy of the repository \
             (nothing else can replace it: it holds the repository's parameters)"
        }
        "status" => {
            "; it only records the last failed snapshot: delete the file \
             `status` in the repository folder (the next failure writes it again)"
        }
        "repository" => "; restore the `keys` folder from a copy of the repository",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
