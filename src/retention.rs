//! Retention policy: which snapshots `forget` keeps, and why. Pure (no I/O, no
//! clock: the caller passes `now` and the local time zone; each snapshot falls
//! in the local hour/day/week/month/year of its own instant, with the UTC offset
//! in force then, so DST moves no snapshot into another day).
//!
//! Semantics follow restic's `forget`:
//! - `keep-last N` keeps the N newest snapshots (newest in the database's
//!   history, which a clock that went back does not reorder: see
//!   [`crate::snapshot::order`]);
//! - `keep-hourly/daily/weekly/monthly/yearly N` keep, for each of the N most
//!   recent hours/days/ISO weeks/months/years (local time) that *have* snapshots,
//!   the newest snapshot in it (gaps do not use up the count);
//! - `keep-within SPAN` keeps every snapshot taken within SPAN before the newest
//!   snapshot of the same database (not before now, so stopped backups do not
//!   age everything out);
//! - `keep-tag T` keeps every snapshot tagged T;
//! - `pre-restore` snapshots (the safety copies `restore --force` takes) are kept
//!   while younger than [`Policy::pre_restore`] (default 7 days) measured from now;
//! - `before:REASON` snapshots (the ones `Repository::snapshot_before` takes before
//!   a migration, an update, a bulk import or a clean-up) likewise, while younger
//!   than [`Policy::before`] (`keep-before`, default 30 days) measured from now.
//!   Neither kind is counted by keep-last or the calendar rules.
//!
//! A snapshot is kept if any rule keeps it (the union), and the rules apply to
//! each database (the record's `source`) separately. A policy with no rule at all
//! is refused ([`PolicyError::Empty`]): forget must never delete everything
//! because a setting was missing. A plan that keeps none of a database's
//! snapshots, or removes its newest, lists why in [`Plan::dangers`]; `forget`
//! refuses it unless told explicitly. Invariant: the plan lists every input
//! snapshot exactly once, and a kept snapshot has at least one reason.

use std::collections::BTreeMap;
use std::fmt;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use crate::format::RetentionSettings;
use crate::id::SnapshotId;
use crate::timespec::zoned;

/// The tag of the safety snapshots `restore --force` takes.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// The tag prefix of the snapshots taken before a risky operation
/// (`before:migration`, ...).
pub const BEFORE_TAG_PREFIX: &str = "before:";

/// Whether a snapshot with these tags is a safety copy (pre-restore or
/// before an operation): kept by its own grace, not counted by the rules.
fn is_safety_copy(tags: &[String]) -> bool {
    tags.iter()
        .any(|t| t == PRE_RESTORE_TAG || t.starts_with(BEFORE_TAG_PREFIX))
}

/// Why a policy or a setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No rule at all (forget would remove every snapshot).
    #[error("no retention rule given")]
    Empty,
    /// A duration such as `7d` does not parse.
    #[error("bad duration `{0}`: use a number and a unit, e.g. 36h, 7d, 2w, 6m (months), 1y, or combinations like 1y6m")]
    BadSpan(String),
    /// An unknown setting name.
    #[error("unknown setting `{0}`; known: {known}", known = SETTING_KEYS.join(", "))]
    UnknownKey(String),
    /// A bad setting value.
    #[error("bad value `{value}` for {key}: {why}")]
    BadValue {
        /// The setting.
        key: String,
        /// The value given.
        value: String,
        /// What is expected.
        why: String,
    },
}

/// A calendar span: years and months are calendar steps, weeks are 7 days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days (weeks are stored as 7 days each).
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl Span {
    /// A span of `days` days.
    pub const fn days(days: u32) -> Span {
        Span {
            years: 0,
            months: 0,
            days,
            hours: 0,
        }
    }

    /// Parses `7d`, `36h`, `2w`, `6m` (months), `1y`, and concatenations (`1y6m2d`).
    pub fn parse(s: &str) -> Result<Span, PolicyError> {
        let bad = || PolicyError::BadSpan(s.to_string());
        let mut span = Span::default();
        let mut num = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u32 = num.parse().map_err(|_| bad())?;
            num.clear();
            let field = match c {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'w' => {
                    span.days = span
                        .days
                        .checked_add(n.checked_mul(7).ok_or_else(bad)?)
                        .ok_or_else(bad)?;
                    any = true;
                    continue;
                }
                'd' => &mut span.days,
                'h' => &mut span.hours,
                _ => return Err(bad()),
            };
            *field = field.checked_add(n).ok_or_else(bad)?;
            any = true;
        }
        if !num.is_empty() || !any || span.years > 10_000 {
            return Err(bad());
        }
        Ok(span)
    }

    /// Whether the span is zero.
    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }

    /// `t` minus this span, on the calendar of `t`'s time zone: years, months
    /// and days are calendar steps (the day clamped to the target month's
    /// length; a day is 23 or 25 hours across a DST change), hours are exact.
    pub fn before(&self, t: &Zoned) -> Timestamp {
        let span = jiff::Span::new()
            .try_years(i64::from(self.years))
            .and_then(|s| s.try_months(i64::from(self.months)))
            .and_then(|s| s.try_days(i64::from(self.days)))
            .and_then(|s| s.try_hours(i64::from(self.hours)));
        // Out of the calendar's range: earlier than any snapshot can be.
        span.and_then(|span| t.checked_sub(span))
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::MIN)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Which snapshots to keep. Counts of 0 mean "rule not set".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Keep the N newest.
    pub keep_last: u32,
    /// Keep the newest of each of the N most recent hours with snapshots.
    pub keep_hourly: u32,
    /// Same per day.
    pub keep_daily: u32,
    /// Same per ISO week.
    pub keep_weekly: u32,
    /// Same per month.
    pub keep_monthly: u32,
    /// Same per year.
    pub keep_yearly: u32,
    /// Keep all taken within this span before the newest snapshot.
    pub keep_within: Option<Span>,
    /// Keep all with any of these tags.
    pub keep_tags: Vec<String>,
    /// Keep `pre-restore` snapshots younger than this (measured from now).
    pub pre_restore: Span,
    /// Keep `before:*` snapshots younger than this (measured from now).
    pub before: Span,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_last: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
            keep_within: None,
            keep_tags: Vec::new(),
            pre_restore: DEFAULT_PRE_RESTORE,
            before: DEFAULT_BEFORE,
        }
    }
}

