//! The model registry: named models, their numbered versions, and the
//! history of every change of stage.
//!
//! At most one version of a model is in `production`, which a partial unique
//! index in the schema enforces. Promoting a version to production archives
//! the previous production version in the same transaction, so no reader
//! ever sees two production versions or none in between. This module never
//! reads or writes model artifacts. It stores their content hash and, for
//! versions registered with [`RunStore::register_served_version`], the
//! file's size and digest, which is what the artifact store needs to read
//! and check the file. It also records the model flavor and the run's
//! parameters.

use super::query::json_column;
use super::types::{ModelVersion, Stage, StageTransition};
use super::values::{format_timestamp, invalid_column, now};
use super::{RunStore, RunStoreError, SqliteContext};
use flowrun_artifacts::{ArtifactKind, ArtifactRef, ContentHash};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::Serialize;

/// The model version columns that [`version_from_row`] reads, in order.
const VERSION_COLUMNS: &str =
    "model, version, artifact_hash, run_id, step_run_id, created_at, metrics, stage";

/// [`VERSION_COLUMNS`] followed by the columns that [`info_from_row`] reads.
const INFO_COLUMNS: &str = "model, version, artifact_hash, run_id, step_run_id, created_at, \
                            metrics, stage, artifact_size, artifact_digest, flavor, params";

/// A model version to register with everything needed to serve it.
#[derive(Debug, Clone, Copy)]
pub struct NewModelVersion<'a> {
    /// The registered model name, created on first use.
    pub model: &'a str,
    /// The stored model artifact.
    pub artifact: &'a ArtifactRef,
    /// The model flavor, which names the loader that decodes it.
    pub flavor: &'a str,
    /// The run that registers the version.
    pub run_id: &'a str,
    /// The step run, of `run_id`, that registers the version.
    pub step_run_id: i64,
    /// The model's evaluation metrics.
    pub metrics: &'a serde_json::Value,
    /// The run's parameters, as a JSON object.
    pub params: &'a serde_json::Value,
}

/// A model version with its artifact reference, flavor and run parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersionInfo {
    /// The version as [`RunStore::list_models`] returns it.
    #[serde(flatten)]
    pub version: ModelVersion,
    /// The artifact file's size in bytes; `None` for versions registered
    /// without it, which cannot be served.
    pub artifact_size: Option<u64>,
    /// The blake3 digest of the artifact file; `None` like `artifact_size`.
    pub artifact_digest: Option<String>,
    /// The model flavor, when recorded.
    pub flavor: Option<String>,
    /// The parameters of the run that registered the version.
    pub params: serde_json::Value,
}

impl ModelVersionInfo {
    /// Returns the reference the artifact store reads the model with, or
    /// `None` when the version was registered without its size and digest
    /// or with an invalid hash.
    pub fn artifact_ref(&self) -> Option<ArtifactRef> {
        Some(ArtifactRef {
            hash: ContentHash::from_hex(&self.version.artifact_hash)?,
            kind: ArtifactKind::Model,
            size: self.artifact_size?,
            file_digest: self.artifact_digest.clone()?,
        })
    }
}

impl RunStore {
    /// Registers a new version of `model` (creating the model if needed) in
    /// stage `none`, and returns its version number: 1 for the first, then
    /// one more than the highest.
    pub fn register_model_version(
        &self,
        model: &str,
        artifact_hash: &str,
        run_id: &str,
        step_run_id: i64,
        metrics: &serde_json::Value,
    ) -> Result<i64, RunStoreError> {
        let action = || format!("registering a version of model `{model}`");
        self.write(action, |tx| {
            insert_version(tx, model, artifact_hash, run_id, step_run_id, metrics)
        })
    }

    /// Registers a new version like [`RunStore::register_model_version`],
    /// and keeps the artifact's size and digest, the flavor and the run's
    /// parameters with it, so that a server can load it. Both writes are one
    /// transaction.
    pub fn register_served_version(&self, new: &NewModelVersion<'_>) -> Result<i64, RunStoreError> {
        let model = new.model;
        let action = || format!("registering a version of model `{model}`");
        self.write(action, |tx| {
            let hash = new.artifact.hash.as_str();
            let size = i64::try_from(new.artifact.size).map_err(|_| {
                RunStoreError::Invalid(format!(
                    "artifact size {} does not fit a SQLite integer",
                    new.artifact.size
                ))
            })?;
            let version =
                insert_version(tx, model, hash, new.run_id, new.step_run_id, new.metrics)?;
            tx.execute(
                "UPDATE model_versions
                 SET artifact_size = ?3, artifact_digest = ?4, flavor = ?5, params = ?6
                 WHERE model = ?1 AND version = ?2",
                params![
                    model,
                    version,
                    size,
                    new.artifact.file_digest,
                    new.flavor,
                    new.params.to_string()
                ],
            )
            .context(action)?;
            Ok(version)
        })
    }

