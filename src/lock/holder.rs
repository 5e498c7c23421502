//! Who holds a lock, for the "locked" message: the note the holder wrote into
//! the lock file (pid, host, command), its pid from `/proc/locks` (works even
//! when the note could not be written, and for readers, who write none), and
//! its state from `/proc/PID/stat` — a stopped holder (Ctrl-Z, SIGSTOP) will not
//! finish by itself, so the message says how to resume it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What is known of a lock's holder.
#[derive(Debug, Default)]
pub(super) struct Holder {
    /// The holder's own note ("pid 12 on host (snapshot)"), if any.
    note: String,
    /// Its pid, from `/proc/locks` or the note.
    pid: Option<u32>,
    /// Whether it holds the lock shared (a reader).
    reader: bool,
    /// Its state letter from `/proc/PID/stat` (R, S, D, T, t, Z, ...).
    state: Option<char>,
}

/// The folder holding the lock file (the repository).
pub(super) fn parent(path: &Path) -> PathBuf {
    crate::fsutil::parent_dir(path).to_path_buf()
}

/// Finds the holder of the lock on `file` (at `path`).
pub(super) fn find(file: &File, path: &Path) -> Holder {
    let mut note = String::new();
    let mut f = file;
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.read_to_string(&mut note);
    let note = note.trim().to_string();
    let (mut pid, mut reader) = (None, false);
    if let Some((p, r)) = proc_locks_holder(path) {
        (pid, reader) = (Some(p), r);
    }
    let own_host = gethostname::gethostname().to_string_lossy().into_owned();
    if pid.is_none() && note.contains(&format!(" on {own_host} ")) {
        pid = note
            .strip_prefix("pid ")
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok());
    }
    let state = pid.and_then(process_state);
    Holder {
        note,
        pid,
        reader,
        state,
    }
}

/// The holder of the `flock` on `path` per `/proc/locks`, and whether it holds
/// it shared. Only Linux has `/proc/locks`: elsewhere the holder's note alone
/// names it (on Windows the note is unreadable while the lock is held, so the
/// message says "another process").
fn proc_locks_holder(path: &Path) -> Option<(u32, bool)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        flock_holder(&locks, meta.dev(), meta.ino())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// The pid holding a `flock` on the file (device `dev`, inode `ino`) according to
/// `/proc/locks`, and whether it holds it shared.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<(u32, bool)> {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    for line in locks.lines() {
        // "1: FLOCK  ADVISORY  WRITE 13150 fe:00:5341750 0 EOF"; waiters have "->".
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || fields[1] != "FLOCK" || fields[1..].contains(&"->") {
            continue;
        }
        let mut id = fields[5].split(':');
        let (Some(ma), Some(mi), Some(i)) = (id.next(), id.next(), id.next()) else {
            continue;
        };
        let same = u64::from_str_radix(ma, 16).ok() == Some(major)
            && u64::from_str_radix(mi, 16).ok() == Some(minor)
            && i.parse::<u64>().ok() == Some(ino);
        if let (true, Ok(pid)) = (same, fields[4].parse::<u32>()) {
            if pid > 0 {
                return Some((pid, fields[3] == "READ"));
            }
        }
    }
    None
}

/// The state letter of a process (`/proc/PID/stat`, the field after the name).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

impl Holder {
    fn state_text(&self) -> Option<&'static str> {
        Some(match self.state? {
            'R' => "running",
            'S' | 'I' => "running (sleeping)",
            'D' => "running (waiting for the disk)",
            'T' => "stopped (SIGSTOP or Ctrl-Z)",
            't' => "stopped by a debugger",
            'Z' | 'X' => "exiting",
            _ => return None,
        })
    }

    fn stopped(&self) -> bool {
        matches!(self.state, Some('T' | 't'))
    }

    /// "pid 12 on host (snapshot), stopped (SIGSTOP or Ctrl-Z)".
    pub(super) fn describe(&self) -> String {
        let who = match (self.pid, self.note.is_empty()) {
            (Some(pid), false) if self.note.starts_with(&format!("pid {pid} ")) => {
                self.note.clone()
            }
            (Some(pid), _) if self.reader => format!("pid {pid} (reading)"),
            (Some(pid), _) => format!("pid {pid}"),
            (None, false) => self.note.clone(),
            (None, true) => "another process".to_string(),
        };
        match self.state_text() {
            Some(s) => format!("{who}, {s}"),
            None => who,
        }
    }

    /// What the waiting user can do.
    pub(super) fn advice(&self) -> String {
        match (self.pid, self.stopped()) {
            (Some(pid), true) => format!(
                "It will not finish while stopped: resume it with `kill -CONT {pid}` (or `fg` in its terminal), or end it with `kill {pid}`, then try again"
            ),
            _ => "Try again when it finishes".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_are_matched_by_device_and_inode() {
        let dev = (0xfe << 8) | 0x01;
        let locks = "1: POSIX  ADVISORY  WRITE 7 fe:01:42 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 8 fe:01:41 0 EOF\n\
                     3: -> FLOCK  ADVISORY  WRITE 9 fe:01:42 0 EOF\n\
                     4: FLOCK  ADVISORY  READ 10 fe:01:42 0 EOF\n";
        assert_eq!(flock_holder(locks, dev, 42), Some((10, true)));
        assert_eq!(flock_holder(locks, dev, 41), Some((8, false)));
        assert_eq!(flock_holder(locks, dev, 43), None);
    }

    #[test]
    fn a_stopped_holder_gets_resume_advice() {
        let h = Holder {
            note: "pid 12 on box (snapshot)".into(),
            pid: Some(12),
            reader: false,
            state: Some('T'),
        };
        assert_eq!(
            h.describe(),
            "pid 12 on box (snapshot), stopped (SIGSTOP or Ctrl-Z)"
        );
        assert!(h.advice().contains("kill -CONT 12"));
        let running = Holder {
            state: Some('R'),
            ..h
        };
        assert_eq!(running.advice(), "Try again when it finishes");
    }
}
