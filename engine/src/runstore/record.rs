//! Writes made while a pipeline runs: runs, step runs, parameters, metrics,
//! tags and lineage.
//!
//! Each public method is one write transaction. The invariant this module
//! keeps is that a finished run has no step left pending or running:
//! [`RunStore::finish_run`] marks any such step `interrupted` in the same
//! transaction that finishes the run.

use super::types::{ArtifactRecord, NewRun, NewStepRun, RunStatus, StepFinish, StepStatus};
use super::values::{
    elapsed_ms, encode_metric, encode_param, format_timestamp, minus_ms, new_run_id, now,
};
use super::{FLOWRUN_VERSION, RunStore, RunStoreError, SqliteContext};
use crate::param::ParamValue;
use rusqlite::{OptionalExtension, Transaction, params};
use std::collections::BTreeMap;
use time::OffsetDateTime;

impl RunStore {
    /// Records the start of a run with status `running` and returns its new
    /// id.
    pub fn begin_run(&self, run: &NewRun) -> Result<String, RunStoreError> {
        let action = || format!("starting a run of pipeline `{}`", run.pipeline);
        self.write(action, |tx| {
            let started = now();
            let started_at = format_timestamp(started);
            tx.execute(
                "INSERT OR IGNORE INTO pipelines (name, first_seen) VALUES (?1, ?2)",
                params![run.pipeline, started_at],
            )
            .context(action)?;

            let id = unused_run_id(tx, started)?;
            let graph = run
                .graph
                .as_ref()
                .map(|graph| serde_json::to_string(graph).expect("a run graph is plain data"));
            tx.execute(
                "INSERT INTO runs (id, pipeline, pipeline_file, status, started_at,
                                   command_line, pid, flowrun_version, graph)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    run.pipeline,
                    run.pipeline_file,
                    started_at,
                    run.command_line,
                    run.pid,
                    FLOWRUN_VERSION,
                    graph
                ],
            )
            .context(action)?;
            insert_params(tx, "run_params", "run_id", &id, &run.params).context(action)?;

            tracing::debug!(run_id = %id, pipeline = %run.pipeline, "recorded run start");
            Ok(id)
        })
    }

    /// Records the start of a step with status `running` and returns the
    /// new step run id.
    pub fn begin_step(&self, run_id: &str, step: &NewStepRun) -> Result<i64, RunStoreError> {
        let action = || format!("starting step `{}` of run {run_id}", step.step_id);
        self.write(action, |tx| {
            require_run(tx, run_id)?;
            let started_at = format_timestamp(now());
            insert_step(tx, run_id, step, StepStatus::Running, &started_at).context(action)
        })
    }

    /// Records the outcome of a step started with [`RunStore::begin_step`].
    pub fn finish_step(&self, step_run_id: i64, fin: &StepFinish) -> Result<(), RunStoreError> {
        require_final(fin.status)?;
        let action = || format!("finishing step run {step_run_id}");
        self.write(action, |tx| {
            let changed = tx
                .execute(
                    "UPDATE step_runs
                     SET status = ?2, attempts = ?3, ended_at = ?4, duration_ms = ?5,
                         miss_reason = ?6, error = ?7
                     WHERE id = ?1",
                    params![
                        step_run_id,
                        fin.status.as_str(),
                        fin.attempts,
                        format_timestamp(now()),
                        duration_column(fin.duration_ms),
                        fin.miss_reason,
                        fin.error
                    ],
                )
                .context(action)?;
            if changed == 0 {
                return Err(RunStoreError::StepRunNotFound { id: step_run_id });
            }
            Ok(())
        })
    }

    /// Records a step that started and finished at once, such as a cached
    /// or skipped step, in one transaction. Its start time is the end time
    /// minus `fin.duration_ms`.
    pub fn record_step(
        &self,
        run_id: &str,
        step: &NewStepRun,
        fin: &StepFinish,
    ) -> Result<i64, RunStoreError> {
        require_final(fin.status)?;
        let action = || format!("recording step `{}` of run {run_id}", step.step_id);
        self.write(action, |tx| {
            require_run(tx, run_id)?;
            let ended = now();
            let started_at = format_timestamp(minus_ms(ended, fin.duration_ms));
            let id = insert_step(tx, run_id, step, fin.status, &started_at).context(action)?;
            tx.execute(
                "UPDATE step_runs
                 SET attempts = ?2, ended_at = ?3, duration_ms = ?4, miss_reason = ?5, error = ?6
                 WHERE id = ?1",
                params![
                    id,
                    fin.attempts,
                    format_timestamp(ended),
                    duration_column(fin.duration_ms),
                    fin.miss_reason,
                    fin.error
                ],
            )
            .context(action)?;
            Ok(id)
        })
    }

    /// Appends metric values logged by a step. A key may be logged more than
    /// once; every value is kept in order.
    pub fn log_metrics(
        &self,
        run_id: &str,
        step_run_id: i64,
        metrics: &[(String, f64)],
    ) -> Result<(), RunStoreError> {
        let action = || format!("logging metrics of step run {step_run_id}");
        self.write(action, |tx| {
            require_step_of_run(tx, run_id, step_run_id)?;
            let logged_at = format_timestamp(now());
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO metrics (run_id, step_run_id, key, value, value_text, logged_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .context(action)?;
            for (key, value) in metrics {
                let (real, text) = encode_metric(*value);
                insert
                    .execute(params![run_id, step_run_id, key, real, text, logged_at])
                    .context(action)?;
            }
            Ok(())
        })
    }

    /// Sets tags on a step run. A tag logged again replaces the old value.
    pub fn log_tags(
        &self,
        run_id: &str,
        step_run_id: i64,
        tags: &[(String, String)],
    ) -> Result<(), RunStoreError> {
        let action = || format!("logging tags of step run {step_run_id}");
        self.write(action, |tx| {
            require_step_of_run(tx, run_id, step_run_id)?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO tags (run_id, step_run_id, key, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (step_run_id, key) DO UPDATE SET value = excluded.value",
                )
                .context(action)?;
            for (key, value) in tags {
                insert
                    .execute(params![run_id, step_run_id, key, value])
                    .context(action)?;
            }
            Ok(())
        })
    }

    /// Records that a step run produced `artifact` as its output `output`.
    /// Recording the same output again replaces it.
    pub fn record_output(
        &self,
        step_run_id: i64,
        output: &str,
        artifact: &ArtifactRecord,
    ) -> Result<(), RunStoreError> {
        let action = || format!("recording output `{output}` of step run {step_run_id}");
        self.write(action, |tx| {
            require_step(tx, step_run_id)?;
            tx.execute(
                "INSERT INTO artifacts (hash, kind, size, path, step_run_id, output)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (step_run_id, output) DO UPDATE SET
                     hash = excluded.hash, kind = excluded.kind,
                     size = excluded.size, path = excluded.path",
                params![
                    artifact.hash,
                    artifact.kind.as_str(),
                    i64::try_from(artifact.size).unwrap_or(i64::MAX),
                    artifact.path,
                    step_run_id,
                    output
                ],
            )
            .context(action)?;
            Ok(())
        })
    }

    /// Records that a step run read the artifact `hash` as its input
    /// `input`. Recording the same input again replaces it.
    pub fn record_input(
        &self,
        step_run_id: i64,
        input: &str,
        hash: &str,
    ) -> Result<(), RunStoreError> {
        let action = || format!("recording input `{input}` of step run {step_run_id}");
        self.write(action, |tx| {
            require_step(tx, step_run_id)?;
            tx.execute(
                "INSERT INTO artifact_inputs (step_run_id, input, artifact_hash)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (step_run_id, input) DO UPDATE SET
                     artifact_hash = excluded.artifact_hash",
                params![step_run_id, input, hash],
            )
            .context(action)?;
            Ok(())
        })
    }

    /// Records the end of a run, and marks every step of it still pending
    /// or running as `interrupted`, in one transaction.
    pub fn finish_run(&self, run_id: &str, status: RunStatus) -> Result<(), RunStoreError> {
        if status == RunStatus::Running {
            return Err(RunStoreError::InvalidStatus(format!(
                "cannot finish run {run_id} with status `running`; use succeeded, failed, cancelled or interrupted"
            )));
        }
        let action = || format!("finishing run {run_id}");
        self.write(action, |tx| {
            let started_at = require_run(tx, run_id)?;
            end_run(tx, run_id, &started_at, status).context(action)
        })
    }

    /// Marks a run whose process died as `interrupted`, with any step it
    /// left pending or running. A run that already finished is left as it
    /// is.
    pub fn mark_interrupted(&self, run_id: &str) -> Result<(), RunStoreError> {
        let action = || format!("marking run {run_id} interrupted");
        self.write(action, |tx| {
            let started_at = require_run(tx, run_id)?;
            let status: String = tx
                .query_row("SELECT status FROM runs WHERE id = ?1", [run_id], |row| {
                    row.get(0)
                })
                .context(action)?;
            if status != RunStatus::Running.as_str() {
                tracing::debug!(
                    run_id,
                    status,
                    "run already finished; not marking it interrupted"
                );
                return Ok(());
            }
            end_run(tx, run_id, &started_at, RunStatus::Interrupted).context(action)
        })
    }
}

