//! The `clean_data` step: turns the joined `orders` table into feature
//! tables and target tables for a training and a test part.
//!
//! The work runs in this order, and the order matters:
//!
//! 1. Compute the features of the chosen feature set for every row
//!    ([`features`]).
//! 2. Drop rows whose `review_score` is missing or outside 1-5, counting
//!    each reason.
//! 3. Split the remaining rows into training and test parts ([`split`]).
//! 4. Fill missing numeric values with the median of the training part
//!    only, and missing categorical values with the level `unknown`. Taking
//!    the medians from the training part keeps the test part unseen.
//!
//! The outputs are `x_train` and `x_test` (feature columns only: numeric
//! features Float64, categorical ones Utf8) and `y_train` and `y_test`
//! (`review_score` Float64 and `order_id` Utf8, the group key for a grouped
//! validation split in training). Rows keep their input order in each part.
//!
//! A numeric feature with no value at all in the training part is filled
//! with 0 and logged as a warning, since no median exists.
//!
//! The step never reads files and never looks at the test part's values
//! when choosing fill values. The label, unit and help text of every
//! feature, which `train_model` copies into each model, are in [`docs`].

pub mod docs;
mod error;
mod features;
mod split;

pub use error::CleanError;
pub use features::{BASIC_FEATURES, FeatureSet, ORDER_TIME_FEATURES, POST_DELIVERY_FEATURES};
pub use split::SplitKind;

use crate::models::range::{ParamRange, SEED};
use features::{Feature, FeatureValues};
use flowrun_artifacts::{Artifact, ArtifactKind, Column, ColumnData, Table};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Registry, Step, StepContext, StepError, StepOutputs,
    StepSignature,
};

/// The declared range of the `test_size` parameter. The split itself
/// handles any fraction above 0 and below 1 (see [`clean`]), but the step
/// asks for at least 1% in each part, since a smaller part is more likely a
/// typo than a plan.
pub const TEST_SIZE: ParamRange = ParamRange::float("test_size", 0.01, 0.99);

/// The level that stands for a missing categorical value.
pub const UNKNOWN_LEVEL: &str = "unknown";

/// The parameters of [`clean`].
#[derive(Debug, Clone, Copy)]
pub struct CleanOptions {
    /// The feature columns to produce.
    pub feature_set: FeatureSet,
    /// How to split rows into training and test parts.
    pub split: SplitKind,
    /// The fraction of rows (random) or orders (group) in the test part.
    pub test_size: f64,
    /// The seed of the shuffle.
    pub seed: u64,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            feature_set: FeatureSet::OrderTime,
            split: SplitKind::Group,
            test_size: 0.2,
            seed: 42,
        }
    }
}

