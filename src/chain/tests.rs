//! The chain's verdicts over hand-built histories: each tampering case is
//! named, legitimate deletions and annotations are not problems.

use super::*;

fn id(b: u8) -> SnapshotId {
    SnapshotId([b; 32])
}

fn link(n: u64, prev: Option<SnapshotId>) -> ChainLink {
    ChainLink {
        n,
        prev,
        base: (n == 1).then(Vec::new),
    }
}

fn snap(b: u8, n: u64, prev: Option<u8>) -> Entry {
    Entry {
        id: id(b),
        link: link(n, prev.map(id)),
        body: Body::Snapshot { parent: None },
    }
}

/// A clean chain of `len` snapshots with ids 1..=len.
fn chain(len: u8) -> Vec<Entry> {
    (1..=len)
        .map(|i| snap(i, u64::from(i), (i > 1).then(|| i - 1)))
        .collect()
}

#[test]
fn clean_chain_trusts_everything() {
    let r = verify(&chain(4), &[]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.head, Some(Head { id: id(4), n: 4 }));
    assert_eq!(r.trusted.len(), 4);
    assert_eq!(r.next_link(&[]), link(5, Some(id(4))));
}

#[test]
fn no_chain_trusts_old_snapshots_and_starts_over_them() {
    let r = verify(&[], &[id(9), id(8)]);
    assert!(r.problems.is_empty() && r.head.is_none());
    assert_eq!(r.trusted.len(), 2);
    let first = r.next_link(&[id(9), id(8)]);
    assert_eq!(first.base, Some(vec![id(8), id(9)]));
    first.validate().expect("valid");
}

#[test]
fn a_deleted_snapshot_is_named() {
    let mut c = chain(4);
    c.remove(1);
    let r = verify(&c, &[]);
    assert_eq!(r.problems, vec![ChainProblem::Missing { id: id(2), n: 2 }]);
    assert!(r.problems.iter().any(ChainProblem::vanished));
    assert!(r.trusted.contains(&id(1)) && r.trusted.contains(&id(4)));
}

#[test]
fn a_deletion_without_the_link_acknowledges_a_vanished_record() {
    let mut c = chain(3);
    c.remove(1);
    c.push(Entry {
        id: id(60),
        link: link(4, Some(id(3))),
        body: Body::Deletion {
            removed: vec![RemovedEntry {
                id: id(2),
                chain: None,
            }],
        },
    });
    let r = verify(&c, &[]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(r.trusted.contains(&id(1)) && !r.problems.iter().any(ChainProblem::vanished));
}

#[test]
fn a_recorded_deletion_is_not_a_problem() {
    let mut c = chain(3);
    c.remove(1);
    c.push(Entry {
        id: id(50),
        link: link(4, Some(id(3))),
        body: Body::Deletion {
            removed: vec![RemovedEntry {
                id: id(2),
                chain: Some(link(2, Some(id(1)))),
            }],
        },
    });
    let r = verify(&c, &[]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(r.removed.contains(&id(2)) && !r.trusted.contains(&id(2)));
    assert_eq!(r.head, Some(Head { id: id(50), n: 4 }));
}

#[test]
fn an_inserted_record_is_named_and_not_trusted() {
    let mut c = chain(3);
    // Hand-made: links to #1 like the real #2 does.
    c.push(snap(77, 2, Some(1)));
    let r = verify(&c, &[]);
    assert!(
        r.problems
            .iter()
            .any(|p| matches!(p, ChainProblem::NotInChain { id: x, n: 2, .. } if *x == id(77))),
        "{:?}",
        r.problems
    );
    assert!(!r.trusted.contains(&id(77)));
    assert!(r.trusted.contains(&id(2)));
}

#[test]
fn another_repositorys_record_in_its_place_is_named() {
    let mut c = chain(3);
    c.remove(1);
    // Replaced by the second record of another repository's chain.
    c.push(snap(88, 2, Some(87)));
    let r = verify(&c, &[]);
    assert_eq!(r.head, Some(Head { id: id(3), n: 3 }));
    assert!(r
        .problems
        .contains(&ChainProblem::Missing { id: id(2), n: 2 }));
    assert!(r
        .problems
        .iter()
        .any(|p| matches!(p, ChainProblem::NotInChain { id: x, .. } if *x == id(88))));
    assert!(!r.trusted.contains(&id(88)));
}

#[test]
fn reordered_records_are_named() {
    // #3 links to #1: its position disagrees with its link.
    let c = vec![snap(1, 1, None), snap(2, 2, Some(1)), snap(3, 3, Some(1))];
    let r = verify(&c, &[]);
    assert!(r.problems.contains(&ChainProblem::OutOfOrder {
        id: id(1),
        expected: 2,
        claimed: 1
    }));
    let mut parent_first = chain(2);
    parent_first[0].body = Body::Snapshot {
        parent: Some(id(2)),
    };
    let r = verify(&parent_first, &[]);
    assert!(r.problems.contains(&ChainProblem::ParentAfter {
        id: id(1),
        parent: id(2)
    }));
}

#[test]
fn base_snapshots_are_checked() {
    let mut c = chain(2);
    c[0].link.base = Some(vec![id(100), id(101)]);
    let r = verify(&c, &[id(100), id(102)]);
    assert!(r.trusted.contains(&id(100)));
    assert!(r
        .problems
        .contains(&ChainProblem::MissingBase { id: id(101) }));
    assert!(r.problems.contains(&ChainProblem::Unlinked { id: id(102) }));
    assert!(!r.trusted.contains(&id(102)));
}

#[test]
fn annotations_on_the_chain_apply_newest_first() {
    let mut c = chain(2);
    for (b, n, tag) in [(20u8, 3u64, "a"), (21, 4, "b")] {
        c.push(Entry {
            id: id(b),
            link: link(n, Some(id(if n == 3 { 2 } else { 20 }))),
            body: Body::Annotation {
                target: id(1),
                tags: vec![tag.into()],
                note: String::new(),
            },
        });
    }
    let r = verify(&c, &[]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.annotations[&id(1)].0, vec!["b".to_string()]);
}

#[test]
fn expect_head_accepts_older_heads_and_refuses_others() {
    let mut r = verify(&chain(3), &[]);
    r.expect_head(&id(2).to_hex()[..12]);
    r.expect_head(&id(3).to_hex());
    assert!(r.problems.is_empty());
    r.expect_head(&id(9).to_hex()[..12]);
    r.expect_head("abc");
    assert_eq!(r.problems.len(), 2);
}

#[test]
fn a_fork_at_the_head_trusts_neither() {
    let mut c = chain(3);
    c.push(snap(99, 3, Some(2)));
    let r = verify(&c, &[]);
    assert!(!r.trusted.contains(&id(3)) && !r.trusted.contains(&id(99)));
    assert!(r.trusted.contains(&id(2)));
    assert!(r
        .problems
        .iter()
        .any(|p| matches!(p, ChainProblem::NotInChain { n: 3, .. })));
}

#[test]
fn a_deleted_record_near_the_head_keeps_the_head() {
    let mut c = chain(10);
    c.remove(8);
    let r = verify(&c, &[]);
    assert_eq!(r.head, Some(Head { id: id(10), n: 10 }));
    assert_eq!(r.problems, vec![ChainProblem::Missing { id: id(9), n: 9 }]);
}
