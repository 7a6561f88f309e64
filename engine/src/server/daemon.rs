//! The files a server keeps in the store, and starting, stopping and
//! querying a server running as a daemon.
//!
//! ```text
//! <store>/server/
//!   server.lock   locked for the whole life of a server process
//!   server.pid    the server's process id, written once it listens
//!   server.json   pid, host, port, model and start time (ServerInfo)
//!   server.log    the daemon's log (stdout and stderr), appended to
//!   deploy.lock   serializes promotions and the reloads that follow them
//! ```
//!
//! Whether a server runs is decided by the lock, never by the pid file: the
//! operating system releases the lock when the process dies, even on
//! `kill -9`, while a pid file can outlive its process and its pid can be
//! reused. A pid file whose lock is free is stale; the next server start or
//! `flowrun serve stop` removes it.
//!
//! A daemon is this same executable run as `flowrun --store STORE serve
//! ...` in its own process group, with its output in `server.log`, so that
//! it outlives the command that started it and ignores that terminal's
//! Ctrl-C. [`start`] therefore requires the path of a flowrun command-line
//! binary whose registry has the model flavors to serve.
//!
//! This module never binds a port or loads a model; the server does.

use super::{ServeConfig, ServeError, client};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The state a running server records in `server.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's process id.
    pub pid: u32,
    /// The address it bound.
    pub host: String,
    /// The port it listens on.
    pub port: u16,
    /// The registered model it serves.
    pub model: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
}

/// Whether a server runs for a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStatus {
    /// A server holds the lock and has written its state file.
    Running(ServerInfo),
    /// A server holds the lock but has not written its state file yet.
    Starting,
    /// No server runs; `stale_pid` is the pid left in a stale pid file.
    Stopped {
        /// The pid of a stale pid file, if one is left.
        stale_pid: Option<u32>,
    },
}

/// Errors from controlling a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A server already runs for the store.
    #[error(
        "a flowrun server is already running for this store (pid {}, port {}); stop it with `flowrun serve stop`",
        .0.pid, .0.port
    )]
    AlreadyRunning(ServerInfo),

    /// The port is taken by another process. The message gives no fix,
    /// because the way to choose another port depends on the caller: a
    /// flag of `flowrun serve` or a parameter of a pipeline.
    #[error("port {port} already in use on {host}, so the server could not start")]
    PortInUse {
        /// The address.
        host: String,
        /// The port.
        port: u16,
    },

    /// The daemon exited during start-up.
    #[error("the server exited during start-up: {message} (log: {log})")]
    Exited {
        /// The last error line of its log.
        message: String,
        /// The log file.
        log: PathBuf,
    },

    /// The daemon did not respond in time.
    #[error("the server did not start within {seconds} s; see its log {log}")]
    StartTimeout {
        /// The time waited.
        seconds: u64,
        /// The log file.
        log: PathBuf,
    },

    /// The process cannot be started or signalled.
    #[error("failed to {action}: {source}")]
    Process {
        /// The operation that failed.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A server file cannot be read or written.
    #[error(transparent)]
    Files(#[from] ServeError),

    /// The server holds the lock but wrote no pid, so it cannot be
    /// signalled.
    #[error(
        "a server holds the lock of {0} but has written no pid file yet; wait a moment and try again"
    )]
    NoPid(PathBuf),

    /// The server did not exit after SIGTERM and SIGKILL.
    #[error("server pid {0} did not exit after SIGTERM and SIGKILL")]
    StopTimeout(u32),
}

/// The result of [`stop`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The server exited; `forced` when it needed SIGKILL.
    Stopped {
        /// The server's pid.
        pid: u32,
        /// Whether SIGTERM was not enough.
        forced: bool,
    },
    /// No server was running; a stale pid file, if any, was removed.
    NotRunning {
        /// The pid of the stale pid file removed.
        stale_pid: Option<u32>,
    },
}

/// The paths of a store's server files.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    dir: PathBuf,
}

impl ServerFiles {
    /// Returns the server files of a store folder.
    pub fn new(store_dir: &Path) -> Self {
        ServerFiles {
            dir: store_dir.join("server"),
        }
    }

    /// Returns the folder of the server files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the pid file.
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("server.pid")
    }

    /// Returns the state file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("server.json")
    }

    /// Returns the daemon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Returns the server lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("server.lock")
    }

    /// Returns the lock file that serializes deployments.
    pub fn deploy_lock_path(&self) -> PathBuf {
        self.dir.join("deploy.lock")
    }

    /// Creates the folder.
    pub fn create_dir(&self) -> Result<(), ServeError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| ServeError::Io {
            action: "create the server folder",
            path: self.dir.clone(),
            source,
        })
    }

    fn open_lock(&self, path: &Path) -> Result<File, ServeError> {
        self.create_dir()?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| ServeError::Io {
                action: "open the lock file",
                path: path.to_path_buf(),
                source,
            })
    }

    /// Tries to take the server lock without waiting. `Ok(None)` means
    /// another process has it.
    fn try_server_lock(&self) -> Result<Option<File>, ServeError> {
        let path = self.lock_path();
        let file = self.open_lock(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(ServeError::Io {
                action: "lock",
                path,
                source,
            }),
        }
    }

    /// Takes the server lock for a server's lifetime. Retries for half a
    /// second, because [`ServerFiles::status`] holds the lock for an
    /// instant when it probes it.
    pub(crate) fn acquire_server_lock(&self, store: &Path) -> Result<File, ServeError> {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            if let Some(file) = self.try_server_lock()? {
                return Ok(file);
            }
            if Instant::now() >= deadline {
                return Err(ServeError::AlreadyRunning {
                    store: store.to_path_buf(),
                    running: self.read_info(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes the deployment lock, waiting for any other deployment of the
    /// store to finish. Dropping the file releases it.
    pub fn lock_deployments(&self) -> Result<File, ServeError> {
        let path = self.deploy_lock_path();
        let file = self.open_lock(&path)?;
        file.lock().map_err(|source| ServeError::Io {
            action: "lock",
            path,
            source,
        })?;
        Ok(file)
    }

    /// Reads the state file, if present and valid.
    pub fn read_info(&self) -> Option<ServerInfo> {
        let text = std::fs::read_to_string(self.state_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Reads the pid file, if present and valid.
    pub fn read_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_path())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Returns whether a server runs, by probing the lock.
    pub fn status(&self) -> Result<ServerStatus, ServeError> {
        match self.try_server_lock()? {
            Some(_probe) => Ok(ServerStatus::Stopped {
                stale_pid: self.read_pid(),
            }),
            None => Ok(match self.read_info() {
                Some(info) => ServerStatus::Running(info),
                None => ServerStatus::Starting,
            }),
        }
    }

    /// Removes a pid file and state file left by a server that died. Call
    /// only while holding the server lock, or after finding it free.
    pub(crate) fn remove_stale(&self) {
        if let Some(pid) = self.read_pid() {
            tracing::warn!(
                pid,
                path = %self.pid_path().display(),
                "replacing a stale pid file: process {pid} no longer holds the server lock"
            );
        }
        let _ = std::fs::remove_file(self.pid_path());
        let _ = std::fs::remove_file(self.state_path());
    }

    /// Writes the pid file and the state file, each to a temporary file
    /// renamed into place so that readers never see half a file.
    pub(crate) fn write_running(&self, info: &ServerInfo) -> Result<(), ServeError> {
        let state = serde_json::to_string_pretty(info).unwrap_or_default();
        write_atomic(&self.state_path(), state.as_bytes())?;
        write_atomic(&self.pid_path(), format!("{}\n", info.pid).as_bytes())
    }

    /// Removes the pid and state files if they still name `pid`.
    pub(crate) fn remove_running(&self, pid: u32) {
        if self.read_pid() == Some(pid) {
            let _ = std::fs::remove_file(self.pid_path());
            let _ = std::fs::remove_file(self.state_path());
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ServeError> {
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let io = |action, source| ServeError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::create(&temp).map_err(|e| io("create", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| io("rename into place", e))
}

/// Starts a server for `config.store_dir` as a daemon and waits until it
/// responds on its port. `exe` is a flowrun command-line binary.
///
/// Fails with [`DaemonError::AlreadyRunning`] when a server runs already,
/// with [`DaemonError::PortInUse`] when another process has the port, and
/// with [`DaemonError::Exited`], carrying the server's error, when the
/// daemon exits during start-up for another reason.
pub fn start(exe: &Path, config: &ServeConfig, wait: Duration) -> Result<ServerInfo, DaemonError> {
    let files = ServerFiles::new(&config.store_dir);
    if let ServerStatus::Running(info) = files.status()? {
        return Err(DaemonError::AlreadyRunning(info));
    }
    let port_in_use = || DaemonError::PortInUse {
        host: config.host.clone(),
        port: config.port,
    };
    if port_taken(&config.host, config.port) {
        return Err(port_in_use());
    }
    files.create_dir()?;
    let log_path = files.log_path();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| DaemonError::Process {
            action: format!("open the server log {}", log_path.display()),
            source,
        })?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let clone = |log: &File| {
        log.try_clone().map_err(|source| DaemonError::Process {
            action: "share the server log with the daemon".to_string(),
            source,
        })
    };

    let mut command = Command::new(exe);
    command
        .arg("--store")
        .arg(&config.store_dir)
        .arg("serve")
        .args(["--host", &config.host])
        .args(["--port", &config.port.to_string()])
        .args(["--model", &config.model])
        .args(["--max-rows", &config.max_rows.to_string()])
        .args([
            "--poll-interval-ms",
            &config.poll_interval.as_millis().to_string(),
        ])
        .args([
            "--shutdown-timeout",
            &config.shutdown_timeout.as_secs().to_string(),
        ])
        .args(["--workers", &config.workers.to_string()])
        .stdin(Stdio::null())
        .stdout(clone(&log)?)
        .stderr(clone(&log)?)
        // Its own process group: the terminal's Ctrl-C does not reach it.
        .process_group(0);
    if std::env::var_os("FLOWRUN_LOG").is_none() {
        command.env("FLOWRUN_LOG", "info");
    }
    let mut child = command.spawn().map_err(|source| DaemonError::Process {
        action: format!("start {}", exe.display()),
        source,
    })?;
    let pid = child.id();
    tracing::info!(pid, log = %log_path.display(), "started the server daemon");

    let deadline = Instant::now() + wait;
    loop {
        if let Ok(Some(_status)) = child.try_wait() {
            if let ServerStatus::Running(other) = files.status()? {
                return Err(DaemonError::AlreadyRunning(other));
            }
            // Another process can take the port between the check above
            // and the daemon's bind.
            if port_taken(&config.host, config.port) {
                return Err(port_in_use());
            }
            return Err(DaemonError::Exited {
                message: last_error_line(&log_path, log_start),
                log: log_path,
            });
        }
        if let ServerStatus::Running(info) = files.status()?
            && info.pid == pid
            && client::Client::for_server(&info).ping().is_ok()
        {
            return Ok(info);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DaemonError::StartTimeout {
                seconds: wait.as_secs(),
                log: log_path,
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Returns whether binding `host:port` fails because another socket has the
/// port. Port 0 is never taken, and other bind errors are left for the
/// daemon to report.
fn port_taken(host: &str, port: u16) -> bool {
    port != 0
        && std::net::TcpListener::bind((host, port))
            .is_err_and(|error| error.kind() == std::io::ErrorKind::AddrInUse)
}

/// Returns the last `error:` line written to the log after `offset`, or a
/// note that there is none.
fn last_error_line(log: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_string(&mut text);
    }
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| "it exited without an error message".to_string())
}

/// Stops the store's server: SIGTERM, a wait of `timeout` for requests in
/// flight to finish, then SIGKILL. Removes a stale pid file when no server
/// runs.
pub fn stop(store_dir: &Path, timeout: Duration) -> Result<StopOutcome, DaemonError> {
    let files = ServerFiles::new(store_dir);
    let pid = match files.status()? {
        ServerStatus::Stopped { stale_pid } => {
            files.remove_stale();
            return Ok(StopOutcome::NotRunning { stale_pid });
        }
        ServerStatus::Running(info) => info.pid,
        ServerStatus::Starting => files
            .read_pid()
            .ok_or(DaemonError::NoPid(files.lock_path()))?,
    };

    signal(pid, Signal::SIGTERM)?;
    if wait_for_exit(&files, timeout)? {
        files.remove_running(pid);
        return Ok(StopOutcome::Stopped { pid, forced: false });
    }
    tracing::warn!(
        pid,
        "the server did not exit after SIGTERM; sending SIGKILL"
    );
    signal(pid, Signal::SIGKILL)?;
    if wait_for_exit(&files, Duration::from_secs(5))? {
        files.remove_running(pid);
        return Ok(StopOutcome::Stopped { pid, forced: true });
    }
    Err(DaemonError::StopTimeout(pid))
}

fn signal(pid: u32, signal: Signal) -> Result<(), DaemonError> {
    let raw = i32::try_from(pid).map_err(|_| DaemonError::Process {
        action: format!("signal pid {pid}"),
        source: std::io::Error::other("pid out of range"),
    })?;
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(errno) => Err(DaemonError::Process {
            action: format!("send {signal} to pid {pid}"),
            source: errno.into(),
        }),
    }
}

/// Waits until the server lock is free; returns false on timeout.
fn wait_for_exit(files: &ServerFiles, timeout: Duration) -> Result<bool, DaemonError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let ServerStatus::Stopped { .. } = files.status()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
