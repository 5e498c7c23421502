//! `watch`'s hooks (`--on-success`, `--on-failure`) and webhook, run on a
//! thread of their own so a slow command or server never holds up the
//! watcher. A hook gets the event in `LUMINA_BACKUP_*` environment variables
//! (README "Hooks"); the webhook gets the event's JSON (as `watch --json`
//! prints it) with `repository` added, POSTed with a 10 s timeout. A hook or
//! webhook that fails is reported on stderr and not retried.

use std::process::Command;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lumina_backup::WatchEvent;

/// A command run through the platform's shell.
pub(super) fn shell(cmd: &str) -> Command {
    if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(cmd);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(cmd);
        c
    }
}

/// The hooks' and webhook's thread.
pub(super) struct Notifier {
    tx: Option<Sender<WatchEvent>>,
    thread: Option<JoinHandle<()>>,
}

struct Targets {
    on_success: Option<String>,
    on_failure: Option<String>,
    webhook: Option<String>,
    repository: String,
}

impl Notifier {
    pub(super) fn start(
        on_success: Option<String>,
        on_failure: Option<String>,
        webhook: Option<String>,
        repository: String,
    ) -> Notifier {
        if on_success.is_none() && on_failure.is_none() && webhook.is_none() {
            return Notifier {
                tx: None,
                thread: None,
            };
        }
        let t = Targets {
            on_success,
            on_failure,
            webhook,
            repository,
        };
        let (tx, rx) = channel::<WatchEvent>();
        let thread = std::thread::spawn(move || {
            for e in rx {
                t.handle(&e);
            }
        });
        Notifier {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub(super) fn send(&self, e: &WatchEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(e.clone());
        }
    }

    /// Lets the queued hooks finish, waiting at most `wait`.
    pub(super) fn finish(mut self, wait: Duration) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let start = Instant::now();
            while !t.is_finished() && start.elapsed() < wait {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                eprintln!("lumina-backup: warning: a hook or the webhook is still running; not waiting for it");
            }
        }
    }
}

impl Targets {
    fn handle(&self, e: &WatchEvent) {
        let (cmd, env) = match e {
            WatchEvent::SnapshotTaken {
                db,
                snapshot,
                trigger,
                new_bytes,
                forgotten,
            } => (
                &self.on_success,
                vec![
                    ("EVENT", "snapshot-taken".to_string()),
                    ("DB", db.display().to_string()),
                    ("SNAPSHOT", snapshot.clone()),
                    ("TRIGGER", trigger.as_str().to_string()),
                    ("NEW_BYTES", new_bytes.to_string()),
                    ("FORGOTTEN", forgotten.to_string()),
                ],
            ),
            WatchEvent::CopyDone {
                remote,
                copied,
                removed,
                bytes_sent,
            } => (
                &self.on_success,
                vec![
                    ("EVENT", "copy-done".to_string()),
                    ("REMOTE", remote.clone()),
                    ("COPIED", copied.to_string()),
                    ("REMOVED", removed.to_string()),
                    ("BYTES_SENT", bytes_sent.to_string()),
                ],
            ),
            WatchEvent::DrillPassed { db, snapshot, .. } => (
                &self.on_success,
                vec![
                    ("EVENT", "drill-passed".to_string()),
                    ("DB", db.display().to_string()),
                    ("SNAPSHOT", snapshot.clone()),
                ],
            ),
            WatchEvent::Failure {
                db,
                remote,
                operation,
                message,
                consecutive,
                ..
            } => (
                &self.on_failure,
                vec![
                    ("EVENT", "failure".to_string()),
                    (
                        "DB",
                        db.as_ref()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default(),
                    ),
                    ("REMOTE", remote.clone().unwrap_or_default()),
                    ("OPERATION", operation.clone()),
                    ("MESSAGE", message.clone()),
                    ("CONSECUTIVE", consecutive.to_string()),
                ],
            ),
            _ => return,
        };
        if let Some(cmd) = cmd {
            let mut c = shell(cmd);
            c.env("LUMINA_BACKUP_REPOSITORY", &self.repository);
            for (k, v) in &env {
                c.env(format!("LUMINA_BACKUP_{k}"), v);
            }
            match c.status() {
                Ok(s) if s.success() => {}
                Ok(s) => eprintln!("lumina-backup: warning: hook `{cmd}` failed ({s})"),
                Err(err) => eprintln!("lumina-backup: warning: hook `{cmd}` could not run: {err}"),
            }
        }
        if let Some(url) = &self.webhook {
            if let Err(err) = self.post(url, e) {
                eprintln!("lumina-backup: warning: webhook {url} failed: {err}");
            }
        }
    }

    fn post(&self, url: &str, e: &WatchEvent) -> Result<(), String> {
        let mut doc = serde_json::to_value(e).map_err(|e| e.to_string())?;
        if let Some(map) = doc.as_object_mut() {
            map.insert("repository".into(), self.repository.clone().into());
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        agent
            .post(url)
            .header("content-type", "application/json")
            .send(doc.to_string())
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
