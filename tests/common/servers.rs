//! Real servers for the remote-repository tests, started by the tests on
//! loopback and stopped on drop: a 1-node Garage cluster (S3) and
//! `rclone serve webdav`. A missing binary FAILS the test with how to install
//! it (a test that silently skipped would hide a regression).
//!
//! Binaries: `LUMINA_TEST_GARAGE` or `garage` on PATH or
//! `/work/tools/garage/bin/garage`; `LUMINA_TEST_RCLONE` or `rclone` on PATH.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds a binary: the env var, then PATH, then the extra places; panics
/// with `install` when none is there.
fn find(var: &str, name: &str, extra: &[&str], install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var}={} is not a file. {install}",
            p.display()
        );
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join(name);
            if c.is_file() {
                return c;
            }
        }
    }
    for e in extra {
        let c = PathBuf::from(e);
        if c.is_file() {
            return c;
        }
    }
    panic!("`{name}` was not found (set {var}, or put it on PATH). {install}");
}

/// A free TCP port on 127.0.0.1 (bound and released; the server takes it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on port {port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30 s");
}

/// `rclone serve webdav` of a folder on a loopback port.
pub struct Webdav {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    auth: Option<(String, String)>,
}

impl Webdav {
    /// Serves `dir` (created) on a free port; with `auth`, requires that user
    /// and password.
    pub fn start(dir: &Path, auth: Option<(&str, &str)>) -> Self {
        let bin = find(
            "LUMINA_TEST_RCLONE",
            "rclone",
            &["/usr/bin/rclone"],
            "Install it with `apt-get install -y rclone` (.ci/run does).",
        );
        std::fs::create_dir_all(dir).expect("webdav folder");
        let mut w = Webdav {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            bin,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        w.restart();
        w
    }

    /// Starts the server (again) on the same port and folder.
    pub fn restart(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["serve", "webdav"])
            .arg(&self.dir)
            .args(["--addr", &format!("127.0.0.1:{}", self.port)])
            .args(["--config", "/dev/null"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((u, p)) = &self.auth {
            cmd.args(["--user", u, "--pass", p]);
        }
        let mut child = cmd.spawn().expect("starting rclone serve webdav");
        wait_for_port(self.port, &mut child, "rclone serve webdav");
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `webdav://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("webdav://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Webdav {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 1-node Garage cluster with one bucket and one key.
pub struct Garage {
    child: Option<Child>,
    bin: PathBuf,
    config: PathBuf,
    pub s3_port: u16,
    rpc_port: u16,
    /// The admin API's port (`/metrics`, with [`Garage::METRICS_TOKEN`]).
    pub admin_port: u16,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

impl Garage {
    /// The bearer token of the admin API's `/metrics` (loopback only).
    pub const METRICS_TOKEN: &'static str = "lumina-test-metrics";

    /// Starts a node in `dir`, lays out the cluster, creates `bucket` and a
    /// key allowed on it.
    pub fn start(dir: &Path, bucket: &str) -> Self {
        let bin = find(
            "LUMINA_TEST_GARAGE",
            "garage",
            &["/work/tools/garage/bin/garage"],
            "Install it with `cargo install --locked garage --version 2.5.0 --root /work/tools/garage` (.ci/run does; it takes about 30 minutes).",
        );
        std::fs::create_dir_all(dir).expect("garage folder");
        let s3_port = free_port();
        let rpc_port = free_port();
        let admin_port = free_port();
        let config = dir.join("garage.toml");
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
            .collect();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
metrics_token = "{metrics_token}"
"#,
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
                metrics_token = Garage::METRICS_TOKEN,
            ),
        )
        .expect("garage config");
        let mut g = Garage {
            child: None,
            bin,
            config,
            s3_port,
            rpc_port,
            admin_port,
            bucket: bucket.to_string(),
            key_id: String::new(),
            secret: String::new(),
        };
        g.restart();
        let status = g.cli(&["status"]);
        let node = status
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|w| w.len() == 16 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no node id in `garage status`:\n{status}"))
            .to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.cli(&["layout", "apply", "--version", "1"]);
        (g.key_id, g.secret) = g.bucket_with_key(bucket, "lumina-test");
        g
    }

    /// Creates `bucket` and a key `key` that owns it (and nothing else);
    /// returns the key's id and secret.
    pub fn bucket_with_key(&self, bucket: &str, key: &str) -> (String, String) {
        self.cli(&["bucket", "create", bucket]);
        let out = self.cli(&["key", "create", key]);
        let field = |name: &str| {
            out.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no `{name}` in `garage key create`:\n{out}"))
        };
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", key,
        ]);
        (field("Key ID"), field("Secret key"))
    }

    /// Runs `garage -c CONFIG ARGS`, panicking on failure; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("running garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the node (again) with the same configuration and data.
    pub fn restart(&mut self) {
        let mut child = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting garage server");
        wait_for_port(self.rpc_port, &mut child, "garage");
        wait_for_port(self.s3_port, &mut child, "garage");
        self.child = Some(child);
        // The node answers once its RPC is up.
        let start = Instant::now();
        loop {
            let ok = Command::new(&self.bin)
                .arg("-c")
                .arg(&self.config)
                .arg("status")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok || start.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the node (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The S3 requests the node has answered since it started, by endpoint
    /// (`PutObject`, `GetObject`, `HeadObject`, `ListObjectsV2`, ...), from
    /// the admin API's Prometheus counter `api_s3_request_counter`; error
    /// answers (`api_s3_error_counter`, also counted under their endpoint)
    /// as `"ENDPOINT STATUS!"`. The difference of two calls is what the
    /// commands between them asked.
    pub fn s3_requests(&self) -> std::collections::BTreeMap<String, u64> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin_port))
            .expect("connecting to Garage's admin API");
        write!(
            s,
            "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            Self::METRICS_TOKEN
        )
        .expect("asking Garage for its metrics");
        let mut body = String::new();
        s.read_to_string(&mut body)
            .expect("reading Garage's metrics");
        assert!(
            body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
            "Garage's /metrics answered: {}",
            body.lines().next().unwrap_or_default()
        );
        let mut out = std::collections::BTreeMap::new();
        for line in body.lines() {
            let error = line.starts_with("api_s3_error_counter{");
            if !line.starts_with("api_s3_request_counter{") && !error {
                continue;
            }
            let label = |name: &str| {
                line.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(str::to_string)
            };
            let Some(mut endpoint) = label("api_endpoint") else {
                continue;
            };
            if error {
                endpoint = format!("{endpoint} {}!", label("status_code").unwrap_or_default());
            }
            let n: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *out.entry(endpoint).or_insert(0) += n as u64;
        }
        out
    }

    /// What `after` ([`Garage::s3_requests`]) counts beyond `before`,
    /// endpoints with none left out.
    pub fn requests_between(
        before: &std::collections::BTreeMap<String, u64>,
        after: &std::collections::BTreeMap<String, u64>,
    ) -> std::collections::BTreeMap<String, u64> {
        after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// `s3://BUCKET/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The environment a client needs.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            (
                "AWS_ENDPOINT_URL".into(),
                format!("http://127.0.0.1:{}", self.s3_port),
            ),
            ("AWS_REGION".into(), "garage".into()),
        ]
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Garage cluster of `n` nodes on loopback with replication factor `n`
/// (one zone per node), a bucket and a key; clients talk to node 0's S3
/// port, and any other node can be stopped and started again.
pub struct GarageCluster {
    /// The nodes; node 0 serves the clients.
    pub nodes: Vec<Garage>,
}

impl GarageCluster {
    /// Starts `n` nodes in `dir/node<i>`, connects them, lays them out, and
    /// creates `bucket` and a key allowed on it.
    pub fn start(dir: &Path, n: usize, bucket: &str) -> Self {
        let bin = find(
            "LUMINA_TEST_GARAGE",
            "garage",
            &["/work/tools/garage/bin/garage"],
            "Install it with `cargo install --locked garage --version 2.5.0 --root /work/tools/garage` (.ci/run does; it takes about 30 minutes).",
        );
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 53 + 7) % 256))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let d = dir.join(format!("node{i}"));
            std::fs::create_dir_all(&d).expect("garage node folder");
            let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
            let config = d.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = {n}
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
metrics_token = "{metrics_token}"
"#,
                    meta = d.join("meta").display(),
                    data = d.join("data").display(),
                    metrics_token = Garage::METRICS_TOKEN,
                ),
            )
            .expect("garage config");
            let mut g = Garage {
                child: None,
                bin: bin.clone(),
                config,
                s3_port,
                rpc_port,
                admin_port,
                bucket: bucket.to_string(),
                key_id: String::new(),
                secret: String::new(),
            };
            g.restart();
            nodes.push(g);
        }
        let ids: Vec<String> = nodes
            .iter()
            .map(|g| g.cli(&["node", "id", "-q"]).trim().to_string())
            .collect();
        for id in &ids[1..] {
            nodes[0].cli(&["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().expect("node id");
            let zone = format!("dc{i}");
            nodes[0].cli(&["layout", "assign", "-z", &zone, "-c", "1G", short]);
        }
        nodes[0].cli(&["layout", "apply", "--version", "1"]);
        let (key_id, secret) = nodes[0].bucket_with_key(bucket, "lumina-test");
        nodes[0].key_id = key_id;
        nodes[0].secret = secret;
        GarageCluster { nodes }
    }

    /// `s3://BUCKET/<prefix>` (through node 0).
    pub fn url(&self, prefix: &str) -> String {
        self.nodes[0].url(prefix)
    }

    /// The environment a client needs (node 0's S3 endpoint).
    pub fn env(&self) -> Vec<(String, String)> {
        self.nodes[0].env()
    }
}

