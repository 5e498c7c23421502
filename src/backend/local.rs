//! A repository in a local folder.
//!
//! Invariants: every write goes to a `.tmp-*` file beside its target, is fsynced,
//! renamed over the target, and the folder is fsynced, so a crash leaves either
//! the old file or the complete new one (plus perhaps a `.tmp-*` file that
//! [`LocalBackend::remove_temp_files`] clears). Folders are 0700, files 0600 (on
//! Windows they inherit the folder's ACL, and folders are not fsynced: see
//! `platform`).

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::Backend;
use crate::error::{Error, Repr, Result};
use crate::platform::UnixMode;

pub use crate::fsutil::TEMP_PREFIX;
use crate::fsutil::{sync_dir, write_file_atomic};

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
                what: format!("writing {path}"),
                reason: "opened for reading only".into(),
            }
            .into());
        }
        Ok(())
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

    fn sync_dir(&self, dir: &str) -> Result<()> {
        sync_dir(&self.full(dir))
    }

    /// Deletes leftover `.tmp-*` files in `dir` (from a write that was interrupted).
    fn remove_temp_files(&self, dir: &str) -> Result<usize> {
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
