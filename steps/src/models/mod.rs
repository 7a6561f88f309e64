//! The model families that `train_model` fits and `evaluation`, batch
//! inference and the server load: linear regression, random forest and
//! gradient boosting.
//!
//! Every family shares one path:
//!
//! 1. [`encoding::FeatureEncoder::fit`] turns the training table into a dense
//!    numeric matrix (medians for missing numbers, frequency-ordered codes
//!    for string levels, out-of-fold mean targets for the columns of a
//!    [`TargetEncoding`], with folds from [`validation`]) and records the
//!    per-feature statistics.
//! 2. The family's `train` fits on that matrix, calling a [`Monitor`] once
//!    per tree or iteration so that progress shows and cancellation works.
//! 3. [`TrainedModel::to_model`] serializes the encoder and the fitted model
//!    together as the JSON payload of a [`Model`], so that the payload alone
//!    is enough to predict.
//! 4. [`load_predictor`] decodes a payload once into a [`Predictor`] that
//!    matches columns by name and encodes each row into a small buffer.
//!
//! Each family declares its hyperparameters as step parameters
//! (`param_specs`) and reads them (`from_step`), but nothing here reads
//! files or step inputs: the steps in `train` and `evaluate` do that and
//! hand over tables.

pub mod encoding;
pub mod gradient_boosting;
pub mod linear_regression;
pub mod random_forest;
pub mod range;
pub mod tuning;
pub mod validation;

use encoding::{FeatureEncoder, FeatureStats, RowEncoder, TargetFolds};
use flowrun_artifacts::{Model, Table};
use flowrun_engine::predict::{PredictError, Predictor};
use flowrun_engine::{Registry, StepError};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fmt;
pub use validation::ValidationSplit;

/// The version of the payload layout; a loader rejects any other.
const PAYLOAD_FORMAT: u32 = 1;

/// Tables with at least this many rows are predicted in parallel.
const PARALLEL_PREDICT_ROWS: usize = 4096;

/// Errors from fitting a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The training table has no rows.
    #[error(
        "no training rows: x_train is empty, so there is nothing to fit; check that the data \
         has orders with a review score and that clean_data kept them"
    )]
    NoTrainingRows,
    /// The training table has no columns.
    #[error("x_train has no feature columns; clean_data must output at least one feature")]
    NoFeatures,
    /// The feature and target tables differ in length.
    #[error(
        "x_train has {x_rows} rows but y_train has {y_rows}; both must come from the same \
         clean_data run"
    )]
    RowMismatch {
        /// Rows of the features.
        x_rows: usize,
        /// Rows of the target.
        y_rows: usize,
    },
    /// A feature column has a type no family reads.
    #[error(
        "feature column `{column}` is {found}; features must be float64 or int64 (numeric) or \
         utf8 (categorical)"
    )]
    UnsupportedColumn {
        /// The column.
        column: String,
        /// Its type.
        found: &'static str,
    },
    /// A numeric feature with no value in any training row.
    #[error(
        "feature column `{column}` is missing in every training row, so it has no median; \
         drop the column or fill it before training"
    )]
    AllMissing {
        /// The column.
        column: String,
    },
    /// A numeric feature with an infinite value.
    #[error(
        "feature column `{column}` contains an infinite value; replace it with a finite number \
         or NaN"
    )]
    InfiniteValue {
        /// The column.
        column: String,
    },
    /// A target value that is NaN or infinite.
    #[error("target `{column}` is {value} in row {row}; every training row needs a finite target")]
    InvalidTarget {
        /// The target column.
        column: String,
        /// The zero-based row.
        row: usize,
        /// The value found.
        value: f64,
    },
    /// A numeric hyperparameter outside its declared range.
    #[error(transparent)]
    OutOfRange(#[from] range::OutOfRange),
    /// A hyperparameter whose value is not one of the valid ones.
    #[error("parameter `{name}` must be {expected}, but it is {value}")]
    InvalidHyperparameter {
        /// The parameter name.
        name: &'static str,
        /// The value given.
        value: String,
        /// The valid values.
        expected: &'static str,
    },
    /// A model family name that does not exist.
    #[error("unknown model `{name}`; valid models: {valid}")]
    UnknownFamily {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// Too few training rows for `train_model` to fit and evaluate a model.
    #[error(
        "too few training rows: {rows}; train_model needs at least {min}, so ingest more orders \
         or give clean_data a smaller test_size"
    )]
    TooFewTrainingRows {
        /// Training rows found.
        rows: usize,
        /// The fewest rows accepted.
        min: usize,
    },
    /// Too few orders or rows for tuning's validation part to get any.
    #[error(
        "tuning holds out {percent}% of the training {unit} for validation, which is none of \
         {found} {unit}; tuning needs at least {need} {unit}, so set tuning_trials to 0 or \
         train on more data"
    )]
    EmptyValidation {
        /// Distinct orders (or rows) found.
        found: usize,
        /// The fewest orders (or rows) that give a validation part.
        need: usize,
        /// `orders` for a grouped validation split, `rows` for a random one.
        unit: &'static str,
        /// The share held out, in percent.
        percent: f64,
    },
    /// A grouped validation split without order keys.
    #[error(
        "validation_split is group, which holds rows out order by order, but y_train has no \
         `order_id` column; connect the y_train output of clean_data or set \
         validation_split to random"
    )]
    MissingGroups,
    /// The learner failed.
    #[error("training failed: {0}")]
    Training(String),
    /// Training stopped because the run was cancelled or timed out.
    #[error("{0}")]
    Cancelled(String),
}

