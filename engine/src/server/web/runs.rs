//! The runs pages: the newest runs with their outcome, duration,
//! parameters and metrics, and one run with its DAG, its steps and its
//! artifacts with lineage.
//!
//! Lineage is what the run store recorded: each artifact's producer is the
//! step of this run that wrote it, and its consumers are the steps of this
//! run whose inputs have the same content hash. This module never changes a
//! run.

use super::dag::{self, Dag};
use super::layout::{self, Nav};
use super::models::encode;
use super::{Page, WebError, format};
use crate::param::ParamValue;
use crate::runstore::{RunDetail, RunStatus, RunStoreError, StepRunDetail, StepStatus};
use crate::server::state::ServerState;
use maud::{Markup, html};
use std::collections::BTreeMap;

/// How many runs one page of `/runs` lists, newest first.
const RUNS_PER_PAGE: usize = 50;

/// The metrics the runs list shows, when a run logged them: the test
/// metrics of a regression model. The run page lists every metric.
const KEY_METRICS: [&str; 5] = ["mse", "rmse", "mae", "r2", "baseline_mse"];

/// Reads the 1-based page number from the query string of `/runs`
/// (`?page=N`); no `page` is the first page.
fn page_number(query: &str) -> Result<usize, WebError> {
    let Some((_, value)) = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "page")
    else {
        return Ok(1);
    };
    match value.trim().parse::<usize>() {
        Ok(page) if page >= 1 => Ok(page),
        _ => Err(WebError::NotFound {
            message: format!(
                "There is no runs page {value:?}: the page number is a whole number from 1."
            ),
            back: "/runs",
            back_label: "Back to the newest runs",
        }),
    }
}

