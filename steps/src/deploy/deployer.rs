//! The `model_deployer` step: registers the trained model as a new version
//! of a registered model and, when the trigger decides so, promotes it to
//! production and makes the store's server serve it.
//!
//! Registration links the version to this run, this step run, the
//! evaluation metrics, the run's parameters and the model artifact (with
//! the file's size and digest, which a server needs to read it). Promotion
//! goes through `flowrun_engine::server::deploy::promote`: a running server
//! gets a reload request, a stopped one is started as a daemon, and a version
//! the server cannot load is taken out of production again while the old
//! version keeps serving; the step then fails with the reason.
//!
//! The step is not cached: each run registers a version, and the server's
//! state changes outside any pipeline. It never loads the model or binds a
//! port itself; the server does both.

use super::{DEFAULT_MODEL_NAME, MAX_BATCH_ROWS, PORT, open_runs, registry_error};
use crate::models::range::ParamRange;
use flowrun_artifacts::store::{ArtifactStore, LocalStore};
use flowrun_artifacts::{Artifact, ArtifactKind};
use flowrun_engine::runstore::{NewModelVersion, RunStore, StepStatus};
use flowrun_engine::server::deploy::{self, ServerPolicy, ServerReport};
use flowrun_engine::server::{
    DEFAULT_MAX_ROWS, DEFAULT_PORT, ServeConfig, ServerFiles, ServerStatus,
};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Step, StepContext, StepError, StepOutputs, StepSignature,
};
use serde_json::json;

/// The range of `max_rows`.
pub const MAX_ROWS: ParamRange = ParamRange::int("max_rows", 1, MAX_BATCH_ROWS);

/// The `model_deployer` step.
pub struct ModelDeployer {
    signature: StepSignature,
}

