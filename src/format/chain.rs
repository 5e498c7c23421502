//! The records of the history chain (store-format.md section 4.10): the link
//! every chained record carries ([`ChainLink`]) and the chain events stored in
//! `chain/<id>` ([`ChainEvent`]: tag and note annotations, deletions).
//!
//! Pure encoding and range checks; what a chain means and how it is verified
//! is `crate::chain`. Every decode validates what it returns.

use serde::{Deserialize, Serialize};

use super::DecodeError;
use crate::id::SnapshotId;

/// Most snapshot ids a base list or a deletion may name (a bound for decoders).
pub const MAX_LISTED: usize = 1 << 20;

/// The link a chained record carries (field `chain` of snapshot records and
/// chain events; a MessagePack map).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// Position in the repository's chain, from 1.
    pub n: u64,
    /// Id of the record at position `n - 1` (a snapshot or a chain event);
    /// nil exactly when `n` is 1.
    pub prev: Option<SnapshotId>,
    /// Only at position 1: the snapshot records present without a link when
    /// the chain began (written before it), sorted ascending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<Vec<SnapshotId>>,
}

impl ChainLink {
    /// Checks the invariants of a link.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let bad = |why: &str| Err(DecodeError::Invalid(format!("chain link: {why}")));
        if self.n == 0 {
            return bad("position 0");
        }
        if (self.n == 1) != self.prev.is_none() {
            return bad("a previous record is named exactly when the position is above 1");
        }
        match &self.base {
            Some(_) if self.n != 1 => bad("a base list after position 1"),
            None if self.n == 1 => bad("position 1 without a base list"),
            Some(b) if b.len() > MAX_LISTED => bad("base list too long"),
            Some(b) if b.windows(2).any(|w| w[0] >= w[1]) => bad("base list not sorted"),
            _ => Ok(()),
        }
    }
}

/// What a chain event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// New tags and note of a snapshot (`tag`).
    Annotation,
    /// Snapshots removed (`forget`, `repair snapshots`).
    Deletion,
}

/// A snapshot a deletion removed, with the link its record carried (so the
/// chain can be followed through the gap its file leaves).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedEntry {
    /// The removed snapshot.
    pub id: SnapshotId,
    /// Its record's link; nil for a record written before the chain began.
    pub chain: Option<ChainLink>,
}

/// A chain event (`chain/<id>`, kind 9, a MessagePack map). Its id is the
/// (keyed) BLAKE3 of its body, as a snapshot record's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEvent {
    /// Its place in the chain.
    pub chain: ChainLink,
    /// When it was written, unix nanoseconds (UTC).
    pub time_ns: i64,
    /// Host that wrote it.
    pub hostname: String,
    /// What it records.
    pub event: EventKind,
    /// Annotation: the snapshot annotated.
    #[serde(default)]
    pub target: Option<SnapshotId>,
    /// Annotation: the snapshot's tags after the edit (all of them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Annotation: the snapshot's note after the edit.
    #[serde(default)]
    pub note: String,
    /// Deletion: the snapshots removed.
    #[serde(default)]
    pub removed: Vec<RemovedEntry>,
    /// Deletion: why (the policy, `forget <ids>`, `repair snapshots`).
    #[serde(default)]
    pub policy: String,
}

