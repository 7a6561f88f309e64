//! The `deployment_trigger` step: decides from a model's evaluation metrics
//! whether it goes to production.
//!
//! A model is deployed when its test MSE is finite and at most `max_mse`,
//! its test set has at least `min_test_rows` rows (an MSE over a handful of
//! rows is mostly noise), and, with `require_improvement` (the default), it is
//! no worse than the current production version on the same test rows.
//! A model with no production version to compare against passes that last
//! test.
//!
//! Two MSEs are comparable only when they are measured on the same rows:
//! a production model trained and tested on other data (another
//! `data_dir`, feature set or split) has an MSE of its own test set. So,
//! when `x_test` and `y_test` are connected, the step scores the
//! production version on this run's test rows and compares the two MSEs
//! there. When the production version cannot be scored on them (its
//! features are missing from `x_test`, or its file cannot be read), the
//! model is not deployed, and the reason names the way to deploy anyway
//! (`require_improvement=false`). Without `x_test` and `y_test`, the step
//! falls back to the MSE the production version had when it was
//! registered, and the reason says so.
//!
//! The decision and its reason are recorded as the step's `decision` and
//! `reason` tags and returned as JSON. The step reads the registry and the
//! artifact store and never changes them. It is not cached, because the
//! production version changes outside any pipeline.

use super::{DEFAULT_MODEL_NAME, open_runs, registry_error};
use crate::evaluate::RegressionMetrics;
use crate::models::DecodedModel;
use crate::models::range::ParamRange;
use crate::train::target_column;
use flowrun_artifacts::store::{ArtifactStore, LocalStore};
use flowrun_artifacts::{Artifact, ArtifactKind, Table};
use flowrun_engine::predict::Predictor;
use flowrun_engine::runstore::ModelVersionInfo;
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Step, StepContext, StepError, StepOutputs, StepSignature,
};
use serde::Serialize;

/// The range of `max_mse`. It rejects NaN and negative thresholds. The
/// upper bound lies far above the MSE of any useful model of review scores
/// (1 to 5), so it only catches typos.
pub const MAX_MSE: ParamRange = ParamRange::float("max_mse", 0.0, 1e9);

/// The range of `min_test_rows`.
pub const MIN_TEST_ROWS: ParamRange = ParamRange::int("min_test_rows", 1, 1_000_000_000);

/// The default of `min_test_rows`. The shipped sample's test part has
/// about 800 rows. Below 200 rows, the MSE of review scores moves from one
/// split to the next by more than the gap between model families.
pub const DEFAULT_MIN_TEST_ROWS: i64 = 200;

/// The `deployment_trigger` step.
pub struct DeploymentTrigger {
    signature: StepSignature,
}

impl Default for DeploymentTrigger {
    fn default() -> Self {
        Self::new()
    }
}

/// The decision and what it was based on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Whether to promote the model to production.
    pub deploy: bool,
    /// Why, as a sentence.
    pub reason: String,
    /// The candidate's test MSE.
    pub mse: f64,
    /// The threshold.
    pub max_mse: f64,
    /// The number of test rows behind `mse`, when the metrics give it.
    pub test_rows: Option<u64>,
    /// The production version compared against, if any.
    pub production_version: Option<i64>,
    /// Its MSE: on this run's test rows when `compared_on` is
    /// `same_test_rows`, else as recorded when it was registered.
    pub production_mse: Option<f64>,
    /// The rows behind `production_mse`: `same_test_rows`, `recorded`, or
    /// unset when there is nothing to compare.
    pub compared_on: Option<&'static str>,
}

/// The production version's error, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductionMse {
    /// Its MSE on the candidate's test rows.
    SameTestRows(f64),
    /// The MSE recorded when it was registered, on its own test set.
    Recorded(f64),
    /// No MSE was recorded and the test rows were not given.
    Unknown,
    /// It could not be scored on the candidate's test rows, and why.
    NotComparable(String),
}

/// The production version a candidate is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Production {
    /// Its version number.
    pub version: i64,
    /// Its error, as far as it is known.
    pub mse: ProductionMse,
}

/// The thresholds a candidate must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The largest test MSE deployed.
    pub max_mse: f64,
    /// The minimum number of test rows behind a trusted MSE.
    pub min_test_rows: u64,
    /// Whether the candidate must be no worse than production.
    pub require_improvement: bool,
}

