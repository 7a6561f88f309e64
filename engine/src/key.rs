//! Cache keys: the identity of a step's result.
//!
//! A step is taken from cache when the store holds an entry under its key,
//! so the key must change whenever the result could change, and must not
//! change otherwise. A key is the blake3 hash of a canonical, tagged,
//! length-prefixed encoding of these inputs:
//!
//! | input | why it is in the key |
//! |---|---|
//! | [`CACHE_FORMAT_VERSION`] | bumping it invalidates every entry after a change to the encoding, the artifact formats or the executor's semantics |
//! | registered step name (`uses:`) | two steps with equal parameters but different code paths must not share results |
//! | code fingerprint | computed at build time by `flowrun-build` from the step's module, the crate modules it uses and the crate's dependency versions, so editing one step re-runs only that step and its dependents |
//! | resolved parameters | every declared parameter after defaults, `${...}` references and `--set` overrides, sorted by name, each with a type tag; a float is hashed by its bit pattern, so `5e-4` and `0.0005` are one value |
//! | input artifact hashes | the content hash of each connected input, sorted by input name; an upstream step that re-ran but produced the same bytes leaves the key unchanged |
//! | contents of declared data paths | for each path parameter declared with `hash_contents`, a fingerprint of the file or folder it names (see [`crate::contents`]), sorted by parameter name, so changed data files re-run the step |
//!
//! Left out on purpose:
//!
//! | left out | why |
//! |---|---|
//! | the step id (the YAML key) and the pipeline name | renaming a step or reusing it in another pipeline (the deployment pipeline extends the training one) must reuse its results |
//! | absolute paths of the pipeline file, store or working directory | moving a checkout must not invalidate the cache; path parameters enter as written, so keep them relative |
//! | timestamps, run ids, the process id, `--jobs` and the thread count | they do not change a deterministic step's result |
//! | map order in the YAML | parameters and inputs are sorted before hashing |
//! | `retries`, `retry_delay`, `timeout`, `after:` | they change how a step is run, not what it computes |
//! | the producer step of an input | only the content matters: the same table from another step is the same input |
//!
//! NOTE: the key is only as honest as the step's signature. A step that
//! reads a file through a path parameter without `hash_contents` is keyed on
//! the path alone, and a step that reads the clock or an unseeded random
//! generator gives results the key does not describe.

use crate::param::ParamValue;
use flowrun_artifacts::ContentHash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Version of the key encoding and of the cache-entry semantics.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// A cache key: 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CacheKey(String);

impl CacheKey {
    /// Returns the 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The origin and content hash of an input, recorded to explain later
/// cache misses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputDetail {
    /// The producing output, as `step.output`.
    pub from: String,
    /// The content hash of the artifact.
    pub hash: ContentHash,
}

/// Every input of a key, kept in the run store so that the next run can
/// name the part that changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyDetail {
    /// The registered step name.
    pub step: String,
    /// The code fingerprint.
    pub fingerprint: String,
    /// Resolved parameters.
    pub params: BTreeMap<String, ParamValue>,
    /// Inputs by input name.
    pub inputs: BTreeMap<String, InputDetail>,
    /// Fingerprints of the data at `hash_contents` path parameters, by
    /// parameter name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

impl KeyDetail {
    /// Computes the cache key of this detail.
    pub fn key(&self) -> CacheKey {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"flowrun-cache-key");
        hasher.update(&CACHE_FORMAT_VERSION.to_le_bytes());
        write_str(&mut hasher, &self.step);
        write_str(&mut hasher, &self.fingerprint);

        hasher.update(&(self.params.len() as u64).to_le_bytes());
        for (name, value) in &self.params {
            write_str(&mut hasher, name);
            write_value(&mut hasher, value);
        }

        hasher.update(&(self.inputs.len() as u64).to_le_bytes());
        for (name, input) in &self.inputs {
            write_str(&mut hasher, name);
            write_str(&mut hasher, input.hash.as_str());
        }

        // Written only when present, so keys of steps without data paths
        // keep the encoding pinned in the tests below.
        if !self.files.is_empty() {
            hasher.update(b"files");
            hasher.update(&(self.files.len() as u64).to_le_bytes());
            for (name, fingerprint) in &self.files {
                write_str(&mut hasher, name);
                write_str(&mut hasher, fingerprint);
            }
        }
        CacheKey(hasher.finalize().to_hex().to_string())
    }
}