impl From<ModelError> for StepError {
    fn from(error: ModelError) -> Self {
        match error {
            ModelError::Cancelled(reason) => StepError::Cancelled(reason),
            other => StepError::Failed(other.to_string()),
        }
    }
}

/// Observes training: counts finished work and says when to stop.
pub trait Monitor: Sync {
    /// Records `units` finished units of work (trees or iterations).
    fn advance(&self, units: u64);

    /// Returns [`ModelError::Cancelled`] when training must stop.
    fn check(&self) -> Result<(), ModelError>;
}

/// A monitor that shows nothing and never cancels.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmonitored;

impl Monitor for Unmonitored {
    fn advance(&self, _units: u64) {}

    fn check(&self) -> Result<(), ModelError> {
        Ok(())
    }
}

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Ridge regression on standardised and one-hot features.
    LinearRegression,
    /// Bagged regression trees.
    RandomForest,
    /// Histogram gradient boosting with forust.
    GradientBoosting,
}

impl Family {
    /// Every family, in the order the step's choices list them.
    pub const ALL: [Family; 3] = [
        Family::LinearRegression,
        Family::RandomForest,
        Family::GradientBoosting,
    ];

    /// Returns the family's name, which is also its model flavor.
    pub fn name(self) -> &'static str {
        match self {
            Family::LinearRegression => "linear_regression",
            Family::RandomForest => "random_forest",
            Family::GradientBoosting => "gradient_boosting",
        }
    }

    /// Returns every family name.
    pub fn names() -> Vec<&'static str> {
        Family::ALL.iter().map(|f| f.name()).collect()
    }

    /// Parses a family name.
    pub fn parse(name: &str) -> Result<Family, ModelError> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| ModelError::UnknownFamily {
                name: name.to_string(),
                valid: Family::names().join(", "),
            })
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The hyperparameters of one family.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Hyperparameters {
    /// Linear regression.
    LinearRegression(linear_regression::LinearParams),
    /// Random forest.
    RandomForest(random_forest::ForestParams),
    /// Gradient boosting.
    GradientBoosting(gradient_boosting::BoostingParams),
}

impl Hyperparameters {
    /// Returns the family these parameters belong to.
    pub fn family(&self) -> Family {
        match self {
            Hyperparameters::LinearRegression(_) => Family::LinearRegression,
            Hyperparameters::RandomForest(_) => Family::RandomForest,
            Hyperparameters::GradientBoosting(_) => Family::GradientBoosting,
        }
    }

    /// Returns the family's default hyperparameters.
    pub fn defaults(family: Family) -> Hyperparameters {
        match family {
            Family::LinearRegression => {
                Hyperparameters::LinearRegression(linear_regression::LinearParams::default())
            }
            Family::RandomForest => {
                Hyperparameters::RandomForest(random_forest::ForestParams::default())
            }
            Family::GradientBoosting => {
                Hyperparameters::GradientBoosting(gradient_boosting::BoostingParams::default())
            }
        }
    }

