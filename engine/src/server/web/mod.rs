//! The web app that `flowrun serve` serves beside the scoring API: a form
//! that predicts one order, the registered model versions, and the
//! pipeline runs with their DAGs and artifacts.
//!
//! | route | page |
//! |---|---|
//! | `GET /` | the predict form; with a query string, its submission and the prediction |
//! | `GET /models` | every registered model; the served one with its versions, comparison chart and feature importances |
//! | `GET /models/{name}` | one model's versions |
//! | `GET /models/{name}/{version}` | one version: metrics, parameters, importances |
//! | `GET /runs` | the runs, newest first, 50 a page (`?page=N`), with status, duration, parameters and metrics |
//! | `GET /runs/{id}` | one run: DAG, steps, artifacts with lineage (`latest` and unique id prefixes work) |
//! | `GET /assets/…` | the stylesheet and icon, compiled into the binary |
//!
//! Status codes:
//!
//! | status | when |
//! |---|---|
//! | 200 | a page |
//! | 422 | a predict form with invalid values, shown again with a message beside each field |
//! | 503 | the predict page while no model version is served; the page explains how to deploy one |
//! | 404 | an unknown path, run, model or version, with a link back |
//! | 500 | a store that cannot be read: a plain sentence on the page, the error in the log |
//!
//! # Invariants
//!
//! - The pages only read: they never write to the run store, the registry
//!   or the artifact store, and they never run a pipeline.
//! - Every value on a page goes through maud's `html!`, which escapes it.
//!   No module here uses `PreEscaped`.
//! - A prediction goes through the same function as `POST /invocations`
//!   (`router::score`) with a one-row `dataframe_records` body, so the page
//!   and the API give the same number for the same row.
//! - Reads of SQLite and artifact files run on blocking threads, never on
//!   the worker threads that serve `/invocations`.
//! - Pages need no JavaScript and load nothing from another origin; the
//!   Content-Security-Policy header forbids both.

mod address;
mod charts;
mod dag;
mod features;
mod format;
mod layout;
mod lineage;
mod models;
mod predict;
mod runs;

#[cfg(test)]
mod tests;

use super::router::RejectReason;
use super::state::{LoadedModel, ServerState};
use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use layout::{Chrome, Nav};
use maud::Markup;
use std::sync::Arc;

/// The path of the stylesheet.
const STYLE_PATH: &str = "/assets/style.css";
/// The path of the page icon.
const ICON_PATH: &str = "/assets/icon.svg";

const STYLE: &str = include_str!("assets/style.css");
const ICON: &str = include_str!("assets/icon.svg");

/// Forbids scripts, plugins, frames and every other origin: the pages use
/// none of them, so an injected tag would not run even if escaping failed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A failure to build a page.
#[derive(Debug, thiserror::Error)]
pub(super) enum WebError {
    /// The run, model or version does not exist. The message is shown on
    /// the 404 page with a link to `back`.
    #[error("{message}")]
    NotFound {
        message: String,
        back: &'static str,
        back_label: &'static str,
    },
    /// The store could not be read. Logged, never shown.
    #[error("{0}")]
    Store(String),
}

impl From<crate::runstore::RunStoreError> for WebError {
    fn from(error: crate::runstore::RunStoreError) -> Self {
        WebError::Store(error.to_string())
    }
}

/// A rendered page and its status.
pub(super) struct Page {
    status: StatusCode,
    title: String,
    nav: Nav,
    body: Markup,
}

impl Page {
    fn ok(title: impl Into<String>, nav: Nav, body: Markup) -> Self {
        Page {
            status: StatusCode::OK,
            title: title.into(),
            nav,
            body,
        }
    }
}

/// Returns whether `path` belongs to the web app.
pub(super) fn handles(path: &str) -> bool {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    path == "/"
        || path == "/models"
        || path.starts_with("/models/")
        || path == "/runs"
        || path.starts_with("/runs/")
        || path.starts_with("/assets/")
}

/// Returns whether the request's `Accept` header names `text/html`, as
/// browsers send it. API clients that send no `Accept` keep getting JSON
/// errors.
pub(super) fn wants_html<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Serves a request whose path [`handles`] accepted.
pub(super) async fn route(
    state: &Arc<ServerState>,
    model: Option<&Arc<LoadedModel>>,
    request: Request<Bytes>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "The web pages accept only GET and HEAD.\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = request.uri().path();
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    match trimmed {
        STYLE_PATH => return asset("text/css; charset=utf-8", STYLE),
        ICON_PATH => return asset("image/svg+xml", ICON),
        _ => {}
    }

    let chrome_model = model.map(|m| m.label());
    let state_for_page = Arc::clone(state);
    let model = model.cloned();
    let query = request.uri().query().unwrap_or_default().to_string();
    let host = address::from_request(&request);
    let path = trimmed.to_string();
    let built = tokio::task::spawn_blocking(move || {
        build(
            &state_for_page,
            model.as_ref(),
            &path,
            &query,
            host.as_deref(),
        )
    })
    .await;
    let chrome = Chrome {
        served: chrome_model,
        model_name: &state.config().model,
    };
    match built {
        Ok(Ok(page)) => render(page, &chrome),
        Ok(Err(error)) => error_page(error, &chrome),
        Err(join) => error_page(
            WebError::Store(format!("the page task failed: {join}")),
            &chrome,
        ),
    }
}

/// Builds the page for a path. Blocks on the stores. `host` is the
/// request's `host:port` from [`address::from_request`].
fn build(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    path: &str,
    query: &str,
    host: Option<&str>,
) -> Result<Page, WebError> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        [""] => Ok(predict::page(state, model, query, host)),
        ["models"] => models::overview(state, model),
        ["models", name] => models::model_page(state, model, name),
        ["models", name, version] => models::version_page(state, model, name, version),
        ["runs"] => runs::list(state, query),
        ["runs", id] => runs::detail(state, id),
        _ => Err(not_found_path(path)),
    }
}

fn not_found_path(path: &str) -> WebError {
    WebError::NotFound {
        message: format!("There is no page at {path}."),
        back: "/",
        back_label: "Back to Predict",
    }
}

/// Builds the HTML 404 page for a path outside the web app, for clients
/// that accept HTML.
pub(super) fn not_found_response(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    path: &str,
) -> Response<Full<Bytes>> {
    let chrome = Chrome {
        served: model.map(|m| m.label()),
        model_name: &state.config().model,
    };
    error_page(not_found_path(path), &chrome)
}

fn render(page: Page, chrome: &Chrome<'_>) -> Response<Full<Bytes>> {
    let html = layout::page(&page.title, page.nav, chrome, page.body);
    html_response(page.status, html)
}

fn error_page(error: WebError, chrome: &Chrome<'_>) -> Response<Full<Bytes>> {
    match error {
        WebError::NotFound {
            message,
            back,
            back_label,
        } => {
            let body = layout::not_found(&message, back, back_label);
            let html = layout::page("Not found", Nav::None, chrome, body);
            let mut response = html_response(StatusCode::NOT_FOUND, html);
            response.extensions_mut().insert(RejectReason(message));
            response
        }
        WebError::Store(message) => {
            tracing::error!(error = %message, "failed to build a web page");
            let html = layout::page("Error", Nav::None, chrome, layout::failure());
            html_response(StatusCode::INTERNAL_SERVER_ERROR, html)
        }
    }
}

fn html_response(status: StatusCode, html: Markup) -> Response<Full<Bytes>> {
    let mut response = text_response(status, "text/html; charset=utf-8", html.into_string());
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = text_response(StatusCode::OK, content_type, body.to_string());
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
