//! The HTTP routes, as a function from a request with its whole body to a
//! response. Tests call [`handle`] directly, without a socket.
//!
//! | route | response |
//! |---|---|
//! | `GET /ping`, `GET /health` | 200 with the served version; 503 before a model is loaded |
//! | `GET /version` | flowrun's version and the served model version |
//! | `GET /metadata` | name, version, flavor, features in training order with their types, metrics |
//! | `POST /invocations` | `{"predictions": [...]}`; see [`super::scoring`] for the bodies |
//! | `POST /admin/reload` | loads the registry's production version; only from a loopback address |
//! | `GET /`, `/models…`, `/runs…`, `/assets/…` | the web pages, see `super::web` |
//!
//! Every response carries `x-flowrun-model-version: NAME/VERSION` (`none`
//! before a model is loaded), and every error is a JSON object
//! `{"error_code": ..., "message": ...}`. Client mistakes get a 4xx: 400 for
//! a malformed body or one that does not fit the model, 413 for a batch over
//! the row limit, 415 for another content type. A 5xx means the server
//! failed. Columns the model does not read are ignored, and the response
//! names them in `x-flowrun-ignored-columns`. An unknown path gets the
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
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// The header that names the served model version on every response.
pub const VERSION_HEADER: &str = "x-flowrun-model-version";

/// The header that lists request columns the model ignored.
pub const IGNORED_COLUMNS_HEADER: &str = "x-flowrun-ignored-columns";

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
        ("/ping" | "/health", &Method::GET) => health(state, model),
        ("/version", &Method::GET) => version(model),
        ("/metadata", &Method::GET) => metadata(state, model),
        ("/invocations", &Method::POST) => invocations(state, model, request).await,
        ("/admin/reload", &Method::POST) => reload(state, peer).await,
        ("/ping" | "/health" | "/version" | "/metadata", _) => method_not_allowed("GET"),
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

fn health(state: &ServerState, model: Option<&Arc<LoadedModel>>) -> Response<Full<Bytes>> {
    match model {
        Some(model) => json_response(
            StatusCode::OK,
            &json!({
                "status": "ok",
                "model": model.name,
                "version": model.version,
                "uptime_seconds": state.uptime().as_secs(),
            }),
        ),
        None => no_model(state),
    }
}

fn version(model: Option<&Arc<LoadedModel>>) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({
            "flowrun": env!("CARGO_PKG_VERSION"),
            "model": model.map(|m| m.name.clone()),
            "version": model.map(|m| m.version),
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
        score(model, format, &body, max_rows)
    } else {
        let model = Arc::clone(model);
        match tokio::task::spawn_blocking(move || score(&model, format, &body, max_rows)).await {
            Ok(scored) => scored,
            Err(join) => Err(Failure::Server(format!("the scoring task failed: {join}"))),
        }
    };

    match scored {
        Ok((predictions, ignored)) => {
            let mut response = Response::new(Full::new(scoring::predictions_body(&predictions)));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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

/// Parses and scores a batch with one model. `/invocations` and the
/// predict page both score through this function.
pub(super) fn score(
    model: &LoadedModel,
    format: BodyFormat,
    body: &Bytes,
    max_rows: usize,
) -> Result<(Vec<f64>, Vec<String>), Failure> {
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
    Ok((predictions, batch.ignored_columns))
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

fn no_model(state: &ServerState) -> Response<Full<Bytes>> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "MODEL_NOT_LOADED",
        format!(
            "no version of model `{}` is loaded yet; promote one to production with \
             `flowrun models promote` or run the deployment pipeline",
            state.config().model
        ),
    )
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
