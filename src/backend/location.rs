//! Where a repository is: a local folder or a remote store, as the user spells
//! it after `--repo` (and `copy --to`). Pure parsing: no network, no
//! credentials (those come from the environment when the backend is built,
//! `super::remote`), so every form is unit-tested here.
//!
//! Forms: a path; `s3://bucket[/prefix]`; `webdav://host[:port][/path]` and
//! `webdavs://` (HTTPS); `sftp://[user@]host[:port]/path`; `gdrive:path`,
//! `dropbox:path`, `onedrive:path`. A URL never carries a password (it would
//! land in shell history and process listings): credentials are read from the
//! environment. Anything without a known scheme is a local path (write
//! `./gdrive:x` for a local folder of that name).

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The remote services lumina-backup reaches through opendal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Any S3-compatible object store.
    S3,
    /// WebDAV over HTTP (`webdav://`) or HTTPS (`webdavs://`).
    Webdav,
    /// SFTP (through the system's `ssh`).
    Sftp,
    /// Google Drive.
    Gdrive,
    /// Dropbox.
    Dropbox,
    /// Microsoft OneDrive.
    Onedrive,
}

impl Service {
    /// The cargo feature that builds this service in.
    pub fn feature(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Webdav => "webdav",
            Service::Sftp => "sftp",
            Service::Gdrive => "gdrive",
            Service::Dropbox => "dropbox",
            Service::Onedrive => "onedrive",
        }
    }
}

/// A remote repository's address (no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The service.
    pub service: Service,
    /// S3: the bucket; WebDAV and SFTP: `host[:port]`; drives: empty.
    pub host: String,
    /// SFTP: the user name, if given.
    pub user: Option<String>,
    /// WebDAV: `webdavs://` (HTTPS).
    pub tls: bool,
    /// The repository's folder inside the store, without leading or trailing
    /// `/` (empty: the store's root).
    pub path: String,
    /// Where its credentials are read first: each environment variable the
    /// service reads, with this prefix (`AWS_ACCESS_KEY_ID` as
    /// `<prefix>AWS_ACCESS_KEY_ID`, `LUMINA_BACKUP_WEBDAV_USER` as
    /// `<prefix>WEBDAV_USER`), then the variable itself. `copy --to` and the
    /// watcher's remotes use `LUMINA_BACKUP_TO_`, so two ends of one service
    /// can have credentials of their own. Not part of the address.
    pub env_prefix: Option<String>,
}

/// A repository's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on a local file system.
    Local(PathBuf),
    /// A remote store.
    Remote(Remote),
}

impl Location {
    /// This location with its credentials read first from variables with
    /// `prefix` ([`Remote::env_prefix`]); a folder is returned as it is.
    pub fn with_env_prefix(self, prefix: &str) -> Location {
        match self {
            Location::Remote(mut r) => {
                r.env_prefix = Some(prefix.to_string());
                Location::Remote(r)
            }
            local => local,
        }
    }

    /// Parses what the user gave after `--repo`. A malformed URL of a known
    /// scheme is an error (exit 2) saying what is wrong and what form is expected.
    pub fn parse(text: &str) -> Result<Location> {
        if let Some(rest) = text.strip_prefix("s3://") {
            return s3(text, rest);
        }
        if let Some(rest) = text.strip_prefix("webdavs://") {
            return webdav(text, rest, true);
        }
        if let Some(rest) = text.strip_prefix("webdav://") {
            return webdav(text, rest, false);
        }
        if let Some(rest) = text.strip_prefix("sftp://") {
            return sftp(text, rest);
        }
        for (prefix, service) in [
            ("gdrive:", Service::Gdrive),
            ("dropbox:", Service::Dropbox),
            ("onedrive:", Service::Onedrive),
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                return drive(text, rest, service);
            }
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::invalid_input(format!(
                    "repository location {text}: unknown scheme `{scheme}://`; use a folder path, s3://, webdav://, webdavs://, sftp://, gdrive:, dropbox: or onedrive:"
                )));
            }
        }
        if text.is_empty() {
            return Err(Error::invalid_input(
                "empty repository location; give a folder path or a URL such as s3://bucket/prefix",
            ));
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// The local folder, if this is one.
    pub fn as_local(&self) -> Option<&std::path::Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }

    /// Whether the repository is remote.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Local(p)
    }
}

impl From<&std::path::Path> for Location {
    fn from(p: &std::path::Path) -> Self {
        Location::Local(p.to_path_buf())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote(r) => write!(f, "{r}"),
        }
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        let sep = if path.is_empty() { "" } else { "/" };
        match self.service {
            Service::S3 => write!(f, "s3://{}{sep}{path}", self.host),
            Service::Webdav => {
                let scheme = if self.tls { "webdavs" } else { "webdav" };
                write!(f, "{scheme}://{}{sep}{path}", self.host)
            }
            Service::Sftp => match &self.user {
                Some(u) => write!(f, "sftp://{u}@{}/{path}", self.host),
                None => write!(f, "sftp://{}/{path}", self.host),
            },
            Service::Gdrive => write!(f, "gdrive:{path}"),
            Service::Dropbox => write!(f, "dropbox:{path}"),
            Service::Onedrive => write!(f, "onedrive:{path}"),
        }
    }
}

