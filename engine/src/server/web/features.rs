//! The predict form's fields, built from the served model: one field per
//! feature in training order, with its label, unit and help from
//! `Model.info["feature_docs"]`, its default and bounds from
//! `Model.info["feature_stats"]`, and the checks a submitted value must
//! pass.
//!
//! The rules, shared by the browser (HTML attributes) and the server:
//!
//! | value | result |
//! |---|---|
//! | empty | rejected: every feature is required |
//! | not a finite number, for a numeric feature | rejected |
//! | below 0, where training had no negative value | rejected |
//! | more than one training range (max − min) beyond the training min or max | rejected as implausible |
//! | a categorical value that is not a training level | rejected |
//! | outside the training min–max, within the bounds above | accepted, flagged as outside the training range |
//! | outside the 1st–99th percentile | accepted, flagged as unusual |
//!
//! A model without `feature_stats` gets no defaults, no bounds and no
//! comparison; one without `feature_docs` gets labels made from the column
//! names. This module never predicts and never renders HTML.

use super::format;
use crate::server::state::LoadedModel;
use flowrun_artifacts::FeatureKind;
use serde_json::Value;
use std::collections::BTreeMap;

/// Categorical features with more levels than this list them by training
/// frequency instead of by name, so that the common ones come first.
const ALPHABETICAL_LEVELS_MAX: usize = 30;

/// Training statistics of a numeric feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct NumericStats {
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) median: f64,
    pub(super) p1: f64,
    pub(super) p99: f64,
    pub(super) mean: f64,
}

impl NumericStats {
    /// Reads `{"min", "max", "median", "p1", "p99", "mean"}`; `None` when a
    /// value is missing or not finite.
    fn from_json(stats: &Value) -> Option<Self> {
        let get = |key: &str| stats.get(key)?.as_f64().filter(|x| x.is_finite());
        Some(NumericStats {
            min: get("min")?,
            max: get("max")?,
            median: get("median")?,
            p1: get("p1")?,
            p99: get("p99")?,
            mean: get("mean")?,
        })
    }

    /// Returns the smallest and largest values a form accepts: 0 or one
    /// training range below the minimum, and one training range above the
    /// maximum.
    pub(super) fn bounds(&self) -> (f64, f64) {
        let span = if self.max > self.min {
            self.max - self.min
        } else {
            self.max.abs().max(1.0)
        };
        let lower = if self.min >= 0.0 {
            0.0
        } else {
            self.min - span
        };
        (lower, self.max + span)
    }
}

/// A level of a categorical feature with its training row count.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Level {
    pub(super) name: String,
    pub(super) count: Option<u64>,
}

/// The kind of value a field takes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FieldKind {
    /// A number, with training statistics when the model has them.
    Numeric(Option<NumericStats>),
    /// One of the training levels, in the order the form lists them.
    Categorical {
        levels: Vec<Level>,
        /// Whether `levels` is in training-frequency order.
        by_frequency: bool,
        /// Training rows over all levels, when counts are known.
        total: Option<u64>,
    },
}

/// One input of the predict form.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Field {
    /// The feature (column) name, also the form field name.
    pub(super) name: String,
    pub(super) label: String,
    pub(super) unit: String,
    pub(super) help: String,
    pub(super) kind: FieldKind,
}

impl Field {
    /// Returns the value the form starts with: the training median, or the
    /// most frequent level; empty without statistics.
    pub(super) fn default_value(&self) -> String {
        match &self.kind {
            FieldKind::Numeric(Some(stats)) => format::input_value(stats.median),
            FieldKind::Numeric(None) => String::new(),
            FieldKind::Categorical { levels, .. } => levels
                .iter()
                .filter_map(|level| Some((level.count?, level)))
                .max_by(|(a, x), (b, y)| a.cmp(b).then_with(|| y.name.cmp(&x.name)))
                .map(|(_, level)| level.name.clone())
                .unwrap_or_default(),
        }
    }

