//! The history chain (store-format.md 4.10): which records verify, what is
//! wrong with the chain, and the link the next record gets.
//!
//! Pure logic over decoded records: it reads no file and knows nothing of the
//! repository's layout. `repo::chain` gathers the [`Entry`] list (snapshot
//! records from the index, chain events from `chain/`) and acts on the
//! [`ChainReport`].
//!
//! Invariants it relies on: every entry's link passed `ChainLink::validate`;
//! a deletion event is always later in the chain than what it removes (it is
//! written after them), so walking from the head backwards meets a deletion
//! before the gaps it explains.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::format::{ChainLink, RemovedEntry};
use crate::id::SnapshotId;

/// What a chained record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A snapshot record, with its `parent`.
    Snapshot {
        /// The record's `parent` (the same database's previous snapshot).
        parent: Option<SnapshotId>,
    },
    /// A tag and note edit of `target`.
    Annotation {
        /// The snapshot annotated.
        target: SnapshotId,
        /// Its tags after the edit.
        tags: Vec<String>,
        /// Its note after the edit.
        note: String,
    },
    /// Snapshots removed by `forget` or `repair snapshots`.
    Deletion {
        /// What was removed, each with the link its record carried.
        removed: Vec<RemovedEntry>,
    },
}

/// One decoded record that carries a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The record's id (its file name).
    pub id: SnapshotId,
    /// Its link.
    pub link: ChainLink,
    /// What it is.
    pub body: Body,
}

/// The newest record of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its id: what a user writes down and later gives to `verify --expect-head`.
    pub id: SnapshotId,
    /// Its position (the chain's length).
    pub n: u64,
}

/// A problem of the chain, naming the record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainProblem {
    /// The record at position `n` is gone and no deletion recorded it.
    Missing {
        /// The id the next record links to.
        id: SnapshotId,
        /// Its position.
        n: u64,
    },
    /// A snapshot written before the chain began (in the base list) is gone
    /// and no deletion recorded it.
    MissingBase {
        /// The snapshot.
        id: SnapshotId,
    },
    /// A record that is not in the chain: it claims position `n`, which
    /// another record holds, or links to a record the chain does not have.
    NotInChain {
        /// The record.
        id: SnapshotId,
        /// The position it claims.
        n: u64,
        /// Whether it is a snapshot record (else a chain event).
        snapshot: bool,
        /// The record the chain has at that position, if known.
        holder: Option<SnapshotId>,
    },
    /// A snapshot record without a link that is not in the base list: added
    /// after the chain began.
    Unlinked {
        /// The snapshot.
        id: SnapshotId,
    },
    /// A record at position `n` is linked to by the record after it but
    /// claims another position: records were reordered.
    OutOfOrder {
        /// The record.
        id: SnapshotId,
        /// The position the chain gives it.
        expected: u64,
        /// The position it claims.
        claimed: u64,
    },
    /// A snapshot comes before its own parent in the chain.
    ParentAfter {
        /// The snapshot.
        id: SnapshotId,
        /// Its parent.
        parent: SnapshotId,
    },
    /// The chain's first record is gone: the snapshots from before the chain
    /// cannot be checked.
    NoBase,
    /// `--expect-head`: the chain does not contain the head recorded earlier.
    HeadNotFound {
        /// What the user gave.
        expected: String,
    },
}

impl ChainProblem {
    /// Whether it means a record vanished without a deletion on the chain
    /// (so `prune` must not free data it might have referenced).
    pub fn vanished(&self) -> bool {
        matches!(
            self,
            ChainProblem::Missing { .. } | ChainProblem::MissingBase { .. } | ChainProblem::NoBase
        )
    }
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::Missing { id, n } => write!(
                f,
                "chain: record #{n} ({}) is missing: a snapshot or chain record was deleted \
                 without `forget`",
                id.to_hex()
            ),
            ChainProblem::MissingBase { id } => write!(
                f,
                "chain: snapshot {} (from before the chain began) is missing and no forget \
                 recorded its removal",
                id.to_hex()
            ),
            ChainProblem::NotInChain {
                id,
                n,
                snapshot,
                holder,
            } => {
                let what = if *snapshot {
                    "snapshot"
                } else {
                    "chain record"
                };
                write!(
                    f,
                    "chain: {what} {} is not in this repository's chain (it claims #{n}{}): \
                     inserted, forged, or replaced by another repository's record",
                    id.to_hex(),
                    match holder {
                        Some(h) => format!(", which {} holds", h.short()),
                        None => String::new(),
                    }
                )
            }
            ChainProblem::Unlinked { id } => write!(
                f,
                "chain: snapshot {} has no chain link and is not among the snapshots the chain \
                 began with: inserted after the chain began",
                id.to_hex()
            ),
            ChainProblem::OutOfOrder {
                id,
                expected,
                claimed,
            } => write!(
                f,
                "chain: record {} is #{expected} of the chain but claims #{claimed}: records \
                 were reordered",
                id.to_hex()
            ),
            ChainProblem::ParentAfter { id, parent } => write!(
                f,
                "chain: snapshot {} comes before its parent {} in the chain: records were \
                 reordered",
                id.to_hex(),
                parent.short()
            ),
            ChainProblem::NoBase => f.write_str(
                "chain: its first record is missing, so the snapshots from before the chain \
                 cannot be checked",
            ),
            ChainProblem::HeadNotFound { expected } => write!(
                f,
                "chain: head {expected} is not in the chain: the repository was rolled back to \
                 an older copy, or its history was rewritten"
            ),
        }
    }
}

