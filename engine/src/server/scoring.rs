//! The scoring protocol of `POST /invocations`: it turns a request body into
//! a [`Table`] of the model's feature columns, and predictions into the
//! response body.
//!
//! The accepted bodies follow MLflow's scoring server:
//!
//! | content type | body |
//! |---|---|
//! | `application/json` | an object with exactly one of the keys below |
//! | | `dataframe_split`: `{"columns": [...], "data": [[...], ...]}` (an `index` key is ignored) |
//! | | `dataframe_records`: `[{"column": value, ...}, ...]` |
//! | | `instances` or `inputs`: records as above, or columns as `{"column": [values]}` |
//! | `text/csv` | a header row naming the columns, then one row per line |
//!
//! Columns are matched to the model's features by name, never by position,
//! so a list of rows without column names is rejected. Columns the model does
//! not read are ignored, and their names are returned so that the caller can
//! log a warning. A numeric feature takes a JSON number (in CSV, a finite
//! decimal number); `null`, strings and non-finite values are rejected. A
//! categorical feature takes a string, and `null` (in CSV, an empty field) is
//! a missing value that the model encodes as its `unknown` level. A string
//! that is not one of the feature's training levels is scored too, as the
//! model encodes unseen levels, and the feature's name is returned so that
//! the caller can tell the client and log it.
//!
//! This module never predicts and never touches the network: it parses and
//! formats bytes.

use bytes::Bytes;
use flowrun_artifacts::{Column, ColumnData, FeatureKind, FeatureSpec, Table};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};

/// The JSON keys that name an input format.
pub const FORMAT_KEYS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

/// The reason a scoring request was rejected. Every variant is a client
/// mistake.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    /// The content type is neither JSON nor CSV.
    #[error(
        "unsupported content type `{0}`; send `application/json` (dataframe_split, \
         dataframe_records, instances or inputs) or `text/csv` with a header row"
    )]
    UnsupportedMediaType(String),

    /// The batch has more rows than the server accepts.
    #[error(
        "the batch has {rows} rows, more than the limit of {max_rows}; split it into smaller \
         requests or start the server with a larger --max-rows"
    )]
    TooManyRows {
        /// Rows in the request.
        rows: usize,
        /// The server's limit.
        max_rows: usize,
    },

    /// The body is malformed or does not fit the model.
    #[error("{0}")]
    Invalid(String),
}

impl ScoringError {
    fn invalid(message: impl Into<String>) -> Self {
        ScoringError::Invalid(message.into())
    }
}

/// The content types a scoring request may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`, with any parameters such as `charset=utf-8`.
    Json,
    /// `text/csv` with a header row.
    Csv,
}

impl BodyFormat {
    /// Reads the `Content-Type` header value. A missing header is rejected
    /// like an unknown type, since the body cannot be read without it.
    pub fn from_content_type(value: Option<&str>) -> Result<Self, ScoringError> {
        let Some(value) = value else {
            return Err(ScoringError::UnsupportedMediaType("(none)".to_string()));
        };
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Ok(BodyFormat::Json)
        } else if essence.eq_ignore_ascii_case("text/csv") {
            Ok(BodyFormat::Csv)
        } else {
            Err(ScoringError::UnsupportedMediaType(value.to_string()))
        }
    }
}

/// A parsed batch: the feature columns in the model's training order, the
/// request's columns that the model does not read, and the categorical
/// features that received levels unseen in training.
#[derive(Debug)]
pub struct Batch {
    /// One column per model feature.
    pub table: Table,
    /// Column names the model ignores, sorted.
    pub ignored_columns: Vec<String>,
    /// Categorical features with at least one value that is not a training
    /// level, in the model's feature order. Missing values do not count.
    pub unknown_level_columns: Vec<String>,
}

