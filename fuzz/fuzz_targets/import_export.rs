//! The export importer refuses malformed input with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut conn) = rusqlite::Connection::open_in_memory() {
        let _ = lumina_backup::__internals::import(&mut conn, data, false);
    }
});
