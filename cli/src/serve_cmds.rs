//! `flowrun serve`, `serve --daemon`, `serve stop` and `serve status`: run
//! the scoring server in the foreground or as a daemon, and control the
//! store's running server. The server itself lives in the engine
//! (`flowrun_engine::server`); this module turns flags into its settings
//! and prints what happened. It never reads the registry or a model.

use crate::args::{ServeArgs, ServeCommand};
use crate::output::{errln, outln};
use anyhow::Context;
use flowrun_engine::Registry;
use flowrun_engine::server::client::Client;
use flowrun_engine::server::daemon::{self, DaemonError, ServerInfo, StopOutcome};
use flowrun_engine::server::{self, ServeConfig, ServerFiles, ServerStatus};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// The exit code of `serve status` when no server runs, as for LSB init
/// scripts.
const EXIT_NOT_RUNNING: u8 = 3;

/// Sets up logging for a server process (in the foreground, or the daemon
/// whose stderr is its log file) at info level: start-up, swaps, rejected
/// requests and a count of requests each minute. `FLOWRUN_LOG` sets
/// another filter, such as `info,flowrun::access=debug` for one line per
/// request. Colors are off when stderr is a file. Other commands keep the
/// CLI's default of warnings only.
///
/// Keep the returned guard alive until exit: dropping it writes out what
/// is buffered.
pub(crate) fn init_logging(args: &ServeArgs, verbose: u8, quiet: bool) -> Option<LogFlusher> {
    if args.command.is_some() || args.daemon || verbose > 0 || quiet {
        return None;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWRUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let buffer = Arc::new(Mutex::new(BufWriter::with_capacity(
        64 * 1024,
        std::io::stderr(),
    )));
    let writer = Arc::clone(&buffer);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ServerLog(writer))
        .with_ansi(ansi)
        .try_init()
        .ok()?;
    Some(LogFlusher::start(buffer))
}

/// The server's log sink: lines collect in a 64 KiB buffer that is written
/// when full and at least every 200 ms.
///
/// In wrk runs on a 2-core machine (single-row requests, 8 connections), a
/// write per line cut throughput from about 41,000 to 25,000 requests per
/// second. A logging thread woken for every line (tracing-appender's
/// design) raised the 99th percentile latency to about 10 ms, because each
/// wake-up takes a core from a request. Here a request only copies its
/// line into the buffer, under a mutex held for that copy.
type SharedLog = Arc<Mutex<BufWriter<std::io::Stderr>>>;

/// Hands out [`BufferedLine`]s. Request lines stay in the buffer. Any other
/// line, such as a warning or a start-up message, is written at once.
struct ServerLog(SharedLog);

impl<'a> MakeWriter<'a> for ServerLog {
    type Writer = BufferedLine;

