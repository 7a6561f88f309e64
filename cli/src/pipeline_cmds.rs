//! The commands that read a pipeline file: run, plan, graph, and the list
//! of registered steps.

use crate::args::{GraphArgs, GraphFormat, PipelineArgs, PlanArgs, RunArgs, SelectionArgs};
use crate::output::{Printer, summary};
use crate::output::{errln, outln};
use crate::{EXIT_CANCELLED, EXIT_FAILED, EXIT_INVALID, Exit};
use anyhow::Context;
use flowrun_artifacts::store::LocalStore;
use flowrun_engine::executor::{Executor, PlanStatus, RunOptions, Selection};
use flowrun_engine::graph::PipelineGraph;
use flowrun_engine::runstore::{RunStatus, RunStore};
use flowrun_engine::spec::{self, Pipeline};
use flowrun_engine::{CancelToken, Registry};
use std::path::Path;

/// Loads and validates a pipeline, or prints every error and exits with 2.
fn load(args: &PipelineArgs, registry: &Registry) -> anyhow::Result<(Pipeline, PipelineGraph)> {
    let mut overrides = Vec::new();
    for text in &args.overrides {
        match spec::parse_override(text) {
            Ok(o) => overrides.push(o),
            Err(message) => {
                errln!("error: invalid --set `{text}`: {message}");
                return Err(Exit(EXIT_INVALID).into());
            }
        }
    }
    let pipeline = match spec::load(&args.file, registry, &overrides) {
        Ok(pipeline) => pipeline,
        Err(errors) => {
            errln!("{errors}");
            return Err(Exit(EXIT_INVALID).into());
        }
    };
    let graph = match PipelineGraph::build(&pipeline) {
        Ok(graph) => graph,
        Err(errors) => {
            errln!("{errors}");
            return Err(Exit(EXIT_INVALID).into());
        }
    };
    Ok((pipeline, graph))
}

fn selection(args: &SelectionArgs) -> Selection {
    match (&args.from, args.only.is_empty()) {
        (Some(step), _) => Selection::From(step.clone()),
        (None, false) => Selection::Only(args.only.clone()),
        (None, true) => Selection::All,
    }
}

/// Checks that --from/--only name steps of the pipeline.
fn check_selection(selection: &Selection, pipeline: &Pipeline) -> anyhow::Result<()> {
    let names: Vec<&String> = match selection {
        Selection::All => return Ok(()),
        Selection::From(step) => vec![step],
        Selection::Only(steps) => steps.iter().collect(),
    };
    for name in names {
        if pipeline.step(name).is_none() {
            let ids: Vec<&str> = pipeline.steps.iter().map(|s| s.id.as_str()).collect();
            let hint = spec::closest_name(name, ids.iter().copied())
                .map_or(String::new(), |id| format!("did you mean `{id}`? "));
            errln!(
                "error: no step `{name}` in pipeline {}; {hint}its steps are: {}",
                pipeline.name,
                ids.join(", ")
            );
            return Err(Exit(EXIT_INVALID).into());
        }
    }
    Ok(())
}

