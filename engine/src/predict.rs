//! Predictors: trained models loaded for scoring.
//!
//! The engine serves and applies models without knowing how any model
//! family works. A crate of steps registers a loader per model flavor with
//! [`Registry::register_flavor`](crate::Registry::register_flavor); the
//! server and batch inference call [`Registry::load_predictor`](crate::Registry::load_predictor).

use flowrun_artifacts::{Model, Table};

/// Errors from loading a model or scoring rows.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The rows lack a feature column the model needs.
    #[error("missing feature column `{0}`")]
    MissingFeature(String),
    /// A feature column has a type the model cannot read.
    #[error("feature column `{column}` must be {expected}, found {found}")]
    FeatureType {
        /// The column.
        column: String,
        /// What the model reads.
        expected: &'static str,
        /// What the rows have.
        found: &'static str,
    },
    /// The model's flavor has no registered loader.
    #[error("no loader for model flavor `{flavor}`; known flavors: {known}")]
    UnknownFlavor {
        /// The flavor of the model.
        flavor: String,
        /// The registered flavors, comma-separated.
        known: String,
    },
    /// The model's payload cannot be decoded.
    #[error("invalid model: {0}")]
    InvalidModel(String),
}

/// A loaded model that scores rows.
pub trait Predictor: Send + Sync {
    /// Predicts one value per row. Columns are matched to the model's
    /// features by name, never by position; extra columns are ignored.
    fn predict(&self, rows: &Table) -> Result<Vec<f64>, PredictError>;
}

/// A function that decodes a model of one flavor into a predictor.
pub type LoadPredictor = fn(&Model) -> Result<Box<dyn Predictor>, PredictError>;
