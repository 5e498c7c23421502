//! `demo` walks the whole cycle (snapshot, change, snapshot, history, diff, restore,
//! verify) on a sample Lumina database in a fresh folder, and says so.

mod common;

use common::*;

#[test]
fn demo_walks_the_whole_cycle() {
    let dir = TestDir::new("demo");
    let out = dir
        .lb()
        .args(["demo", "--dir"])
        .arg(dir.path("d"))
        .ok()
        .out();
    for step in [
        "snapshot",
        "history",
        "metadata: 12 changed, 3 added, 0 removed",
        "restored the first snapshot",
        "verify --read-data: ok",
    ] {
        assert!(out.contains(step), "demo output lacks {step:?}:\n{out}");
    }
    assert!(dir.path("d/restored-first.db").exists());
    assert!(integrity_ok(&dir.path("d/restored-first.db")));
    // A second demo into the same folder refuses rather than mixing repositories.
    dir.lb()
        .args(["demo", "--dir"])
        .arg(dir.path("d"))
        .run()
        .expect_code(2);
}
