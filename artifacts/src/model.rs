//! Trained models as artifacts.

use serde::{Deserialize, Serialize};

/// How a model reads one input feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeatureKind {
    /// A number; NaN means missing.
    Numeric,
    /// One of a fixed set of string levels; other strings are treated as
    /// unseen levels by the model.
    Categorical {
        /// The levels seen in training, in the order the model encodes them.
        levels: Vec<String>,
    },
}

/// One input feature of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// The column name the model expects.
    pub name: String,
    /// How the model reads the column.
    #[serde(flatten)]
    pub kind: FeatureKind,
}

/// A trained model: its family, the features it reads in training order,
/// and a family-specific payload.
///
/// The engine and the artifact store treat `payload` as opaque bytes; the
/// crate that trained the model knows how to decode it. `info` carries
/// anything a reader may want without decoding the payload, such as the
/// hyperparameters and training-data statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model family, for example `gradient_boosting`.
    pub flavor: String,
    /// The name of the predicted column.
    pub target: String,
    /// The input features in the order the model was trained on.
    pub features: Vec<FeatureSpec>,
    /// Family-specific serialized model.
    pub payload: Vec<u8>,
    /// Hyperparameters, training statistics and other descriptive data.
    pub info: serde_json::Value,
}