fn write_str(hasher: &mut blake3::Hasher, text: &str) {
    hasher.update(&(text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
}

/// Writes a value with a type tag, so that the int 1, the float 1.0 and the
/// string "1" never collide.
fn write_value(hasher: &mut blake3::Hasher, value: &ParamValue) {
    match value {
        ParamValue::Bool(b) => {
            hasher.update(&[b'b', u8::from(*b)]);
        }
        ParamValue::Int(i) => {
            hasher.update(b"i");
            hasher.update(&i.to_le_bytes());
        }
        ParamValue::Float(f) => {
            // Every NaN is one value; otherwise the bit pattern is the value.
            let bits = if f.is_nan() {
                f64::NAN.to_bits()
            } else {
                f.to_bits()
            };
            hasher.update(b"f");
            hasher.update(&bits.to_le_bytes());
        }
        ParamValue::String(s) => {
            hasher.update(b"s");
            write_str(hasher, s);
        }
        ParamValue::List(items) => {
            hasher.update(b"l");
            hasher.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(hasher, item);
            }
        }
        ParamValue::Map(map) => {
            hasher.update(b"m");
            hasher.update(&(map.len() as u64).to_le_bytes());
            for (k, v) in map {
                write_str(hasher, k);
                write_value(hasher, v);
            }
        }
    }
}

/// The reason a step runs instead of being taken from cache.
#[derive(Debug, Clone, PartialEq)]
pub enum MissReason {
    /// No earlier run of this step in this pipeline, and no entry for its key.
    FirstRun,
    /// A parameter has a new value.
    ParamChanged {
        /// The parameter.
        name: String,
        /// The value of the earlier run.
        from: ParamValue,
        /// The value now.
        to: ParamValue,
    },
    /// A parameter was added to or removed from the step's signature.
    ParamSetChanged {
        /// The parameter.
        name: String,
    },
    /// An input artifact has other content than in the earlier run.
    InputChanged {
        /// The input name.
        input: String,
        /// The producing output, as `step.output`.
        from: String,
    },
    /// The data at a `hash_contents` path parameter changed.
    ContentsChanged {
        /// The parameter.
        name: String,
        /// The path it names.
        path: String,
    },
    /// The step's code fingerprint changed.
    CodeChanged {
        /// The registered step name.
        step: String,
    },
    /// The registered step (`uses:`) changed.
    StepChanged {
        /// The earlier registered step name.
        from: String,
        /// The registered step name now.
        to: String,
    },
    /// The key is the same as in the earlier run, but its entry is gone or
    /// was found corrupt.
    EntryMissing,
    /// `--no-cache` was given.
    NoCacheFlag,
    /// The step has `cache: false` in the pipeline.
    CacheDisabled,
    /// The step has side effects and is never cached.
    NotCacheable,
    /// An upstream step will run, so this step's input is not known yet
    /// (only in `flowrun plan`).
    UpstreamRuns {
        /// The input name.
        input: String,
        /// The producing output, as `step.output`.
        from: String,
    },
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissReason::FirstRun => f.write_str("no cached result for these inputs"),
            MissReason::ParamChanged { name, from, to } => {
                write!(f, "parameter {name} changed from {from} to {to}")
            }
            MissReason::ParamSetChanged { name } => {
                write!(f, "parameter {name} was added or removed")
            }
            MissReason::InputChanged { from, .. } => write!(f, "input {from} changed"),
            MissReason::ContentsChanged { name, path } => {
                write!(f, "contents of {name} ({path}) changed")
            }
            MissReason::CodeChanged { step } => write!(f, "code of {step} changed"),
            MissReason::StepChanged { from, to } => {
                write!(f, "the step now uses `{to}` instead of `{from}`")
            }
            MissReason::EntryMissing => {
                f.write_str("its cached result is missing or was found corrupt")
            }
            MissReason::NoCacheFlag => f.write_str("--no-cache was given"),
            MissReason::CacheDisabled => f.write_str("the step has cache: false"),
            MissReason::NotCacheable => {
                f.write_str("the step has side effects and is never cached")
            }
            MissReason::UpstreamRuns { from, .. } => {
                write!(f, "input {from} will be recomputed")
            }
        }
    }
}

