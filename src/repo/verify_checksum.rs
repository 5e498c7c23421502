//! `verify`'s check of every file's recorded checksum against its tree
//! (format 2: the chunk-list digest, store-format.md 4.2), from the tree's
//! nodes alone: no data chunk is read. Snapshots share most files, so each
//! distinct file version (root, size, checksum) is walked once and its outcome
//! reported for every snapshot that names it; decoded tree nodes are kept (up to
//! a bound) because versions of a file share most of their nodes.
//!
//! Format 1's checksum is the BLAKE3 of the file's bytes: checking it means
//! reading every distinct version of every file in full (the cost of restoring
//! each one), far more than `--read-data` reads (each stored chunk once), so
//! verify leaves it to restore, which always checks it.

use std::collections::HashMap;

use super::Problem;
use crate::error::Result;
use crate::format::{ChecksumKind, FileEntry, TreeNode};
use crate::id::{ChunkId, SnapshotId};
use crate::store::ChunkReader;

/// Tree entries (40 bytes each) kept in decoded nodes before the cache is
/// emptied: about 40 MiB.
const NODE_CACHE_ENTRIES: usize = 1 << 20;

/// One version of a file: root, size, recorded checksum.
type FileKey = (ChunkId, u64, [u8; 32]);

/// What the walk of one file version found.
#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    /// The leaves add up to this many bytes, not the recorded size.
    Size(u64),
    /// The leaves' digest is this, not the recorded checksum.
    Digest([u8; 32]),
}

/// Checks files' recorded checksums against their trees, each version once.
#[derive(Debug)]
pub(super) struct ChecksumCheck {
    kind: ChecksumKind,
    outcomes: HashMap<FileKey, Outcome>,
    nodes: HashMap<ChunkId, TreeNode>,
    cached_entries: usize,
}

impl ChecksumCheck {
    /// A check for a repository whose checksums are of `kind`.
    pub(super) fn new(kind: ChecksumKind) -> Self {
        ChecksumCheck {
            kind,
            outcomes: HashMap::new(),
            nodes: HashMap::new(),
            cached_entries: 0,
        }
    }

    /// The problem with `file` of `snapshot`, if any: its tree's leaves do not
    /// add up to its size or their digest is not its checksum. Call it only for
    /// a file whose structure checked (every node readable, size right). Format
    /// 1 is not checked here (see the module's comment). An error is a failure
    /// to read a node, for the caller to report.
    pub(super) fn check(
        &mut self,
        reader: &mut ChunkReader<'_>,
        snapshot: SnapshotId,
        file: &FileEntry,
    ) -> Result<Option<Problem>> {
        if self.kind != ChecksumKind::ChunkList {
            return Ok(None);
        }
        let key = (file.root, file.size, file.blake3);
        let outcome = match self.outcomes.get(&key) {
            Some(o) => o.clone(),
            None => {
                let (size, digest) = self.walk(reader, file.root)?;
                let o = if size != file.size {
                    Outcome::Size(size)
                } else if digest != file.blake3 {
                    Outcome::Digest(digest)
                } else {
                    Outcome::Ok
                };
                self.outcomes.insert(key, o.clone());
                o
            }
        };
        Ok(match outcome {
            Outcome::Ok => None,
            Outcome::Size(actual) => Some(Problem::FileSize {
                snapshot,
                file: file.name.clone(),
                actual,
                expected: file.size,
            }),
            Outcome::Digest(actual) => Some(Problem::FileChecksum {
                snapshot,
                file: file.name.clone(),
                actual: hex::encode(actual),
                expected: hex::encode(file.blake3),
            }),
        })
    }

