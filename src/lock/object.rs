//! Locking a remote repository, where there is no `flock`: lock objects
//! (store-format.md section 6.10), as restic does.
//!
//! A holder writes `locks/<32 hex random>` (a [`LockRecord`]: host, pid,
//! purpose, exclusive or shared, created, refreshed), then lists `locks/`
//! again: if a live lock it conflicts with is there (an exclusive lock
//! conflicts with every other; a shared one with exclusive ones), it deletes
//! its own and waits. Two processes that write at the same moment both see
//! the other and both back off (with jitter), so at most one exclusive holder
//! survives the check; this needs the store's listing to show a completed
//! PUT (S3 has been strongly consistent since 2020; Garage, WebDAV and SFTP
//! servers on one disk are).
//!
//! A holder rewrites its object every [`REFRESH`] from a background thread. A
//! lock is **stale** (deleted by whoever meets it) when it was not refreshed
//! for [`STALE`], or when it was written on this host by a process that no
//! longer runs (Linux: no `/proc/PID`). Dropping the lock stops the refresh
//! and deletes the object; a killed holder leaves it for the staleness rules.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::error::{Repr, Result};
use crate::format::typed::LockRecord;
use crate::format::{Cipher, FormatVersion};
use crate::layout;
use crate::store::files;

/// How often a holder rewrites its lock object.
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
/// A lock not refreshed for this long is stale.
pub const STALE: Duration = Duration::from_secs(30 * 60);

/// A held lock object; refreshed while held, deleted on drop.
pub struct ObjectLock {
    backend: Arc<dyn Backend>,
    id: String,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLock").field("id", &self.id).finish()
    }
}

fn now_ns() -> i64 {
    let t = crate::testhook::now();
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// This machine's name as lock records give it (tests may pretend to be
/// another machine with `LUMINA_BACKUP_TEST_HOST`, test-hooks builds only).
fn host() -> String {
    #[cfg(feature = "test-hooks")]
    if let Ok(h) = std::env::var("LUMINA_BACKUP_TEST_HOST") {
        return h;
    }
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Whether process `pid` runs on this machine (unknown: assume it does).
fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        true
    }
}

/// Why a lock object is stale, or `None` while it is live.
fn stale_reason(rec: &LockRecord, now: i64, own_host: &str) -> Option<String> {
    let age = Duration::from_nanos(now.saturating_sub(rec.refreshed_ns).max(0) as u64);
    if age >= STALE {
        return Some(format!("not refreshed for {} min", age.as_secs() / 60));
    }
    if rec.host == own_host && rec.pid != std::process::id() && !process_alive(rec.pid) {
        return Some(format!("process {} on this host has ended", rec.pid));
    }
    None
}

/// A live lock that stands in the way, for the message.
struct Conflict {
    id: String,
    rec: Option<LockRecord>,
}

impl Conflict {
    fn describe(&self, now: i64) -> String {
        match &self.rec {
            Some(r) => {
                let mins = now.saturating_sub(r.refreshed_ns).max(0) / 60_000_000_000;
                format!(
                    "pid {} on {} ({}{}), lock object locks/{}, refreshed {mins} min ago",
                    r.pid,
                    r.host,
                    r.purpose,
                    if r.exclusive { "" } else { ", shared" },
                    self.id
                )
            }
            None => format!("an unreadable lock object locks/{}", self.id),
        }
    }
}

/// Lists the lock objects, deletes the stale ones (one notice each), and
/// returns the live ones other than `own` that conflict with a lock of kind
/// `exclusive`.
fn conflicts(
    backend: &dyn Backend,
    cipher: &Cipher,
    own: Option<&str>,
    exclusive: bool,
    notices: &mut Vec<String>,
) -> Result<Vec<Conflict>> {
    let now = now_ns();
    let me = host();
    let mut out = Vec::new();
    for id in backend.list(layout::LOCKS)? {
        if Some(id.as_str()) == own || id.starts_with(layout::TEMP_PREFIX) {
            continue;
        }
        let rec = match backend.read(&<LockRecord as crate::format::typed::RepoFile>::path(&id)) {
            Ok(bytes) => files::open::<LockRecord>(cipher, &id, &bytes).ok(),
            // Deleted between the listing and the read: released.
            Err(e) if e.is_io_not_found() => continue,
            Err(e) => return Err(e),
        };
        if let Some(r) = &rec {
            if let Some(why) = stale_reason(r, now, &me) {
                backend.remove(&format!("{}/{id}", layout::LOCKS))?;
                notices.push(format!(
                    "removed the stale lock object locks/{id} of pid {} on {} ({}): {why}",
                    r.pid, r.host, r.purpose
                ));
                continue;
            }
            if !exclusive && !r.exclusive {
                continue;
            }
        }
        out.push(Conflict { id, rec });
    }
    Ok(out)
}

