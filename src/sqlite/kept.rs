//! The kept copy: the last captured page image of a database, kept in the
//! staging folder between captures so that the next capture writes only the
//! pages that changed instead of the whole database.
//!
//! Nothing trusts its content. Under the source's read lock every byte the
//! capture reads is compared with the copy's byte at the same offset, and every
//! block that differs (or lies past the copy's end) is written; at the end the
//! copy is cut to the image's length. Afterwards the copy equals the captured
//! image byte for byte, whatever it held before: another database's image, a
//! capture killed half-way, a damaged file. So a kept copy needs no crash
//! protocol and no fsync, and reading it back costs a read instead of a write
//! of the database's size (page-cache writes and their write-back are what a
//! fresh temporary copy costs).
//!
//! One kept copy per source database (by its canonical path), shared by every
//! repository it is snapshotted to. Beside the copy a `.source` file names its
//! database; a capture holds an exclusive lock on that file (`flock`;
//! `LockFileEx` on Windows, where locks are mandatory, which is why the copy
//! itself, read by SQLite through its own handle, is not the one locked) while
//! it writes and reads the copy; a second capture of the same database
//! meanwhile (another repository, another process) finds it locked and stages
//! a temporary copy instead. Copies of databases that no longer exist are
//! removed by the next capture. Deleting them by hand is always safe: the next
//! capture writes a whole copy again.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::platform::UnixMode;

/// Name prefix of kept copies in the staging folder.
const PREFIX: &str = "lumina-backup-copy-";

/// Most bytes of [`PreviousPages`] a capture keeps (beyond that it keeps none).
const PREVIOUS_MAX_BYTES: u64 = 64 << 20;

/// What the kept copy held, before this capture rewrote them, in the pages
/// that were table b-tree leaves there: the parent snapshot's pages when the
/// copy was the parent's image. Nothing vouches for that: a user checks each
/// page against the parent's chunk id before relying on it.
///
/// The pages go to a private temporary file beside the kept copy (memory holds
/// one offset per page), removed on drop; at most [`PREVIOUS_MAX_BYTES`], and
/// none once more changed, or when the file cannot be written: they only save
/// work, a capture never fails for them.
#[derive(Debug, Default)]
pub struct PreviousPages {
    file: Option<(PathBuf, File)>,
    offsets: std::collections::HashMap<u32, (u64, usize)>,
    bytes: u64,
    /// Given up (too many, or the file failed): none are kept.
    given_up: bool,
}

impl PreviousPages {
    /// The copy's previous bytes of page `no`, if it was a rewritten table leaf.
    pub fn get(&self, no: u32) -> Option<Vec<u8>> {
        let (at, len) = *self.offsets.get(&no)?;
        let (_, f) = self.file.as_ref()?;
        let mut buf = vec![0u8; len];
        crate::platform::read_exact_at(f, &mut buf, at).ok()?;
        Some(buf)
    }

    /// Keeps `bytes` as page `no`'s previous content if it is a table leaf
    /// (the first seen wins: a capture route starting again compares with what
    /// the first attempt wrote). `dir`: where the file goes.
    fn keep(&mut self, dir: &Path, no: u32, bytes: &[u8]) {
        let header = if no == 1 { 100 } else { 0 };
        if self.given_up || bytes.get(header) != Some(&0x0d) || self.offsets.contains_key(&no) {
            return;
        }
        if self.bytes + bytes.len() as u64 > PREVIOUS_MAX_BYTES || !self.append(dir, no, bytes) {
            self.give_up();
        }
    }

