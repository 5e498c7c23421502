//! A repository in a local folder.
//!
//! Invariants: every write goes to a `.tmp-*` file beside its target, is fsynced,
//! renamed over the target, and the folder is fsynced, so a crash leaves either
//! the old file or the complete new one (plus perhaps a `.tmp-*` file that
//! [`LocalBackend::remove_temp_files`] clears). Folders are 0700, files 0600 (on
//! Windows they inherit the folder's ACL, and folders are not fsynced: see
//! `platform`).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::Backend;
use crate::error::{Error, Repr, Result};
use crate::platform::UnixMode;

/// Prefix of temporary files.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A repository folder on a local file system.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    /// Refuse every write and removal (a repository opened for reading only).
    read_only: bool,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            read_only: false,
        }
    }

    /// A backend that only reads: writes and removals fail without touching
    /// anything (a repository opened with `Repository::open_read_only`).
    pub fn new_read_only(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            read_only: true,
        }
    }

    fn check_writable(&self, path: &str) -> Result<()> {
        if self.read_only {
            return Err(Repr::ReadOnlyRepository {
                path: self.root.clone(),
                what: format!("this command (writing {path})"),
                reason: "opened for reading only".into(),
            }
            .into());
        }
        Ok(())
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// Creates a folder (and parents) with mode 0700.
    pub fn create_dir(&self, dir: &Path) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .unix_mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("creating folder", dir, e))
    }

    /// Deletes leftover `.tmp-*` files in `dir` (from a write that was interrupted).
    pub fn remove_temp_files(&self, dir: &str) -> Result<usize> {
        self.check_writable(dir)?;
        let full = self.full(dir);
        let entries = match fs::read_dir(&full) {
            Ok(e) => e,
            // Absent, or a foreign file where a folder is expected: nothing to clear.
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                return Ok(0)
            }
            Err(e) => return Err(Error::io("listing", full, e)),
        };
        let mut n = 0;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &full, e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(entry.path())
                    .map_err(|e| Error::io("removing", entry.path(), e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

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

    /// Flushes and fsyncs, then hands the temp file over to the caller, who must
    /// rename or remove it (restore checks the file before it replaces anything).
    pub fn keep_temp(mut self) -> Result<PathBuf> {
        self.sync()?;
        self.owns_temp = false;
        Ok(self.tmp.clone())
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

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let full = self.full(path);
        fs::read(&full).map_err(|e| Error::io("reading", full, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let full = self.full(path);
        let f = File::open(&full).map_err(|e| Error::io("opening", &full, e))?;
        let mut buf = vec![0u8; len];
        crate::platform::read_exact_at(&f, &mut buf, offset)
            .map_err(|e| Error::io("reading", &full, e))?;
        Ok(buf)
    }

    fn size(&self, path: &str) -> Result<u64> {
        let full = self.full(path);
        fs::metadata(&full)
            .map(|m| m.len())
            .map_err(|e| Error::io("reading size of", full, e))
    }

    fn write_atomic(&self, path: &str, data: &[u8]) -> Result<()> {
        self.check_writable(path)?;
        let full = self.full(path);
        if let Some(parent) = full.parent() {
            if !parent.exists() {
                self.create_dir(parent)?;
                if let Some(grand) = parent.parent() {
                    sync_dir(grand)?;
                }
            }
        }
        write_file_atomic(&full, data)
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let full = self.full(dir);
        let entries = match fs::read_dir(&full) {
            Ok(e) => e,
            // A foreign file where a folder is expected (e.g. a database restored
            // into `packs/`) holds no repository files: skip it, don't fail.
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(Error::io("listing", full, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &full, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, path: &str) -> Result<()> {
        self.check_writable(path)?;
        let full = self.full(path);
        match fs::remove_file(&full) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", full, e)),
        }
    }

    fn exists(&self, path: &str) -> Result<bool> {
        let full = self.full(path);
        full.try_exists()
            .map_err(|e| Error::io("checking", full, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path().join("repo"));
        b.write_atomic("packs/ab/x.pack", b"data").expect("write");
        assert_eq!(b.read("packs/ab/x.pack").expect("read"), b"data");
        assert_eq!(b.read_range("packs/ab/x.pack", 1, 2).expect("range"), b"at");
        assert!(b.read_range("packs/ab/x.pack", 3, 2).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("repo/packs/ab/x.pack"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = fs::metadata(dir.path().join("repo/packs/ab"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        assert_eq!(
            b.list("packs/ab").expect("list"),
            vec!["x.pack".to_string()]
        );
        b.remove("packs/ab/x.pack").expect("remove");
        b.remove("packs/ab/x.pack").expect("remove twice is fine");
        assert!(b.list("nope").expect("absent dir").is_empty());
    }
}