    /// Returns one version with its artifact reference, or
    /// [`RunStoreError::ModelVersionNotFound`].
    pub fn model_version_info(
        &self,
        model: &str,
        version: i64,
    ) -> Result<ModelVersionInfo, RunStoreError> {
        let action = || format!("reading model `{model}` version {version}");
        self.read(action, |tx| {
            let sql = format!(
                "SELECT {INFO_COLUMNS} FROM model_versions WHERE model = ?1 AND version = ?2"
            );
            tx.query_row(&sql, params![model, version], info_from_row)
                .optional()
                .context(action)?
                .ok_or_else(|| RunStoreError::ModelVersionNotFound {
                    model: model.to_string(),
                    version,
                })
        })
    }

    /// Returns the production version of `model` with its artifact
    /// reference, if it has one.
    pub fn production_version_info(
        &self,
        model: &str,
    ) -> Result<Option<ModelVersionInfo>, RunStoreError> {
        let action = || format!("looking up the production version of model `{model}`");
        self.read(action, |tx| {
            let sql = format!(
                "SELECT {INFO_COLUMNS} FROM model_versions
                 WHERE model = ?1 AND stage = 'production'"
            );
            tx.query_row(&sql, [model], info_from_row)
                .optional()
                .context(action)
        })
    }

    /// Lists every version of every model with its artifact reference, by
    /// model name then version.
    pub fn list_model_versions(&self) -> Result<Vec<ModelVersionInfo>, RunStoreError> {
        let action = || "listing registered models".to_string();
        self.read(action, |tx| {
            let sql = format!("SELECT {INFO_COLUMNS} FROM model_versions ORDER BY model, version");
            tx.prepare(&sql)
                .and_then(|mut stmt| stmt.query_map([], info_from_row)?.collect())
                .context(action)
        })
    }

    /// Returns the version that was in production before the current one:
    /// the latest version other than the current production version that
    /// was promoted to production before the current one's latest
    /// promotion. Without a current production version, it is the version
    /// promoted last. `None` when no such version exists.
    pub fn previous_production_version(&self, model: &str) -> Result<Option<i64>, RunStoreError> {
        let history = self.stage_history(model)?;
        let promoted: Vec<i64> = history
            .iter()
            .filter(|t| t.to_stage == Stage::Production)
            .map(|t| t.version)
            .collect();
        let current = self.production_version(model)?.map(|v| v.version);
        let Some(current) = current else {
            return Ok(promoted.last().copied());
        };
        let latest = promoted.iter().rposition(|&v| v == current);
        let before = &promoted[..latest.unwrap_or(0)];
        Ok(before.iter().rev().find(|&&v| v != current).copied())
    }
}

/// Inserts a new version row of `model`, creating the model if needed, and
/// returns its number. Checks that the step run belongs to the run.
fn insert_version(
    tx: &Transaction<'_>,
    model: &str,
    artifact_hash: &str,
    run_id: &str,
    step_run_id: i64,
    metrics: &serde_json::Value,
) -> Result<i64, RunStoreError> {
    let action = || format!("registering a version of model `{model}`");
    {
        let step_run: Option<String> = tx
            .query_row(
                "SELECT run_id FROM step_runs WHERE id = ?1",
                [step_run_id],
                |row| row.get(0),
            )
            .optional()
            .context(action)?;
        match step_run {
            None => return Err(RunStoreError::StepRunNotFound { id: step_run_id }),
            Some(actual) if actual != run_id => {
                return Err(RunStoreError::StepRunOfOtherRun {
                    step_run_id,
                    expected: run_id.to_string(),
                    actual,
                });
            }
            Some(_) => {}
        }

        let created_at = format_timestamp(now());
        tx.execute(
            "INSERT OR IGNORE INTO registered_models (name, created_at) VALUES (?1, ?2)",
            params![model, created_at],
        )
        .context(action)?;
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = ?1",
                [model],
                |row| row.get(0),
            )
            .context(action)?;
        tx.execute(
            "INSERT INTO model_versions
                     (model, version, artifact_hash, run_id, step_run_id, created_at, metrics)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                model,
                version,
                artifact_hash,
                run_id,
                step_run_id,
                created_at,
                metrics.to_string()
            ],
        )
        .context(action)?;

        tracing::info!(
            model,
            version,
            artifact_hash,
            run_id,
            "registered model version"
        );
        Ok(version)
    }
}