    fn append(&mut self, dir: &Path, no: u32, bytes: &[u8]) -> bool {
        if self.file.is_none() {
            let nonce: u64 = rand::random();
            let path = dir.join(format!(
                "{}{}-{nonce:016x}-previous.db",
                super::staging::TEMP_PREFIX,
                std::process::id()
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .unix_mode(0o600)
                .open(&path)
            {
                Ok(f) => self.file = Some((path, f)),
                Err(_) => return false,
            }
        }
        let Some((_, f)) = self.file.as_ref() else {
            return false;
        };
        if crate::platform::write_all_at(f, bytes, self.bytes).is_err() {
            return false;
        }
        self.offsets.insert(no, (self.bytes, bytes.len()));
        self.bytes += bytes.len() as u64;
        true
    }

    fn give_up(&mut self) {
        self.remove_file();
        self.offsets = Default::default();
        self.given_up = true;
    }

    fn remove_file(&mut self) {
        if let Some((path, f)) = self.file.take() {
            drop(f);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for PreviousPages {
    fn drop(&mut self) {
        self.remove_file();
    }
}

/// A kept copy being brought up to date; holds its lock until dropped.
#[derive(Debug)]
pub struct KeptCopy {
    path: PathBuf,
    file: File,
    /// The `.source` file, locked while this value lives.
    _lock: File,
    /// The file's length: bytes below it are compared, bytes past it written.
    len: u64,
    /// Comparison unit: a differing block is written whole.
    block: usize,
    buf: Vec<u8>,
    rewritten: u64,
    previous: PreviousPages,
}

impl KeptCopy {
    /// The kept copy of `source` (a canonical path) in `dir`, created empty if
    /// missing, locked for this capture. `Ok(None)`: another capture holds it.
    pub fn open(dir: &Path, source: &Path) -> Result<Option<KeptCopy>> {
        remove_orphans(dir);
        let key = blake3::hash(source.as_os_str().as_encoded_bytes()).to_hex();
        let stem = format!("{PREFIX}{}", &key[..24]);
        // The lock is taken on the `.source` file, not on the copy: on Windows
        // a lock is mandatory, and SQLite reads the copy through its own handle.
        let named = dir.join(format!("{stem}.source"));
        let lock = open_private(&named)
            .map_err(|e| Error::io("opening the kept copy's lock", &named, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking the kept copy", &named, e))
            }
        }
        if !still_linked(&lock, &named) {
            // Removed meanwhile as an orphan's (its database had gone): the
            // next capture starts afresh.
            return Ok(None);
        }
        if lock.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            // Best effort: only the clean-up of orphans reads it.
            let _ = crate::platform::write_all_at(&lock, source.as_os_str().as_encoded_bytes(), 0);
        }
        let path = dir.join(format!("{stem}.db"));
        let file = open_private(&path).map_err(|e| Error::io("opening the kept copy", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading the kept copy", &path, e))?
            .len();
        Ok(Some(KeptCopy {
            path,
            file,
            _lock: lock,
            len,
            block: 4096,
            buf: Vec::new(),
            rewritten: 0,
            previous: PreviousPages::default(),
        }))
    }

    /// The copy's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Compares and writes in blocks of `n` bytes (the image's page size).
    pub fn set_block(&mut self, n: usize) {
        self.block = n.max(1);
    }

    /// Bytes written so far because they differed from the copy's.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Makes the copy's bytes at `offset` equal `data`, writing only the blocks
    /// that differ (and what lies past the copy's end).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let io = |e| Error::io("writing the kept copy", &self.path, e);
        let have = self.len.saturating_sub(offset).min(data.len() as u64) as usize;
        if have > 0 {
            self.buf.resize(have, 0);
            crate::platform::read_exact_at(&self.file, &mut self.buf[..have], offset)
                .map_err(|e| Error::io("reading the kept copy", &self.path, e))?;
            let block = self.block;
            let dir = crate::fsutil::parent_dir(&self.path);
            let differs = |i: usize, buf: &[u8]| {
                let end = (i + block).min(have);
                data[i..end] != buf[i..end]
            };
            let mut i = 0;
            while i < have {
                if !differs(i, &self.buf) {
                    i += block;
                    continue;
                }
                // One write for a run of differing blocks.
                let start = i;
                while i < have && differs(i, &self.buf) {
                    i += block;
                }
                let end = i.min(have);
                if offset.is_multiple_of(block as u64) {
                    for (k, old) in self.buf[start..end].chunks(block).enumerate() {
                        let no = (offset + (start + k * block) as u64) / block as u64 + 1;
                        if let Ok(no) = u32::try_from(no) {
                            self.previous.keep(dir, no, old);
                        }
                    }
                }
                crate::platform::write_all_at(&self.file, &data[start..end], offset + start as u64)
                    .map_err(io)?;
                self.rewritten += (end - start) as u64;
            }
        }
        if have < data.len() {
            let at = offset + have as u64;
            crate::platform::write_all_at(&self.file, &data[have..], at).map_err(io)?;
            self.rewritten += (data.len() - have) as u64;
        }
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }

    /// The previous content of the table leaves this capture rewrote (see
    /// [`PreviousPages`]).
    pub fn take_previous(&mut self) -> PreviousPages {
        std::mem::take(&mut self.previous)
    }

    /// Removes the copy (after a failure to write it for want of space: what
    /// it holds would only take room; the next capture writes it whole).
    pub fn discard(self) {
        let KeptCopy {
            path, file, _lock, ..
        } = self;
        // The copy is removed while the lock is held (after its handle is
        // closed: Windows cannot remove an open file), then the `.source`.
        drop(file);
        let _ = std::fs::remove_file(&path);
        drop(_lock);
        let _ = std::fs::remove_file(path.with_extension("source"));
    }

    /// Cuts the copy to `len` bytes (the image's size) when it is longer.
    pub fn finish(&mut self, len: u64) -> Result<()> {
        if self.len != len {
            self.file
                .set_len(len)
                .map_err(|e| Error::io("writing the kept copy", &self.path, e))?;
            self.len = len;
        }
        Ok(())
    }
}

/// Removes the kept copies (and their `.source` files) of databases that no
/// longer exist. Best effort; a copy another capture holds is left alone.
fn remove_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name
            .to_str()
            .filter(|n| n.starts_with(PREFIX))
            .and_then(|n| n.strip_suffix(".source"))
        else {
            continue;
        };
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(source) = String::from_utf8(bytes) else {
            continue;
        };
        if Path::new(&source).exists() {
            continue;
        }
        // Locked by the clean-up while it removes both (a capture of the same
        // database starting meanwhile sees the `.source` file unlinked).
        let Ok(lock) = OpenOptions::new().read(true).write(true).open(entry.path()) else {
            continue;
        };
        if lock.try_lock().is_ok() && still_linked(&lock, &entry.path()) {
            let _ = std::fs::remove_file(dir.join(format!("{stem}.db")));
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Opens (creating it 0600 if missing) the regular file at `path` for reading
/// and writing, refusing a symbolic link (never followed: the write would land
/// elsewhere) and, on Unix, a file another user owns.
fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .unix_mode(0o600);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file()
        || !crate::platform::owned_by_this_user(&meta)
        || std::fs::symlink_metadata(path)?.file_type().is_symlink()
    {
        return Err(std::io::Error::other(
            "not a regular file of this user's (a link, a folder or another user's file)",
        ));
    }
    Ok(file)
}

/// Whether `file` is still the file at `path` (not removed or replaced since
/// it was opened). Always true on Windows, where an open file is not removed.
fn still_linked(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(k: &KeptCopy) -> Vec<u8> {
        std::fs::read(k.path()).expect("read")
    }

    /// Whatever the copy held, after a pass it equals what was written, and
    /// only differing blocks (and growth) count as rewritten.
    #[test]
    fn a_pass_makes_the_copy_equal_and_writes_only_what_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("a.db");
        // An existing source (a copy whose source is gone is removed).
        std::fs::write(&src, b"x").expect("source");
        let mut k = KeptCopy::open(dir.path(), &src)
            .expect("open")
            .expect("free");
        k.set_block(512);
        let first: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        k.write_at(0, &first).expect("write");
        k.finish(8192).expect("finish");
        assert_eq!(contents(&k), first);
        assert_eq!(k.rewritten(), 8192);
        drop(k);

        // Two blocks changed, one appended, in two pieces.
        let mut second = first.clone();
        second[600] ^= 1;
        second[5000] ^= 0xff;
        second.extend_from_slice(&[9u8; 512]);
        let mut k = KeptCopy::open(dir.path(), &src)
            .expect("open")
            .expect("free");
        k.set_block(512);
        k.write_at(0, &second[..4096]).expect("write");
        k.write_at(4096, &second[4096..]).expect("write");
        k.finish(second.len() as u64).expect("finish");
        assert_eq!(contents(&k), second);
        assert_eq!(k.rewritten(), 3 * 512);
        drop(k);

        // Shrunk, and the copy damaged meanwhile: still exact.
        let path = dir.path().join(format!(
            "{PREFIX}{}.db",
            &blake3::hash(src.as_os_str().as_encoded_bytes()).to_hex()[..24]
        ));
        let mut damaged = std::fs::read(&path).expect("read");
        damaged[100] ^= 0x55;
        std::fs::write(&path, &damaged).expect("damage");
        let third = &second[..3000];
        let mut k = KeptCopy::open(dir.path(), &src)
            .expect("open")
            .expect("free");
        k.set_block(512);
        k.write_at(0, third).expect("write");
        k.finish(third.len() as u64).expect("finish");
        assert_eq!(contents(&k), third);
        assert_eq!(k.rewritten(), 512);
    }

    /// The previous bytes of rewritten table leaves (type 0x0d) are handed
    /// over, the first seen kept; other pages are not.
    #[test]
    fn previous_table_leaves_are_handed_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("c.db");
        std::fs::write(&src, b"x").expect("source");
        let mut k = KeptCopy::open(dir.path(), &src)
            .expect("open")
            .expect("free");
        k.set_block(512);
        // Page 1 (header at 100), a table leaf, an index leaf, a table leaf.
        let mut first = vec![0u8; 4 * 512];
        first[100] = 0x0d;
        first[512] = 0x0d;
        first[1024] = 0x0a;
        first[1536] = 0x0d;
        k.write_at(0, &first).expect("write");
        k.finish(first.len() as u64).expect("finish");
        assert!(
            k.take_previous().offsets.is_empty(),
            "nothing was rewritten"
        );
        drop(k);

        let mut second = first.clone();
        for p in 0..3 {
            second[p * 512 + 200] = 1;
        }
        let mut k = KeptCopy::open(dir.path(), &src)
            .expect("open")
            .expect("free");
        k.set_block(512);
        k.write_at(0, &second).expect("write");
        // A route starting again: what the first pass wrote is not kept.
        let mut third = second.clone();
        third[512 + 300] = 2;
        k.write_at(0, &third).expect("again");
        let previous = k.take_previous();
        assert_eq!(previous.get(1).as_deref(), Some(&first[..512]));
        assert_eq!(previous.get(2).as_deref(), Some(&first[512..1024]));
        assert_eq!(previous.get(3), None, "an index leaf");
        assert_eq!(previous.get(4), None, "not rewritten");
    }

    #[test]
    fn a_held_copy_is_not_shared_and_orphans_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("b.db");
        std::fs::write(&src, b"x").expect("source");
        let held = KeptCopy::open(dir.path(), &src)
            .expect("open")
            .expect("free");
        assert!(KeptCopy::open(dir.path(), &src).expect("open").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(held.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "only the user may read the copy");
        }
        let copy = held.path().to_path_buf();
        drop(held);
        // The source exists: kept.
        remove_orphans(dir.path());
        assert!(copy.exists());
        // The source is gone: removed with its name file.
        std::fs::remove_file(&src).expect("rm");
        remove_orphans(dir.path());
        assert!(!copy.exists());
        assert!(!copy.with_extension("source").exists());
    }
}
