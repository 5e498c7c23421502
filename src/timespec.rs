//! Points in time typed by people: RFC 3339 (`2026-11-24T09:30:00Z`) or
//! `YYYY-MM-DD[ HH:MM[:SS]]` in local time (a date alone means its end, 23:59:59,
//! so "restore --at 2026-11-24" gives the state at the end of that day). Retention
//! durations (`7d`, `1y6m`) are parsed by `retention`, which counts calendar months.
//!
//! Pure: the caller passes the local UTC offset.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::{Error, Result};

/// Parses a point in time into unix nanoseconds.
pub fn parse_time(s: &str, local: UtcOffset) -> Result<i64> {
    let s = s.trim();
    let bad = || {
        Error::BadInput(format!(
            "`{s}` is not a time: use RFC 3339 (2026-11-24T09:30:00Z) or YYYY-MM-DD[ HH:MM[:SS]] (local time)"
        ))
    };
    let t = if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        t
    } else {
        let (date_part, time_part) = match s.split_once([' ', 'T']) {
            Some((d, t)) => (d, Some(t.trim())),
            None => (s, None),
        };
        let date = Date::parse(date_part, format_description!("[year]-[month]-[day]"))
            .map_err(|_| bad())?;
        let time = match time_part {
            None => Time::from_hms_nano(23, 59, 59, 999_999_999).map_err(|_| bad())?,
            Some(t) => Time::parse(t, format_description!("[hour]:[minute]:[second]"))
                .or_else(|_| Time::parse(t, format_description!("[hour]:[minute]")))
                .map_err(|_| bad())?,
        };
        PrimitiveDateTime::new(date, time).assume_offset(local)
    };
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1_000_000_000;

    #[test]
    fn formats() {
        let utc = UtcOffset::UTC;
        let plus2 = UtcOffset::from_hms(2, 0, 0).expect("offset");
        assert_eq!(
            parse_time("2026-11-24T09:30:00Z", plus2).expect("rfc"),
            1_795_512_600 * NS
        );
        assert_eq!(
            parse_time("2026-11-24 09:30", utc).expect("local"),
            1_795_512_600 * NS
        );
        assert_eq!(
            parse_time("2026-11-24 11:30:00", plus2).expect("local +2"),
            1_795_512_600 * NS
        );
        assert_eq!(
            parse_time("2026-11-24", utc).expect("date"),
            1_795_564_799 * NS + 999_999_999
        );
        for bad in ["", "yesterday", "2026-13-01", "2026-11-24 25:00", "12:00"] {
            assert!(
                matches!(parse_time(bad, utc), Err(Error::BadInput(_))),
                "{bad}"
            );
        }
    }
}