    /// Checks a submitted value and returns it as a JSON value for the
    /// scoring request, or a sentence for the form.
    pub(super) fn parse(&self, raw: &str) -> Result<Value, String> {
        let text = raw.trim();
        if text.is_empty() {
            return Err("Enter a value; every input is required.".to_string());
        }
        match &self.kind {
            FieldKind::Numeric(stats) => parse_number(text, stats.as_ref()),
            FieldKind::Categorical { levels, .. } => {
                if levels.iter().any(|level| level.name == text) {
                    Ok(Value::String(text.to_string()))
                } else {
                    Err(format!(
                        "Choose one of the {} values from the list; “{}” was not seen in training.",
                        levels.len(),
                        shorten(text)
                    ))
                }
            }
        }
    }

    /// Compares an accepted value with the training data.
    pub(super) fn compare(&self, value: &Value) -> Comparison {
        match (&self.kind, value) {
            (FieldKind::Numeric(Some(stats)), Value::Number(number)) => {
                let x = number.as_f64().unwrap_or(f64::NAN);
                if x < stats.min || x > stats.max {
                    Comparison::OutsideRange
                } else if x < stats.p1 || x > stats.p99 {
                    Comparison::Unusual
                } else {
                    Comparison::Typical
                }
            }
            (
                FieldKind::Categorical {
                    levels,
                    total: Some(total),
                    ..
                },
                Value::String(text),
            ) => {
                let count = levels
                    .iter()
                    .find(|level| &level.name == text)
                    .and_then(|level| level.count)
                    .unwrap_or(0);
                // A level of under 1% of the rows is as rare as a value
                // outside the 1st-99th percentile of a number.
                if (count as f64) < 0.01 * (*total as f64) {
                    Comparison::Unusual
                } else {
                    Comparison::Typical
                }
            }
            _ => Comparison::Unknown,
        }
    }
}

/// The place of an input relative to the training data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    /// Within the 1st–99th percentile, or a level of at least 1% of rows.
    Typical,
    /// Outside the 1st–99th percentile, or a level of under 1% of rows.
    Unusual,
    /// Outside the minimum–maximum seen in training.
    OutsideRange,
    /// The model has no statistics for the feature.
    Unknown,
}

impl Comparison {
    /// Returns the sentence the comparison table shows.
    pub(super) fn sentence(self) -> &'static str {
        match self {
            Comparison::Typical => "typical",
            Comparison::Unusual => "unusual: outside the 1st–99th percentile of training",
            Comparison::OutsideRange => "outside the range seen in training",
            Comparison::Unknown => "no training statistics",
        }
    }

    /// Returns the CSS class of the comparison.
    pub(super) fn class(self) -> &'static str {
        match self {
            Comparison::Typical => "typical",
            Comparison::Unusual => "unusual",
            Comparison::OutsideRange => "outside",
            Comparison::Unknown => "unknown",
        }
    }
}