/// Builds `/runs`, one page of `RUNS_PER_PAGE` runs, newest first.
pub(super) fn list(state: &ServerState, query: &str) -> Result<Page, WebError> {
    let page = page_number(query)?;
    let total = state.runs().count_runs()?;
    let pages = total.div_ceil(RUNS_PER_PAGE).max(1);
    if page > pages {
        return Err(WebError::NotFound {
            message: format!(
                "There is no runs page {page}: this store has {total} runs, on {pages} page{}.",
                if pages == 1 { "" } else { "s" }
            ),
            back: "/runs",
            back_label: "Back to the newest runs",
        });
    }
    let first = (page - 1) * RUNS_PER_PAGE;
    let runs = state.runs().list_run_details(RUNS_PER_PAGE, first)?;
    let body = html! {
        h1 { "Runs" }
        @if runs.is_empty() {
            section.card.notice {
                p { "No pipeline has run with this store yet. Start one with:" }
                pre { code { "flowrun pipelines/training.yaml" } }
            }
        } @else {
            p.lead {
                @if total == 1 { "The only run of this store" }
                @else if pages == 1 { "The " (total) " runs of this store, newest first" }
                @else { "Runs " (first + 1) " to " (first + runs.len()) " of the " (total) " runs of this store, newest first" }
                ". The metrics column shows the test metrics of a model; open a run for "
                "every metric, its DAG and its artifacts."
            }
            div.scroll {
                table.runs {
                    thead {
                        tr {
                            th { "Run" } th { "Pipeline" } th { "Status" } th { "Started" }
                            th.num { "Duration" } th { "Steps" } th { "Parameters" } th { "Metrics" }
                        }
                    }
                    tbody {
                        @for run in &runs {
                            tr {
                                td.nowrap { a href={ "/runs/" (encode(&run.run.id)) } { code { (run.run.id) } } }
                                td { (run.run.pipeline) }
                                td { (run_badge(run.run.status)) }
                                td { (format::timestamp(&run.run.started_at)) }
                                td.num { (run.run.duration_ms.map_or_else(|| "—".to_string(), format::duration_ms)) }
                                td { (step_counts(&run.steps)) }
                                td.params { (chips(run.params.iter().map(|(k, v)| (k.clone(), param_text(v))))) }
                                @let all = metrics(&run.steps);
                                @let key: Vec<(String, String)> = all.iter().filter(|(name, _)| KEY_METRICS.iter().any(|k| name == k || name.ends_with(&format!(".{k}")))).cloned().collect();
                                td.metrics {
                                    (chips(key.iter().cloned()))
                                    @if all.len() > key.len() {
                                        a.more href={ "/runs/" (encode(&run.run.id)) "#steps" } {
                                            (all.len() - key.len()) " more"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages of runs" {
                    @if page > 1 { a rel="prev" href={ "/runs?page=" (page - 1) } { "← Newer runs" } }
                    span { "Page " (page) " of " (pages) }
                    @if page < pages { a rel="next" href={ "/runs?page=" (page + 1) } { "Older runs →" } }
                }
            }
        }
    };
    Ok(Page::ok("Runs", Nav::Runs, body))
}

/// Builds `/runs/{id}`; `id` may be `latest` or a unique prefix.
pub(super) fn detail(state: &ServerState, id: &str) -> Result<Page, WebError> {
    let run = match state.runs().get_run(id) {
        Ok(run) => run,
        Err(RunStoreError::RunNotFound { .. }) => {
            return Err(WebError::NotFound {
                message: format!("No run has the id “{id}”."),
                back: "/runs",
                back_label: "Back to Runs",
            });
        }
        Err(RunStoreError::NoRuns) => {
            return Err(WebError::NotFound {
                message: "No pipeline has run with this store yet, so there is no latest run."
                    .to_string(),
                back: "/runs",
                back_label: "Back to Runs",
            });
        }
        Err(RunStoreError::AmbiguousRun { matches, .. }) => {
            return Err(WebError::NotFound {
                message: format!(
                    "“{id}” is the start of several run ids ({}); give more of the id.",
                    matches.join(", ")
                ),
                back: "/runs",
                back_label: "Back to Runs",
            });
        }
        Err(other) => return Err(other.into()),
    };
    let summary = &run.run;
    let graph = Dag::from_run(&run);
    let body = html! {
        p.crumbs { a href="/runs" { "Runs" } " / " (summary.id) }
        h1 { "Run " code { (summary.id) } " " (run_badge(summary.status)) }
        section.card {
            dl.facts {
                dt { "Pipeline" } dd { (summary.pipeline) " (" code { (summary.pipeline_file) } ")" }
                dt { "Started" } dd { (format::timestamp(&summary.started_at)) }
                dt { "Ended" } dd { (summary.ended_at.as_deref().map_or_else(|| "—".to_string(), format::timestamp)) }
                dt { "Duration" } dd { (summary.duration_ms.map_or_else(|| "—".to_string(), format::duration_ms)) }
                dt { "Steps" } dd { (step_counts(&run.steps)) }
                dt { "Command" } dd { code { (summary.command_line) } }
                dt { "flowrun" } dd { (summary.flowrun_version) ", process " (summary.pid) }
            }
        }
        section.card {
            h2 { "DAG" }
            div.scroll { (graph.svg()) }
            (dag::legend())
            p.caption {
                @if run.graph.is_some() {
                    "The pipeline's graph as it was when the run started. Solid arrows are "
                    "data connections: the producing step and output of every input. Dashed "
                    "arrows are " code { "after:" } " dependencies, which order steps without "
                    "passing data."
                } @else {
                    "Arrows are the data connections recorded with each step's inputs: the "
                    "producing step and output of every input. This run was recorded by an "
                    "older flowrun that did not keep the pipeline's graph, so ordering-only "
                    "dependencies (" code { "after:" } ") are not drawn."
                }
                @if graph.has_unknown_inputs() {
                    " Steps that never started recorded no inputs, so they stand without "
                    "arrows in the last column."
                }
                " Select a step to see its details below."
            }
        }
        @if !run.params.is_empty() {
            section.card {
                h2 { "Parameters" }
                table {
                    thead { tr { th { "Parameter" } th { "Value" } } }
                    tbody {
                        @for (name, value) in &run.params {
                            tr { td { code { (name) } } td { code { (param_text(value)) } } }
                        }
                    }
                }
            }
        }
        (steps_table(&run))
        (artifacts_table(&run))
    };
    Ok(Page::ok(format!("Run {}", summary.id), Nav::Runs, body))
}

fn steps_table(run: &RunDetail) -> Markup {
    html! {
        section.card #steps {
            h2 { "Steps" }
            div.scroll {
                table.steps {
                    thead {
                        tr {
                            th { "Step" } th { "Outcome" } th.num { "Attempts" }
                            th.num { "Duration" } th { "Cache key" } th { "Metrics" } th { "Why it ran or failed" }
                        }
                    }
                    tbody {
                        @for step in &run.steps {
                            tr #{ "step-" (step.step_id) } {
                                td {
                                    strong { (step.step_id) }
                                    @if step.step_name != step.step_id { br; span.sub { "uses " code { (step.step_name) } } }
                                }
                                td { (step_badge(step.status)) }
                                td.num { (step.attempts) }
                                td.num { (step.duration_ms.map_or_else(|| "—".to_string(), format::duration_ms)) }
                                td { @if let Some(key) = &step.cache_key { code title=(key) { (format::hash_prefix(key)) } } @else { "—" } }
                                td.metrics { (chips(step.metrics.iter().map(|m| (m.key.clone(), format::number(m.value))))) }
                                td {
                                    @if let Some(error) = &step.error {
                                        details.error-detail { summary { "error" } pre { (error) } }
                                    }
                                    @if let Some(reason) = &step.miss_reason { (reason) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One artifact of the run with its producer and consumers.
struct Lineage<'a> {
    producer: &'a StepRunDetail,
    output: &'a crate::runstore::OutputRecord,
    consumers: Vec<(&'a str, &'a str)>,
}

fn artifacts_table(run: &RunDetail) -> Markup {
    let mut artifacts: Vec<Lineage<'_>> = Vec::new();
    for step in &run.steps {
        for output in &step.outputs {
            let consumers = run
                .steps
                .iter()
                .flat_map(|other| {
                    other
                        .inputs
                        .iter()
                        .filter(|input| input.hash == output.artifact.hash)
                        .map(move |input| (other.step_id.as_str(), input.input.as_str()))
                })
                .collect();
            artifacts.push(Lineage {
                producer: step,
                output,
                consumers,
            });
        }
    }
    html! {
        section.card {
            h2 { "Artifacts" }
            @if artifacts.is_empty() {
                p { "This run stored no artifacts." }
            } @else {
                div.scroll {
                    table.artifacts {
                        thead {
                            tr {
                                th { "Artifact" } th { "Kind" } th.num { "Size" } th { "Hash" }
                                th { "Produced by" } th { "Read by" }
                            }
                        }
                        tbody {
                            @for item in &artifacts {
                                @let artifact = &item.output.artifact;
                                tr {
                                    td { code { (item.producer.step_id) "." (item.output.output) } }
                                    td { (artifact.kind) }
                                    td.num { (format::bytes(artifact.size)) }
                                    td { code title=(artifact.path) { (format::hash_prefix(&artifact.hash)) } }
                                    td {
                                        a href={ "#step-" (item.producer.step_id) } { (item.producer.step_id) }
                                        " " (step_badge(item.producer.status))
                                    }
                                    td {
                                        @if item.consumers.is_empty() { "—" }
                                        @for (i, (step, input)) in item.consumers.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            a href={ "#step-" (step) } { (step) } " (" (input) ")"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                p.caption {
                    "A cached step lists the stored artifacts it reused; the hash is the first "
                    "12 hex digits of the content hash (hover for the file)."
                }
            }
        }
    }
}

/// Shows a parameter value: strings without quotes, others as JSON.
fn param_text(value: &ParamValue) -> String {
    match value {
        ParamValue::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Lists the metrics of a run's steps. A key logged by several steps is
/// prefixed with the step id.
fn metrics(steps: &[StepRunDetail]) -> Vec<(String, String)> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for step in steps {
        for metric in &step.metrics {
            *seen.entry(metric.key.as_str()).or_default() += 1;
        }
    }
    steps
        .iter()
        .flat_map(|step| {
            let seen = &seen;
            step.metrics.iter().map(move |metric| {
                let name = if seen[metric.key.as_str()] > 1 {
                    format!("{}.{}", step.step_id, metric.key)
                } else {
                    metric.key.clone()
                };
                (name, format::number(metric.value))
            })
        })
        .collect()
}

fn chips(items: impl Iterator<Item = (String, String)>) -> Markup {
    html! {
        ul.chips {
            @for (name, value) in items {
                li { span.k { (name) } " " span.v { (value) } }
            }
        }
    }
}

/// Counts a run's steps by outcome, as "4 ran · 2 cached".
fn step_counts(steps: &[StepRunDetail]) -> String {
    let parts: Vec<String> = StepStatus::ALL
        .iter()
        .filter_map(|status| {
            let count = steps.iter().filter(|s| s.status == *status).count();
            (count > 0).then(|| format!("{count} {}", dag::status_text(*status)))
        })
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(" · ")
    }
}

fn step_badge(status: StepStatus) -> Markup {
    layout::badge(dag::status_class(status), dag::status_text(status))
}

fn run_badge(status: RunStatus) -> Markup {
    layout::badge(&format!("run-{status}"), status.as_str())
}
