//! The HTTP routes, as a function from a request with its whole body to a
//! response. Tests call [`handle`] directly, without a socket.
//!
//! | route | response |
//! |---|---|
//! | `GET /ping`, `GET /health` | 200 with the served version; 503 while no model is loaded |
//! | `GET /version` | flowrun's version, the served model version and the last load error |
//! | `GET /metadata` | name, version, flavor, features in training order with their types, metrics |
//! | `POST /invocations` | `{"predictions": [...]}`; see [`super::scoring`] for the bodies |
//! | `POST /admin/reload` | loads the registry's production version; only from a loopback address |
//! | `GET /`, `/models…`, `/runs…`, `/assets/…` | the web pages, see `super::web` |
//!
//! `HEAD` on the four `GET` routes returns the `GET` response's status and
//! headers without the body, as HTTP requires.
//!
//! While no model is loaded, the 503 message gives the reason: no
//! production version yet, or the load error of the production version
//! with what to do about it. `/health` and `/version` also report a load error while an
//! older version keeps serving.
//!
//! Every response carries `x-flowrun-model-version: NAME/VERSION` (`none`
//! before a model is loaded), and every error is a JSON object
//! `{"error_code": ..., "message": ...}`. Client mistakes get a 4xx: 400 for
//! a malformed body or one that does not fit the model, 413 for a batch over
//! the row limit, 415 for another content type. A 5xx means the server
//! failed. Columns the model does not read are ignored, and the response
//! names them in `x-flowrun-ignored-columns`. Categorical values that are
//! not training levels are scored as the model's unseen level, and the
//! response names their columns in `x-flowrun-unknown-levels`. An unknown
//! path gets the
//! JSON 404, or the HTML 404 page when the request's `Accept` names
//! `text/html`, as browsers send it.
//!
//! The handler takes the served model once per request and keeps that `Arc`
//! until the response is built, so a swap never affects a request in flight.
//! It never holds a lock across an `.await`.

use super::scoring::{self, BodyFormat, ScoringError};
use super::state::{LoadedModel, ServerState};
use super::web;
use bytes::Bytes;
use flowrun_artifacts::FeatureKind;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// The header that names the served model version on every response.
pub const VERSION_HEADER: &str = "x-flowrun-model-version";

/// The header that lists request columns the model ignored.
pub const IGNORED_COLUMNS_HEADER: &str = "x-flowrun-ignored-columns";

/// The header that lists categorical features that received values unseen
/// in training.
pub const UNKNOWN_LEVELS_HEADER: &str = "x-flowrun-unknown-levels";

/// The `Allow` value of the read-only routes.
const GET_OR_HEAD: &str = "GET, HEAD";

/// Bodies larger than this are parsed and scored on a blocking thread, so
/// that a large batch does not stall the requests that share its worker.
const INLINE_BODY_BYTES: usize = 32 * 1024;

/// The reason a request was rejected, kept in the response's extensions so
/// that the access log writes it once with the request's line.
#[derive(Debug, Clone)]
pub struct RejectReason(pub String);

/// Handles one request. `peer` is the client's address, which decides
/// whether the admin routes are allowed.
pub async fn handle(
    state: &Arc<ServerState>,
    request: Request<Bytes>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let model = state.current();
    let mut response = route(state, model.as_ref(), request, peer).await;
    let version = match &model {
        Some(model) => model.header.clone(),
        None => HeaderValue::from_static("none"),
    };
    response.headers_mut().insert(VERSION_HEADER, version);
    response
}

async fn route(
    state: &Arc<ServerState>,
    model: Option<&Arc<LoadedModel>>,
    request: Request<Bytes>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let method = request.method();
    match (path, method) {
        ("/ping" | "/health" | "/version" | "/metadata", &Method::GET) => {
            read_only(state, model, path)
        }
        ("/ping" | "/health" | "/version" | "/metadata", &Method::HEAD) => {
            without_body(read_only(state, model, path))
        }
        ("/invocations", &Method::POST) => invocations(state, model, request).await,
        ("/admin/reload", &Method::POST) => reload(state, peer).await,
        ("/ping" | "/health" | "/version" | "/metadata", _) => method_not_allowed(GET_OR_HEAD),
        ("/invocations" | "/admin/reload", _) => method_not_allowed("POST"),
        (path, _) if web::handles(path) => web::route(state, model, request).await,
        _ if web::wants_html(&request) => web::not_found_response(state, model, path),
        _ => error(
            StatusCode::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            format!(
                "no route {path}; the routes are /ping, /health, /version, /metadata, \
                 /invocations and /admin/reload, and the web pages /, /models and /runs"
            ),
        ),
    }
}

