//! Points in time typed by people and shown to them, in the local time zone.
//!
//! Typed times are RFC 3339 (`2026-11-24T09:30:00Z`, `...+01:00`) or
//! `YYYY-MM-DD[ HH:MM[:SS]]` in local time. Local times are converted with the UTC
//! offset in force *at that instant* in the time zone (daylight saving time
//! included), read from the time-zone database: `TZ`, else the system zone
//! (`/etc/localtime`), with the IANA database from `/usr/share/zoneinfo` (or
//! `TZDIR`), or the copy built into the binary when the machine has none.
//!
//! A date alone names a whole day: as the start of a range (`--since`) it means
//! the first instant of that day, as the end (`--until`, `--at`) its last instant,
//! so `--since D --until D` is the whole day D. A local time that happens twice
//! (when the clocks go back) means its earlier instant as a start and its later
//! one as an end; a local time the clocks skip (when they go forward) means the
//! moment of the jump (as an end: the instant just before it). So "at or before
//! local time T" never picks a snapshot whose local time is after T.
//!
//! Snapshot times are unix nanoseconds in an `i64`: the supported range is
//! [`MIN_TIME`] to [`MAX_TIME`]. Retention durations (`7d`, `1y6m`) are parsed by
//! `retention`.
//!
//! Pure: the caller passes the time zone ([`local_zone`] reads it once).

use jiff::civil::{Date, DateTime, Time};
pub use jiff::tz::TimeZone;

use jiff::tz::AmbiguousOffset;
use jiff::{Timestamp, Zoned};
use time::macros::format_description;

use crate::error::{Error, Result};

/// The earliest time a snapshot time can hold (UTC).
pub const MIN_TIME: &str = "1677-09-21 00:12:44 UTC";
/// The latest time a snapshot time can hold (UTC).
pub const MAX_TIME: &str = "2262-04-11 23:47:16 UTC";

/// Which end of a typed period a time stands for (matters for a date alone and
/// for local times that DST makes ambiguous or skips).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The start of a range (`--since`): a date alone is its first instant.
    Start,
    /// The end of a range or a point to look back from (`--until`, `--at`):
    /// a date alone is its last instant.
    End,
}

/// The local time zone: `TZ`, else the system's; UTC when neither can be read.
pub fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// An instant (unix nanoseconds) as a zoned time in `tz`; out-of-range values
/// are clamped (they cannot come from a clock).
pub fn zoned(time_ns: i64, tz: &TimeZone) -> Zoned {
    Timestamp::from_nanosecond(i128::from(time_ns))
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
}

/// Local time for humans: `2026-07-15 00:30:00 EDT` (the zone's abbreviation,
/// or the offset when it has none), so the two 01:30 of a night when the
/// clocks go back are told apart.
pub fn format_local(time_ns: i64, tz: &TimeZone) -> String {
    let z = zoned(time_ns, tz);
    z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn out_of_range(s: &str) -> Error {
    Error::invalid_input(format!(
        "`{s}` is outside the supported range of times: {MIN_TIME} to {MAX_TIME}"
    ))
}

fn nanos(ts: Timestamp, s: &str) -> Result<i64> {
    i64::try_from(ts.as_nanosecond()).map_err(|_| out_of_range(s))
}

/// Parses a point in time into unix nanoseconds; local times in `tz`.
pub fn parse_time(s: &str, tz: &TimeZone, edge: Edge) -> Result<i64> {
    let s = s.trim();
    let bad = || {
        Error::invalid_input(format!(
            "`{s}` is not a time: use RFC 3339 (2026-11-24T09:30:00Z) or YYYY-MM-DD[ HH:MM[:SS]] (local time)"
        ))
    };
    // An explicit offset (or Z): RFC 3339.
    if let Ok(ts) = s.parse::<Timestamp>() {
        return nanos(ts, s);
    }
    // RFC 3339 beyond jiff's range (years up to 9999 with any offset).
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos()).map_err(|_| out_of_range(s));
    }
    let (date_part, time_part) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let d = time::Date::parse(date_part, format_description!("[year]-[month]-[day]"))
        .map_err(|_| bad())?;
    let date = Date::new(
        i16::try_from(d.year()).map_err(|_| out_of_range(s))?,
        i8::try_from(u8::from(d.month())).map_err(|_| bad())?,
        i8::try_from(d.day()).map_err(|_| bad())?,
    )
    .map_err(|_| out_of_range(s))?;
    let Some(t) = time_part else {
        let day_start = |date: Date| {
            date.to_zoned(tz.clone())
                .and_then(|z| z.start_of_day())
                .map(|z| z.timestamp())
                .map_err(|_| out_of_range(s))
        };
        return match edge {
            Edge::Start => nanos(day_start(date)?, s),
            Edge::End => {
                let next = date.tomorrow().map_err(|_| out_of_range(s))?;
                nanos(day_start(next)?, s).map(|n| n - 1)
            }
        };
    };
    let t = time::Time::parse(t, format_description!("[hour]:[minute]:[second]"))
        .or_else(|_| time::Time::parse(t, format_description!("[hour]:[minute]")))
        .map_err(|_| bad())?;
    let time = Time::new(
        i8::try_from(t.hour()).map_err(|_| bad())?,
        i8::try_from(t.minute()).map_err(|_| bad())?,
        i8::try_from(t.second()).map_err(|_| bad())?,
        0,
    )
    .map_err(|_| bad())?;
    let ts =
        local_instant(DateTime::from_parts(date, time), tz, edge).map_err(|_| out_of_range(s))?;
    nanos(ts, s)
}

