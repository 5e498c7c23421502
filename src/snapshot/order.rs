//! The order of a database's history: newest means last in the chain of
//! snapshots, not latest by wall-clock time. A clock that went back (NTP, a
//! wrong RTC, a restored VM) gives a snapshot an earlier time than its parent;
//! ordering by time would then make its parent `latest` and let `forget
//! --keep-last 1` delete the only copy of the newest state.
//!
//! A snapshot's place in its database's history is, in this order:
//! 1. after its parent (when the parent is still in the repository);
//! 2. by the record's `seq` (one more than the highest of its database's when
//!    it was taken; records without one count as 0, so older records come first);
//! 3. by time, then by id (a stable order for records without `seq`).
//!
//! Invariants: every input snapshot is output exactly once; a parent present
//! in the input comes before its children; a database's history does not depend
//! on the input order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use super::{Head, Snapshot};
use crate::id::SnapshotId;

type Key = (u64, i64, SnapshotId);

/// What places a snapshot in its database's history: a full record or only
/// its [`Head`].
trait Place {
    fn id(&self) -> SnapshotId;
    fn parent(&self) -> Option<SnapshotId>;
    fn key(&self) -> Key;
}

impl Place for Snapshot {
    fn id(&self) -> SnapshotId {
        self.id
    }
    fn parent(&self) -> Option<SnapshotId> {
        self.record.parent
    }
    fn key(&self) -> Key {
        (self.record.seq.unwrap_or(0), self.record.time_ns, self.id)
    }
}

impl Place for Head {
    fn id(&self) -> SnapshotId {
        self.id
    }
    fn parent(&self) -> Option<SnapshotId> {
        self.parent
    }
    fn key(&self) -> Key {
        (self.seq.unwrap_or(0), self.time_ns, self.id)
    }
}

fn key<T: Place>(s: &T) -> Key {
    s.key()
}

/// The newest of one database's snapshots (the last in its history, as
/// [`order`] places it) and the `seq` a new snapshot of it gets (one more than
/// the highest), from their heads alone: a new snapshot needs no more of the
/// history than this.
pub fn newest(group: Vec<Head>) -> (Option<Head>, u64) {
    let seq = 1 + group.iter().filter_map(|h| h.seq).max().unwrap_or(0);
    (history(group).pop(), seq)
}

/// Orders snapshots oldest first: overall by time, and within each database by
/// its history (the database's snapshots fill the places its snapshots take in
/// the time order, in history order).
pub fn order(mut list: Vec<Snapshot>) -> Vec<Snapshot> {
    list.sort_by_key(|s| (s.record.time_ns, s.id));
    let mut places: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in list.iter().enumerate() {
        places.entry(s.record.source.clone()).or_default().push(i);
    }
    let mut slots: Vec<Option<Snapshot>> = list.into_iter().map(Some).collect();
    for idx in places.values() {
        let group: Vec<Snapshot> = idx
            .iter()
            .map(|&i| slots[i].take().expect("each place is taken once"))
            .collect();
        for (&i, s) in idx.iter().zip(history(group)) {
            slots[i] = Some(s);
        }
    }
    slots.into_iter().flatten().collect()
}

/// One database's snapshots in history order (oldest first).
fn history<T: Place>(group: Vec<T>) -> Vec<T> {
    let ids: HashSet<SnapshotId> = group.iter().map(|s| s.id()).collect();
    let mut children: HashMap<SnapshotId, Vec<usize>> = HashMap::new();
    let mut ready = BinaryHeap::new();
    for (i, s) in group.iter().enumerate() {
        match s.parent().filter(|p| ids.contains(p) && *p != s.id()) {
            Some(p) => children.entry(p).or_default().push(i),
            None => ready.push(Reverse((key(s), i))),
        }
    }
    let mut done = vec![false; group.len()];
    let mut out = Vec::with_capacity(group.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        done[i] = true;
        out.push(i);
        for &c in children
            .get(&group[i].id())
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if !done[c] {
                ready.push(Reverse((key(&group[c]), c)));
            }
        }
    }
    // A parent cycle cannot come from snapshot ids (each names a record that
    // existed before); forged records in one are placed by their keys.
    let mut rest: Vec<usize> = (0..group.len()).filter(|i| !done[*i]).collect();
    rest.sort_by_key(|&i| key(&group[i]));
    out.extend(rest);
    let mut slots: Vec<Option<T>> = group.into_iter().map(Some).collect();
    out.into_iter()
        .map(|i| slots[i].take().expect("each index once"))
        .collect()
}