    /// Checks every value against its valid range.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            Hyperparameters::LinearRegression(p) => p.validate(),
            Hyperparameters::RandomForest(p) => p.validate(),
            Hyperparameters::GradientBoosting(p) => p.validate(),
        }
    }

    /// Returns the number of progress units training takes.
    pub fn work_units(&self) -> u64 {
        match self {
            Hyperparameters::LinearRegression(_) => 1,
            Hyperparameters::RandomForest(p) => p.trees as u64,
            Hyperparameters::GradientBoosting(p) => p.iterations as u64,
        }
    }

    /// Returns the parameters as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("hyperparameters serialize to JSON")
    }
}

/// A fitted model of one family; it serializes as the family's own model.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Fitted {
    /// Linear regression.
    LinearRegression(linear_regression::LinearModel),
    /// Random forest.
    RandomForest(random_forest::ForestModel),
    /// Gradient boosting; boxed because forust's booster is large.
    GradientBoosting(Box<gradient_boosting::BoostingModel>),
}

/// Scores one encoded row; implemented by each family's fitted model.
pub trait RowModel: Send + Sync {
    /// Predicts the target for one row encoded by the model's
    /// [`FeatureEncoder`], one value per feature in training order.
    fn predict_row(&self, row: &[f64]) -> f64;

    /// Returns one non-negative importance per feature, in training order.
    fn importance(&self, encoder: &FeatureEncoder) -> Vec<f64>;
}

impl RowModel for Fitted {
    fn predict_row(&self, row: &[f64]) -> f64 {
        match self {
            Fitted::LinearRegression(m) => m.predict_row(row),
            Fitted::RandomForest(m) => m.predict_row(row),
            Fitted::GradientBoosting(m) => m.predict_row(row),
        }
    }

    fn importance(&self, encoder: &FeatureEncoder) -> Vec<f64> {
        match self {
            Fitted::LinearRegression(m) => m.importance(encoder),
            Fitted::RandomForest(m) => m.importance(encoder),
            Fitted::GradientBoosting(m) => m.importance(encoder),
        }
    }
}

/// A model fresh from training, before it becomes a [`Model`] artifact.
pub struct TrainedModel {
    /// The feature encoding fitted on the training rows.
    pub encoder: FeatureEncoder,
    /// Per-feature training statistics, in feature order.
    pub stats: Vec<FeatureStats>,
    /// The hyperparameters it was trained with.
    pub hyperparameters: Hyperparameters,
    /// The seed it was trained with.
    pub seed: u64,
    /// The number of training rows.
    pub train_rows: usize,
    /// The fitted model.
    pub fitted: Fitted,
}

/// The payload layout shared by every family.
#[derive(Serialize, Deserialize)]
struct Payload<M> {
    format: u32,
    encoder: FeatureEncoder,
    model: M,
}

/// The training rows: features, target and each row's order.
#[derive(Debug, Clone, Copy)]
pub struct TrainingData<'a> {
    /// The features.
    pub x: &'a Table,
    /// The target, one value per row of `x`.
    pub y: &'a [f64],
    /// The order of each row, or `None` when rows have no order key.
    pub groups: Option<&'a [Option<String>]>,
}

/// The range of the `target_encoding_smoothing` parameter of
/// `train_model`, in rows of prior weight.
pub const TARGET_ENCODING_SMOOTHING: range::ParamRange =
    range::ParamRange::float("target_encoding_smoothing", 0.0, 1e9);

/// The mean-target encoding of categorical features, fitted out of fold.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetEncoding {
    /// The categorical columns to encode; columns that `x` lacks are skipped.
    pub columns: Vec<String>,
    /// The prior weight in rows (see [`encoding::TargetFolds::smoothing`]).
    pub smoothing: f64,
    /// The number of folds for the training rows' values.
    pub folds: usize,
    /// Whether folds keep each order's rows together.
    pub split: ValidationSplit,
}

impl TargetEncoding {
    /// Returns settings that encode no column by its target.
    pub fn none() -> Self {
        TargetEncoding {
            columns: Vec::new(),
            smoothing: 0.0,
            folds: 1,
            split: ValidationSplit::Group,
        }
    }
}