    fn make_writer(&'a self) -> BufferedLine {
        BufferedLine {
            log: Arc::clone(&self.0),
            flush: true,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> BufferedLine {
        let request_line = meta.target() == ACCESS_TARGET;
        BufferedLine {
            log: Arc::clone(&self.0),
            flush: !request_line,
        }
    }
}

/// The tracing target of the server's request lines.
const ACCESS_TARGET: &str = "flowrun::access";

/// One log line being written into the shared buffer.
struct BufferedLine {
    log: SharedLog,
    flush: bool,
}

impl BufferedLine {
    fn with_buffer<T>(
        &self,
        write: impl FnOnce(&mut BufWriter<std::io::Stderr>) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut buffer = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let written = write(&mut buffer)?;
        if self.flush {
            buffer.flush()?;
        }
        Ok(written)
    }
}

impl Write for BufferedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.with_buffer(|buffer| buffer.write(bytes))
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.with_buffer(|buffer| buffer.write_all(bytes))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes out the log buffer every 200 ms, and once more when dropped.
pub(crate) struct LogFlusher {
    buffer: SharedLog,
}

impl LogFlusher {
    fn start(buffer: SharedLog) -> Self {
        let weak = Arc::downgrade(&buffer);
        let started = std::thread::Builder::new()
            .name("flowrun-log".to_string())
            .spawn(move || {
                while let Some(buffer) = weak.upgrade() {
                    let _ = buffer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .flush();
                    drop(buffer);
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        if let Err(error) = started {
            errln!("warning: failed to start the log flusher; log lines may be delayed: {error}");
        }
        LogFlusher { buffer }
    }
}

impl Drop for LogFlusher {
    fn drop(&mut self) {
        let _ = self
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush();
    }
}

pub(crate) fn serve(args: &ServeArgs, registry: &Registry, store_dir: &Path) -> anyhow::Result<u8> {
    match &args.command {
        Some(ServeCommand::Stop { timeout }) => stop(store_dir, *timeout),
        Some(ServeCommand::Status { json }) => status(store_dir, *json),
        None if args.daemon => start_daemon(args, store_dir),
        None => {
            server::run(&config(args, store_dir), registry.clone())
                .context("failed to run the server")?;
            Ok(0)
        }
    }
}

fn config(args: &ServeArgs, store_dir: &Path) -> ServeConfig {
    let mut config = ServeConfig::new(store_dir.to_path_buf());
    config.host = args.host.clone();
    config.port = args.port;
    config.model = args.model.clone();
    config.max_rows = args.max_rows;
    config.poll_interval = Duration::from_millis(args.poll_interval_ms);
    config.shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    config
}

/// Starts the daemon and reports what it serves. A daemon whose production
/// version failed to load still counts as started, because it runs and
/// follows the registry, so the exit code is 0 with a warning on stderr.
fn start_daemon(args: &ServeArgs, store_dir: &Path) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("failed to find the flowrun executable")?;
    let config = config(args, store_dir);
    let info = match daemon::start(&exe, &config, Duration::from_secs(60)) {
        Ok(info) => info,
        Err(error @ DaemonError::PortInUse { .. }) => anyhow::bail!(
            "{error}; stop the process that uses it or choose another port with --port N"
        ),
        Err(error) => return Err(error.into()),
    };
    let log = ServerFiles::new(store_dir).log_path();
    let address = format!("http://{}:{}", info.host, info.port);
    let (served, _) = query_served(&info);
    match &served {
        ServedVersion::Version(version) => outln!(
            "Server started: pid {}, {address} serving model {} version {version} (log: {})",
            info.pid,
            info.model,
            log.display()
        ),
        ServedVersion::LoadFailed(_) | ServedVersion::Nothing => outln!(
            "Server started: pid {}, {address} for model {}, serving no model yet (log: {})",
            info.pid,
            info.model,
            log.display()
        ),
        ServedVersion::NotResponding(_) => outln!(
            "Server started: pid {}, {address} for model {} (log: {})",
            info.pid,
            info.model,
            log.display()
        ),
    }
    if let Some(warning) = served.warning(&info.model) {
        errln!("warning: {warning}");
    }
    Ok(0)
}

/// The model version a running server serves, from its `/version` route.
enum ServedVersion {
    /// A version is loaded. A load error, if any, is about a newer
    /// production version that failed while this one kept serving.
    Version(i64),
    /// No version is loaded because the production version failed to load.
    LoadFailed(String),
    /// No version is loaded because none is in production.
    Nothing,
    /// The `/version` request failed.
    NotResponding(String),
}

impl ServedVersion {
    /// Returns the line to print as a warning, if the server needs one.
    fn warning(&self, model: &str) -> Option<String> {
        match self {
            ServedVersion::Version(_) | ServedVersion::Nothing => None,
            ServedVersion::LoadFailed(message) => {
                Some(format!("the server runs but serves no model: {message}"))
            }
            ServedVersion::NotResponding(reason) => Some(format!(
                "could not check which version of model {model} the server serves: {reason}"
            )),
        }
    }
}

/// Asks the server which version it serves and why it serves none, and
/// returns that with the `/version` body.
fn query_served(info: &ServerInfo) -> (ServedVersion, Option<serde_json::Value>) {
    let body = match Client::for_server(info).get_json("/version") {
        Ok(body) => body,
        Err(error) => return (ServedVersion::NotResponding(error.to_string()), None),
    };
    let load_error = body["load_error"]["message"].as_str().map(str::to_string);
    let served = match (body["version"].as_i64(), load_error) {
        (Some(version), _) => ServedVersion::Version(version),
        (None, Some(message)) => ServedVersion::LoadFailed(message),
        (None, None) => ServedVersion::Nothing,
    };
    (served, Some(body))
}

fn stop(store_dir: &Path, timeout: u64) -> anyhow::Result<u8> {
    match daemon::stop(store_dir, Duration::from_secs(timeout))? {
        StopOutcome::Stopped { pid, forced: false } => outln!("Server pid {pid} stopped."),
        StopOutcome::Stopped { pid, forced: true } => {
            outln!("Server pid {pid} killed: it did not stop within {timeout} s of SIGTERM.")
        }
        StopOutcome::NotRunning {
            stale_pid: Some(pid),
        } => {
            outln!("No server running; removed the stale pid file of pid {pid}.")
        }
        StopOutcome::NotRunning { stale_pid: None } => outln!("No server running."),
    }
    Ok(0)
}

/// Prints the status of a running server, with the reason when it serves
/// no model or an older version than production.
fn print_running(info: &ServerInfo, report: &serde_json::Value) {
    let url = report["url"].as_str().unwrap_or_default();
    let load_error = report["load_error"]["message"].as_str();
    match report["version"].as_i64() {
        Some(version) => outln!(
            "Server running: pid {}, {url} serving model {} (version {version}), since {}",
            info.pid,
            info.model,
            info.started_at
        ),
        None if report["responding"] == true => outln!(
            "Server running: pid {}, {url} for model {}, serving no model, since {}",
            info.pid,
            info.model,
            info.started_at
        ),
        None => outln!(
            "Server running: pid {}, {url} for model {} (not responding), since {}",
            info.pid,
            info.model,
            info.started_at
        ),
    }
    match (load_error, report["version"].as_i64()) {
        (Some(message), None) => outln!("It serves no model because {message}"),
        (Some(message), Some(version)) => outln!(
            "It keeps serving version {version} because the production version failed to load: {message}"
        ),
        (None, None) if report["responding"] == true => outln!(
            "It serves no model because model {} has no production version; promote one with `flowrun models promote` or run the deployment pipeline.",
            info.model
        ),
        _ => {}
    }
}

fn status(store_dir: &Path, json: bool) -> anyhow::Result<u8> {
    let files = ServerFiles::new(store_dir);
    let status = files.status()?;
    let (report, code) = match &status {
        ServerStatus::Running(info) => {
            let client = Client::for_server(info);
            let (_, served) = query_served(info);
            let field = |name: &str| {
                served
                    .as_ref()
                    .map_or(serde_json::Value::Null, |body| body[name].clone())
            };
            let report = serde_json::json!({
                "state": "running",
                "pid": info.pid,
                "host": info.host,
                "port": info.port,
                "url": client.base_url(),
                "model": info.model,
                "version": field("version"),
                "load_error": field("load_error"),
                "responding": served.is_some(),
                "started_at": info.started_at,
                "log": files.log_path(),
            });
            (report, 0)
        }
        ServerStatus::Starting => (serde_json::json!({"state": "starting"}), 0),
        ServerStatus::Stopped { stale_pid } => (
            serde_json::json!({"state": "stopped", "stale_pid": stale_pid}),
            EXIT_NOT_RUNNING,
        ),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(code);
    }
    match status {
        ServerStatus::Running(info) => print_running(&info, &report),
        ServerStatus::Starting => outln!("Server starting."),
        ServerStatus::Stopped {
            stale_pid: Some(pid),
        } => outln!(
            "No server running (a stale pid file names pid {pid}; the next start or `flowrun serve stop` removes it)."
        ),
        ServerStatus::Stopped { stale_pid: None } => outln!("No server running."),
    }
    Ok(code)
}