/// Decides whether a model with test MSE `mse`, measured on `test_rows`
/// rows, is deployed.
pub fn decide(
    mse: f64,
    test_rows: Option<u64>,
    policy: Policy,
    production: Option<&Production>,
) -> Decision {
    let Policy {
        max_mse,
        min_test_rows,
        require_improvement,
    } = policy;
    let (production_mse, compared_on) = match production.map(|p| &p.mse) {
        Some(ProductionMse::SameTestRows(m)) => (Some(*m), Some("same_test_rows")),
        Some(ProductionMse::Recorded(m)) => (Some(*m), Some("recorded")),
        _ => (None, None),
    };
    let decision = |deploy: bool, reason: String| Decision {
        deploy,
        reason,
        mse,
        max_mse,
        test_rows,
        production_version: production.map(|p| p.version),
        production_mse,
        compared_on,
    };
    if !mse.is_finite() {
        return decision(false, format!("the test MSE is {mse}, not a finite number"));
    }
    if mse > max_mse {
        return decision(
            false,
            format!("test MSE {mse:.4} is above the threshold max_mse = {max_mse}"),
        );
    }
    if let Some(rows) = test_rows.filter(|&rows| rows < min_test_rows) {
        return decision(
            false,
            format!(
                "test MSE {mse:.4} comes from only {rows} test rows, fewer than \
                 min_test_rows = {min_test_rows}; train on more data, or lower min_test_rows"
            ),
        );
    }
    if !require_improvement {
        return decision(
            true,
            format!("test MSE {mse:.4} is within max_mse = {max_mse}; improvement not required"),
        );
    }
    let Some(Production {
        version,
        mse: known,
    }) = production
    else {
        return decision(
            true,
            format!(
                "test MSE {mse:.4} is within max_mse = {max_mse} and no version is in production"
            ),
        );
    };
    match known {
        ProductionMse::Unknown => decision(
            true,
            format!(
                "test MSE {mse:.4} is within max_mse = {max_mse}; production version {version} \
                 has no recorded MSE to compare with"
            ),
        ),
        ProductionMse::NotComparable(why) => decision(
            false,
            format!(
                "production version {version} cannot be scored on this run's test rows ({why}), \
                 so the two models cannot be compared; set require_improvement=false to deploy \
                 on max_mse alone"
            ),
        ),
        ProductionMse::SameTestRows(current) if mse > *current => decision(
            false,
            format!(
                "test MSE {mse:.4} is worse than production version {version} on the same test \
                 rows ({current:.4})"
            ),
        ),
        ProductionMse::SameTestRows(current) => decision(
            true,
            format!(
                "test MSE {mse:.4} is within max_mse = {max_mse} and no worse than production \
                 version {version} on the same test rows ({current:.4})"
            ),
        ),
        ProductionMse::Recorded(current) if mse > *current => decision(
            false,
            format!(
                "test MSE {mse:.4} is worse than the MSE production version {version} had on \
                 its own test set ({current:.4}); connect x_test and y_test to compare both on \
                 the same rows"
            ),
        ),
        ProductionMse::Recorded(current) => decision(
            true,
            format!(
                "test MSE {mse:.4} is within max_mse = {max_mse} and no worse than the MSE \
                 production version {version} had on its own test set ({current:.4})"
            ),
        ),
    }
}

/// Scores the production version on the candidate's test rows.
fn score_production(
    ctx: &StepContext<'_>,
    info: &ModelVersionInfo,
    x_test: &Table,
    y_test: &[f64],
) -> ProductionMse {
    let not_comparable = |why: String| ProductionMse::NotComparable(why);
    let Some(reference) = info.artifact_ref() else {
        return not_comparable("its registry entry has no artifact size and digest".into());
    };
    let model = match LocalStore::open(ctx.store_dir()).and_then(|store| store.get(&reference)) {
        Ok(Artifact::Model(model)) => model,
        Ok(other) => {
            return not_comparable(format!("its artifact is a {}, not a model", other.kind()));
        }
        Err(error) => return not_comparable(format!("its file cannot be read: {error}")),
    };
    let predicted = match DecodedModel::decode(&model) {
        Ok(decoded) => decoded.predict(x_test),
        Err(error) => return not_comparable(format!("it cannot be decoded: {error}")),
    };
    match predicted {
        Ok(predicted) if predicted.len() == y_test.len() => {
            // The baseline mean plays no part in the MSE.
            ProductionMse::SameTestRows(RegressionMetrics::compute(y_test, &predicted, 0.0).mse)
        }
        Ok(predicted) => not_comparable(format!(
            "it gave {} predictions for {} rows",
            predicted.len(),
            y_test.len()
        )),
        Err(error) => not_comparable(error.to_string()),
    }
}

