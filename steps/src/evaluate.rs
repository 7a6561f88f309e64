//! The `evaluation` step: scores a trained model on the test part and
//! compares it with predicting the training mean.
//!
//! It predicts through the same [`Predictor`](flowrun_engine::predict::Predictor)
//! that batch inference and the server load from the model's payload, so
//! the reported error is the error of the model as it will be served. It
//! never refits or changes the model.

use crate::models::DecodedModel;
use crate::train::target_column;
use flowrun_artifacts::{Artifact, ArtifactKind, Column, ColumnData, Table};
use flowrun_engine::predict::Predictor;
use flowrun_engine::{Registry, Step, StepContext, StepError, StepOutputs, StepSignature};
use serde::Serialize;

/// Registers `evaluation`.
pub fn register(registry: &mut Registry) {
    registry.register(Evaluation::new(), flowrun_engine::code_fingerprint!());
}

/// Regression metrics of predictions against true values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionMetrics {
    /// Mean squared error.
    pub mse: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination, `1 - SSE / SST` with SST taken around
    /// the mean of the true values; NaN when they are all equal.
    pub r2: f64,
    /// Mean squared error of predicting the training mean for every row.
    pub baseline_mse: f64,
    /// Number of rows scored.
    pub test_rows: usize,
}

impl RegressionMetrics {
    /// Computes the metrics of `predicted` against `actual`, with the
    /// baseline that predicts `train_mean`. Both slices have the same,
    /// non-zero length.
    pub fn compute(actual: &[f64], predicted: &[f64], train_mean: f64) -> Self {
        let n = actual.len() as f64;
        let sse: f64 = actual
            .iter()
            .zip(predicted)
            .map(|(a, p)| (a - p) * (a - p))
            .sum();
        let abs: f64 = actual
            .iter()
            .zip(predicted)
            .map(|(a, p)| (a - p).abs())
            .sum();
        let mean = actual.iter().sum::<f64>() / n;
        let sst: f64 = actual.iter().map(|a| (a - mean) * (a - mean)).sum();
        let baseline: f64 = actual
            .iter()
            .map(|a| (a - train_mean) * (a - train_mean))
            .sum();
        let mse = sse / n;
        RegressionMetrics {
            mse,
            rmse: mse.sqrt(),
            mae: abs / n,
            r2: if sst > 0.0 { 1.0 - sse / sst } else { f64::NAN },
            baseline_mse: baseline / n,
            test_rows: actual.len(),
        }
    }
}

/// The `evaluation` step.
pub struct Evaluation {
    signature: StepSignature,
}

impl Default for Evaluation {
    fn default() -> Self {
        Self::new()
    }
}

impl Evaluation {
    /// Creates the step with its signature.
    pub fn new() -> Self {
        let signature = StepSignature::new(
            "evaluation",
            "score a model on the test part: MSE, RMSE, MAE, R² and the mean baseline",
        )
        .input("model", ArtifactKind::Model, "the trained model")
        .input("x_test", ArtifactKind::Table, "test features")
        .input(
            "y_test",
            ArtifactKind::Table,
            "test target with `review_score`",
        )
        .input(
            "y_train",
            ArtifactKind::Table,
            "training target, whose mean is the baseline prediction",
        )
        .output(
            "metrics",
            ArtifactKind::Json,
            "the metrics as a JSON object",
        )
        .output(
            "feature_importance",
            ArtifactKind::Table,
            "each feature's share of the model's importance, largest first",
        );
        Evaluation { signature }
    }
}

fn importance_table(shares: Vec<(String, f64)>) -> Result<Table, StepError> {
    let (names, values): (Vec<Option<String>>, Vec<f64>) =
        shares.into_iter().map(|(name, v)| (Some(name), v)).unzip();
    Ok(Table::new(vec![
        Column::new("feature", ColumnData::Utf8(names)),
        Column::new("importance", ColumnData::Float64(values)),
    ])?)
}

impl Step for Evaluation {
    fn signature(&self) -> &StepSignature {
        &self.signature
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        let model = ctx.input_model("model")?;
        let x_test = ctx.input_table("x_test")?;
        let y_test = target_column(ctx.input_table("y_test")?, "y_test")?;
        let y_train = target_column(ctx.input_table("y_train")?, "y_train")?;
        if x_test.num_rows() != y_test.len() {
            return Err(StepError::failed(format!(
                "x_test has {} rows but y_test has {}; both must come from the same clean_data run",
                x_test.num_rows(),
                y_test.len()
            )));
        }
        if y_test.is_empty() {
            return Err(StepError::failed(
                "no test rows: x_test is empty, so the model cannot be scored; give clean_data a \
                 test_size above 0 and data with enough orders for both parts",
            ));
        }
        if y_train.is_empty() {
            return Err(StepError::failed(
                "no training rows: y_train is empty, so there is no mean baseline",
            ));
        }

        let invalid = |e: flowrun_engine::predict::PredictError| {
            StepError::failed(format!(
                "cannot score x_test with the {} model: {e}",
                model.flavor
            ))
        };
        let decoded = DecodedModel::decode(model).map_err(invalid)?;
        let predicted = decoded.predict(x_test).map_err(invalid)?;
        let train_mean = y_train.iter().sum::<f64>() / y_train.len() as f64;
        let metrics = RegressionMetrics::compute(y_test, &predicted, train_mean);

        ctx.log_metric("mse", metrics.mse);
        ctx.log_metric("rmse", metrics.rmse);
        ctx.log_metric("mae", metrics.mae);
        ctx.log_metric("r2", metrics.r2);
        ctx.log_metric("baseline_mse", metrics.baseline_mse);
        ctx.log_metric("test_rows", metrics.test_rows as f64);
        tracing::info!(
            model = %model.flavor,
            mse = metrics.mse,
            baseline_mse = metrics.baseline_mse,
            r2 = metrics.r2,
            test_rows = metrics.test_rows,
            "model evaluated"
        );

        let importance = decoded.feature_importance();
        let mut json = serde_json::to_value(&metrics).expect("metrics serialize to JSON");
        json["model"] = serde_json::Value::String(model.flavor.clone());
        Ok(StepOutputs::new()
            .with("metrics", Artifact::Json(json))
            .with(
                "feature_importance",
                Artifact::Table(importance_table(importance)?),
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_hand_computed() {
        // Errors are 1, -1, 0, 2: SSE 6, absolute 4. The actual mean is 3,
        // so SST = 4 + 0 + 0 + 4 = 8. The baseline 2.5 misses by
        // -1.5, 0.5, 0.5, 2.5: squared sum 9.
        let actual = [1.0, 3.0, 3.0, 5.0];
        let predicted = [0.0, 4.0, 3.0, 3.0];
        let m = RegressionMetrics::compute(&actual, &predicted, 2.5);
        assert_eq!(m.mse, 1.5);
        assert_eq!(m.rmse, 1.5f64.sqrt());
        assert_eq!(m.mae, 1.0);
        assert_eq!(m.r2, 1.0 - 6.0 / 8.0);
        assert_eq!(m.baseline_mse, 2.25);
        assert_eq!(m.test_rows, 4);
    }

    #[test]
    fn constant_actual_has_no_r2() {
        let m = RegressionMetrics::compute(&[4.0, 4.0], &[4.0, 3.0], 4.0);
        assert!(m.r2.is_nan());
        assert_eq!(m.mse, 0.5);
    }
}
