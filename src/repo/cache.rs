//! The local cache of a remote repository: its redb index (store-format.md
//! section 7) and a `flock` file that keeps two processes of this machine
//! from opening the same cache at once (redb opens a file once). Keyed by the
//! repository id, so two remote repositories never share a cache, and a cache
//! that lags behind the store is brought up to date by the open's reconcile
//! (section 6.4) like a local index: the cache is never the only copy of
//! anything, and deleting it costs one rebuild (pack descriptions only, by
//! ranged reads).
//!
//! Folder: `$LUMINA_BACKUP_CACHE_DIR/<repo id>/`, else
//! `$XDG_CACHE_HOME/lumina-backup/<repo id>/`, else
//! `~/.cache/lumina-backup/<repo id>/` (`~/Library/Caches/lumina-backup` on
//! macOS, `%LOCALAPPDATA%\lumina-backup` on Windows).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The cache root for all remote repositories of this user.
pub fn root() -> Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("LUMINA_BACKUP_CACHE_DIR") {
        return Ok(d);
    }
    let base = if cfg!(target_os = "macos") {
        env("HOME").map(|h| h.join("Library").join("Caches"))
    } else if cfg!(windows) {
        env("LOCALAPPDATA")
    } else {
        env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("lumina-backup")).ok_or_else(|| {
        Error::invalid_input(
            "no cache folder for the remote repository's index: set HOME, XDG_CACHE_HOME or LUMINA_BACKUP_CACHE_DIR",
        )
    })
}

/// The cache folder of the repository `repo_id` (created 0700).
pub fn dir(repo_id: &str) -> Result<PathBuf> {
    // The id comes from the (checked) config; refuse anything that could
    // leave the cache root.
    if repo_id.is_empty() || !repo_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::corrupt("config", "its repository id is not hex"));
    }
    let d = root()?.join(repo_id);
    crate::backend::LocalBackend::new(&d).create_dir(&d)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_id_cannot_escape_the_cache() {
        assert!(dir("../x").is_err());
        assert!(dir("").is_err());
    }
}
