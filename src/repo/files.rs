//! Checking the repository folder file by file, for `verify` and the repairs:
//! foreign files (anything lumina-backup does not write there) and the small
//! files (config, key files, `retention`, `status`, change summaries).
//!
//! These checks read the folder directly and need no index and no open
//! repository, so `verify` can name a damaged config or key file even when the
//! repository cannot be opened. With the repository's cipher they also open and
//! decode each small file; without it (the repository could not be unlocked)
//! they check what the envelope allows: header, length and checksum.

use std::path::Path;

use crate::backend::Backend;

use crate::format::typed::{check_envelope, decode_file, RepoFile};
use crate::format::{self, Cipher};

use crate::layout::{self, ROOT_ENTRIES};

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_temp(name: &str) -> bool {
    name.starts_with(layout::TEMP_PREFIX)
}

/// Lists `dir` as (name, is a folder); a folder that does not exist is empty.
fn entries(dir: &Path) -> std::io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in read {
        let e = e?;
        let is_dir = e.file_type()?.is_dir();
        out.push((e.file_name().to_string_lossy().into_owned(), is_dir));
    }
    out.sort();
    Ok(out)
}

/// Where the checked files are: a local folder, read directly (so a
/// repository that cannot be opened can still be checked), or a remote
/// store through its backend (whose listing does not tell folders from
/// files: a name is checked against either).
#[derive(Clone, Copy)]
pub(crate) enum Files<'a> {
    /// A local repository folder.
    Local(&'a Path),
    /// A remote repository.
    Remote(&'a dyn Backend),
}

impl Files<'_> {
    /// `(name, is a folder)` of each entry of `rel`; `None`: not known.
    fn entries(&self, rel: &str) -> std::io::Result<Vec<(String, Option<bool>)>> {
        match self {
            Files::Local(root) => Ok(entries(&root.join(rel))?
                .into_iter()
                .map(|(n, d)| (n, Some(d)))
                .collect()),
            Files::Remote(b) => Ok(b
                .list(rel)
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .into_iter()
                .map(|n| (n, None))
                .collect()),
        }
    }

    /// The bytes of the file `rel`.
    pub(crate) fn read(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        match self {
            Files::Local(root) => std::fs::read(root.join(rel)),
            Files::Remote(b) => match b.read(rel) {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.is_io_not_found() => Err(std::io::ErrorKind::NotFound.into()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
        }
    }
}

fn foreign(path: &str, is_dir: Option<bool>) -> String {
    let what = match is_dir {
        Some(true) => "folder",
        Some(false) => "file",
        None => "entry",
    };
    format!(
        "foreign {what} {path} in the repository folder (not written by lumina-backup; \
         move it elsewhere)"
    )
}

/// Files and folders in the repository folder that lumina-backup did not write
/// there, one line each (paths relative to the repository). Temp files of an
/// interrupted write are not foreign (the next open removes them).
pub(crate) fn foreign_entries(root: Files<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut listing =
        |rel: &str, f: &mut dyn FnMut(&str, Option<bool>) -> bool| match root.entries(rel) {
            Ok(list) => {
                for (name, is_dir) in list {
                    if !is_temp(&name) && !f(&name, is_dir) {
                        let path = if rel.is_empty() {
                            name
                        } else {
                            format!("{rel}/{name}")
                        };
                        out.push(foreign(&path, is_dir));
                    }
                }
            }
            Err(e) => out.push(format!("cannot list {rel:?} in the repository folder: {e}")),
        };
    let mut pack_dirs = Vec::new();
    // A known folder or file; with no type known, a known name.
    let folder = |d: Option<bool>| d != Some(false);
    let file = |d: Option<bool>| d != Some(true);
    listing("", &mut |name, is_dir| {
        ROOT_ENTRIES
            .iter()
            .any(|&(n, d)| n == name && if d { folder(is_dir) } else { file(is_dir) })
    });
    listing(layout::PACKS, &mut |name, is_dir| {
        let ok = folder(is_dir) && is_hex(name, 2);
        if ok {
            pack_dirs.push(name.to_string());
        }
        ok
    });
    for dir in pack_dirs {
        listing(&layout::pack_dir(&dir), &mut |name, is_dir| {
            file(is_dir) && is_hex(name, 64) && name.starts_with(&dir)
        });
    }
    listing(layout::SNAPSHOTS, &mut |name, is_dir| {
        file(is_dir) && is_hex(name, 64)
    });
    listing(layout::KEYS, &mut |name, is_dir| {
        file(is_dir) && super::keys::is_key_id(name)
    });
    listing(layout::CHANGES, &mut |name, is_dir| {
        file(is_dir) && is_hex(name, 64)
    });
    listing(layout::LOCKS, &mut |name, is_dir| {
        file(is_dir) && is_hex(name, 32)
    });
    listing(layout::CHAIN, &mut |name, is_dir| {
        file(is_dir) && is_hex(name, 64)
    });
    out
}

/// Problems of the small files: the config, every key file, `retention`,
/// `status` and every change summary. With `cipher` (an opened repository)
/// each is opened and decoded; without it, only the envelope is checked
/// (and key files, which are never sealed, are decoded in full).
pub(crate) fn small_file_problems(root: Files<'_>, cipher: Option<&Cipher>) -> Vec<String> {
    let mut out = Vec::new();
    let read = |rel: &str| root.read(rel);
    // config: must exist.
    match read(layout::CONFIG) {
        Ok(bytes) => {
            if let Err(e) = check_small::<format::Config>(&bytes, "", cipher) {
                out.push(format!("config is damaged: {e}"));
            }
        }
        Err(e) => out.push(format!("config cannot be read: {e}")),
    }
    for (name, is_dir) in root.entries(layout::KEYS).unwrap_or_default() {
        if is_dir == Some(true) || is_temp(&name) || !super::keys::is_key_id(&name) {
            continue;
        }
        let rel = layout::key(&name);
        match read(&rel) {
            Ok(bytes) => {
                if let Err(e) = super::keys::read_key_file(&name, &bytes) {
                    out.push(format!("key file {rel}: {e}"));
                }
            }
            Err(e) => out.push(format!("key file {rel} cannot be read: {e}")),
        }
    }
    type Check = fn(&[u8], Option<&Cipher>) -> Result<(), format::DecodeError>;
    let optional: [(&str, Check, &str); 2] = [
        (
            layout::RETENTION,
            |b, c| check_small::<format::RetentionSettings>(b, "", c),
            "set the retention rules again",
        ),
        (
            layout::STATUS,
            |b, c| check_small::<format::StatusRecord>(b, "", c),
            "it only records the last failure: delete it",
        ),
    ];
    for (name, check, fix) in optional {
        let bytes = match read(name) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.push(format!("{name} cannot be read: {e}"));
                continue;
            }
        };
        let decoded = check(&bytes, cipher);
        if let Err(e) = decoded {
            out.push(format!("{name} is damaged: {e}; {fix}"));
        }
    }
    for (name, is_dir) in root.entries(layout::CHANGES).unwrap_or_default() {
        if is_dir == Some(true) || is_temp(&name) || !is_hex(&name, 64) {
            continue;
        }
        let rel = format!("{}/{name}", layout::CHANGES);
        let result = read(&rel).map_err(|e| e.to_string()).and_then(|bytes| {
            check_small::<format::ChangeSummary>(&bytes, &name, cipher).map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            out.push(format!(
                "change summary {rel} is damaged: {e}; it is a cache: delete it"
            ));
        }
    }
    out
}

/// Checks one small file: the envelope always, then (with a cipher) opens and
/// decodes the record; without one, decodes it only when it is not sealed.
fn check_small<T: RepoFile>(
    bytes: &[u8],
    name: &str,
    cipher: Option<&Cipher>,
) -> Result<(), format::DecodeError> {
    match cipher {
        Some(c) => decode_file::<T>(c, name, bytes).map(|_| ()),
        None => check_envelope::<T>(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_entries_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in ["packs/ab", "snapshots", "keys", "junk"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::write(root.join("config"), b"x").expect("w");
        std::fs::write(root.join("packs/ab").join("ab".repeat(32)), b"x").expect("w");
        std::fs::write(root.join("packs/ab").join("cd".repeat(32)), b"x").expect("w");
        std::fs::write(root.join("packs/x.db"), b"x").expect("w");
        std::fs::write(root.join("snapshots/.tmp-1"), b"x").expect("w");
        let found = foreign_entries(Files::Local(root));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("folder junk"), "{found:?}");
        assert!(found[1].contains("file packs/x.db"), "{found:?}");
        assert!(found[2].contains(&format!("packs/ab/{}", "cd".repeat(32))));
    }
}
