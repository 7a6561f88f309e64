//! The server's state: the model being served and how it is replaced.
//!
//! The served model lives in an [`ArcSwapOption`]. A request loads the
//! current `Arc<LoadedModel>` once and uses it to the end, so a swap never
//! changes the model under a request. Requests in flight finish on the old
//! model, later ones get the new one, and no request waits for a load.
//!
//! Loading reads the production version from the run store's registry,
//! reads its artifact from the artifact store (which checks the file's size
//! and digest) and decodes it once with [`Registry::load_predictor`]. Only a
//! fully decoded model is swapped in, so a version that fails to load leaves
//! the previous one serving. Loads are serialized by a mutex that is only
//! taken on blocking threads, never across an `.await`.
//!
//! The last failed load is kept as a [`LoadFailure`] until a load succeeds
//! or the registry moves on to another production version, so that the
//! routes can tell clients why no model, or an older version, is served.
//!
//! This module never writes to the registry: promotions and their undoing
//! belong to [`super::deploy`].

use crate::predict::Predictor;
use crate::registry::Registry;
use crate::runstore::{ModelVersionInfo, RunStore, RunStoreError};
use arc_swap::ArcSwapOption;
use flowrun_artifacts::store::{ArtifactStore, LocalStore};
use flowrun_artifacts::{Artifact, ArtifactError, FeatureSpec};
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// A model version decoded and ready to score.
pub struct LoadedModel {
    /// The registered model name.
    pub name: String,
    /// The version number.
    pub version: i64,
    /// The model flavor.
    pub flavor: String,
    /// The predicted column.
    pub target: String,
    /// The features in training order.
    pub features: Vec<FeatureSpec>,
    /// The registry entry it was loaded from.
    pub info: ModelVersionInfo,
    /// The decoded model.
    pub predictor: Box<dyn Predictor>,
    /// `name/version`, ready to send as a response header.
    pub header: HeaderValue,
    /// When it was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// The artifact's `Model.info`: hyperparameters, training statistics
    /// (`feature_stats`) and feature documentation (`feature_docs`), which
    /// the web pages read.
    pub model_info: serde_json::Value,
}

impl LoadedModel {
    /// Returns `name/version`, as the version header and logs show it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.name, self.version)
    }
}

/// The failure to load a model version.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The registry has no production version of the model.
    #[error(
        "model `{0}` has no production version; promote one with `flowrun models promote {0} VERSION production`"
    )]
    NoProductionVersion(String),

    /// The version was registered without the artifact's size and digest.
    #[error(
        "model `{model}` version {version} was registered without its artifact's size and digest, so it cannot be served; register it again by running the deployment pipeline"
    )]
    NoArtifactRef {
        /// The model.
        model: String,
        /// The version.
        version: i64,
    },

    /// The registry cannot be read.
    #[error("failed to read the model registry: {0}")]
    Registry(#[from] RunStoreError),

    /// The artifact file is missing, damaged or undecodable.
    #[error("failed to read the artifact of model `{model}` version {version}: {source}")]
    Artifact {
        /// The model.
        model: String,
        /// The version.
        version: i64,
        /// The store's error.
        #[source]
        source: ArtifactError,
    },

    /// The artifact is not a model.
    #[error("the artifact of model `{model}` version {version} is a {kind}, not a model")]
    NotAModel {
        /// The model.
        model: String,
        /// The version.
        version: i64,
        /// The kind found.
        kind: flowrun_artifacts::ArtifactKind,
    },

    /// The flavor's loader rejected the model.
    #[error("failed to load model `{model}` version {version}: {source}")]
    Predictor {
        /// The model.
        model: String,
        /// The version.
        version: i64,
        /// The loader's error.
        #[source]
        source: crate::predict::PredictError,
    },
}

