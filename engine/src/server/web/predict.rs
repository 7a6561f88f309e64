//! The predict page: a form with one input per feature of the served
//! model, and, once submitted, the prediction with the version that made
//! it and a comparison of each input with the training data.
//!
//! The form is sent with GET, so a prediction is a link that can be shared
//! and reloaded. A request whose query string names a feature is a
//! submission. Values are
//! checked by the rules of [`super::features`], and the form comes back
//! with the user's values and a message beside each rejected one. Accepted
//! values are scored by `router::score` as a one-row `dataframe_records`
//! body, the function `POST /invocations` uses. This module never changes
//! the served model or the registry.

use super::features::{self, Comparison, Field, FieldKind};
use super::layout::Nav;
use super::{Page, address, charts, format, lineage};
use crate::server::router::{self, Failure};
use crate::server::scoring::BodyFormat;
use crate::server::state::{LoadedModel, ServerState};
use bytes::Bytes;
use http::StatusCode;
use maud::{Markup, html};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A scored submission.
struct Prediction {
    value: f64,
    /// The accepted inputs, by feature name.
    inputs: Map<String, Value>,
    /// The request body that `/invocations` takes for the same row.
    body: String,
    /// The `host:port` of this server for the `curl` command, when known.
    host: Option<String>,
}

/// Builds the predict page for `query`, the URL's query string. `host` is
/// the `host:port` the request was sent to, when it is known and safe to
/// put into a shell command.
pub(super) fn page(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    query: &str,
    host: Option<&str>,
) -> Page {
    let Some(model) = model else {
        return no_model(state);
    };
    let fields = features::fields(model);
    let submitted: BTreeMap<String, String> = if query.is_empty() {
        BTreeMap::new()
    } else {
        // The first value of a repeated name counts, as in most frameworks.
        let mut values = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            values
                .entry(name.into_owned())
                .or_insert_with(|| value.into_owned());
        }
        values
    };
    let title = format!("Predict {}", target_label(model).to_lowercase());
    // A query without any feature name, such as a tracking parameter on a
    // shared link, opens a new form.
    if !fields.iter().any(|f| submitted.contains_key(&f.name)) {
        let values = fields
            .iter()
            .map(|f| (f.name.clone(), f.default_value()))
            .collect();
        let body = form_page(state, model, &fields, &values, &BTreeMap::new(), None, None);
        return Page::ok(title, Nav::Predict, body);
    }

    let mut errors = BTreeMap::new();
    let mut inputs = Map::new();
    for field in &fields {
        let raw = submitted.get(&field.name).map_or("", String::as_str);
        match field.parse(raw) {
            Ok(value) => {
                inputs.insert(field.name.clone(), value);
            }
            Err(message) => {
                errors.insert(field.name.clone(), message);
            }
        }
    }
    let values: BTreeMap<String, String> = fields
        .iter()
        .map(|f| {
            let raw = submitted.get(&f.name).cloned().unwrap_or_default();
            (f.name.clone(), raw)
        })
        .collect();
    // The form with the submitted values, and a prediction or a message.
    let page = |status, prediction: Option<&Prediction>, message: Option<&str>| Page {
        status,
        title: title.clone(),
        nav: Nav::Predict,
        body: form_page(state, model, &fields, &values, &errors, prediction, message),
    };
    if !errors.is_empty() {
        let summary = format!(
            "{} of {} inputs need a change before the model can score them.",
            errors.len(),
            fields.len()
        );
        return page(StatusCode::UNPROCESSABLE_ENTITY, None, Some(&summary));
    }

    match score(state, model, inputs, host) {
        Ok(prediction) => page(StatusCode::OK, Some(&prediction), None),
        Err(message) => page(StatusCode::INTERNAL_SERVER_ERROR, None, Some(&message)),
    }
}

/// Scores one row through the code path of `POST /invocations`.
fn score(
    state: &ServerState,
    model: &LoadedModel,
    inputs: Map<String, Value>,
    host: Option<&str>,
) -> Result<Prediction, String> {
    let body = serde_json::json!({ "dataframe_records": [inputs] }).to_string();
    let bytes = Bytes::from(body.clone());
    let scored = router::score(model, BodyFormat::Json, &bytes, state.config().max_rows);
    match scored {
        Ok((predictions, _)) => match predictions.first() {
            Some(&value) => Ok(Prediction {
                value,
                inputs,
                body,
                host: host
                    .map(str::to_string)
                    .or_else(|| address::configured(state)),
            }),
            None => {
                tracing::error!(model = %model.label(), "the model returned no prediction for one row");
                Err("The model returned no prediction. The server log has the details.".into())
            }
        },
        Err(Failure::Client(error)) => {
            tracing::error!(model = %model.label(), %error, "the predict form sent a row the model rejected");
            Err("The model rejected these inputs. The server log has the details.".into())
        }
        Err(Failure::Server(error)) => {
            tracing::error!(model = %model.label(), %error, "the model failed to score a form row");
            Err("The model failed to score these inputs. The server log has the details.".into())
        }
    }
}

