//! The repository's history chain (store-format.md 4.10): gathering the
//! chained records (snapshot records from the index, events from `chain/`),
//! writing chain events, and the link a new record gets.
//!
//! Every writer holds the repository lock, so the head read here is the head
//! the new record follows. The head is computed from the files (the index's
//! snapshot list is reconciled with `snapshots/` on open, and events are read
//! from `chain/` itself), so a crash between writing a record and indexing it
//! leaves a record the next writer links to: the chain neither breaks nor forks.

use serde::Serialize;

use super::Repository;
use crate::chain::{self, Body, ChainReport, Entry};
use crate::error::{Error, Result};
use crate::format::{self, ChainEvent, ChainLink, Cipher, EventKind, FormatVersion, Kind};
use crate::id::SnapshotId;
use crate::layout;
use crate::snapshot::{self, Snapshot};

/// The chain as the repository's files show it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainState {
    /// The verdict of [`chain::verify`].
    pub report: ChainReport,
    /// Snapshot records present without a link.
    pub unlinked: Vec<SnapshotId>,
    /// Chain event files that cannot be read (damaged, or forged: they fail
    /// their name or their seal), with why.
    pub unreadable: Vec<String>,
}

/// The newest record of the chain, for `status` and `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ChainHead {
    /// Its id (hex): a witness to write down and give to `verify --expect-head`.
    pub id: String,
    /// The chain's length (the head's position).
    pub records: u64,
}

impl ChainHead {
    pub(crate) fn new(id: SnapshotId, records: u64) -> Self {
        ChainHead {
            id: id.to_hex(),
            records,
        }
    }

    /// The first 16 hex characters of the id, for people.
    pub fn short(&self) -> &str {
        self.id.get(..16).unwrap_or(&self.id)
    }
}

/// Encodes a chain event into its file bytes; returns its id (BLAKE3 of the
/// body, keyed in an encrypted repository).
pub(crate) fn encode_event(
    event: &ChainEvent,
    cipher: &Cipher,
    version: FormatVersion,
) -> (SnapshotId, Vec<u8>) {
    let body = format::encode_named(event);
    let id = SnapshotId(cipher.id_hasher().chunk_id(&body).0);
    let file = cipher.write_file(version, Kind::ChainEvent, &layout::chain_event(&id), &body);
    (id, file)
}

/// Opens a chain event file (envelope, checksum, seal bound to its path),
/// checks that its body is the one its name says, and decodes it.
pub(crate) fn decode_event_file(
    id: &SnapshotId,
    bytes: &[u8],
    cipher: &Cipher,
) -> Result<ChainEvent> {
    let object = format!("chain record {}", id.short());
    let body = cipher
        .read_file(Kind::ChainEvent, &layout::chain_event(id), bytes)
        .map_err(|e| Error::decode(&object, e))?;
    if cipher.id_hasher().chunk_id(&body).0 != id.0 {
        return Err(Error::corrupt(object, "content does not match its name"));
    }
    let event: ChainEvent = format::decode(&body).map_err(|e| Error::decode(&object, e))?;
    event.validate().map_err(|e| Error::decode(&object, e))?;
    Ok(event)
}

/// A chain event with its id.
type IdEvent = (SnapshotId, ChainEvent);

