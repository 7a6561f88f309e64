//! `flowrun-testkit`: the `flowrun` command-line tool with the engine's test
//! steps (constants, arithmetic, tables, failures, sleeps) registered in
//! place of the domain steps. The integration tests drive the engine through
//! it, and `make bench` uses it for the graph-size benchmarks.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = flowrun_engine::Registry::new();
    flowrun_testkit::register_all(&mut registry);
    flowrun_cli::main(registry)
}
