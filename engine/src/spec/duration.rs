//! Durations as written in pipeline files (`retry_delay: 1s`,
//! `timeout: 30m`) and as shown in logs (`1.2s`, `2m 5s`).
//!
//! The grammar is part of flowrun's YAML format: one or more terms of a
//! number (fractions allowed) and a unit among `ms`, `s`, `m` and `h`,
//! with optional spaces between and within terms (`1h 30m`, `1.5s`,
//! `250 ms`). A bare `0` is
//! also accepted. It is hand-written because crates such as humantime accept
//! many more units and spellings (days, `min`, `sec`), which would make the
//! format larger than documented.

use std::time::Duration;

/// Parses a duration such as `1s`, `350ms`, `1.5m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let usage = "use a number and a unit among ms, s, m and h, such as `500ms`, `30s` or `1h 30m`";
    if trimmed.is_empty() {
        return Err(format!("the duration is empty; {usage}"));
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }

    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(number_len);
        let after_number = after_number.trim_start();
        let unit_len = after_number
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);

        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a valid duration; {usage}"))?;
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("`{text}` has no unit; {usage}")),
            other => return Err(format!("`{text}` has an unknown unit `{other}`; {usage}")),
        };
        let term = Duration::try_from_secs_f64(value * seconds_per_unit)
            .map_err(|_| format!("`{text}` is too long for a duration"))?;
        total = total
            .checked_add(term)
            .ok_or_else(|| format!("`{text}` is too long for a duration"))?;
        rest = after_unit.trim_start();
    }
    Ok(total)
}

/// Formats a duration for people: `350ms` below a second, `1.2s` below a
/// minute, `2m 5s` below an hour and `1h 2m` above.
pub fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }

    // Round to tenths of a second first, so 59.96s shows as `1m 0s` and not
    // as `60s`.
    let tenths = (millis + 50) / 100;
    if tenths < 600 {
        let (whole, tenth) = (tenths / 10, tenths % 10);
        return if tenth == 0 {
            format!("{whole}s")
        } else {
            format!("{whole}.{tenth}s")
        };
    }

    let seconds = (millis + 500) / 1000;
    if seconds < 3600 {
        format!("{}m {}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h {}m", seconds / 3600, (seconds % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("350ms"), Ok(Duration::from_millis(350)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_fractions_and_sums() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m5s"), Ok(Duration::from_secs(125)));
        assert_eq!(parse_duration("250 ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_bad_durations() {
        for text in ["", "abc", "5", "5 seconds", "1d", "-1s", "1..2s", "s"] {
            assert!(parse_duration(text).is_err(), "`{text}` was accepted");
        }
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("1d")
                .unwrap_err()
                .contains("unknown unit `d`")
        );
    }

    #[test]
    fn formats_by_magnitude() {
        assert_eq!(format_duration(Duration::from_millis(350)), "350ms");
        assert_eq!(format_duration(Duration::from_millis(1200)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_millis(59_960)), "1m 0s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m 5s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h 2m");
    }

    #[test]
    fn formatted_minutes_parse_back() {
        let d = Duration::from_secs(125);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