/// What the chain says about the repository's snapshots.
#[derive(Debug, Clone, Default)]
pub struct ChainReport {
    /// The newest record (none: no chain yet).
    pub head: Option<Head>,
    /// Every problem found.
    pub problems: Vec<ChainProblem>,
    /// Snapshots whose records verify: on the chain, or in its base list
    /// (or every snapshot, when there is no chain yet).
    pub trusted: HashSet<SnapshotId>,
    /// Every record the chain holds or held (including removed ones): what
    /// `--expect-head` may name.
    pub members: HashSet<SnapshotId>,
    /// Tags and note of each annotated snapshot, from its newest annotation
    /// on the chain.
    pub annotations: HashMap<SnapshotId, (Vec<String>, String)>,
    /// Snapshots a deletion on the chain removed.
    pub removed: HashSet<SnapshotId>,
}

impl ChainReport {
    /// The link the next record gets: after the head, or the chain's first
    /// link over `unlinked` (the snapshot records present without one).
    pub fn next_link(&self, unlinked: &[SnapshotId]) -> ChainLink {
        match self.head {
            Some(h) => ChainLink {
                n: h.n + 1,
                prev: Some(h.id),
                base: None,
            },
            None => {
                let mut base = unlinked.to_vec();
                base.sort_unstable();
                base.dedup();
                ChainLink {
                    n: 1,
                    prev: None,
                    base: Some(base),
                }
            }
        }
    }

    /// Checks that the chain holds `expected` (a full id or a prefix of at
    /// least 8 hex characters), adding a problem if not.
    pub fn expect_head(&mut self, expected: &str) {
        let want = expected.trim().to_ascii_lowercase();
        let found = want.len() >= 8
            && want.len() <= 64
            && want.bytes().all(|b| b.is_ascii_hexdigit())
            && self.members.iter().any(|m| m.to_hex().starts_with(&want));
        if !found {
            self.problems.push(ChainProblem::HeadNotFound {
                expected: expected.trim().to_string(),
            });
        }
    }
}