    /// The total length and chunk-list digest of the leaves under `root`,
    /// through the node cache.
    fn walk(&mut self, reader: &mut ChunkReader<'_>, root: ChunkId) -> Result<(u64, [u8; 32])> {
        let nodes = &mut self.nodes;
        let cached = &mut self.cached_entries;
        let mut get = |id: &ChunkId| -> Result<TreeNode> {
            if let Some(n) = nodes.get(id) {
                return Ok(n.clone());
            }
            let node = reader.node(id)?;
            if *cached + node.entries.len() > NODE_CACHE_ENTRIES {
                nodes.clear();
                *cached = 0;
            }
            *cached += node.entries.len();
            nodes.insert(*id, node.clone());
            Ok(node)
        };
        crate::store::tree::size_and_list_digest(root, &mut get)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::crypto::KdfParams;
    use crate::format::{FileKind, SnapshotRecord};
    use crate::progress::NoProgress;
    use crate::repo::{InitOptions, OpenOptions, Problem, Repository, SnapshotOptions};
    use crate::snapshot::{encode_record, snapshot_path};
    use crate::SnapshotId;

    /// A format-2 repository (encrypted with a weak key if `encrypted`) with two
    /// snapshots of a database of a few dozen pages whose second state differs
    /// from the first in content only (same size); returns it and the ids.
    fn repo_with_two(dir: &Path, encrypted: bool) -> (Repository, SnapshotId, SnapshotId) {
        let db = dir.join("app.db");
        let c = rusqlite::Connection::open(&db).expect("db");
        c.execute_batch(
            "PRAGMA page_size = 1024; CREATE TABLE t(x TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
             INSERT INTO t SELECT printf('%04d-%s', i, hex(randomblob(200))) FROM n;",
        )
        .expect("fill");
        let root = dir.join("repo");
        let mut init = InitOptions::default();
        let mut open = OpenOptions::default();
        if encrypted {
            init = init.with_passphrase("right");
            init.kdf = KdfParams {
                m_cost_kib: 8 * 1024,
                t_cost: 1,
                p_cost: 1,
            };
            open = open.with_passphrase("right");
        }
        Repository::init_with(&root, &init).expect("init");
        let mut repo = Repository::open(&root, &open).expect("open");
        let opts = SnapshotOptions {
            no_exports: true,
            ..Default::default()
        };
        let a = repo.snapshot(&db, &opts, &NoProgress).expect("snapshot 1");
        c.execute_batch("UPDATE t SET x = printf('%04d-%s', rowid, hex(randomblob(200)));")
            .expect("update");
        drop(c);
        let b = repo.snapshot(&db, &opts, &NoProgress).expect("snapshot 2");
        let (ia, ib) = (
            a.snapshot.image().expect("image"),
            b.snapshot.image().expect("image"),
        );
        assert_eq!(ia.size, ib.size, "same size, other content");
        assert_ne!(ia.root, ib.root);
        (repo, a.snapshot.id, b.snapshot.id)
    }

    /// Writes `record` as a new snapshot file (the original stays); returns its id.
    fn write_record(repo: &Repository, record: &SnapshotRecord) -> SnapshotId {
        let (id, file) = encode_record(record, repo.store.cipher(), repo.store.format());
        repo.backend
            .write_atomic(&snapshot_path(&id), &file)
            .expect("write record");
        id
    }

    fn image_mut(record: &mut SnapshotRecord) -> &mut crate::format::FileEntry {
        record
            .files
            .iter_mut()
            .find(|f| f.kind == FileKind::Image)
            .expect("image")
    }

    fn checksum_problems(repo: &Repository) -> Vec<Problem> {
        let report = repo.verify(false, &NoProgress).expect("verify runs");
        assert_eq!(report.ok, report.problems.is_empty());
        report.problems
    }

    /// The only problem is a checksum mismatch of `app.db` in `snap`, named in
    /// its text.
    fn assert_named(problems: &[Problem], snap: &SnapshotId) {
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(matches!(p, Problem::FileChecksum { .. }), "{p:?}");
        assert_eq!(p.snapshot(), Some(snap));
        let line = p.to_string();
        assert!(
            line.contains(&snap.short()) && line.contains("app.db") && line.contains("checksum"),
            "{line}"
        );
    }

    #[test]
    fn clean_repositories_verify_clean() {
        for encrypted in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (repo, _, _) = repo_with_two(dir.path(), encrypted);
            assert_eq!(checksum_problems(&repo), vec![], "encrypted: {encrypted}");
            let report = repo.verify(true, &NoProgress).expect("verify");
            assert!(report.ok, "{:?}", report.problems);
        }
    }

    /// A record whose file checksum was changed, or whose file names the tree
    /// of another version of the file (same size, every chunk intact): both
    /// passed verify before; now each is a problem naming the snapshot and file.
    #[test]
    fn an_altered_checksum_or_a_borrowed_tree_is_named() {
        for encrypted in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (repo, a, b) = repo_with_two(dir.path(), encrypted);

            let mut rec = repo.read_record(&b).expect("record");
            image_mut(&mut rec).blake3[0] ^= 1;
            let altered = write_record(&repo, &rec);
            assert_named(&checksum_problems(&repo), &altered);
            repo.backend
                .remove(&snapshot_path(&altered))
                .expect("remove");

            let first_root = image_mut(&mut repo.read_record(&a).expect("record")).root;
            let mut rec = repo.read_record(&b).expect("record");
            image_mut(&mut rec).root = first_root;
            let borrowed = write_record(&repo, &rec);
            assert_named(&checksum_problems(&repo), &borrowed);
            // With read-data too: every chunk is intact, only the digest tells.
            let report = repo.verify(true, &NoProgress).expect("verify");
            assert_named(&report.problems, &borrowed);
        }
    }

    use crate::repo::restore::tests::{leaves, store_tree};

    /// A tree whose leaves were swapped (same chunks, same size, every node
    /// valid), named by a record of every snapshot: each snapshot is reported,
    /// though the tree is walked once.
    #[test]
    fn a_reordered_tree_is_reported_in_every_snapshot_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (repo, a, b) = repo_with_two(dir.path(), false);
        let image = image_mut(&mut repo.read_record(&b).expect("record")).clone();
        let mut list = leaves(&repo, image.root);
        let (i, j) = (2, 5);
        assert_ne!(list[i].id, list[j].id, "distinct pages");
        list.swap(i, j);
        let root = store_tree(&repo, &list);
        let mut ids = Vec::new();
        for (note, from) in [("x", a), ("y", b)] {
            let mut rec = repo.read_record(&from).expect("record");
            rec.note = note.into();
            *image_mut(&mut rec) = crate::format::FileEntry {
                root,
                ..image.clone()
            };
            ids.push(write_record(&repo, &rec));
        }
        let problems = checksum_problems(&repo);
        assert_eq!(problems.len(), 2, "{problems:?}");
        for id in &ids {
            assert!(
                problems
                    .iter()
                    .any(|p| p.snapshot() == Some(id) && matches!(p, Problem::FileChecksum { .. })),
                "{problems:?}"
            );
        }
    }
}
