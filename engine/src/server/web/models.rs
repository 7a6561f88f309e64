//! The models pages: the registered versions with their stage and test
//! metrics, a chart comparing them, the stage history, and the feature
//! importances of a version.
//!
//! Importances come from the run that registered the version, through the
//! run store. The page looks for the step of that run that read the
//! version's model artifact and wrote a table output named
//! `feature_importance` with the columns `feature` and `importance`. In
//! the shipped pipelines that is the `evaluation` step. The
//! table is read with [`lineage::read_table`], which accepts it only when
//! its decoded content hashes to the hash the run recorded. This was chosen
//! over asking the model: the engine's predictor interface only predicts,
//! and the recorded table is exactly what the evaluation reported.
//!
//! This module never changes a stage; promotions belong to `flowrun
//! models` and the deployment pipeline.

use super::charts::{self, Bar, Group, Series};
use super::layout::{self, Nav};
use super::{Page, WebError, format, lineage};
use crate::runstore::{ModelVersionInfo, RunStoreError, Stage};
use crate::server::state::{LoadedModel, ServerState};
use flowrun_artifacts::{ArtifactKind, ColumnData};
use maud::{Markup, html};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The output name and columns of a feature importance table.
const IMPORTANCE_OUTPUT: &str = "feature_importance";

/// How many stage changes a page lists, newest first.
const HISTORY_ROWS: usize = 20;

/// A metrics column of the versions table.
struct MetricColumn {
    /// The key in the registry's metrics object.
    key: &'static str,
    heading: &'static str,
    /// The metric's definition for a reader who is no statistician, shown
    /// as the heading's tooltip.
    meaning: &'static str,
}

/// The metrics columns of the versions table, in order.
const METRICS: [MetricColumn; 5] = [
    MetricColumn {
        key: "mse",
        heading: "MSE",
        meaning: "Mean squared error on the test rows: the mean of (actual − predicted)². \
                  Lower is better.",
    },
    MetricColumn {
        key: "rmse",
        heading: "RMSE",
        meaning: "Root mean squared error: a typical prediction error, in the unit of the \
                  predicted value. Lower is better.",
    },
    MetricColumn {
        key: "mae",
        heading: "MAE",
        meaning: "Mean absolute error: the mean size of a prediction error, in the unit of \
                  the predicted value. Lower is better.",
    },
    MetricColumn {
        key: "r2",
        heading: "R² vs test mean",
        meaning: "1 − MSE / variance of the test rows: the model against predicting the mean \
                  of the test rows themselves, which no model knows in advance. 1 is perfect, \
                  0 matches that mean, below 0 is worse than it.",
    },
    MetricColumn {
        key: "baseline_mse",
        heading: "Baseline MSE",
        meaning: "MSE of the baseline, which predicts the mean of the training rows for every \
                  test row and needs no model.",
    },
];

/// The meaning of the gain column, as its tooltip.
const GAIN_MEANING: &str = "1 − MSE / baseline MSE: the share of the baseline's error that \
                            the model removes. Above 0 the model beats predicting the training \
                            mean.";

/// The run parameters that choose a version's training and test rows. Two
/// versions whose runs differ in one of them were measured on different
/// test rows, so the versions table shows these parameters beside their
/// metrics. `seed` is among them because it seeds the train/test split of
/// the shipped pipelines.
const DATA_PARAMS: [&str; 4] = ["data_dir", "feature_set", "split", "seed"];

