//! Where `init` may create a repository: a new folder, an empty one, or (with
//! `force`) one holding other files — never a file, and never a folder inside
//! another repository (whose listing and prune would then meet a second
//! repository's files). The root of a new repository is private (0700).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::CONFIG_FILE;
use crate::error::{Error, Result};
use crate::format::{self, Kind};

/// A file (or a link to one) is not a repository folder.
pub(super) fn check_target(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => Err(Error::invalid_input(format!(
            "{} is a file, not a folder; give a new or empty folder for the repository",
            path.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        // A parent that is a file: the same mistake one level up.
        Err(e) if e.kind() == ErrorKind::NotADirectory => Err(Error::invalid_input(format!(
            "{}: a parent of it is a file, not a folder",
            path.display()
        ))),
        Err(e) => Err(Error::io("checking", path, e)),
    }
}

/// Whether `dir` holds a repository (its `config` has the config header).
fn holds_repository(dir: &Path) -> bool {
    let mut head = [0u8; format::HEADER_LEN];
    let read = std::fs::File::open(dir.join(CONFIG_FILE)).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut head)
    });
    read.is_ok() && format::decode_header(&head, Kind::Config).is_ok()
}

/// The absolute form of `path` with its existing part resolved (links, `..`).
fn resolved(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(name)) => {
                rest.push(name.to_os_string());
                existing = p;
            }
            _ => return abs,
        }
    }
}

/// Refuses a folder inside an existing repository (any ancestor holding one).
pub(super) fn check_not_inside_a_repository(path: &Path) -> Result<()> {
    let full = resolved(path);
    for ancestor in full.ancestors().skip(1) {
        if holds_repository(ancestor) {
            return Err(Error::invalid_input(format!(
                "{} is inside the repository {}; a repository cannot hold another: choose a folder outside it",
                path.display(),
                ancestor.display()
            )));
        }
    }
    Ok(())
}

/// Refuses a folder holding other files unless `force` (`lost+found`, which
/// the root of every ext file system has, does not count).
pub(super) fn check_empty(path: &Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing", path, e)),
    };
    let others = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "lost+found")
        .count();
    if others > 0 {
        return Err(Error::refused(format!(
            "folder {} is not empty ({others} entries) and holds no repository; give a new or empty folder, or force creating the repository among its files",
            path.display()
        ))
        .with_remedy(crate::error::Remedy::Force));
    }
    Ok(())
}

/// Makes an existing root folder private (0700), as `init` creates new ones.
/// Best effort: a file system without Unix modes (or a folder owned by another
/// user) keeps its mode, and the CLI says so. On Windows nothing changes: the
/// folder keeps the ACL it inherited.
pub(super) fn make_private(path: &Path) {
    let _ = crate::platform::set_mode(path, 0o700);
}
