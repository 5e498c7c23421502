//! One opendal operator per service, configured from a [`Remote`] location
//! and the environment. Each service is compiled in only with its cargo
//! feature; a location whose service this build lacks is an input error
//! naming the feature.
//!
//! Environment (the secrets never leave this module except into opendal's
//! builders); a remote with an `env_prefix` (a copy's destination) reads each
//! variable with that prefix first (`LUMINA_BACKUP_` itself dropped):
//!
//! | service | variables |
//! |---|---|
//! | S3 | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (required), `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (default AWS), `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`) |
//! | WebDAV | `LUMINA_BACKUP_WEBDAV_USER` and `LUMINA_BACKUP_WEBDAV_PASSWORD`, or `LUMINA_BACKUP_WEBDAV_TOKEN` (bearer); none: anonymous |
//! | SFTP | `LUMINA_BACKUP_SFTP_KEY` (a private key file; default: ssh's agent and config), `LUMINA_BACKUP_SFTP_KNOWN_HOSTS` (`strict`, default; `add`; `accept`) |
//! | Google Drive, Dropbox, OneDrive | `LUMINA_BACKUP_{GDRIVE,DROPBOX,ONEDRIVE}_ACCESS_TOKEN`, or `..._REFRESH_TOKEN` with `..._CLIENT_ID` and `..._CLIENT_SECRET` |

use opendal::Operator;

use crate::backend::location::{Remote, Service};
use crate::error::{Error, Repr, Result};