/// Builds the response of the `GET` routes that only read the state.
fn read_only(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    path: &str,
) -> Response<Full<Bytes>> {
    match path {
        "/version" => version(state, model),
        "/metadata" => metadata(state, model),
        _ => health(state, model),
    }
}

/// Turns a `GET` response into the `HEAD` response: the same status and
/// headers, with `Content-Length` giving the size of the body left out.
fn without_body(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    use hyper::body::Body as _;
    let (mut parts, body) = response.into_parts();
    if let Some(length) = body.size_hint().exact() {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}

fn health(state: &ServerState, model: Option<&Arc<LoadedModel>>) -> Response<Full<Bytes>> {
    match model {
        Some(model) => json_response(
            StatusCode::OK,
            &json!({
                "status": "ok",
                "model": model.name,
                "version": model.version,
                "uptime_seconds": state.uptime().as_secs(),
                "load_error": state.last_load_failure().as_deref(),
            }),
        ),
        None => no_model(state),
    }
}

fn version(state: &ServerState, model: Option<&Arc<LoadedModel>>) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({
            "flowrun": env!("CARGO_PKG_VERSION"),
            "model": model.map(|m| m.name.clone()),
            "version": model.map(|m| m.version),
            "load_error": state.last_load_failure().as_deref(),
        }),
    )
}

fn metadata(state: &ServerState, model: Option<&Arc<LoadedModel>>) -> Response<Full<Bytes>> {
    let Some(model) = model else {
        return no_model(state);
    };
    let features: Vec<serde_json::Value> = model
        .features
        .iter()
        .map(|f| match &f.kind {
            FeatureKind::Numeric => json!({"name": f.name, "type": "numeric"}),
            FeatureKind::Categorical { levels } => {
                json!({"name": f.name, "type": "categorical", "levels": levels})
            }
        })
        .collect();
    let info = &model.info;
    json_response(
        StatusCode::OK,
        &json!({
            "model": model.name,
            "version": model.version,
            "flavor": model.flavor,
            "target": model.target,
            "features": features,
            "metrics": info.version.metrics,
            "stage": info.version.stage,
            "run_id": info.version.run_id,
            "artifact_hash": info.version.artifact_hash,
            "registered_at": info.version.created_at,
            "loaded_at": model.loaded_at,
            "max_rows": state.config().max_rows,
        }),
    )
}

async fn invocations(
    state: &Arc<ServerState>,
    model: Option<&Arc<LoadedModel>>,
    request: Request<Bytes>,
) -> Response<Full<Bytes>> {
    let Some(model) = model else {
        return no_model(state);
    };
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not ASCII)"));
    let format = match BodyFormat::from_content_type(content_type) {
        Ok(format) => format,
        Err(e) => return scoring_error(e),
    };
    let body = request.into_body();
    let max_rows = state.config().max_rows;

    let scored = if body.len() <= INLINE_BODY_BYTES {
        score_batch(model, format, &body, max_rows)
    } else {
        let model = Arc::clone(model);
        let task = move || score_batch(&model, format, &body, max_rows);
        match tokio::task::spawn_blocking(task).await {
            Ok(scored) => scored,
            Err(join) => Err(Failure::Server(format!("the scoring task failed: {join}"))),
        }
    };

    match scored {
        Ok(scored) => {
            let predictions_body = scoring::predictions_body(&scored.predictions);
            let mut response = Response::new(Full::new(predictions_body));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let ignored = scored.ignored_columns;
            if !ignored.is_empty() {
                if state.note_ignored_columns() {
                    tracing::warn!(
                        model = %model.label(),
                        columns = %ignored.join(", "),
                        "ignored request columns that the model does not read (logged for the first request and every 1000th)"
                    );
                }
                if let Ok(value) = HeaderValue::from_str(&ignored.join(",")) {
                    headers.insert(IGNORED_COLUMNS_HEADER, value);
                }
            }
            let unknown = scored.unknown_level_columns;
            if !unknown.is_empty() {
                // Column names only: values can be personal data.
                tracing::warn!(
                    model = %model.label(),
                    columns = %unknown.join(", "),
                    "scored categorical values unseen in training as the model's unknown level"
                );
                if let Ok(value) = HeaderValue::from_str(&unknown.join(",")) {
                    headers.insert(UNKNOWN_LEVELS_HEADER, value);
                }
            }
            response
        }
        Err(Failure::Client(e)) => scoring_error(e),
        Err(Failure::Server(message)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
        }
    }
}