/// Builds `/models`: the served model in full, other models as links.
pub(super) fn overview(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
) -> Result<Page, WebError> {
    let by_model = versions_by_model(state)?;
    let served = &state.config().model;
    let body = html! {
        h1 { "Models" }
        @if by_model.is_empty() {
            section.card.notice {
                p { "No model is registered yet. The deployment pipeline trains, evaluates and registers one:" }
                pre { code { "flowrun pipelines/deployment.yaml" } }
            }
        }
        @if let Some(versions) = by_model.get(served) {
            (model_section(state, model, served, versions)?)
        } @else if !by_model.is_empty() {
            p.notice { "This server serves " code { (served) } ", which has no registered version." }
        }
        @let others: Vec<(&String, &Vec<ModelVersionInfo>)> = by_model.iter().filter(|(name, _)| *name != served).collect();
        @if !others.is_empty() {
            section.card {
                h2 { "Other registered models" }
                table {
                    thead { tr { th { "Model" } th.num { "Versions" } th { "In production" } } }
                    tbody {
                        @for (name, versions) in others {
                            tr {
                                td { a href={ "/models/" (encode(name)) } { (name) } }
                                td.num { (versions.len()) }
                                td { (production_of(versions).map_or_else(|| "none".to_string(), |v| format!("version {v}"))) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::ok("Models", Nav::Models, body))
}

/// Builds `/models/{name}`.
pub(super) fn model_page(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    name: &str,
) -> Result<Page, WebError> {
    let by_model = versions_by_model(state)?;
    let Some(versions) = by_model.get(name) else {
        return Err(unknown_model(name));
    };
    let body = html! {
        p.crumbs { a href="/models" { "Models" } " / " (name) }
        (model_section(state, model, name, versions)?)
    };
    Ok(Page::ok(format!("Model {name}"), Nav::Models, body))
}

/// Builds `/models/{name}/{version}`.
pub(super) fn version_page(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    name: &str,
    version: &str,
) -> Result<Page, WebError> {
    let number = version
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| not_found_version(name, version))?;
    let info = match state.runs().model_version_info(name, number) {
        Ok(info) => info,
        Err(RunStoreError::ModelVersionNotFound { .. }) => {
            return Err(not_found_version(name, version));
        }
        Err(other) => return Err(other.into()),
    };
    let history: Vec<_> = state
        .runs()
        .stage_history(name)?
        .into_iter()
        .filter(|t| t.version == number)
        .collect();
    let v = &info.version;
    let body = html! {
        p.crumbs {
            a href="/models" { "Models" } " / "
            a href={ "/models/" (encode(name)) } { (name) } " / version " (number)
        }
        h1 { (name) " version " (number) " " (stage_badge(v.stage)) }
        section.card {
            dl.facts {
                dt { "Registered" } dd { (format::timestamp(&v.created_at)) }
                dt { "Run" } dd { a href={ "/runs/" (encode(&v.run_id)) } { code { (v.run_id) } } }
                dt { "Flavor" } dd { (info.flavor.as_deref().unwrap_or("not recorded")) }
                dt { "Model artifact" } dd {
                    code title=(v.artifact_hash) { (format::hash_prefix(&v.artifact_hash)) }
                    @if let Some(size) = info.artifact_size { ", " (format::bytes(size)) }
                }
                @for column in &METRICS {
                    dt { abbr title=(column.meaning) { (column.heading) } }
                    dd.num { (format::metric(metric(&v.metrics, column.key))) }
                }
                dt { abbr title=(GAIN_MEANING) { "Gain over baseline" } }
                dd.num { (gain(&v.metrics)) }
                @if let Some(rows) = v.metrics.get("test_rows").and_then(Value::as_u64) {
                    dt { "Test rows" } dd.num { (rows) }
                }
            }
        }
        (importance_section(state, model, &info))
        @if let Some(params) = info.params.as_object().filter(|p| !p.is_empty()) {
            section.card {
                h2 { "Run parameters" }
                table {
                    thead { tr { th { "Parameter" } th { "Value" } } }
                    tbody {
                        @for (key, value) in params {
                            tr { td { code { (key) } } td { code { (value) } } }
                        }
                    }
                }
            }
        }
        @if !history.is_empty() {
            section.card {
                h2 { "Stage history" }
                (history_table(history.iter().rev().take(HISTORY_ROWS)))
            }
        }
    };
    Ok(Page::ok(
        format!("{name} version {number}"),
        Nav::Models,
        body,
    ))
}

/// The versions table, the comparison chart, the importances of the
/// production version (or the newest, when none is in production) and the
/// stage history of one model.
fn model_section(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    name: &str,
    versions: &[ModelVersionInfo],
) -> Result<Markup, WebError> {
    let production = production_of(versions);
    let served = model.filter(|m| m.name == name).map(|m| m.version);
    let history = state.runs().stage_history(name)?;
    let featured = versions
        .iter()
        .find(|v| v.version.stage == Stage::Production)
        .or_else(|| versions.last());
    let data_params = differing_data_params(versions);
    Ok(html! {
        section.card {
            h2 { (name) }
            p.sub {
                (versions.len()) " version(s). "
                @match production {
                    Some(v) => { "Version " (v) " is in production" }
                    None => { "No version is in production" }
                }
                @match served {
                    Some(v) => { "; this server serves version " (v) "." }
                    None => { "; this server serves none." }
                }
            }
            @if !data_params.is_empty() {
                p.notice.data-differs {
                    "These versions were trained and tested on different data: their runs differ in "
                    @for (i, param) in data_params.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (param) }
                    }
                    ". Each version's metrics come from its own test rows, so compare them with care."
                }
            }
            div.scroll {
                table.versions {
                    thead {
                        tr {
                            th { "Version" } th { "Stage" } th { "Registered" } th { "Run" }
                            @for param in &data_params {
                                th title="Run parameter that chooses the training and test rows" { code { (param) } }
                            }
                            @for column in &METRICS { th.num { abbr title=(column.meaning) { (column.heading) } } }
                            th.num { abbr title=(GAIN_MEANING) { "Gain over baseline" } }
                        }
                    }
                    tbody {
                        @for info in versions.iter().rev() {
                            @let v = &info.version;
                            tr.served[served == Some(v.version)] {
                                td { a href={ "/models/" (encode(name)) "/" (v.version) } { "v" (v.version) } }
                                td { (stage_badge(v.stage)) }
                                td { (format::timestamp(&v.created_at)) }
                                td { a href={ "/runs/" (encode(&v.run_id)) } { code { (v.run_id) } } }
                                @for param in &data_params { td.param { (param_text(info.params.get(*param))) } }
                                @for column in &METRICS { td.num { (format::metric(metric(&v.metrics, column.key))) } }
                                td.num { (gain(&v.metrics)) }
                            }
                        }
                    }
                }
            }
            p.caption {
                "Metrics are on the test rows of each version's run. "
                strong { "R² vs test mean" } " compares the model with predicting the mean of those "
                "test rows, which no model can know in advance. "
                strong { "Gain over baseline" } " compares it with the baseline, which predicts the "
                "mean of the training rows. When the test rows' mean differs from the training "
                "mean, R² can be below 0 while the gain is positive: the model beats the baseline "
                "but not the test rows' own mean. Hover over a heading for its definition."
            }
            (comparison_chart(versions))
        }
        @if let Some(info) = featured {
            (importance_section(state, model, info))
        }
        @if !history.is_empty() {
            section.card {
                h2 { "Stage history" }
                (history_table(history.iter().rev().take(HISTORY_ROWS)))
            }
        }
    })
}

fn comparison_chart(versions: &[ModelVersionInfo]) -> Markup {
    let series = [
        Series {
            name: "Test MSE".into(),
            class: "s-model",
        },
        Series {
            name: "Baseline MSE (mean)".into(),
            class: "s-baseline",
        },
    ];
    let groups: Vec<Group> = versions
        .iter()
        .rev()
        .map(|info| {
            let v = &info.version;
            Group {
                label: format!("v{} ({})", v.version, v.stage),
                values: vec![
                    metric(&v.metrics, "mse"),
                    metric(&v.metrics, "baseline_mse"),
                ],
            }
        })
        .collect();
    html! {
        figure {
            (charts::grouped_bars("Test MSE of each version against its baseline", &series, &groups, |x| format!("{x:.3}")))
            figcaption { "Test MSE of each version beside the MSE of predicting the training mean. Shorter is better." }
        }
    }
}

fn importance_section(
    state: &ServerState,
    model: Option<&Arc<LoadedModel>>,
    info: &ModelVersionInfo,
) -> Markup {
    let v = &info.version;
    let docs = model
        .filter(|m| m.name == v.model)
        .and_then(|m| m.model_info.get("feature_docs").cloned());
    let label = |feature: &str| {
        docs.as_ref()
            .and_then(|d| d.get(feature)?.get("label")?.as_str().map(str::to_string))
            .unwrap_or_else(|| format::readable(feature))
    };
    html! {
        section.card #importance {
            h2 { "Feature importance of version " (v.version) " (" (v.stage) ")" }
            @match importances(state, info) {
                Ok((step, rows)) => {
                    @let bars: Vec<Bar> = rows.iter().map(|(feature, value)| Bar {
                        label: label(feature),
                        title: format!("{} ({feature}): {:.1}%", label(feature), value * 100.0),
                        value: *value,
                        value_text: format!("{:.1}%", value * 100.0),
                    }).collect();
                    (charts::bars(&format!("Feature importance of version {}", v.version), &bars))
                    p.caption {
                        "Each feature's share of the model's importance, as the "
                        code { (step) } " step of run "
                        a href={ "/runs/" (encode(&v.run_id)) } { code { (v.run_id) } }
                        " reported it."
                    }
                }
                Err(reason) => { p.notice { (reason) } }
            }
        }
    }
}

/// Reads a version's feature importances through its run's lineage.
/// Returns the step that wrote them and `(feature, share)` pairs in the
/// table's order, or a sentence for the page.
fn importances(
    state: &ServerState,
    info: &ModelVersionInfo,
) -> Result<(String, Vec<(String, f64)>), String> {
    let v = &info.version;
    let run = state.runs().get_run(&v.run_id).map_err(|error| {
        tracing::warn!(run = %v.run_id, %error, "failed to read the run of a model version");
        format!(
            "The run {} that registered this version cannot be read.",
            v.run_id
        )
    })?;
    let found = run.steps.iter().find_map(|step| {
        let reads_model = step.inputs.iter().any(|i| i.hash == v.artifact_hash);
        let output = step
            .outputs
            .iter()
            .find(|o| o.output == IMPORTANCE_OUTPUT && o.artifact.kind == ArtifactKind::Table)?;
        reads_model.then_some((step, output))
    });
    let Some((step, output)) = found else {
        return Err(format!(
            "No step of run {} wrote feature importances for this model.",
            v.run_id
        ));
    };
    let table = lineage::read_table(state, &output.artifact.hash, output.artifact.size).map_err(|error| {
        tracing::warn!(run = %v.run_id, step = %step.step_id, %error, "failed to read feature importances");
        "The feature importance table cannot be read from the artifact store; the server log has the details.".to_string()
    })?;
    let rows = match (
        table.column("feature").map(|c| &c.data),
        table.column("importance").map(|c| &c.data),
    ) {
        (Some(ColumnData::Utf8(names)), Some(ColumnData::Float64(values))) => names
            .iter()
            .zip(values)
            .map(|(name, value)| (name.clone().unwrap_or_default(), *value))
            .collect(),
        _ => {
            return Err(
                "The feature importance table lacks the columns feature and importance.".into(),
            );
        }
    };
    Ok((step.step_id.clone(), rows))
}

/// Returns the parameters of [`DATA_PARAMS`] whose values differ between
/// the versions' runs, a missing parameter counting as a value of its own.
fn differing_data_params(versions: &[ModelVersionInfo]) -> Vec<&'static str> {
    DATA_PARAMS
        .into_iter()
        .filter(|param| {
            // Versions registered before runs' parameters were kept have
            // none recorded, so nothing is known about their data.
            let mut values = versions
                .iter()
                .filter(|info| info.params.is_object())
                .map(|info| info.params.get(*param));
            let first = values.next().flatten();
            values.any(|value| value != first)
        })
        .collect()
}

/// Formats a run parameter for a table cell: strings without quotes, `—`
/// when the run did not record it.
fn param_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "—".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// The stage history table. Long reasons wrap inside their cell and the
/// table scrolls inside its card on a narrow screen, so the page itself
/// never scrolls sideways.
fn history_table<'a>(
    transitions: impl Iterator<Item = &'a crate::runstore::StageTransition>,
) -> Markup {
    html! {
        div.scroll { table.history {
            thead { tr { th { "When" } th { "Version" } th { "From" } th { "To" } th { "By" } th { "Reason" } } }
            tbody {
                @for t in transitions {
                    tr {
                        td { (format::timestamp(&t.at)) }
                        td { "v" (t.version) }
                        td { (stage_badge(t.from_stage)) }
                        td { (stage_badge(t.to_stage)) }
                        td { (t.by) }
                        td.reason { (t.reason) }
                    }
                }
            }
        } }
    }
}

fn versions_by_model(
    state: &ServerState,
) -> Result<BTreeMap<String, Vec<ModelVersionInfo>>, WebError> {
    let mut by_model: BTreeMap<String, Vec<ModelVersionInfo>> = BTreeMap::new();
    for info in state.runs().list_model_versions()? {
        by_model
            .entry(info.version.model.clone())
            .or_default()
            .push(info);
    }
    Ok(by_model)
}

fn production_of(versions: &[ModelVersionInfo]) -> Option<i64> {
    versions
        .iter()
        .find(|v| v.version.stage == Stage::Production)
        .map(|v| v.version.version)
}

/// Reads a metric from the registry's metrics object; `NaN` and other
/// strings count as absent.
fn metric(metrics: &Value, key: &str) -> Option<f64> {
    metrics.get(key)?.as_f64()
}

/// Formats `1 − mse / baseline_mse` as a percentage.
fn gain(metrics: &Value) -> String {
    match (metric(metrics, "mse"), metric(metrics, "baseline_mse")) {
        (Some(mse), Some(baseline)) if baseline > 0.0 => {
            format!("{:.1}%", 100.0 * (1.0 - mse / baseline))
        }
        _ => "—".to_string(),
    }
}

pub(super) fn stage_badge(stage: Stage) -> Markup {
    layout::badge(&format!("stage-{stage}"), stage.as_str())
}

/// The characters a link's path segment keeps as they are: the unreserved
/// characters of RFC 3986.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment for a link.
pub(super) fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

fn unknown_model(name: &str) -> WebError {
    WebError::NotFound {
        message: format!("No model named “{name}” is registered."),
        back: "/models",
        back_label: "Back to Models",
    }
}

fn not_found_version(name: &str, version: &str) -> WebError {
    WebError::NotFound {
        message: format!("Model “{name}” has no version “{version}”."),
        back: "/models",
        back_label: "Back to Models",
    }
}
