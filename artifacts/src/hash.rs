//! Content hashes of artifacts.
//!
//! The hash is blake3 over a canonical encoding of the artifact's logical
//! value, so it does not depend on the file format, compression or the
//! order in which a writer happened to lay bytes out.
//!
//! NOTE: placeholder body; the canonical encoding is being written with the
//! store and formats.

use crate::Artifact;
use serde::{Deserialize, Serialize};

/// The blake3 hash of an artifact's logical content, as 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

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

pub(crate) fn hash_artifact(artifact: &Artifact) -> ContentHash {
    let _ = artifact;
    unimplemented!("canonical artifact encoding")
}
