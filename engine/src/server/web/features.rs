//! The predict form's fields, built from the served model: one field per
//! feature in training order, with its label, unit, help and domain from
//! `Model.info["feature_docs"]`, its default and bounds from
//! `Model.info["feature_stats"]`, and the checks a submitted value must
//! pass.
//!
//! A domain is the set of values a feature can take by its meaning, such as
//! the months 1 to 12 or a 0/1 flag, whatever training saw. It is
//! `feature_docs.NAME.domain`: `{"min", "max", "integer", "rule"}`, every
//! key optional, `rule` a sentence the form shows beside the field. Where
//! a domain declares a bound, that bound replaces the generic one below.
//!
//! The rules, shared by the browser (HTML attributes) and the server:
//!
//! | value | result |
//! |---|---|
//! | empty | rejected: every feature is required |
//! | not a finite number, for a numeric feature | rejected |
//! | outside the domain, or not whole where the domain takes whole numbers | rejected with the domain's rule |
//! | below 0, where training had no negative value and no domain sets a minimum | rejected |
//! | more than one training range (max − min) beyond the training min or max, where no domain sets that bound | rejected as implausible |
//! | a categorical value that is not a training level | rejected |
//! | outside the training min–max, within the bounds above | accepted, flagged as outside the training range |
//! | outside the 1st–99th percentile | accepted, flagged as unusual |
//!
//! A model without `feature_stats` gets no defaults, no generic bounds and
//! no comparison. A model without `feature_docs` gets labels made from the
//! column names and no domains. Messages quote a rejected value as the
//! user typed it, cut to 40 characters, so `1e308` does not come back as a
//! 309-digit number. This module does not predict or render HTML.

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

/// The valid values of a numeric feature by its meaning, from
/// `feature_docs`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Domain {
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    /// Whether only whole numbers are valid.
    pub(super) integer: bool,
    /// A sentence that states the domain, such as "A month is a whole
    /// number from 1 to 12.", or empty when the model gives none.
    pub(super) rule: String,
}

impl Domain {
    /// Reads `{"min", "max", "integer", "rule"}`; `None` when the object
    /// declares no bound and no whole-number rule, or when its bounds are
    /// not finite or contradict each other.
    fn from_json(domain: &Value) -> Option<Self> {
        let bound = |key: &str| match domain.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(value) => value.as_f64().filter(|x| x.is_finite()).map(Some),
        };
        let parsed = Domain {
            min: bound("min")?,
            max: bound("max")?,
            integer: domain
                .get("integer")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            rule: domain
                .get("rule")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        let declares_something = parsed.min.is_some() || parsed.max.is_some() || parsed.integer;
        let consistent = match (parsed.min, parsed.max) {
            (Some(min), Some(max)) => min <= max,
            _ => true,
        };
        (declares_something && consistent).then_some(parsed)
    }

    /// Returns whether `x` lies in the domain.
    fn contains(&self, x: f64) -> bool {
        self.min.is_none_or(|min| x >= min)
            && self.max.is_none_or(|max| x <= max)
            && (!self.integer || x == x.trunc())
    }

    /// Moves `x` to the nearest value of the domain, for a default taken
    /// from training statistics: a median of 1.5 photos becomes 2.
    fn nearest(&self, x: f64) -> f64 {
        let mut x = if self.integer { x.round() } else { x };
        if let Some(min) = self.min {
            x = x.max(if self.integer { min.ceil() } else { min });
        }
        if let Some(max) = self.max {
            x = x.min(if self.integer { max.floor() } else { max });
        }
        x
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
    /// A number, with training statistics and its domain when the model
    /// has them.
    Numeric {
        stats: Option<NumericStats>,
        domain: Option<Domain>,
    },
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
            FieldKind::Numeric {
                stats: Some(stats),
                domain,
            } => {
                let median = domain
                    .as_ref()
                    .map_or(stats.median, |d| d.nearest(stats.median));
                format::input_value(median)
            }
            FieldKind::Numeric { stats: None, .. } => String::new(),
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
            FieldKind::Numeric { stats, domain } => {
                parse_number(text, stats.as_ref(), domain.as_ref())
            }
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

    /// Returns the smallest and largest values the form accepts, each
    /// `None` where nothing bounds the value: the domain's bound where it
    /// declares one, else the generic bound from the training statistics.
    pub(super) fn bounds(&self) -> (Option<f64>, Option<f64>) {
        let FieldKind::Numeric { stats, domain } = &self.kind else {
            return (None, None);
        };
        bounds(stats.as_ref(), domain.as_ref())
    }

    /// Returns the `step` attribute of a numeric input: `1` where only whole
    /// numbers are valid, else `any`.
    pub(super) fn step(&self) -> &'static str {
        match &self.kind {
            FieldKind::Numeric {
                domain: Some(domain),
                ..
            } if domain.integer => "1",
            _ => "any",
        }
    }

