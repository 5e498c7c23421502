//! The configuration file through the CLI (`config check`, `watch --config`),
//! `schedule install` output (golden files; systemd-analyze where available),
//! and `Repository::snapshot_before`.

mod common;

use std::path::{Path, PathBuf};

use common::{create_lumina, Lb, TestDir};
use lumina_backup::{NoProgress, OpenOptions, Policy, Repository, TimeZone};

fn lb(t: &TestDir) -> Lb {
    t.lb().env("LUMINA_BACKUP_STATE_DIR", t.path("state"))
}

fn write(t: &TestDir, text: &str) -> PathBuf {
    let p = t.path("backup.toml");
    std::fs::write(&p, text).expect("config");
    p
}

#[test]
fn config_check_names_the_key_and_line() {
    let t = TestDir::new("config-check");
    let good = write(&t, "repository = \"~/.lumina/backups\"\ndatabases = [\"~/.lumina/lumina.db\"]\nschedule = \"daily\"\nretention = 4\n");
    let out = lb(&t)
        .args(["config", "check", "--config"])
        .arg(&good)
        .ok()
        .out();
    assert!(out.contains("ok"), "{out}");
    let doc = lb(&t)
        .args(["config", "check", "--json", "--config"])
        .arg(&good)
        .ok()
        .json();
    assert_eq!(doc["app"]["schedule"], "daily");
    assert_eq!(doc["app"]["retention"], 4);

    for (text, line, key) in [
        ("schedule = \"daily\"\nretension = 4\n", 2, "retension"),
        ("schedule = \"daily\"\n\n\nschedule2 = 1\n", 4, "schedule2"),
        ("schedule = \"fortnightly\"\n", 1, "schedule"),
        (
            "[retention]\nkeep_daily = \"seven\"\n",
            2,
            "retention.keep_daily",
        ),
        (
            "databases = [\"a.db\", { path = \"b.db\", every = \"1m\" }]\n",
            1,
            "databases",
        ),
    ] {
        let bad = write(&t, text);
        for cmd in [
            &["config", "check", "--config"][..],
            &["watch", "--config"][..],
        ] {
            let r = lb(&t).args(cmd).arg(&bad).run();
            r.expect_code(2).expect_one_stderr_line();
            assert!(
                r.stderr.contains(&format!("line {line}")),
                "{text}: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains(&format!("`{key}")),
                "{text}: {}",
                r.stderr
            );
        }
    }
    // A missing file named with --config: exit 2 saying so.
    let r = lb(&t)
        .args(["config", "check", "--config"])
        .arg(t.path("none.toml"))
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    // The default path is ~/.lumina/backup.toml (HOME is the test folder).
    std::fs::create_dir_all(t.path(".lumina")).expect("dir");
    std::fs::write(
        t.path(".lumina/backup.toml"),
        "schedule = \"weekly\"\nweekday = \"friday\"\n",
    )
    .expect("write");
    lb(&t).args(["config", "check"]).ok();
}

#[test]
fn flags_override_the_file() {
    let t = TestDir::new("config-flags");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 20, 1);
    // The file names another (missing) repository and a manual schedule;
    // --repo and --every win, and the watcher snapshots the database given.
    let cfg = write(&t, "repository = \"/nonexistent/repo\"\nschedule = \"manual\"\ndatabases = [\"/nonexistent/x.db\"]\n");
    let mut child = lb(&t)
        .args(["watch", "--json", "--every", "1h", "--config"])
        .arg(&cfg)
        .arg(&db)
        .spawn_piped();
    let start = std::time::Instant::now();
    loop {
        let list = lb(&t).args(["snapshots", "--json"]).ok().json();
        if list.as_array().is_some_and(|a| a.len() == 1) {
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "no snapshot");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().expect("wait").success());
}

/// The binary's path in generated definitions, replaced for the golden files.
fn normalized(text: &str) -> String {
    text.replace(common::BIN, "@EXE@")
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("LUMINA_BACKUP_BLESS").is_some() {
        std::fs::write(&path, actual).expect("bless");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (LUMINA_BACKUP_BLESS=1 writes it)", path.display()));
    assert_eq!(actual, want, "{name} differs from its golden file");
}

#[test]
fn schedule_install_definitions() {
    let t = TestDir::new("schedule");
    let cfg_dir = t.path("cfg");
    std::fs::create_dir_all(&cfg_dir).expect("dir");
    let cfg = cfg_dir.join("backup.toml");
    std::fs::write(&cfg, "databases = [\"a.db\"]\nschedule = \"daily\"\n").expect("config");
    let cfg = std::fs::canonicalize(&cfg).expect("canonical");
    for (system, golden) in [
        ("systemd", "lumina-backup-watch.service"),
        ("launchd", "com.lumina.backup.watch.plist"),
        ("windows", "watch-task.xml"),
    ] {
        let out = Lb::new(Path::new("/backups"), t.root())
            .args([
                "schedule", "install", "--print", "--system", system, "--config",
            ])
            .arg(&cfg)
            .ok()
            .out();
        let out = normalized(&out).replace(&cfg.display().to_string(), "@CONFIG@");
        check_golden(golden, &out);
    }
    // Installed into a private XDG_CONFIG_HOME, without calling systemctl.
    let xdg = t.path("xdg");
    let lb = || {
        Lb::new(Path::new("/backups"), t.root())
            .env("XDG_CONFIG_HOME", &xdg)
            .arg("schedule")
    };
    lb().args(["install", "--no-enable", "--system", "systemd", "--config"])
        .arg(&cfg)
        .ok();
    let unit = xdg.join("systemd/user/lumina-backup-watch.service");
    let text = std::fs::read_to_string(&unit).expect("unit written");
    assert!(text.contains("ExecStart="), "{text}");
    // systemd's own check, where systemd is installed (it only reads the
    // files; a private runtime folder keeps it off the real user manager).
    let analyze = |unit: &Path| {
        let runtime = t.path("runtime");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        std::process::Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(unit)
            .env("XDG_CONFIG_HOME", &xdg)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output()
            .ok()
    };
    if let Some(out) = analyze(&unit) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze: {stderr}"
        );
        // The check can fail: a unit with an unknown key and a relative command.
        let bad = unit.with_file_name("lumina-backup-bad.service");
        std::fs::write(&bad, "[Service]\nExecStart=relative\nBogus=1\n").expect("bad unit");
        let out = analyze(&bad).expect("ran before");
        assert!(!out.status.success(), "systemd-analyze accepted a bad unit");
        std::fs::remove_file(&bad).expect("remove");
    }
    lb().args(["remove", "--no-enable", "--system", "systemd"])
        .ok();
    assert!(!unit.exists());
    // A bad configuration file is refused before anything is written.
    std::fs::write(&cfg, "schedule = \"sometimes\"\n").expect("config");
    lb().args(["install", "--no-enable", "--system", "systemd", "--config"])
        .arg(&cfg)
        .run()
        .expect_code(2);
    assert!(!unit.exists());
}

#[test]
fn snapshot_before_tags_notes_and_keeps() {
    let t = TestDir::new("before");
    let db = t.path("lumina.db");
    create_lumina(&db, 30, 2);
    Repository::init(&t.repo()).expect("init");
    let mut repo = Repository::open(&t.repo(), &OpenOptions::default()).expect("open");
    let before = repo.snapshot_before(&db, "migration").expect("before");
    assert_eq!(before.snapshot.record.tags, vec!["before:migration"]);
    assert_eq!(before.snapshot.record.note, "before migration");
    assert!(repo
        .snapshot_before(&db, "two words")
        .expect_err("bad reason")
        .is_user_error());
    // Regular snapshots after it: keep-last 1 keeps the newest regular one,
    // and the before: snapshot by its own rule (30 days by default).
    let c = common::open(&db);
    for i in 0..3 {
        c.execute("UPDATE metadata SET lastModified = ?1", [i])
            .expect("write");
        repo.snapshot(&db, &Default::default(), &NoProgress)
            .expect("snapshot");
    }
    let report = repo
        .forget(
            Some(&Policy::keep_last(1)),
            None,
            false,
            None,
            &TimeZone::UTC,
            &NoProgress,
        )
        .expect("forget");
    assert_eq!(report.plan.removed().count(), 2);
    let kept: Vec<_> = repo.list().expect("list");
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().any(|s| s.id == before.snapshot.id));
    let why = report
        .plan
        .kept()
        .find(|d| d.id == before.snapshot.id)
        .expect("kept")
        .reasons
        .clone();
    assert_eq!(why, vec!["before:* younger than 30d"]);
    // With keep-before 0h it is no longer kept by that rule.
    let mut settings = repo.retention_settings().expect("settings");
    lumina_backup::set_setting(&mut settings, "keep-last", "1").expect("set");
    lumina_backup::set_setting(&mut settings, "keep-before", "0h").expect("set");
    repo.set_retention_settings(&settings).expect("save");
    let report = repo
        .forget(None, None, false, None, &TimeZone::UTC, &NoProgress)
        .expect("forget");
    assert_eq!(report.plan.removed().count(), 1);
    assert!(repo
        .list()
        .expect("list")
        .iter()
        .all(|s| s.id != before.snapshot.id));
}
