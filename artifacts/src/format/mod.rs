//! On-disk formats: tables as Arrow IPC files, models and JSON values as
//! self-describing files, each carrying its content hash, producer and
//! format version in its metadata.
//!
//! | kind | extension | layout |
//! |---|---|---|
//! | table | `.arrow` | Arrow IPC file format (Feather v2), uncompressed, readable by `pyarrow.ipc.open_file`, `pandas.read_feather` and `polars.read_ipc`; the metadata is in the schema's custom metadata |
//! | model | `.model` | the magic line `flowrun-model 1`, a one-line JSON header, then the raw payload bytes |
//! | JSON | `.json` | `{"flowrun": {metadata}, "value": ...}` |
//!
//! This module turns artifacts into bytes and back. It never touches the
//! file system and never trusts its input: [`decode`] returns an error, and
//! never panics, on garbage, truncated or wrong-kind bytes, because a file
//! can be damaged on disk or replaced by a user. The tests feed it every
//! truncation and thousands of randomly damaged copies of valid files.
//!
//! Decoding does not recompute the content hash; it returns the hash written
//! in the file's metadata. The store compares the file's digest before
//! decoding, which is what protects against damaged bytes.

mod json;
mod model;
mod table;

use crate::{Artifact, ArtifactError, ArtifactKind, ContentHash};
use std::path::Path;

/// The version of the file formats this crate writes. Decoding rejects files
/// of a newer version and reads every version up to this one.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata stored in every artifact file beside the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The content hash of the value, as computed when the file was written.
    pub content_hash: ContentHash,
    /// The writer of the file, for example `train_model@3f2a9c1b`.
    pub producer: String,
    /// The file format version the file was written with.
    pub format_version: u32,
}

/// Returns the file extension, without the dot, of an artifact kind.
pub fn extension(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Table => "arrow",
        ArtifactKind::Model => "model",
        ArtifactKind::Json => "json",
    }
}

/// Returns the artifact kind stored under a file extension, if any.
pub fn kind_for_extension(extension: &str) -> Option<ArtifactKind> {
    match extension {
        "arrow" => Some(ArtifactKind::Table),
        "model" => Some(ArtifactKind::Model),
        "json" => Some(ArtifactKind::Json),
        _ => None,
    }
}

/// Encodes an artifact in the file format of its kind.
///
/// `hash` must be `artifact.content_hash()`; it is passed in because the
/// caller has usually computed it already, and hashing a large table twice
/// is wasted time. `producer` is stored as given.
pub fn encode(
    artifact: &Artifact,
    hash: &ContentHash,
    producer: &str,
) -> Result<Vec<u8>, ArtifactError> {
    match artifact {
        Artifact::Table(value) => table::encode(value, hash, producer),
        Artifact::Model(value) => model::encode(value, hash, producer),
        Artifact::Json(value) => json::encode(value, hash, producer),
    }
}

/// Decodes the bytes of an artifact file of the given kind.
///
/// `path_for_errors` only names the file in error messages. Fails with
/// [`ArtifactError::Decode`] when the bytes are not a complete file of that
/// kind, or were written by a newer format version.
pub fn decode(
    bytes: &[u8],
    kind: ArtifactKind,
    path_for_errors: &Path,
) -> Result<(Artifact, Metadata), ArtifactError> {
    let decoded = match kind {
        ArtifactKind::Table => table::decode(bytes).map(|(t, m)| (Artifact::Table(t), m)),
        ArtifactKind::Model => model::decode(bytes).map(|(v, m)| (Artifact::Model(v), m)),
        ArtifactKind::Json => json::decode(bytes).map(|(v, m)| (Artifact::Json(v), m)),
    };
    decoded.map_err(|reason| ArtifactError::Decode {
        path: path_for_errors.to_path_buf(),
        reason,
    })
}

/// Builds [`Metadata`] from its three stored fields, checking each.
fn parse_metadata(
    content_hash: Option<&str>,
    producer: Option<&str>,
    format_version: Option<&str>,
) -> Result<Metadata, String> {
    let content_hash = content_hash.ok_or("the content hash is missing from its metadata")?;
    let content_hash = ContentHash::from_hex(content_hash).ok_or_else(|| {
        format!("its content hash `{content_hash}` is not 64 lowercase hex digits")
    })?;

    let producer = producer
        .ok_or("the producer is missing from its metadata")?
        .to_string();

    let format_version = format_version.ok_or("the format version is missing from its metadata")?;
    let format_version = format_version
        .parse::<u32>()
        .map_err(|_| format!("its format version `{format_version}` is not a number"))?;
    check_format_version(format_version)?;

    Ok(Metadata {
        content_hash,
        producer,
        format_version,
    })
}

fn check_format_version(version: u32) -> Result<(), String> {
    if version == 0 || version > FORMAT_VERSION {
        return Err(format!(
            "it has format version {version}, but this flowrun reads versions 1 to {FORMAT_VERSION}; \
             upgrade flowrun or delete the file so it is recomputed"
        ));
    }
    Ok(())
}

/// Shows the first bytes of a file in messages about what it starts with.
fn describe_start(bytes: &[u8]) -> String {
    let start = &bytes[..bytes.len().min(16)];
    format!("{:?}", String::from_utf8_lossy(start))
}

#[cfg(test)]
mod tests;