/// Debian's `sshd` on a loopback port, run from a folder of its own: a
/// generated host key, a generated client key allowed in an
/// `authorized_keys` file there, no PAM, nothing read from `/etc/ssh`.
pub struct Sshd {
    child: Option<Child>,
    pub port: u16,
    /// The client's private key (for `LUMINA_BACKUP_SFTP_KEY`).
    pub key: PathBuf,
    /// The user it accepts (the one running the tests).
    pub user: String,
}

impl Sshd {
    /// Generates the keys and config in `dir` and starts `sshd -D`.
    pub fn start(dir: &Path) -> Self {
        let install = "Install Debian's `openssh-server` (.ci/run does).";
        let sshd = find("LUMINA_TEST_SSHD", "sshd", &["/usr/sbin/sshd"], install);
        let sftp_server = [
            "/usr/lib/openssh/sftp-server",
            "/usr/libexec/openssh/sftp-server",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no sftp-server next to sshd. {install}"));
        std::fs::create_dir_all(dir).expect("sshd folder");
        let keygen = |path: &Path| {
            let _ = std::fs::remove_file(path);
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path)
                .status()
                .expect("running ssh-keygen");
            assert!(ok.success(), "ssh-keygen failed");
        };
        let host_key = dir.join("host_ed25519");
        let key = dir.join("client_ed25519");
        keygen(&host_key);
        keygen(&key);
        let authorized = dir.join("authorized_keys");
        std::fs::copy(dir.join("client_ed25519.pub"), &authorized).expect("authorized_keys");
        let user = String::from_utf8(
            Command::new("id")
                .arg("-un")
                .output()
                .expect("id -un")
                .stdout,
        )
        .expect("user name")
        .trim()
        .to_string();
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {hk}\nPidFile {pid}\n\
                 AuthorizedKeysFile {ak}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 Subsystem sftp {sftp}\n",
                hk = host_key.display(),
                pid = dir.join("sshd.pid").display(),
                ak = authorized.display(),
                sftp = sftp_server.display(),
            ),
        )
        .expect("sshd config");
        // sshd wants an absolute path and its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sshd");
        wait_for_port(port, &mut child, "sshd");
        Sshd {
            child: Some(child),
            port,
            key,
            user,
        }
    }

    /// `sftp://USER@127.0.0.1:PORT<absolute path>`.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "sftp://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// The environment a client needs.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "LUMINA_BACKUP_SFTP_KEY".into(),
                self.key.display().to_string(),
            ),
            ("LUMINA_BACKUP_SFTP_KNOWN_HOSTS".into(), "accept".into()),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
