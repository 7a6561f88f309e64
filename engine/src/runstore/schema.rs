//! The run store's schema, its migrations and the settings of every
//! connection.
//!
//! The schema version is SQLite's `PRAGMA user_version`. The migration at
//! index `i` of [`MIGRATIONS`] moves a database from version `i` to `i + 1`.
//! A released migration is never edited. A schema change is a new entry at
//! the end, so that every existing store upgrades the same way. This module
//! never reads or writes run data.

use super::RunStoreError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// How long a writer waits for another process's write transaction before
/// giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema migrations in order. Version 1 is the first schema.
///
/// Timestamps are RFC 3339 UTC text with milliseconds, so text order is
/// time order. Parameter values use a column without a declared type, so
/// each value keeps its SQLite type (INTEGER, REAL or TEXT). Metrics keep
/// finite values in a REAL column and NaN or infinities as text, because
/// SQLite stores a NaN REAL as NULL.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE pipelines (
    name        TEXT PRIMARY KEY,
    first_seen  TEXT NOT NULL
);

CREATE TABLE runs (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    pipeline         TEXT NOT NULL REFERENCES pipelines (name),
    pipeline_file    TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                         ('running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    started_at       TEXT NOT NULL,
    ended_at         TEXT,
    duration_ms      INTEGER,
    command_line     TEXT NOT NULL,
    pid              INTEGER NOT NULL,
    flowrun_version  TEXT NOT NULL
);
CREATE INDEX runs_by_status ON runs (status);
CREATE INDEX runs_by_pipeline ON runs (pipeline);

CREATE TABLE run_params (
    run_id  TEXT NOT NULL REFERENCES runs (id),
    name    TEXT NOT NULL,
    type    TEXT NOT NULL CHECK (type IN ('bool', 'int', 'float', 'string', 'list', 'map')),
    value   NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE step_runs (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (id),
    step_id      TEXT NOT NULL,
    step_name    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded',
                     'cached', 'failed', 'skipped', 'cancelled', 'interrupted')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT NOT NULL,
    ended_at     TEXT,
    duration_ms  INTEGER,
    cache_key    TEXT,
    miss_reason  TEXT,
    error        TEXT,
    key_detail   TEXT
);
CREATE INDEX step_runs_by_run ON step_runs (run_id);
CREATE INDEX step_runs_by_step ON step_runs (step_id, status);

CREATE TABLE step_params (
    step_run_id  INTEGER NOT NULL REFERENCES step_runs (id),
    name         TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('bool', 'int', 'float', 'string', 'list', 'map')),
    value        NOT NULL,
    PRIMARY KEY (step_run_id, name)
);

CREATE TABLE metrics (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (id),
    step_run_id  INTEGER NOT NULL REFERENCES step_runs (id),
    key          TEXT NOT NULL,
    value        REAL,
    value_text   TEXT CHECK (value_text IN ('NaN', 'inf', '-inf')),
    logged_at    TEXT NOT NULL,
    CHECK ((value IS NULL) <> (value_text IS NULL))
);
CREATE INDEX metrics_by_step_run ON metrics (step_run_id);
CREATE INDEX metrics_by_key ON metrics (key);

CREATE TABLE tags (
    run_id       TEXT NOT NULL REFERENCES runs (id),
    step_run_id  INTEGER NOT NULL REFERENCES step_runs (id),
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (step_run_id, key)
);

CREATE TABLE artifacts (
    id           INTEGER PRIMARY KEY,
    hash         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('table', 'model', 'json')),
    size         INTEGER NOT NULL,
    path         TEXT NOT NULL,
    step_run_id  INTEGER NOT NULL REFERENCES step_runs (id),
    output       TEXT NOT NULL,
    UNIQUE (step_run_id, output)
);
CREATE INDEX artifacts_by_hash ON artifacts (hash);

CREATE TABLE artifact_inputs (
    step_run_id    INTEGER NOT NULL REFERENCES step_runs (id),
    input          TEXT NOT NULL,
    artifact_hash  TEXT NOT NULL,
    PRIMARY KEY (step_run_id, input)
);
CREATE INDEX artifact_inputs_by_hash ON artifact_inputs (artifact_hash);

CREATE TABLE registered_models (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);

CREATE TABLE model_versions (
    model          TEXT NOT NULL REFERENCES registered_models (name),
    version        INTEGER NOT NULL CHECK (version >= 1),
    artifact_hash  TEXT NOT NULL,
    run_id         TEXT NOT NULL REFERENCES runs (id),
    step_run_id    INTEGER NOT NULL REFERENCES step_runs (id),
    created_at     TEXT NOT NULL,
    metrics        TEXT NOT NULL,
    stage          TEXT NOT NULL DEFAULT 'none'
                       CHECK (stage IN ('none', 'staging', 'production', 'archived')),
    PRIMARY KEY (model, version)
);
CREATE UNIQUE INDEX one_production_version ON model_versions (model)
    WHERE stage = 'production';

CREATE TABLE stage_transitions (
    id          INTEGER PRIMARY KEY,
    model       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    from_stage  TEXT NOT NULL,
    to_stage    TEXT NOT NULL,
    at          TEXT NOT NULL,
    by          TEXT NOT NULL,
    reason      TEXT NOT NULL,
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);
CREATE INDEX stage_transitions_by_model ON stage_transitions (model, version);
"#,
    // Version 2: what a scoring server needs to read a model version's
    // artifact (the file's size and blake3 digest, which the artifact store
    // checks before decoding), the model flavor, and the run's parameters.
    // Versions registered under version 1 keep NULL here and cannot be
    // served.
    r#"
ALTER TABLE model_versions ADD COLUMN artifact_size INTEGER CHECK (artifact_size >= 0);
ALTER TABLE model_versions ADD COLUMN artifact_digest TEXT;
ALTER TABLE model_versions ADD COLUMN flavor TEXT;
ALTER TABLE model_versions ADD COLUMN params TEXT;
"#,
    // Version 3: the pipeline's graph as it was when the run started (every
    // step, the outputs it reads and its `after:` list, as JSON), so that a
    // run's DAG can be drawn whole, including steps that never started.
    // Runs recorded under version 2 keep NULL.
    r#"
ALTER TABLE runs ADD COLUMN graph TEXT;
"#,
];

/// Returns the schema version this build of flowrun writes.
pub(super) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Sets the per-connection pragmas. The busy timeout makes writers wait for
/// each other, and WAL lets readers run while a writer writes.
/// `synchronous=NORMAL` in WAL mode may lose the last commits on a power
/// loss but never corrupts the file. Foreign keys are off by default in
/// SQLite, so they are turned on here.
pub(super) fn configure(conn: &Connection, path: &Path) -> Result<(), RunStoreError> {
    let fail = |source| RunStoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(RunStoreError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(fail)?;
    Ok(())
}

/// Applies every pending migration in one write transaction.
///
/// The version is read inside the transaction, so two processes opening a
/// new store at once do not both migrate it: the second waits for the
/// first, then finds nothing to do.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), RunStoreError> {
    let fail = |source| RunStoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail)?;
    if found > current_version() {
        return Err(RunStoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: current_version(),
        });
    }

    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        tracing::info!(path = %path.display(), version, "migrating the run store schema");
        tx.execute_batch(sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}