/// Sets the final status of a run and interrupts its unfinished steps.
fn end_run(
    tx: &Transaction<'_>,
    run_id: &str,
    started_at: &str,
    status: RunStatus,
) -> rusqlite::Result<()> {
    let ended = now();
    let ended_at = format_timestamp(ended);
    tx.execute(
        "UPDATE runs SET status = ?2, ended_at = ?3, duration_ms = ?4 WHERE id = ?1",
        params![
            run_id,
            status.as_str(),
            ended_at,
            elapsed_ms(started_at, ended)
        ],
    )?;

    let unfinished: Vec<(i64, String)> = tx
        .prepare(
            "SELECT id, started_at FROM step_runs
             WHERE run_id = ?1 AND status IN ('pending', 'running')",
        )?
        .query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (step_run_id, step_started_at) in &unfinished {
        tx.execute(
            "UPDATE step_runs SET status = 'interrupted', ended_at = ?2, duration_ms = ?3
             WHERE id = ?1",
            params![step_run_id, ended_at, elapsed_ms(step_started_at, ended)],
        )?;
    }

    if unfinished.is_empty() {
        tracing::debug!(run_id, %status, "recorded run end");
    } else {
        tracing::info!(
            run_id,
            %status,
            steps = unfinished.len(),
            "recorded run end; marked its unfinished steps interrupted"
        );
    }
    Ok(())
}

