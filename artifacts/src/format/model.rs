//! Models as `.model` files.
//!
//! A model file has three parts:
//!
//! 1. the magic line `flowrun-model <format version>\n`, so that `head -1`
//!    shows what the file is;
//! 2. a JSON header on one line, ending in `\n`: content hash, producer,
//!    flavor, target, features, info and `payload_length`;
//! 3. exactly `payload_length` payload bytes, and nothing after them.
//!
//! Compact JSON escapes every newline inside strings, so the first `\n`
//! after the magic line ends the header. A file cut short anywhere, or with
//! bytes appended, fails to decode. A cut inside the first two lines leaves
//! a line without its end or invalid JSON, and any other cut or addition
//! changes the payload length.

use super::{Metadata, check_format_version, describe_start};
use crate::{ArtifactError, ArtifactKind, ContentHash, FeatureSpec, Model};
use serde::{Deserialize, Serialize};

/// The first word of every model file.
const MAGIC: &[u8] = b"flowrun-model ";

/// The maximum length of the magic line: the magic, ten digits and the
/// newline.
const MAX_MAGIC_LINE: usize = MAGIC.len() + 10 + 1;

#[derive(Serialize)]
struct HeaderOut<'a> {
    content_hash: &'a ContentHash,
    producer: &'a str,
    flavor: &'a str,
    target: &'a str,
    features: &'a [FeatureSpec],
    info: &'a serde_json::Value,
    payload_length: u64,
}

#[derive(Deserialize)]
struct HeaderIn {
    content_hash: ContentHash,
    producer: String,
    flavor: String,
    target: String,
    features: Vec<FeatureSpec>,
    info: serde_json::Value,
    payload_length: u64,
}

pub(super) fn encode(
    model: &Model,
    hash: &ContentHash,
    producer: &str,
) -> Result<Vec<u8>, ArtifactError> {
    let header = HeaderOut {
        content_hash: hash,
        producer,
        flavor: &model.flavor,
        target: &model.target,
        features: &model.features,
        info: &model.info,
        payload_length: model.payload.len() as u64,
    };
    let header = serde_json::to_vec(&header).map_err(|e| ArtifactError::Encode {
        kind: ArtifactKind::Model,
        reason: format!("the header cannot be written as JSON: {e}"),
    })?;

    let magic_line = format!("flowrun-model {}\n", super::FORMAT_VERSION);
    let mut out = Vec::with_capacity(magic_line.len() + header.len() + 1 + model.payload.len());
    out.extend_from_slice(magic_line.as_bytes());
    out.extend_from_slice(&header);
    out.push(b'\n');
    out.extend_from_slice(&model.payload);
    Ok(out)
}

pub(super) fn decode(bytes: &[u8]) -> Result<(Model, Metadata), String> {
    let (format_version, rest) = split_magic_line(bytes)?;

    let header_end = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("its JSON header has no line end; the file is truncated")?;
    let header: HeaderIn = serde_json::from_slice(&rest[..header_end])
        .map_err(|e| format!("its JSON header is invalid: {e}"))?;

    let payload = &rest[header_end + 1..];
    if payload.len() as u64 != header.payload_length {
        return Err(format!(
            "its header announces a {}-byte payload but {} bytes follow; the file is truncated or damaged",
            header.payload_length,
            payload.len()
        ));
    }

    let model = Model {
        flavor: header.flavor,
        target: header.target,
        features: header.features,
        payload: payload.to_vec(),
        info: header.info,
    };
    let metadata = Metadata {
        content_hash: header.content_hash,
        producer: header.producer,
        format_version,
    };
    Ok((model, metadata))
}

/// Reads the magic line and returns the format version and the bytes after
/// the line.
fn split_magic_line(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    if !bytes.starts_with(MAGIC) {
        return Err(format!(
            "it is not a flowrun model file (it starts with {})",
            describe_start(bytes)
        ));
    }
    let line_end = bytes[..bytes.len().min(MAX_MAGIC_LINE)]
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("its first line is not a complete `flowrun-model <version>` line")?;

    let version = std::str::from_utf8(&bytes[MAGIC.len()..line_end])
        .ok()
        .and_then(|digits| digits.parse::<u32>().ok())
        .ok_or("its first line has no valid format version after `flowrun-model`")?;
    check_format_version(version)?;
    Ok((version, &bytes[line_end + 1..]))
}
