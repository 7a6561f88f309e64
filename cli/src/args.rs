//! Command-line arguments as parsed by clap. Values are checked further by
//! the engine (the pipeline file, `--set` overrides, step names).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// Declarative ML pipelines: validate a YAML pipeline, run it as a parallel
/// DAG with a content-addressed cache, and record every run.
#[derive(Debug, Parser)]
#[command(
    name = "flowrun",
    version,
    about = "Declarative ML pipelines: validate a YAML pipeline, run it as a parallel cached DAG, record every run, and serve the models it trains.",
    long_about = None
)]
pub(crate) struct Cli {
    /// Store directory for artifacts, cache entries and the run database.
    #[arg(long, global = true, env = "FLOWRUN_STORE", default_value = ".flowrun")]
    pub(crate) store: PathBuf,

    /// Log more detail (-v: debug, -vv: trace). FLOWRUN_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Print only errors.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a pipeline (the default: `flowrun FILE` is `flowrun run FILE`).
    Run(RunArgs),
    /// Show which steps a run would execute or take from cache, and why.
    Plan(PlanArgs),
    /// Print a pipeline's DAG as Mermaid or Graphviz DOT.
    Graph(GraphArgs),
    /// List the registered steps with their parameters, inputs and outputs.
    Steps,
    /// List recorded runs, or show one.
    Runs(RunsArgs),
    /// Serve the production model over HTTP, or control the store's server
    /// (`serve stop`, `serve status`).
    Serve(ServeArgs),
    /// List registered models and versions, or change which version is in
    /// production.
    Models(ModelsArgs),
}

/// The pipeline file and parameter overrides, shared by several commands.
#[derive(Debug, Args)]
pub(crate) struct PipelineArgs {
    /// The pipeline YAML file.
    pub(crate) file: PathBuf,

    /// Override a parameter: `name=value` for a pipeline parameter,
    /// `step.name=value` for a step parameter. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(crate) overrides: Vec<String>,
}

/// Which part of the pipeline to run.
#[derive(Debug, Args)]
pub(crate) struct SelectionArgs {
    /// Run this step and everything downstream of it; upstream steps must
    /// be in the cache.
    #[arg(long, value_name = "STEP", conflicts_with = "only")]
    pub(crate) from: Option<String>,

    /// Run only this step (repeatable); its upstream steps must be in the
    /// cache.
    #[arg(long, value_name = "STEP")]
    pub(crate) only: Vec<String>,

    /// Run every selected step even when its result is cached. Results are
    /// still stored.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,

    #[command(flatten)]
    pub(crate) selection: SelectionArgs,

    /// Number of steps run at once, and threads for steps that parallelise
    /// internally. Defaults to the number of CPU cores.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) jobs: Option<u16>,

    /// After a failure, keep running every step that does not depend on it.
    #[arg(long)]
    pub(crate) keep_going: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,

    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Args)]
pub(crate) struct GraphArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "mermaid")]
    pub(crate) format: GraphFormat,
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<RunsCommand>,

    /// Print JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,

    /// How many runs to list, newest first.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// Show one run's steps, parameters, metrics and artifacts.
    Show {
        /// A run id, a unique prefix of one, or `latest`.
        id: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// `flowrun serve`: the server's settings, or a subcommand that controls
/// the store's running server.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    pub(crate) command: Option<ServeCommand>,

    /// Address to listen on. Use 0.0.0.0 to accept other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,

    /// Port to listen on; 0 picks a free port (see `flowrun serve status`).
    #[arg(long, default_value_t = flowrun_engine::server::DEFAULT_PORT)]
    pub(crate) port: u16,

    /// Registered model whose production version is served.
    #[arg(long, default_value = flowrun_engine::server::DEFAULT_MODEL)]
    pub(crate) model: String,

    /// Largest batch /invocations accepts, in rows; larger ones get 413.
    #[arg(long, value_name = "ROWS", default_value_t = flowrun_engine::server::DEFAULT_MAX_ROWS,
          value_parser = parse_positive)]
    pub(crate) max_rows: usize,

    /// Run in the background: write the log to STORE/server/server.log and
    /// return once the server responds.
    #[arg(long)]
    pub(crate) daemon: bool,

    /// How often the server checks the registry for a new production
    /// version, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..))]
    pub(crate) poll_interval_ms: u64,

    /// How long shutdown waits for requests in flight, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub(crate) shutdown_timeout: u64,

    /// Worker threads; defaults to the number of CPU cores.
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub(crate) workers: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServeCommand {
    /// Stop the store's server: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait for requests in flight before SIGKILL.
        #[arg(long, value_name = "SECONDS", default_value_t = 15)]
        timeout: u64,
    },
    /// Show whether a server runs for the store, its pid, port and model
    /// version. Exits with 3 when none runs.
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a positive integer")),
    }
}

/// `flowrun models`: the model registry.
#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<ModelsCommand>,

    /// Print JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StageArg {
    Staging,
    Production,
    Archived,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
    /// Move a version to a stage. Promoting to production archives the
    /// current production version and makes a running server load the new
    /// one; if it cannot, the promotion is undone.
    Promote {
        /// The registered model name.
        name: String,
        /// The version number.
        version: i64,
        /// The stage to move it to.
        #[arg(value_enum)]
        stage: StageArg,
        /// Why, recorded in the stage history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Put the version that was in production before the current one back
    /// in production, and make a running server load it.
    Rollback {
        /// The registered model name.
        name: String,
        /// Why, recorded in the stage history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show a model's stage changes: who, when and why.
    History {
        /// The registered model name.
        name: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

const SUBCOMMANDS: &[&str] = &[
    "run", "plan", "graph", "steps", "runs", "serve", "models", "help",
];

/// Lets `flowrun FILE ...` mean `flowrun run FILE ...`: when the first
/// argument that is not a global option is neither a subcommand nor a flag,
/// `run` is inserted before it.
pub(crate) fn with_default_subcommand(mut argv: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < argv.len() {
        let arg = argv[i].to_string_lossy();
        if arg == "--store" {
            i += 2;
            continue;
        }
        if arg.starts_with('-') {
            // A global flag such as -v, or --help / --version: leave as is.
            if arg.starts_with("--store=")
                || arg == "-v"
                || arg == "-vv"
                || arg == "--verbose"
                || arg == "-q"
                || arg == "--quiet"
            {
                i += 1;
                continue;
            }
            return argv;
        }
        if !SUBCOMMANDS.contains(&arg.as_ref()) {
            argv.insert(i, OsString::from("run"));
        }
        return argv;
    }
    argv
}