/// Builds the fields of a model, in training order.
pub(super) fn fields(model: &LoadedModel) -> Vec<Field> {
    let info = &model.model_info;
    let stats = info.get("feature_stats");
    let docs = info.get("feature_docs");
    model
        .features
        .iter()
        .map(|feature| {
            let name = feature.name.clone();
            let stat = stats.and_then(|s| s.get(&name));
            let doc = docs.and_then(|d| d.get(&name));
            let text = |key: &str| {
                doc.and_then(|d| d.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let label = Some(text("label"))
                .filter(|label| !label.is_empty())
                .unwrap_or_else(|| format::readable(&name));
            let kind = match &feature.kind {
                FeatureKind::Numeric => FieldKind::Numeric(stat.and_then(NumericStats::from_json)),
                FeatureKind::Categorical { levels } => categorical(levels, stat),
            };
            Field {
                label,
                unit: text("unit"),
                help: text("help"),
                kind,
                name,
            }
        })
        .collect()
}

/// Lists the levels with their training counts: by name when there are
/// few, by frequency when there are many.
fn categorical(levels: &[String], stats: Option<&Value>) -> FieldKind {
    let counts: BTreeMap<&str, u64> = stats
        .and_then(|s| s.get("level_counts"))
        .and_then(Value::as_object)
        .map(|counts| {
            counts
                .iter()
                .filter_map(|(level, count)| Some((level.as_str(), count.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut levels: Vec<Level> = levels
        .iter()
        .map(|name| Level {
            name: name.clone(),
            count: counts.get(name.as_str()).copied(),
        })
        .collect();
    let total = (!counts.is_empty()).then(|| counts.values().sum());
    let by_frequency = levels.len() > ALPHABETICAL_LEVELS_MAX && total.is_some();
    if by_frequency {
        levels.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    } else {
        levels.sort_by(|a, b| a.name.cmp(&b.name));
    }
    FieldKind::Categorical {
        levels,
        by_frequency,
        total,
    }
}

fn parse_number(text: &str, stats: Option<&NumericStats>) -> Result<Value, String> {
    let number = text
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| {
            format!(
                "“{}” is not a number; enter digits such as 12.5.",
                shorten(text)
            )
        })?;
    if let Some(stats) = stats {
        let (lower, upper) = stats.bounds();
        if number < lower && lower == 0.0 {
            return Err(format!(
                "Enter 0 or more; training had no negative values (lowest {}).",
                format::number(stats.min)
            ));
        }
        if number < lower || number > upper {
            return Err(format!(
                "{} is implausible: enter a value from {} to {} (training saw {} to {}).",
                format::number(number),
                format::number(lower),
                format::number(upper),
                format::number(stats.min),
                format::number(stats.max)
            ));
        }
    }
    serde_json::Number::from_f64(number)
        .map(Value::Number)
        .ok_or_else(|| format!("“{}” is not a finite number.", shorten(text)))
}

/// Cuts long user text before it is echoed in a message.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.chars().count() <= MAX_CHARS {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> NumericStats {
        NumericStats {
            min: 1.0,
            max: 101.0,
            median: 20.0,
            p1: 2.0,
            p99: 90.0,
            mean: 25.0,
        }
    }

    fn numeric() -> Field {
        Field {
            name: "price".into(),
            label: "Price".into(),
            unit: "BRL".into(),
            help: String::new(),
            kind: FieldKind::Numeric(Some(stats())),
        }
    }

    #[test]
    fn bounds_extend_one_range() {
        assert_eq!(stats().bounds(), (0.0, 201.0));
        let negative = NumericStats {
            min: -10.0,
            max: 10.0,
            ..stats()
        };
        assert_eq!(negative.bounds(), (-30.0, 30.0));
    }

    #[test]
    fn numeric_rejects_bad_text() {
        let field = numeric();
        assert!(field.parse("").unwrap_err().contains("required"));
        assert!(field.parse("abc").unwrap_err().contains("not a number"));
        assert!(field.parse("inf").unwrap_err().contains("not a number"));
        assert!(field.parse("-1").unwrap_err().contains("0 or more"));
        assert!(field.parse("1e9").unwrap_err().contains("implausible"));
        assert_eq!(field.parse(" 12.5 ").unwrap(), serde_json::json!(12.5));
    }

    #[test]
    fn comparison_flags_rare_values() {
        let field = numeric();
        let compare = |x: f64| field.compare(&serde_json::json!(x));
        assert_eq!(compare(20.0), Comparison::Typical);
        assert_eq!(compare(95.0), Comparison::Unusual);
        assert_eq!(compare(150.0), Comparison::OutsideRange);
    }

    #[test]
    fn categorical_default_is_most_frequent() {
        let stats = serde_json::json!({"level_counts": {"RJ": 5, "SP": 40, "MG": 7}});
        let kind = categorical(&["SP".into(), "RJ".into(), "MG".into()], Some(&stats));
        let field = Field {
            name: "state".into(),
            label: "State".into(),
            unit: String::new(),
            help: String::new(),
            kind,
        };
        assert_eq!(field.default_value(), "SP");
        assert!(
            field
                .parse("XX")
                .unwrap_err()
                .contains("not seen in training")
        );
        assert_eq!(field.parse("MG").unwrap(), serde_json::json!("MG"));
        let FieldKind::Categorical { levels, .. } = &field.kind else {
            panic!("not categorical");
        };
        let names: Vec<&str> = levels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["MG", "RJ", "SP"]);
    }
}
