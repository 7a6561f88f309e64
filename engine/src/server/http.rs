//! The server process: the lock and pid files, the listener, the worker
//! threads that serve hyper HTTP/1.1 connections, the registry poll, the
//! access log, and graceful shutdown.
//!
//! Start-up order matters for the promises other modules make:
//!
//! 1. Take the store's server lock, so that a second server fails at once.
//! 2. Remove a stale pid file (its process no longer holds the lock).
//! 3. Bind the port. A port in use fails here, before any pid file is
//!    written, so a failed start leaves none.
//! 4. Load the production version, so the first request finds a model.
//! 5. Write the pid and state files; from here a daemon counts as started.
//!
//! On SIGTERM or Ctrl-C the listener closes, idle keep-alive connections
//! close, and requests in flight finish, waited for up to the shutdown
//! timeout. The pid and state files are then removed.
//!
//! Each request is logged once under the target `flowrun::access`, with
//! method, path, status and latency: at debug level when it succeeds, and
//! at info level, with the reason, when it is rejected. Bodies are never
//! logged. Every minute with traffic, an info line counts the requests.
//! Successful requests stay at debug because writing one line per request
//! to the log file cut single-row throughput by about 40% on a 2-core
//! machine (wrk, 8 connections: from about 41,000 to 25,000 requests per
//! second).

use super::daemon::{ServerFiles, ServerInfo};
use super::router::{self, RejectReason};
use super::state::{LoadError, ServerState, StateConfig};
use super::{ServeConfig, ServeError};
use crate::registry::Registry;
use crate::runstore::RunStore;
use bytes::Bytes;
use flowrun_artifacts::store::LocalStore;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Runs a server in this process until SIGTERM or Ctrl-C. Blocks.
pub fn run(config: &ServeConfig, registry: Registry) -> Result<(), ServeError> {
    let files = ServerFiles::new(&config.store_dir);
    let _lock = files.acquire_server_lock(&config.store_dir)?;
    files.remove_stale();

    let listener = bind(&config.host, config.port)?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        host: config.host.clone(),
        port: config.port,
        source,
    })?;

    let runs = RunStore::open(&config.store_dir.join(crate::runstore::DEFAULT_FILE_NAME))?;
    let artifacts = LocalStore::open(&config.store_dir)?;
    let state_config = StateConfig {
        model: config.model.clone(),
        max_rows: config.max_rows,
    };
    let state = Arc::new(ServerState::new(state_config, registry, runs, artifacts));
    match state.reload() {
        Ok(outcome) => tracing::debug!(version = outcome.version, "initial model loaded"),
        Err(LoadError::NoProductionVersion(model)) => tracing::info!(
            model,
            "no production version yet; /ping answers 503 until one is promoted"
        ),
        // The state logged the error; the server starts without a model
        // and keeps polling the registry.
        Err(_) => {}
    }

    let info = ServerInfo {
        pid: std::process::id(),
        host: config.host.clone(),
        port: local.port(),
        model: config.model.clone(),
        started_at: super::now_rfc3339(),
    };
    files.write_running(&info)?;
    tracing::info!(
        address = %local,
        pid = info.pid,
        model = %config.model,
        "flowrun server listening on http://{local}"
    );

    let result = serve(&state, listener, config);
    files.remove_running(info.pid);
    tracing::info!(pid = info.pid, "flowrun server stopped");
    result
}

/// Binds the address, telling a port in use apart from other failures.
fn bind(host: &str, port: u16) -> Result<std::net::TcpListener, ServeError> {
    let listener = std::net::TcpListener::bind((host, port)).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse {
                host: host.to_string(),
                port,
            }
        } else {
            ServeError::Bind {
                host: host.to_string(),
                port,
                source,
            }
        }
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind {
            host: host.to_string(),
            port,
            source,
        })?;
    Ok(listener)
}

/// Runs the workers and the acceptor until a shutdown signal, then drains
/// the connections. Blocks.
///
/// Each worker is a thread with a single-threaded runtime that owns its
/// connections from accept to close, so a request never hops between
/// threads. The acceptor, on the calling thread with the registry poll and
/// the signal handlers, hands new connections to the workers in turn. With
/// keep-alive clients the acceptor is idle, and a request costs no
/// cross-thread wake-up, which on a 2-core machine is a large share of the
/// cost of a small request.
fn serve(
    state: &Arc<ServerState>,
    listener: std::net::TcpListener,
    config: &ServeConfig,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for index in 0..config.workers.max(1) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let worker = Worker {
            state: Arc::clone(state),
            connections: receiver,
            stop: stop_rx.clone(),
            max_body: config.max_body_bytes,
            shutdown_timeout: config.shutdown_timeout,
        };
        let thread = std::thread::Builder::new()
            .name(format!("flowrun-http-{index}"))
            .spawn(move || worker.run())
            .map_err(ServeError::Runtime)?;
        senders.push(sender);
        workers.push(thread);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let accepted = runtime.block_on(accept(state, listener, senders, config.poll_interval));
    let _ = stop_tx.send(true);
    for worker in workers {
        if worker.join().is_err() {
            tracing::error!("a server worker panicked during shutdown");
        }
    }
    accepted
}

