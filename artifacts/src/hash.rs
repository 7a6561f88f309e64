//! Content hashes of artifacts.
//!
//! The hash is blake3 over a canonical encoding of the artifact's logical
//! value, so it does not depend on the file format, compression or the
//! order in which a writer happened to lay bytes out. This module owns that
//! encoding and nothing else: it never reads or writes files.
//!
//! # Encoding, version 1
//!
//! All integers are little-endian. `u64` lengths count elements for columns
//! and bytes for everything else. `str(s)` is the `u64` byte length of `s`
//! followed by its UTF-8 bytes.
//!
//! | part | bytes |
//! |---|---|
//! | header | the 20 ASCII bytes `flowrun/content-hash`, then the encoding version as `u32` (1) |
//! | kind tag | `u8`: 1 table, 2 model, 3 JSON |
//! | table | `u64` column count, then per column: `str(name)`, a `u8` type tag (1 float64, 2 int64, 3 utf8, 4 bool), the `u64` row count and the values |
//! | float64 value | the `u64` bit pattern; every NaN is first replaced by `0x7ff8000000000000`, while `-0.0` and `0.0` stay distinct |
//! | int64 value | a presence byte (0 null, 1 present), then the `i64` when present |
//! | utf8 value | a presence byte, then `str(value)` when present |
//! | bool value | a presence byte, then 0 or 1 when present |
//! | model | `str(flavor)`, `str(target)`, `str(canonical JSON of the features)`, the `u64` payload length and the payload bytes, `str(canonical JSON of info)` |
//! | JSON | `str(canonical JSON of the value)` |
//!
//! Canonical JSON has no whitespace, writes object keys sorted by their
//! UTF-8 bytes, and writes strings and numbers as `serde_json` does: integers
//! in decimal, floats in their shortest round-trip form. Keys are sorted here
//! rather than relying on `serde_json`'s map type, because another crate in
//! the build can turn on its `preserve_order` feature and change that order.
//!
//! NOTE: floats inside JSON are written by serde_json's float formatter, so
//! a serde_json release that writes some float differently (say `1e300`
//! against `1e+300`) would change the hash of JSON artifacts and model info.
//! The pinned JSON and model hashes contain floats and would fail first.
//!
//! Any change to this encoding changes every hash and so invalidates every
//! cache entry. The unit tests pin three hashes so that such a change is
//! deliberate. Bump [`HASH_ENCODING_VERSION`] when the encoding changes.
//!
//! Values are buffered into 64 KiB chunks before they reach blake3, because
//! calling the hasher once per number costs several times more than the
//! hashing itself.

use crate::Artifact;
use crate::model::Model;
use crate::table::{ColumnData, Table};
use serde::{Deserialize, Serialize};

/// The version of the canonical encoding that content hashes are computed
/// over. It is part of every hash.
pub(crate) const HASH_ENCODING_VERSION: u32 = 1;

const HEADER: &[u8; 20] = b"flowrun/content-hash";

/// The bit pattern every NaN is hashed as.
const CANONICAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0000;

/// Size of the buffer that collects small writes before they are hashed.
const CHUNK_BYTES: usize = 64 * 1024;

/// The blake3 hash of an artifact's logical content, as 64 hex digits.
///
/// Deserializing checks the digits, so a damaged file or cache entry cannot
/// produce a hash that later code slices or uses as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ContentHash(String);

impl TryFrom<String> for ContentHash {
    type Error = String;

    fn try_from(hex: String) -> Result<Self, Self::Error> {
        ContentHash::from_hex(&hex).ok_or_else(|| {
            format!("invalid content hash `{hex}`: expected 64 lowercase hex digits")
        })
    }
}

impl From<ContentHash> for String {
    fn from(hash: ContentHash) -> String {
        hash.0
    }
}

impl ContentHash {
    /// Wraps a hex digest. Fails unless it is 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| ContentHash(hex.to_string()))
    }

    /// Returns the 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Computes the content hash of an artifact with the encoding described in
/// the module documentation.
pub(crate) fn hash_artifact(artifact: &Artifact) -> ContentHash {
    let mut hasher = ChunkedHasher::new();
    hasher.bytes(HEADER);
    hasher.bytes(&HASH_ENCODING_VERSION.to_le_bytes());

    match artifact {
        Artifact::Table(table) => {
            hasher.u8(1);
            hash_table(&mut hasher, table);
        }
        Artifact::Model(model) => {
            hasher.u8(2);
            hash_model(&mut hasher, model);
        }
        Artifact::Json(value) => {
            hasher.u8(3);
            hasher.str(&canonical_json(value));
        }
    }

    ContentHash(hasher.finish().to_hex().to_string())
}

