//! Containing panics of a third-party library reading a damaged file.
//!
//! redb asserts on some damaged files (a truncated `index.redb` trips an
//! assertion in its page manager) instead of returning an error. The index is a
//! cache, so such a panic must become an error the caller can act on (rebuild
//! the index, or say "run `repair index`"), never an abort with exit 101.
//!
//! [`guarded`] runs a closure under `catch_unwind`, marking the thread so that a
//! panic hook installed with [`install_quiet_hook`] does not print the panic
//! message for a panic that is turned into an error anyway.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

use crate::error::{Error, Result};

thread_local! {
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`; a panic inside it becomes `Error::Index` naming `what`.
///
/// Only for calls into code that reads untrusted files and may assert (redb).
/// The state `f` touched may be inconsistent after a panic: callers drop it.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get().saturating_sub(1)));
    match out {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::index(format!(
                "{what}: the index file is damaged (redb: {msg})"
            )))
        }
    }
}

/// A value whose `Drop` runs under [`guarded`]: after a panic caught inside
/// redb its state is poisoned, and `Database`'s own `Drop` then panics too
/// (an unwrap on a poisoned lock), outside any guard.
pub(crate) struct DropGuarded<T>(Option<T>);

impl<T> DropGuarded<T> {
    pub(crate) fn new(value: T) -> Self {
        DropGuarded(Some(value))
    }
}

impl<T> std::ops::Deref for DropGuarded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // `None` only inside `drop`, where nothing dereferences it.
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T> std::ops::DerefMut for DropGuarded<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("present until dropped")
    }
}

impl<T> Drop for DropGuarded<T> {
    fn drop(&mut self) {
        let value = self.0.take();
        // A panic here has nothing left to leave inconsistent: the value is gone.
        let _ = guarded("closing the index", || {
            drop(value);
            Ok(())
        });
    }
}

/// Whether the current thread is inside [`guarded`].
pub fn in_guard() -> bool {
    GUARDED.with(|g| g.get() > 0)
}

/// Installs a panic hook that stays silent for panics the library catches inside redb calls
/// (they become errors with their own message) and otherwise defers to the
/// hook in place before. For binaries; a library user may call it too.
pub fn install_quiet_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !in_guard() {
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_index_error() {
        let r: Result<()> = guarded("opening", || panic!("assertion failed: x"));
        let e = r.expect_err("an error");
        assert!(e.to_string().contains("assertion failed: x"), "{e}");
        assert!(e.is_index_damage(), "{e}");
        assert!(!in_guard());
        assert_eq!(guarded("ok", || Ok(3)).expect("value"), 3);
    }
}