impl RunStore {
    /// Moves a model version to `stage` and records the transition with
    /// `reason` and the user (`$USER`, or `flowrun` when unset). Moving a
    /// version to `production` first archives the current production
    /// version, recording that transition too. Moving a version to the
    /// stage it already has changes nothing.
    pub fn set_stage(
        &self,
        model: &str,
        version: i64,
        stage: Stage,
        reason: &str,
    ) -> Result<(), RunStoreError> {
        let action = || format!("moving model `{model}` version {version} to {stage}");
        let by = current_user();
        self.write(action, |tx| {
            let from: Stage = tx
                .query_row(
                    "SELECT stage FROM model_versions WHERE model = ?1 AND version = ?2",
                    params![model, version],
                    |row| row.get(0),
                )
                .optional()
                .context(action)?
                .ok_or_else(|| RunStoreError::ModelVersionNotFound {
                    model: model.to_string(),
                    version,
                })?;
            if from == stage {
                tracing::debug!(model, version, %stage, "model version already in this stage");
                return Ok(());
            }

            if stage == Stage::Production {
                let current: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM model_versions
                         WHERE model = ?1 AND stage = 'production'",
                        [model],
                        |row| row.get(0),
                    )
                    .optional()
                    .context(action)?;
                if let Some(current) = current {
                    let reason = format!("replaced in production by version {version}");
                    change_stage(
                        tx,
                        model,
                        current,
                        Stage::Production,
                        Stage::Archived,
                        &by,
                        &reason,
                    )
                    .context(action)?;
                }
            }
            change_stage(tx, model, version, from, stage, &by, reason).context(action)?;

            tracing::info!(model, version, %from, to = %stage, by, reason, "changed model stage");
            Ok(())
        })
    }

    /// Returns the production version of `model`, if it has one.
    pub fn production_version(&self, model: &str) -> Result<Option<ModelVersion>, RunStoreError> {
        let action = || format!("looking up the production version of model `{model}`");
        self.read(action, |tx| {
            let sql = format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions
                 WHERE model = ?1 AND stage = 'production'"
            );
            tx.query_row(&sql, [model], version_from_row)
                .optional()
                .context(action)
        })
    }

    /// Lists every version of every model, by model name then version.
    pub fn list_models(&self) -> Result<Vec<ModelVersion>, RunStoreError> {
        let action = || "listing registered models".to_string();
        self.read(action, |tx| {
            let sql =
                format!("SELECT {VERSION_COLUMNS} FROM model_versions ORDER BY model, version");
            tx.prepare(&sql)
                .and_then(|mut stmt| stmt.query_map([], version_from_row)?.collect())
                .context(action)
        })
    }

    /// Lists the stage transitions of `model`, oldest first.
    pub fn stage_history(&self, model: &str) -> Result<Vec<StageTransition>, RunStoreError> {
        let action = || format!("reading the stage history of model `{model}`");
        self.read(action, |tx| {
            tx.prepare(
                "SELECT model, version, from_stage, to_stage, at, by, reason
                 FROM stage_transitions WHERE model = ?1 ORDER BY id",
            )
            .and_then(|mut stmt| {
                stmt.query_map([model], |row| {
                    Ok(StageTransition {
                        model: row.get(0)?,
                        version: row.get(1)?,
                        from_stage: row.get(2)?,
                        to_stage: row.get(3)?,
                        at: row.get(4)?,
                        by: row.get(5)?,
                        reason: row.get(6)?,
                    })
                })?
                .collect()
            })
            .context(action)
        })
    }
}

/// Sets the stage of one version and appends the transition.
fn change_stage(
    tx: &Transaction<'_>,
    model: &str,
    version: i64,
    from: Stage,
    to: Stage,
    by: &str,
    reason: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE model_versions SET stage = ?3 WHERE model = ?1 AND version = ?2",
        params![model, version, to.as_str()],
    )?;
    tx.execute(
        "INSERT INTO stage_transitions (model, version, from_stage, to_stage, at, by, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            model,
            version,
            from.as_str(),
            to.as_str(),
            format_timestamp(now()),
            by,
            reason
        ],
    )?;
    Ok(())
}

/// Reads a row of [`VERSION_COLUMNS`].
fn version_from_row(row: &Row<'_>) -> rusqlite::Result<ModelVersion> {
    Ok(ModelVersion {
        model: row.get(0)?,
        version: row.get(1)?,
        artifact_hash: row.get(2)?,
        run_id: row.get(3)?,
        step_run_id: row.get(4)?,
        created_at: row.get(5)?,
        metrics: json_column(row, 6)?.unwrap_or(serde_json::Value::Null),
        stage: row.get(7)?,
    })
}

/// Reads a row of [`INFO_COLUMNS`].
fn info_from_row(row: &Row<'_>) -> rusqlite::Result<ModelVersionInfo> {
    let size: Option<i64> = row.get(8)?;
    let artifact_size = size
        .map(|size| {
            u64::try_from(size)
                .map_err(|_| invalid_column(8, format!("negative artifact size {size}")))
        })
        .transpose()?;
    Ok(ModelVersionInfo {
        version: version_from_row(row)?,
        artifact_size,
        artifact_digest: row.get(9)?,
        flavor: row.get(10)?,
        params: json_column(row, 11)?.unwrap_or(serde_json::Value::Null),
    })
}

/// Returns the user recorded with a stage change.
fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "flowrun".to_string())
}