/// How long `pre-restore` snapshots are kept by default.
pub const DEFAULT_PRE_RESTORE: Span = Span::days(7);

/// How long `before:*` snapshots are kept by default.
pub const DEFAULT_BEFORE: Span = Span::days(30);

impl Policy {
    /// The app's `BackupConfig.retention` ("keep the last N backups").
    pub fn keep_last(n: u32) -> Policy {
        Policy {
            keep_last: n,
            ..Policy::default()
        }
    }

    /// Whether no rule is set (the pre-restore grace alone is not a rule).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.keep_within.is_none_or(|s| s.is_zero())
            && self.keep_tags.is_empty()
    }

    /// The policy stored in the repository's `retention` file.
    pub fn from_settings(s: &RetentionSettings) -> Result<Policy, PolicyError> {
        let span = |v: &Option<String>| v.as_deref().map(Span::parse).transpose();
        Ok(Policy {
            keep_last: s.keep_last.unwrap_or(0),
            keep_hourly: s.keep_hourly.unwrap_or(0),
            keep_daily: s.keep_daily.unwrap_or(0),
            keep_weekly: s.keep_weekly.unwrap_or(0),
            keep_monthly: s.keep_monthly.unwrap_or(0),
            keep_yearly: s.keep_yearly.unwrap_or(0),
            keep_within: span(&s.keep_within)?,
            keep_tags: s.keep_tags.clone(),
            pre_restore: span(&s.keep_pre_restore)?.unwrap_or(DEFAULT_PRE_RESTORE),
            before: span(&s.keep_before)?.unwrap_or(DEFAULT_BEFORE),
        })
    }

    /// One line per rule, for humans.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, name) in [
            (self.keep_last, "last"),
            (self.keep_hourly, "hourly"),
            (self.keep_daily, "daily"),
            (self.keep_weekly, "weekly"),
            (self.keep_monthly, "monthly"),
            (self.keep_yearly, "yearly"),
        ] {
            if n > 0 {
                parts.push(format!("keep-{name} {n}"));
            }
        }
        if let Some(w) = self.keep_within {
            parts.push(format!("keep-within {w}"));
        }
        for t in &self.keep_tags {
            parts.push(format!("keep-tag {t}"));
        }
        parts.push(format!("pre-restore kept {}", self.pre_restore));
        parts.push(format!("before:* kept {}", self.before));
        parts.join(", ")
    }
}

/// Setting names accepted by `config set` (the flags of `forget`).
pub const SETTING_KEYS: [&str; 10] = [
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
    "keep-within",
    "keep-tag",
    "keep-pre-restore",
    "keep-before",
];

/// Sets one setting from text; `none` (or an empty value) clears it. `keep-tag`
/// takes a comma-separated list. A count of 0 or a zero `keep-within` is
/// refused: it would be stored as a rule that keeps nothing (clear it with
/// `none` instead).
pub fn set_setting(s: &mut RetentionSettings, key: &str, value: &str) -> Result<(), PolicyError> {
    let v = value.trim();
    let clear = v.is_empty() || v.eq_ignore_ascii_case("none");
    let count = |slot: &mut Option<u32>| -> Result<(), PolicyError> {
        let bad = |why: &str| PolicyError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            why: why.into(),
        };
        *slot =
            if clear {
                None
            } else {
                match v.parse::<u32>() {
                    Ok(0) => return Err(bad(
                        "0 would keep nothing by this rule; give at least 1, or `none` to clear it",
                    )),
                    Ok(n) => Some(n),
                    Err(_) => return Err(bad("expected a whole number of at least 1 (or `none`)")),
                }
            };
        Ok(())
    };
    let span = |slot: &mut Option<String>, zero_ok: bool| -> Result<(), PolicyError> {
        *slot = if clear {
            None
        } else {
            let span = Span::parse(v)?;
            if span.is_zero() && !zero_ok {
                return Err(PolicyError::BadValue {
                    key: key.to_string(),
                    value: value.to_string(),
                    why: "a zero span would keep nothing by this rule; give e.g. 7d, or `none` to clear it".into(),
                });
            }
            Some(span.to_string())
        };
        Ok(())
    };
    match key {
        "keep-last" => count(&mut s.keep_last),
        "keep-hourly" => count(&mut s.keep_hourly),
        "keep-daily" => count(&mut s.keep_daily),
        "keep-weekly" => count(&mut s.keep_weekly),
        "keep-monthly" => count(&mut s.keep_monthly),
        "keep-yearly" => count(&mut s.keep_yearly),
        "keep-within" => span(&mut s.keep_within, false),
        // 0h is meaningful here: pre-restore snapshots get no special grace.
        "keep-pre-restore" => span(&mut s.keep_pre_restore, true),
        "keep-before" => span(&mut s.keep_before, true),
        "keep-tag" => {
            s.keep_tags = if clear {
                Vec::new()
            } else {
                let tags: Vec<String> = v
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect();
                if let Some(t) = tags.iter().find(|t| t.chars().any(char::is_control)) {
                    return Err(PolicyError::BadValue {
                        key: key.to_string(),
                        value: value.to_string(),
                        why: format!("tag {t:?} contains a control character"),
                    });
                }
                tags
            };
            Ok(())
        }
        other => Err(PolicyError::UnknownKey(other.to_string())),
    }
}

