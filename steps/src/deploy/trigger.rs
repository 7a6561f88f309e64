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
//! Two MSEs are comparable only on the same rows, none of which either
//! model trained on. A production model trained and tested on other data
//! (another `data_dir`, seed or split) has an MSE of its own test set, and
//! may have trained on some of this run's test rows.
//!
//! So, when `x_test`, `y_test` and `model` are connected, the step drops
//! the test rows whose orders the production version trained on. It finds
//! them in the `y_train` of the run that registered that version. It then
//! scores both models on the rows left and compares the two MSEs there.
//! Sometimes the two cannot be compared: the production version's features
//! are missing from `x_test`, its file cannot be read, or fewer than
//! `min_test_rows` rows are left. Then the model is not deployed, and the
//! reason names the way to deploy anyway (`require_improvement=false`).
//! Without `x_test` and `y_test`, the step falls back to the MSE the
//! production version had when it was registered, and the reason states
//! that.
//!
//! The decision and its reason are recorded as the step's `decision` and
//! `reason` tags and returned as JSON. The step reads the registry and the
//! artifact store and never changes them. It is not cached, because the
//! production version changes outside any pipeline.

use super::{DEFAULT_MODEL_NAME, open_runs, registry_error};
use crate::evaluate::RegressionMetrics;
use crate::models::DecodedModel;
use crate::models::range::ParamRange;
use crate::train::{GROUP, target_column};
use flowrun_artifacts::store::{ArtifactStore, LocalStore};
use flowrun_artifacts::{Artifact, ArtifactKind, ColumnData, Table};
use flowrun_engine::predict::Predictor;
use flowrun_engine::runstore::{ModelVersionInfo, RunStore};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Step, StepContext, StepError, StepOutputs, StepSignature,
};
use serde::Serialize;
use std::collections::HashSet;

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
    /// Its MSE: on the compared rows when `compared_on` is
    /// `same_test_rows`, else as recorded when it was registered.
    pub production_mse: Option<f64>,
    /// The rows behind `production_mse`: `same_test_rows`, `recorded`, or
    /// unset when there is nothing to compare.
    pub compared_on: Option<&'static str>,
    /// With `same_test_rows`: how many test rows both models were scored
    /// on, and the candidate's MSE there.
    pub compared_rows: Option<usize>,
    /// The candidate's MSE on the compared rows.
    pub candidate_mse_on_compared_rows: Option<f64>,
}

/// Both models scored on the same test rows, none of which either trained
/// on.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The production version's MSE on the rows.
    pub production: f64,
    /// The candidate's MSE on the rows.
    pub candidate: f64,
    /// How many rows.
    pub rows: usize,
    /// How many of the candidate's test rows were left out because the
    /// production version trained on their orders.
    pub excluded: usize,
    /// Whether the production version's training orders were found. When
    /// not, no row could be left out.
    pub overlap_checked: bool,
}

/// The production version's error, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductionMse {
    /// Both models on the candidate's test rows it did not train on.
    SameTestRows(Comparison),
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
        Some(ProductionMse::SameTestRows(c)) => (Some(c.production), Some("same_test_rows")),
        Some(ProductionMse::Recorded(m)) => (Some(*m), Some("recorded")),
        _ => (None, None),
    };
    let compared = match production.map(|p| &p.mse) {
        Some(ProductionMse::SameTestRows(c)) => Some(c),
        _ => None,
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
        compared_rows: compared.map(|c| c.rows),
        candidate_mse_on_compared_rows: compared.map(|c| c.candidate),
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
                "production version {version} cannot be compared with the new model on this \
                 run's test rows ({why}); set require_improvement=false to deploy on max_mse \
                 alone"
            ),
        ),
        ProductionMse::SameTestRows(c) => {
            let rows = if c.excluded > 0 {
                format!(
                    "on the same {} test rows, leaving out the {} whose orders production \
                     trained on",
                    c.rows, c.excluded
                )
            } else if c.overlap_checked {
                format!("on the same {} test rows", c.rows)
            } else {
                format!(
                    "on the same {} test rows (the rows production trained on are no longer \
                     in the store, so none could be left out)",
                    c.rows
                )
            };
            let (candidate, current) = (c.candidate, c.production);
            if candidate > current {
                decision(
                    false,
                    format!(
                        "MSE {candidate:.4} is worse than production version {version}'s \
                         {current:.4} {rows}"
                    ),
                )
            } else {
                decision(
                    true,
                    format!(
                        "test MSE {mse:.4} is within max_mse = {max_mse}, and MSE {candidate:.4} \
                         is no worse than production version {version}'s {current:.4} {rows}"
                    ),
                )
            }
        }
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

