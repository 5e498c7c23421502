//! Whether a path lies inside a repository folder. Writing a user's file there
//! (a restored database, an export, the demo's folder) would put foreign files
//! into the repository, or overwrite its own; `restore`, `export` and `demo`
//! refuse such paths up front. Needs no open repository: the folder is found
//! by its `config` file's magic, looking up from the path.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The repository folder (a folder whose `config` starts with the repository
/// magic) that holds `path`, looking from `path` up to the root. `path` need
/// not exist: the search starts at its deepest existing folder, made absolute
/// (`..` and links resolved).
pub fn repository_holding(path: &Path) -> Option<PathBuf> {
    let mut probe = path.to_path_buf();
    let start = loop {
        if let Ok(p) = std::fs::canonicalize(&probe) {
            break p;
        }
        if !probe.pop() || probe.as_os_str().is_empty() {
            break std::env::current_dir().ok()?;
        }
    };
    start.ancestors().find_map(|dir| {
        let config = dir.join(super::CONFIG_FILE);
        let mut head = [0u8; 8];
        let f = std::fs::File::open(&config).ok()?;
        crate::platform::read_exact_at(&f, &mut head, 0).ok()?;
        (head == crate::format::MAGIC).then(|| dir.to_path_buf())
    })
}

/// Refuses (exit 2) a path inside a repository folder; `what_to_do` ends the
/// message ("restore to a path outside it").
pub fn refuse_inside_repository(path: &Path, what_to_do: &str) -> Result<()> {
    match repository_holding(path) {
        Some(repo) => Err(Error::invalid_input(format!(
            "{} is inside the backup repository {}; {what_to_do}",
            path.display(),
            repo.display()
        ))),
        None => Ok(()),
    }
}
