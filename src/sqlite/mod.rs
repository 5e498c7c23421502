//! SQLite: consistent capture of a live database, and checked installation of a
//! restored image.
//!
//! Knows nothing of chunks, packs or repositories: capture hands bytes to a sink,
//! restore works on files.

pub mod btree;
pub mod capture;
pub mod capture_routes;
pub mod check;
pub mod held;
pub mod inuse;
pub mod kept;
pub mod raw;
pub mod record;
pub mod restore;
pub mod staging;
pub mod target;
pub mod unchanged;

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Repr, Result};

/// The 16-byte header every SQLite 3 database starts with.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The page size a database header states (offset 16; 1 means 65536), if it
/// is a valid one.
pub(crate) fn header_page_size(head: &[u8]) -> Option<u32> {
    let raw = u16::from_be_bytes([*head.get(16)?, *head.get(17)?]);
    let ps = if raw == 1 { 65536 } else { u32::from(raw) };
    ((512..=65536).contains(&ps) && ps.is_power_of_two()).then_some(ps)
}

/// Checks that `path` is an existing SQLite 3 database file, with a clear error
/// (exit code 2) if not.
pub fn check_database_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Repr::NoSuchDatabase(path.to_path_buf()).into(),
        _ => Error::io("reading", path, e),
    })?;
    if !meta.is_file() {
        return Err(Repr::NotSqlite {
            path: path.into(),
            why: "not a regular file".into(),
        }
        .into());
    }
    if meta.len() == 0 {
        return Err(Repr::NotSqlite {
            path: path.into(),
            why: "the file is empty".into(),
        }
        .into());
    }
    let mut head = [0u8; 16];
    let mut f = held::open(path).map_err(|e| Error::io("opening", path, e))?;
    let n = read_up_to(&mut f, &mut head).map_err(|e| Error::io("reading", path, e))?;
    if n < 16 || &head != SQLITE_MAGIC {
        return Err(Repr::NotSqlite {
            path: path.into(),
            why: "it does not start with the SQLite header".into(),
        }
        .into());
    }
    Ok(())
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
