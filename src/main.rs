//! The `lumina-backup` command: a thin layer over the library (see `cli`).

mod cli;

fn main() {
    // Die quietly on a closed pipe (`lumina-backup cat ... | head`), as Unix tools do,
    // instead of panicking on the failed write.
    // SAFETY: setting a signal disposition to SIG_DFL before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::main());
}
