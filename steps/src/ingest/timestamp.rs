//! Conversion between `YYYY-MM-DD HH:MM:SS` timestamps and seconds since the
//! Unix epoch, and back from seconds to calendar fields.
//!
//! Written by hand rather than with a date crate, because the format is fixed
//! and the parser sits in the hot loop of ingest (about 600,000 timestamps on
//! the full data). A fixed-position parser costs a few nanoseconds per
//! value. The day arithmetic is the well-known proleptic Gregorian
//! days-from-civil conversion (Howard Hinnant, "chrono-Compatible Low-Level
//! Date Algorithms"). Timestamps carry no zone, so they are read as UTC. This
//! module must never apply a zone or daylight-saving shift, because the
//! features built from them (month, weekday, day differences) are meant in
//! the wall-clock time the data was written in.

const SECONDS_PER_DAY: i64 = 86_400;

/// A calendar date and its weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilDate {
    pub(crate) year: i64,
    /// 1 (January) to 12.
    pub(crate) month: u32,
    /// 1 to 31.
    pub(crate) day: u32,
    /// 0 (Monday) to 6 (Sunday).
    pub(crate) weekday: u32,
}

/// Parses `YYYY-MM-DD HH:MM:SS` (a `T` in place of the space is accepted, as
/// is a bare `YYYY-MM-DD`, read as midnight) into seconds since the Unix
/// epoch. Returns `None` for any other text or an impossible date or time.
pub(crate) fn parse_timestamp(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 && bytes.len() != 19 {
        return None;
    }
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = digits(&bytes[0..4])?;
    let month = digits(&bytes[5..7])?;
    let day = digits(&bytes[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }

    let mut seconds_of_day = 0;
    if bytes.len() == 19 {
        if !matches!(bytes[10], b' ' | b'T') || bytes[13] != b':' || bytes[16] != b':' {
            return None;
        }
        let hour = digits(&bytes[11..13])?;
        let minute = digits(&bytes[14..16])?;
        let second = digits(&bytes[17..19])?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds_of_day = hour * 3600 + minute * 60 + second;
    }

    let days = days_from_civil(year, month, day);
    Some((days * SECONDS_PER_DAY + seconds_of_day) as f64)
}

/// Returns the calendar date of a timestamp in seconds since the Unix epoch,
/// or `None` when the timestamp is missing (NaN) or infinite.
pub(crate) fn civil_date(seconds: f64) -> Option<CivilDate> {
    if !seconds.is_finite() {
        return None;
    }
    let days = (seconds / SECONDS_PER_DAY as f64).floor() as i64;

    // Shift the epoch to 0000-03-01 so that the leap day ends each 400-year
    // era and each year starts in March.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);

    // 1970-01-01 was a Thursday (weekday 3 when Monday is 0).
    let weekday = (days + 3).rem_euclid(7) as u32;
    Some(CivilDate {
        year,
        month,
        day,
        weekday,
    })
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + i64::from(byte - b'0'))
    })
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Returns the number of days from 1970-01-01 to the given date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0.0));
        // `date -u -d '2017-10-02 10:56:33' +%s`
        assert_eq!(
            parse_timestamp("2017-10-02 10:56:33"),
            Some(1_506_941_793.0)
        );
        assert_eq!(
            parse_timestamp("2017-10-02T10:56:33"),
            Some(1_506_941_793.0)
        );
        assert_eq!(parse_timestamp("2018-02-28"), Some(1_519_776_000.0));
        assert_eq!(parse_timestamp("1969-12-31 23:59:59"), Some(-1.0));
    }

    #[test]
    fn leap_days_and_invalid_dates() {
        assert!(parse_timestamp("2016-02-29 12:00:00").is_some());
        assert_eq!(parse_timestamp("2017-02-29 12:00:00"), None);
        assert_eq!(parse_timestamp("1900-02-29"), None);
        assert!(parse_timestamp("2000-02-29").is_some());
        assert_eq!(parse_timestamp("2017-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("2017-04-31 00:00:00"), None);
        assert_eq!(parse_timestamp("2017-01-01 24:00:00"), None);
        assert_eq!(parse_timestamp("2017-01-01 10:60:00"), None);
    }

    #[test]
    fn malformed_text_rejected() {
        for text in [
            "",
            "yesterday",
            "2017/10/02 10:56:33",
            "2017-10-02 10:56",
            "2017-10-02 10:56:33.5",
            "+017-10-02 10:56:33",
            "2017-1a-02 10:56:33",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text:?} should be rejected");
        }
    }

    #[test]
    fn civil_date_round_trips() {
        let mut seconds = parse_timestamp("1999-12-25 00:00:00").unwrap();
        let end = parse_timestamp("2021-03-05 00:00:00").unwrap();
        while seconds < end {
            let date = civil_date(seconds + 3_599.0).unwrap();
            let text = format!("{:04}-{:02}-{:02}", date.year, date.month, date.day);
            assert_eq!(parse_timestamp(&text), Some(seconds), "{text}");
            seconds += SECONDS_PER_DAY as f64;
        }
    }

    #[test]
    fn weekdays() {
        // 2017-10-02 was a Monday, 2018-08-12 a Sunday.
        let monday = civil_date(parse_timestamp("2017-10-02 23:59:59").unwrap()).unwrap();
        assert_eq!((monday.month, monday.weekday), (10, 0));
        let sunday = civil_date(parse_timestamp("2018-08-12 00:00:00").unwrap()).unwrap();
        assert_eq!((sunday.day, sunday.weekday), (12, 6));
        let before_epoch = civil_date(-1.0).unwrap();
        assert_eq!(
            (before_epoch.year, before_epoch.month, before_epoch.day),
            (1969, 12, 31)
        );
        assert_eq!(before_epoch.weekday, 2);
        assert_eq!(civil_date(f64::NAN), None);
    }
}
