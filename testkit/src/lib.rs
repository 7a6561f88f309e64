//! Small steps that exercise the engine in its integration tests: constant
//! and arithmetic steps on JSON values, tables, steps that fail, fail a few
//! times, sleep while checking for cancellation, or leave a trace file so a
//! test can count how often they executed.
//!
//! They are registered by the `flowrun-testkit` binary, which is the
//! `flowrun` command with these steps in place of the domain steps.

flowrun_engine::include_fingerprints!();

mod json_steps;
mod table_steps;
mod timing_steps;

use flowrun_engine::Registry;

/// Adds every test step to `registry`.
pub fn register_all(registry: &mut Registry) {
    json_steps::register(registry);
    table_steps::register(registry);
    timing_steps::register(registry);
}

/// Appends a line to a trace file, so that tests can count executions
/// across processes. An empty path means no trace.
fn trace(path: &str, line: &str) -> Result<(), flowrun_engine::StepError> {
    use std::io::Write;
    if path.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            flowrun_engine::StepError::failed(format!("failed to open trace file {path}: {e}"))
        })?;
    writeln!(file, "{line}").map_err(|e| {
        flowrun_engine::StepError::failed(format!("failed to write trace file {path}: {e}"))
    })
}

fn trace_param() -> flowrun_engine::ParamSpec {
    flowrun_engine::ParamSpec::optional(
        "trace",
        flowrun_engine::ParamType::Path,
        flowrun_engine::ParamValue::String(String::new()),
        "file to which a line is appended at each execution",
    )
}