/// Checks that the data paths steps read (path parameters whose contents
/// enter the cache key) exist, so that a mistyped `data_dir` is an invalid
/// input (exit 2) rather than a failure halfway through a run.
fn check_data_paths(pipeline: &Pipeline, registry: &Registry) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for step in &pipeline.steps {
        let Some(registered) = registry.get(&step.uses) else {
            continue;
        };
        for spec in registered
            .signature()
            .params
            .iter()
            .filter(|p| p.hash_contents)
        {
            let Some(path) = step.params.get(&spec.name).and_then(|v| v.as_str()) else {
                continue;
            };
            if !Path::new(path).exists() {
                missing.push(format!(
                    "error: parameter `{}` of step `{}` names `{path}`, which does not exist\n  = help: relative paths are resolved against the working directory {}",
                    spec.name,
                    step.id,
                    std::env::current_dir().map_or("?".to_string(), |d| d.display().to_string())
                ));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    errln!("{}", missing.join("\n"));
    Err(Exit(EXIT_INVALID).into())
}

/// With `--from` or `--only`, checks before the run starts that every step
/// outside the selection that a selected step needs is in the cache, and
/// exits with 2 otherwise, so that nothing runs and no run is recorded.
fn check_selection_cached(
    executor: &Executor<'_>,
    pipeline: &Pipeline,
    graph: &PipelineGraph,
    options: &RunOptions,
) -> anyhow::Result<()> {
    if options.selection == Selection::All {
        return Ok(());
    }
    let plan = executor.plan(pipeline, graph, options.no_cache, &options.selection)?;
    let missing: Vec<&str> = plan
        .iter()
        .filter(|entry| entry.status == PlanStatus::Unavailable)
        .map(|entry| entry.id.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    errln!(
        "error: the selected steps need {} from the cache, but the store has no result for their current parameters, inputs and code\n  = help: run the whole pipeline once, or select {} too",
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "them" }
    );
    Err(Exit(EXIT_INVALID).into())
}

/// Prints the metrics of the run's final steps (those nothing depends on),
/// such as the evaluation's MSE, and the `summary` tag of any step that
/// set one (model_deployer reports whether it deployed, and where the server
/// is), so a run ends with its result.
fn print_results(printer: &Printer, runs: &RunStore, run_id: &str, graph: &PipelineGraph) {
    let Ok(detail) = runs.get_run(run_id) else {
        return;
    };
    for step in &detail.steps {
        if let Some(summary) = step.tags.get("summary") {
            printer.line(&format!("Result of {}: {summary}", step.step_id));
        }
    }
    for step in &detail.steps {
        if step.metrics.is_empty() || !graph.dependents(&step.step_id).is_empty() {
            continue;
        }
        let values: Vec<String> = step
            .metrics
            .iter()
            .map(|m| format!("{} {}", m.key, short_number(m.value)))
            .collect();
        printer.line(&format!(
            "Metrics of {}: {}",
            step.step_id,
            values.join(", ")
        ));
    }
}

/// Formats a metric for a summary line: integers as such, other values with
/// four significant digits.
fn short_number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.is_finite() && value != 0.0 {
        let digits = 3 - value.abs().log10().floor() as i32;
        format!("{:.*}", digits.clamp(0, 10) as usize, value)
    } else {
        flowrun_engine::param::format_float(value)
    }
}

fn open_stores(store_dir: &Path) -> anyhow::Result<(LocalStore, RunStore)> {
    let artifacts = LocalStore::open(store_dir).with_context(|| {
        format!(
            "failed to open the artifact store in {}",
            store_dir.display()
        )
    })?;
    let runs = RunStore::open(&store_dir.join("runs.db"))
        .with_context(|| format!("failed to open the run store in {}", store_dir.display()))?;
    Ok((artifacts, runs))
}

pub(crate) fn run(
    args: &RunArgs,
    registry: &Registry,
    store_dir: &Path,
    quiet: bool,
) -> anyhow::Result<u8> {
    let (pipeline, graph) = load(&args.pipeline, registry)?;
    check_data_paths(&pipeline, registry)?;
    let selection = selection(&args.selection);
    check_selection(&selection, &pipeline)?;
    let (artifacts, runs) = open_stores(store_dir)?;

    let cancel = CancelToken::new();
    install_ctrl_c(&cancel);
    let printer = Printer::new(quiet);
    let executor = Executor {
        registry,
        artifacts: &artifacts,
        runs: &runs,
        store_dir,
        progress: printer.progress.as_ref(),
    };
    let options = RunOptions {
        jobs: args
            .jobs
            .map(usize::from)
            .unwrap_or_else(|| RunOptions::default().jobs),
        keep_going: args.keep_going,
        no_cache: args.selection.no_cache,
        selection,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
    };
    check_selection_cached(&executor, &pipeline, &graph, &options)?;
    let report = executor
        .run(&pipeline, &graph, &options, &printer, &cancel)
        .with_context(|| format!("failed to run pipeline {}", pipeline.name))?;
    summary(&printer, &report);
    print_results(&printer, &runs, &report.run_id, &graph);

    Ok(match report.status {
        RunStatus::Succeeded => 0,
        RunStatus::Cancelled => EXIT_CANCELLED,
        _ => EXIT_FAILED,
    })
}

/// Cancels the run on the first Ctrl-C; a second one exits at once.
fn install_ctrl_c(cancel: &CancelToken) {
    let cancel = cancel.clone();
    let result = ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            std::process::exit(i32::from(EXIT_CANCELLED));
        }
        errln!(
            "Cancelling: running steps stop at their next check; press Ctrl-C again to exit now"
        );
        cancel.cancel();
    });
    if let Err(error) = result {
        tracing::warn!(%error, "failed to install the Ctrl-C handler");
    }
}