/// The page while no version is served: HTTP 503 and how to deploy one.
fn no_model(state: &ServerState) -> Page {
    let name = &state.config().model;
    let production = match state.runs().production_version(name) {
        Ok(version) => version,
        Err(error) => {
            tracing::warn!(model = %name, %error, "failed to read the registry for the predict page");
            None
        }
    };
    let body = html! {
        section.card.notice {
            @if let Some(version) = &production {
                h1 { "The production model could not be loaded" }
                @if let Some(failure) = state.last_load_failure() {
                    p.error { (failure.message) }
                } @else {
                    p {
                        "Version " (version.version) " of " code { (name) }
                        " is in production, but this server has not loaded it yet. "
                        "The server log says why; the server tries again when the "
                        "production version or its file changes."
                    }
                }
            } @else {
                h1 { "No model is deployed yet" }
                p {
                    "The predict form appears once a version of " code { (name) }
                    " is in production. Train, evaluate and deploy one with:"
                }
                pre { code { "flowrun pipelines/deployment.yaml" } }
                p {
                    "The deployment registers the model and promotes it when its test "
                    "error passes the trigger; this server loads it within a few seconds. "
                    "Then reload this page."
                }
            }
            p { a href="/models" { "See the registered models" } " · " a href="/runs" { "See the runs" } }
        }
    };
    Page {
        status: StatusCode::SERVICE_UNAVAILABLE,
        title: "Predict".into(),
        nav: Nav::Predict,
        body,
    }
}

/// Returns the readable name of the predicted column, such as "Review
/// score".
fn target_label(model: &LoadedModel) -> String {
    format::readable(&model.target)
}

fn form_page(
    state: &ServerState,
    model: &LoadedModel,
    fields: &[Field],
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    prediction: Option<&Prediction>,
    problem: Option<&str>,
) -> Markup {
    let target = target_label(model);
    html! {
        h1 { "Predict " (target.to_lowercase()) }
        p.lead {
            "Enter an order's details and the model in production predicts its "
            (target.to_lowercase()) ". The form starts at the training medians and the most "
            "frequent values."
        }
        @if let Some(problem) = problem {
            p.problem role="alert" { (problem) }
        }
        @if let Some(prediction) = prediction {
            (result(state, model, fields, prediction))
        }
        form.card.predict method="get" action="/" {
            div.fields {
                @for field in fields {
                    (input(field, values.get(&field.name).map_or("", String::as_str), errors.get(&field.name)))
                }
            }
            div.actions {
                button type="submit" { "Predict" }
                a.secondary href="/" { "Reset to training defaults" }
            }
        }
    }
}

fn input(field: &Field, value: &str, error: Option<&String>) -> Markup {
    let id = format!("f-{}", field.name);
    let help_id = format!("h-{}", field.name);
    let error_id = format!("e-{}", field.name);
    let described = if error.is_some() {
        format!("{help_id} {error_id}")
    } else {
        help_id.clone()
    };
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) {
                (field.label)
                @if !field.unit.is_empty() { " " span.unit { "(" (field.unit) ")" } }
            }
            @match &field.kind {
                FieldKind::Numeric { .. } => {
                    @let (lower, upper) = field.bounds();
                    // A number field cannot show text that is no number, so
                    // such a value comes back in a text field to be fixed.
                    @let kind = if value.trim().is_empty() || value.trim().parse::<f64>().is_ok() { "number" } else { "text" };
                    input #(id) name=(field.name) type=(kind) inputmode="decimal" step=(field.step()) required
                        min=[lower.map(format::input_value)]
                        max=[upper.map(format::input_value)]
                        value=(value) aria-describedby=(described)
                        aria-invalid=[error.map(|_| "true")];
                }
                FieldKind::Categorical { levels, by_frequency, .. } => {
                    select #(id) name=(field.name) required aria-describedby=(described)
                        aria-invalid=[error.map(|_| "true")] {
                        @if !levels.iter().any(|l| l.name == value) {
                            option value="" selected { "Choose…" }
                        }
                        @for level in levels {
                            option value=(level.name) selected[level.name == value] {
                                (level.name)
                                @if *by_frequency {
                                    @if let Some(count) = level.count { " (" (count) " training rows)" }
                                }
                            }
                        }
                    }
                }
            }
            p.help #(help_id) {
                @if !field.help.is_empty() { (field.help) " " }
                @if let Some(rule) = field.rule() { span.rule { (rule) } " " }
                (training_hint(field))
            }
            @if let Some(error) = error {
                p.error #(error_id) { (error) }
            }
        }
    }
}

/// Describes the training data of a field in one short sentence.
fn training_hint(field: &Field) -> String {
    match &field.kind {
        FieldKind::Numeric {
            stats: Some(stats), ..
        } => format!(
            "Training: median {}, most values {}–{}.",
            format::number(stats.median),
            format::number(stats.p1),
            format::number(stats.p99)
        ),
        FieldKind::Numeric { stats: None, .. } => String::new(),
        FieldKind::Categorical {
            levels,
            by_frequency,
            ..
        } => {
            let order = if *by_frequency {
                ", most frequent first"
            } else {
                ""
            };
            format!("{} values seen in training{order}.", levels.len())
        }
    }
}