impl Default for ModelDeployer {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelDeployer {
    /// Creates the step with its signature.
    pub fn new() -> Self {
        let signature = StepSignature::new(
            "model_deployer",
            "register the model as a new version and, if the trigger says deploy, serve it",
        )
        .input("model", ArtifactKind::Model, "the trained model")
        .input("metrics", ArtifactKind::Json, "its evaluation metrics")
        .input(
            "decision",
            ArtifactKind::Json,
            "the deployment_trigger decision: `deploy` and `reason`",
        )
        .output(
            "deployment",
            ArtifactKind::Json,
            "the registered version, whether it was deployed, and the server's state",
        )
        .param(ParamSpec::optional(
            "model_name",
            ParamType::String,
            ParamValue::String(DEFAULT_MODEL_NAME.to_string()),
            "registered model the version belongs to",
        ))
        .param(ParamSpec::optional(
            "host",
            ParamType::String,
            ParamValue::String("127.0.0.1".to_string()),
            "address a server started by this step listens on",
        ))
        .param(PORT.optional(
            ParamValue::Int(i64::from(DEFAULT_PORT)),
            "port a server started by this step listens on; 0 picks a free one",
        ))
        .param(MAX_ROWS.optional(
            ParamValue::Int(DEFAULT_MAX_ROWS as i64),
            "largest batch, in rows, a server started by this step accepts",
        ))
        .not_cacheable();
        ModelDeployer { signature }
    }
}

impl Step for ModelDeployer {
    fn signature(&self) -> &StepSignature {
        &self.signature
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        let decision = ctx.input_json("decision")?;
        let deploy = decision.get("deploy").and_then(|d| d.as_bool()).ok_or_else(|| {
            StepError::failed("input `decision` has no boolean `deploy`; connect it to deployment_trigger.decision")
        })?;
        let reason = decision
            .get("reason")
            .and_then(|r| r.as_str())
            .unwrap_or("deployment_trigger decided to deploy");
        let model_name = ctx.param_str("model_name")?;
        let model = ctx.input_model("model")?;
        let metrics = ctx.input_json("metrics")?;

        // The store keeps the existing file when the model is already there,
        // so this only returns its reference (size and digest).
        let artifacts = LocalStore::open(ctx.store_dir())?;
        let reference = artifacts.put(&Artifact::Model(model.clone()), "model_deployer")?;

        let runs = open_runs(ctx)?;
        let (step_run_id, params) = own_step_run(&runs, ctx)?;
        let version = runs
            .register_served_version(&NewModelVersion {
                model: model_name,
                artifact: &reference,
                flavor: &model.flavor,
                run_id: ctx.run_id(),
                step_run_id,
                metrics,
                params: &params,
            })
            .map_err(|e| registry_error(ctx, e))?;
        ctx.log_metric("model_version", version as f64);
        ctx.set_tag("model_version", &format!("{model_name}/{version}"));

        if !deploy {
            ctx.set_tag("deployed", "false");
            let server = match ServerFiles::new(ctx.store_dir()).status() {
                Ok(ServerStatus::Running(info)) => format!(
                    "the server at http://{}:{} keeps serving the production version",
                    info.host, info.port
                ),
                Ok(ServerStatus::Starting) => "a server for this store is starting".to_string(),
                _ => "no server is running for this store; start one with \
                      `flowrun serve --daemon` to serve the production version"
                    .to_string(),
            };
            ctx.set_tag(
                "summary",
                &format!(
                    "{model_name} version {version} registered, not deployed: {reason}; {server}"
                ),
            );
            tracing::info!(
                model = model_name,
                version,
                reason,
                "registered, not deployed"
            );
            let output = json!({
                "model": model_name,
                "version": version,
                "deployed": false,
                "reason": reason,
            });
            return Ok(StepOutputs::new().with("deployment", Artifact::Json(output)));
        }

        let policy = ServerPolicy::StartIfDown {
            exe: std::env::current_exe().map_err(|e| {
                StepError::failed(format!(
                    "failed to find the flowrun executable to start the server: {e}"
                ))
            })?,
            config: serve_config(ctx)?,
        };
        let outcome = deploy::promote(ctx.store_dir(), &runs, model_name, version, reason, &policy)
            .map_err(|e| {
                StepError::failed(format!(
                    "deploying {model_name} version {version} failed: {e}"
                ))
            })?;

        ctx.set_tag("deployed", "true");
        if let ServerReport::Serving { pid, port, .. } = &outcome.server {
            ctx.set_tag("server", &format!("pid {pid}, port {port}"));
        }
        let server = match &outcome.server {
            ServerReport::Serving {
                pid, port, started, ..
            } => {
                let host = ctx.param_str("host")?;
                let action = if *started {
                    "started the server"
                } else {
                    "the running server swapped it in"
                };
                format!("{action}: http://{host}:{port} (pid {pid})")
            }
            ServerReport::NotRunning => "no server is running for this store".to_string(),
            ServerReport::NotNotified { reason } => {
                format!("the server did not answer ({reason}) and loads it at its next check")
            }
        };
        ctx.set_tag(
            "summary",
            &format!("{model_name} version {version} deployed to production: {reason}; {server}"),
        );
        tracing::info!(model = model_name, version, server = ?outcome.server, "deployed");
        let output = json!({
            "model": model_name,
            "version": version,
            "deployed": true,
            "reason": reason,
            "previous_version": outcome.previous,
            "server": outcome.server,
        });
        Ok(StepOutputs::new().with("deployment", Artifact::Json(output)))
    }
}

/// Finds this step's own step run in the run store, and the run's
/// parameters as a JSON object.
fn own_step_run(
    runs: &RunStore,
    ctx: &StepContext<'_>,
) -> Result<(i64, serde_json::Value), StepError> {
    let run = runs
        .get_run(ctx.run_id())
        .map_err(|e| registry_error(ctx, e))?;
    let step = run
        .steps
        .iter()
        .rev()
        .find(|s| s.step_id == ctx.step_id() && s.status == StepStatus::Running)
        .ok_or_else(|| {
            StepError::failed(format!(
                "run {} has no running step `{}` to link the model version to; model_deployer \
                 must run inside a pipeline run",
                ctx.run_id(),
                ctx.step_id()
            ))
        })?;
    let params: serde_json::Map<String, serde_json::Value> = run
        .params
        .iter()
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect();
    Ok((step.id, serde_json::Value::Object(params)))
}

fn serve_config(ctx: &StepContext<'_>) -> Result<ServeConfig, StepError> {
    let mut config = ServeConfig::new(ctx.store_dir().to_path_buf());
    config.model = ctx.param_str("model_name")?.to_string();
    config.host = ctx.param_str("host")?.to_string();
    config.port = PORT.read_int(ctx)?;
    config.max_rows = MAX_ROWS.read_usize(ctx)?;
    Ok(config)
}
