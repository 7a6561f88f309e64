//! `flowrun serve`, `serve --daemon`, `serve stop` and `serve status`: run
//! the scoring server in the foreground or as a daemon, and control the
//! store's running server. The server itself lives in the engine
//! (`flowrun_engine::server`); this module turns flags into its settings
//! and prints what happened. It never reads the registry or a model.

use crate::args::{ServeArgs, ServeCommand};
use crate::output::outln;
use anyhow::Context;
use flowrun_engine::Registry;
use flowrun_engine::server::client::Client;
use flowrun_engine::server::daemon::{self, StopOutcome};
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
            eprintln!(
                "warning: failed to start the log flusher; log lines may be delayed: {error}"
            );
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

fn start_daemon(args: &ServeArgs, store_dir: &Path) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("failed to find the flowrun executable")?;
    let config = config(args, store_dir);
    let info = daemon::start(&exe, &config, Duration::from_secs(60))?;
    let log = ServerFiles::new(store_dir).log_path();
    outln!(
        "Server started: pid {}, http://{}:{} serving model {} (log: {})",
        info.pid,
        info.host,
        info.port,
        info.model,
        log.display()
    );
    Ok(0)
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

fn status(store_dir: &Path, json: bool) -> anyhow::Result<u8> {
    let files = ServerFiles::new(store_dir);
    let status = files.status()?;
    let (report, code) = match &status {
        ServerStatus::Running(info) => {
            let client = Client::for_server(info);
            let served = client.get_json("/version").ok();
            let version = served
                .as_ref()
                .and_then(|v| v.get("version"))
                .and_then(|v| v.as_i64());
            let report = serde_json::json!({
                "state": "running",
                "pid": info.pid,
                "host": info.host,
                "port": info.port,
                "url": client.base_url(),
                "model": info.model,
                "version": version,
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
        ServerStatus::Running(info) => {
            let version = match report["version"].as_i64() {
                Some(version) => format!("version {version}"),
                None if report["responding"] == true => "no version loaded".to_string(),
                None => "not responding".to_string(),
            };
            outln!(
                "Server running: pid {}, {} serving model {} ({version}), since {}",
                info.pid,
                report["url"].as_str().unwrap_or_default(),
                info.model,
                info.started_at
            );
        }
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