/// Parses a request body into the model's feature columns.
pub fn parse_batch(
    format: BodyFormat,
    body: &Bytes,
    features: &[FeatureSpec],
    max_rows: usize,
) -> Result<Batch, ScoringError> {
    let columns = match format {
        BodyFormat::Json => parse_json(body, features, max_rows)?,
        BodyFormat::Csv => parse_csv(body, features, max_rows)?,
    };
    let unknown_level_columns = columns
        .columns
        .iter()
        .zip(&columns.unseen)
        .filter(|(_, unseen)| **unseen)
        .map(|(column, _)| column.name.clone())
        .collect();
    let table = Table::new(columns.columns)
        .map_err(|e| ScoringError::invalid(format!("the batch is not a valid table: {e}")))?;
    Ok(Batch {
        table,
        ignored_columns: columns.ignored.into_iter().collect(),
        unknown_level_columns,
    })
}

/// Formats predictions as `{"predictions": [...]}`.
pub fn predictions_body(predictions: &[f64]) -> Bytes {
    let mut text = String::with_capacity(20 + predictions.len() * 20);
    text.push_str("{\"predictions\":[");
    for (i, value) in predictions.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        // serde_json writes the shortest form that reads back to the same
        // value, and `null` for a non-finite one.
        match serde_json::Number::from_f64(*value) {
            Some(number) => text.push_str(&number.to_string()),
            None => text.push_str("null"),
        }
    }
    text.push_str("]}");
    Bytes::from(text)
}

/// Feature columns being built, whether each one received an unseen level,
/// and the ignored names.
struct Parsed {
    columns: Vec<Column>,
    unseen: Vec<bool>,
    ignored: BTreeSet<String>,
}

impl Parsed {
    fn new(built: Vec<(Column, bool)>, ignored: BTreeSet<String>) -> Self {
        let (columns, unseen) = built.into_iter().unzip();
        Parsed {
            columns,
            unseen,
            ignored,
        }
    }
}

/// Above this many row-level comparisons, a batch looks its values up in a
/// hash set of the levels instead of scanning the list. A one-row request
/// scans, because hashing every level would cost more than the scan. The
/// shipped model's `seller_id` feature has 901 levels, so a batch of 20 rows
/// or more uses the set.
const LEVEL_SCAN_LIMIT: usize = 16 * 1024;

/// The training levels of a categorical feature, as a batch checks them.
enum Levels<'a> {
    Scan(&'a [String]),
    Set(HashSet<&'a str>),
}

impl<'a> Levels<'a> {
    fn new(levels: &'a [String], rows: usize) -> Self {
        if rows.saturating_mul(levels.len()) > LEVEL_SCAN_LIMIT {
            Levels::Set(levels.iter().map(String::as_str).collect())
        } else {
            Levels::Scan(levels)
        }
    }

    fn contains(&self, text: &str) -> bool {
        match self {
            Levels::Scan(levels) => levels.iter().any(|level| level == text),
            Levels::Set(levels) => levels.contains(text),
        }
    }
}

/// Collects the values of one feature column with its type checks.
enum Builder<'a> {
    Numeric(Vec<f64>),
    Categorical {
        values: Vec<Option<String>>,
        levels: Levels<'a>,
        /// Whether a value outside `levels` was pushed.
        unseen: bool,
    },
}

impl<'a> Builder<'a> {
    /// Creates a builder for a column of about `rows` values.
    fn new(kind: &'a FeatureKind, rows: usize) -> Self {
        match kind {
            FeatureKind::Numeric => Builder::Numeric(Vec::with_capacity(rows)),
            FeatureKind::Categorical { levels } => Builder::Categorical {
                values: Vec::with_capacity(rows),
                levels: Levels::new(levels, rows),
                unseen: false,
            },
        }
    }

    /// Appends a categorical value and notes whether it is a training level.
    /// After the first unseen value, later values skip the check.
    fn push_level(
        values: &mut Vec<Option<String>>,
        levels: &Levels<'_>,
        unseen: &mut bool,
        text: &str,
    ) {
        if !*unseen && !levels.contains(text) {
            *unseen = true;
        }
        values.push(Some(text.to_string()));
    }

