//! Promoting a model version to production and making the store's server
//! serve it, shared by the `model_deployer` step and `flowrun models
//! promote` / `rollback`.
//!
//! A promotion runs under the store's deployment lock, so concurrent
//! deployments take turns and each one's promote, reload and possible undo
//! happen together:
//!
//! 1. Record the production version before the change.
//! 2. Move the version to production (the registry archives the old one).
//! 3. Make the server follow. A running server gets a reload request. Without
//!    a server, the policy decides whether one is started as a daemon.
//! 4. If the server cannot load the version, or cannot be started, undo:
//!    the version returns to its former stage and the former production
//!    version to production, each with the reason. The server kept serving
//!    the former version, because a failed load swaps nothing in.
//!
//! A server that runs but does not respond is not an error: the promotion
//! stays and the server picks it up at its next registry poll.
//!
//! This module never loads a model itself; the server does.

use super::client::{Client, ClientError};
use super::daemon::{self, DaemonError, ServerFiles, ServerInfo, ServerStatus};
use super::{ServeConfig, ServeError};
use crate::runstore::{RunStore, RunStoreError, Stage};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The action taken when no server runs for the store.
#[derive(Debug, Clone)]
pub enum ServerPolicy {
    /// Change the registry only; a server started later serves the version.
    NotifyIfRunning,
    /// Start a daemon of `exe` (a flowrun command-line binary) with
    /// `config`. The deploy step uses this policy, and the errors it leads
    /// to give fixes in terms of the deployment pipeline's parameters.
    StartIfDown {
        /// The flowrun binary.
        exe: PathBuf,
        /// The daemon's settings.
        config: ServeConfig,
    },
}

/// The server's state after a promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServerReport {
    /// The server serves `version`.
    Serving {
        /// The server's pid.
        pid: u32,
        /// Its port.
        port: u16,
        /// The version it serves.
        version: i64,
        /// Whether this promotion started it.
        started: bool,
    },
    /// No server runs, and the policy did not start one.
    NotRunning,
    /// A server runs but did not respond, so it follows at its next poll.
    NotNotified {
        /// The reason the notification failed.
        reason: String,
    },
}

/// The result of a successful promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromoteOutcome {
    /// The model name.
    pub model: String,
    /// The version now in production.
    pub version: i64,
    /// The version in production before, if any.
    pub previous: Option<i64>,
    /// The server after the change.
    pub server: ServerReport,
}

/// Errors from a promotion.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The registry cannot be read or changed.
    #[error(transparent)]
    Registry(#[from] RunStoreError),

    /// The server files cannot be used.
    #[error(transparent)]
    Files(#[from] ServeError),

    /// The server failed to load the version; the promotion was undone.
    #[error(
        "the server could not load the new version: {reason}; the promotion was undone{}",
        restored_note(*restored)
    )]
    LoadFailed {
        /// The model.
        model: String,
        /// The version that failed.
        version: i64,
        /// The server's load error.
        reason: String,
        /// The version back in production, if any.
        restored: Option<i64>,
    },

    /// The server could not be started; the promotion was undone. Only
    /// the deploy step starts servers, so the message's fix for a port in
    /// use names the deployment pipeline's `port` parameter.
    #[error(
        "{source}; the promotion was undone{}{}",
        restored_note(*restored),
        start_fix(source)
    )]
    Start {
        /// The model.
        model: String,
        /// The version.
        version: i64,
        /// The version back in production, if any.
        restored: Option<i64>,
        /// The daemon error.
        #[source]
        source: Box<DaemonError>,
    },

    /// A rollback found no earlier production version.
    #[error(
        "model `{0}` has no earlier production version to roll back to; see `flowrun models` for its versions"
    )]
    NothingToRollBack(String),
}

fn start_fix(source: &DaemonError) -> &'static str {
    match source {
        DaemonError::PortInUse { .. } => {
            ". Stop the process that uses the port, or choose another port with `--set port=N` \
             or the `port` parameter of pipelines/deployment.yaml"
        }
        _ => "",
    }
}

fn restored_note(restored: Option<i64>) -> String {
    match restored {
        Some(version) => format!(" and version {version} is in production again"),
        None => " and the model has no production version".to_string(),
    }
}

/// The reason the server did not follow a promotion.
enum FollowError {
    Load(String),
    Start(DaemonError),
}