impl ObjectLock {
    /// Takes the repository's lock, exclusive (a writer) or shared (a
    /// reader), waiting up to `wait`. Stale locks met on the way are deleted,
    /// each with a line in `notices`.
    pub fn acquire(
        backend: Arc<dyn Backend>,
        cipher: &Cipher,
        version: FormatVersion,
        purpose: &str,
        exclusive: bool,
        wait: Duration,
        notices: &mut Vec<String>,
    ) -> Result<Self> {
        let start = Instant::now();
        let id = hex::encode(rand::random::<[u8; 16]>());
        let created = now_ns();
        let record = LockRecord {
            host: host(),
            pid: std::process::id(),
            purpose: purpose.to_string(),
            exclusive,
            created_ns: created,
            refreshed_ns: created,
        };
        // The first attempt writes at once and lists after (one listing, not
        // two: the listing after the write is what makes two writers see each
        // other; it also clears stale locks). After a conflict, each attempt
        // lists first and writes only when nothing conflicts.
        let mut first = true;
        loop {
            let mut found = if first {
                Vec::new()
            } else {
                conflicts(backend.as_ref(), cipher, None, exclusive, notices)?
            };
            first = false;
            if found.is_empty() {
                files::save(backend.as_ref(), cipher, version, &id, &record)?;
                found = conflicts(backend.as_ref(), cipher, Some(&id), exclusive, notices)?;
                if found.is_empty() {
                    let (stop, refresher) = spawn_refresher(
                        backend.clone(),
                        cipher.clone(),
                        version,
                        id.clone(),
                        record,
                    );
                    return Ok(ObjectLock {
                        backend,
                        id,
                        stop: Some(stop),
                        refresher: Some(refresher),
                    });
                }
                backend.remove(&format!("{}/{id}", layout::LOCKS))?;
            }
            if start.elapsed() >= wait {
                let first = &found[0];
                return Err(Repr::Locked {
                    holder: first.describe(now_ns()),
                    waited_secs: wait.as_secs(),
                    advice: format!(
                        "Try again when it finishes. A lock not refreshed for {} min is stale and the next command removes it; if you are sure no process uses the repository, delete locks/{} in it",
                        STALE.as_secs() / 60,
                        first.id
                    ),
                }
                .into());
            }
            let jitter = Duration::from_millis(200 + rand::random::<u64>() % 600);
            std::thread::sleep(
                jitter
                    .min(wait.saturating_sub(start.elapsed()))
                    .max(Duration::from_millis(50)),
            );
        }
    }
}

fn spawn_refresher(
    backend: Arc<dyn Backend>,
    cipher: Cipher,
    version: FormatVersion,
    id: String,
    mut record: LockRecord,
) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || loop {
        match rx.recv_timeout(REFRESH) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                record.refreshed_ns = now_ns();
                // A failed refresh is retried at the next tick; the lock only
                // goes stale after STALE without one.
                let _ = files::save(backend.as_ref(), &cipher, version, &id, &record);
            }
            _ => return,
        }
    });
    (tx, handle)
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let _ = self
            .backend
            .remove(&format!("{}/{}", layout::LOCKS, self.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(host: &str, pid: u32, refreshed_ns: i64) -> LockRecord {
        LockRecord {
            host: host.into(),
            pid,
            purpose: "snapshot".into(),
            exclusive: true,
            created_ns: refreshed_ns,
            refreshed_ns,
        }
    }

    #[test]
    fn staleness_rules() {
        let now = 100 * 60 * 1_000_000_000i64;
        let min = 60 * 1_000_000_000i64;
        // Another host: only age counts.
        assert_eq!(
            stale_reason(&rec("other", 1, now - 29 * min), now, "me"),
            None
        );
        assert!(stale_reason(&rec("other", 1, now - 30 * min), now, "me")
            .expect("stale")
            .contains("30 min"));
        // This host: a live pid keeps it, an ended one makes it stale.
        let own = std::process::id();
        assert_eq!(stale_reason(&rec("me", own, now), now, "me"), None);
        if cfg!(target_os = "linux") {
            assert!(stale_reason(&rec("me", u32::MAX - 1, now), now, "me")
                .expect("ended")
                .contains("has ended"));
        }
    }

    #[test]
    fn exclusive_excludes_and_shared_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b: Arc<dyn Backend> = Arc::new(crate::backend::LocalBackend::new(dir.path()));
        let v = FormatVersion::NEWEST;
        let mut notes = Vec::new();
        let mut take = |op: &str, exclusive: bool| {
            ObjectLock::acquire(
                b.clone(),
                &Cipher::Plain,
                v,
                op,
                exclusive,
                Duration::ZERO,
                &mut notes,
            )
        };
        let w = take("prune", true).expect("first");
        let e = take("snapshot", true).expect_err("busy");
        assert!(e.to_string().contains("prune"), "{e}");
        take("list", false).expect_err("a reader waits for a writer");
        drop(w);
        assert!(b.list(layout::LOCKS).expect("list").is_empty());
        let r1 = take("list", false).expect("reader");
        let r2 = take("show", false).expect("readers share");
        take("prune", true).expect_err("readers exclude a writer");
        drop((r1, r2));
        // A stale lock (another host, 31 min old) is removed with a notice.
        let old = rec("elsewhere", 7, now_ns() - 31 * 60 * 1_000_000_000);
        files::save(
            b.as_ref(),
            &Cipher::Plain,
            v,
            "00112233445566778899aabbccddeeff",
            &old,
        )
        .expect("plant");
        let _w = take("prune", true).expect("stale lock cleared");
        assert!(notes.iter().any(|n| n.contains("elsewhere")), "{notes:?}");
        assert_eq!(b.list(layout::LOCKS).expect("list").len(), 1);
    }
}