/// This run's test part and the candidate's predictions for it.
struct TestSet<'a> {
    x: &'a Table,
    y: &'a [f64],
    /// The order of each row, when `y_test` has an `order_id` column.
    orders: Option<&'a [Option<String>]>,
    /// The candidate's predictions, when `model` is connected.
    candidate: Option<Vec<f64>>,
}

/// Returns the orders the production version trained on: the `order_id`
/// column of the `y_train` output of the run that registered it, read
/// through that step's cache entry. `None` when any link is gone.
fn training_orders(
    ctx: &StepContext<'_>,
    runs: &RunStore,
    info: &ModelVersionInfo,
) -> Option<HashSet<String>> {
    let run = runs.get_run(&info.version.run_id).ok()?;
    let store = LocalStore::open(ctx.store_dir()).ok()?;
    let step = run
        .steps
        .iter()
        .rev()
        .find(|s| s.outputs.iter().any(|o| o.output == "y_train"))?;
    let entry = store.get_entry(step.cache_key.as_deref()?).ok()??;
    let Artifact::Table(y_train) = store.get(entry.outputs.get("y_train")?).ok()? else {
        return None;
    };
    match &y_train.column(GROUP)?.data {
        ColumnData::Utf8(ids) => Some(ids.iter().flatten().cloned().collect()),
        _ => None,
    }
}

