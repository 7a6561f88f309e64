//! JSON values as `.json` files of the form
//! `{"flowrun": {"content_hash", "producer", "format_version"}, "value": ...}`.
//!
//! The file is pretty-printed so that a user can read it directly. A
//! `serde_json::Value` cannot hold NaN or an infinity, so every value can be
//! written as standard JSON.

use super::{Metadata, check_format_version, describe_start};
use crate::{ArtifactError, ArtifactKind, ContentHash};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Serialize, Deserialize)]
struct StoredMetadata {
    content_hash: ContentHash,
    producer: String,
    format_version: u32,
}

#[derive(Serialize)]
struct FileOut<'a> {
    flowrun: StoredMetadata,
    value: &'a Value,
}

#[derive(Deserialize)]
struct FileIn {
    flowrun: StoredMetadata,
    value: Value,
}

pub(super) fn encode(
    value: &Value,
    hash: &ContentHash,
    producer: &str,
) -> Result<Vec<u8>, ArtifactError> {
    let file = FileOut {
        flowrun: StoredMetadata {
            content_hash: hash.clone(),
            producer: producer.to_string(),
            format_version: super::FORMAT_VERSION,
        },
        value,
    };
    // No newline follows the closing brace, so that cutting any byte off the
    // end leaves invalid JSON and truncation is always detected.
    serde_json::to_vec_pretty(&file).map_err(|e| ArtifactError::Encode {
        kind: ArtifactKind::Json,
        reason: e.to_string(),
    })
}

pub(super) fn decode(bytes: &[u8]) -> Result<(Value, Metadata), String> {
    let file: FileIn = serde_json::from_slice(bytes).map_err(|e| {
        if bytes.first().is_some_and(|b| *b == b'{') {
            format!("it is not a complete flowrun JSON artifact: {e}")
        } else {
            format!(
                "it is not a flowrun JSON artifact (it starts with {}): {e}",
                describe_start(bytes)
            )
        }
    })?;
    check_format_version(file.flowrun.format_version)?;

    let metadata = Metadata {
        content_hash: file.flowrun.content_hash,
        producer: file.flowrun.producer,
        format_version: file.flowrun.format_version,
    };
    Ok((file.value, metadata))
}
