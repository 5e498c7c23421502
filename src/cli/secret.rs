//! Passphrases: from `LUMINA_BACKUP_PASSWORD`, from `--password-file`, or asked on
//! the terminal. Without a terminal and without either, fail at once (never hang).

use std::io::IsTerminal;
use std::path::Path;

use zeroize::Zeroizing;

use lumina_backup::Error;

/// Where a passphrase may come from.
pub struct Source<'a> {
    /// Environment variable holding the passphrase itself.
    pub env: &'a str,
    /// File holding it (first line).
    pub file: Option<&'a Path>,
    /// What to call it in the prompt.
    pub prompt: &'a str,
    /// The message when no source gives it and there is no terminal: which
    /// passphrase is missing and where to give it.
    pub missing: &'a str,
}

/// Reads the passphrase; `confirm` asks twice on a terminal (new passphrases).
///
/// An empty passphrase (an empty file, an empty variable) is refused as empty
/// here, so that it is never reported as a wrong passphrase.
pub fn read(src: &Source<'_>, confirm: bool) -> Result<Zeroizing<String>, Error> {
    if let Some(path) = src.file {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::invalid_input(format!("cannot read password file {}: {e}", path.display()))
        })?);
        let first = text.lines().next().unwrap_or("");
        if first.is_empty() {
            return Err(Error::invalid_input(format!(
                "password file {} is empty (the passphrase is its first line)",
                path.display()
            )));
        }
        return Ok(Zeroizing::new(first.to_string()));
    }
    if let Ok(v) = std::env::var(src.env) {
        if v.is_empty() {
            return Err(Error::invalid_input(format!(
                "{} is set but empty; put the passphrase in it or unset it",
                src.env
            )));
        }
        return Ok(Zeroizing::new(v));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid_input(src.missing.to_string()));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{}: ", src.prompt))
            .map_err(|e| Error::invalid_input(format!("cannot read the passphrase: {e}")))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password(format!("{} (again): ", src.prompt))
                .map_err(|e| Error::invalid_input(format!("cannot read the passphrase: {e}")))?,
        );
        if *again != *first {
            return Err(Error::invalid_input(
                "the two passphrases differ; nothing was changed",
            ));
        }
    }
    Ok(first)
}