fn bad(text: &str, why: &str, form: &str) -> Error {
    Error::invalid_input(format!(
        "repository location {text}: {why}; expected {form}"
    ))
}

/// A path inside a store: `/`-separated segments, none empty-after-trim of
/// `.`/`..` or holding control characters; returned without outer slashes.
fn clean_path(text: &str, path: &str, form: &str) -> Result<String> {
    let trimmed = path.trim_matches('/');
    let mut parts = Vec::new();
    for seg in trimmed.split('/') {
        if seg.is_empty() {
            continue;
        }
        if seg == "." || seg == ".." {
            return Err(bad(text, "`.` and `..` are not allowed in the path", form));
        }
        if seg.chars().any(|c| c.is_control()) {
            return Err(bad(text, "the path holds a control character", form));
        }
        parts.push(seg);
    }
    Ok(parts.join("/"))
}

const S3_FORM: &str = "s3://BUCKET or s3://BUCKET/PREFIX (endpoint and credentials in AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";

fn s3(text: &str, rest: &str) -> Result<Location> {
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad(text, "no bucket name", S3_FORM));
    }
    if bucket.contains('@') || bucket.contains(':') {
        return Err(bad(
            text,
            "the bucket name holds `@` or `:` (credentials and endpoints do not go in the URL)",
            S3_FORM,
        ));
    }
    let valid = bucket.len() >= 3
        && bucket.len() <= 63
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if !valid {
        return Err(bad(
            text,
            &format!("`{bucket}` is not a valid bucket name (3-63 of a-z, 0-9, `-`, `.`)"),
            S3_FORM,
        ));
    }
    Ok(Location::Remote(Remote {
        service: Service::S3,
        host: bucket.to_string(),
        user: None,
        tls: true,
        path: clean_path(text, path, S3_FORM)?,
        env_prefix: None,
    }))
}

/// `host[:port]`, checked: a host of letters, digits, `-` and `.` (or a
/// bracketed IPv6 address), a port of 1-65535.
fn host_port(text: &str, hp: &str, form: &str) -> Result<String> {
    if hp.is_empty() {
        return Err(bad(text, "no host", form));
    }
    let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| bad(text, "unclosed `[` in the host", form))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad(text, "not an IPv6 address inside `[ ]`", form));
        }
        match after {
            "" => (hp, None),
            p => match p.strip_prefix(':') {
                Some(port) => (&hp[..hp.len() - p.len()], Some(port)),
                None => return Err(bad(text, "unexpected text after `]`", form)),
            },
        }
    } else {
        match hp.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    if host.is_empty()
        || !(host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return Err(bad(text, &format!("`{host}` is not a host name"), form));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(bad(text, &format!("`{p}` is not a port (1-65535)"), form)),
        }
    }
    Ok(hp.to_string())
}

const WEBDAV_FORM: &str = "webdav://HOST[:PORT][/PATH] or webdavs://... (user and password in LUMINA_BACKUP_WEBDAV_USER, LUMINA_BACKUP_WEBDAV_PASSWORD)";

fn webdav(text: &str, rest: &str, tls: bool) -> Result<Location> {
    let (hp, path) = rest.split_once('/').unwrap_or((rest, ""));
    if hp.contains('@') {
        return Err(bad(
            text,
            "credentials do not go in the URL (they would show in shell history)",
            WEBDAV_FORM,
        ));
    }
    Ok(Location::Remote(Remote {
        service: Service::Webdav,
        host: host_port(text, hp, WEBDAV_FORM)?,
        user: None,
        tls,
        path: clean_path(text, path, WEBDAV_FORM)?,
        env_prefix: None,
    }))
}

const SFTP_FORM: &str =
    "sftp://[USER@]HOST[:PORT]/PATH (key in LUMINA_BACKUP_SFTP_KEY or your ssh agent and config)";

fn sftp(text: &str, rest: &str) -> Result<Location> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hp) = match authority.rsplit_once('@') {
        Some((u, h)) => {
            if u.contains(':') {
                return Err(bad(
                    text,
                    "a password does not go in the URL (use a key)",
                    SFTP_FORM,
                ));
            }
            if u.is_empty()
                || !u
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad(text, &format!("`{u}` is not a user name"), SFTP_FORM));
            }
            (Some(u.to_string()), h)
        }
        None => (None, authority),
    };
    let path = clean_path(text, path, SFTP_FORM)?;
    if path.is_empty() {
        return Err(bad(text, "no path on the server", SFTP_FORM));
    }
    Ok(Location::Remote(Remote {
        service: Service::Sftp,
        host: host_port(text, hp, SFTP_FORM)?,
        user,
        tls: false,
        path,
        env_prefix: None,
    }))
}

