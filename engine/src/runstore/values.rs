//! Conversions between flowrun values and SQLite columns: typed parameters,
//! metric floats, timestamps and run ids.
//!
//! Every value that goes in comes out equal, including NaN and the
//! infinities, which SQLite cannot store as REAL (it turns a NaN into NULL).
//! This module never runs a query.

use super::types::{RunStatus, Stage, StepStatus};
use crate::param::{ParamValue, format_float};
use flowrun_artifacts::ArtifactKind;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, Type, Value, ValueRef};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// RFC 3339 in UTC with exactly three fractional digits, so that text order
/// is time order.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The time part of a run id, to the second.
const RUN_ID_TIME: &[FormatItem<'static>] =
    format_description!("[year][month][day]-[hour][minute][second]");

/// Returns the current time.
pub(super) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats a time as stored in the database.
pub(super) fn format_timestamp(at: OffsetDateTime) -> String {
    // The format has numeric fields only, which an `OffsetDateTime` always
    // provides, so formatting does not fail.
    at.format(TIMESTAMP)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses a time written by [`format_timestamp`].
pub(super) fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(text, TIMESTAMP)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Returns `at` minus a number of milliseconds.
pub(super) fn minus_ms(at: OffsetDateTime, ms: u64) -> OffsetDateTime {
    at - Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Returns the milliseconds from `start` (as stored) to `end`, or `None`
/// when `start` cannot be parsed.
pub(super) fn elapsed_ms(start: &str, end: OffsetDateTime) -> Option<i64> {
    let start = parse_timestamp(start)?;
    i64::try_from((end - start).whole_milliseconds()).ok()
}

/// Builds a run id from the start time and a random suffix, such as
/// `20261204-201530-3f9a`. Ids sort by start second; the caller checks the
/// id is unused, inside the transaction that inserts it.
pub(super) fn new_run_id(at: OffsetDateTime) -> String {
    let stamp = at
        .format(RUN_ID_TIME)
        .unwrap_or_else(|_| at.unix_timestamp().to_string());
    format!("{stamp}-{:04x}", rand::random::<u16>())
}

/// Splits a parameter into its type name and its column value.
///
/// Scalars keep their SQLite type: bools and ints as INTEGER, finite floats
/// as REAL, non-finite floats and strings as TEXT (the type column separates
/// a float `"NaN"` from a string). Lists and maps are JSON text.
pub(super) fn encode_param(value: &ParamValue) -> (&'static str, Value) {
    match value {
        ParamValue::Bool(b) => ("bool", Value::Integer(i64::from(*b))),
        ParamValue::Int(i) => ("int", Value::Integer(*i)),
        ParamValue::Float(f) if f.is_finite() => ("float", Value::Real(*f)),
        ParamValue::Float(f) => ("float", Value::Text(format_float(*f))),
        ParamValue::String(s) => ("string", Value::Text(s.clone())),
        ParamValue::List(_) => ("list", Value::Text(value.to_json().to_string())),
        ParamValue::Map(_) => ("map", Value::Text(value.to_json().to_string())),
    }
}

/// Rebuilds a parameter from its type name and column value. Returns `None`
/// when they do not fit together.
///
/// NOTE: a NaN or infinity nested inside a list or map comes back as the
/// string `"NaN"`, `"inf"` or `"-inf"`, because lists and maps are stored as
/// JSON, which has no literal for them. Top-level floats round-trip exactly.
pub(super) fn decode_param(ty: &str, value: Value) -> Option<ParamValue> {
    match (ty, value) {
        ("bool", Value::Integer(i)) => Some(ParamValue::Bool(i != 0)),
        ("int", Value::Integer(i)) => Some(ParamValue::Int(i)),
        ("float", Value::Real(f)) => Some(ParamValue::Float(f)),
        // SQLite may hand back a whole REAL as an INTEGER.
        ("float", Value::Integer(i)) => Some(ParamValue::Float(i as f64)),
        ("float", Value::Text(t)) => parse_non_finite(&t).map(ParamValue::Float),
        ("string", Value::Text(s)) => Some(ParamValue::String(s)),
        ("list" | "map", Value::Text(json)) => {
            let json: serde_json::Value = serde_json::from_str(&json).ok()?;
            ParamValue::from_json(&json)
        }
        _ => None,
    }
}

/// Splits a metric value into its REAL and TEXT columns; exactly one is set.
pub(super) fn encode_metric(value: f64) -> (Option<f64>, Option<String>) {
    if value.is_finite() {
        (Some(value), None)
    } else {
        (None, Some(format_float(value)))
    }
}

/// Rebuilds a metric value from its two columns.
pub(super) fn decode_metric(real: Option<f64>, text: Option<&str>) -> Option<f64> {
    match (real, text) {
        (Some(value), None) => Some(value),
        (None, Some(text)) => parse_non_finite(text),
        _ => None,
    }
}

/// Parses `NaN`, `inf` or `-inf` as written by [`format_float`].
fn parse_non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Builds the error for a stored value this build cannot read.
pub(super) fn invalid_column(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, message.into())
}

/// Reads the stored text of a status-like enum.
macro_rules! from_sql_text {
    ($($name:ident),+) => {
        $(impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(
                        format!("unknown {} `{text}`", stringify!($name)).into(),
                    )
                })
            }
        })+
    };
}

from_sql_text!(RunStatus, StepStatus, Stage);

/// Parses an artifact kind as written by `ArtifactKind::as_str`.
pub(super) fn parse_kind(text: &str) -> Option<ArtifactKind> {
    [ArtifactKind::Table, ArtifactKind::Model, ArtifactKind::Json]
        .into_iter()
        .find(|kind| kind.as_str() == text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn timestamp_round_trips() {
        let at = now();
        let text = format_timestamp(at);
        assert_eq!(text.len(), "2026-12-04T20:15:30.123Z".len(), "{text}");
        let back = parse_timestamp(&text).unwrap();
        assert!((at - back).whole_milliseconds().abs() < 1, "{text}");
    }

    #[test]
    fn run_id_has_date_time_and_suffix() {
        let at = parse_timestamp("2026-12-04T20:15:30.123Z").unwrap();
        let id = new_run_id(at);
        assert!(id.starts_with("20261204-201530-"), "{id}");
        assert_eq!(id.len(), "20261204-201530-3f9a".len(), "{id}");
    }

    #[test]
    fn params_round_trip() {
        let mut map = BTreeMap::new();
        map.insert("depth".to_string(), ParamValue::Int(6));
        let values = [
            ParamValue::Bool(true),
            ParamValue::Int(-3),
            ParamValue::Float(0.1),
            ParamValue::Float(-0.0),
            ParamValue::Float(f64::INFINITY),
            ParamValue::Float(f64::NEG_INFINITY),
            ParamValue::String("NaN".to_string()),
            ParamValue::List(vec![ParamValue::Int(1), ParamValue::Float(2.5)]),
            ParamValue::Map(map),
        ];
        for value in values {
            let (ty, column) = encode_param(&value);
            assert_eq!(decode_param(ty, column), Some(value.clone()), "{value}");
        }

        let (ty, column) = encode_param(&ParamValue::Float(f64::NAN));
        let back = decode_param(ty, column).and_then(|v| v.as_f64()).unwrap();
        assert!(back.is_nan());
    }
}
