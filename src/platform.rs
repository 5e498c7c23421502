//! What differs between the platforms the library ships on (Linux, macOS,
//! Windows), in one place: positional reads, Unix modes, folder fsync, disk
//! preallocation, and which I/O errors mean "read-only" or "no space".
//!
//! Linux and macOS take the Unix routes (macOS is type-checked only, not tested:
//! see README, "Platforms"). On Windows:
//! - modes do not exist: files and folders inherit the ACL of the folder they are
//!   created in, so a repository is as private as the folder it lives in;
//! - folders cannot be fsynced (SQLite's own Windows VFS skips it too): a rename
//!   is made durable by NTFS's metadata journal, not by us;
//! - the index file is not preallocated (a best-effort optimisation on Linux).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::Path;

/// Reads exactly `buf.len()` bytes at `offset`, without using the file's cursor
/// (on Windows the cursor moves, but every reader here passes its offset).
pub(crate) fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            match f.seek_read(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Writes all of `data` at `offset`, without using the file's cursor (on
/// Windows the cursor moves, but every writer here passes its offset).
pub(crate) fn write_all_at(f: &File, data: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(f, data, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let (mut data, mut offset) = (data, offset);
        while !data.is_empty() {
            match f.seek_write(data, offset) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    data = &data[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Appends `len` bytes of `src` from `offset` to `out` at its cursor: copied
/// inside the kernel where it can (Linux `copy_file_range`: no trip through
/// this process's memory), else read and written through a buffer (also
/// after the kernel copied nothing: only a read says where `src` ends).
/// Returns the bytes copied: fewer than `len` only when `src` ends first.
pub(crate) fn copy_range(src: &File, offset: u64, len: u64, out: &File) -> io::Result<u64> {
    let mut done = 0u64;
    #[cfg(target_os = "linux")]
    {
        use rustix::io::Errno;
        let mut at = offset;
        while done < len {
            let want = usize::try_from(len - done)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match rustix::fs::copy_file_range(src, Some(&mut at), out, None, want) {
                // The end of the file, or a file system that copies nothing
                // (some report 0 where they cannot copy): the buffered copy
                // below reads what is really there.
                Ok(0) => break,
                Ok(n) => done += n as u64,
                Err(Errno::INTR) => {}
                // Out of room: the buffered copy would fail the same way.
                Err(e @ (Errno::NOSPC | Errno::DQUOT | Errno::FBIG)) => return Err(e.into()),
                // Not supported or not allowed here (another file system, an
                // old kernel, a special file, a sandbox's system call filter):
                // the buffered copy below goes on, and reports a real read or
                // write error as such.
                Err(_) => break,
            }
        }
    }
    let mut buf = vec![0u8; (len - done).min(1 << 20) as usize];
    let mut w = out;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = read_at(src, &mut buf[..want], offset + done)?;
        if n == 0 {
            break;
        }
        io::Write::write_all(&mut w, &buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

/// Reads `buf.len()` bytes at `offset`, or fewer when the file ends first;
/// returns how many were read.
pub(crate) fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read_at(f, &mut buf[got..], offset + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// One positional read (fewer bytes than asked at the end of the file).
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::read_at(f, buf, offset);
        #[cfg(windows)]
        let r = std::os::windows::fs::FileExt::seek_read(f, buf, offset);
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// Whether the file or folder `meta` describes belongs to this process's
/// (effective) user. Always true on Windows, where files have no Unix owner
/// (they inherit the folder's ACL).
pub(crate) fn owned_by_this_user(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.uid() == rustix::process::geteuid().as_raw()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        true
    }
}

/// `.unix_mode(m)` on `OpenOptions` and `DirBuilder`: new files and folders get
/// Unix mode `m` (the umask then restricts it); no effect on Windows, where they
/// inherit the folder's ACL.
pub(crate) trait UnixMode {
    /// Sets the mode of what is created (Unix only).
    fn unix_mode(&mut self, mode: u32) -> &mut Self;
}

impl UnixMode for OpenOptions {
    fn unix_mode(&mut self, mode: u32) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(self, mode);
        let _ = mode;
        self
    }
}

impl UnixMode for DirBuilder {
    fn unix_mode(&mut self, mode: u32) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(self, mode);
        let _ = mode;
        self
    }
}

/// Whether a process with id `pid` exists (Unix: `kill(pid, 0)` does not say
/// "no such process"). Always `true` on Windows, where this is not asked.
pub(crate) fn process_exists(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        !matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Sets the Unix mode of `path`; does nothing (and succeeds) on Windows.
pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// fsyncs a folder so that a rename inside it is durable. On Windows a folder
/// cannot be opened as a file to be flushed: nothing is done (see the module
/// comment).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Allocates the holes of a sparse file (Linux `fallocate`, keeping its size),
/// best effort: failure or another platform only leaves the holes.
pub(crate) fn preallocate(path: &Path) {
    #[cfg(target_os = "linux")]
    {
        let Ok(f) = OpenOptions::new().write(true).open(path) else {
            return;
        };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            return;
        };
        // Failure (ENOSPC, EOPNOTSUPP) only leaves the holes.
        let _ = rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len);
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
    }
}

/// Whether this process may write `path`. On Unix `access(2)`: no file is
/// opened, so no lock SQLite holds on it can be dropped by a close. On Windows,
/// where a folder's read-only flag means nothing, it is assumed writable (the
/// caller then reports SQLite's own error).
pub(crate) fn writable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

/// Whether an I/O error means "this file system cannot be written here"
/// (Unix EROFS, EACCES, EPERM; Windows ERROR_WRITE_PROTECT, ERROR_ACCESS_DENIED).
pub(crate) fn is_read_only_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}

/// Whether an I/O error means "no space left" (Unix ENOSPC, EDQUOT; Windows
/// ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL, ERROR_DISK_QUOTA_EXCEEDED).
pub(crate) fn is_no_space_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Whether an error's text (redb reports its I/O errors as text) carries the
/// OS error for "no space left" (Unix ENOSPC 28; Windows 112 and 39).
pub(crate) fn is_no_space_text(text: &str) -> bool {
    if cfg!(windows) {
        text.contains("os error 112") || text.contains("os error 39")
    } else {
        text.contains("os error 28")
    }
}

/// Reads from the current position until `buf` is full or the file ends;
/// returns how many bytes were read (fewer than `buf.len()` only at the end).
pub(crate) fn read_full(f: &mut impl std::io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// How many names (hard links) the file of `meta` has. On Windows the count is
/// not available on stable Rust: 1 (the hard-link check of restore is Unix-only).
pub(crate) fn hard_links(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.nlink()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn copy_range_appends_at_the_cursor_and_stops_at_the_source_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("src");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).expect("write");
        let src = File::open(&p).expect("open");
        let q = dir.path().join("out");
        let mut out = File::create(&q).expect("create");
        out.write_all(b"head").expect("head");
        assert_eq!(
            copy_range(&src, 10, 2_000_000, &out).expect("copy"),
            2_000_000
        );
        // The cursor moved past what was copied: a write lands after it.
        out.write_all(b"mid").expect("mid");
        // Past the end of the source: what there is.
        assert_eq!(copy_range(&src, 2_999_990, 100, &out).expect("tail"), 10);
        drop(out);
        let got = std::fs::read(&q).expect("read");
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[10..2_000_010]);
        want.extend_from_slice(b"mid");
        want.extend_from_slice(&data[2_999_990..]);
        assert_eq!(got, want);
    }

    #[test]
    fn read_exact_at_reads_at_offsets_and_refuses_short_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        File::create(&p)
            .and_then(|mut f| f.write_all(b"0123456789"))
            .expect("write");
        let f = File::open(&p).expect("open");
        let mut buf = [0u8; 4];
        read_exact_at(&f, &mut buf, 3).expect("inside");
        assert_eq!(&buf, b"3456");
        read_exact_at(&f, &mut buf, 0).expect("again from the start");
        assert_eq!(&buf, b"0123");
        let err = read_exact_at(&f, &mut buf, 8).expect_err("past the end");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// The same OS errors count as "read-only" and "no space" as before the
    /// portable kinds were used (Unix errno values; Windows error codes).
    #[test]
    fn read_only_and_no_space_os_errors() {
        #[cfg(unix)]
        let (read_only, no_space, other) = (
            [libc::EROFS, libc::EACCES, libc::EPERM],
            [libc::ENOSPC, libc::EDQUOT],
            [libc::EIO, libc::ENOENT],
        );
        // ERROR_WRITE_PROTECT, ERROR_ACCESS_DENIED; ERROR_DISK_FULL,
        // ERROR_HANDLE_DISK_FULL, ERROR_DISK_QUOTA_EXCEEDED; ERROR_GEN_FAILURE,
        // ERROR_FILE_NOT_FOUND.
        #[cfg(windows)]
        let (read_only, no_space, other) = ([19, 5], [112, 39, 1295], [31, 2]);
        for code in read_only {
            let e = io::Error::from_raw_os_error(code);
            assert!(is_read_only_error(&e) && !is_no_space_error(&e), "{e}");
        }
        for code in no_space {
            let e = io::Error::from_raw_os_error(code);
            assert!(is_no_space_error(&e) && !is_read_only_error(&e), "{e}");
        }
        for code in other {
            let e = io::Error::from_raw_os_error(code);
            assert!(!is_no_space_error(&e) && !is_read_only_error(&e), "{e}");
        }
        let full = io::Error::from_raw_os_error(no_space[0]);
        assert!(is_no_space_text(&format!("redb: {full}")), "{full}");
        assert!(!is_no_space_text("redb: os error 5"));
    }

    #[test]
    fn modes_apply_on_unix_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .unix_mode(0o600)
            .open(&p)
            .expect("create");
        let d = dir.path().join("d");
        DirBuilder::new()
            .unix_mode(0o700)
            .create(&d)
            .expect("mkdir");
        set_mode(&p, 0o640).expect("set mode");
        sync_dir(dir.path()).expect("sync folder");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&p), 0o640);
            assert_eq!(mode(&d), 0o700);
        }
    }
}
