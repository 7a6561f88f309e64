//! The run store: every run, step, parameter, metric, tag, artifact and
//! registered model, in one SQLite file: `runs.db` ([`DEFAULT_FILE_NAME`]) in
//! the store folder.
//!
//! This is the only module of flowrun that opens SQLite. It records what
//! happened and answers questions about it; it never decides what to run,
//! never reads artifacts and never deletes a run.
//!
//! # Concurrency
//!
//! A [`RunStore`] is `Send + Sync`: one connection behind a mutex, shared by
//! the executor's threads. Several processes may open the same file. The
//! database is in WAL mode, so readers never wait for writers, and every
//! write runs in a `BEGIN IMMEDIATE` transaction, so that a writer takes the
//! write lock before it reads anything. A writer that finds the lock taken
//! waits up to 30 seconds (the busy timeout) instead of failing with
//! "database is locked". With deferred transactions, SQLite would instead
//! return that error at once to a reader that tries to become a writer.
//!
//! # Layout
//!
//! - `schema`: the tables, the migrations and the connection settings.
//! - `values`: how parameters, metrics, timestamps and run ids are stored.
//! - `record`: writes made while a pipeline runs.
//! - `query`: reads for the CLI and for explaining cache misses.
//! - `models`: the model registry and its stage transitions.

mod models;
mod query;
mod record;
mod schema;
mod types;
mod values;

#[cfg(test)]
mod tests;

pub use models::{ModelVersionInfo, NewModelVersion};
pub use types::{
    ArtifactRecord, GraphStep, InputRecord, Metric, ModelVersion, NewRun, NewStepRun, OutputRecord,
    PreviousStep, RunDetail, RunGraph, RunStatus, RunSummary, Stage, StageTransition, StepFinish,
    StepRunDetail, StepStatus,
};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The file name of the run store inside the store folder.
pub const DEFAULT_FILE_NAME: &str = "runs.db";

/// The flowrun version recorded with each run.
const FLOWRUN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors from the run store.
#[derive(Debug, thiserror::Error)]
pub enum RunStoreError {
    /// The folder for the store file cannot be created.
    #[error("failed to create the run store folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The store file cannot be opened, configured or migrated.
    #[error(
        "failed to open the run store {path}: {source}; check that the file is a flowrun run store and that its folder is writable"
    )]
    Open {
        /// The store file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },

    /// The file system does not support WAL mode (some network file
    /// systems do not).
    #[error(
        "the run store {path} cannot use WAL mode (SQLite kept journal mode `{mode}`); put the store folder on a local disk"
    )]
    NoWal {
        /// The store file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },

    /// The store was written by a newer flowrun.
    #[error(
        "the run store {path} has schema version {found}, but this flowrun reads at most version {supported}; upgrade flowrun"
    )]
    SchemaTooNew {
        /// The store file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },

    /// No run has this id, id prefix or alias.
    #[error("run `{id}` not found; list runs with `flowrun runs`")]
    RunNotFound {
        /// The id as given.
        id: String,
    },

    /// `latest` was asked for, but the store has no run yet.
    #[error(
        "this store has no runs yet; run a pipeline first, for example `flowrun pipelines/training.yaml`"
    )]
    NoRuns,

    /// An id prefix that matches more than one run.
    #[error(
        "run id prefix `{prefix}` matches {} runs ({}); give more characters of the id, or list runs with `flowrun runs`",
        matches.len(),
        matches.join(", ")
    )]
    AmbiguousRun {
        /// The prefix as given.
        prefix: String,
        /// The ids it matches, newest first.
        matches: Vec<String>,
    },

    /// No step run has this id.
    #[error("step run {id} not found in the run store")]
    StepRunNotFound {
        /// The step run id.
        id: i64,
    },

    /// A step run used with a run it does not belong to.
    #[error("step run {step_run_id} belongs to run `{actual}`, not to run `{expected}`")]
    StepRunOfOtherRun {
        /// The step run id.
        step_run_id: i64,
        /// The run the caller named.
        expected: String,
        /// The run the step run belongs to.
        actual: String,
    },

    /// A status that cannot be used where it was given.
    #[error("{0}")]
    InvalidStatus(String),

    /// A model version that does not exist.
    #[error("model `{model}` has no version {version}; list models with `flowrun models`")]
    ModelVersionNotFound {
        /// The model name.
        model: String,
        /// The version asked for.
        version: i64,
    },

    /// A row that this build of flowrun cannot read.
    #[error("the run store holds an invalid value: {0}")]
    Invalid(String),

    /// A query failed.
    #[error("run store query failed while {action}: {source}")]
    Sqlite {
        /// The failed operation, such as "finishing run 20261204-201530-3f9a".
        action: String,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
}

impl RunStoreError {
    /// Returns whether another connection held a lock this one needed.
    fn is_busy(&self) -> bool {
        let source = match self {
            RunStoreError::Open { source, .. } | RunStoreError::Sqlite { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// Adds "while …" context to a SQLite error.
pub(crate) trait SqliteContext<T> {
    /// Wraps the error with what the store was doing.
    fn context(self, action: impl FnOnce() -> String) -> Result<T, RunStoreError>;
}

impl<T> SqliteContext<T> for Result<T, rusqlite::Error> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, RunStoreError> {
        self.map_err(|source| RunStoreError::Sqlite {
            action: action(),
            source,
        })
    }
}

/// A handle on the run store file. Cheap to share between threads.
#[derive(Debug)]
pub struct RunStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl RunStore {
    /// Opens the store at `path`, creating the file and its parent folder if
    /// needed and migrating the schema to the current version.
    pub fn open(path: &Path) -> Result<RunStore, RunStoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| RunStoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }

        // Switching a new file to WAL and the first migration take locks
        // that SQLite does not wait for with the busy timeout: it fails at
        // once where waiting could deadlock. So two processes creating one
        // store at the same moment retry here instead.
        let deadline = std::time::Instant::now() + schema::BUSY_TIMEOUT;
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            match Self::open_once(path) {
                Err(error) if error.is_busy() && std::time::Instant::now() + pause < deadline => {
                    tracing::debug!(path = %path.display(), "run store busy while opening; retrying");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                result => return result,
            }
        }
    }

    fn open_once(path: &Path) -> Result<RunStore, RunStoreError> {
        let mut conn = Connection::open(path).map_err(|source| RunStoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        schema::configure(&conn, path)?;
        schema::migrate(&mut conn, path)?;
        tracing::debug!(path = %path.display(), "opened the run store");

        Ok(RunStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// Returns the path of the store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Locks the connection. A thread that panicked while holding the lock
    /// leaves the connection usable, because an unfinished transaction
    /// rolls back when it is dropped.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction and commits it.
    fn write<T>(
        &self,
        action: impl Fn() -> String,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, RunStoreError>,
    ) -> Result<T, RunStoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context(&action)?;
        let value = work(&tx)?;
        tx.commit().context(&action)?;
        Ok(value)
    }

    /// Runs `work` in a read transaction, so that its queries see one
    /// snapshot.
    fn read<T>(
        &self,
        action: impl Fn() -> String,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, RunStoreError>,
    ) -> Result<T, RunStoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .context(&action)?;
        let value = work(&tx)?;
        tx.finish().context(&action)?;
        Ok(value)
    }
}
