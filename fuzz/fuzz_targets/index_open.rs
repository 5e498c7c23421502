//! Opening a damaged `index.redb` (the open path of every command) gives an
//! index or an error, never a panic. (The same check, `index::probe`, runs under
//! proptest in the unit tests on stable, with truncations, flips and garbage.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("lumina-fuzz-index-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("index.redb");
    if std::fs::write(&path, data).is_ok() {
        let _ = lumina_backup::__internals::probe(&path);
    }
    let _ = std::fs::remove_file(&path);
});
