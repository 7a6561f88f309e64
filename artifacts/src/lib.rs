//! Artifacts: the typed values that flowrun steps exchange, their on-disk
//! formats and the content-addressed store that keeps them.
//!
//! Three kinds of artifact exist: a [`Table`] of named columns, a [`Model`]
//! (a trained model with its feature schema) and a [`Json`](Artifact::Json)
//! value for metrics and small structured results. Every artifact has a
//! content hash ([`ContentHash`]) computed from its logical content, so two
//! steps that produce equal values produce the same hash whatever the
//! process, machine or thread count.
//!
//! This crate never knows about pipelines, steps or SQLite: the engine
//! decides what to store, this crate only stores and verifies it.

#![warn(missing_docs)]

mod error;
mod hash;
mod model;
mod table;

pub mod format;
pub mod store;

pub use error::ArtifactError;
pub use hash::ContentHash;
pub use model::{FeatureKind, FeatureSpec, Model};
pub use store::{ArtifactRef, ArtifactStore, CacheEntry, KeyLock, LocalStore};
pub use table::{Column, ColumnData, Table};

use serde::{Deserialize, Serialize};

/// The kind of an artifact, as declared by a step's inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// A [`Table`] of named, typed columns.
    Table,
    /// A trained [`Model`].
    Model,
    /// A JSON value (metrics, reports, small structured results).
    Json,
}

impl ArtifactKind {
    /// Returns the lowercase name used in YAML, logs and the run store.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Table => "table",
            ArtifactKind::Model => "model",
            ArtifactKind::Json => "json",
        }
    }
}

impl std::fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value exchanged between steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Artifact {
    /// A table of named columns.
    Table(Table),
    /// A trained model.
    Model(Model),
    /// A JSON value.
    Json(serde_json::Value),
}

impl Artifact {
    /// Returns the kind of this artifact.
    pub fn kind(&self) -> ArtifactKind {
        match self {
            Artifact::Table(_) => ArtifactKind::Table,
            Artifact::Model(_) => ArtifactKind::Model,
            Artifact::Json(_) => ArtifactKind::Json,
        }
    }

    /// Computes the content hash of this artifact's logical value.
    ///
    /// The hash covers the kind, and for a table the column names, types and
    /// values in order; it never depends on how the value is laid out in a
    /// file. See [`ContentHash`] for the encoding.
    pub fn content_hash(&self) -> ContentHash {
        hash::hash_artifact(self)
    }
}
