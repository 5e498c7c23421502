//! The `lumina-backup` command: a thin layer over the library (see `cli`).

mod cli;

fn main() {
    // Die quietly on a closed pipe (`lumina-backup cat ... | head`), as Unix tools do,
    // instead of panicking on the failed write. (Windows has no SIGPIPE.)
    // SAFETY: setting a signal disposition to SIG_DFL before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic of redb on a damaged index is caught and becomes an error with its
    // own one-line message; the hook keeps the panic message off stderr.
    lumina_backup::install_quiet_hook();
    std::process::exit(cli::main());
}