fn hash_table(hasher: &mut ChunkedHasher, table: &Table) {
    hasher.u64(table.columns().len() as u64);
    for column in table.columns() {
        hasher.str(column.name.as_bytes());
        match &column.data {
            ColumnData::Float64(values) => {
                hasher.u8(1);
                hasher.u64(values.len() as u64);
                for value in values {
                    let bits = if value.is_nan() {
                        CANONICAL_NAN_BITS
                    } else {
                        value.to_bits()
                    };
                    hasher.bytes(&bits.to_le_bytes());
                }
            }
            ColumnData::Int64(values) => {
                hasher.u8(2);
                hasher.u64(values.len() as u64);
                for value in values {
                    match value {
                        Some(v) => {
                            hasher.u8(1);
                            hasher.bytes(&v.to_le_bytes());
                        }
                        None => hasher.u8(0),
                    }
                }
            }
            ColumnData::Utf8(values) => {
                hasher.u8(3);
                hasher.u64(values.len() as u64);
                for value in values {
                    match value {
                        Some(v) => {
                            hasher.u8(1);
                            hasher.str(v.as_bytes());
                        }
                        None => hasher.u8(0),
                    }
                }
            }
            ColumnData::Bool(values) => {
                hasher.u8(4);
                hasher.u64(values.len() as u64);
                for value in values {
                    match value {
                        Some(v) => {
                            hasher.u8(1);
                            hasher.u8(u8::from(*v));
                        }
                        None => hasher.u8(0),
                    }
                }
            }
        }
    }
}

fn hash_model(hasher: &mut ChunkedHasher, model: &Model) {
    hasher.str(model.flavor.as_bytes());
    hasher.str(model.target.as_bytes());

    // Features are plain data (strings and string lists), so converting them
    // to a JSON value cannot fail. If it ever did, null would be hashed.
    let features = serde_json::to_value(&model.features).unwrap_or_default();
    hasher.str(&canonical_json(&features));

    hasher.str(&model.payload);
    hasher.str(&canonical_json(&model.info));
}

/// Serializes a JSON value with no whitespace and object keys sorted by
/// their UTF-8 bytes.
pub(crate) fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical_json(value, &mut out);
    out
}