/// The four output tables of [`clean`] and what happened on the way.
#[derive(Debug)]
pub struct Cleaned {
    /// The training features.
    pub x_train: Table,
    /// The test features.
    pub x_test: Table,
    /// The training targets and order ids.
    pub y_train: Table,
    /// The test targets and order ids.
    pub y_test: Table,
    /// Rows dropped because `review_score` was missing.
    pub dropped_missing_score: usize,
    /// Rows dropped because `review_score` was outside 1-5.
    pub dropped_invalid_score: usize,
    /// The fill value of each numeric feature, from the training part.
    pub medians: Vec<(&'static str, f64)>,
}

/// Builds features from `orders`, drops unusable rows, splits and fills.
///
/// Fails with [`CleanError::InvalidTestSize`] unless `options.test_size` is
/// above 0 and below 1.
pub fn clean(orders: &Table, options: &CleanOptions) -> Result<Cleaned, CleanError> {
    if orders.num_rows() == 0 {
        return Err(CleanError::NoTrainingRows(
            "the `orders` table has 0 rows; check that the CSV files given to ingest_data have data rows below their header"
                .to_string(),
        ));
    }
    let (order_ids, scores) = target_columns(orders)?;
    let features = features::build_features(orders, options.feature_set)?;

    let mut scored_rows = Vec::with_capacity(orders.num_rows());
    let (mut dropped_missing_score, mut dropped_invalid_score) = (0, 0);
    for (row, &score) in scores.iter().enumerate() {
        if score.is_nan() {
            dropped_missing_score += 1;
        } else if !(1.0..=5.0).contains(&score) {
            dropped_invalid_score += 1;
        } else {
            scored_rows.push(row);
        }
    }
    if scored_rows.is_empty() {
        return Err(CleanError::NoTrainingRows(format!(
            "all {} rows of the `orders` table lack a review_score between 1 and 5",
            orders.num_rows()
        )));
    }

    let parts = split::split_rows(
        &scored_rows,
        order_ids,
        options.split,
        options.test_size,
        options.seed,
    )?;
    let (x_train, x_test, medians) = fill_and_take(&features, &parts.train, &parts.test);
    Ok(Cleaned {
        x_train,
        x_test,
        y_train: target_table(order_ids, &scores, &parts.train),
        y_test: target_table(order_ids, &scores, &parts.test),
        dropped_missing_score,
        dropped_invalid_score,
        medians,
    })
}

/// Returns the `order_id` and `review_score` columns.
fn target_columns(orders: &Table) -> Result<(&[Option<String>], Vec<f64>), CleanError> {
    let missing = |column: &str| CleanError::MissingColumn {
        column: column.to_string(),
        needed_by: "clean_data".to_string(),
        available: orders.column_names().join(", "),
    };
    let order_ids = match &orders
        .column("order_id")
        .ok_or_else(|| missing("order_id"))?
        .data
    {
        ColumnData::Utf8(values) => values.as_slice(),
        other => {
            return Err(CleanError::ColumnType {
                column: "order_id".to_string(),
                expected: "utf8",
                found: other.type_name(),
            });
        }
    };
    let scores = match &orders
        .column("review_score")
        .ok_or_else(|| missing("review_score"))?
        .data
    {
        ColumnData::Float64(values) => values.clone(),
        ColumnData::Int64(values) => values
            .iter()
            .map(|v| v.map_or(f64::NAN, |v| v as f64))
            .collect(),
        other => {
            return Err(CleanError::ColumnType {
                column: "review_score".to_string(),
                expected: "float64 or int64",
                found: other.type_name(),
            });
        }
    };
    Ok((order_ids, scores))
}

/// Builds the feature tables of both parts, filling missing values from
/// the training part. Returns the tables and the numeric fill values.
fn fill_and_take(
    features: &[Feature<'_>],
    train: &[usize],
    test: &[usize],
) -> (Table, Table, Vec<(&'static str, f64)>) {
    let mut train_columns = Vec::with_capacity(features.len());
    let mut test_columns = Vec::with_capacity(features.len());
    let mut medians = Vec::new();
    for feature in features {
        match &feature.values {
            FeatureValues::Numeric(values) => {
                let fill = training_median(feature.name, values, train);
                medians.push((feature.name, fill));
                let take = |rows: &[usize]| {
                    let filled = rows.iter().map(|&row| {
                        let value = values[row];
                        if value.is_nan() { fill } else { value }
                    });
                    Column::new(feature.name, ColumnData::Float64(filled.collect()))
                };
                train_columns.push(take(train));
                test_columns.push(take(test));
            }
            FeatureValues::Categorical(values) => {
                let take = |rows: &[usize]| {
                    let filled = rows.iter().map(|&row| {
                        let level = values[row].filter(|level| !level.is_empty());
                        Some(level.unwrap_or(UNKNOWN_LEVEL).to_string())
                    });
                    Column::new(feature.name, ColumnData::Utf8(filled.collect()))
                };
                train_columns.push(take(train));
                test_columns.push(take(test));
            }
        }
    }
    let table = |columns| {
        Table::new(columns).expect("feature columns have unique names and one value per row")
    };
    (table(train_columns), table(test_columns), medians)
}

/// Returns the median of a feature over the training rows, ignoring
/// missing values. Returns 0 when the training part has no value.
fn training_median(name: &str, values: &[f64], train: &[usize]) -> f64 {
    let mut present: Vec<f64> = train
        .iter()
        .map(|&row| values[row])
        .filter(|value| !value.is_nan())
        .collect();
    if present.is_empty() {
        tracing::warn!(
            feature = name,
            "no training row has a value for this feature; missing values are filled with 0"
        );
        return 0.0;
    }
    present.sort_unstable_by(f64::total_cmp);
    let middle = present.len() / 2;
    if present.len() % 2 == 1 {
        present[middle]
    } else {
        (present[middle - 1] + present[middle]) / 2.0
    }
}

/// Builds a `y_*` table of the given rows.
fn target_table(order_ids: &[Option<String>], scores: &[f64], rows: &[usize]) -> Table {
    let columns = vec![
        Column::new(
            "review_score",
            ColumnData::Float64(rows.iter().map(|&row| scores[row]).collect()),
        ),
        Column::new(
            "order_id",
            ColumnData::Utf8(rows.iter().map(|&row| order_ids[row].clone()).collect()),
        ),
    ];
    Table::new(columns).expect("target columns have unique names and one value per row")
}

/// The `clean_data` step.
pub struct CleanData {
    signature: StepSignature,
}

impl CleanData {
    /// Creates the step with its signature.
    pub fn new() -> Self {
        let mut signature = StepSignature::new(
            "clean_data",
            "Build features from the orders table, split it into training and test parts and fill missing values from the training part",
        )
        .input("orders", ArtifactKind::Table, "the joined table from ingest_data");
        for param in parameters() {
            signature = signature.param(param);
        }

        let signature = signature
            .output("x_train", ArtifactKind::Table, "training features")
            .output("x_test", ArtifactKind::Table, "test features")
            .output(
                "y_train",
                ArtifactKind::Table,
                "training review_score and order_id",
            )
            .output(
                "y_test",
                ArtifactKind::Table,
                "test review_score and order_id",
            );
        CleanData { signature }
    }
}

/// Declares the parameters of `clean_data`, with the defaults of
/// [`CleanOptions`].
fn parameters() -> Vec<ParamSpec> {
    let defaults = CleanOptions::default();
    vec![
        ParamSpec::optional(
            "feature_set",
            ParamType::String,
            ParamValue::String(defaults.feature_set.name().to_string()),
            "which features to build: basic, order_time or post_delivery",
        )
        .with_choices(&FeatureSet::NAMES),
        ParamSpec::optional(
            "split",
            ParamType::String,
            ParamValue::String(defaults.split.name().to_string()),
            "group keeps each order on one side; random splits rows",
        )
        .with_choices(&SplitKind::NAMES),
        TEST_SIZE.optional(
            ParamValue::Float(defaults.test_size),
            "fraction of rows (random) or orders (group) in the test part",
        ),
        SEED.optional(
            ParamValue::Int(defaults.seed as i64),
            "seed of the shuffle; the same seed gives the same split",
        ),
    ]
}

impl Default for CleanData {
    fn default() -> Self {
        Self::new()
    }
}

impl Step for CleanData {
    fn signature(&self) -> &StepSignature {
        &self.signature
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        let options = CleanOptions {
            feature_set: FeatureSet::parse(ctx.param_str("feature_set")?).map_err(failed)?,
            split: SplitKind::parse(ctx.param_str("split")?).map_err(failed)?,
            // `clean` checks the fraction itself, against the wider range
            // (0, 1) that the split can handle.
            test_size: ctx.param_f64("test_size")?,
            seed: SEED.read_u64(ctx)?,
        };
        let orders = ctx.input_table("orders")?;
        ctx.check_cancelled()?;

        let cleaned = clean(orders, &options).map_err(failed)?;
        log_metrics(ctx, &cleaned);
        for (feature, median) in &cleaned.medians {
            tracing::debug!(feature, median, "fill value from the training part");
        }
        tracing::info!(
            feature_set = options.feature_set.name(),
            train_rows = cleaned.x_train.num_rows(),
            test_rows = cleaned.x_test.num_rows(),
            "cleaned and split the orders table"
        );

        ctx.check_cancelled()?;
        Ok(StepOutputs::new()
            .with("x_train", Artifact::Table(cleaned.x_train))
            .with("x_test", Artifact::Table(cleaned.x_test))
            .with("y_train", Artifact::Table(cleaned.y_train))
            .with("y_test", Artifact::Table(cleaned.y_test)))
    }
}

fn failed(error: CleanError) -> StepError {
    StepError::failed(error.to_string())
}

fn log_metrics(ctx: &StepContext<'_>, cleaned: &Cleaned) {
    let distinct_orders = |y: &Table| {
        let ids = y
            .utf8_column("order_id")
            .expect("y tables have an order_id column");
        ids.iter().collect::<foldhash::HashSet<_>>().len() as f64
    };
    ctx.log_metric("rows_train", cleaned.x_train.num_rows() as f64);
    ctx.log_metric("rows_test", cleaned.x_test.num_rows() as f64);
    ctx.log_metric("columns_train", cleaned.x_train.columns().len() as f64);
    ctx.log_metric("columns_test", cleaned.x_test.columns().len() as f64);
    ctx.log_metric("orders_train", distinct_orders(&cleaned.y_train));
    ctx.log_metric("orders_test", distinct_orders(&cleaned.y_test));
    ctx.log_metric(
        "rows_dropped_missing_score",
        cleaned.dropped_missing_score as f64,
    );
    ctx.log_metric(
        "rows_dropped_invalid_score",
        cleaned.dropped_invalid_score as f64,
    );
}

/// Registers `clean_data`.
pub fn register(registry: &mut Registry) {
    registry.register(CleanData::new(), flowrun_engine::code_fingerprint!());
}