pub(crate) fn plan(args: &PlanArgs, registry: &Registry, store_dir: &Path) -> anyhow::Result<u8> {
    let (pipeline, graph) = load(&args.pipeline, registry)?;
    // A run would reject a missing data path, so the plan does too.
    check_data_paths(&pipeline, registry)?;
    let selection = selection(&args.selection);
    check_selection(&selection, &pipeline)?;
    if !store_dir.join("runs.db").exists() {
        // Planning must not create a store: with none, everything runs.
        outln!(
            "Plan for pipeline {} ({}):",
            pipeline.name,
            pipeline.file.display()
        );
        let selected = |id: &str| match &selection {
            Selection::All => true,
            Selection::From(from) => graph.downstream_closure(from).contains(id),
            Selection::Only(ids) => ids.iter().any(|s| s == id),
        };
        for step in graph.topological_order() {
            if selected(step) {
                outln!(
                    "  run     {step}  no cached result (the store {} does not exist yet)",
                    store_dir.display()
                );
            } else {
                outln!("  skip    {step}  not selected");
            }
        }
        return Ok(0);
    }
    let (artifacts, runs) = open_stores(store_dir)?;
    let executor = Executor {
        registry,
        artifacts: &artifacts,
        runs: &runs,
        store_dir,
        progress: None,
    };
    let entries = executor.plan(&pipeline, &graph, args.selection.no_cache, &selection)?;

    outln!(
        "Plan for pipeline {} ({}):",
        pipeline.name,
        pipeline.file.display()
    );
    let width = entries.iter().map(|e| e.id.len()).max().unwrap_or(0);
    let mut unavailable = false;
    for entry in &entries {
        let word = match entry.status {
            PlanStatus::Cached => "cached",
            PlanStatus::Run(_) => "run",
            PlanStatus::Unavailable => {
                unavailable = true;
                "missing"
            }
            PlanStatus::NotSelected => "skip",
        };
        let detail = match entry.status {
            PlanStatus::Run(_) | PlanStatus::Unavailable | PlanStatus::NotSelected => {
                format!("  {}", entry.describe())
            }
            _ => String::new(),
        };
        outln!("  {word:<7} {:<width$}{detail}", entry.id);
    }
    Ok(if unavailable { EXIT_FAILED } else { 0 })
}

pub(crate) fn graph(args: &GraphArgs, registry: &Registry) -> anyhow::Result<u8> {
    let (pipeline, graph) = load(&args.pipeline, registry)?;
    let text = match args.format {
        GraphFormat::Mermaid => graph.to_mermaid(&pipeline),
        GraphFormat::Dot => graph.to_dot(&pipeline),
    };
    outln!("{}", text.trim_end());
    Ok(0)
}

pub(crate) fn list_steps(registry: &Registry) {
    for registered in registry.iter() {
        let signature = registered.signature();
        outln!("{}  {}", signature.name, signature.doc);
        for param in &signature.params {
            let default = match &param.default {
                Some(value) => format!(" = {value}"),
                None => " (required)".to_string(),
            };
            outln!(
                "    param  {}: {}{default}  {}",
                param.name,
                param.ty,
                param.doc
            );
        }
        for input in &signature.inputs {
            let optional = if input.optional { " (optional)" } else { "" };
            outln!(
                "    input  {}: {}{optional}  {}",
                input.name,
                input.kind,
                input.doc
            );
        }
        for output in &signature.outputs {
            outln!(
                "    output {}: {}  {}",
                output.name,
                output.kind,
                output.doc
            );
        }
    }
}