impl LoadError {
    /// Returns the version the error is about, if the registry named one.
    pub fn version(&self) -> Option<i64> {
        match self {
            LoadError::NoProductionVersion(_) | LoadError::Registry(_) => None,
            LoadError::NoArtifactRef { version, .. }
            | LoadError::Artifact { version, .. }
            | LoadError::NotAModel { version, .. }
            | LoadError::Predictor { version, .. } => Some(*version),
        }
    }

    /// Builds the message a client gets while this error keeps `model`
    /// from being served: what failed, why, and what to do.
    pub fn client_message(&self, model: &str) -> String {
        let promote = format!(
            "promote another version with `flowrun models promote {model} VERSION production`"
        );
        match self {
            LoadError::NoProductionVersion(_) | LoadError::NoArtifactRef { .. } => self.to_string(),
            LoadError::Registry(source) => format!(
                "failed to read the model registry: {source}. The server tries again at its \
                 next registry poll"
            ),
            LoadError::Artifact {
                version, source, ..
            } => {
                // The store's own message ends with "it will be recomputed",
                // which holds for a pipeline run but not for the server.
                let reason = match source {
                    ArtifactError::Corrupt { path, .. } => format!(
                        "its file {} is damaged: its bytes do not match the digest recorded when \
                         it was stored",
                        path.display()
                    ),
                    other => other.to_string(),
                };
                format!(
                    "production version {version} of model `{model}` could not be loaded: \
                     {reason}. Run the pipeline that trained it again to recreate the file, or \
                     {promote}"
                )
            }
            LoadError::NotAModel { version, kind, .. } => format!(
                "production version {version} of model `{model}` could not be loaded: its \
                 artifact is a {kind}, not a model. Register it again by running the deployment \
                 pipeline, or {promote}"
            ),
            LoadError::Predictor {
                version, source, ..
            } => format!(
                "production version {version} of model `{model}` could not be loaded: {source}. \
                 Serve it with a flowrun build that has this model flavor, or {promote}"
            ),
        }
    }
}

/// The last failed load of the production version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadFailure {
    /// The production version that failed, when the registry named one.
    pub version: Option<i64>,
    /// The client message of [`LoadError::client_message`]: what failed,
    /// why, and what to do.
    pub message: String,
    /// When the load failed (RFC 3339, UTC).
    pub failed_at: String,
}

/// The result of a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// The model name.
    pub model: String,
    /// The version now served.
    pub version: i64,
    /// Whether the served version changed.
    pub changed: bool,
    /// The version served before, if any.
    pub previous: Option<i64>,
}

/// Settings of a server's state.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// The registered model to serve.
    pub model: String,
    /// The largest batch `/invocations` accepts, in rows.
    pub max_rows: usize,
}

/// Everything the request handlers share.
pub struct ServerState {
    config: StateConfig,
    registry: Registry,
    runs: RunStore,
    artifacts: LocalStore,
    current: ArcSwapOption<LoadedModel>,
    /// The last failed load, read by the routes without taking a lock.
    last_failure: ArcSwapOption<LoadFailure>,
    /// Serializes loads; taken only on blocking threads.
    load_lock: Mutex<LoadMemory>,
    started: Instant,
    ignored_column_requests: AtomicU64,
    counts: RequestCounts,
}

/// Request counters since the last [`ServerState::take_counts`].
#[derive(Debug, Default)]
struct RequestCounts {
    total: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
}

/// Request counts over a period, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestTally {
    /// Every request.
    pub total: u64,
    /// Requests that got a 4xx status.
    pub client_errors: u64,
    /// Requests that got a 5xx status.
    pub server_errors: u64,
}

/// The last version that failed to load, so that polling reports a broken
/// version once instead of every few seconds.
#[derive(Default)]
struct LoadMemory {
    failed: Option<FailedVersion>,
}

/// A production version that failed to load, and the state of its artifact
/// file at the time. Polling retries the version when the file changes, for
/// example when a pipeline run rewrites a damaged file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FailedVersion {
    version: i64,
    artifact_hash: String,
    /// The file's size and modification time; `None` when it was missing.
    file: Option<(u64, SystemTime)>,
}