    /// Appends a JSON value; `row` and `column` name it in errors.
    fn push_json(&mut self, value: &Value, column: &str, row: usize) -> Result<(), ScoringError> {
        match (self, value) {
            (Builder::Numeric(values), Value::Number(number)) => {
                let number = number.as_f64().ok_or_else(|| {
                    ScoringError::invalid(format!(
                        "column `{column}` row {row}: {number} is not a 64-bit float"
                    ))
                })?;
                values.push(number);
            }
            (Builder::Numeric(_), other) => {
                return Err(ScoringError::invalid(format!(
                    "column `{column}` row {row}: expected a number, found {}; numeric features \
                     take JSON numbers and have no missing values",
                    describe(other)
                )));
            }
            (
                Builder::Categorical {
                    values,
                    levels,
                    unseen,
                },
                Value::String(text),
            ) => Builder::push_level(values, levels, unseen, text),
            (Builder::Categorical { values, .. }, Value::Null) => values.push(None),
            (Builder::Categorical { .. }, other) => {
                return Err(ScoringError::invalid(format!(
                    "column `{column}` row {row}: expected a string or null, found {}; this \
                     feature is categorical",
                    describe(other)
                )));
            }
        }
        Ok(())
    }

    /// Appends a CSV field.
    fn push_text(&mut self, text: &str, column: &str, row: usize) -> Result<(), ScoringError> {
        match self {
            Builder::Numeric(values) => {
                let trimmed = text.trim();
                let number: f64 = trimmed
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| {
                        ScoringError::invalid(format!(
                            "column `{column}` row {row}: `{trimmed}` is not a finite number; \
                             numeric features have no missing values"
                        ))
                    })?;
                values.push(number);
            }
            Builder::Categorical {
                values,
                levels,
                unseen,
            } => {
                if text.is_empty() {
                    values.push(None);
                } else {
                    Builder::push_level(values, levels, unseen, text);
                }
            }
        }
        Ok(())
    }

    /// Returns the column and whether it received an unseen level.
    fn finish(self, name: &str) -> (Column, bool) {
        let (data, unseen) = match self {
            Builder::Numeric(values) => (ColumnData::Float64(values), false),
            Builder::Categorical { values, unseen, .. } => (ColumnData::Utf8(values), unseen),
        };
        (Column::new(name, data), unseen)
    }
}

/// Names a JSON value's type for messages, without echoing long values.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn missing_feature(name: &str, kind: &FeatureKind) -> ScoringError {
    let kind = match kind {
        FeatureKind::Numeric => "numeric",
        FeatureKind::Categorical { .. } => "categorical",
    };
    ScoringError::invalid(format!(
        "missing feature column `{name}` ({kind}); GET /metadata lists the columns the model reads"
    ))
}

fn check_rows(rows: usize, max_rows: usize) -> Result<(), ScoringError> {
    if rows == 0 {
        return Err(ScoringError::invalid("the batch has no rows"));
    }
    if rows > max_rows {
        return Err(ScoringError::TooManyRows { rows, max_rows });
    }
    Ok(())
}

fn parse_json(
    body: &Bytes,
    features: &[FeatureSpec],
    max_rows: usize,
) -> Result<Parsed, ScoringError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScoringError::invalid(format!("invalid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ScoringError::invalid(format!(
            "the JSON body must be an object with one of the keys {}, found {}",
            FORMAT_KEYS.join(", "),
            describe(&value)
        )));
    };

    let present: Vec<&str> = FORMAT_KEYS
        .into_iter()
        .filter(|key| object.contains_key(*key))
        .collect();
    if let Some(unknown) = object
        .keys()
        .find(|key| !FORMAT_KEYS.contains(&key.as_str()))
    {
        return Err(ScoringError::invalid(format!(
            "unknown key `{unknown}` in the JSON body; use exactly one of {}",
            FORMAT_KEYS.join(", ")
        )));
    }
    let key = match present.as_slice() {
        [key] => *key,
        [] => {
            return Err(ScoringError::invalid(format!(
                "the JSON body has none of the keys {}",
                FORMAT_KEYS.join(", ")
            )));
        }
        several => {
            return Err(ScoringError::invalid(format!(
                "the JSON body has {} input keys ({}); use exactly one",
                several.len(),
                several.join(", ")
            )));
        }
    };

    let input = object.remove(key).unwrap_or(Value::Null);
    match (key, input) {
        ("dataframe_split", Value::Object(split)) => parse_split(split, features, max_rows),
        ("dataframe_split", other) => Err(ScoringError::invalid(format!(
            "`dataframe_split` must be an object with `columns` and `data`, found {}",
            describe(&other)
        ))),
        (_, Value::Array(rows)) => parse_records(key, &rows, features, max_rows),
        ("instances" | "inputs", Value::Object(columns)) => {
            parse_columnar(key, &columns, features, max_rows)
        }
        (_, other) => Err(ScoringError::invalid(format!(
            "`{key}` must be a list of records naming their columns, found {}",
            describe(&other)
        ))),
    }
}