/// Draws run ids until one is unused. The caller holds the write lock, so
/// no other process can take the id before it is inserted.
fn unused_run_id(tx: &Transaction<'_>, started: OffsetDateTime) -> Result<String, RunStoreError> {
    loop {
        let id = new_run_id(started);
        let taken = tx
            .query_row("SELECT 1 FROM runs WHERE id = ?1", [&id], |_| Ok(()))
            .optional()
            .context(|| format!("checking that run id {id} is unused"))?;
        if taken.is_none() {
            return Ok(id);
        }
    }
}

/// Inserts a step run and its parameters, returning its id.
fn insert_step(
    tx: &Transaction<'_>,
    run_id: &str,
    step: &NewStepRun,
    status: StepStatus,
    started_at: &str,
) -> rusqlite::Result<i64> {
    let key_detail = step.key_detail.as_ref().map(|detail| detail.to_string());
    tx.execute(
        "INSERT INTO step_runs (run_id, step_id, step_name, status, started_at, cache_key,
                                key_detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run_id,
            step.step_id,
            step.step_name,
            status.as_str(),
            started_at,
            step.cache_key,
            key_detail
        ],
    )?;
    let id = tx.last_insert_rowid();
    insert_params(tx, "step_params", "step_run_id", &id, &step.params)?;
    Ok(id)
}

/// Inserts typed parameters into `run_params` or `step_params`.
fn insert_params(
    tx: &Transaction<'_>,
    table: &str,
    owner_column: &str,
    owner: &dyn rusqlite::ToSql,
    params: &BTreeMap<String, ParamValue>,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO {table} ({owner_column}, name, type, value) VALUES (?1, ?2, ?3, ?4)"
    ))?;
    for (name, value) in params {
        let (ty, column) = encode_param(value);
        insert.execute(params![owner, name, ty, column])?;
    }
    Ok(())
}

/// Returns the start time of a run, or `RunNotFound`.
fn require_run(tx: &Transaction<'_>, run_id: &str) -> Result<String, RunStoreError> {
    tx.query_row(
        "SELECT started_at FROM runs WHERE id = ?1",
        [run_id],
        |row| row.get(0),
    )
    .optional()
    .context(|| format!("looking up run {run_id}"))?
    .ok_or_else(|| RunStoreError::RunNotFound {
        id: run_id.to_string(),
    })
}

/// Returns the run id of a step run, or `StepRunNotFound`.
fn require_step(tx: &Transaction<'_>, step_run_id: i64) -> Result<String, RunStoreError> {
    tx.query_row(
        "SELECT run_id FROM step_runs WHERE id = ?1",
        [step_run_id],
        |row| row.get(0),
    )
    .optional()
    .context(|| format!("looking up step run {step_run_id}"))?
    .ok_or(RunStoreError::StepRunNotFound { id: step_run_id })
}

/// Checks that a step run exists and belongs to `run_id`.
fn require_step_of_run(
    tx: &Transaction<'_>,
    run_id: &str,
    step_run_id: i64,
) -> Result<(), RunStoreError> {
    let actual = require_step(tx, step_run_id)?;
    if actual != run_id {
        return Err(RunStoreError::StepRunOfOtherRun {
            step_run_id,
            expected: run_id.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Rejects `pending` and `running` as the outcome of a step.
fn require_final(status: StepStatus) -> Result<(), RunStoreError> {
    if status.is_final() {
        Ok(())
    } else {
        Err(RunStoreError::InvalidStatus(format!(
            "a finished step cannot have status `{status}`; use succeeded, cached, failed, skipped, cancelled or interrupted"
        )))
    }
}

/// Converts a duration for its INTEGER column.
fn duration_column(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
