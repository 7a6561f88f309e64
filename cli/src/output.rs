//! Terminal output: logging set-up and the lines printed as a run goes.
//!
//! Step outcomes go to stderr, one line each, as they happen (like cargo's
//! status lines); results meant for scripts (`--json`, graphs) go to stdout.

use flowrun_engine::executor::{Event, Outcome, Reporter, RunReport, StepReport};
use flowrun_engine::spec::format_duration;
use std::io::IsTerminal;
use std::sync::Mutex;

/// Sets up `tracing`: warnings by default, more with `-v`, and any filter in
/// the `FLOWRUN_LOG` environment variable.
pub(crate) fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,flowrun=debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWRUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Writes a line to stdout. A closed pipe (`flowrun runs | head`) ends the
/// process quietly with status 0, as other command-line tools do.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(error) = result {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        write_stderr(format_args!("error: failed to write to stdout: {error}"));
        std::process::exit(1);
    }
}

/// Writes a line to stderr, ignoring a write error. Messages and progress
/// go to stderr; when it is a closed pipe (`flowrun ... 2>&1 | head`), the
/// command goes on and finishes its work, and its exit status still reports
/// the outcome. `eprintln!` would panic there instead, in the middle of a
/// run.
pub(crate) fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Prints like `eprintln!`, but ignores write errors instead of panicking;
/// see [`write_stderr`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!($($arg)*))
    };
}
pub(crate) use errln;

/// `println!` for command output: see [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Returns "1 step", "2 steps".
pub(crate) fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Prints run events to stderr, above any progress bars.
pub(crate) struct Printer {
    pub(crate) quiet: bool,
    pub(crate) progress: Option<indicatif::MultiProgress>,
    lock: Mutex<()>,
}

impl Printer {
    pub(crate) fn new(quiet: bool) -> Self {
        let progress =
            (!quiet && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
        Printer {
            quiet,
            progress,
            lock: Mutex::new(()),
        }
    }

    /// Prints a line of progress; `--quiet` hides it.
    pub(crate) fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        self.always(text);
    }

    /// Prints a line that `--quiet` keeps, such as a step's failure.
    pub(crate) fn always(&self, text: &str) {
        let _guard = self.lock.lock().expect("printer lock poisoned");
        match &self.progress {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => write_stderr(format_args!("{text}")),
        }
    }
}

fn step_line(report: &StepReport) -> String {
    let duration = match report.outcome {
        Outcome::Skipped => String::new(),
        _ => format_duration(report.duration),
    };
    let mut line = format!(
        "  {:<9} {:<24} {:>8}",
        report.outcome.as_str(),
        report.id,
        duration
    );
    if report.attempts > 1 {
        line.push_str(&format!("  after {} attempts", report.attempts));
    }
    if let Some(reason) = &report.reason {
        line.push_str(&format!("  ({reason})"));
    }
    if let Some(error) = &report.error {
        line.push_str(&format!("\n            error: {error}"));
    }
    line
}

impl Reporter for Printer {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::RunStarted {
                run_id,
                pipeline,
                steps,
                jobs,
            } => self.line(&format!(
                "Running pipeline {pipeline}: {}, {}, run {run_id}",
                plural(*steps, "step"),
                plural(*jobs, "job")
            )),
            Event::StepStarted { id, reason } => {
                self.line(&format!("  {:<9} {id}  ({reason})", "running"))
            }
            Event::WaitingForLock { id } => self.line(&format!(
                "  {:<9} {id}  (another flowrun process is computing the same result)",
                "waiting"
            )),
            Event::Retrying {
                id,
                attempt,
                of,
                error,
                delay,
            } => self.line(&format!(
                "  {:<9} {id}  attempt {attempt} of {of} failed: {error}; retrying in {}",
                "retry",
                format_duration(*delay)
            )),
            Event::Recomputing { id, reason } => self.line(&format!(
                "  {:<9} {id}  (a stored output cannot be used: {reason})",
                "recompute"
            )),
            Event::StepFinished(report) if report.outcome == Outcome::Failed => {
                self.always(&step_line(report))
            }
            Event::StepFinished(report) => self.line(&step_line(report)),
        }
    }
}

/// Prints the closing summary of a run.
pub(crate) fn summary(printer: &Printer, report: &RunReport) {
    let mut parts = Vec::new();
    for outcome in [
        Outcome::Ran,
        Outcome::Cached,
        Outcome::Failed,
        Outcome::Skipped,
        Outcome::Cancelled,
    ] {
        let count = report.count(outcome);
        if count > 0 {
            parts.push(format!("{count} {}", outcome.as_str()));
        }
    }
    printer.line(&format!(
        "Run {} {} in {}: {}",
        report.run_id,
        report.status.as_str(),
        format_duration(report.duration),
        parts.join(", ")
    ));
}
