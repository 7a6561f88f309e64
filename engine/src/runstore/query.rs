//! Reads: run lists, one run in full, and the previous run of a step.
//!
//! Every method reads one snapshot of the store and never writes. A stored
//! value that this build cannot decode (an unknown status, a malformed
//! parameter) is reported as an error, never skipped.

use super::types::{
    ArtifactRecord, InputRecord, Metric, OutputRecord, PreviousStep, RunDetail, RunGraph,
    RunSummary, StepRunDetail,
};
use super::values::{decode_metric, decode_param, invalid_column, parse_kind};
use super::{RunStore, RunStoreError, SqliteContext};
use crate::param::ParamValue;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, ToSql, Transaction, params};
use std::collections::BTreeMap;

/// The run columns that [`summary_from_row`] reads, in order.
const RUN_COLUMNS: &str = "id, pipeline, pipeline_file, status, started_at, ended_at, \
                           duration_ms, command_line, pid, flowrun_version";

/// The step run columns that [`step_from_row`] reads, in order.
const STEP_COLUMNS: &str = "id, step_id, step_name, status, attempts, started_at, ended_at, \
                            duration_ms, cache_key, miss_reason, error, key_detail";

/// How many matching ids an ambiguous prefix error lists.
const AMBIGUOUS_LIST_LIMIT: usize = 5;