fn now_ns() -> i64 {
    i64::try_from(crate::testhook::now().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl Repository {
    /// Every chain event file that decodes, and a line for each that does not.
    fn chain_events(&self) -> Result<(Vec<IdEvent>, Vec<String>)> {
        let mut events = Vec::new();
        let mut unreadable = Vec::new();
        for name in self.backend.list(layout::CHAIN)? {
            // Other names are foreign entries, which verify names.
            let Some(id) = SnapshotId::from_hex(&name) else {
                continue;
            };
            let bytes = self.backend.read(&layout::chain_event(&id))?;
            match decode_event_file(&id, &bytes, self.store.cipher()) {
                Ok(e) => events.push((id, e)),
                Err(e) => unreadable.push(format!(
                    "chain: {e} (a forged or damaged chain record; it is ignored)"
                )),
            }
        }
        Ok((events, unreadable))
    }

    /// Reads every chained record and verifies the chain.
    pub(crate) fn chain_state(&self) -> Result<ChainState> {
        let mut entries = Vec::new();
        let mut unlinked = Vec::new();
        for (id, file) in self.index.snapshots()? {
            let head = snapshot::decode_head_file(&id, &file, self.store.cipher())?;
            match head.chain {
                Some(link) => entries.push(Entry {
                    id,
                    link,
                    body: Body::Snapshot {
                        parent: head.parent,
                    },
                }),
                None => unlinked.push(id),
            }
        }
        let (events, unreadable) = self.chain_events()?;
        for (id, e) in events {
            let body = match e.event {
                EventKind::Annotation => Body::Annotation {
                    target: e.target.expect("validated: an annotation has a target"),
                    tags: e.tags,
                    note: e.note,
                },
                EventKind::Deletion => Body::Deletion { removed: e.removed },
            };
            entries.push(Entry {
                id,
                link: e.chain,
                body,
            });
        }
        let report = chain::verify(&entries, &unlinked);
        Ok(ChainState {
            report,
            unlinked,
            unreadable,
        })
    }

    /// The chain's newest record (none before the first chained record).
    pub fn chain_head(&self) -> Result<Option<ChainHead>> {
        Ok(self
            .chain_state()?
            .report
            .head
            .map(|h| ChainHead::new(h.id, h.n)))
    }

    /// The link the next record gets.
    pub(crate) fn next_chain_link(&self) -> Result<ChainLink> {
        let st = self.chain_state()?;
        Ok(st.report.next_link(&st.unlinked))
    }

    /// Appends an event to the chain: links it after the head and writes
    /// `chain/<id>` atomically (durable when this returns).
    fn append_event(&self, mut event: ChainEvent) -> Result<SnapshotId> {
        event.chain = self.next_chain_link()?;
        let (id, file) = encode_event(&event, self.store.cipher(), self.store.format());
        crate::testhook::point("before-chain-event");
        self.backend
            .write_atomic(&layout::chain_event(&id), &file)?;
        Ok(id)
    }

    /// Records on the chain that `removed` are deleted, and why (`policy`),
    /// before their files are: a crash in between leaves them present and
    /// listed, never gone without a record.
    pub(crate) fn record_deletion(&self, removed: &[SnapshotId], policy: &str) -> Result<()> {
        if removed.is_empty() {
            return Ok(());
        }
        let entries = self.deletion_entries(removed);
        self.append_deletion(entries, policy)
    }

    /// What a deletion of `removed` records: each id with the link its
    /// record carries (read now, while the files exist).
    pub(crate) fn deletion_entries(&self, removed: &[SnapshotId]) -> Vec<format::RemovedEntry> {
        let mut entries = Vec::new();
        for id in removed {
            // An unreadable record (removed by `repair snapshots` for that
            // reason) is recorded without its link.
            let chain = self
                .backend
                .read(&snapshot::snapshot_path(id))
                .ok()
                .and_then(|f| snapshot::decode_head_file(id, &f, self.store.cipher()).ok())
                .and_then(|h| h.chain);
            entries.push(format::RemovedEntry { id: *id, chain });
        }
        entries
    }

    /// Appends a deletion of `entries` (see [`Self::deletion_entries`]).
    pub(crate) fn append_deletion(
        &self,
        entries: Vec<format::RemovedEntry>,
        policy: &str,
    ) -> Result<()> {
        self.append_event(ChainEvent {
            chain: placeholder_link(),
            time_ns: now_ns(),
            hostname: hostname(),
            event: EventKind::Deletion,
            target: None,
            tags: Vec::new(),
            note: String::new(),
            removed: entries,
            policy: policy.to_string(),
        })?;
        Ok(())
    }

    /// Records new tags and a new note for `target` as an annotation on the
    /// chain (the snapshot's record and id are unchanged).
    pub(crate) fn record_annotation(
        &self,
        target: &SnapshotId,
        tags: &[String],
        note: &str,
    ) -> Result<()> {
        self.append_event(ChainEvent {
            chain: placeholder_link(),
            time_ns: now_ns(),
            hostname: hostname(),
            event: EventKind::Annotation,
            target: Some(*target),
            tags: tags.to_vec(),
            note: note.to_string(),
            removed: Vec::new(),
            policy: String::new(),
        })?;
        Ok(())
    }

    /// Gives each snapshot the tags and note of its newest annotation on the
    /// chain (annotations off the chain are ignored).
    pub(crate) fn apply_annotations(&self, snapshots: &mut [Snapshot]) -> Result<()> {
        if self.backend.list(layout::CHAIN)?.is_empty() {
            return Ok(());
        }
        let report = self.chain_state()?.report;
        for s in snapshots {
            if let Some((tags, note)) = report.annotations.get(&s.id) {
                s.record.tags = tags.clone();
                s.record.note = note.clone();
            }
        }
        Ok(())
    }
}

/// Replaced by [`Repository::append_event`] before the event is encoded.
fn placeholder_link() -> ChainLink {
    ChainLink {
        n: 1,
        prev: None,
        base: Some(Vec::new()),
    }
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