impl ChainEvent {
    /// Checks invariants after decoding.
    pub fn validate(&self) -> Result<(), DecodeError> {
        self.chain.validate()?;
        let bad = |why: &str| Err(DecodeError::Invalid(format!("chain event: {why}")));
        match self.event {
            EventKind::Annotation if self.target.is_none() => bad("annotation without a target"),
            EventKind::Annotation if !self.removed.is_empty() => bad("annotation removing"),
            EventKind::Deletion if self.target.is_some() => bad("deletion with a target"),
            EventKind::Deletion if self.removed.is_empty() => bad("deletion removing nothing"),
            EventKind::Deletion if self.removed.len() > MAX_LISTED => bad("too many removed"),
            _ => {
                for r in &self.removed {
                    if let Some(link) = &r.chain {
                        link.validate()?;
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{decode, encode_named};
    use proptest::prelude::*;

    fn id(b: u8) -> SnapshotId {
        SnapshotId([b; 32])
    }

    #[test]
    fn link_rules() {
        let ok = [
            ChainLink {
                n: 1,
                prev: None,
                base: Some(vec![]),
            },
            ChainLink {
                n: 1,
                prev: None,
                base: Some(vec![id(1), id(2)]),
            },
            ChainLink {
                n: 2,
                prev: Some(id(1)),
                base: None,
            },
        ];
        for l in ok {
            l.validate().expect("valid");
        }
        let bad = [
            ChainLink {
                n: 0,
                prev: None,
                base: Some(vec![]),
            },
            ChainLink {
                n: 1,
                prev: Some(id(1)),
                base: Some(vec![]),
            },
            ChainLink {
                n: 2,
                prev: None,
                base: None,
            },
            ChainLink {
                n: 2,
                prev: Some(id(1)),
                base: Some(vec![]),
            },
            ChainLink {
                n: 1,
                prev: None,
                base: None,
            },
            ChainLink {
                n: 1,
                prev: None,
                base: Some(vec![id(2), id(1)]),
            },
        ];
        for l in bad {
            assert!(l.validate().is_err(), "{l:?}");
        }
    }

    fn arb_id() -> impl Strategy<Value = SnapshotId> {
        any::<[u8; 32]>().prop_map(SnapshotId)
    }

    fn arb_link() -> impl Strategy<Value = ChainLink> {
        (
            1u64..5,
            arb_id(),
            proptest::collection::btree_set(arb_id(), 0..4),
        )
            .prop_map(|(n, prev, base)| ChainLink {
                n,
                prev: (n > 1).then_some(prev),
                base: (n == 1).then(|| base.into_iter().collect()),
            })
    }

    fn arb_event() -> impl Strategy<Value = ChainEvent> {
        (
            arb_link(),
            any::<i64>(),
            any::<bool>(),
            arb_id(),
            proptest::collection::vec("[a-z]{0,6}", 0..3),
            proptest::collection::vec((arb_id(), proptest::option::of(arb_link())), 1..3),
        )
            .prop_map(|(chain, time_ns, annotation, target, tags, removed)| {
                let removed = removed
                    .into_iter()
                    .map(|(id, chain)| RemovedEntry { id, chain })
                    .collect();
                if annotation {
                    ChainEvent {
                        chain,
                        time_ns,
                        hostname: "h".into(),
                        event: EventKind::Annotation,
                        target: Some(target),
                        tags,
                        note: "n".into(),
                        removed: vec![],
                        policy: String::new(),
                    }
                } else {
                    ChainEvent {
                        chain,
                        time_ns,
                        hostname: "h".into(),
                        event: EventKind::Deletion,
                        target: None,
                        tags: vec![],
                        note: String::new(),
                        removed,
                        policy: "keep-last 1".into(),
                    }
                }
            })
    }

    /// Decodes an event body as readers do: decode, then validate.
    fn read(bytes: &[u8]) -> Result<ChainEvent, DecodeError> {
        let e: ChainEvent = decode(bytes)?;
        e.validate()?;
        Ok(e)
    }

    proptest! {
        #[test]
        fn events_round_trip(e in arb_event()) {
            let bytes = encode_named(&e);
            prop_assert_eq!(read(&bytes).expect("decodes"), e);
        }

        #[test]
        fn event_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read(&bytes);
        }

        #[test]
        fn damaged_events_never_panic(e in arb_event(), at in any::<usize>(), to in any::<u8>()) {
            let mut bytes = encode_named(&e);
            let i = at % bytes.len();
            bytes[i] = to;
            let _ = read(&bytes);
            bytes.truncate(i);
            let _ = read(&bytes);
        }
    }
}