impl RunStore {
    /// Lists the runs still marked `running`, newest first. A run listed
    /// here whose process is gone was interrupted.
    pub fn running_runs(&self) -> Result<Vec<RunSummary>, RunStoreError> {
        let action = || "listing running runs".to_string();
        self.read(action, |tx| {
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' ORDER BY seq DESC"
            );
            query_summaries(tx, &sql, params![]).context(action)
        })
    }

    /// Lists the newest `limit` runs, newest first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunSummary>, RunStoreError> {
        let action = || "listing runs".to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(action, |tx| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT ?1");
            query_summaries(tx, &sql, params![limit]).context(action)
        })
    }

    /// Returns a run with its parameters and steps. `id` is a full id, a
    /// prefix that matches one run, or `latest` for the newest run.
    pub fn get_run(&self, id: &str) -> Result<RunDetail, RunStoreError> {
        self.read(
            || format!("reading run {id}"),
            |tx| {
                let run_id = resolve_run_id(tx, id)?;
                read_run(tx, &run_id).context(|| format!("reading run {run_id}"))
            },
        )
    }

    /// Counts the recorded runs.
    pub fn count_runs(&self) -> Result<usize, RunStoreError> {
        let action = || "counting runs".to_string();
        self.read(action, |tx| {
            let count: i64 = tx
                .query_row("SELECT COUNT(*) FROM runs", [], |row| row.get(0))
                .context(action)?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    /// Lists `limit` runs, newest first, after skipping the `offset`
    /// newest, each with its parameters and steps as
    /// [`RunStore::get_run`] returns them. All runs are read from one
    /// snapshot.
    pub fn list_run_details(
        &self,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RunDetail>, RunStoreError> {
        let action = || "listing runs with their steps".to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.read(action, |tx| {
            let ids: Vec<String> = tx
                .prepare("SELECT id FROM runs ORDER BY seq DESC LIMIT ?1 OFFSET ?2")
                .and_then(|mut stmt| stmt.query_map([limit, offset], |row| row.get(0))?.collect())
                .context(action)?;
            ids.iter()
                .map(|id| read_run(tx, id).context(|| format!("reading run {id}")))
                .collect()
        })
    }

    /// Returns the latest step run of `step_id` in `pipeline` that succeeded
    /// or came from the cache, with its cache key and key inputs.
    pub fn previous_step(
        &self,
        pipeline: &str,
        step_id: &str,
    ) -> Result<Option<PreviousStep>, RunStoreError> {
        let action =
            || format!("looking up the previous run of step `{step_id}` of pipeline `{pipeline}`");
        self.read(action, |tx| {
            tx.query_row(
                "SELECT s.run_id, s.id, s.status, s.cache_key, s.key_detail
                 FROM step_runs AS s JOIN runs AS r ON r.id = s.run_id
                 WHERE r.pipeline = ?1 AND s.step_id = ?2
                   AND s.status IN ('succeeded', 'cached')
                 ORDER BY s.id DESC LIMIT 1",
                params![pipeline, step_id],
                |row| {
                    Ok(PreviousStep {
                        run_id: row.get(0)?,
                        step_run_id: row.get(1)?,
                        status: row.get(2)?,
                        cache_key: row.get(3)?,
                        key_detail: json_column(row, 4)?,
                    })
                },
            )
            .optional()
            .context(action)
        })
    }
}

/// Turns `latest`, a full id or a unique prefix into a run id.
fn resolve_run_id(tx: &Transaction<'_>, id: &str) -> Result<String, RunStoreError> {
    let action = || format!("looking up run {id}");
    let not_found = || RunStoreError::RunNotFound { id: id.to_string() };

    if id == "latest" {
        return tx
            .query_row("SELECT id FROM runs ORDER BY seq DESC LIMIT 1", [], |row| {
                row.get(0)
            })
            .optional()
            .context(action)?
            .ok_or(RunStoreError::NoRuns);
    }

    let exact: Option<String> = tx
        .query_row("SELECT id FROM runs WHERE id = ?1", [id], |row| row.get(0))
        .optional()
        .context(action)?;
    if let Some(exact) = exact {
        return Ok(exact);
    }
    if id.is_empty() {
        return Err(not_found());
    }

    // `substr` compares literally, where LIKE would treat `_` and `%` in the
    // prefix as wildcards.
    let mut stmt = tx
        .prepare(
            "SELECT id FROM runs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY seq DESC LIMIT ?2",
        )
        .context(action)?;
    let mut matches: Vec<String> = stmt
        .query_map(params![id, AMBIGUOUS_LIST_LIMIT as i64 + 1], |row| {
            row.get(0)
        })
        .and_then(Iterator::collect)
        .context(action)?;
    match matches.len() {
        0 => Err(not_found()),
        1 => Ok(matches.remove(0)),
        _ => {
            matches.truncate(AMBIGUOUS_LIST_LIMIT);
            Err(RunStoreError::AmbiguousRun {
                prefix: id.to_string(),
                matches,
            })
        }
    }
}

/// Reads a run by its full id, with its parameters and steps.
fn read_run(tx: &Transaction<'_>, run_id: &str) -> rusqlite::Result<RunDetail> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
    let run = tx.query_row(&sql, [run_id], summary_from_row)?;
    let params = read_params(tx, "run_params", "run_id", &run_id)?;

    let sql = format!("SELECT {STEP_COLUMNS} FROM step_runs WHERE run_id = ?1 ORDER BY id");
    let mut steps: Vec<StepRunDetail> = tx
        .prepare(&sql)?
        .query_map([run_id], step_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for step in &mut steps {
        step.params = read_params(tx, "step_params", "step_run_id", &step.id)?;
        step.metrics = read_metrics(tx, step.id)?;
        step.tags = read_tags(tx, step.id)?;
        step.inputs = read_inputs(tx, step.id)?;
        step.outputs = read_outputs(tx, step.id)?;
    }
    let graph = tx.query_row("SELECT graph FROM runs WHERE id = ?1", [run_id], |row| {
        json_column(row, 0)
    })?;
    let graph = match graph.map(serde_json::from_value::<RunGraph>).transpose() {
        Ok(graph) => graph,
        Err(error) => {
            tracing::warn!(
                run_id,
                "the recorded graph of run {run_id} is unreadable: {error}"
            );
            None
        }
    };
    Ok(RunDetail {
        run,
        params,
        steps,
        graph,
    })
}

/// Runs a query over [`RUN_COLUMNS`] and collects the summaries.
fn query_summaries(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&dyn ToSql],
) -> rusqlite::Result<Vec<RunSummary>> {
    tx.prepare(sql)?
        .query_map(params, summary_from_row)?
        .collect()
}

/// Reads a row of [`RUN_COLUMNS`].
fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: row.get(0)?,
        pipeline: row.get(1)?,
        pipeline_file: row.get(2)?,
        status: row.get(3)?,
        started_at: row.get(4)?,
        ended_at: row.get(5)?,
        duration_ms: row.get(6)?,
        command_line: row.get(7)?,
        pid: row.get(8)?,
        flowrun_version: row.get(9)?,
    })
}

