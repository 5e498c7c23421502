//! The configuration file's values that are more than a string or a number:
//! each checks itself when read, so a bad one is reported at its own line.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::format::RetentionSettings;
use crate::retention::Policy;

/// A span of time written as `90s`, `15m`, `2h`, `1d` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(pub Duration);

impl Interval {
    /// Parses `1s`, `15m`, `2h`, `7d`, `1h30m`, `500ms` (units `ms`, `s`,
    /// `m`, `h`, `d`, `w`; at least 1 ms).
    pub fn parse(text: &str) -> Result<Interval, String> {
        let bad = || {
            format!("`{text}` is not a duration: write a number and a unit (s, m, h, d), e.g. 15m")
        };
        let mut total_ms: u64 = 0;
        let mut digits = String::new();
        let mut chars = text.trim().chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit_ms: u64 = match c {
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                's' => 1000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                _ => return Err(bad()),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            total_ms = n
                .checked_mul(unit_ms)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(bad)?;
        }
        if !digits.is_empty() || text.trim().is_empty() {
            return Err(bad());
        }
        if total_ms == 0 {
            return Err(format!("`{text}` is zero: give a duration of at least 1s"));
        }
        Ok(Interval(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return write!(f, "0s");
        }
        let mut s = ms / 1000;
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= size {
                write!(f, "{}{unit}", s / size)?;
                s %= size;
            }
        }
        if !ms.is_multiple_of(1000) {
            write!(f, "{}ms", ms % 1000)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Interval::parse(s)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Interval::parse(&text).map_err(de::Error::custom)
    }
}

/// When snapshots are taken (`BackupConfig.schedule`, or a duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Schedule {
    /// Only when asked (and on change, if set).
    #[default]
    Manual,
    /// Once a day at the configured time.
    Daily,
    /// Once a week on the configured weekday and time.
    Weekly,
    /// Once a month on the configured day and time.
    Monthly,
    /// Every so often.
    Every(Interval),
}

impl Schedule {
    /// Parses `daily`, `weekly`, `monthly`, `manual` or a duration.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        Ok(match text {
            "manual" => Schedule::Manual,
            "daily" => Schedule::Daily,
            "weekly" => Schedule::Weekly,
            "monthly" => Schedule::Monthly,
            other => Schedule::Every(Interval::parse(other).map_err(|_| {
                format!("`{other}` is not a schedule: write daily, weekly, monthly, manual or a duration such as 15m")
            })?),
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Manual => write!(f, "manual"),
            Schedule::Daily => write!(f, "daily"),
            Schedule::Weekly => write!(f, "weekly"),
            Schedule::Monthly => write!(f, "monthly"),
            Schedule::Every(i) => write!(f, "{i}"),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Schedule::parse(&text).map_err(de::Error::custom)
    }
}

/// A local time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
}

impl Default for TimeOfDay {
    /// 03:00, when a machine left on is usually idle.
    fn default() -> Self {
        TimeOfDay { hour: 3, minute: 0 }
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            de::Error::custom(format!(
                "`{text}` is not a time of day: write HH:MM, e.g. 03:00"
            ))
        };
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let hour: u8 = h.parse().map_err(|_| bad())?;
        let minute: u8 = m.parse().map_err(|_| bad())?;
        if hour > 23 || minute > 59 || m.len() != 2 {
            return Err(bad());
        }
        Ok(TimeOfDay { hour, minute })
    }
}

/// A day of the week (`monday` ... `sunday`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// Days since Monday (0 to 6).
    pub fn from_monday(self) -> u8 {
        self as u8
    }
}

/// Which snapshots to keep: the last N (`BackupConfig.retention`), or rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Retention {
    /// Keep the last N snapshots of each database.
    Last(u32),
    /// The rules of `config set` (`keep_daily = 7`, ...).
    Rules(RetentionRules),
}

impl Retention {
    /// The policy these settings give.
    pub fn policy(&self) -> Result<Policy, crate::retention::PolicyError> {
        match self {
            Retention::Last(n) => Ok(Policy::keep_last(*n)),
            Retention::Rules(r) => r.policy(),
        }
    }
}

