//! Text forms of the values the pages show: numbers, metrics, durations,
//! sizes, timestamps and feature names.
//!
//! Every function returns plain text; the templates escape it. Nothing here
//! reads the stores or decides what a page shows.

/// Numbers at least this large are shown with an exponent, so that a
/// value such as 1e308 takes five characters on a page, not 309.
const EXPONENT_FROM: f64 = 1e15;

/// Numbers closer to 0 than this, other than 0, are shown with an exponent
/// instead of a row of zeros that four significant digits would cut.
const EXPONENT_BELOW: f64 = 1e-4;

/// Formats a number for reading: integers below 10¹⁵ without a fraction,
/// other values with about four significant digits, very large and very
/// small ones with an exponent (`1e308`, `2.5e-7`), and `NaN`, `inf`,
/// `-inf`.
pub(super) fn number(x: f64) -> String {
    if !x.is_finite() {
        return crate::param::format_float(x);
    }
    let size = x.abs();
    if size >= EXPONENT_FROM || (size > 0.0 && size < EXPONENT_BELOW) {
        return scientific(x);
    }
    if x == x.trunc() {
        return format!("{x:.0}");
    }
    let magnitude = size.log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    trim_zeros(format!("{x:.decimals$}"))
}

/// Formats a number with four significant digits and an exponent, without
/// trailing zeros: `1e308`, `1.235e20`.
fn scientific(x: f64) -> String {
    let text = format!("{x:.3e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => format!("{}e{exponent}", trim_zeros(mantissa.to_string())),
        None => text,
    }
}

/// Formats a number as an input value: the shortest text that reads back
/// to the same float, without an exponent.
pub(super) fn input_value(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// Formats a metric with four decimals, or `—` when it is absent.
pub(super) fn metric(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        Some(x) => crate::param::format_float(x),
        None => "—".to_string(),
    }
}

/// Formats a duration in milliseconds as `85 ms`, `1.2 s` or `3 min 4 s`.
pub(super) fn duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        let seconds = ms / 1000;
        format!("{} min {} s", seconds / 60, seconds % 60)
    }
}

/// Formats a size in bytes with binary units.
pub(super) fn bytes(size: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if size < 1024 {
        return format!("{size} B");
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Shows an RFC 3339 UTC timestamp of the run store
/// (`2026-12-04T20:15:30.123Z`) as `2026-12-04 20:15:30 UTC`. Text in
/// another form is returned unchanged.
pub(super) fn timestamp(text: &str) -> String {
    let Some((date, time)) = text.split_once('T') else {
        return text.to_string();
    };
    let time = time.trim_end_matches('Z');
    let time = time.split('.').next().unwrap_or(time);
    format!("{date} {time} UTC")
}

/// Returns the first 12 hex digits of a content hash, enough to tell
/// artifacts apart on a page.
pub(super) fn hash_prefix(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Turns a column name such as `product_weight_g` into `Product weight g`,
/// for features without documentation.
pub(super) fn readable(name: &str) -> String {
    let spaced = name.replace(['_', '-'], " ");
    let mut chars = spaced.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name.to_string(),
    }
}

fn trim_zeros(text: String) -> String {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_keeps_four_significant_digits() {
        assert_eq!(number(84.99), "84.99");
        assert_eq!(number(1.677531), "1.678");
        assert_eq!(number(0.0123456), "0.01235");
        assert_eq!(number(1502845123.0), "1502845123");
        assert_eq!(number(-2.5), "-2.5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(0.0), "0");
    }

    #[test]
    fn number_uses_exponent_at_extremes() {
        assert_eq!(number(1e308), "1e308");
        assert_eq!(number(-1e308), "-1e308");
        assert_eq!(number(1.23456e20), "1.235e20");
        assert_eq!(number(2.5e-7), "2.5e-7");
        assert_eq!(number(999_999_999_999_999.0), "999999999999999");
        assert_eq!(number(f64::MAX).len(), "1.798e308".len());
    }

    #[test]
    fn input_value_reads_back() {
        for x in [84.99, 0.1, 1502845123.0, -3.25, 1e-7] {
            assert_eq!(input_value(x).parse::<f64>().unwrap(), x);
            assert!(!input_value(x).contains('e'), "{}", input_value(x));
        }
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration_ms(85), "85 ms");
        assert_eq!(duration_ms(1250), "1.2 s");
        assert_eq!(duration_ms(184_000), "3 min 4 s");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn timestamps_lose_the_fraction() {
        assert_eq!(
            timestamp("2026-12-04T20:15:30.123Z"),
            "2026-12-04 20:15:30 UTC"
        );
        assert_eq!(timestamp("yesterday"), "yesterday");
    }

    #[test]
    fn names_become_readable() {
        assert_eq!(readable("product_weight_g"), "Product weight g");
        assert_eq!(readable("price"), "Price");
    }
}
