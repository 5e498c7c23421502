//! Small helpers for files on the local file system, the user's as well as the
//! repository's: atomic replacement (temp file beside the target, fsync,
//! rename, fsync the folder) and folder fsync. Restore targets, exports, the
//! demo and [`crate::backend::LocalBackend`] use them; the repository reaches
//! its own files only through [`crate::backend::Backend`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::platform::UnixMode;

/// Prefix of temporary files written beside their target.
pub const TEMP_PREFIX: &str = ".tmp-";

/// The folder holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a folder so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    crate::platform::sync_dir(dir).map_err(|e| Error::io("syncing folder", dir, e))
}

/// Writes `data` to `target` atomically: temp file beside it (mode 0600), fsync,
/// rename, fsync the folder. Used for repository files and restored databases.
pub fn write_file_atomic(target: &Path, data: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(target)?;
    file.write_all(data)
        .map_err(|e| Error::io("writing", file.temp_path(), e))?;
    file.commit()
}

/// A file written in place of `target` atomically: bytes go to a temp file beside
/// it; [`AtomicFile::commit`] fsyncs and renames it over `target` and fsyncs the
/// folder. Dropped without commit, the temp file is removed and `target` untouched.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<std::io::BufWriter<File>>,
    /// Whether dropping removes the temp file (until renamed or handed over).
    owns_temp: bool,
}

impl AtomicFile {
    /// Starts writing a replacement for `target` (mode 0600).
    pub fn create(target: &Path) -> Result<Self> {
        Self::create_with_mode(target, 0o600)
    }

    /// Starts writing a replacement for `target` created with `mode`, which the
    /// umask then restricts (restore gives the user's new files 0666: the user's
    /// umask decides, as for any file the user creates).
    pub fn create_with_mode(target: &Path, mode: u32) -> Result<Self> {
        let tmp = temp_path_beside(target);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .unix_mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("creating", &tmp, e))?;
        Ok(AtomicFile {
            tmp,
            target: target.to_path_buf(),
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            owns_temp: true,
        })
    }

    /// The temp file's path (to reopen it before commit, e.g. to check it).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes, fsyncs, renames onto the target, fsyncs the folder.
    pub fn commit(mut self) -> Result<()> {
        self.sync()?;
        crate::testhook::point("before-rename");
        fs::rename(&self.tmp, &self.target)
            .map_err(|e| Error::io("renaming into", &self.target, e))?;
        self.owns_temp = false;
        sync_dir(parent_dir(&self.target))
    }
}

impl AtomicFile {
    fn sync(&mut self) -> Result<()> {
        let w = self.file.take().expect("the file is finished once");
        let f = w
            .into_inner()
            .map_err(|e| Error::io("writing", &self.tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io("syncing", &self.tmp, e))
    }

    /// Flushes (no fsync), then hands the temp file and its path over to the
    /// caller, who must fsync it before renaming it, or remove it (restore
    /// fsyncs while SQLite checks the file).
    pub fn into_unsynced(mut self) -> Result<(PathBuf, File)> {
        let w = self.file.take().expect("the file is finished once");
        let f = w
            .into_inner()
            .map_err(|e| Error::io("writing", &self.tmp, e.into_error()))?;
        self.owns_temp = false;
        Ok((self.tmp.clone(), f))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Not renamed nor handed over (also after a failed sync or rename):
        // remove the temp file.
        if self.owns_temp {
            self.file = None;
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A fresh temporary path in the same folder as `target`.
pub fn temp_path_beside(target: &Path) -> PathBuf {
    let dir = parent_dir(target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::random();
    dir.join(format!("{TEMP_PREFIX}{name}-{nonce:016x}"))
}
