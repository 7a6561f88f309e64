//! Shared helpers of the integration tests: a temporary project directory,
//! a runner for the `flowrun-testkit` binary (flowrun with the engine's test
//! steps) and read access to the run store.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary working directory with its own store (`.flowrun/`).
pub struct Project {
    dir: tempfile::TempDir,
}

/// The result of one `flowrun` invocation.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn from_output(output: Output) -> Self {
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both streams, for assertion messages and searches.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }

    /// The status line printed for a step, e.g. `ran`, `cached`, `failed`,
    /// `skipped`; `None` when the step has no final line.
    pub fn status_of(&self, step: &str) -> Option<String> {
        const WORDS: [&str; 5] = ["cached", "ran", "failed", "skipped", "cancelled"];
        self.stderr.lines().find_map(|line| {
            let mut parts = line.split_whitespace();
            let word = parts.next()?;
            let id = parts.next()?;
            (WORDS.contains(&word) && id == step).then(|| word.to_string())
        })
    }

    /// The full status line of a step, for checking its reason.
    pub fn line_of(&self, step: &str) -> String {
        const WORDS: [&str; 5] = ["cached", "ran", "failed", "skipped", "cancelled"];
        self.stderr
            .lines()
            .find(|line| {
                let mut parts = line.split_whitespace();
                matches!((parts.next(), parts.next()), (Some(w), Some(id)) if WORDS.contains(&w) && id == step)
            })
            .unwrap_or_default()
            .to_string()
    }
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("failed to create a temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> PathBuf {
        self.path().join(".flowrun")
    }

    /// Writes a file relative to the project, creating folders.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Returns a `flowrun-testkit` command running in the project.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowrun-testkit"));
        command
            .args(args)
            .current_dir(self.path())
            .env_remove("FLOWRUN_STORE")
            .env_remove("FLOWRUN_LOG");
        command
    }

    /// Runs `flowrun-testkit` with `args` and waits for it.
    pub fn run(&self, args: &[&str]) -> Outcome {
        Outcome::from_output(
            self.command(args)
                .output()
                .expect("failed to start flowrun-testkit"),
        )
    }

    /// Opens the run store read-only, for assertions.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.store().join("runs.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("failed to open runs.db")
    }

    /// Lines of a trace file written by the test steps (empty if absent).
    pub fn trace(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Parses `flowrun runs show latest --json`.
    pub fn latest_run(&self) -> serde_json::Value {
        let out = self.run(&["runs", "show", "latest", "--json"]);
        assert_eq!(out.code, 0, "{}", out.all());
        serde_json::from_str(&out.stdout).expect("runs show --json prints JSON")
    }
}