/// Verifies the chain formed by `entries` (every decodable record with a
/// link) over `unlinked` (the snapshot records present without a link).
pub fn verify(entries: &[Entry], unlinked: &[SnapshotId]) -> ChainReport {
    let mut r = ChainReport::default();
    if entries.is_empty() {
        // No chain yet: every snapshot is as trusted as the format allows.
        r.trusted = unlinked.iter().copied().collect();
        return r;
    }
    let by_id: HashMap<SnapshotId, &Entry> = entries.iter().map(|e| (e.id, e)).collect();
    let mut by_n: BTreeMap<u64, Vec<SnapshotId>> = BTreeMap::new();
    for e in entries {
        by_n.entry(e.link.n).or_default().push(e.id);
    }
    for ids in by_n.values_mut() {
        ids.sort_unstable();
    }
    // Links of removed records, from every deletion (for choosing the head
    // only; the walk below trusts only deletions on the chain).
    let mut any_removed: HashMap<SnapshotId, Option<ChainLink>> = HashMap::new();
    for e in entries {
        if let Body::Deletion { removed } = &e.body {
            for x in removed {
                any_removed.insert(x.id, x.chain.clone());
            }
        }
    }
    let (head, forked) = choose_head(entries, &any_removed);
    r.head = Some(Head {
        id: head.id,
        n: head.link.n,
    });
    let mut removed_links: HashMap<SnapshotId, Option<ChainLink>> = HashMap::new();
    let mut position: HashMap<SnapshotId, u64> = HashMap::new();
    let mut base: Option<Vec<SnapshotId>> = None;
    let mut expected: Option<SnapshotId> = Some(head.id);
    let top = by_n.keys().next_back().copied().unwrap_or(0);
    let mut p = top;
    while p >= 1 {
        let candidates: &[SnapshotId] = by_n.get(&p).map_or(&[], Vec::as_slice);
        let mut current: Option<(SnapshotId, ChainLink)> = None;
        if p > head.link.n {
            // Above the chosen head: nothing here is on the chain.
        } else if let Some(want) = expected {
            if let Some(e) = by_id.get(&want) {
                if e.link.n != p {
                    r.problems.push(ChainProblem::OutOfOrder {
                        id: want,
                        expected: p,
                        claimed: e.link.n,
                    });
                }
                current = Some((want, e.link.clone()));
            } else if let Some(link) = removed_links.get(&want) {
                match link {
                    Some(l) => current = Some((want, l.clone())),
                    // Removed on the record with its link unknown (its file
                    // was unreadable or already gone, `repair snapshots`):
                    // not a problem; the walk goes on across the gap.
                    None => {
                        r.members.insert(want);
                    }
                }
            } else {
                r.problems.push(ChainProblem::Missing { id: want, n: p });
            }
        } else if candidates.len() == 1 {
            // Across a gap: the only record claiming this position.
            let e = by_id[&candidates[0]];
            current = Some((e.id, e.link.clone()));
        }
        let holder = current.as_ref().map(|(id, _)| *id);
        for c in candidates {
            if Some(*c) != holder {
                r.problems.push(ChainProblem::NotInChain {
                    id: *c,
                    n: p,
                    snapshot: matches!(by_id[c].body, Body::Snapshot { .. }),
                    holder,
                });
            }
        }
        match current {
            Some((id, link)) => {
                r.members.insert(id);
                position.insert(id, p);
                if let Some(e) = by_id.get(&id) {
                    match &e.body {
                        Body::Snapshot { .. } => {
                            if !removed_links.contains_key(&id) {
                                r.trusted.insert(id);
                            }
                        }
                        Body::Annotation { target, tags, note } => {
                            // Walking backwards: the first one met is the newest.
                            r.annotations
                                .entry(*target)
                                .or_insert_with(|| (tags.clone(), note.clone()));
                        }
                        Body::Deletion { removed } => {
                            for x in removed {
                                removed_links.insert(x.id, x.chain.clone());
                                r.removed.insert(x.id);
                            }
                        }
                    }
                }
                if p == 1 {
                    base = link.base.clone();
                }
                expected = link.prev;
            }
            None => expected = None,
        }
        p -= 1;
    }
    if forked {
        // Another record claims the head's place with a sound link: which
        // one is genuine cannot be told (the other is reported above).
        r.trusted.remove(&head.id);
    }
    // Snapshots present that were removed by a deletion on the chain (a crash
    // between the deletion record and the file removal) stay listed: they
    // are still whole, and a later forget removes them again.
    for e in entries {
        if let (Body::Snapshot { .. }, true) = (&e.body, r.removed.contains(&e.id)) {
            if r.members.contains(&e.id) {
                r.trusted.insert(e.id);
            }
        }
    }
    // Order: a snapshot comes after its parent when both are on the chain.
    for e in entries {
        if let Body::Snapshot {
            parent: Some(parent),
        } = &e.body
        {
            if let (Some(mine), Some(theirs)) = (position.get(&e.id), position.get(parent)) {
                if theirs >= mine {
                    r.problems.push(ChainProblem::ParentAfter {
                        id: e.id,
                        parent: *parent,
                    });
                }
            }
        }
    }
    // The snapshots from before the chain.
    match base {
        Some(base) => {
            let base_set: HashSet<SnapshotId> = base.iter().copied().collect();
            let present: HashSet<SnapshotId> = unlinked.iter().copied().collect();
            for id in &base {
                r.members.insert(*id);
                if r.removed.contains(id) {
                    continue;
                }
                if present.contains(id) {
                    r.trusted.insert(*id);
                } else {
                    r.problems.push(ChainProblem::MissingBase { id: *id });
                }
            }
            for id in unlinked {
                if !base_set.contains(id) {
                    r.problems.push(ChainProblem::Unlinked { id: *id });
                }
            }
        }
        None => {
            if !r
                .problems
                .iter()
                .any(|p| matches!(p, ChainProblem::Missing { n: 1, .. }))
            {
                r.problems.push(ChainProblem::NoBase);
            }
            for id in unlinked {
                r.problems.push(ChainProblem::Unlinked { id: *id });
            }
        }
    }
    r
}

/// The head: the highest *tip* (a record no other record, present or
/// removed, names as its previous one). A deleted record in the middle leaves
/// the records after it a tip above the ones before it, so the head stays the
/// newest record. Also says whether another tip holds the same position (a
/// fork: which one is genuine cannot be told, so neither is trusted).
fn choose_head<'a>(
    entries: &'a [Entry],
    removed: &HashMap<SnapshotId, Option<ChainLink>>,
) -> (&'a Entry, bool) {
    let named: HashSet<SnapshotId> = entries
        .iter()
        .filter_map(|e| e.link.prev)
        .chain(
            removed
                .values()
                .filter_map(|l| l.as_ref().and_then(|l| l.prev)),
        )
        .collect();
    let mut tips: Vec<&Entry> = entries.iter().filter(|e| !named.contains(&e.id)).collect();
    if tips.is_empty() {
        // Only possible with links that loop (forged): take the highest.
        tips = entries.iter().collect();
    }
    tips.sort_by(|a, b| b.link.n.cmp(&a.link.n).then(a.id.cmp(&b.id)));
    let forked = tips.len() > 1 && tips[1].link.n == tips[0].link.n;
    (tips[0], forked)
}

#[cfg(test)]
mod tests;