/// The reason a batch was not scored.
pub(super) enum Failure {
    /// The request does not fit the model; a 4xx.
    Client(ScoringError),
    /// The model failed; a 5xx.
    Server(String),
}

/// A scored batch and what the response reports about its columns.
pub(super) struct Scored {
    /// One prediction per row.
    pub(super) predictions: Vec<f64>,
    /// Request columns the model does not read, sorted.
    pub(super) ignored_columns: Vec<String>,
    /// Categorical features that received values unseen in training.
    pub(super) unknown_level_columns: Vec<String>,
}

/// Parses and scores a batch with one model, returning the predictions and
/// the ignored columns. The predict page scores through this function.
pub(super) fn score(
    model: &LoadedModel,
    format: BodyFormat,
    body: &Bytes,
    max_rows: usize,
) -> Result<(Vec<f64>, Vec<String>), Failure> {
    let scored = score_batch(model, format, body, max_rows)?;
    Ok((scored.predictions, scored.ignored_columns))
}

/// Parses and scores a batch with one model, as `/invocations` does.
pub(super) fn score_batch(
    model: &LoadedModel,
    format: BodyFormat,
    body: &Bytes,
    max_rows: usize,
) -> Result<Scored, Failure> {
    use crate::predict::PredictError;
    let batch =
        scoring::parse_batch(format, body, &model.features, max_rows).map_err(Failure::Client)?;
    let predictions = model.predictor.predict(&batch.table).map_err(|e| match e {
        PredictError::MissingFeature(_) | PredictError::FeatureType { .. } => {
            Failure::Client(ScoringError::Invalid(e.to_string()))
        }
        other => Failure::Server(format!(
            "model {} failed to predict: {other}",
            model.label()
        )),
    })?;
    Ok(Scored {
        predictions,
        ignored_columns: batch.ignored_columns,
        unknown_level_columns: batch.unknown_level_columns,
    })
}

async fn reload(state: &Arc<ServerState>, peer: SocketAddr) -> Response<Full<Bytes>> {
    if !peer.ip().is_loopback() {
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "/admin/reload is accepted only from a loopback address, not from {}",
                peer.ip()
            ),
        );
    }
    let state = Arc::clone(state);
    match tokio::task::spawn_blocking(move || state.reload()).await {
        Ok(Ok(outcome)) => json_response(
            StatusCode::OK,
            &serde_json::to_value(&outcome).unwrap_or_default(),
        ),
        Ok(Err(load)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MODEL_LOAD_FAILED",
            load.to_string(),
        ),
        Err(join) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            format!("the reload task failed: {join}"),
        ),
    }
}

/// The 503 while no model is served. It names the load error of the
/// production version when there is one, because "no version is loaded"
/// would then send the reader looking for a promotion that exists.
fn no_model(state: &ServerState) -> Response<Full<Bytes>> {
    let message = match state.last_load_failure() {
        Some(failure) => failure.message.clone(),
        None => format!(
            "no version of model `{}` is loaded yet; promote one to production with \
             `flowrun models promote` or run the deployment pipeline",
            state.config().model
        ),
    };
    error(StatusCode::SERVICE_UNAVAILABLE, "MODEL_NOT_LOADED", message)
}

fn method_not_allowed(allowed: &'static str) -> Response<Full<Bytes>> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("this route accepts only {allowed}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    response
}

fn scoring_error(e: ScoringError) -> Response<Full<Bytes>> {
    let (status, code) = match &e {
        ScoringError::UnsupportedMediaType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
        }
        ScoringError::TooManyRows { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, "REQUEST_LIMIT_EXCEEDED")
        }
        ScoringError::Invalid(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
    };
    error(status, code, e.to_string())
}

/// Builds a JSON error response that carries its reason for the access log.
pub fn error(status: StatusCode, code: &str, message: String) -> Response<Full<Bytes>> {
    let mut response = json_response(status, &json!({"error_code": code, "message": message}));
    response.extensions_mut().insert(RejectReason(message));
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
