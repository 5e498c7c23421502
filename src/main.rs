//! The `lumina-backup` command: a thin layer over the library (see `cli`).

mod cli;

fn main() {
    // SIGPIPE stays ignored (Rust's default): the SFTP backend talks to `ssh`
    // through pipes and a socket, and a write there after the session closed
    // must be an error it handles, not a signal that kills the process (with
    // SIGPIPE at its default, commands on an SFTP repository died at random).
    // A closed stdout (`lumina-backup cat ... | head`) still ends the process
    // quietly, as Unix tools do: see `quiet_closed_stdout` and `cli::cat`.
    // A panic of redb on a damaged index is caught and becomes an error with its
    // own one-line message; the hook keeps the panic message off stderr.
    lumina_backup::install_quiet_hook();
    quiet_closed_stdout();
    std::process::exit(cli::main());
}

/// Exit status of a process whose reader went away (128 + SIGPIPE, what a
/// shell shows for a process the signal ended).
pub const EXIT_CLOSED_STDOUT: i32 = 141;

/// A print to a stdout whose reader went away (`println!` panics with
/// "failed printing to stdout: Broken pipe") ends the process at once, with
/// [`EXIT_CLOSED_STDOUT`] and no message.
fn quiet_closed_stdout() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(EXIT_CLOSED_STDOUT);
        }
        previous(info);
    }));
}