/// Every setting as text (`None` when unset), in [`SETTING_KEYS`] order.
pub fn settings_table(s: &RetentionSettings) -> Vec<(&'static str, Option<String>)> {
    let n = |v: Option<u32>| v.map(|n| n.to_string());
    vec![
        ("keep-last", n(s.keep_last)),
        ("keep-hourly", n(s.keep_hourly)),
        ("keep-daily", n(s.keep_daily)),
        ("keep-weekly", n(s.keep_weekly)),
        ("keep-monthly", n(s.keep_monthly)),
        ("keep-yearly", n(s.keep_yearly)),
        ("keep-within", s.keep_within.clone()),
        (
            "keep-tag",
            (!s.keep_tags.is_empty()).then(|| s.keep_tags.join(",")),
        ),
        ("keep-pre-restore", s.keep_pre_restore.clone()),
        ("keep-before", s.keep_before.clone()),
    ]
}

/// One setting as text.
pub fn get_setting(s: &RetentionSettings, key: &str) -> Result<Option<String>, PolicyError> {
    settings_table(s)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| PolicyError::UnknownKey(key.to_string()))
}

/// What the policy sees of a snapshot.
#[derive(Debug, Clone)]
pub struct Item {
    /// The snapshot.
    pub id: SnapshotId,
    /// Capture time, unix nanoseconds UTC.
    pub time_ns: i64,
    /// The database it belongs to (rules apply per group).
    pub group: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its place in history (higher is newer): the position in
    /// [`crate::Repository::list`], which orders each database by its history.
    pub order: u64,
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// Capture time, unix nanoseconds UTC.
    pub time_ns: i64,
    /// Its database.
    pub group: String,
    /// Kept (true) or to be removed.
    pub keep: bool,
    /// The rules that keep it (empty when removed), e.g. `daily`, `tag pre-restore`.
    pub reasons: Vec<String>,
    /// A `pre-restore` safety copy: not counted by the count and calendar rules,
    /// and not the "newest snapshot" the dangers speak of.
    #[serde(default)]
    pub safety_copy: bool,
}

/// A forget plan: one decision per snapshot, oldest first (in history order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Every snapshot considered.
    pub decisions: Vec<Decision>,
    /// What makes the plan dangerous, one line per database: it keeps none of
    /// the database's snapshots, or removes its newest. `forget` refuses such
    /// a plan unless told explicitly (`--allow-empty`).
    #[serde(default)]
    pub dangers: Vec<String>,
    /// The rules applied, as the deletion record on the history chain states
    /// them (`keep-last 3`, `forget 3fa9c1…`).
    #[serde(default)]
    pub policy: String,
    /// Snapshots left out of the plan because their records do not verify
    /// (off the history chain: inserted, forged or replaced), one line each.
    /// They are neither counted nor removed.
    #[serde(default)]
    pub unverified: Vec<String>,
}

impl Plan {
    /// The kept decisions.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// The removed decisions.
    pub fn removed(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

#[derive(Clone, Copy)]
enum Bucket {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Last => "last",
            Bucket::Hourly => "hourly",
            Bucket::Daily => "daily",
            Bucket::Weekly => "weekly",
            Bucket::Monthly => "monthly",
            Bucket::Yearly => "yearly",
        }
    }