/// The retention rules of a `[retention]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RetentionRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_pre_restore: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_before: Option<String>,
}

impl RetentionRules {
    /// The rules as the repository's stored settings.
    pub fn settings(&self) -> RetentionSettings {
        RetentionSettings {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.clone(),
            keep_tags: self.keep_tags.clone(),
            keep_pre_restore: self.keep_pre_restore.clone(),
            keep_before: self.keep_before.clone(),
        }
    }

    /// The policy these rules give.
    pub fn policy(&self) -> Result<Policy, crate::retention::PolicyError> {
        let p = Policy::from_settings(&self.settings())?;
        if p.is_empty() {
            return Err(crate::retention::PolicyError::Empty);
        }
        Ok(p)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Retention;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a number of snapshots to keep, or a table of keep_* rules"
                )
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Retention, E> {
                match u32::try_from(n) {
                    Ok(n) if n > 0 => Ok(Retention::Last(n)),
                    _ => Err(E::custom(format!(
                        "{n} snapshots cannot be kept: give a number from 1 up"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Retention, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(-1))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Retention, A::Error> {
                RetentionRules::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Retention::Rules)
            }
        }
        d.deserialize_any(V)
    }
}

/// Compression of a repository `watch` creates: on (the default level), off
/// (level 1, the fastest), or a zstd level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Compression {
    /// `true` or `false`.
    Enabled(bool),
    /// A zstd level, 1 to 19.
    Level(u8),
}

impl Compression {
    /// The zstd level: `true` the default (3), `false` the fastest (1).
    pub fn zstd_level(self) -> i32 {
        match self {
            Compression::Enabled(true) => 3,
            Compression::Enabled(false) => 1,
            Compression::Level(l) => i32::from(l),
        }
    }
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Compression;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "true, false or a zstd level from 1 to 19")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Compression, E> {
                Ok(Compression::Enabled(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Compression, E> {
                match u8::try_from(n) {
                    Ok(l) if (1..=19).contains(&l) => Ok(Compression::Level(l)),
                    _ => Err(E::custom(format!(
                        "{n} is not a zstd level: give 1 (fastest) to 19 (smallest)"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Compression, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(-1))
            }
        }
        d.deserialize_any(V)
    }
}

/// Where the passphrase of an encrypted repository comes from. The file never
/// holds the passphrase itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseSource {
    /// Not encrypted (`encryption = false`).
    None,
    /// An environment variable's name.
    Env(String),
    /// A file holding it (first line).
    File(String),
    /// A command printing it (run with `sh -c`; first line of its output).
    Command(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passphrase_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passphrase_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passphrase_command: Option<String>,
}

impl Serialize for PassphraseSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = SourceTable {
            passphrase_env: None,
            passphrase_file: None,
            passphrase_command: None,
        };
        match self {
            PassphraseSource::None => return s.serialize_bool(false),
            PassphraseSource::Env(v) => t.passphrase_env = Some(v.clone()),
            PassphraseSource::File(v) => t.passphrase_file = Some(v.clone()),
            PassphraseSource::Command(v) => t.passphrase_command = Some(v.clone()),
        }
        t.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PassphraseSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PassphraseSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "false, or a table with one of passphrase_env, passphrase_file, passphrase_command"
                )
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<PassphraseSource, E> {
                if b {
                    Err(E::custom("say where the passphrase comes from: encryption = { passphrase_env = \"NAME\" } (or passphrase_file, passphrase_command); never the passphrase itself"))
                } else {
                    Ok(PassphraseSource::None)
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PassphraseSource, A::Error> {
                let t = SourceTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (t.passphrase_env, t.passphrase_file, t.passphrase_command) {
                    (Some(v), None, None) => Ok(PassphraseSource::Env(v)),
                    (None, Some(v), None) => Ok(PassphraseSource::File(v)),
                    (None, None, Some(v)) => Ok(PassphraseSource::Command(v)),
                    _ => Err(de::Error::custom(
                        "give exactly one of passphrase_env, passphrase_file, passphrase_command",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}