impl DeploymentTrigger {
    /// Creates the step with its signature.
    pub fn new() -> Self {
        let signature = StepSignature::new(
            "deployment_trigger",
            "decide from the evaluation metrics whether the model goes to production",
        )
        .input(
            "metrics",
            ArtifactKind::Json,
            "evaluation metrics with a numeric `mse` (and `test_rows`)",
        )
        .optional_input(
            "x_test",
            ArtifactKind::Table,
            "the test features the metrics were measured on, to score the production version on the same rows",
        )
        .optional_input(
            "y_test",
            ArtifactKind::Table,
            "the test targets that go with x_test",
        )
        .output(
            "decision",
            ArtifactKind::Json,
            "`deploy` (bool), `reason` and the MSE values compared",
        )
        .param(MAX_MSE.required("deploy only models whose test MSE is at most this"))
        .param(MIN_TEST_ROWS.optional(
            ParamValue::Int(DEFAULT_MIN_TEST_ROWS),
            "deploy only models whose test MSE comes from at least this many rows",
        ))
        .param(ParamSpec::optional(
            "require_improvement",
            ParamType::Bool,
            ParamValue::Bool(true),
            "also require an MSE no worse than the production version's on the same test rows",
        ))
        .param(ParamSpec::optional(
            "model_name",
            ParamType::String,
            ParamValue::String(DEFAULT_MODEL_NAME.to_string()),
            "registered model whose production version is compared against",
        ))
        .not_cacheable();
        DeploymentTrigger { signature }
    }
}

