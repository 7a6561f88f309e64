//! The `flowrun` command-line tool, as a library: a binary builds a
//! [`Registry`] of its steps and calls [`main`]. Keeping the CLI apart from
//! any crate of steps lets the engine's tests drive the same commands with
//! their own small steps.
//!
//! Exit codes: 0 success, 1 a step or command failed, 2 invalid input
//! (a pipeline that does not validate, a bad flag or value; nothing was run
//! or written), 130 cancelled by Ctrl-C.

mod args;
mod models_cmds;
mod output;
mod pipeline_cmds;
mod runs_cmds;
mod serve_cmds;

use anyhow::Context;
use args::{Cli, Command};
use clap::Parser;
use flowrun_engine::Registry;
use output::errln;
use std::process::ExitCode;

/// Invalid input: the run never started.
pub const EXIT_INVALID: u8 = 2;
/// A step or command failed.
pub const EXIT_FAILED: u8 = 1;
/// Cancelled with Ctrl-C.
pub const EXIT_CANCELLED: u8 = 130;

/// An error that maps to an exit code; anything else exits with 1.
#[derive(Debug)]
pub(crate) struct Exit(pub(crate) u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Parses the command line, runs the command and returns the exit code.
pub fn main(registry: Registry) -> ExitCode {
    let argv = args::with_default_subcommand(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { EXIT_INVALID } else { 0 });
        }
    };
    let _server_log = match &cli.command {
        Command::Serve(serve) => serve_cmds::init_logging(serve, cli.verbose, cli.quiet),
        _ => None,
    };
    output::init_logging(cli.verbose, cli.quiet);

    match run_command(cli, &registry) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if let Some(Exit(code)) = error.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            errln!("error: {error:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run_command(cli: Cli, registry: &Registry) -> anyhow::Result<u8> {
    // Artifact paths recorded in the run store are absolute, so that they
    // can be opened from any directory.
    let store_dir = std::path::absolute(&cli.store)
        .with_context(|| format!("invalid store directory {}", cli.store.display()))?;
    match cli.command {
        Command::Run(run) => pipeline_cmds::run(&run, registry, &store_dir, cli.quiet),
        Command::Plan(plan) => pipeline_cmds::plan(&plan, registry, &store_dir),
        Command::Graph(graph) => pipeline_cmds::graph(&graph, registry),
        Command::Steps => {
            pipeline_cmds::list_steps(registry);
            Ok(0)
        }
        Command::Runs(runs) => runs_cmds::runs(&runs, &store_dir),
        Command::Serve(serve) => serve_cmds::serve(&serve, registry, &store_dir),
        Command::Models(models) => models_cmds::models(&models, &store_dir),
    }
}