/// Fits a model of the family of `params` on features `x` and target `y`,
/// with no target encoding.
pub fn train(
    x: &Table,
    y: &[f64],
    params: &Hyperparameters,
    seed: u64,
    monitor: &dyn Monitor,
) -> Result<TrainedModel, ModelError> {
    let data = TrainingData { x, y, groups: None };
    train_with(&data, &TargetEncoding::none(), params, seed, monitor)
}

/// Fits a model of the family of `params` on `data`, encoding the columns
/// of `target_encoding` by their out-of-fold mean target.
pub fn train_with(
    data: &TrainingData<'_>,
    target_encoding: &TargetEncoding,
    params: &Hyperparameters,
    seed: u64,
    monitor: &dyn Monitor,
) -> Result<TrainedModel, ModelError> {
    let TrainingData { x, y, groups } = *data;
    params.validate()?;
    if x.num_rows() == 0 {
        return Err(ModelError::NoTrainingRows);
    }
    if x.num_rows() != y.len() {
        return Err(ModelError::RowMismatch {
            x_rows: x.num_rows(),
            y_rows: y.len(),
        });
    }
    if let Some(row) = y.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::InvalidTarget {
            column: "review_score".to_string(),
            row,
            value: y[row],
        });
    }

    let encoded: Vec<String> = target_encoding
        .columns
        .iter()
        .filter(|name| x.column(name).is_some())
        .cloned()
        .collect();
    let folds = if encoded.is_empty() {
        None
    } else {
        TARGET_ENCODING_SMOOTHING.check(target_encoding.smoothing)?;
        Some(TargetFolds {
            y,
            fold_of_row: validation::assign_folds(
                x.num_rows(),
                groups,
                target_encoding.split,
                target_encoding.folds,
                seed,
            )?,
            folds: target_encoding.folds,
            columns: &encoded,
            smoothing: target_encoding.smoothing,
        })
    };
    let (encoder, matrix, stats) = FeatureEncoder::fit(x, folds.as_ref())?;
    let fitted = match params {
        Hyperparameters::LinearRegression(p) => {
            Fitted::LinearRegression(linear_regression::train(p, &encoder, &matrix, y, monitor)?)
        }
        Hyperparameters::RandomForest(p) => {
            Fitted::RandomForest(random_forest::train(p, &matrix, y, seed, monitor)?)
        }
        Hyperparameters::GradientBoosting(p) => Fitted::GradientBoosting(Box::new(
            gradient_boosting::train(p, &matrix, y, seed, monitor)?,
        )),
    };
    Ok(TrainedModel {
        encoder,
        stats,
        hyperparameters: params.clone(),
        seed,
        train_rows: x.num_rows(),
        fitted,
    })
}

impl TrainedModel {
    /// Predicts every row of `rows` with the in-memory model.
    pub fn predict(&self, rows: &Table) -> Result<Vec<f64>, PredictError> {
        let encoder = RowEncoder::new(self.encoder.clone());
        predict_table(&encoder, &self.fitted, rows)
    }

    /// Returns the family of the model.
    pub fn family(&self) -> Family {
        self.hyperparameters.family()
    }

    /// Builds the [`Model`] artifact: the payload holds the encoder and the
    /// fitted model, `info` the hyperparameters, medians and statistics.
    pub fn to_model(&self, target: &str) -> Result<Model, ModelError> {
        let payload = Payload {
            format: PAYLOAD_FORMAT,
            encoder: self.encoder.clone(),
            model: &self.fitted,
        };
        let payload = serde_json::to_vec(&payload)
            .map_err(|e| ModelError::Training(format!("cannot serialize the model: {e}")))?;
        let mut hyperparameters = self.hyperparameters.to_json();
        hyperparameters["seed"] = json!(self.seed);
        let feature_stats: serde_json::Map<String, serde_json::Value> = self
            .encoder
            .features
            .iter()
            .zip(&self.stats)
            .map(|(f, s)| {
                let stats = serde_json::to_value(s).expect("statistics serialize to JSON");
                (f.name.clone(), stats)
            })
            .collect();
        let info = json!({
            "family": self.family().name(),
            "hyperparameters": hyperparameters,
            "train_rows": self.train_rows,
            "medians": self.encoder.medians(),
            "feature_stats": feature_stats,
        });
        Ok(Model {
            flavor: self.family().name().to_string(),
            target: target.to_string(),
            features: self.encoder.feature_specs(),
            payload,
            info,
        })
    }
}

