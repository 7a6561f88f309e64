//! The `flowrun` binary: the command-line tool with the customer-satisfaction
//! steps registered.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = flowrun_engine::Registry::new();
    flowrun_steps::register_all(&mut registry);
    flowrun_cli::main(registry)
}