/// Reads a row of [`STEP_COLUMNS`], leaving parameters, metrics, tags and
/// lineage empty.
fn step_from_row(row: &Row<'_>) -> rusqlite::Result<StepRunDetail> {
    Ok(StepRunDetail {
        id: row.get(0)?,
        step_id: row.get(1)?,
        step_name: row.get(2)?,
        status: row.get(3)?,
        attempts: row.get(4)?,
        started_at: row.get(5)?,
        ended_at: row.get(6)?,
        duration_ms: row.get(7)?,
        cache_key: row.get(8)?,
        miss_reason: row.get(9)?,
        error: row.get(10)?,
        key_detail: json_column(row, 11)?,
        params: BTreeMap::new(),
        metrics: Vec::new(),
        tags: BTreeMap::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
    })
}

/// Reads an optional JSON text column.
pub(super) fn json_column(
    row: &Row<'_>,
    column: usize,
) -> rusqlite::Result<Option<serde_json::Value>> {
    let Some(text) = row.get::<_, Option<String>>(column)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| invalid_column(column, format!("invalid JSON: {error}")))
}

/// Reads the typed parameters of a run or step run.
fn read_params(
    tx: &Transaction<'_>,
    table: &str,
    owner_column: &str,
    owner: &dyn ToSql,
) -> rusqlite::Result<BTreeMap<String, ParamValue>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT name, type, value FROM {table} WHERE {owner_column} = ?1 ORDER BY name"
    ))?;
    stmt.query_map([owner], |row| {
        let name: String = row.get(0)?;
        let ty: String = row.get(1)?;
        let value = decode_param(&ty, row.get::<_, Value>(2)?).ok_or_else(|| {
            invalid_column(2, format!("parameter `{name}` does not hold a valid {ty}"))
        })?;
        Ok((name, value))
    })?
    .collect()
}

/// Reads the metrics of a step run in the order they were logged.
fn read_metrics(tx: &Transaction<'_>, step_run_id: i64) -> rusqlite::Result<Vec<Metric>> {
    let mut stmt = tx.prepare_cached(
        "SELECT key, value, value_text FROM metrics WHERE step_run_id = ?1 ORDER BY id",
    )?;
    stmt.query_map([step_run_id], |row| {
        let key: String = row.get(0)?;
        let real: Option<f64> = row.get(1)?;
        let text: Option<String> = row.get(2)?;
        let value = decode_metric(real, text.as_deref())
            .ok_or_else(|| invalid_column(2, format!("metric `{key}` has no valid value")))?;
        Ok(Metric { key, value })
    })?
    .collect()
}

/// Reads the tags of a step run.
fn read_tags(tx: &Transaction<'_>, step_run_id: i64) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = tx.prepare_cached("SELECT key, value FROM tags WHERE step_run_id = ?1")?;
    stmt.query_map([step_run_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}

/// Reads the artifacts a step run read, by input name.
fn read_inputs(tx: &Transaction<'_>, step_run_id: i64) -> rusqlite::Result<Vec<InputRecord>> {
    let mut stmt = tx.prepare_cached(
        "SELECT input, artifact_hash FROM artifact_inputs WHERE step_run_id = ?1 ORDER BY input",
    )?;
    stmt.query_map([step_run_id], |row| {
        Ok(InputRecord {
            input: row.get(0)?,
            hash: row.get(1)?,
        })
    })?
    .collect()
}

/// Reads the artifacts a step run produced, by output name.
fn read_outputs(tx: &Transaction<'_>, step_run_id: i64) -> rusqlite::Result<Vec<OutputRecord>> {
    let mut stmt = tx.prepare_cached(
        "SELECT output, hash, kind, size, path FROM artifacts
         WHERE step_run_id = ?1 ORDER BY output",
    )?;
    stmt.query_map([step_run_id], |row| {
        let kind: String = row.get(2)?;
        let kind = parse_kind(&kind)
            .ok_or_else(|| invalid_column(2, format!("unknown artifact kind `{kind}`")))?;
        let size: i64 = row.get(3)?;
        let size = u64::try_from(size)
            .map_err(|_| invalid_column(3, format!("negative artifact size {size}")))?;
        Ok(OutputRecord {
            output: row.get(0)?,
            artifact: ArtifactRecord {
                hash: row.get(1)?,
                kind,
                size,
                path: row.get(4)?,
            },
        })
    })?
    .collect()
}