/// Promotes `version` of `model` to production and makes the server follow
/// it, as the module documentation describes.
pub fn promote(
    store_dir: &Path,
    runs: &RunStore,
    model: &str,
    version: i64,
    reason: &str,
    policy: &ServerPolicy,
) -> Result<PromoteOutcome, DeployError> {
    let files = ServerFiles::new(store_dir);
    let _deploying = files.lock_deployments()?;

    let former_stage = runs.model_version_info(model, version)?.version.stage;
    let previous = runs.production_version(model)?.map(|v| v.version);
    runs.set_stage(model, version, Stage::Production, reason)?;

    let failure = match follow(&files, policy, model) {
        Ok(server) => {
            return Ok(PromoteOutcome {
                model: model.to_string(),
                version,
                previous,
                server,
            });
        }
        Err(failure) => failure,
    };

    let cause = match &failure {
        FollowError::Load(reason) => format!("the server failed to load it: {reason}"),
        FollowError::Start(error) => error.to_string(),
    };
    let restored = undo(runs, model, version, former_stage, previous, &cause)?;
    Err(match failure {
        FollowError::Load(reason) => DeployError::LoadFailed {
            model: model.to_string(),
            version,
            reason,
            restored,
        },
        FollowError::Start(source) => DeployError::Start {
            model: model.to_string(),
            version,
            restored,
            source: Box::new(source),
        },
    })
}

/// Promotes the version that was in production before the current one.
pub fn rollback(
    store_dir: &Path,
    runs: &RunStore,
    model: &str,
    reason: &str,
    policy: &ServerPolicy,
) -> Result<PromoteOutcome, DeployError> {
    let target = runs
        .previous_production_version(model)?
        .ok_or_else(|| DeployError::NothingToRollBack(model.to_string()))?;
    promote(store_dir, runs, model, target, reason, policy)
}

/// Puts `version` back in `former_stage` and `previous` back in production.
/// Returns the version in production afterwards.
fn undo(
    runs: &RunStore,
    model: &str,
    version: i64,
    former_stage: Stage,
    previous: Option<i64>,
    cause: &str,
) -> Result<Option<i64>, RunStoreError> {
    if previous == Some(version) {
        // It was in production before this promotion; nothing to undo.
        return Ok(previous);
    }
    tracing::warn!(model, version, cause, "undoing the promotion");
    runs.set_stage(
        model,
        version,
        former_stage,
        &format!("promotion undone: {cause}"),
    )?;
    if let Some(previous) = previous {
        runs.set_stage(
            model,
            previous,
            Stage::Production,
            &format!("restored: version {version} could not be served"),
        )?;
    }
    Ok(previous)
}

/// Makes the store's server serve the production version of `model`.
fn follow(
    files: &ServerFiles,
    policy: &ServerPolicy,
    model: &str,
) -> Result<ServerReport, FollowError> {
    let status = wait_while_starting(files);
    let (info, started) = match status {
        Ok(ServerStatus::Running(info)) => (info, false),
        Ok(ServerStatus::Stopped { .. }) => match policy {
            ServerPolicy::NotifyIfRunning => return Ok(ServerReport::NotRunning),
            ServerPolicy::StartIfDown { exe, config } => {
                match daemon::start(exe, config, Duration::from_secs(60)) {
                    Ok(info) => (info, true),
                    Err(DaemonError::AlreadyRunning(info)) => (info, false),
                    Err(error) => return Err(FollowError::Start(error)),
                }
            }
        },
        Ok(ServerStatus::Starting) => {
            return Ok(ServerReport::NotNotified {
                reason: "the server is still starting".to_string(),
            });
        }
        Err(error) => {
            return Ok(ServerReport::NotNotified {
                reason: error.to_string(),
            });
        }
    };
    reload(&info, started, model)
}

/// Sends the server a reload request and reads the response.
fn reload(info: &ServerInfo, started: bool, model: &str) -> Result<ServerReport, FollowError> {
    if info.model != model {
        return Ok(ServerReport::NotNotified {
            reason: format!(
                "the store's server (pid {}) serves model `{}`, not `{model}`",
                info.pid, info.model
            ),
        });
    }
    match Client::for_server(info).reload() {
        Ok(outcome) => Ok(ServerReport::Serving {
            pid: info.pid,
            port: info.port,
            version: outcome.version,
            started,
        }),
        Err(ClientError::Status { message, .. }) => Err(FollowError::Load(message)),
        Err(error) => {
            tracing::warn!(%error, "failed to notify the server; it follows the registry at its next poll");
            Ok(ServerReport::NotNotified {
                reason: error.to_string(),
            })
        }
    }
}

/// Returns the server status, waiting up to ten seconds for a server that
/// is starting to write its state file.
fn wait_while_starting(files: &ServerFiles) -> Result<ServerStatus, ServeError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = files.status()?;
        if status != ServerStatus::Starting || Instant::now() >= deadline {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