/// Joins reasons into one sentence for messages.
pub fn describe(reasons: &[MissReason]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Compares the detail of an earlier run of the same step with the current
/// one and lists what changed. An empty list means the keys are equal.
pub fn explain(previous: &KeyDetail, current: &KeyDetail) -> Vec<MissReason> {
    let mut reasons = Vec::new();
    if previous.step != current.step {
        reasons.push(MissReason::StepChanged {
            from: previous.step.clone(),
            to: current.step.clone(),
        });
    } else if previous.fingerprint != current.fingerprint {
        reasons.push(MissReason::CodeChanged {
            step: current.step.clone(),
        });
    }

    for (name, value) in &current.params {
        match previous.params.get(name) {
            Some(old) if same_value(old, value) => {}
            Some(old) => reasons.push(MissReason::ParamChanged {
                name: name.clone(),
                from: old.clone(),
                to: value.clone(),
            }),
            None => reasons.push(MissReason::ParamSetChanged { name: name.clone() }),
        }
    }
    for name in previous.params.keys() {
        if !current.params.contains_key(name) {
            reasons.push(MissReason::ParamSetChanged { name: name.clone() });
        }
    }

    for (name, fingerprint) in &current.files {
        // A changed path already shows as a parameter change.
        let path_changed = previous.params.get(name) != current.params.get(name);
        if previous.files.get(name) != Some(fingerprint) && !path_changed {
            let path = current
                .params
                .get(name)
                .map_or(String::new(), ToString::to_string);
            reasons.push(MissReason::ContentsChanged {
                name: name.clone(),
                path: path.trim_matches('"').to_string(),
            });
        }
    }

    for (name, input) in &current.inputs {
        let changed = previous
            .inputs
            .get(name)
            .is_none_or(|old| old.hash != input.hash);
        if changed {
            reasons.push(MissReason::InputChanged {
                input: name.clone(),
                from: input.from.clone(),
            });
        }
    }
    for (name, input) in &previous.inputs {
        if !current.inputs.contains_key(name) {
            reasons.push(MissReason::InputChanged {
                input: name.clone(),
                from: input.from.clone(),
            });
        }
    }
    reasons
}

/// Compares values the way the key does: floats by bit pattern, all NaNs
/// equal.
fn same_value(a: &ParamValue, b: &ParamValue) -> bool {
    let mut ha = blake3::Hasher::new();
    let mut hb = blake3::Hasher::new();
    write_value(&mut ha, a);
    write_value(&mut hb, b);
    ha.finalize() == hb.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(c: char) -> ContentHash {
        ContentHash::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn detail() -> KeyDetail {
        KeyDetail {
            step: "train_model".into(),
            fingerprint: "f1".into(),
            params: BTreeMap::from([
                ("max_depth".to_string(), ParamValue::Int(6)),
                ("learning_rate".to_string(), ParamValue::Float(0.1)),
                ("model".to_string(), ParamValue::String("gbm".into())),
            ]),
            inputs: BTreeMap::from([(
                "x_train".to_string(),
                InputDetail {
                    from: "clean_data.x_train".into(),
                    hash: hash('a'),
                },
            )]),
            files: BTreeMap::new(),
        }
    }

    /// Pins the key of a fixed detail: if this fails, the key encoding
    /// changed, and CACHE_FORMAT_VERSION must be bumped with it.
    #[test]
    fn key_encoding_is_pinned() {
        assert_eq!(
            detail().key().as_str(),
            "f8e1801de43e97864aea32e410c029a0c597d137e01d257393420521a00c8c34"
        );
    }

    #[test]
    fn key_ignores_input_producer() {
        let mut moved = detail();
        moved.inputs.get_mut("x_train").unwrap().from = "other.table".into();
        assert_eq!(moved.key(), detail().key());
    }

    #[test]
    fn key_separates_int_and_float() {
        let mut as_float = detail();
        as_float
            .params
            .insert("max_depth".into(), ParamValue::Float(6.0));
        assert_ne!(as_float.key(), detail().key());
    }

    #[test]
    fn explain_names_changed_parameter() {
        let mut changed = detail();
        changed
            .params
            .insert("max_depth".into(), ParamValue::Int(8));
        let reasons = explain(&detail(), &changed);
        assert_eq!(
            describe(&reasons),
            "parameter max_depth changed from 6 to 8"
        );
    }

    #[test]
    fn explain_names_changed_input_and_code() {
        let mut changed = detail();
        changed.fingerprint = "f2".into();
        changed.inputs.get_mut("x_train").unwrap().hash = hash('b');
        let text = describe(&explain(&detail(), &changed));
        assert_eq!(
            text,
            "code of train_model changed; input clean_data.x_train changed"
        );
    }

    #[test]
    fn explain_names_changed_contents() {
        let mut before = detail();
        before
            .params
            .insert("data_dir".into(), ParamValue::String("data".into()));
        before.files.insert("data_dir".into(), "f1".into());
        let mut after = before.clone();
        after.files.insert("data_dir".into(), "f2".into());
        assert_ne!(before.key(), after.key());
        assert_eq!(
            describe(&explain(&before, &after)),
            "contents of data_dir (data) changed"
        );
    }

    #[test]
    fn explain_equal_details_is_empty() {
        assert!(explain(&detail(), &detail()).is_empty());
    }
}
