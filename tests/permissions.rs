//! Invariant: a repository is private: every folder is 0700 and every file 0600
//! (config, lock, index, packs, snapshots), after `init`, a snapshot, a restore
//! with a pre-restore snapshot, and an index rebuild, whatever the umask lets
//! through by default.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn assert_private(repo: &Path, when: &str) {
    let mut stack = vec![repo.to_path_buf()];
    let mut seen_files = 0;
    while let Some(dir) = stack.pop() {
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(
            mode,
            0o700,
            "{when}: folder {} has mode {mode:o}",
            dir.display()
        );
        for e in std::fs::read_dir(&dir).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                seen_files += 1;
                let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
                assert_eq!(
                    mode,
                    0o600,
                    "{when}: file {} has mode {mode:o}",
                    p.display()
                );
            }
        }
    }
    assert!(seen_files > 0, "{when}: no files checked");
}

#[test]
fn repository_folders_are_0700_and_files_0600() {
    let t = TestDir::new("perms");
    t.init();
    assert_private(&t.repo(), "after init");
    let db = t.path("lumina.db");
    create_lumina(&db, 500, 1);
    let id = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    assert_private(&t.repo(), "after a snapshot");
    assert!(t.repo().join("index.redb").exists());
    assert!(t.repo().join("lock").exists());
    assert!(!pack_files(&t.repo()).is_empty());

    let target = t.path("target.db");
    create_lumina(&target, 100, 2);
    t.lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .ok();
    assert_private(&t.repo(), "after a restore");
    std::fs::remove_file(t.repo().join("index.redb")).expect("rm index");
    t.lb().args(["snapshots"]).ok();
    assert_private(&t.repo(), "after the index was recreated on open");
    t.lb().args(["repair", "index"]).ok();
    assert_private(&t.repo(), "after repair index");
}