impl ServerState {
    /// Creates the state with no model loaded.
    pub fn new(
        config: StateConfig,
        registry: Registry,
        runs: RunStore,
        artifacts: LocalStore,
    ) -> Self {
        ServerState {
            config,
            registry,
            runs,
            artifacts,
            current: ArcSwapOption::empty(),
            last_failure: ArcSwapOption::empty(),
            load_lock: Mutex::new(LoadMemory::default()),
            started: Instant::now(),
            ignored_column_requests: AtomicU64::new(0),
            counts: RequestCounts::default(),
        }
    }

    /// Returns the settings.
    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// Returns the model being served, taken once: the caller keeps this
    /// `Arc` for the whole request.
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.current.load_full()
    }

    /// Returns the last failed load of the production version, until a
    /// load succeeds or another version is in production. While a model is
    /// served, a failure means an older version kept serving.
    pub fn last_load_failure(&self) -> Option<Arc<LoadFailure>> {
        self.last_failure.load_full()
    }

    /// Returns the run store, which the web pages read.
    pub fn runs(&self) -> &RunStore {
        &self.runs
    }

    /// Returns the artifact store, which the web pages read.
    pub fn artifacts(&self) -> &LocalStore {
        &self.artifacts
    }

    /// Returns how long the server has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts a handled request by its status.
    pub fn count_request(&self, status: u16) {
        let counts = &self.counts;
        counts.total.fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => counts.client_errors.fetch_add(1, Ordering::Relaxed),
            500..=599 => counts.server_errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// Returns the requests counted since the last call and resets the
    /// counts.
    pub fn take_counts(&self) -> RequestTally {
        let counts = &self.counts;
        RequestTally {
            total: counts.total.swap(0, Ordering::Relaxed),
            client_errors: counts.client_errors.swap(0, Ordering::Relaxed),
            server_errors: counts.server_errors.swap(0, Ordering::Relaxed),
        }
    }

    /// Counts a request that sent columns the model ignores and returns
    /// whether to log it: the first one and every thousandth after it.
    pub fn note_ignored_columns(&self) -> bool {
        let seen = self.ignored_column_requests.fetch_add(1, Ordering::Relaxed);
        seen.is_multiple_of(1000)
    }

    /// Loads the registry's production version unless it is already served.
    /// Blocks; call it from a blocking thread.
    ///
    /// On failure the served model is unchanged.
    pub fn reload(&self) -> Result<ReloadOutcome, LoadError> {
        let mut memory = self
            .load_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = self.reload_locked();
        match &result {
            Ok(_) => {
                memory.failed = None;
                self.last_failure.store(None);
            }
            Err(LoadError::NoProductionVersion(_)) => {
                memory.failed = None;
                self.last_failure.store(None);
            }
            Err(error) => {
                tracing::error!(model = %self.config.model, %error, "model load failed; the served model is unchanged");
                memory.failed = self.failed_version();
                self.last_failure.store(Some(Arc::new(LoadFailure {
                    version: error.version(),
                    message: error.client_message(&self.config.model),
                    failed_at: super::now_rfc3339(),
                })));
            }
        }
        result
    }

    /// Describes the registry's production version and its artifact file,
    /// as the load memory keeps a failed one.
    fn failed_version(&self) -> Option<FailedVersion> {
        let info = self
            .runs
            .production_version_info(&self.config.model)
            .ok()
            .flatten()?;
        let file = info.artifact_ref().and_then(|reference| {
            let metadata = std::fs::metadata(self.artifacts.path_of(&reference)).ok()?;
            Some((metadata.len(), metadata.modified().ok()?))
        });
        Some(FailedVersion {
            version: info.version.version,
            artifact_hash: info.version.artifact_hash,
            file,
        })
    }

    /// Forgets a load failure about a version that is no longer in
    /// production, such as a promotion that was undone.
    fn forget_stale_failure(&self, production: Option<i64>) {
        let stale = self
            .last_failure
            .load()
            .as_ref()
            .is_some_and(|failure| production.is_none() || failure.version != production);
        if stale {
            self.last_failure.store(None);
        }
    }

    /// Follows the registry: loads the production version when it differs
    /// from the served one. A version that failed before is retried only
    /// when the production version or its artifact file changes. Blocks.
    pub fn poll(&self) {
        // The load lock is held while reading the registry, so that a
        // failure stored by a concurrent reload is never judged against an
        // older production version.
        let memory = self
            .load_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let production = match self.runs.production_version(&self.config.model) {
            Ok(Some(version)) => version,
            Ok(None) => {
                self.forget_stale_failure(None);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "failed to read the model registry; will retry");
                return;
            }
        };
        self.forget_stale_failure(Some(production.version));
        if let Some(current) = self.current()
            && current.version == production.version
            && current.info.version.artifact_hash == production.artifact_hash
        {
            return;
        }

        let failed_before = memory.failed.as_ref().is_some_and(|failed| {
            failed.version == production.version && failed.artifact_hash == production.artifact_hash
        });
        if failed_before {
            // Only a version that failed before pays for the file check.
            if memory.failed == self.failed_version() {
                return;
            }
            tracing::info!(
                model = %self.config.model,
                version = production.version,
                "the artifact file of the production version changed since it failed to load; loading it again"
            );
        } else {
            tracing::info!(
                model = %self.config.model,
                version = production.version,
                "the registry's production version changed; loading it"
            );
        }
        drop(memory);
        let _ = self.reload();
    }

    fn reload_locked(&self) -> Result<ReloadOutcome, LoadError> {
        let model = &self.config.model;
        let info = self
            .runs
            .production_version_info(model)?
            .ok_or_else(|| LoadError::NoProductionVersion(model.clone()))?;
        let version = info.version.version;
        let previous = self.current();
        if let Some(current) = &previous
            && current.version == version
            && current.info.version.artifact_hash == info.version.artifact_hash
        {
            return Ok(ReloadOutcome {
                model: model.clone(),
                version,
                changed: false,
                previous: Some(version),
            });
        }

        let started = Instant::now();
        let loaded = self.load(info)?;
        tracing::info!(
            model = %loaded.name,
            version,
            flavor = %loaded.flavor,
            previous = previous.as_ref().map(|p| p.version),
            load_ms = started.elapsed().as_millis() as u64,
            "serving model version"
        );
        self.current.store(Some(Arc::new(loaded)));
        Ok(ReloadOutcome {
            model: model.clone(),
            version,
            changed: true,
            previous: previous.map(|p| p.version),
        })
    }

    /// Reads and decodes one version.
    fn load(&self, info: ModelVersionInfo) -> Result<LoadedModel, LoadError> {
        let name = info.version.model.clone();
        let version = info.version.version;
        let reference = info
            .artifact_ref()
            .ok_or_else(|| LoadError::NoArtifactRef {
                model: name.clone(),
                version,
            })?;
        let artifact = self
            .artifacts
            .get(&reference)
            .map_err(|source| LoadError::Artifact {
                model: name.clone(),
                version,
                source,
            })?;
        let model = match artifact {
            Artifact::Model(model) => model,
            other => {
                return Err(LoadError::NotAModel {
                    model: name,
                    version,
                    kind: other.kind(),
                });
            }
        };
        let predictor =
            self.registry
                .load_predictor(&model)
                .map_err(|source| LoadError::Predictor {
                    model: name.clone(),
                    version,
                    source,
                })?;
        let header = HeaderValue::from_str(&format!("{name}/{version}"))
            .unwrap_or_else(|_| HeaderValue::from_static("invalid-model-name"));
        Ok(LoadedModel {
            name,
            version,
            flavor: model.flavor,
            target: model.target,
            features: model.features,
            info,
            predictor,
            header,
            loaded_at: super::now_rfc3339(),
            model_info: model.info,
        })
    }
}
