//! The `deployment_trigger` step: decides from a model's evaluation metrics
//! whether it goes to production.
//!
//! A model is deployed when its test MSE is finite and at most `max_mse`,
//! and, with `require_improvement` (the default), no worse than the MSE the
//! current production version had when it was registered. A model with no
//! production version to compare against passes that second test. The
//! decision and its reason are recorded as the step's `decision` and
//! `reason` tags and returned as JSON.
//!
//! The step reads the registry and never changes it. It is not cached,
//! because the production version changes outside any pipeline.

use super::{DEFAULT_MODEL_NAME, open_runs, registry_error};
use crate::models::range::ParamRange;
use flowrun_artifacts::{Artifact, ArtifactKind};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Step, StepContext, StepError, StepOutputs, StepSignature,
};
use serde::Serialize;

/// The range of `max_mse`. It rejects NaN and negative thresholds. The
/// upper bound lies far above the MSE of any useful model of review scores
/// (1 to 5), so it only catches typos.
pub const MAX_MSE: ParamRange = ParamRange::float("max_mse", 0.0, 1e9);

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
    /// The production version compared against, if any.
    pub production_version: Option<i64>,
    /// Its MSE when registered, if known.
    pub production_mse: Option<f64>,
}

/// The production version a candidate is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Production {
    /// Its version number.
    pub version: i64,
    /// Its MSE, when its metrics have one.
    pub mse: Option<f64>,
}

/// Decides whether a model with test MSE `mse` is deployed.
pub fn decide(
    mse: f64,
    max_mse: f64,
    require_improvement: bool,
    production: Option<Production>,
) -> Decision {
    let decision = |deploy: bool, reason: String| Decision {
        deploy,
        reason,
        mse,
        max_mse,
        production_version: production.map(|p| p.version),
        production_mse: production.and_then(|p| p.mse),
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
    if !require_improvement {
        return decision(
            true,
            format!("test MSE {mse:.4} is within max_mse = {max_mse}; improvement not required"),
        );
    }
    match production {
        None => decision(
            true,
            format!(
                "test MSE {mse:.4} is within max_mse = {max_mse} and no version is in production"
            ),
        ),
        Some(Production { version, mse: None }) => decision(
            true,
            format!(
                "test MSE {mse:.4} is within max_mse = {max_mse}; production version {version} \
                 has no recorded MSE to compare with"
            ),
        ),
        Some(Production {
            version,
            mse: Some(current),
        }) if mse > current => decision(
            false,
            format!("test MSE {mse:.4} is worse than production version {version} ({current:.4})"),
        ),
        Some(Production {
            version,
            mse: Some(current),
        }) => decision(
            true,
            format!(
                "test MSE {mse:.4} is within max_mse = {max_mse} and no worse than production \
                 version {version} ({current:.4})"
            ),
        ),
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
            "evaluation metrics with a numeric `mse`",
        )
        .output(
            "decision",
            ArtifactKind::Json,
            "`deploy` (bool), `reason` and the MSE values compared",
        )
        .param(MAX_MSE.required("deploy only models whose test MSE is at most this"))
        .param(ParamSpec::optional(
            "require_improvement",
            ParamType::Bool,
            ParamValue::Bool(true),
            "also require an MSE no worse than the production version's",
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
        let max_mse = MAX_MSE.read_f64(ctx)?;
        let require_improvement = ctx.param_bool("require_improvement")?;
        let model_name = ctx.param_str("model_name")?;

        let production = if require_improvement {
            let runs = open_runs(ctx)?;
            runs.production_version(model_name)
                .map_err(|e| registry_error(ctx, e))?
                .map(|p| Production {
                    version: p.version,
                    mse: p.metrics.get("mse").and_then(|m| m.as_f64()),
                })
        } else {
            None
        };

        let decision = decide(mse, max_mse, require_improvement, production);
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

    #[test]
    fn above_threshold_is_skipped() {
        let d = decide(1.9, 1.8, true, None);
        assert!(!d.deploy);
        assert!(d.reason.contains("above the threshold"), "{}", d.reason);
    }

    #[test]
    fn first_model_within_threshold_deploys() {
        let d = decide(1.7, 1.8, true, None);
        assert!(d.deploy);
        assert!(
            d.reason.contains("no version is in production"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn worse_than_production_is_skipped() {
        let production = Some(Production {
            version: 3,
            mse: Some(1.6),
        });
        let d = decide(1.7, 1.8, true, production);
        assert!(!d.deploy);
        assert!(
            d.reason.contains("worse than production version 3"),
            "{}",
            d.reason
        );
        assert_eq!(d.production_mse, Some(1.6));
    }

    #[test]
    fn equal_to_production_deploys() {
        let production = Some(Production {
            version: 3,
            mse: Some(1.7),
        });
        assert!(decide(1.7, 1.8, true, production).deploy);
    }

    #[test]
    fn improvement_not_required_ignores_production() {
        let production = Some(Production {
            version: 3,
            mse: Some(1.0),
        });
        assert!(decide(1.7, 1.8, false, production).deploy);
    }

    #[test]
    fn nan_mse_is_skipped() {
        assert!(!decide(f64::NAN, 1.8, false, None).deploy);
    }
}
