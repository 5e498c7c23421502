//! A repository on a remote store, through opendal: S3, WebDAV, SFTP, Google
//! Drive, Dropbox, OneDrive (each behind a cargo feature of its own; the
//! services themselves are built in `services`).
//!
//! **Sync over async.** opendal is async; this library is synchronous (its
//! callers are the CLI, rayon workers and the app's own threads). Each backend
//! owns a private multi-threaded tokio runtime (2 workers) and runs every call
//! with `Runtime::block_on`, which any number of non-runtime threads may call
//! at once, so the store's rayon workers read packs in parallel. No global
//! runtime is installed and none is required from the caller; the runtime is
//! dropped with the backend. (opendal's `blocking::Operator` wraps the same
//! `block_on`, but needs an entered runtime handle at construction: owning the
//! runtime outright is simpler and makes its lifetime plain.)
//!
//! **Layers**: retries with exponential backoff and jitter (opendal's
//! `RetryLayer`: 5 attempts, 200 ms doubling to 10 s) for temporary failures
//! (connection refused or reset, 5xx, 429); a timeout per operation (120 s)
//! and per I/O step (30 s); at most 8 requests in flight per backend.
//!
//! **Atomic writes.** An S3 PUT and the drives' uploads make an object visible
//! whole or not at all. WebDAV and SFTP servers may expose a file while it is
//! being written (and keep a partial one when the upload dies), so there a
//! write goes to `.tmp-<name>-<16 hex>` beside its target and is then renamed
//! (WebDAV MOVE, SFTP rename) onto it; readers ignore names starting with `.`
//! and the next exclusive writer deletes leftovers.
//!
//! **Secrets** are read from the environment when the backend is built and go
//! only into opendal's builders: never into the repository, a message, or a
//! log line (error messages are built from the operation, the path and the
//! server's status, never from the configuration).

mod services;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::Operator;

use super::location::Remote;
use super::Backend;
use crate::error::{Error, Repr, Result};
use crate::layout::TEMP_PREFIX;

/// Requests in flight per backend.
const MAX_IN_FLIGHT: usize = 8;

/// A repository on a remote store.
pub struct OpendalBackend {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    /// The location as the user gave it (no credentials), for messages.
    location: String,
    /// Whether a PUT is atomic (else: temp name, then rename).
    atomic_put: bool,
    read_only: bool,
}

impl std::fmt::Debug for OpendalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpendalBackend")
            .field("location", &self.location)
            .finish()
    }
}

impl OpendalBackend {
    /// Builds the backend for `remote`, reading its credentials from the
    /// environment (store-format.md and the README name the variables). A
    /// service this build lacks, or missing credentials, is an input error
    /// (exit 2) saying what to set.
    pub fn new(remote: &Remote, read_only: bool) -> Result<Self> {
        // reqwest is built without a TLS crypto provider of its own; ring is
        // installed as the process default (an app that installed another
        // one first keeps it).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let built = services::build(remote)?;
        let retry = RetryLayer::new()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(retry_times());
        let timeout = TimeoutLayer::new()
            .with_timeout(Duration::from_secs(120))
            .with_io_timeout(Duration::from_secs(30));
        let op = built
            .op
            .layer(ConcurrentLimitLayer::new(MAX_IN_FLIGHT))
            .layer(timeout)
            .layer(retry);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lumina-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the network runtime for", remote.to_string(), e))?;
        Ok(OpendalBackend {
            op,
            rt: Arc::new(rt),
            location: remote.to_string(),
            atomic_put: built.atomic_put,
            read_only,
        })
    }

