//! When a database's scheduled snapshot is due: pure functions of the last run,
//! now, and the schedule. A schedule that missed several slots (the machine
//! was asleep or off) is due once, and the run counts for every missed slot:
//! the next one is the first slot after the run.

use jiff::civil::Weekday as JiffWeekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use crate::config_file::{Schedule, TimeOfDay};

/// Where in the day, week or month a calendar schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Local time of day.
    pub time: TimeOfDay,
    /// Weekly: days since Monday (0 to 6).
    pub weekday: u8,
    /// Monthly: day of the month (1 to 28).
    pub day: u8,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            time: TimeOfDay::default(),
            weekday: 0,
            day: 1,
        }
    }
}

fn zoned(ns: i64, tz: &TimeZone) -> Option<Zoned> {
    Some(
        Timestamp::from_nanosecond(i128::from(ns))
            .ok()?
            .to_zoned(tz.clone()),
    )
}

fn ns(z: &Zoned) -> i64 {
    i64::try_from(z.timestamp().as_nanosecond()).unwrap_or(i64::MAX)
}

/// The newest calendar slot at or before `now_ns` (unix ns), or `None` for a
/// schedule without slots (manual, or a duration).
pub fn latest_slot(schedule: Schedule, slot: Slot, now_ns: i64, tz: &TimeZone) -> Option<i64> {
    let now = zoned(now_ns, tz)?;
    let (h, m) = (slot.time.hour as i8, slot.time.minute as i8);
    let at = |date: jiff::civil::Date| date.at(h, m, 0, 0).to_zoned(tz.clone()).ok();
    let today = now.date();
    let candidate = |date: jiff::civil::Date| at(date).filter(|z| z.timestamp() <= now.timestamp());
    match schedule {
        Schedule::Daily => candidate(today).or_else(|| at(today.yesterday().ok()?)),
        Schedule::Weekly => {
            let want = JiffWeekday::from_monday_zero_offset(slot.weekday as i8).ok()?;
            let back = (today.weekday().to_monday_zero_offset() - want.to_monday_zero_offset())
                .rem_euclid(7);
            let date = today.checked_sub((back as i64).days()).ok()?;
            candidate(date).or_else(|| at(date.checked_sub(7.days()).ok()?))
        }
        Schedule::Monthly => {
            let date = today.with().day(slot.day as i8).build().ok()?;
            candidate(date).or_else(|| at(date.checked_sub(1.month()).ok()?))
        }
        _ => None,
    }
    .map(|z| ns(&z))
}

/// Whether a scheduled snapshot is due at `now_ns`, the last scheduled run
/// (or the newest snapshot) having been at `last_ns` (`None`: never).
pub fn is_due(
    schedule: Schedule,
    slot: Slot,
    last_ns: Option<i64>,
    now_ns: i64,
    tz: &TimeZone,
) -> bool {
    match schedule {
        Schedule::Manual => false,
        Schedule::Every(every) => match last_ns {
            None => true,
            Some(last) => {
                let every = i64::try_from(every.0.as_nanos()).unwrap_or(i64::MAX);
                // A clock set back: due again after one interval from now on.
                now_ns.saturating_sub(last) >= every || last > now_ns.saturating_add(every)
            }
        },
        _ => match (latest_slot(schedule, slot, now_ns, tz), last_ns) {
            (Some(_), None) => true,
            (Some(s), Some(last)) => last < s || last > now_ns,
            (None, _) => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::Interval;

    const H: i64 = 3_600_000_000_000;

    fn t(text: &str) -> i64 {
        let ts: Timestamp = text.parse().expect("time");
        i64::try_from(ts.as_nanosecond()).expect("range")
    }

    #[test]
    fn daily_at_three() {
        let tz = TimeZone::UTC;
        let s = Slot::default();
        let now = t("2026-03-10T12:00:00Z");
        assert_eq!(
            latest_slot(Schedule::Daily, s, now, &tz),
            Some(t("2026-03-10T03:00:00Z"))
        );
        let early = t("2026-03-10T02:00:00Z");
        assert_eq!(
            latest_slot(Schedule::Daily, s, early, &tz),
            Some(t("2026-03-09T03:00:00Z"))
        );
        assert!(!is_due(
            Schedule::Daily,
            s,
            Some(t("2026-03-10T03:00:01Z")),
            now,
            &tz
        ));
        assert!(is_due(
            Schedule::Daily,
            s,
            Some(t("2026-03-10T02:59:59Z")),
            now,
            &tz
        ));
    }

    #[test]
    fn weekly_and_monthly_slots() {
        let tz = TimeZone::UTC;
        // 2026-03-10 is a Tuesday.
        let now = t("2026-03-10T12:00:00Z");
        let sunday = Slot {
            weekday: 6,
            ..Slot::default()
        };
        assert_eq!(
            latest_slot(Schedule::Weekly, sunday, now, &tz),
            Some(t("2026-03-08T03:00:00Z"))
        );
        let tuesday_late = Slot {
            weekday: 1,
            time: TimeOfDay {
                hour: 13,
                minute: 30,
            },
            ..Slot::default()
        };
        assert_eq!(
            latest_slot(Schedule::Weekly, tuesday_late, now, &tz),
            Some(t("2026-03-03T13:30:00Z"))
        );
        let fifteenth = Slot {
            day: 15,
            ..Slot::default()
        };
        assert_eq!(
            latest_slot(Schedule::Monthly, fifteenth, now, &tz),
            Some(t("2026-02-15T03:00:00Z"))
        );
    }

    #[test]
    fn a_long_sleep_is_caught_up_once() {
        let tz = TimeZone::UTC;
        let s = Slot::default();
        let before_sleep = t("2026-03-10T04:00:00Z");
        // Asleep five days: due once on waking, not five times.
        let wake = before_sleep + 5 * 24 * H;
        assert!(is_due(Schedule::Daily, s, Some(before_sleep), wake, &tz));
        let run = wake;
        for minutes in 1..(20 * 60) {
            let later = run + minutes * 60_000_000_000;
            assert!(
                !is_due(Schedule::Daily, s, Some(run), later, &tz),
                "{minutes}"
            );
        }
        // The next day's slot is due again.
        assert!(is_due(
            Schedule::Daily,
            s,
            Some(run),
            t("2026-03-16T03:00:00Z"),
            &tz
        ));
        let every = Schedule::Every(Interval(std::time::Duration::from_secs(900)));
        assert!(is_due(every, s, Some(before_sleep), wake, &tz));
        assert!(!is_due(every, s, Some(wake), wake + 60_000_000_000, &tz));
        assert!(!is_due(Schedule::Manual, s, None, wake, &tz));
        assert!(is_due(Schedule::Daily, s, None, wake, &tz));
    }
}