/// Reads `{"columns": [...], "data": [[...]]}`.
fn parse_split(
    mut split: Map<String, Value>,
    features: &[FeatureSpec],
    max_rows: usize,
) -> Result<Parsed, ScoringError> {
    if let Some(unknown) = split
        .keys()
        .find(|k| !matches!(k.as_str(), "columns" | "data" | "index"))
    {
        return Err(ScoringError::invalid(format!(
            "unknown key `{unknown}` in `dataframe_split`; it takes `columns`, `data` and an \
             optional `index`"
        )));
    }
    let Some(Value::Array(names)) = split.remove("columns") else {
        return Err(ScoringError::invalid(
            "`dataframe_split.columns` is missing or not a list of column names",
        ));
    };
    let Some(Value::Array(data)) = split.remove("data") else {
        return Err(ScoringError::invalid(
            "`dataframe_split.data` is missing or not a list of rows",
        ));
    };

    let mut columns: Vec<&str> = Vec::with_capacity(names.len());
    for name in &names {
        let Value::String(name) = name else {
            return Err(ScoringError::invalid(format!(
                "`dataframe_split.columns` must hold strings, found {}",
                describe(name)
            )));
        };
        if columns.contains(&name.as_str()) {
            return Err(ScoringError::invalid(format!(
                "column `{name}` appears twice in `dataframe_split.columns`"
            )));
        }
        columns.push(name);
    }
    check_rows(data.len(), max_rows)?;

    let mut rows: Vec<&Vec<Value>> = Vec::with_capacity(data.len());
    for (i, row) in data.iter().enumerate() {
        match row {
            Value::Array(values) if values.len() == columns.len() => rows.push(values),
            Value::Array(values) => {
                return Err(ScoringError::invalid(format!(
                    "row {i} of `dataframe_split.data` has {} values but there are {} columns",
                    values.len(),
                    columns.len()
                )));
            }
            other => {
                return Err(ScoringError::invalid(format!(
                    "row {i} of `dataframe_split.data` must be a list, found {}",
                    describe(other)
                )));
            }
        }
    }

    let mut out = Vec::with_capacity(features.len());
    for feature in features {
        let index = columns
            .iter()
            .position(|c| *c == feature.name)
            .ok_or_else(|| missing_feature(&feature.name, &feature.kind))?;
        let mut builder = Builder::new(&feature.kind, rows.len());
        for (i, row) in rows.iter().enumerate() {
            builder.push_json(&row[index], &feature.name, i)?;
        }
        out.push(builder.finish(&feature.name));
    }
    Ok(Parsed::new(
        out,
        ignored_names(columns.iter().copied(), features),
    ))
}

/// Reads a list of records, `[{"column": value}, ...]`.
fn parse_records(
    key: &str,
    rows: &[Value],
    features: &[FeatureSpec],
    max_rows: usize,
) -> Result<Parsed, ScoringError> {
    check_rows(rows.len(), max_rows)?;
    let mut records: Vec<&Map<String, Value>> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match row {
            Value::Object(record) => records.push(record),
            Value::Array(_) => {
                return Err(ScoringError::invalid(format!(
                    "row {i} of `{key}` is a list of values without column names; send records \
                     like {{\"column\": value}} or use dataframe_split, because columns are \
                     matched by name, never by position"
                )));
            }
            other => {
                return Err(ScoringError::invalid(format!(
                    "row {i} of `{key}` must be an object of column values, found {}",
                    describe(other)
                )));
            }
        }
    }

    let mut out = Vec::with_capacity(features.len());
    for feature in features {
        let mut builder = Builder::new(&feature.kind, records.len());
        for (i, record) in records.iter().enumerate() {
            let value = record.get(&feature.name).ok_or_else(|| {
                let error = missing_feature(&feature.name, &feature.kind);
                ScoringError::invalid(format!("row {i} of `{key}`: {error}"))
            })?;
            builder.push_json(value, &feature.name, i)?;
        }
        out.push(builder.finish(&feature.name));
    }
    let mut ignored = BTreeSet::new();
    for record in &records {
        // Records with only the model's columns, the common case, skip the
        // name comparison.
        if record.len() > features.len() {
            ignored.extend(ignored_names(record.keys().map(String::as_str), features));
        }
    }
    Ok(Parsed::new(out, ignored))
}

