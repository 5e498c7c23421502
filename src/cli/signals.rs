//! SIGINT and SIGTERM during a snapshot: the first one sets a flag that the
//! progress callback reports as "cancelled", so the library stops at the next
//! batch, removes the partial data and records nothing; a second one ends the
//! process at once (the repository is crash-safe either way).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Installs the handlers (for commands that stop cleanly when cancelled).
pub fn install() {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The shutdown goes first: it sees the flag only from the second signal on.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, &INTERRUPTED);
        let _ = signal_hook::flag::register_usize(sig, &SIGNAL, sig as usize);
        let _ = signal_hook::flag::register(sig, &INTERRUPTED);
    }
}

/// The signal received, if any (its number).
pub fn received() -> Option<i32> {
    INTERRUPTED
        .load(Ordering::SeqCst)
        .then(|| SIGNAL.load(Ordering::SeqCst) as i32)
}

/// The signal's name.
pub fn name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
