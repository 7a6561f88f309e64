//! The scoring server: it serves the production version of one registered
//! model over HTTP, swaps in a new version without dropping a request, and
//! runs in the foreground or as a daemon that deployments talk to.
//!
//! # Layout
//!
//! - [`scoring`]: MLflow's scoring protocol, from request bodies to a table
//!   of feature columns and from predictions to the response body.
//! - [`router`]: the routes, as a function from a request to a response,
//!   tested without a socket.
//! - [`state`]: the served model behind an `ArcSwap`, and loading the
//!   registry's production version from the artifact store.
//! - `http`: the listener, the connections, the registry poll, the access
//!   log and graceful shutdown on SIGTERM or Ctrl-C.
//! - [`daemon`]: the files a server keeps in the store (lock, pid file, state
//!   file, log) and starting, stopping and querying a daemon.
//! - [`client`]: a blocking HTTP client for the server's loopback address.
//! - [`deploy`]: promoting a version and making the running server follow,
//!   undoing the promotion when the server cannot load it.
//! - `web`: the HTML pages for people (predict form, models, runs), served
//!   by the same router; they only read the stores.
//!
//! # Invariants
//!
//! - The server never runs a pipeline and never writes to the registry; it
//!   reads the registry and the artifact store.
//! - One server per store: a file lock in `<store>/server/server.lock` is
//!   held for the server's lifetime, and the operating system releases it
//!   when the process dies, however it dies.
//! - The admin route accepts only loopback clients, and the client in this
//!   module only connects to loopback addresses.
//! - A server follows registry changes even when a notification is lost: it
//!   polls the production version every few seconds.

pub mod client;
pub mod daemon;
pub mod deploy;
mod http;
pub mod router;
pub mod scoring;
pub mod state;
mod web;

#[cfg(test)]
mod tests;

pub use daemon::{ServerFiles, ServerInfo, ServerStatus};
pub use http::run;
pub use state::{LoadError, LoadFailure, LoadedModel, ReloadOutcome, ServerState, StateConfig};

use std::path::PathBuf;
use std::time::Duration;

/// The port `flowrun serve` listens on by default.
pub const DEFAULT_PORT: u16 = 8080;

/// The registered model a server serves by default.
pub const DEFAULT_MODEL: &str = "customer_satisfaction";

/// The largest batch, in rows, that `/invocations` accepts by default.
pub const DEFAULT_MAX_ROWS: usize = 10_000;

/// The settings of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The store folder (`.flowrun/` by default).
    pub store_dir: PathBuf,
    /// The address to bind, `127.0.0.1` by default.
    pub host: String,
    /// The port to bind; 0 picks a free one, recorded in the state file.
    pub port: u16,
    /// The registered model to serve.
    pub model: String,
    /// The largest batch `/invocations` accepts, in rows.
    pub max_rows: usize,
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How often the server checks the registry's production version.
    pub poll_interval: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
    /// Worker threads of the async runtime.
    pub workers: usize,
}

impl ServeConfig {
    /// Returns the defaults for a store: 127.0.0.1:8080, the default model,
    /// 10,000 rows, 64 MiB bodies, a 2-second poll, a 10-second shutdown
    /// and one worker per CPU core.
    pub fn new(store_dir: PathBuf) -> Self {
        ServeConfig {
            store_dir,
            host: "127.0.0.1".to_string(),
            port: DEFAULT_PORT,
            model: DEFAULT_MODEL.to_string(),
            max_rows: DEFAULT_MAX_ROWS,
            max_body_bytes: 64 * 1024 * 1024,
            poll_interval: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(10),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Errors that stop a server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another server holds this store's server lock.
    #[error(
        "a flowrun server is already running for store {store}{}; stop it with `flowrun serve stop`",
        running.as_ref().map(|i| format!(" (pid {}, port {})", i.pid, i.port)).unwrap_or_default()
    )]
    AlreadyRunning {
        /// The store folder.
        store: PathBuf,
        /// The running server's state file, if readable.
        running: Option<ServerInfo>,
    },

    /// The port is taken by another process.
    #[error(
        "port {port} already in use on {host}; stop the process that uses it or choose another port with --port N"
    )]
    PortInUse {
        /// The address.
        host: String,
        /// The port.
        port: u16,
    },

    /// The address cannot be bound for another reason.
    #[error("failed to listen on {host}:{port}: {source}")]
    Bind {
        /// The address.
        host: String,
        /// The port.
        port: u16,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file of the server cannot be written or read.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// The operation that failed.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The run store cannot be opened.
    #[error(transparent)]
    RunStore(#[from] crate::runstore::RunStoreError),

    /// The artifact store cannot be opened.
    #[error("failed to open the artifact store: {0}")]
    Artifacts(#[from] flowrun_artifacts::ArtifactError),

    /// The async runtime cannot start.
    #[error("failed to start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Returns the current time as RFC 3339 UTC text with milliseconds, the
/// form the run store uses.
pub(crate) fn now_rfc3339() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}