    /// The bucket of a local time (in its own instant's offset); `nr`
    /// (position, newest first) for `Last`.
    fn key(self, t: &Zoned, nr: usize) -> i64 {
        let (y, ord) = (i64::from(t.year()), i64::from(t.day_of_year()));
        match self {
            Bucket::Last => nr as i64,
            Bucket::Hourly => {
                // The offset tells apart the two 01:00 hours of the night the
                // clocks go back.
                let off = i64::from(t.offset().seconds());
                ((y * 1000 + ord) * 100 + i64::from(t.hour())) * 200_000 + off + 100_000
            }
            Bucket::Daily => y * 1000 + ord,
            Bucket::Weekly => {
                let w = t.date().iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Bucket::Monthly => y * 100 + i64::from(t.month()),
            Bucket::Yearly => y,
        }
    }
}

/// Decides, per group, which snapshots the policy keeps. `now_ns` is the current
/// time (for the pre-restore grace), `tz` the local time zone for buckets.
pub fn plan(
    items: &[Item],
    policy: &Policy,
    now_ns: i64,
    tz: &TimeZone,
) -> Result<Plan, PolicyError> {
    if policy.is_empty() {
        return Err(PolicyError::Empty);
    }
    let mut groups: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for it in items {
        groups.entry(it.group.as_str()).or_default().push(it);
    }
    let pre_restore_cutoff = policy.pre_restore.before(&zoned(now_ns, tz));
    let before_cutoff = policy.before.before(&zoned(now_ns, tz));
    let mut decisions = Vec::with_capacity(items.len());
    for (_, mut list) in groups {
        // Newest first in history; equal places in a stable order (by id).
        list.sort_by(|a, b| b.order.cmp(&a.order).then(b.id.cmp(&a.id)));
        let within_cutoff = match (policy.keep_within, list.first()) {
            (Some(span), Some(newest)) if !span.is_zero() => {
                Some(span.before(&zoned(newest.time_ns, tz)))
            }
            _ => None,
        };
        let mut buckets: Vec<(Bucket, u32, Option<i64>)> = [
            (Bucket::Last, policy.keep_last),
            (Bucket::Hourly, policy.keep_hourly),
            (Bucket::Daily, policy.keep_daily),
            (Bucket::Weekly, policy.keep_weekly),
            (Bucket::Monthly, policy.keep_monthly),
            (Bucket::Yearly, policy.keep_yearly),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(b, n)| (b, n, None))
        .collect();
        // Place among the database's real snapshots: `pre-restore` safety copies
        // are kept by their own grace (and tags), never counted by keep-last or
        // the calendar rules, so a restore cannot push real snapshots out.
        let mut nr = 0;
        for it in list.iter() {
            let local = zoned(it.time_ns, tz);
            let t = local.timestamp();
            let mut reasons = Vec::new();
            let pre_restore = it.tags.iter().any(|t| t == PRE_RESTORE_TAG);
            let before_op = it.tags.iter().any(|t| t.starts_with(BEFORE_TAG_PREFIX));
            let safety_copy = pre_restore || before_op;
            if !safety_copy {
                for (bucket, left, last) in buckets.iter_mut() {
                    let key = bucket.key(&local, nr);
                    if *left > 0 && *last != Some(key) {
                        *left -= 1;
                        *last = Some(key);
                        reasons.push(bucket.name().to_string());
                    }
                }
                nr += 1;
            }
            if let Some(cut) = within_cutoff {
                if t >= cut {
                    reasons.push(format!(
                        "within {}",
                        policy.keep_within.expect("cutoff implies a span")
                    ));
                }
            }
            for tag in &policy.keep_tags {
                if it.tags.contains(tag) {
                    reasons.push(format!("tag {tag}"));
                }
            }
            if pre_restore && !policy.pre_restore.is_zero() && t >= pre_restore_cutoff {
                reasons.push(format!("pre-restore younger than {}", policy.pre_restore));
            }
            if before_op && !policy.before.is_zero() && t >= before_cutoff {
                reasons.push(format!("before:* younger than {}", policy.before));
            }
            decisions.push((
                it.order,
                Decision {
                    id: it.id,
                    time_ns: it.time_ns,
                    group: it.group.clone(),
                    keep: !reasons.is_empty(),
                    reasons,
                    safety_copy,
                },
            ));
        }
    }
    Ok(finish(decisions, Some(tz)))
}

/// A plan that removes exactly the `named` snapshots: every snapshot of the
/// databases they belong to is decided (the others kept, reason `not named`).
/// Removing a database's newest snapshot by name is explicit and allowed;
/// removing all of a database's snapshots is listed in [`Plan::dangers`].
pub fn plan_named(items: &[Item], named: &[SnapshotId]) -> Plan {
    let groups: std::collections::BTreeSet<&str> = items
        .iter()
        .filter(|it| named.contains(&it.id))
        .map(|it| it.group.as_str())
        .collect();
    let decisions = items
        .iter()
        .filter(|it| groups.contains(it.group.as_str()))
        .map(|it| {
            let keep = !named.contains(&it.id);
            (
                it.order,
                Decision {
                    id: it.id,
                    time_ns: it.time_ns,
                    group: it.group.clone(),
                    keep,
                    reasons: if keep {
                        vec!["not named".into()]
                    } else {
                        vec![]
                    },
                    safety_copy: is_safety_copy(&it.tags),
                },
            )
        })
        .collect();
    finish(decisions, None)
}

/// Sorts decisions oldest first (by place in history) and lists the dangers:
/// a database left with no snapshot, or (with `newest_tz`, the zone its time
/// is shown in) one whose newest snapshot is removed.
fn finish(mut decisions: Vec<(u64, Decision)>, newest_tz: Option<&TimeZone>) -> Plan {
    decisions.sort_by(|(a, da), (b, db)| a.cmp(b).then(da.id.cmp(&db.id)));
    let decisions: Vec<Decision> = decisions.into_iter().map(|(_, d)| d).collect();
    let mut groups: Vec<&str> = decisions.iter().map(|d| d.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut dangers = Vec::new();
    for g in groups {
        let of: Vec<&Decision> = decisions.iter().filter(|d| d.group == g).collect();
        let removed = of.iter().filter(|d| !d.keep).count();
        // The real snapshots (not `pre-restore` safety copies), when there are any.
        let real: Vec<&Decision> = of.iter().copied().filter(|d| !d.safety_copy).collect();
        let real_removed = real.iter().filter(|d| !d.keep).count();
        if removed == of.len() {
            dangers.push(format!(
                "it would remove {} of {g}, keeping none",
                all_of(removed)
            ));
        } else if !real.is_empty() && real_removed == real.len() {
            dangers.push(format!(
                "it would remove {} of {g}, keeping only pre-restore safety copies",
                all_of(real_removed)
            ));
        } else if let (Some(newest), Some(tz)) = (real.last().filter(|d| !d.keep), newest_tz) {
            dangers.push(format!(
                "it would remove the newest snapshot of {g} ({}, taken {})",
                newest.id.short(),
                crate::timespec::format_local(newest.time_ns, tz)
            ));
        }
    }
    Plan {
        decisions,
        dangers,
        ..Plan::default()
    }
}

/// "all 3 snapshots", or "the only snapshot".
fn all_of(n: usize) -> String {
    if n == 1 {
        "the only snapshot".to_string()
    } else {
        format!("all {n} snapshots")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::OffsetDateTime;

    const UTC: &TimeZone = &TimeZone::UTC;

    fn ns(t: OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos()).expect("in range")
    }

    fn ts(t: OffsetDateTime) -> Timestamp {
        Timestamp::from_nanosecond(t.unix_timestamp_nanos()).expect("in range")
    }

    fn z(t: OffsetDateTime) -> Zoned {
        ts(t).to_zoned(TimeZone::UTC)
    }

    /// Places in history by time (then id), as a repository without clock
    /// jumps has them.
    fn ranked(items: &[Item]) -> Vec<Item> {
        let mut v = items.to_vec();
        v.sort_by_key(|it| (it.time_ns, it.id));
        for (i, it) in v.iter_mut().enumerate() {
            it.order = i as u64;
        }
        v
    }

    fn item(n: u8, t: OffsetDateTime, tags: &[&str]) -> Item {
        item_in("db", n, t, tags)
    }

    fn item_in(group: &str, n: u8, t: OffsetDateTime, tags: &[&str]) -> Item {
        Item {
            id: SnapshotId([n; 32]),
            time_ns: ns(t),
            group: group.to_string(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            order: 0,
        }
    }

    /// Items at the given times (ids 1, 2, ... in list order).
    fn items(times: &[OffsetDateTime]) -> Vec<Item> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| item(i as u8 + 1, *t, &[]))
            .collect()
    }

    /// Ids (as their number) that the plan keeps, ascending.
    fn kept(p: &Plan) -> Vec<u8> {
        let mut v: Vec<u8> = p.kept().map(|d| d.id.0[0]).collect();
        v.sort();
        v
    }

    fn run(items: &[Item], policy: &Policy, now: OffsetDateTime) -> Plan {
        let p = plan(&ranked(items), policy, ns(now), UTC).expect("plan");
        assert_eq!(
            p.decisions.len(),
            items.len(),
            "every snapshot decided once"
        );
        for d in &p.decisions {
            assert_eq!(d.keep, !d.reasons.is_empty(), "kept iff a reason: {d:?}");
        }
        p
    }

    const NOW: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

    #[test]
    fn empty_policy_is_refused() {
        let its = items(&[datetime!(2024-01-01 10:00 UTC)]);
        assert_eq!(
            plan(&its, &Policy::default(), 0, UTC),
            Err(PolicyError::Empty)
        );
        let zero_within = Policy {
            keep_within: Some(Span::default()),
            ..Policy::default()
        };
        assert_eq!(plan(&its, &zero_within, 0, UTC), Err(PolicyError::Empty));
        assert!(PolicyError::Empty
            .to_string()
            .starts_with("no retention rule given"));
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let its = items(&[
            datetime!(2024-01-01 10:00 UTC),
            datetime!(2024-01-03 10:00 UTC),
            datetime!(2024-01-02 10:00 UTC),
            datetime!(2024-01-04 10:00 UTC),
        ]);
        let p = run(&its, &Policy::keep_last(2), NOW);
        assert_eq!(kept(&p), vec![2, 4]);
        assert_eq!(p.decisions[0].id.0[0], 1, "plan is oldest first");
        let all = run(&its, &Policy::keep_last(10), NOW);
        assert_eq!(kept(&all), vec![1, 2, 3, 4]);
    }

    #[test]
    fn daily_keeps_newest_per_day_with_several_per_day() {
        let its = items(&[
            datetime!(2024-03-01 08:00 UTC),
            datetime!(2024-03-01 12:00 UTC),
            datetime!(2024-03-01 23:59 UTC), // newest of 1 March
            datetime!(2024-03-02 00:00 UTC),
            datetime!(2024-03-02 09:00 UTC), // newest of 2 March
            datetime!(2024-03-03 07:00 UTC),
            datetime!(2024-03-03 07:30 UTC), // newest of 3 March
        ]);
        assert_eq!(
            kept(&run(
                &its,
                &Policy {
                    keep_daily: 2,
                    ..Policy::default()
                },
                NOW
            )),
            vec![5, 7]
        );
        let p = run(
            &its,
            &Policy {
                keep_daily: 5,
                ..Policy::default()
            },
            NOW,
        );
        assert_eq!(kept(&p), vec![3, 5, 7], "only three days have snapshots");
        assert!(p.kept().all(|d| d.reasons == ["daily"]));
    }

    #[test]
    fn gaps_do_not_use_up_the_count() {
        // Days with snapshots: 1, 2, 10, 30 January; keep-daily 3 reaches back
        // over the gaps to the three most recent days that have one.
        let its = items(&[
            datetime!(2024-01-01 12:00 UTC),
            datetime!(2024-01-02 12:00 UTC),
            datetime!(2024-01-10 12:00 UTC),
            datetime!(2024-01-30 12:00 UTC),
        ]);
        let daily3 = Policy {
            keep_daily: 3,
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &daily3, NOW)), vec![2, 3, 4]);
    }

    #[test]
    fn hourly_buckets() {
        let its = items(&[
            datetime!(2024-05-05 10:05 UTC),
            datetime!(2024-05-05 10:55 UTC),
            datetime!(2024-05-05 11:00 UTC),
            datetime!(2024-05-05 13:10 UTC),
            datetime!(2024-05-06 13:10 UTC), // same hour, other day
        ]);
        let p = Policy {
            keep_hourly: 3,
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &p, NOW)), vec![3, 4, 5]);
        let p4 = Policy {
            keep_hourly: 4,
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &p4, NOW)), vec![2, 3, 4, 5]);
    }

    #[test]
    fn weekly_uses_iso_weeks_across_the_year_boundary() {
        // 2020-12-31 (Thu) and 2021-01-03 (Sun) are both in ISO week 2020-W53;
        // 2021-01-04 (Mon) starts 2021-W01; 2020-12-27 (Sun) is 2020-W52.
        let its = items(&[
            datetime!(2020-12-27 12:00 UTC),
            datetime!(2020-12-31 12:00 UTC),
            datetime!(2021-01-03 12:00 UTC),
            datetime!(2021-01-04 12:00 UTC),
        ]);
        let w2 = Policy {
            keep_weekly: 2,
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &w2, NOW)), vec![3, 4]);
        let w3 = Policy {
            keep_weekly: 3,
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &w3, NOW)), vec![1, 3, 4]);
        // ISO week 1 of 2025 starts on Monday 2024-12-30.
        let its = items(&[
            datetime!(2024-12-29 12:00 UTC),
            datetime!(2024-12-30 12:00 UTC),
            datetime!(2025-01-01 12:00 UTC),
        ]);
        assert_eq!(kept(&run(&its, &w2, NOW)), vec![1, 3]);
    }

    #[test]
    fn monthly_and_yearly_across_year_boundaries() {
        let its = items(&[
            datetime!(2022-06-01 12:00 UTC),
            datetime!(2022-12-31 23:00 UTC),
            datetime!(2023-01-01 01:00 UTC),
            datetime!(2023-01-20 01:00 UTC),
            datetime!(2023-02-01 01:00 UTC),
        ]);
        let m3 = Policy {
            keep_monthly: 3,
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &m3, NOW)), vec![2, 4, 5]);
        let y5 = Policy {
            keep_yearly: 5,
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &y5, NOW)), vec![2, 5]);
    }

    #[test]
    fn local_offset_moves_day_boundaries() {
        // At +02:00, 21:30 UTC on 1 March is 23:30 that day but 22:30 UTC is
        // 00:30 on 2 March.
        let its = items(&[
            datetime!(2024-03-01 21:30 UTC),
            datetime!(2024-03-01 22:30 UTC),
        ]);
        let d = Policy {
            keep_daily: 10,
            ..Policy::default()
        };
        let utc = plan(&ranked(&its), &d, ns(NOW), UTC).expect("plan");
        assert_eq!(kept(&utc), vec![2], "same UTC day");
        let plus2 = TimeZone::fixed(jiff::tz::offset(2));
        let plus2 = plan(&ranked(&its), &d, ns(NOW), &plus2).expect("plan");
        assert_eq!(kept(&plus2), vec![1, 2], "two local days");
    }

    #[test]
    fn union_of_rules_with_reasons() {
        let its = vec![
            item(1, datetime!(2023-01-15 12:00 UTC), &["release"]),
            item(2, datetime!(2023-06-15 12:00 UTC), &[]),
            item(3, datetime!(2024-01-01 12:00 UTC), &[]),
            item(4, datetime!(2024-01-02 12:00 UTC), &[]),
            item(5, datetime!(2024-01-03 12:00 UTC), &[]),
        ];
        let p = Policy {
            keep_last: 1,
            keep_daily: 2,
            keep_yearly: 2,
            keep_tags: vec!["release".into()],
            ..Policy::default()
        };
        let plan = run(&its, &p, NOW);
        assert_eq!(kept(&plan), vec![1, 2, 4, 5]);
        let reasons = |n: u8| {
            plan.decisions
                .iter()
                .find(|d| d.id.0[0] == n)
                .expect("present")
                .reasons
                .clone()
        };
        assert_eq!(reasons(5), vec!["last", "daily", "yearly"]);
        assert_eq!(reasons(4), vec!["daily"]);
        assert_eq!(reasons(2), vec!["yearly"]);
        assert_eq!(reasons(1), vec!["tag release"]);
        assert!(reasons(3).is_empty());
    }

    #[test]
    fn keep_within_counts_back_from_the_newest_snapshot() {
        let its = items(&[
            datetime!(2024-01-01 00:00 UTC),
            datetime!(2024-01-05 11:00 UTC),
            datetime!(2024-01-05 13:00 UTC),
            datetime!(2024-01-08 12:00 UTC),
        ]);
        let p = Policy {
            keep_within: Some(Span::parse("3d").expect("span")),
            ..Policy::default()
        };
        // Newest is 8 Jan 12:00, so the cut is 5 Jan 12:00 whatever `now` is.
        assert_eq!(kept(&run(&its, &p, NOW)), vec![3, 4]);
        let h = Policy {
            keep_within: Some(Span::parse("36h").expect("span")),
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &h, NOW)), vec![4]);
    }

    #[test]
    fn keep_tag_any_of_several() {
        let its = vec![
            item(1, datetime!(2024-01-01 00:00 UTC), &["a"]),
            item(2, datetime!(2024-01-02 00:00 UTC), &["b", "x"]),
            item(3, datetime!(2024-01-03 00:00 UTC), &["c"]),
        ];
        let p = Policy {
            keep_tags: vec!["a".into(), "b".into()],
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &p, NOW)), vec![1, 2]);
    }

    #[test]
    fn pre_restore_snapshots_kept_seven_days_from_now() {
        let now = datetime!(2024-06-10 12:00 UTC);
        let its = vec![
            item(1, datetime!(2024-06-01 12:00 UTC), &["pre-restore"]), // 9 days old
            item(2, datetime!(2024-06-04 12:00 UTC), &["pre-restore"]), // 6 days old
            item(3, datetime!(2024-06-05 12:00 UTC), &[]),
            item(4, datetime!(2024-06-09 12:00 UTC), &[]),
        ];
        let p = run(&its, &Policy::keep_last(1), now);
        assert_eq!(kept(&p), vec![2, 4]);
        let two = p.kept().find(|d| d.id.0[0] == 2).expect("kept");
        assert_eq!(two.reasons, vec!["pre-restore younger than 7d"]);
        // The grace can be changed (or switched off with a zero span).
        let longer = Policy {
            pre_restore: Span::parse("2w").expect("span"),
            ..Policy::keep_last(1)
        };
        assert_eq!(kept(&run(&its, &longer, now)), vec![1, 2, 4]);
        let off = Policy {
            pre_restore: Span::default(),
            ..Policy::keep_last(1)
        };
        assert_eq!(kept(&run(&its, &off, now)), vec![4]);
    }

    #[test]
    fn rules_apply_per_database() {
        let its = vec![
            item_in("a.db", 1, datetime!(2024-01-01 00:00 UTC), &[]),
            item_in("a.db", 2, datetime!(2024-01-02 00:00 UTC), &[]),
            item_in("b.db", 3, datetime!(2024-01-01 00:00 UTC), &[]),
            item_in("b.db", 4, datetime!(2023-01-02 00:00 UTC), &[]),
            item_in("a.db", 5, datetime!(2024-01-03 00:00 UTC), &[]),
        ];
        assert_eq!(kept(&run(&its, &Policy::keep_last(1), NOW)), vec![3, 5]);
        let within = Policy {
            keep_within: Some(Span::days(1)),
            ..Policy::default()
        };
        assert_eq!(kept(&run(&its, &within, NOW)), vec![2, 3, 5]);
    }

    #[test]
    fn equal_times_are_decided_deterministically() {
        let t = datetime!(2024-01-01 00:00 UTC);
        let its = vec![item(7, t, &[]), item(3, t, &[]), item(9, t, &[])];
        let p = run(&its, &Policy::keep_last(1), NOW);
        assert_eq!(kept(&p), vec![9]);
        let mut rev = its.clone();
        rev.reverse();
        assert_eq!(run(&rev, &Policy::keep_last(1), NOW), p);
    }

    #[test]
    fn no_snapshots_is_an_empty_plan() {
        let p = run(&[], &Policy::keep_last(3), NOW);
        assert!(p.decisions.is_empty());
    }

    #[test]
    fn spans_parse_and_subtract_on_the_calendar() {
        assert_eq!(Span::parse("7d"), Ok(Span::days(7)));
        assert_eq!(Span::parse("2w"), Ok(Span::days(14)));
        assert_eq!(
            Span::parse("1y6m2d3h"),
            Ok(Span {
                years: 1,
                months: 6,
                days: 2,
                hours: 3
            })
        );
        for bad in ["", "7", "d", "7x", "-1d", "1.5d", "99999999999d"] {
            assert!(Span::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Span::parse("2w").expect("w").to_string(), "14d");
        let t = z(datetime!(2024-03-31 10:00 UTC));
        assert_eq!(
            Span::parse("1m").expect("m").before(&t),
            ts(datetime!(2024-02-29 10:00 UTC)),
            "clamped to the month's last day"
        );
        assert_eq!(
            Span::parse("1y")
                .expect("y")
                .before(&z(datetime!(2024-02-29 0:00 UTC))),
            ts(datetime!(2023-02-28 0:00 UTC))
        );
        assert_eq!(
            Span::parse("13m")
                .expect("m")
                .before(&z(datetime!(2024-01-15 0:00 UTC))),
            ts(datetime!(2022-12-15 0:00 UTC))
        );
        assert_eq!(
            Span::parse("1d12h").expect("dh").before(&t),
            ts(datetime!(2024-03-29 22:00 UTC))
        );
        // A calendar day across the DST change in New York is 23 hours.
        let ny = TimeZone::get("America/New_York").expect("zone");
        let after = ts(datetime!(2026-03-08 12:00 UTC)).to_zoned(ny);
        assert_eq!(
            Span::days(1).before(&after),
            ts(datetime!(2026-03-07 13:00 UTC))
        );
    }

    #[test]
    fn settings_set_get_and_map_to_a_policy() {
        let mut s = RetentionSettings::default();
        assert!(Policy::from_settings(&s).expect("p").is_empty());
        set_setting(&mut s, "keep-daily", "7").expect("set");
        set_setting(&mut s, "keep-within", "2w").expect("set");
        set_setting(&mut s, "keep-tag", "release, keep").expect("set");
        assert_eq!(get_setting(&s, "keep-daily"), Ok(Some("7".into())));
        assert_eq!(get_setting(&s, "keep-within"), Ok(Some("14d".into())));
        assert_eq!(get_setting(&s, "keep-tag"), Ok(Some("release,keep".into())));
        assert_eq!(get_setting(&s, "keep-last"), Ok(None));
        let p = Policy::from_settings(&s).expect("policy");
        assert_eq!(p.keep_daily, 7);
        assert_eq!(p.keep_within, Some(Span::days(14)));
        assert_eq!(p.keep_tags, vec!["release", "keep"]);
        assert_eq!(p.pre_restore, DEFAULT_PRE_RESTORE);
        set_setting(&mut s, "keep-daily", "none").expect("clear");
        assert_eq!(get_setting(&s, "keep-daily"), Ok(None));
        assert!(matches!(
            set_setting(&mut s, "keep-daily", "seven"),
            Err(PolicyError::BadValue { .. })
        ));
        assert!(matches!(
            set_setting(&mut s, "keep-fortnightly", "1"),
            Err(PolicyError::UnknownKey(_))
        ));
        assert!(matches!(
            set_setting(&mut s, "keep-within", "soon"),
            Err(PolicyError::BadSpan(_))
        ));
        assert_eq!(settings_table(&s).len(), SETTING_KEYS.len());
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").expect("zone")
    }

    /// Issue #8 item 26: a 00:30 EDT snapshot belongs to its own local day even
    /// when `forget` runs in winter (EST): it is that day's last snapshot.
    #[test]
    fn daily_buckets_use_the_offset_of_each_snapshot() {
        let its = ranked(&[
            // 14 July 23:00 EDT (03:00Z on the 15th)
            item(1, datetime!(2026-07-15 03:00 UTC), &[]),
            // 15 July 00:30 EDT (04:30Z): the only snapshot of 15 July
            item(2, datetime!(2026-07-15 04:30 UTC), &[]),
            // 16 July 10:00 EDT
            item(3, datetime!(2026-07-16 14:00 UTC), &[]),
        ]);
        let d = Policy {
            keep_daily: 3,
            ..Policy::default()
        };
        let now = ns(datetime!(2026-11-20 12:00 UTC));
        let p = plan(&its, &d, now, &ny()).expect("plan");
        assert_eq!(kept(&p), vec![1, 2, 3], "three local days");
        // With today's (EST, -05:00) offset for all, 00:30 EDT would be 23:30
        // on 14 July and push out snapshot 1: the bug this guards against.
        let est = TimeZone::fixed(jiff::tz::offset(-5));
        assert_eq!(kept(&plan(&its, &d, now, &est).expect("plan")), vec![2, 3]);
    }

    /// Issue #8 item 26: the two 01:xx hours of the night the clocks go back
    /// are two hours; Paris and Kolkata days are local days.
    #[test]
    fn hourly_across_the_fold_and_other_zones() {
        let its = ranked(&[
            item(1, datetime!(2026-11-01 05:10 UTC), &[]), // 01:10 EDT
            item(2, datetime!(2026-11-01 05:50 UTC), &[]), // 01:50 EDT
            item(3, datetime!(2026-11-01 06:20 UTC), &[]), // 01:20 EST
        ]);
        let h = Policy {
            keep_hourly: 5,
            ..Policy::default()
        };
        assert_eq!(kept(&plan(&its, &h, 0, &ny()).expect("plan")), vec![2, 3]);
        let d = Policy {
            keep_daily: 5,
            ..Policy::default()
        };
        // 22:30Z and 23:30Z on 1 July: one day in UTC, two in Paris (+02:00);
        // 18:00Z and 19:00Z: two days in Kolkata (+05:30).
        let its = ranked(&[
            item(1, datetime!(2026-07-01 21:30 UTC), &[]),
            item(2, datetime!(2026-07-01 22:30 UTC), &[]),
        ]);
        let paris = TimeZone::get("Europe/Paris").expect("zone");
        assert_eq!(kept(&plan(&its, &d, 0, &paris).expect("p")), vec![1, 2]);
        assert_eq!(kept(&plan(&its, &d, 0, UTC).expect("p")), vec![2]);
        let its = ranked(&[
            item(1, datetime!(2026-07-01 18:00 UTC), &[]),
            item(2, datetime!(2026-07-01 19:00 UTC), &[]),
        ]);
        let kolkata = TimeZone::get("Asia/Kolkata").expect("zone");
        assert_eq!(kept(&plan(&its, &d, 0, &kolkata).expect("p")), vec![1, 2]);
    }

    /// Issue #8 item 27: keep-last keeps the newest in history even when its
    /// time is earlier than its parent's.
    #[test]
    fn keep_last_follows_history_not_time() {
        let mut a = item(1, datetime!(2026-05-01 12:00 UTC), &[]);
        a.order = 0;
        let mut b = item(2, datetime!(2026-05-01 10:00 UTC), &[]); // clock went back
        b.order = 1;
        let p = plan(&[a, b], &Policy::keep_last(1), 0, UTC).expect("plan");
        assert_eq!(kept(&p), vec![2]);
        assert_eq!(p.decisions.last().expect("two").id.0[0], 2, "newest last");
        assert!(p.dangers.is_empty());
    }

    /// Issue #8 item 28: a plan that keeps nothing of a database, or removes
    /// its newest snapshot, says so.
    #[test]
    fn dangers_are_listed() {
        let its = ranked(&[
            item_in("/a", 1, datetime!(2026-01-01 0:00 UTC), &["keep"]),
            item_in("/a", 2, datetime!(2026-01-02 0:00 UTC), &[]),
            item_in("/b", 3, datetime!(2026-01-01 0:00 UTC), &[]),
        ]);
        let p = Policy {
            keep_tags: vec!["keep".into()],
            ..Policy::default()
        };
        let plan = plan(&its, &p, 0, UTC).expect("plan");
        assert_eq!(plan.dangers.len(), 2, "{:?}", plan.dangers);
        assert!(
            plan.dangers[0].contains("newest snapshot of /a"),
            "{:?}",
            plan.dangers
        );
        assert!(
            plan.dangers[1].contains("the only snapshot of /b"),
            "{:?}",
            plan.dangers
        );
        let safe = super::plan(&its, &Policy::keep_last(1), 0, UTC).expect("plan");
        assert!(safe.dangers.is_empty(), "{:?}", safe.dangers);
    }

    /// Issue #8 item 17: forget by name removes exactly those.
    #[test]
    fn named_plan() {
        let its = ranked(&[
            item_in("/a", 1, datetime!(2026-01-01 0:00 UTC), &[]),
            item_in("/a", 2, datetime!(2026-01-02 0:00 UTC), &[]),
            item_in("/b", 3, datetime!(2026-01-01 0:00 UTC), &[]),
        ]);
        let p = plan_named(&its, &[SnapshotId([2; 32])]);
        assert_eq!(kept(&p), vec![1]);
        assert_eq!(p.decisions.len(), 2, "only /a is considered");
        assert!(p.dangers.is_empty(), "naming the newest is explicit");
        let all = plan_named(&its, &[SnapshotId([3; 32])]);
        assert_eq!(all.dangers.len(), 1);
    }

    /// Issue #8 item 32: a count of 0 is refused at `config set`.
    #[test]
    fn zero_counts_are_refused() {
        let mut s = RetentionSettings::default();
        for key in [
            "keep-last",
            "keep-hourly",
            "keep-daily",
            "keep-weekly",
            "keep-monthly",
            "keep-yearly",
        ] {
            let e = set_setting(&mut s, key, "0").expect_err(key);
            assert!(matches!(e, PolicyError::BadValue { .. }), "{key}");
            assert!(e.to_string().contains("none"), "{e}");
        }
        assert!(set_setting(&mut s, "keep-within", "0d").is_err());
        set_setting(&mut s, "keep-pre-restore", "0h").expect("0h turns the grace off");
        assert_eq!(
            s,
            RetentionSettings {
                keep_pre_restore: Some("0h".into()),
                ..RetentionSettings::default()
            }
        );
    }
}