/// Snapshots whose time is earlier than the one before them in their
/// database's history (the clock went back between them). `list` in history
/// order, as [`Repository::list`](crate::Repository::list) gives it.
pub fn clock_went_back(list: &[Snapshot]) -> HashSet<SnapshotId> {
    let mut prev: HashMap<&str, i64> = HashMap::new();
    let mut out = HashSet::new();
    for s in list {
        if let Some(t) = prev.insert(s.record.source.as_str(), s.record.time_ns) {
            if s.record.time_ns < t {
                out.insert(s.id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{SnapshotRecord, SqliteInfo};

    fn snap(n: u8, db: &str, t: i64, parent: Option<u8>, seq: Option<u64>) -> Snapshot {
        Snapshot {
            id: SnapshotId([n; 32]),
            record: SnapshotRecord {
                time_ns: t,
                hostname: String::new(),
                source: db.into(),
                parent: parent.map(|p| SnapshotId([p; 32])),
                tags: vec![],
                note: String::new(),
                files: vec![],
                total_bytes: 0,
                new_bytes: 0,
                sqlite: SqliteInfo::default(),
                warnings: vec![],
                seq,
                source_state: None,
                chain: None,
                origin: None,
            },
        }
    }

    fn head(s: &Snapshot) -> Head {
        Head {
            id: s.id,
            time_ns: s.record.time_ns,
            source: s.record.source.clone(),
            parent: s.record.parent,
            seq: s.record.seq,
            chain: s.record.chain.clone(),
        }
    }

    /// `newest` from the heads agrees with the last of the database in the
    /// full `order` (the parent a new snapshot gets), and with its seq rule.
    #[test]
    fn newest_from_heads_is_the_last_of_the_full_order() {
        let cases = vec![
            vec![
                snap(2, "/a", 50, Some(1), Some(2)),
                snap(1, "/a", 100, None, Some(1)),
            ],
            vec![
                snap(2, "/a", 50, Some(1), None),
                snap(1, "/a", 100, None, None),
            ],
            vec![
                snap(3, "/a", 50, Some(9), Some(2)),
                snap(4, "/a", 100, None, Some(1)),
            ],
            vec![
                snap(1, "/a", 100, None, Some(1)),
                snap(2, "/b", 70, None, Some(1)),
                snap(3, "/a", 50, Some(1), Some(2)),
                snap(4, "/b", 80, Some(2), Some(2)),
            ],
            vec![
                snap(1, "/a", 300, None, Some(1)),
                snap(2, "/a", 400, None, None),
                snap(5, "/a", 10, Some(6), None),
                snap(6, "/a", 20, Some(5), None),
            ],
        ];
        for list in cases {
            for db in ["/a", "/b", "/c"] {
                let full = order(list.clone());
                let last = full.iter().rfind(|s| s.record.source == db);
                let want_seq = 1 + full
                    .iter()
                    .filter(|s| s.record.source == db)
                    .filter_map(|s| s.record.seq)
                    .max()
                    .unwrap_or(0);
                for input in [list.clone(), list.iter().rev().cloned().collect()] {
                    let heads = input
                        .iter()
                        .filter(|s| s.record.source == db)
                        .map(head)
                        .collect();
                    let (newest, seq) = newest(heads);
                    assert_eq!(newest.map(|h| h.id), last.map(|s| s.id), "{db}");
                    assert_eq!(seq, want_seq, "{db}");
                }
            }
        }
    }

    fn ids(list: &[Snapshot]) -> Vec<u8> {
        list.iter().map(|s| s.id.0[0]).collect()
    }

    /// Issue #8 item 27: a snapshot taken after the clock went back is newer
    /// than its parent, by seq and by the parent link.
    #[test]
    fn clock_back_follows_the_chain() {
        // 1 at t=100, 2 at t=50 (clock went back), child of 1.
        for seq in [true, false] {
            let s = |n, t, p, q| snap(n, "/a", t, p, seq.then_some(q));
            let list = vec![s(2, 50, Some(1), 2), s(1, 100, None, 1)];
            let o = order(list.clone());
            assert_eq!(ids(&o), vec![1, 2], "seq {seq}");
            let mut rev = list;
            rev.reverse();
            assert_eq!(ids(&order(rev)), vec![1, 2]);
            assert_eq!(
                clock_went_back(&o).into_iter().collect::<Vec<_>>(),
                vec![SnapshotId([2; 32])]
            );
        }
    }

    /// With the parent gone (forgotten, or re-tagged: a new id), seq still orders.
    #[test]
    fn seq_orders_without_the_parent() {
        let list = vec![
            snap(3, "/a", 50, Some(9), Some(2)),
            snap(4, "/a", 100, None, Some(1)),
        ];
        assert_eq!(ids(&order(list)), vec![4, 3]);
    }

    #[test]
    fn databases_keep_their_places_in_time_order() {
        let list = vec![
            snap(1, "/a", 100, None, Some(1)),
            snap(2, "/b", 70, None, Some(1)),
            snap(3, "/a", 50, Some(1), Some(2)),
            snap(4, "/b", 80, Some(2), Some(2)),
        ];
        // Time order: 3(50) 2(70) 4(80) 1(100); /a's places 0 and 3 hold 1, 3.
        assert_eq!(ids(&order(list)), vec![1, 2, 4, 3]);
    }

    #[test]
    fn legacy_records_come_first_and_cycles_terminate() {
        let list = vec![
            snap(1, "/a", 300, None, Some(1)),
            snap(2, "/a", 400, None, None),
            snap(5, "/a", 10, Some(6), None),
            snap(6, "/a", 20, Some(5), None),
        ];
        let o = order(list);
        assert_eq!(o.len(), 4);
        assert_eq!(ids(&o), vec![2, 1, 5, 6]);
    }
}
