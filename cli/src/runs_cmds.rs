//! `flowrun runs` and `flowrun runs show`: read recorded runs from the run
//! store, as tables for people or JSON for scripts.

use crate::args::{RunsArgs, RunsCommand};
use crate::output::{errln, outln};
use anyhow::Context;
use flowrun_engine::param::format_float;
use flowrun_engine::runstore::{RunDetail, RunStore, RunSummary};
use std::path::Path;

pub(crate) fn runs(args: &RunsArgs, store_dir: &Path) -> anyhow::Result<u8> {
    let path = store_dir.join("runs.db");
    if !path.exists() {
        anyhow::bail!(
            "no run store at {}; run a pipeline first, or point --store at the store directory",
            path.display()
        );
    }
    let store = RunStore::open(&path)?;
    flowrun_engine::executor::mark_dead_runs(&store, store_dir);
    match &args.command {
        None => list(&store, args.limit, args.json),
        Some(RunsCommand::Show { id, json }) => show(&store, id, *json || args.json),
    }
}

fn list(store: &RunStore, limit: usize, json: bool) -> anyhow::Result<u8> {
    let runs = store.list_runs(limit)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(0);
    }
    if runs.is_empty() && limit == 0 {
        return Ok(0);
    }
    if runs.is_empty() {
        outln!("No runs recorded yet.");
        return Ok(0);
    }
    outln!(
        "{:<22} {:<20} {:<12} {:<21} {:>9}",
        "RUN",
        "PIPELINE",
        "STATUS",
        "STARTED",
        "DURATION"
    );
    for run in &runs {
        outln!(
            "{:<22} {:<20} {:<12} {:<21} {:>9}",
            run.id,
            run.pipeline,
            run.status.as_str(),
            short_time(&run.started_at),
            duration(run)
        );
    }
    let total = store.count_runs()?;
    if total > runs.len() {
        // On stderr, so that scripts reading the table are not affected.
        errln!(
            "Showing the newest {} of {total} runs; see more with --limit {total}.",
            runs.len()
        );
    }
    Ok(0)
}

fn short_time(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").chars().take(19).collect()
}

fn duration(run: &RunSummary) -> String {
    match run.duration_ms {
        Some(ms) => format!("{:.2}s", ms as f64 / 1000.0),
        None => "-".to_string(),
    }
}

fn show(store: &RunStore, id: &str, json: bool) -> anyhow::Result<u8> {
    let detail = store
        .get_run(id)
        .with_context(|| format!("failed to show run `{id}`"))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(0);
    }
    print_detail(&detail);
    Ok(0)
}

fn print_detail(detail: &RunDetail) {
    let run = &detail.run;
    outln!("Run {}  {}  {}", run.id, run.pipeline, run.status.as_str());
    outln!("  file: {}", run.pipeline_file);
    outln!(
        "  started: {}  duration: {}",
        short_time(&run.started_at),
        duration(run)
    );
    if !detail.params.is_empty() {
        outln!("Parameters:");
        for (name, value) in &detail.params {
            outln!("  {name} = {value}");
        }
    }
    outln!("Steps:");
    for step in &detail.steps {
        let ms = step
            .duration_ms
            .map_or("-".to_string(), |ms| format!("{:.2}s", ms as f64 / 1000.0));
        outln!(
            "  {:<24} {:<10} {:>8}  uses {}",
            step.step_id,
            step.status.as_str(),
            ms,
            step.step_name
        );
        if let Some(reason) = &step.miss_reason {
            outln!("      reason: {reason}");
        }
        if let Some(error) = &step.error {
            outln!("      error: {error}");
        }
        for (name, value) in &step.params {
            outln!("      param  {name} = {value}");
        }
        for metric in &step.metrics {
            outln!(
                "      metric {} = {}",
                metric.key,
                format_float(metric.value)
            );
        }
        for (key, value) in &step.tags {
            outln!("      tag    {key} = {value}");
        }
        for input in &step.inputs {
            outln!(
                "      input  {} <- {}",
                input.input,
                &input.hash[..12.min(input.hash.len())]
            );
        }
        for output in &step.outputs {
            outln!(
                "      output {} -> {} ({}, {} bytes)",
                output.output,
                output.artifact.path,
                output.artifact.kind,
                output.artifact.size
            );
        }
    }
}