    /// The same store, refusing every write and removal (a read-only open).
    pub fn read_only_view(&self) -> Self {
        OpendalBackend {
            op: self.op.clone(),
            rt: self.rt.clone(),
            location: self.location.clone(),
            atomic_put: self.atomic_put,
            read_only: true,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.is_empty() {
            self.location.clone()
        } else {
            format!("{}/{path}", self.location.trim_end_matches('/'))
        }
    }

    fn fail(&self, action: &'static str, path: &str, e: opendal::Error) -> Error {
        map_error(action, &self.url(path), &self.location, e)
    }

    fn check_writable(&self, path: &str) -> Result<()> {
        if self.read_only {
            return Err(Repr::ReadOnlyRepository {
                path: self.location.clone().into(),
                what: format!("writing {path}"),
                reason: "opened for reading only".into(),
            }
            .into());
        }
        Ok(())
    }

    /// `dir` as opendal lists it: `""` is the root `/`, others end in `/`.
    fn dir_path(dir: &str) -> String {
        let d = dir.trim_matches('/');
        if d.is_empty() {
            "/".to_string()
        } else {
            format!("{d}/")
        }
    }

    /// Every name in `dir`, dot names included, without the folder itself.
    fn list_all(&self, dir: &str) -> Result<Vec<String>> {
        let d = Self::dir_path(dir);
        let entries = match self.rt.block_on(self.op.list(&d)) {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.kind() == opendal::ErrorKind::NotADirectory => return Ok(Vec::new()),
            Err(e) => return Err(self.fail("listing", dir, e)),
        };
        let own = d.trim_start_matches('/');
        let mut out: Vec<String> = entries
            .iter()
            .filter(|e| e.path().trim_start_matches('/') != own)
            .map(|e| e.name().trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every file below `dir` with its size (a stat where the listing gave
    /// none), dot names included, paths relative to `dir`.
    fn walk(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        let d = Self::dir_path(dir);
        let entries = match self
            .rt
            .block_on(self.op.list_with(&d).recursive(true).into_future())
        {
            Ok(e) => e,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.fail("listing", dir, e)),
        };
        let prefix = d.trim_start_matches('/');
        let mut out = Vec::new();
        for e in entries {
            if !e.metadata().is_file() {
                continue;
            }
            let full = e.path().trim_start_matches('/');
            let Some(rel) = full.strip_prefix(prefix) else {
                continue;
            };
            let size = match e.metadata().content_length() {
                // Not in the listing (or an empty file): ask.
                0 => self.size(full)?,
                n => n,
            };
            out.push((rel.to_string(), size));
        }
        out.sort();
        Ok(out)
    }
}

/// How many times a failed request is retried (`LUMINA_BACKUP_REMOTE_RETRIES`,
/// default 4: five attempts over about 3 s plus jitter).
fn retry_times() -> usize {
    std::env::var("LUMINA_BACKUP_REMOTE_RETRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// One line for an opendal failure: NotFound becomes an I/O not-found error
/// (callers treat it like a missing local file), a refusal of the credentials
/// becomes [`crate::ErrorKind::Credentials`] (exit 2), anything else
/// [`crate::ErrorKind::Remote`] (exit 1), the server's message squeezed onto
/// one line.
fn map_error(action: &'static str, object: &str, location: &str, e: opendal::Error) -> Error {
    let kind = e.kind();
    let message = one_line(&e);
    // Some services (WebDAV) report 401 Unauthorized as an unexpected error;
    // the status in the error's context says what it is.
    let unauthorized = e.to_string().contains("status: 401");
    if unauthorized {
        return credentials_refused(action, object, location, &message);
    }
    match kind {
        opendal::ErrorKind::NotFound => Error::io(
            action,
            object,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
        ),
        opendal::ErrorKind::PermissionDenied => {
            credentials_refused(action, object, location, &message)
        }
        opendal::ErrorKind::ConfigInvalid => Repr::Credentials {
            location: location.to_string(),
            message: format!("invalid configuration: {message}"),
        }
        .into(),
        _ => Repr::Remote {
            action,
            object: object.to_string(),
            message: if e.to_string().contains("send http request") {
                // Connection refused, reset, DNS: say that first, then the cause.
                let cause = message.rsplit("source: ").next().unwrap_or(&message);
                format!(
                    "cannot reach the server after {} attempts ({cause}); check that it runs and the network, then try again",
                    retry_times() + 1
                )
            } else {
                message
            },
        }
        .into(),
    }
}

fn credentials_refused(action: &str, object: &str, location: &str, message: &str) -> Error {
    Repr::Credentials {
        location: location.to_string(),
        message: format!(
            "the server refused the credentials ({action} {object}: {message}); check the access key and secret (or user and password, or token) in the environment"
        ),
    }
    .into()
}

/// Whether an ETag (quoted or not, any case) is `md5_hex`: a multipart or
/// encrypted object's ETag (`…-N`, or another 32 hex digits) is not.
fn etag_is_md5(etag: &str, md5_hex: &str) -> bool {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    let e = e.trim_matches('"');
    e.len() == 32 && e.eq_ignore_ascii_case(md5_hex)
}

/// The error's text on one line, at most 300 characters.
fn one_line(e: &opendal::Error) -> String {
    let text = e.to_string();
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 300 {
        let mut cut = 300;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.rt
            .block_on(self.op.read(path))
            .map(|b| b.to_vec())
            .map_err(|e| self.fail("reading", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = offset.saturating_add(len as u64);
        let buf = self
            .rt
            .block_on(self.op.read_with(path).range(offset..end).into_future())
            .map_err(|e| self.fail("reading", path, e))?;
        if buf.len() != len {
            return Err(Repr::Remote {
                action: "reading",
                object: self.url(path),
                message: format!(
                    "asked for {len} bytes at offset {offset}, the server sent {}",
                    buf.len()
                ),
            }
            .into());
        }
        Ok(buf.to_vec())
    }

    fn size(&self, path: &str) -> Result<u64> {
        self.rt
            .block_on(self.op.stat(path))
            .map(|m| m.content_length())
            .map_err(|e| self.fail("reading size of", path, e))
    }

    fn write_atomic(&self, path: &str, data: &[u8]) -> Result<()> {
        self.check_writable(path)?;
        if self.atomic_put {
            return self
                .rt
                .block_on(self.op.write(path, data.to_vec()))
                .map(drop)
                .map_err(|e| self.fail("writing", path, e));
        }
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let temp_name = format!(
            "{TEMP_PREFIX}{name}-{}",
            hex::encode(rand::random::<[u8; 8]>())
        );
        let temp = if dir.is_empty() {
            temp_name
        } else {
            format!("{dir}/{temp_name}")
        };
        self.rt
            .block_on(self.op.write(&temp, data.to_vec()))
            .map_err(|e| self.fail("writing", &temp, e))?;
        let moved = self.rt.block_on(self.op.rename(&temp, path));
        if let Err(e) = moved {
            let _ = self.rt.block_on(self.op.delete(&temp));
            return Err(self.fail("renaming into place", path, e));
        }
        Ok(())
    }

    /// One PUT of `data` (moved into the request, not copied) where a PUT is
    /// atomic; confirmed when the answer's ETag is the MD5 of `data`, as S3
    /// gives it for a single-part PUT (AWS, Garage, MinIO, R2, B2; not with
    /// SSE-KMS or SSE-C, whose ETags are something else: then unconfirmed, and
    /// the caller reads back). Elsewhere (temp name and rename) as
    /// [`Backend::write_atomic`], unconfirmed.
    fn write_owned(&self, path: &str, data: Vec<u8>) -> Result<bool> {
        if !self.atomic_put {
            return self.write_atomic(path, &data).map(|()| false);
        }
        self.check_writable(path)?;
        let md5 = {
            use md5::Digest;
            hex::encode(md5::Md5::digest(&data))
        };
        let meta = self
            .rt
            .block_on(self.op.write(path, data))
            .map_err(|e| self.fail("writing", path, e))?;
        Ok(meta.etag().is_some_and(|etag| etag_is_md5(etag, &md5)))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        Ok(self
            .list_all(dir)?
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect())
    }

    fn remove(&self, path: &str) -> Result<()> {
        self.check_writable(path)?;
        match self.rt.block_on(self.op.delete(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.fail("removing", path, e)),
        }
    }

    fn exists(&self, path: &str) -> Result<bool> {
        self.rt
            .block_on(self.op.exists(path))
            .map_err(|e| self.fail("checking", path, e))
    }

    /// A remote delete is durable when it returns: nothing to do.
    fn sync_dir(&self, _dir: &str) -> Result<()> {
        Ok(())
    }

    /// Deletes the temp files of interrupted writes in `dir` **and below** (one
    /// recursive listing); none on a store whose PUT is atomic.
    fn remove_temp_files(&self, dir: &str) -> Result<usize> {
        self.check_writable(dir)?;
        if self.atomic_put {
            return Ok(0);
        }
        let mut n = 0;
        for (path, _) in self.walk(dir)? {
            let name = path.rsplit('/').next().unwrap_or(&path);
            if name.starts_with(TEMP_PREFIX) {
                let full = if dir.is_empty() {
                    path.clone()
                } else {
                    format!("{}/{path}", dir.trim_matches('/'))
                };
                self.remove(&full)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn list_tree(&self, dir: &str) -> Result<Option<Vec<(String, u64)>>> {
        let mut out = Vec::new();
        for (path, size) in self.walk(dir)? {
            if path.split('/').any(|seg| seg.starts_with('.')) {
                continue;
            }
            out.push((path, size));
        }
        Ok(Some(out))
    }

    fn is_remote(&self) -> bool {
        true
    }
}