/// Scores the production version and the candidate on the test rows whose
/// orders the production version did not train on.
fn score_production(
    ctx: &StepContext<'_>,
    runs: &RunStore,
    info: &ModelVersionInfo,
    test: &TestSet<'_>,
    mse: f64,
    min_rows: u64,
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
    let predicted = match DecodedModel::decode(&model).map(|decoded| decoded.predict(test.x)) {
        Ok(Ok(predicted)) if predicted.len() == test.y.len() => predicted,
        Ok(Ok(predicted)) => {
            return not_comparable(format!(
                "it gave {} predictions for {} rows",
                predicted.len(),
                test.y.len()
            ));
        }
        Ok(Err(error)) => return not_comparable(error.to_string()),
        Err(error) => return not_comparable(format!("it cannot be decoded: {error}")),
    };

    let seen = test.orders.and_then(|_| training_orders(ctx, runs, info));
    let keep: Vec<bool> = match (test.orders, &seen) {
        (Some(orders), Some(seen)) => orders
            .iter()
            .map(|order| order.as_ref().is_none_or(|o| !seen.contains(o)))
            .collect(),
        _ => vec![true; test.y.len()],
    };
    let rows = keep.iter().filter(|&&k| k).count();
    let excluded = test.y.len() - rows;
    if (rows as u64) < min_rows {
        return not_comparable(format!(
            "it trained on the orders of {excluded} of this run's {} test rows, which leaves \
             {rows}, fewer than min_test_rows = {min_rows}",
            test.y.len()
        ));
    }
    let candidate = match (&test.candidate, excluded) {
        (Some(candidate), _) => candidate,
        // Without the candidate model, its MSE is known on all test rows
        // only, which is enough while none is left out.
        (None, 0) => &predicted,
        (None, _) => {
            return not_comparable(
                "it trained on some of this run's test rows, and without the `model` input \
                 the new model cannot be scored on the others; connect model to \
                 train_model.model"
                    .to_string(),
            );
        }
    };
    let subset = |values: &[f64]| -> Vec<f64> {
        values
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| *v)
            .collect()
    };
    let y = subset(test.y);
    // The baseline mean plays no part in the MSE.
    let production = RegressionMetrics::compute(&y, &subset(&predicted), 0.0).mse;
    let candidate = if test.candidate.is_some() {
        RegressionMetrics::compute(&y, &subset(candidate), 0.0).mse
    } else {
        mse
    };
    ProductionMse::SameTestRows(Comparison {
        production,
        candidate,
        rows,
        excluded,
        overlap_checked: seen.is_some(),
    })
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
        .optional_input(
            "model",
            ArtifactKind::Model,
            "the new model, to score it on the test rows the production version did not train on",
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
                let y_table = ctx.input_table("y_test")?;
                let orders = match y_table.column(GROUP).map(|c| &c.data) {
                    Some(ColumnData::Utf8(ids)) => Some(ids.as_slice()),
                    _ => None,
                };
                let candidate = match ctx.input("model") {
                    Some(_) => {
                        let model = ctx.input_model("model")?;
                        let decoded = DecodedModel::decode(model).map_err(|e| {
                            StepError::failed(format!("input `model` cannot be decoded: {e}"))
                        })?;
                        Some(decoded.predict(x_test).map_err(|e| {
                            StepError::failed(format!(
                                "cannot score x_test with input `model`: {e}"
                            ))
                        })?)
                    }
                    None => None,
                };
                Some(TestSet {
                    x: x_test,
                    y: y_test,
                    orders,
                    candidate,
                })
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
                    let known = match (&test_set, recorded) {
                        (Some(test), _) => {
                            score_production(ctx, &runs, &info, test, mse, policy.min_test_rows)
                        }
                        (None, Some(recorded)) => ProductionMse::Recorded(recorded),
                        (None, None) => ProductionMse::Unknown,
                    };
                    Production {
                        version: info.version.version,
                        mse: known,
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

    /// Both models on 800 shared rows, none left out.
    fn same_rows(production: f64, candidate: f64) -> ProductionMse {
        ProductionMse::SameTestRows(Comparison {
            production,
            candidate,
            rows: 800,
            excluded: 0,
            overlap_checked: true,
        })
    }

    #[test]
    fn above_threshold_is_skipped() {
        let decision = decide(1.9, Some(800), POLICY, None);
        assert!(!decision.deploy);
        assert!(
            decision.reason.contains("above the threshold"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn first_model_within_threshold_deploys() {
        let decision = decide(1.7, Some(800), POLICY, None);
        assert!(decision.deploy);
        assert!(
            decision.reason.contains("no version is in production"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn too_few_test_rows_is_skipped() {
        // An excellent MSE from seven rows is noise.
        let decision = decide(0.5, Some(7), POLICY, None);
        assert!(!decision.deploy);
        assert!(
            decision.reason.contains("only 7 test rows"),
            "{}",
            decision.reason
        );
        assert!(
            decision.reason.contains("min_test_rows = 200"),
            "{}",
            decision.reason
        );
        // Metrics without a row count are judged on the MSE alone.
        assert!(decide(0.5, None, POLICY, None).deploy);
    }

    #[test]
    fn worse_on_same_rows_is_skipped() {
        let current = production(same_rows(1.6, 1.7));
        let decision = decide(1.7, Some(800), POLICY, Some(&current));
        assert!(!decision.deploy);
        assert!(
            decision
                .reason
                .contains("worse than production version 3's 1.6000 on the same 800 test rows"),
            "{}",
            decision.reason
        );
        assert_eq!(decision.production_mse, Some(1.6));
        assert_eq!(decision.compared_on, Some("same_test_rows"));
        assert_eq!(decision.compared_rows, Some(800));
    }

    #[test]
    fn equal_on_same_rows_deploys() {
        let current = production(same_rows(1.7, 1.7));
        assert!(decide(1.7, Some(800), POLICY, Some(&current)).deploy);
    }

    #[test]
    fn comparison_leaves_out_production_training_rows() {
        // The candidate's full test MSE is worse than production's on the
        // shared rows, but on the 500 rows neither trained on it is better.
        let current = production(ProductionMse::SameTestRows(Comparison {
            production: 1.9,
            candidate: 1.7,
            rows: 500,
            excluded: 300,
            overlap_checked: true,
        }));
        let decision = decide(
            2.0,
            Some(800),
            Policy {
                max_mse: 2.5,
                ..POLICY
            },
            Some(&current),
        );
        assert!(decision.deploy, "{}", decision.reason);
        assert!(
            decision
                .reason
                .contains("leaving out the 300 whose orders production trained on"),
            "{}",
            decision.reason
        );
        assert_eq!(decision.candidate_mse_on_compared_rows, Some(1.7));
    }

    #[test]
    fn recorded_mse_is_named_as_such() {
        let current = production(ProductionMse::Recorded(1.6));
        let decision = decide(1.7, Some(800), POLICY, Some(&current));
        assert!(!decision.deploy);
        assert!(
            decision.reason.contains("on its own test set"),
            "{}",
            decision.reason
        );
        assert_eq!(decision.compared_on, Some("recorded"));
        let current = production(ProductionMse::Recorded(1.75));
        assert!(decide(1.7, Some(800), POLICY, Some(&current)).deploy);
    }

    #[test]
    fn unscorable_production_is_skipped() {
        let current = production(ProductionMse::NotComparable(
            "missing feature column `seller_state`".into(),
        ));
        let decision = decide(1.0, Some(800), POLICY, Some(&current));
        assert!(!decision.deploy);
        assert!(
            decision.reason.contains("seller_state"),
            "{}",
            decision.reason
        );
        assert!(
            decision.reason.contains("require_improvement=false"),
            "{}",
            decision.reason
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
        let current = production(same_rows(1.0, 1.7));
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