fn result(
    state: &ServerState,
    model: &LoadedModel,
    fields: &[Field],
    prediction: &Prediction,
) -> Markup {
    let target = target_label(model);
    let range = lineage::target_range(state, model);
    let comparisons: Vec<(&Field, &Value, Comparison)> = fields
        .iter()
        .filter_map(|f| {
            let value = prediction.inputs.get(&f.name)?;
            Some((f, value, f.compare(value)))
        })
        .collect();
    let outside: Vec<&str> = comparisons
        .iter()
        .filter(|c| c.2 == Comparison::OutsideRange)
        .map(|c| c.0.label.as_str())
        .collect();
    let unusual = comparisons
        .iter()
        .filter(|c| c.2 == Comparison::Unusual)
        .count();
    html! {
        section.card.result aria-live="polite" {
            div.score-row {
                div {
                    p.kicker { "Predicted " (target.to_lowercase()) }
                    p.score #prediction data-prediction=(prediction.value) {
                        (format!("{:.1}", prediction.value))
                    }
                    p.version {
                        "by " strong #model-version { (model.label()) }
                        " (" (model.flavor) ")"
                    }
                }
                @if let Some((min, max)) = range {
                    div.gauge {
                        (charts::scale(&format!("{target} on the scale of the training data, {min} to {max}"), prediction.value, min, max))
                        p.scale-caption { "Training data ranged from " (format::number(min)) " to " (format::number(max)) "." }
                        @if prediction.value < min || prediction.value > max {
                            p.note { "The prediction lies outside the range seen in training." }
                        }
                    }
                }
            }
            @if outside.is_empty() && unusual == 0 {
                p.verdict.typical { "Every input is within the 1st–99th percentile of the training data." }
            } @else {
                p.verdict.outside {
                    @if !outside.is_empty() {
                        (outside.len()) " input(s) outside the range seen in training: "
                        (outside.join(", ")) ". The model extrapolates there, so treat the "
                        "prediction with care. "
                    }
                    @if unusual > 0 {
                        (unusual) " input(s) are unusual (outside the 1st–99th percentile, or a "
                        "value of under 1% of the training rows)."
                    }
                }
            }
            details {
                summary { "How the inputs compare with the training data" }
                div.scroll { table.compare {
                    thead { tr { th { "Input" } th { "Value" } th { "Training median or most frequent" } th { "1st–99th percentile" } th { "Min–max" } th { "Assessment" } } }
                    tbody {
                        @for (field, value, comparison) in &comparisons {
                            tr class=(comparison.class()) {
                                td { (field.label) }
                                td.num { (input_text(value)) @if !field.unit.is_empty() { " " span.unit { (field.unit) } } }
                                @match &field.kind {
                                    FieldKind::Numeric { stats: Some(stats), .. } => {
                                        td.num { (format::number(stats.median)) }
                                        td.num { (format::number(stats.p1)) "–" (format::number(stats.p99)) }
                                        td.num { (format::number(stats.min)) "–" (format::number(stats.max)) }
                                    }
                                    FieldKind::Categorical { .. } => {
                                        td { (field.default_value()) }
                                        td colspan="2" { (level_share(field, value)) }
                                    }
                                    FieldKind::Numeric { stats: None, .. } => { td {} td {} td {} }
                                }
                                td { (comparison.sentence()) }
                            }
                        }
                    }
                } }
            }
            details {
                summary { "The same request to the scoring API" }
                pre.request { code { (curl_command(prediction)) } }
                @if prediction.host.is_none() {
                    p.caption { "Replace HOST:PORT with this server's address, as in http://127.0.0.1:8080." }
                }
            }
        }
    }
}

/// Builds the `curl` command that sends the prediction's row to
/// `POST /invocations`, with the body in single quotes for a POSIX shell.
fn curl_command(prediction: &Prediction) -> String {
    let body = prediction.body.replace('\'', "'\\''");
    let host = prediction.host.as_deref().unwrap_or("HOST:PORT");
    // curl reads `[` in a URL as a glob range unless `--globoff` is given,
    // and an IPv6 host is written in brackets.
    let globoff = if host.starts_with('[') {
        "--globoff "
    } else {
        ""
    };
    format!(
        "curl {globoff}-H 'Content-Type: application/json' --data '{body}' \\\n  'http://{host}/invocations'"
    )
}

/// Formats an accepted input value for the comparison table.
fn input_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), format::number),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Describes how often a categorical value occurs in training.
fn level_share(field: &Field, value: &Value) -> String {
    let FieldKind::Categorical {
        levels,
        total: Some(total),
        ..
    } = &field.kind
    else {
        return String::new();
    };
    let count = levels
        .iter()
        .find(|l| Some(l.name.as_str()) == value.as_str())
        .and_then(|l| l.count)
        .unwrap_or(0);
    let share = if *total > 0 {
        100.0 * count as f64 / *total as f64
    } else {
        0.0
    };
    format!("{count} of {total} training rows ({share:.1}%)")
}