fn write_canonical_json(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;

    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::String(text) => write_json_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(key, out);
                out.push(b':');
                write_canonical_json(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_json_string(text: &str, out: &mut Vec<u8>) {
    // `Value::String`'s `Display` is serde_json's own escaping, which is the
    // escaping every reader of the file format expects too.
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    out.extend_from_slice(quoted.as_bytes());
}

/// A blake3 hasher fed through a buffer, so that many small writes become a
/// few large `update` calls.
struct ChunkedHasher {
    hasher: blake3::Hasher,
    buffer: Vec<u8>,
}

impl ChunkedHasher {
    fn new() -> Self {
        ChunkedHasher {
            hasher: blake3::Hasher::new(),
            buffer: Vec::with_capacity(CHUNK_BYTES),
        }
    }

    fn u8(&mut self, value: u8) {
        self.bytes(&[value]);
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    /// Writes a length-prefixed byte string.
    fn str(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.bytes(value);
    }

    fn bytes(&mut self, value: &[u8]) {
        if self.buffer.len() + value.len() > CHUNK_BYTES {
            self.flush();
        }
        if value.len() >= CHUNK_BYTES {
            self.hasher.update(value);
        } else {
            self.buffer.extend_from_slice(value);
        }
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buffer);
        self.buffer.clear();
    }

    fn finish(mut self) -> blake3::Hash {
        self.flush();
        self.hasher.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FeatureKind, FeatureSpec};
    use crate::table::Column;
    use serde_json::json;

    fn table(columns: Vec<Column>) -> Artifact {
        Artifact::Table(Table::new(columns).expect("valid table"))
    }

    fn sample_table() -> Artifact {
        table(vec![
            Column::new("x", ColumnData::Float64(vec![1.5, f64::NAN, -0.0])),
            Column::new("n", ColumnData::Int64(vec![Some(7), None, Some(-1)])),
            Column::new(
                "city",
                ColumnData::Utf8(vec![Some("Oslo".into()), None, Some(String::new())]),
            ),
            Column::new("ok", ColumnData::Bool(vec![Some(true), Some(false), None])),
        ])
    }

    fn sample_model() -> Artifact {
        Artifact::Model(Model {
            flavor: "gradient_boosting".into(),
            target: "price".into(),
            features: vec![
                FeatureSpec {
                    name: "area".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureSpec {
                    name: "city".into(),
                    kind: FeatureKind::Categorical {
                        levels: vec!["Oslo".into(), "Bergen".into()],
                    },
                },
            ],
            payload: vec![0, 1, 2, 255],
            info: json!({"max_depth": 6, "learning_rate": 0.1}),
        })
    }

    fn sample_json() -> Artifact {
        Artifact::Json(
            json!({"rmse": 0.25, "n": 3, "tags": ["a", null, true], "nested": {"b": 1, "a": "é\n"}}),
        )
    }

    // The three pinned values were checked once against a separate Python
    // implementation of the encoding table above (struct.pack and blake3).
    #[test]
    fn pinned_table_hash() {
        assert_eq!(
            sample_table().content_hash().as_str(),
            "63ed8f62c8eba4d954b4be1748dd53b4bca4e2f23c019b13107e54eb3b1c3c6f"
        );
    }

    #[test]
    fn pinned_model_hash() {
        assert_eq!(
            sample_model().content_hash().as_str(),
            "3c1bcd981264811698dfdfc00cdfee1077f9415a60fee2a7708fe43b63832e75"
        );
    }

    #[test]
    fn pinned_json_hash() {
        assert_eq!(
            sample_json().content_hash().as_str(),
            "3811fbe220b5d282c67472e5957f1dd567ddae1ea528b3f6c4827d77fda0ff0e"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let value = json!({"b": [1, 2.5, "x\"y"], "a": {"d": null, "c": false}});
        assert_eq!(
            String::from_utf8(canonical_json(&value)).expect("UTF-8"),
            r#"{"a":{"c":false,"d":null},"b":[1,2.5,"x\"y"]}"#
        );
    }

    #[test]
    fn every_nan_hashes_alike() {
        let quiet = table(vec![Column::new("x", ColumnData::Float64(vec![f64::NAN]))]);
        let negative = table(vec![Column::new("x", ColumnData::Float64(vec![-f64::NAN]))]);
        let payload = f64::from_bits(0x7ff0_0000_0000_0001);
        assert!(payload.is_nan());
        let signalling = table(vec![Column::new("x", ColumnData::Float64(vec![payload]))]);

        assert_eq!(quiet.content_hash(), negative.content_hash());
        assert_eq!(quiet.content_hash(), signalling.content_hash());
    }

    #[test]
    fn signed_zeros_differ() {
        let positive = table(vec![Column::new("x", ColumnData::Float64(vec![0.0]))]);
        let negative = table(vec![Column::new("x", ColumnData::Float64(vec![-0.0]))]);
        assert_ne!(positive.content_hash(), negative.content_hash());
    }

    #[test]
    fn null_differs_from_zero() {
        let null = table(vec![Column::new("n", ColumnData::Int64(vec![None]))]);
        let zero = table(vec![Column::new("n", ColumnData::Int64(vec![Some(0)]))]);
        assert_ne!(null.content_hash(), zero.content_hash());

        let no_text = table(vec![Column::new("s", ColumnData::Utf8(vec![None]))]);
        let empty_text = table(vec![Column::new(
            "s",
            ColumnData::Utf8(vec![Some(String::new())]),
        )]);
        assert_ne!(no_text.content_hash(), empty_text.content_hash());
    }

    #[test]
    fn string_boundaries_matter() {
        let split_late = table(vec![Column::new(
            "s",
            ColumnData::Utf8(vec![Some("ab".into()), Some("c".into())]),
        )]);
        let split_early = table(vec![Column::new(
            "s",
            ColumnData::Utf8(vec![Some("a".into()), Some("bc".into())]),
        )]);
        assert_ne!(split_late.content_hash(), split_early.content_hash());
    }

    #[test]
    fn column_order_and_type_matter() {
        let a = Column::new("a", ColumnData::Float64(vec![1.0]));
        let b = Column::new("b", ColumnData::Float64(vec![2.0]));
        assert_ne!(
            table(vec![a.clone(), b.clone()]).content_hash(),
            table(vec![b, a]).content_hash()
        );

        let as_float = table(vec![Column::new("a", ColumnData::Float64(vec![]))]);
        let as_int = table(vec![Column::new("a", ColumnData::Int64(vec![]))]);
        assert_ne!(as_float.content_hash(), as_int.content_hash());
    }

    #[test]
    fn kind_is_part_of_hash() {
        let empty_table = table(vec![]);
        let empty_json = Artifact::Json(json!([]));
        assert_ne!(empty_table.content_hash(), empty_json.content_hash());
    }

    #[test]
    fn model_fields_all_matter() {
        let Artifact::Model(base) = sample_model() else {
            unreachable!("sample_model returns a model")
        };
        let base_hash = Artifact::Model(base.clone()).content_hash();

        let mut changed = base.clone();
        changed.payload.push(0);
        assert_ne!(Artifact::Model(changed).content_hash(), base_hash);

        let mut changed = base.clone();
        changed.info = json!({"max_depth": 7, "learning_rate": 0.1});
        assert_ne!(Artifact::Model(changed).content_hash(), base_hash);

        let mut changed = base.clone();
        changed.features.reverse();
        assert_ne!(Artifact::Model(changed).content_hash(), base_hash);

        let mut changed = base.clone();
        changed.target = "area".into();
        assert_ne!(Artifact::Model(changed).content_hash(), base_hash);

        let mut changed = base;
        changed.flavor = "linear".into();
        assert_ne!(Artifact::Model(changed).content_hash(), base_hash);
    }

    #[test]
    fn large_values_hash_like_small_writes() {
        // A payload longer than the chunk buffer goes to blake3 directly; the
        // hash must not depend on that path.
        let long: Vec<u8> = (0..3 * CHUNK_BYTES).map(|i| (i % 251) as u8).collect();
        let mut direct = ChunkedHasher::new();
        direct.bytes(&long);
        let mut piecewise = ChunkedHasher::new();
        for byte in &long {
            piecewise.u8(*byte);
        }
        assert_eq!(direct.finish(), piecewise.finish());
        assert_eq!(blake3::hash(&long), {
            let mut h = ChunkedHasher::new();
            h.bytes(&long);
            h.finish()
        });
    }
}
