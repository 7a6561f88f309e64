//! The error type of this crate.

use std::path::PathBuf;

/// Errors from building, encoding, storing or reading artifacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A table whose columns do not fit together.
    #[error("invalid table: {0}")]
    InvalidTable(String),

    /// A column that a caller needs is not in the table.
    #[error("column `{column}` not found; the table has: {}", available.join(", "))]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The columns the table has.
        available: Vec<String>,
    },

    /// A column has another type than the caller needs.
    #[error("column `{column}` is {found}, expected {expected}")]
    ColumnType {
        /// The column.
        column: String,
        /// The type the caller needs.
        expected: &'static str,
        /// The type the column has.
        found: &'static str,
    },

    /// A stored artifact whose bytes do not match the hash it was stored
    /// under. It must not be used.
    #[error(
        "artifact {path} is corrupt: its bytes hash to {found}, not to the {expected} recorded when it was stored; it will be recomputed"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The hash the store expected.
        expected: String,
        /// The hash of the bytes found.
        found: String,
    },

    /// A stored artifact that cannot be decoded.
    #[error("artifact {path} cannot be read: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// An artifact that cannot be written in its file format.
    #[error("failed to encode a {kind} artifact: {reason}")]
    Encode {
        /// The kind of artifact.
        kind: crate::ArtifactKind,
        /// The cause of the failure.
        reason: String,
    },

    /// A cache key that cannot name a file in the store.
    #[error("invalid cache key `{key}`: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// The rule the key breaks.
        reason: String,
    },

    /// An artifact that the store does not have.
    #[error("artifact {hash} not found in the store")]
    NotFound {
        /// The content hash looked up.
        hash: String,
    },

    /// An I/O failure on a path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("failed to write", "failed to rename", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
