//! Editing a step's source re-runs that step and what depends on it, and
//! nothing else. The test builds a small flowrun binary from a fixture crate,
//! edits a helper constant that one step uses, rebuilds and runs again.
//!
//! The fixture builds in the target directory `cargo test` uses, with the
//! same profile settings, so that it can reuse crates `cargo test` already
//! compiled.
//!
//! NOTE: on a clean clone it still compiles most shared crates again, which
//! takes about three minutes on 2 cores; the cause is not known.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    target: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&workspace().join("tests/fixtures/code_change"), dir.path());
        let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml.in"))
            .unwrap()
            .replace("@WORKSPACE@", workspace().to_str().unwrap());
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        std::fs::remove_file(dir.path().join("Cargo.toml.in")).unwrap();
        // The workspace's lock file pins the same versions, so nothing new
        // is downloaded.
        std::fs::copy(
            workspace().join("Cargo.lock"),
            dir.path().join("Cargo.lock"),
        )
        .unwrap();
        // The target directory `cargo test` itself uses: CARGO_TARGET_DIR
        // when set (relative to the workspace, where cargo resolves it),
        // else the workspace's `target/`.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| workspace().join(dir))
            .unwrap_or_else(|| workspace().join("target"));
        Fixture { dir, target }
    }

    fn build(&self) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet"])
            .current_dir(self.dir.path())
            .env("CARGO_TARGET_DIR", &self.target)
            .status()
            .expect("failed to start cargo");
        assert!(status.success(), "the fixture failed to build");
    }

    fn run(&self) -> common::Outcome {
        let binary = self.target.join("debug/code-change-fixture");
        let output = Command::new(binary)
            .args(["run", "pipeline.yaml"])
            .current_dir(self.dir.path())
            .env_remove("FLOWRUN_STORE")
            .output()
            .unwrap();
        common::Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} does not contain {from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }
}

#[test]
fn edited_helper_reruns_only_its_user() {
    let fixture = Fixture::new();
    fixture.build();
    let first = fixture.run();
    assert_eq!(first.code, 0, "{}", first.all());
    for step in ["first", "second", "third"] {
        assert_eq!(
            first.status_of(step).as_deref(),
            Some("ran"),
            "{}",
            first.all()
        );
    }

    // A constant in a helper that only `middle` calls.
    fixture.edit("src/helpers.rs", "FACTOR: f64 = 2.0", "FACTOR: f64 = 3.0");
    fixture.build();
    let second = fixture.run();
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(
        second.status_of("first").as_deref(),
        Some("cached"),
        "{}",
        second.all()
    );
    assert_eq!(
        second.status_of("second").as_deref(),
        Some("ran"),
        "{}",
        second.all()
    );
    assert_eq!(
        second.status_of("third").as_deref(),
        Some("ran"),
        "{}",
        second.all()
    );
    assert!(
        second.line_of("second").contains("code of middle changed"),
        "{}",
        second.all()
    );
    assert!(
        second.line_of("third").contains("input second.out changed"),
        "{}",
        second.all()
    );

    // A file that no step uses.
    fixture.edit("README.md", "must not", "shall not");
    fixture.build();
    let third = fixture.run();
    assert_eq!(third.code, 0, "{}", third.all());
    for step in ["first", "second", "third"] {
        assert_eq!(
            third.status_of(step).as_deref(),
            Some("cached"),
            "{}",
            third.all()
        );
    }
}