/// Reads columns as `{"column": [values]}`.
fn parse_columnar(
    key: &str,
    columns: &Map<String, Value>,
    features: &[FeatureSpec],
    max_rows: usize,
) -> Result<Parsed, ScoringError> {
    let mut rows = None;
    for (name, values) in columns {
        let Value::Array(values) = values else {
            return Err(ScoringError::invalid(format!(
                "column `{name}` of `{key}` must be a list of values, found {}",
                describe(values)
            )));
        };
        match rows {
            None => rows = Some(values.len()),
            Some(n) if n != values.len() => {
                return Err(ScoringError::invalid(format!(
                    "the columns of `{key}` differ in length: `{name}` has {} values, others {n}",
                    values.len()
                )));
            }
            Some(_) => {}
        }
    }
    let rows = rows.unwrap_or(0);
    check_rows(rows, max_rows)?;

    let mut out = Vec::with_capacity(features.len());
    for feature in features {
        let Some(Value::Array(values)) = columns.get(&feature.name) else {
            return Err(missing_feature(&feature.name, &feature.kind));
        };
        let mut builder = Builder::new(&feature.kind, rows);
        for (i, value) in values.iter().enumerate() {
            builder.push_json(value, &feature.name, i)?;
        }
        out.push(builder.finish(&feature.name));
    }
    Ok(Parsed::new(
        out,
        ignored_names(columns.keys().map(String::as_str), features),
    ))
}

fn parse_csv(
    body: &Bytes,
    features: &[FeatureSpec],
    max_rows: usize,
) -> Result<Parsed, ScoringError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScoringError::invalid(
            "the CSV body is empty: it is missing the header row; send a header row naming \
             the columns, then one row per line",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body.as_ref());
    let headers = reader
        .headers()
        .map_err(|e| ScoringError::invalid(format!("invalid CSV header row: {e}")))?
        .clone();
    let names: Vec<&str> = headers.iter().collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(ScoringError::invalid(format!(
                "column `{name}` appears twice in the CSV header"
            )));
        }
    }
    let indexes: Vec<usize> = features
        .iter()
        .map(|f| {
            names
                .iter()
                .position(|n| *n == f.name)
                .ok_or_else(|| missing_feature(&f.name, &f.kind))
        })
        .collect::<Result<_, _>>()?;

    // The line count bounds the rows, which sizes the builders.
    let lines = body.iter().filter(|&&byte| byte == b'\n').count();
    let mut builders: Vec<Builder> = features
        .iter()
        .map(|f| Builder::new(&f.kind, lines.min(max_rows)))
        .collect();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.map_err(|e| ScoringError::invalid(format!("invalid CSV: {e}")))?;
        if rows == max_rows {
            // Count the rest so that the error states how large the batch is.
            let rest = reader.records().count();
            return Err(ScoringError::TooManyRows {
                rows: rows + 1 + rest,
                max_rows,
            });
        }
        for ((feature, builder), &index) in features.iter().zip(&mut builders).zip(&indexes) {
            builder.push_text(&record[index], &feature.name, rows)?;
        }
        rows += 1;
    }
    check_rows(rows, max_rows)?;

    let columns = features
        .iter()
        .zip(builders)
        .map(|(f, b)| b.finish(&f.name))
        .collect();
    Ok(Parsed::new(
        columns,
        ignored_names(names.iter().copied(), features),
    ))
}

/// Returns the names that are not model features.
fn ignored_names<'a>(
    names: impl Iterator<Item = &'a str>,
    features: &[FeatureSpec],
) -> BTreeSet<String> {
    names
        .filter(|name| !features.iter().any(|f| f.name == *name))
        .map(str::to_string)
        .collect()
}