/// Accepts connections and deals them to the workers until a shutdown
/// signal; polls the registry meanwhile.
async fn accept(
    state: &Arc<ServerState>,
    listener: std::net::TcpListener,
    workers: Vec<tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>,
    poll_interval: std::time::Duration,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServeError::Runtime)?;
    let poller = tokio::spawn(poll_registry(Arc::clone(state), poll_interval));
    let summary = tokio::spawn(log_request_counts(Arc::clone(state)));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut next = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Running out of file descriptors is the usual cause;
                        // back off instead of spinning.
                        tracing::warn!(%error, "failed to accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match stream.into_std() {
                    Ok(stream) => {
                        if workers[next].send((stream, peer)).is_err() {
                            tracing::error!(worker = next, "a server worker has stopped; dropping the connection");
                        }
                        next = (next + 1) % workers.len();
                    }
                    Err(error) => tracing::warn!(%error, %peer, "failed to hand a connection to a worker"),
                }
            }
            signal = &mut shutdown => {
                tracing::info!(signal, "shutting down: no new connections; finishing requests in flight");
                break;
            }
        }
    }
    poller.abort();
    summary.abort();
    Ok(())
}

/// One worker thread and the connections it serves.
struct Worker {
    state: Arc<ServerState>,
    connections: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    stop: tokio::sync::watch::Receiver<bool>,
    max_body: usize,
    shutdown_timeout: std::time::Duration,
}

impl Worker {
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "failed to start a server worker's runtime");
                return;
            }
        };
        runtime.block_on(self.serve());
    }

    /// Serves connections until the stop flag, then waits for the open
    /// ones under the shutdown timeout.
    async fn serve(mut self) {
        let graceful = GracefulShutdown::new();
        let mut builder = http1::Builder::new();
        builder.keep_alive(true);
        loop {
            tokio::select! {
                received = self.connections.recv() => {
                    let Some((stream, peer)) = received else { break };
                    self.spawn_connection(&builder, &graceful, stream, peer);
                }
                _ = self.stop.changed() => break,
            }
        }

        let open = graceful.count();
        tokio::select! {
            () = graceful.shutdown() => {
                tracing::debug!(connections = open, "worker connections closed");
            }
            () = tokio::time::sleep(self.shutdown_timeout) => {
                tracing::warn!(
                    timeout_s = self.shutdown_timeout.as_secs(),
                    "shutdown timed out; closing the remaining connections"
                );
            }
        }
    }

    fn spawn_connection(
        &self,
        builder: &http1::Builder,
        graceful: &GracefulShutdown,
        stream: std::net::TcpStream,
        peer: SocketAddr,
    ) {
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, %peer, "failed to register a connection");
                return;
            }
        };
        let state = Arc::clone(&self.state);
        let max_body = self.max_body;
        let service =
            service_fn(move |request| answer(Arc::clone(&state), request, peer, max_body));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT) and returns the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "failed to listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// Checks the registry's production version every `interval`, so that the
/// server follows promotions whose notification did not arrive.
async fn poll_registry(state: Arc<ServerState>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let state = Arc::clone(&state);
        if let Err(error) = tokio::task::spawn_blocking(move || state.poll()).await {
            tracing::warn!(%error, "the registry poll failed");
        }
    }
}

/// Logs the number of requests handled, once a minute when there were any.
async fn log_request_counts(state: Arc<ServerState>) {
    const PERIOD: std::time::Duration = std::time::Duration::from_secs(60);
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let tally = state.take_counts();
        if tally.total > 0 {
            tracing::info!(
                target: "flowrun::access",
                requests = tally.total,
                client_errors = tally.client_errors,
                server_errors = tally.server_errors,
                period_s = PERIOD.as_secs(),
                "requests handled in the last minute"
            );
        }
    }
}

/// Reads the body within the size limit, routes the request and writes the
/// access log line.
async fn answer(
    state: Arc<ServerState>,
    request: Request<Incoming>,
    peer: SocketAddr,
    max_body: usize,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();

    let (parts, body) = request.into_parts();
    let response = match Limited::new(body, max_body).collect().await {
        Ok(collected) => {
            let request = Request::from_parts(parts, collected.to_bytes());
            router::handle(&state, request, peer).await
        }
        Err(error) => {
            let too_large = error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let mut response = if too_large {
                router::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "REQUEST_LIMIT_EXCEEDED",
                    format!("the request body is larger than {max_body} bytes"),
                )
            } else {
                router::error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    format!("failed to read the request body: {error}"),
                )
            };
            let version = state.current().map_or_else(
                || http::HeaderValue::from_static("none"),
                |m| m.header.clone(),
            );
            response
                .headers_mut()
                .insert(router::VERSION_HEADER, version);
            response
        }
    };

    let status = response.status().as_u16();
    let latency_us = started.elapsed().as_micros() as u64;
    state.count_request(status);
    match response.extensions().get::<RejectReason>() {
        Some(RejectReason(reason)) => tracing::info!(
            target: "flowrun::access",
            %method, path, status, latency_us, %peer, reason = %reason,
            "request rejected"
        ),
        None => tracing::debug!(
            target: "flowrun::access",
            %method, path, status, latency_us,
            "request"
        ),
    }
    Ok(response)
}
