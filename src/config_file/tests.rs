use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse(text, Path::new("backup.toml"))
}

#[test]
fn the_spec_example_and_every_key_parse() {
    let c = parse(
        r#"
repository = "~/.lumina/backups"      # a path or a location URL
databases = ["~/.lumina/lumina.db"]
schedule = "daily"
retention = 4
"#,
    )
    .expect("spec example");
    assert_eq!(c.schedule, Schedule::Daily);
    assert_eq!(c.retention, Some(Retention::Last(4)));
    assert_eq!(
        c.databases,
        vec![DatabaseConfig::new("~/.lumina/lumina.db")]
    );

    let c = parse(
        r#"
enabled = true
auto_backup = false
repository = "s3://bucket/lumina"
schedule = "weekly"
time = "02:30"
weekday = "sunday"
on_change = true
min_gap = "5m"
compression = 9
encryption = { passphrase_command = "pass show lumina" }
remotes = ["/mnt/usb/lumina"]
restore_drill = "7d"
cloud_provider = "google-drive"
cloud_path = "Backups/Lumina"
webhook = "http://127.0.0.1:9/hook"
databases = ["a.db", { path = "b.db", schedule = "15m", on_change = false, min_gap = "1h30m", tags = ["b"] }]

[retention]
keep_daily = 7
keep_weekly = 4
keep_before = "60d"

[hooks]
on_failure = "notify-send failed"
"#,
    )
    .expect("every key");
    assert_eq!(
        c.time,
        Some(TimeOfDay {
            hour: 2,
            minute: 30
        })
    );
    assert_eq!(c.weekday, Some(Weekday::Sunday));
    assert_eq!(c.min_gap, Some(Interval(Duration::from_secs(300))));
    assert_eq!(c.compression, Some(Compression::Level(9)));
    assert_eq!(c.compression.map(Compression::zstd_level), Some(9));
    assert_eq!(Compression::Enabled(true).zstd_level(), 3);
    assert_eq!(Compression::Enabled(false).zstd_level(), 1);
    assert_eq!(
        c.restore_drill,
        Some(Interval(Duration::from_secs(7 * 86400)))
    );
    assert_eq!(
        c.encryption,
        Some(PassphraseSource::Command("pass show lumina".into()))
    );
    assert_eq!(
        c.remotes(),
        vec!["/mnt/usb/lumina", "gdrive:Backups/Lumina"]
    );
    assert_eq!(
        c.databases[1].min_gap,
        Some(Interval(Duration::from_secs(5400)))
    );
    assert_eq!(
        c.databases[1].schedule,
        Some(Schedule::Every(Interval(Duration::from_secs(900))))
    );
    let Some(Retention::Rules(r)) = &c.retention else {
        panic!("rules")
    };
    assert_eq!(r.keep_daily, Some(7));
    let p = c
        .retention
        .as_ref()
        .expect("retention")
        .policy()
        .expect("policy");
    assert_eq!(
        p.before,
        crate::retention::Span::parse("60d").expect("span")
    );
    assert_eq!(c.hooks.on_failure.as_deref(), Some("notify-send failed"));
    // Written back, it reads the same.
    assert_eq!(parse(&c.to_toml()).expect("round trip"), c);
}

fn error(text: &str) -> ConfigError {
    parse(text).expect_err(text)
}

#[test]
fn errors_name_the_key_and_line() {
    let e = error("repository = \"/r\"\nshedule = \"daily\"\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("shedule")));
    assert!(e.message.contains("unknown field"), "{e}");

    let e = error("databases = [\"a.db\"]\n\nschedule = \"hourly\"\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("schedule")));
    assert!(e.message.contains("daily, weekly, monthly, manual"), "{e}");

    let e = error("retention = 0\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("retention")));

    let e = error("schedule = \"daily\"\n[retention]\nkeep_dayly = 3\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("retention.keep_dayly"))
    );

    let e = error("[hooks]\non_sucess = \"x\"\n");
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(2), Some("hooks.on_sucess"))
    );

    let e = error("schedule = \"daily\"\ntime = \"25:00\"\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("time")));

    let e = error("min_gap = \"soon\"\n");
    assert_eq!(e.key.as_deref(), Some("min_gap"));

    let e = error("encryption = true\n");
    assert!(e.message.contains("passphrase_env"), "{e}");

    let e = error("encryption = { passphrase_env = \"A\", passphrase_file = \"f\" }\n");
    assert!(e.message.contains("exactly one"), "{e}");

    // Checks between keys name the key too.
    let e = error("schedule = \"daily\"\n\nweekday = \"monday\"\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("weekday")));
    let e = error("schedule = \"15m\"\ntime = \"03:00\"\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("time")));
    let e = error("remotes = [\"s3://\"]\n");
    assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("remotes")));
    let e = error("cloud_provider = \"dropbox\"\n");
    assert_eq!(e.key.as_deref(), Some("cloud_path"));
    // The message is one line naming the file.
    assert!(e.to_string().starts_with("configuration file backup.toml"));
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn durations() {
    for (text, secs) in [
        ("1s", 1),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86_400),
        ("1h30m", 5400),
    ] {
        let i = Interval::parse(text).expect(text);
        assert_eq!(i.0, Duration::from_secs(secs));
        assert_eq!(i.to_string(), text);
    }
    for bad in ["", "0s", "15", "m", "1x", "99999999999999999999d"] {
        assert!(Interval::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_apps_backup_config_maps_one_to_one() {
    // The app's DEFAULT_BACKUP_CONFIG, as JSON from the frontend.
    let json = r#"{"enabled":true,"autoBackup":true,"schedule":"weekly","retention":4,
        "compression":true,"encryption":false}"#;
    let app: AppBackupConfig = serde_json::from_str(json).expect("BackupConfig");
    assert_eq!(app, AppBackupConfig::default());
    let file = ConfigFile::from_app(
        &app,
        Some("~/.lumina/backups".into()),
        vec!["~/.lumina/lumina.db".into()],
    )
    .expect("maps");
    let text = file.to_toml();
    let back = parse(&text).expect("the written file parses");
    assert_eq!(back.to_app(), app);

    let cloud = AppBackupConfig {
        schedule: "daily".into(),
        retention: 10,
        compression: false,
        encryption: true,
        cloud_provider: Some(CloudProvider::Dropbox),
        cloud_path: Some("/Apps/Lumina".into()),
        ..AppBackupConfig::default()
    };
    let file = ConfigFile::from_app(&cloud, None, vec![]).expect("maps");
    let back = parse(&file.to_toml()).expect("parses");
    assert_eq!(back.to_app(), cloud);
    assert_eq!(back.remotes(), vec!["dropbox:Apps/Lumina"]);
    assert_eq!(
        back.encryption,
        Some(PassphraseSource::Env("LUMINA_BACKUP_PASSWORD".into()))
    );
    let bad = AppBackupConfig {
        schedule: "hourly".into(),
        ..AppBackupConfig::default()
    };
    assert!(ConfigFile::from_app(&bad, None, vec![]).is_err());
}
