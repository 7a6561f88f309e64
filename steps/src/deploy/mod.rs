//! The deployment and batch-inference steps: `deployment_trigger` decides
//! from the evaluation metrics whether a model goes to production,
//! `model_deployer` registers it and makes the store's server serve it, and
//! `batch_inference` sends a batch of orders to the running server.
//!
//! These steps have side effects (the registry, the server process), so
//! none of them is cached. The registry, the server and its daemon belong
//! to the engine (`flowrun_engine::server`, `flowrun_engine::runstore`);
//! these steps only call them, and never open SQLite or bind a port
//! themselves.

pub mod deployer;
pub mod inference;
pub mod trigger;

use crate::models::range::ParamRange;
use flowrun_engine::runstore::{RunStore, RunStoreError};
use flowrun_engine::{Registry, StepContext, StepError};

/// The range of every `port` parameter: a TCP port, where 0 has a meaning
/// of its own in each step.
pub const PORT: ParamRange = ParamRange::int("port", 0, 65_535);

/// The largest batch size, in rows, that `max_rows` and `chunk_rows`
/// accept. A request of that many rows is already hundreds of megabytes of
/// JSON.
pub const MAX_BATCH_ROWS: i64 = 10_000_000;

/// The registered model the steps use by default.
pub const DEFAULT_MODEL_NAME: &str = flowrun_engine::server::DEFAULT_MODEL;

/// Registers `deployment_trigger`, `model_deployer` and `batch_inference`.
pub fn register(registry: &mut Registry) {
    registry.register(
        trigger::DeploymentTrigger::new(),
        flowrun_engine::code_fingerprint!(),
    );
    registry.register(
        deployer::ModelDeployer::new(),
        flowrun_engine::code_fingerprint!(),
    );
    registry.register(
        inference::BatchInference::new(),
        flowrun_engine::code_fingerprint!(),
    );
}

/// Opens the run store of the step's store folder.
fn open_runs(ctx: &StepContext<'_>) -> Result<RunStore, StepError> {
    let path = ctx
        .store_dir()
        .join(flowrun_engine::runstore::DEFAULT_FILE_NAME);
    RunStore::open(&path).map_err(|e| registry_error(ctx, e))
}

fn registry_error(ctx: &StepContext<'_>, error: RunStoreError) -> StepError {
    StepError::failed(format!(
        "step `{}` failed to use the model registry: {error}",
        ctx.step_id()
    ))
}
