//! Cache entries: what a step's cache key maps to.

use super::ArtifactRef;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The version of the cache entry layout. An entry of another version is
/// treated as absent by [`ArtifactStore::get_entry`](super::ArtifactStore::get_entry).
pub const CACHE_ENTRY_FORMAT_VERSION: u32 = 1;

/// The record of one successful run of a step under one cache key: its
/// outputs, metrics and tags, enough to replay the step without running it.
///
/// In JSON, `metrics` is a list of `[name, value]` pairs in which NaN and the
/// infinities are the strings `"NaN"`, `"inf"` and `"-inf"`, because JSON
/// numbers cannot express them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The entry layout version; set it to [`CACHE_ENTRY_FORMAT_VERSION`].
    pub format_version: u32,
    /// The registered name of the step.
    pub step: String,
    /// The output artifacts by declared output name.
    pub outputs: BTreeMap<String, ArtifactRef>,
    /// The metrics the step logged, in order.
    #[serde(with = "metric_list")]
    pub metrics: Vec<(String, f64)>,
    /// The tags the step set, in order.
    pub tags: Vec<(String, String)>,
    /// The run that produced the entry. Information only: it is never part
    /// of a cache key.
    pub run_id: String,
    /// How long the step ran, in milliseconds.
    pub duration_ms: u64,
}

/// Serde for metric lists whose values may be NaN or infinite.
mod metric_list {
    use super::*;

    /// One metric value as it appears in JSON.
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum StoredValue {
        Finite(f64),
        NonFinite(String),
    }

    pub(super) fn serialize<S: Serializer>(
        metrics: &[(String, f64)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let stored: Vec<(&str, StoredValue)> = metrics
            .iter()
            .map(|(name, value)| (name.as_str(), to_stored(*value)))
            .collect();
        stored.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, f64)>, D::Error> {
        let stored = Vec::<(String, StoredValue)>::deserialize(deserializer)?;
        stored
            .into_iter()
            .map(|(name, value)| match from_stored(value) {
                Ok(value) => Ok((name, value)),
                Err(text) => Err(serde::de::Error::custom(format!(
                    "metric `{name}` has value `{text}`; expected a number, \"NaN\", \"inf\" or \"-inf\""
                ))),
            })
            .collect()
    }

    fn to_stored(value: f64) -> StoredValue {
        if value.is_nan() {
            StoredValue::NonFinite("NaN".to_string())
        } else if value == f64::INFINITY {
            StoredValue::NonFinite("inf".to_string())
        } else if value == f64::NEG_INFINITY {
            StoredValue::NonFinite("-inf".to_string())
        } else {
            StoredValue::Finite(value)
        }
    }

    fn from_stored(value: StoredValue) -> Result<f64, String> {
        match value {
            StoredValue::Finite(value) => Ok(value),
            StoredValue::NonFinite(text) => match text.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(text),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArtifactKind, ContentHash};

    fn entry(metrics: Vec<(String, f64)>) -> CacheEntry {
        let output = ArtifactRef {
            hash: ContentHash::from_hex(&"ab".repeat(32)).expect("hex"),
            kind: ArtifactKind::Table,
            size: 1234,
            file_digest: "cd".repeat(32),
        };
        CacheEntry {
            format_version: CACHE_ENTRY_FORMAT_VERSION,
            step: "train_model".into(),
            outputs: BTreeMap::from([("model".to_string(), output)]),
            metrics,
            tags: vec![("decision".into(), "deploy".into())],
            run_id: "run-1".into(),
            duration_ms: 42,
        }
    }

    #[test]
    fn metrics_round_trip_exactly() {
        let values = [
            0.1,
            -0.0,
            1e-310,
            f64::MAX,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let metrics = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("m{i}"), *v))
            .collect();
        let original = entry(metrics);

        let json = serde_json::to_string(&original).expect("serialize");
        let back: CacheEntry = serde_json::from_str(&json).expect("deserialize");

        assert_eq!(back.metrics.len(), values.len());
        for ((name, got), want) in back.metrics.iter().zip(values) {
            assert_eq!(got.to_bits(), want.to_bits(), "metric {name} changed");
        }
        assert_eq!(back.outputs, original.outputs);
        assert_eq!(back.tags, original.tags);
    }

    #[test]
    fn non_finite_metrics_are_strings() {
        let json = serde_json::to_value(entry(vec![
            ("loss".into(), f64::NAN),
            ("gain".into(), f64::INFINITY),
            ("drop".into(), f64::NEG_INFINITY),
            ("rmse".into(), 0.5),
        ]))
        .expect("serialize");
        assert_eq!(
            json["metrics"],
            serde_json::json!([
                ["loss", "NaN"],
                ["gain", "inf"],
                ["drop", "-inf"],
                ["rmse", 0.5]
            ])
        );
    }

    #[test]
    fn unknown_metric_string_is_rejected() {
        let mut json = serde_json::to_value(entry(vec![])).expect("serialize");
        json["metrics"] = serde_json::json!([["loss", "infinity"]]);
        let error = serde_json::from_value::<CacheEntry>(json).expect_err("unknown text");
        assert!(error.to_string().contains("metric `loss`"), "{error}");
    }

    #[test]
    fn integer_metric_is_read_as_float() {
        let mut json = serde_json::to_value(entry(vec![])).expect("serialize");
        json["metrics"] = serde_json::json!([["rows", 3]]);
        let back: CacheEntry = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back.metrics, vec![("rows".to_string(), 3.0)]);
    }
}