fn drive(text: &str, rest: &str, service: Service) -> Result<Location> {
    let name = service.feature();
    let form = format!("{name}:PATH, a folder in your {name} (token in LUMINA_BACKUP_{}_ACCESS_TOKEN or LUMINA_BACKUP_{0}_REFRESH_TOKEN)", name.to_uppercase());
    if rest.starts_with("//") {
        return Err(bad(
            text,
            &format!("write {name}:PATH, not {name}://"),
            &form,
        ));
    }
    let path = clean_path(text, rest, &form)?;
    if path.is_empty() {
        return Err(bad(
            text,
            "no folder given (a repository needs a folder of its own)",
            &form,
        ));
    }
    Ok(Location::Remote(Remote {
        service,
        host: String::new(),
        user: None,
        tls: true,
        path,
        env_prefix: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(text: &str) -> Remote {
        match Location::parse(text).expect(text) {
            Location::Remote(r) => r,
            Location::Local(p) => panic!("{text} parsed as the path {}", p.display()),
        }
    }

    fn refused(text: &str, needle: &str) {
        let e = Location::parse(text).expect_err(text);
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{text}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{text}: {msg}");
        assert!(msg.contains("expected") || msg.contains("use "), "{msg}");
    }

    #[test]
    fn paths_stay_paths() {
        for p in ["/tmp/repo", "repo", "./gdrive:x", "C:\\repo", "a:b", "~/x"] {
            assert_eq!(Location::parse(p).expect(p), Location::Local(p.into()));
        }
        assert!(Location::parse("").is_err());
    }

    #[test]
    fn s3_forms() {
        let r = remote("s3://my-bucket/some/prefix/");
        assert_eq!((r.service, r.host.as_str()), (Service::S3, "my-bucket"));
        assert_eq!(r.path, "some/prefix");
        assert_eq!(r.to_string(), "s3://my-bucket/some/prefix");
        let r = remote("s3://bkt");
        assert_eq!((r.host.as_str(), r.path.as_str()), ("bkt", ""));
        assert_eq!(r.to_string(), "s3://bkt");
        refused("s3://", "no bucket");
        refused("s3:///prefix", "no bucket");
        refused("s3://Upper/x", "not a valid bucket");
        refused("s3://ab", "not a valid bucket");
        refused("s3://key:secret@bucket/x", "credentials");
        refused("s3://bkt/a/../b", "`..`");
    }

    #[test]
    fn webdav_forms() {
        let r = remote("webdav://127.0.0.1:8080/backups/lumina");
        assert_eq!(r.service, Service::Webdav);
        assert_eq!((r.host.as_str(), r.tls), ("127.0.0.1:8080", false));
        assert_eq!(r.path, "backups/lumina");
        assert_eq!(r.to_string(), "webdav://127.0.0.1:8080/backups/lumina");
        let r = remote("webdavs://dav.example.org");
        assert!(r.tls);
        assert_eq!((r.host.as_str(), r.path.as_str()), ("dav.example.org", ""));
        assert_eq!(remote("webdav://[::1]:81/x").host, "[::1]:81");
        refused("webdav://", "no host");
        refused("webdav://:80/x", "not a host");
        refused("webdav://host:0/x", "not a port");
        refused("webdav://host:99999/x", "not a port");
        refused("webdav://host:http/x", "not a port");
        refused("webdav://u:p@host/x", "credentials");
        refused("webdav://[::1/x", "unclosed");
        refused("webdav://ho st/x", "not a host");
    }

    #[test]
    fn sftp_forms() {
        let r = remote("sftp://backup@nas.local:2222/srv/lumina");
        assert_eq!(r.service, Service::Sftp);
        assert_eq!(r.user.as_deref(), Some("backup"));
        assert_eq!(
            (r.host.as_str(), r.path.as_str()),
            ("nas.local:2222", "srv/lumina")
        );
        assert_eq!(r.to_string(), "sftp://backup@nas.local:2222/srv/lumina");
        let r = remote("sftp://nas/x");
        assert_eq!(r.user, None);
        refused("sftp://u:pw@nas/x", "password");
        refused("sftp://nas", "no path");
        refused("sftp://@nas/x", "user name");
        refused("sftp://u@/x", "no host");
    }

    #[test]
    fn drive_forms() {
        for (text, service) in [
            ("gdrive:Backups/lumina", Service::Gdrive),
            ("dropbox:Backups/lumina", Service::Dropbox),
            ("onedrive:Backups/lumina", Service::Onedrive),
        ] {
            let r = remote(text);
            assert_eq!((r.service, r.path.as_str()), (service, "Backups/lumina"));
            assert_eq!(r.to_string(), text);
        }
        assert_eq!(remote("gdrive:/x/").path, "x");
        refused("gdrive:", "no folder");
        refused("dropbox:/", "no folder");
        refused("onedrive://x", "not onedrive://");
        refused("gdrive:a/../b", "`..`");
    }

    #[test]
    fn unknown_schemes_are_refused() {
        refused("ftp://host/x", "unknown scheme");
        refused("http://host/x", "unknown scheme");
    }
}