/// Predicts every row of `rows` with `model`, reading columns by name.
fn predict_table<M: RowModel + ?Sized>(
    encoder: &RowEncoder,
    model: &M,
    rows: &Table,
) -> Result<Vec<f64>, PredictError> {
    let bound = encoder.bind(rows)?;
    let width = encoder.num_features();
    let predict_range = |range: std::ops::Range<usize>| {
        let mut row = vec![0.0; width];
        range
            .map(|i| {
                bound.encode_row(i, &mut row);
                model.predict_row(&row)
            })
            .collect::<Vec<f64>>()
    };
    let n = rows.num_rows();
    if n < PARALLEL_PREDICT_ROWS {
        return Ok(predict_range(0..n));
    }
    let chunk = PARALLEL_PREDICT_ROWS / 4;
    let parts: Vec<Vec<f64>> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| predict_range(c * chunk..((c + 1) * chunk).min(n)))
        .collect();
    Ok(parts.concat())
}

fn decode<M: DeserializeOwned>(model: &Model) -> Result<(FeatureEncoder, M), PredictError> {
    let payload: Payload<M> = serde_json::from_slice(&model.payload).map_err(|e| {
        PredictError::InvalidModel(format!(
            "the payload of this {} model cannot be decoded: {e}",
            model.flavor
        ))
    })?;
    if payload.format != PAYLOAD_FORMAT {
        return Err(PredictError::InvalidModel(format!(
            "payload format {} is not supported (expected {PAYLOAD_FORMAT}); retrain the model \
             with this version of flowrun",
            payload.format
        )));
    }
    Ok((payload.encoder, payload.model))
}

/// A model of any family decoded from its payload: a [`Predictor`] that also
/// reports feature importance.
pub struct DecodedModel {
    encoder: RowEncoder,
    fitted: Fitted,
}

impl DecodedModel {
    /// Decodes `model`'s payload according to its flavor.
    pub fn decode(model: &Model) -> Result<Self, PredictError> {
        let family = Family::parse(&model.flavor).map_err(|_| PredictError::UnknownFlavor {
            flavor: model.flavor.clone(),
            known: Family::names().join(", "),
        })?;
        let (encoder, fitted) = match family {
            Family::LinearRegression => {
                let (encoder, m) = decode(model)?;
                (encoder, Fitted::LinearRegression(m))
            }
            Family::RandomForest => {
                let (encoder, m) = decode(model)?;
                (encoder, Fitted::RandomForest(m))
            }
            Family::GradientBoosting => {
                let (encoder, m) = decode(model)?;
                (encoder, Fitted::GradientBoosting(Box::new(m)))
            }
        };
        Ok(DecodedModel {
            encoder: RowEncoder::new(encoder),
            fitted,
        })
    }

    /// Returns each feature's importance as a share of the total (summing
    /// to 1 unless every importance is zero), from most to least important.
    ///
    /// The measure depends on the family: total split gain for gradient
    /// boosting, total decrease of squared error for the random forest, and
    /// the standard deviation of the feature's contribution over the
    /// training rows for linear regression.
    pub fn feature_importance(&self) -> Vec<(String, f64)> {
        let encoder = self.encoder.encoder();
        let raw = self.fitted.importance(encoder);
        let total: f64 = raw.iter().sum();
        let mut shares: Vec<(String, f64)> = encoder
            .features
            .iter()
            .zip(raw)
            .map(|(f, v)| (f.name.clone(), if total > 0.0 { v / total } else { 0.0 }))
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        shares
    }
}

impl Predictor for DecodedModel {
    fn predict(&self, rows: &Table) -> Result<Vec<f64>, PredictError> {
        predict_table(&self.encoder, &self.fitted, rows)
    }
}

/// Decodes a model of any family into a predictor.
pub fn load_predictor(model: &Model) -> Result<Box<dyn Predictor>, PredictError> {
    Ok(Box::new(DecodedModel::decode(model)?))
}

/// Registers a predictor loader for each model family.
pub fn register_flavors(registry: &mut Registry) {
    for family in Family::ALL {
        registry.register_flavor(family.name(), load_predictor);
    }
}