/// The instant of a local date and time in `tz` (see the module doc for the
/// times DST repeats or skips).
fn local_instant(
    dt: DateTime,
    tz: &TimeZone,
    edge: Edge,
) -> std::result::Result<Timestamp, jiff::Error> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt),
        AmbiguousOffset::Fold { before, after } => match edge {
            Edge::Start => before.to_timestamp(dt),
            Edge::End => after.to_timestamp(dt),
        },
        AmbiguousOffset::Gap { before, after } => {
            // `after` read as the offset gives an instant before the jump.
            let early = after.to_timestamp(dt)?;
            let Some(jump) = tz.following(early).next().map(|t| t.timestamp()) else {
                return before.to_timestamp(dt);
            };
            match edge {
                Edge::Start => Ok(jump),
                Edge::End => jump.checked_sub(jiff::SignedDuration::from_nanos(1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1_000_000_000;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).expect("zone in the database")
    }

    fn at(s: &str, z: &TimeZone) -> i64 {
        parse_time(s, z, Edge::End).expect(s)
    }

    fn rfc(s: &str) -> i64 {
        parse_time(s, &TimeZone::UTC, Edge::End).expect(s)
    }

    #[test]
    fn formats() {
        let utc = TimeZone::UTC;
        let plus2 = TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(at("2026-11-24T09:30:00Z", &plus2), 1_795_512_600 * NS);
        assert_eq!(at("2026-11-24T11:30:00+02:00", &utc), 1_795_512_600 * NS);
        assert_eq!(at("2026-11-24 09:30", &utc), 1_795_512_600 * NS);
        assert_eq!(at("2026-11-24T09:30", &utc), 1_795_512_600 * NS);
        assert_eq!(at("2026-11-24 11:30:00", &plus2), 1_795_512_600 * NS);
        assert_eq!(at("2026-11-24", &utc), 1_795_564_799 * NS + 999_999_999);
        for bad in ["", "yesterday", "2026-13-01", "2026-11-24 25:00", "12:00"] {
            let e = parse_time(bad, &utc, Edge::End).expect_err(bad);
            assert!(
                e.kind() == crate::ErrorKind::InvalidInput
                    && e.to_string().contains("is not a time"),
                "{bad}: {e}"
            );
        }
    }

    /// Issue #8 item 32: a date alone is the whole day: its start as a start.
    #[test]
    fn a_date_alone_is_a_whole_day() {
        let utc = TimeZone::UTC;
        let start = parse_time("2026-11-24", &utc, Edge::Start).expect("start");
        let end = parse_time("2026-11-24", &utc, Edge::End).expect("end");
        assert_eq!(start, rfc("2026-11-24T00:00:00Z"));
        assert_eq!(end, rfc("2026-11-25T00:00:00Z") - 1);
        // In a zone, the local day.
        let ny = tz("America/New_York");
        assert_eq!(
            parse_time("2026-07-15", &ny, Edge::Start).expect("s"),
            rfc("2026-07-15T04:00:00Z")
        );
        assert_eq!(
            parse_time("2026-11-15", &ny, Edge::Start).expect("s"),
            rfc("2026-11-15T05:00:00Z")
        );
    }

    /// Issue #8 item 32: out-of-range times say the supported range.
    #[test]
    fn out_of_range_says_the_range() {
        for s in [
            "9999-12-31",
            "9999-12-31 10:00",
            "1500-01-01",
            "9999-12-31T00:00:00Z",
        ] {
            let e = parse_time(s, &TimeZone::UTC, Edge::End).expect_err(s);
            let m = e.to_string();
            assert!(m.contains(MIN_TIME) && m.contains(MAX_TIME), "{s}: {m}");
        }
        assert!(parse_time("2262-04-11", &TimeZone::UTC, Edge::Start).is_ok());
    }

    /// Issue #8 item 26: the offset in force at the instant, not today's.
    #[test]
    fn local_times_use_the_offset_of_their_date() {
        let ny = tz("America/New_York");
        // July: EDT (-04:00); November: EST (-05:00), whatever today is.
        assert_eq!(at("2026-07-15 00:00", &ny), rfc("2026-07-15T04:00:00Z"));
        assert_eq!(at("2026-11-20 00:00", &ny), rfc("2026-11-20T05:00:00Z"));
        let paris = tz("Europe/Paris");
        assert_eq!(at("2026-07-15 12:00", &paris), rfc("2026-07-15T10:00:00Z"));
        assert_eq!(at("2026-01-15 12:00", &paris), rfc("2026-01-15T11:00:00Z"));
        let kolkata = tz("Asia/Kolkata");
        assert_eq!(
            at("2026-07-15 12:00", &kolkata),
            rfc("2026-07-15T06:30:00Z")
        );
        assert_eq!(
            at("2026-01-15 05:30", &kolkata),
            rfc("2026-01-15T00:00:00Z")
        );
    }

    /// Issue #8 item 26: around the DST changes, never a later instant than the
    /// local time typed.
    #[test]
    fn dst_gaps_and_folds() {
        let ny = tz("America/New_York");
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
        let jump = rfc("2026-03-08T07:00:00Z");
        assert_eq!(at("2026-03-08 02:30", &ny), jump - 1);
        assert_eq!(
            parse_time("2026-03-08 02:30", &ny, Edge::Start).expect("s"),
            jump
        );
        assert_eq!(at("2026-03-08 01:59:59", &ny), jump - NS);
        assert_eq!(at("2026-03-08 03:00", &ny), jump);
        // 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:30 happens twice.
        assert_eq!(at("2026-11-01 01:30", &ny), rfc("2026-11-01T06:30:00Z"));
        assert_eq!(
            parse_time("2026-11-01 01:30", &ny, Edge::Start).expect("s"),
            rfc("2026-11-01T05:30:00Z")
        );
    }

    #[test]
    fn shown_with_the_offset_of_their_instant() {
        let ny = tz("America/New_York");
        assert_eq!(
            format_local(rfc("2026-07-15T04:30:00Z"), &ny),
            "2026-07-15 00:30:00 EDT"
        );
        assert_eq!(
            format_local(rfc("2026-11-20T04:30:00Z"), &ny),
            "2026-11-19 23:30:00 EST"
        );
        assert_eq!(
            format_local(rfc("2026-11-01T05:30:00Z"), &ny),
            "2026-11-01 01:30:00 EDT"
        );
        assert_eq!(
            format_local(rfc("2026-11-01T06:30:00Z"), &ny),
            "2026-11-01 01:30:00 EST"
        );
        assert_eq!(
            format_local(rfc("2026-07-15T06:30:00Z"), &tz("Asia/Kolkata")),
            "2026-07-15 12:00:00 IST"
        );
        assert_eq!(
            format_local(rfc("2026-07-15T06:30:00Z"), &TimeZone::UTC),
            "2026-07-15 06:30:00 UTC"
        );
    }
}