impl Step for DeploymentTrigger {
    fn signature(&self) -> &StepSignature {
        &self.signature
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        let metrics = ctx.input_json("metrics")?;
        let mse = metrics.get("mse").and_then(|m| m.as_f64()).ok_or_else(|| {
            StepError::failed(
                "input `metrics` has no numeric `mse`; connect it to evaluation.metrics",
            )
        })?;
        let test_rows = metrics.get("test_rows").and_then(|r| r.as_u64());
        let policy = Policy {
            max_mse: MAX_MSE.read_f64(ctx)?,
            min_test_rows: u64::try_from(MIN_TEST_ROWS.read_i64(ctx)?).unwrap_or(1),
            require_improvement: ctx.param_bool("require_improvement")?,
        };
        let model_name = ctx.param_str("model_name")?;

        let test_set = match (ctx.input("x_test"), ctx.input("y_test")) {
            (Some(_), Some(_)) => {
                let x_test = ctx.input_table("x_test")?;
                let y_test = target_column(ctx.input_table("y_test")?, "y_test")?;
                if x_test.num_rows() != y_test.len() {
                    return Err(StepError::failed(format!(
                        "x_test has {} rows but y_test has {}; connect both to the same clean_data step",
                        x_test.num_rows(),
                        y_test.len()
                    )));
                }
                Some((x_test, y_test))
            }
            (None, None) => None,
            _ => {
                return Err(StepError::failed(
                    "only one of x_test and y_test is connected; connect both (to \
                     clean_data.x_test and clean_data.y_test) or neither",
                ));
            }
        };

        let production = if policy.require_improvement {
            let runs = open_runs(ctx)?;
            runs.production_version_info(model_name)
                .map_err(|e| registry_error(ctx, e))?
                .map(|info| {
                    let recorded = info.version.metrics.get("mse").and_then(|m| m.as_f64());
                    let mse = match (&test_set, recorded) {
                        (Some((x, y)), _) => score_production(ctx, &info, x, y),
                        (None, Some(recorded)) => ProductionMse::Recorded(recorded),
                        (None, None) => ProductionMse::Unknown,
                    };
                    Production {
                        version: info.version.version,
                        mse,
                    }
                })
        } else {
            None
        };

        let decision = decide(mse, test_rows, policy, production.as_ref());
        ctx.set_tag("decision", if decision.deploy { "deploy" } else { "skip" });
        ctx.set_tag("reason", &decision.reason);
        tracing::info!(deploy = decision.deploy, reason = %decision.reason, "deployment decision");
        let json = serde_json::to_value(&decision).expect("a decision serializes to JSON");
        Ok(StepOutputs::new().with("decision", Artifact::Json(json)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        max_mse: 1.8,
        min_test_rows: 200,
        require_improvement: true,
    };

    fn production(mse: ProductionMse) -> Production {
        Production { version: 3, mse }
    }

    #[test]
    fn above_threshold_is_skipped() {
        let d = decide(1.9, Some(800), POLICY, None);
        assert!(!d.deploy);
        assert!(d.reason.contains("above the threshold"), "{}", d.reason);
    }

    #[test]
    fn first_model_within_threshold_deploys() {
        let d = decide(1.7, Some(800), POLICY, None);
        assert!(d.deploy);
        assert!(
            d.reason.contains("no version is in production"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn too_few_test_rows_is_skipped() {
        // An excellent MSE from seven rows is noise.
        let d = decide(0.5, Some(7), POLICY, None);
        assert!(!d.deploy);
        assert!(d.reason.contains("only 7 test rows"), "{}", d.reason);
        assert!(d.reason.contains("min_test_rows = 200"), "{}", d.reason);
        // Metrics without a row count are judged on the MSE alone.
        assert!(decide(0.5, None, POLICY, None).deploy);
    }

    #[test]
    fn worse_on_same_rows_is_skipped() {
        let current = production(ProductionMse::SameTestRows(1.6));
        let d = decide(1.7, Some(800), POLICY, Some(&current));
        assert!(!d.deploy);
        assert!(
            d.reason
                .contains("worse than production version 3 on the same test rows"),
            "{}",
            d.reason
        );
        assert_eq!(d.production_mse, Some(1.6));
        assert_eq!(d.compared_on, Some("same_test_rows"));
    }

    #[test]
    fn equal_on_same_rows_deploys() {
        let current = production(ProductionMse::SameTestRows(1.7));
        assert!(decide(1.7, Some(800), POLICY, Some(&current)).deploy);
    }

    #[test]
    fn recorded_mse_is_named_as_such() {
        let current = production(ProductionMse::Recorded(1.6));
        let d = decide(1.7, Some(800), POLICY, Some(&current));
        assert!(!d.deploy);
        assert!(d.reason.contains("on its own test set"), "{}", d.reason);
        assert_eq!(d.compared_on, Some("recorded"));
        let current = production(ProductionMse::Recorded(1.75));
        assert!(decide(1.7, Some(800), POLICY, Some(&current)).deploy);
    }

    #[test]
    fn unscorable_production_is_skipped() {
        let current = production(ProductionMse::NotComparable(
            "missing feature column `seller_state`".into(),
        ));
        let d = decide(1.0, Some(800), POLICY, Some(&current));
        assert!(!d.deploy);
        assert!(d.reason.contains("seller_state"), "{}", d.reason);
        assert!(
            d.reason.contains("require_improvement=false"),
            "{}",
            d.reason
        );
        let relaxed = Policy {
            require_improvement: false,
            ..POLICY
        };
        assert!(decide(1.0, Some(800), relaxed, Some(&current)).deploy);
    }

    #[test]
    fn unknown_production_mse_deploys() {
        let current = production(ProductionMse::Unknown);
        assert!(decide(1.7, Some(800), POLICY, Some(&current)).deploy);
    }

    #[test]
    fn improvement_not_required_ignores_production() {
        let relaxed = Policy {
            require_improvement: false,
            ..POLICY
        };
        let current = production(ProductionMse::SameTestRows(1.0));
        assert!(decide(1.7, Some(800), relaxed, Some(&current)).deploy);
    }

    #[test]
    fn nan_mse_is_skipped() {
        let relaxed = Policy {
            require_improvement: false,
            ..POLICY
        };
        assert!(!decide(f64::NAN, Some(800), relaxed, None).deploy);
    }
}