    /// Returns the sentence that states the field's domain, if it has one.
    pub(super) fn rule(&self) -> Option<&str> {
        match &self.kind {
            FieldKind::Numeric {
                domain: Some(domain),
                ..
            } if !domain.rule.is_empty() => Some(&domain.rule),
            _ => None,
        }
    }

    /// Compares an accepted value with the training data.
    pub(super) fn compare(&self, value: &Value) -> Comparison {
        match (&self.kind, value) {
            (
                FieldKind::Numeric {
                    stats: Some(stats), ..
                },
                Value::Number(number),
            ) => {
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
                FeatureKind::Numeric => FieldKind::Numeric {
                    stats: stat.and_then(NumericStats::from_json),
                    domain: doc
                        .and_then(|d| d.get("domain"))
                        .and_then(Domain::from_json),
                },
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

/// Combines the domain's bounds with the generic bounds of the training
/// statistics; see [`Field::bounds`].
fn bounds(stats: Option<&NumericStats>, domain: Option<&Domain>) -> (Option<f64>, Option<f64>) {
    let generic = stats.map(NumericStats::bounds);
    let lower = domain
        .and_then(|d| d.min)
        .or(generic.map(|(lower, _)| lower));
    let upper = domain
        .and_then(|d| d.max)
        .or(generic.map(|(_, upper)| upper));
    // A generic maximum below the domain's minimum would leave no valid
    // value; the domain's minimum is valid by definition.
    let upper = match (lower, upper) {
        (Some(lower), Some(upper)) => Some(upper.max(lower)),
        _ => upper,
    };
    (lower, upper)
}

fn parse_number(
    text: &str,
    stats: Option<&NumericStats>,
    domain: Option<&Domain>,
) -> Result<Value, String> {
    // Rust reads "NaN", "inf" and "infinity" as floats; none is a number
    // a person means, unlike digits too large for a float.
    let spelled_out = text.to_ascii_lowercase().contains(['n', 'i']);
    let number = match text.parse::<f64>() {
        Ok(number) if !spelled_out => number,
        _ => {
            return Err(format!(
                "“{}” is not a number; enter digits such as 12.5.",
                shorten(text)
            ));
        }
    };
    let (lower, upper) = bounds(stats, domain);
    if number.is_infinite() {
        return Err(format!(
            "“{}” is too large to be read as a number; {}.",
            shorten(text),
            range_request(lower, upper)
        ));
    }
    if let Some(domain) = domain.filter(|d| !d.contains(number)) {
        let rule = if domain.rule.is_empty() {
            sentence(&range_request(domain.min, domain.max))
        } else {
            domain.rule.clone()
        };
        return Err(format!("“{}” is not a valid value. {rule}", shorten(text)));
    }
    if let Some(stats) = stats {
        let domain_min = domain.and_then(|d| d.min);
        if domain_min.is_none() && lower == Some(0.0) && number < 0.0 {
            return Err(format!(
                "Enter 0 or more; training had no negative values (lowest {}).",
                format::number(stats.min)
            ));
        }
        let below = lower.is_some_and(|lower| number < lower);
        let above = upper.is_some_and(|upper| number > upper);
        if below || above {
            return Err(format!(
                "“{}” is implausible: {} (training saw {} to {}).",
                shorten(text),
                range_request(lower, upper),
                format::number(stats.min),
                format::number(stats.max)
            ));
        }
    }
    serde_json::Number::from_f64(number)
        .map(Value::Number)
        .ok_or_else(|| format!("“{}” is not a finite number.", shorten(text)))
}

/// Asks for a value within the bounds, in a clause such as "enter a value
/// from 0 to 20".
fn range_request(lower: Option<f64>, upper: Option<f64>) -> String {
    match (lower, upper) {
        (Some(lower), Some(upper)) => format!(
            "enter a value from {} to {}",
            format::number(lower),
            format::number(upper)
        ),
        (Some(lower), None) => format!("enter {} or more", format::number(lower)),
        (None, Some(upper)) => format!("enter {} or less", format::number(upper)),
        (None, None) => "enter a smaller number".to_string(),
    }
}

/// Turns a clause such as "enter 1 or more" into a sentence.
fn sentence(clause: &str) -> String {
    let mut chars = clause.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
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
            kind: FieldKind::Numeric {
                stats: Some(stats()),
                domain: None,
            },
        }
    }

    /// Builds a field with training statistics and a domain read from
    /// JSON, as `feature_docs` carries it.
    fn bounded(stats: NumericStats, domain: Value) -> Field {
        Field {
            name: "x".into(),
            label: "X".into(),
            unit: String::new(),
            help: String::new(),
            kind: FieldKind::Numeric {
                stats: Some(stats),
                domain: Some(Domain::from_json(&domain).expect("a valid domain")),
            },
        }
    }

    fn month() -> Field {
        let stats = NumericStats {
            min: 1.0,
            max: 12.0,
            median: 6.5,
            p1: 1.0,
            p99: 12.0,
            mean: 6.4,
        };
        bounded(
            stats,
            serde_json::json!({"min": 1, "max": 12, "integer": true,
                               "rule": "A month is a whole number from 1 to 12."}),
        )
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
    fn absurd_values_quoted_as_typed() {
        let field = numeric();
        let message = field.parse("1e308").unwrap_err();
        assert_eq!(
            message,
            "“1e308” is implausible: enter a value from 0 to 201 (training saw 1 to 101)."
        );
        let message = field.parse("1e309").unwrap_err();
        assert_eq!(
            message,
            "“1e309” is too large to be read as a number; enter a value from 0 to 201."
        );
        let long = format!("1{}", "0".repeat(400));
        let message = field.parse(&long).unwrap_err();
        assert!(message.chars().count() < 120, "{message}");
    }

    #[test]
    fn domain_replaces_generic_bounds() {
        let field = month();
        assert_eq!(field.bounds(), (Some(1.0), Some(12.0)));
        assert_eq!(field.step(), "1");
        assert_eq!(
            field.rule(),
            Some("A month is a whole number from 1 to 12.")
        );
        assert_eq!(numeric().step(), "any");
        assert_eq!(numeric().rule(), None);
        assert_eq!(numeric().bounds(), (Some(0.0), Some(201.0)));
    }

    #[test]
    fn domain_rejects_impossible_values() {
        let field = month();
        for bad in ["0", "13", "23", "2.5", "-1"] {
            let message = field.parse(bad).unwrap_err();
            assert_eq!(
                message,
                format!("“{bad}” is not a valid value. A month is a whole number from 1 to 12."),
            );
        }
        assert_eq!(field.parse("12").unwrap(), serde_json::json!(12.0));
        assert_eq!(field.parse("1").unwrap(), serde_json::json!(1.0));
    }

    #[test]
    fn flag_accepts_only_zero_or_one() {
        let stats = NumericStats {
            min: 0.0,
            max: 1.0,
            median: 0.0,
            p1: 0.0,
            p99: 1.0,
            mean: 0.3,
        };
        let field = bounded(
            stats,
            serde_json::json!({"min": 0, "max": 1, "integer": true, "rule": "Enter 1 for yes or 0 for no."}),
        );
        assert!(
            field
                .parse("2")
                .unwrap_err()
                .contains("Enter 1 for yes or 0 for no.")
        );
        assert!(field.parse("0.5").is_err());
        assert!(field.parse("1").is_ok());
        assert!(field.parse("0").is_ok());
    }

    #[test]
    fn domain_minimum_keeps_generic_maximum() {
        // A count with a natural minimum and no natural maximum.
        let stats = NumericStats {
            min: 1.0,
            max: 21.0,
            median: 1.5,
            p1: 1.0,
            p99: 4.0,
            mean: 1.2,
        };
        let field = bounded(
            stats,
            serde_json::json!({"min": 1, "integer": true,
                               "rule": "An order has a whole number of items, 1 or more."}),
        );
        assert_eq!(field.bounds(), (Some(1.0), Some(41.0)));
        assert!(field.parse("0").unwrap_err().contains("1 or more"));
        assert!(field.parse("1.5").unwrap_err().contains("whole number"));
        assert!(field.parse("42").unwrap_err().contains("implausible"));
        assert!(field.parse("40").is_ok());
        // The median 1.5 is no whole number, so the form starts at 2.
        assert_eq!(field.default_value(), "2");
    }

    #[test]
    fn invalid_domains_are_ignored() {
        for json in [
            serde_json::json!({}),
            serde_json::json!({"rule": "Anything."}),
            serde_json::json!({"min": 5, "max": 1}),
            serde_json::json!({"min": "one"}),
            serde_json::json!("1-12"),
        ] {
            assert_eq!(Domain::from_json(&json), None, "{json}");
        }
        let rule_less = Domain::from_json(&serde_json::json!({"min": 1, "max": 3})).unwrap();
        let field = Field {
            kind: FieldKind::Numeric {
                stats: None,
                domain: Some(rule_less),
            },
            ..numeric()
        };
        assert_eq!(
            field.parse("4").unwrap_err(),
            "“4” is not a valid value. Enter a value from 1 to 3."
        );
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