/// An operator and whether its PUT is atomic.
pub(super) struct Built {
    pub(super) op: Operator,
    pub(super) atomic_put: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Variable `name` for `remote`: with its prefix first (`Remote::env_prefix`),
/// then as it is.
fn env(remote: &Remote, name: &str) -> Option<String> {
    if let Some(prefix) = &remote.env_prefix {
        let short = name.strip_prefix("LUMINA_BACKUP_").unwrap_or(name);
        if let Some(v) = var(&format!("{prefix}{short}")) {
            return Some(v);
        }
    }
    var(name)
}

fn missing(remote: &Remote, message: String) -> Error {
    Repr::Credentials {
        location: remote.to_string(),
        message,
    }
    .into()
}

#[allow(dead_code)]
fn config_error(remote: &Remote, e: opendal::Error) -> Error {
    Repr::Credentials {
        location: remote.to_string(),
        message: format!(
            "invalid configuration: {}",
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
    .into()
}

#[allow(dead_code)]
fn root_of(remote: &Remote) -> String {
    format!("/{}/", remote.path).replace("//", "/")
}

/// Builds the operator for `remote`.
pub(super) fn build(remote: &Remote) -> Result<Built> {
    match remote.service {
        Service::S3 => s3(remote),
        Service::Webdav => webdav(remote),
        Service::Sftp => sftp(remote),
        Service::Gdrive | Service::Dropbox | Service::Onedrive => drive(remote),
    }
}

#[allow(dead_code)]
fn not_built(remote: &Remote) -> Error {
    Error::invalid_input(format!(
        "{remote}: this lumina-backup was built without {} support (cargo feature `{}`)",
        remote.service.feature(),
        remote.service.feature()
    ))
}

#[cfg(feature = "s3")]
fn s3(remote: &Remote) -> Result<Built> {
    let (Some(key), Some(secret)) = (
        env(remote, "AWS_ACCESS_KEY_ID"),
        env(remote, "AWS_SECRET_ACCESS_KEY"),
    ) else {
        return Err(missing(
            remote,
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a store other than AWS)".into(),
        ));
    };
    let region = env(remote, "AWS_REGION")
        .or_else(|| env(remote, "AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let mut b = opendal::services::S3::default()
        .bucket(&remote.host)
        .root(&root_of(remote))
        .region(&region)
        .access_key_id(&key)
        .secret_access_key(&secret)
        .disable_config_load()
        .disable_ec2_metadata();
    if let Some(endpoint) =
        env(remote, "AWS_ENDPOINT_URL_S3").or_else(|| env(remote, "AWS_ENDPOINT_URL"))
    {
        b = b.endpoint(&endpoint);
    }
    if let Some(token) = env(remote, "AWS_SESSION_TOKEN") {
        b = b.session_token(&token);
    }
    let op = Operator::new(b)
        .map_err(|e| config_error(remote, e))?
        .finish();
    Ok(Built {
        op,
        atomic_put: true,
    })
}

#[cfg(not(feature = "s3"))]
fn s3(remote: &Remote) -> Result<Built> {
    Err(not_built(remote))
}

#[cfg(feature = "webdav")]
fn webdav(remote: &Remote) -> Result<Built> {
    let scheme = if remote.tls { "https" } else { "http" };
    let mut b = opendal::services::Webdav::default()
        .endpoint(&format!("{scheme}://{}", remote.host))
        .root(&root_of(remote));
    match (
        env(remote, "LUMINA_BACKUP_WEBDAV_USER"),
        env(remote, "LUMINA_BACKUP_WEBDAV_PASSWORD"),
        env(remote, "LUMINA_BACKUP_WEBDAV_TOKEN"),
    ) {
        (_, _, Some(token)) => b = b.token(&token),
        (Some(user), Some(pw), None) => b = b.username(&user).password(&pw),
        (Some(_), None, None) => {
            return Err(missing(
                remote,
                "LUMINA_BACKUP_WEBDAV_USER is set but LUMINA_BACKUP_WEBDAV_PASSWORD is not".into(),
            ))
        }
        (None, Some(_), None) => {
            return Err(missing(
                remote,
                "LUMINA_BACKUP_WEBDAV_PASSWORD is set but LUMINA_BACKUP_WEBDAV_USER is not".into(),
            ))
        }
        (None, None, None) => {}
    }
    let op = Operator::new(b)
        .map_err(|e| config_error(remote, e))?
        .finish();
    Ok(Built {
        op,
        atomic_put: false,
    })
}

#[cfg(not(feature = "webdav"))]
fn webdav(remote: &Remote) -> Result<Built> {
    Err(not_built(remote))
}

#[cfg(all(feature = "sftp", unix))]
fn sftp(remote: &Remote) -> Result<Built> {
    let endpoint = match &remote.user {
        Some(u) => format!("ssh://{u}@{}", remote.host),
        None => format!("ssh://{}", remote.host),
    };
    let strategy = env(remote, "LUMINA_BACKUP_SFTP_KNOWN_HOSTS").unwrap_or_else(|| "strict".into());
    let strategy = match strategy.to_ascii_lowercase().as_str() {
        "strict" => "Strict",
        "add" => "Add",
        "accept" => "Accept",
        other => {
            return Err(Error::invalid_input(format!(
                "LUMINA_BACKUP_SFTP_KNOWN_HOSTS is `{other}`; use strict, add or accept"
            )))
        }
    };
    let mut b = opendal::services::Sftp::default()
        .endpoint(&endpoint)
        .root(&root_of(remote))
        .known_hosts_strategy(strategy);
    if let Some(key) = env(remote, "LUMINA_BACKUP_SFTP_KEY") {
        b = b.key(&key);
    }
    let op = Operator::new(b)
        .map_err(|e| config_error(remote, e))?
        .finish();
    Ok(Built {
        op,
        atomic_put: false,
    })
}

#[cfg(not(all(feature = "sftp", unix)))]
fn sftp(remote: &Remote) -> Result<Built> {
    Err(not_built(remote))
}

/// The OAuth variables of a drive: an access token, or a refresh token with
/// the client id and secret it was issued to.
#[allow(dead_code)]
struct Tokens {
    access: Option<String>,
    refresh: Option<(String, String, String)>,
}

#[allow(dead_code)]
fn tokens(remote: &Remote) -> Result<Tokens> {
    let p = format!(
        "LUMINA_BACKUP_{}",
        remote.service.feature().to_ascii_uppercase()
    );
    let access = env(remote, &format!("{p}_ACCESS_TOKEN"));
    let refresh = env(remote, &format!("{p}_REFRESH_TOKEN"));
    let id = env(remote, &format!("{p}_CLIENT_ID"));
    let secret = env(remote, &format!("{p}_CLIENT_SECRET"));
    let refresh = match (refresh, id, secret) {
        (Some(r), Some(i), Some(s)) => Some((r, i, s)),
        (Some(_), _, _) => {
            return Err(missing(
                remote,
                format!("{p}_REFRESH_TOKEN needs {p}_CLIENT_ID and {p}_CLIENT_SECRET too"),
            ))
        }
        _ => None,
    };
    if access.is_none() && refresh.is_none() {
        return Err(missing(
            remote,
            format!(
                "no token: set {p}_ACCESS_TOKEN, or {p}_REFRESH_TOKEN with {p}_CLIENT_ID and {p}_CLIENT_SECRET (README, \"Cloud drives\")"
            ),
        ));
    }
    Ok(Tokens { access, refresh })
}

/// Applies the tokens to a drive builder (the three share the same setters).
#[cfg(any(feature = "gdrive", feature = "dropbox", feature = "onedrive"))]
macro_rules! drive_builder {
    ($builder:expr, $t:expr, $root:expr) => {{
        let mut b = $builder.root($root);
        if let Some(a) = &$t.access {
            b = b.access_token(a);
        }
        if let Some((r, i, s)) = &$t.refresh {
            b = b.refresh_token(r).client_id(i).client_secret(s);
        }
        b
    }};
}

/// The operator of a cloud drive: its builder with the remote's tokens and root.
#[cfg(any(feature = "gdrive", feature = "dropbox", feature = "onedrive"))]
macro_rules! drive_op {
    ($remote:expr, $builder:expr) => {{
        let t = tokens($remote)?;
        let b = drive_builder!($builder, t, &root_of($remote));
        Ok(Built {
            op: Operator::new(b)
                .map_err(|e| config_error($remote, e))?
                .finish(),
            atomic_put: true,
        })
    }};
}

fn drive(remote: &Remote) -> Result<Built> {
    match remote.service {
        #[cfg(feature = "gdrive")]
        Service::Gdrive => drive_op!(remote, opendal::services::Gdrive::default()),
        #[cfg(feature = "dropbox")]
        Service::Dropbox => drive_op!(remote, opendal::services::Dropbox::default()),
        #[cfg(feature = "onedrive")]
        Service::Onedrive => drive_op!(remote, opendal::services::Onedrive::default()),
        _ => Err(not_built(remote)),
    }
}
