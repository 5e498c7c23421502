//! What several bench binaries share (each bench is its own crate; they include
//! this with `mod common;`).

use std::path::Path;
use std::process::Command;

/// Runs the CLI on `repo` (`--quiet --json ARGS`) under GNU time; returns
/// (wall s, peak RSS KiB, stdout). Panics if the command fails.
pub fn timed(bin: &Path, repo: &Path, args: &[&str]) -> (f64, u64, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M"])
        .arg(bin)
        .arg("--repo")
        .arg(repo)
        .args(["--quiet", "--json"])
        .args(args)
        .output()
        .expect("running /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace();
    let secs: f64 = it.next().and_then(|s| s.parse().ok()).expect("time output");
    let rss: u64 = it.next().and_then(|s| s.parse().ok()).expect("time output");
    (secs, rss, String::from_utf8_lossy(&out.stdout).into_owned())
}
