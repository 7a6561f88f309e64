//! Fingerprints of a small crate written to a temporary folder, edited
//! between runs.
//!
//! The crate under test:
//!
//! ```text
//! lib.rs ── helpers.rs          THRESHOLD, read by train, evaluate, report
//!        ├─ train.rs            use crate::helpers::THRESHOLD
//!        ├─ evaluate.rs         use crate::{helpers::THRESHOLD as T, models::Gbm}
//!        ├─ report.rs           format!("{}", crate::helpers::THRESHOLD)
//!        ├─ ingest.rs           references nothing
//!        ├─ models/mod.rs ── models/gbm.rs   use super::SCALE
//!        └─ checks.rs           #[cfg(test)], never fingerprinted
//! ```

use flowrun_build::{BuildError, CrateSource, Fingerprints, fingerprint_crate};
use std::fs;
use std::path::Path;

const MANIFEST: &str = r#"
[package]
name = "demo-steps"
version = "0.1.0"
edition = "2024"

[dependencies]
csv = "1"

[dev-dependencies]
tempfile = "3"
"#;

const LOCK: &str = r#"
version = 4

[[package]]
name = "csv"
version = "1.3.1"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "demo-steps"
version = "0.1.0"
dependencies = [
 "csv",
 "tempfile",
]

[[package]]
name = "tempfile"
version = "3.20.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

const FILES: &[(&str, &str)] = &[
    ("README.md", "# demo steps\n"),
    (
        "src/lib.rs",
        "//! Demo steps.\n\
         pub mod evaluate;\n\
         pub mod helpers;\n\
         pub mod ingest;\n\
         pub mod models;\n\
         pub mod report;\n\
         pub mod train;\n\
         #[cfg(test)]\n\
         mod checks;\n",
    ),
    ("src/helpers.rs", "pub const THRESHOLD: f64 = 0.5;\n"),
    (
        "src/train.rs",
        "use crate::helpers::THRESHOLD;\n\
         pub fn run(x: f64) -> bool { x > THRESHOLD }\n",
    ),
    (
        "src/evaluate.rs",
        "use crate::{helpers::THRESHOLD as T, models::Gbm};\n\
         pub fn run(model: &Gbm) -> f64 { model.0 * T }\n",
    ),
    (
        "src/report.rs",
        "pub fn run() -> String { format!(\"{}\", crate::helpers::THRESHOLD) }\n",
    ),
    (
        "src/ingest.rs",
        "pub fn run() -> Vec<f64> { vec![1.0, 2.0] }\n",
    ),
    (
        "src/models/mod.rs",
        "pub mod gbm;\n\
         pub use gbm::Gbm;\n\
         pub const SCALE: f64 = 2.0;\n",
    ),
    (
        "src/models/gbm.rs",
        "use super::SCALE;\n\
         pub struct Gbm(pub f64);\n\
         pub fn scaled(x: f64) -> f64 { x * SCALE }\n",
    ),
    ("src/checks.rs", "#[test]\nfn it_works() {}\n"),
];

/// Writes the demo crate into `dir`.
fn write_crate(dir: &Path) {
    fs::write(dir.join("Cargo.toml"), MANIFEST).unwrap();
    fs::write(dir.join("Cargo.lock"), LOCK).unwrap();
    for (path, text) in FILES {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

fn fingerprints(dir: &Path) -> Fingerprints {
    fingerprint_crate(&CrateSource::from_manifest_dir(dir).unwrap()).unwrap()
}

/// Replaces `from` with `to` in a file of the crate, checking it was there.
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Returns the modules whose fingerprint differs between two runs.
fn changed(before: &Fingerprints, after: &Fingerprints) -> Vec<String> {
    assert_eq!(
        before.modules.keys().collect::<Vec<_>>(),
        after.modules.keys().collect::<Vec<_>>()
    );
    before
        .modules
        .iter()
        .filter(|(module, fingerprint)| after.modules[*module] != **fingerprint)
        .map(|(module, _)| module.clone())
        .collect()
}

#[test]
fn lists_file_modules_by_module_path() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let found = fingerprints(dir.path());
    let modules: Vec<&str> = found.modules.keys().map(String::as_str).collect();
    assert_eq!(
        modules,
        [
            "demo_steps",
            "demo_steps::evaluate",
            "demo_steps::helpers",
            "demo_steps::ingest",
            "demo_steps::models",
            "demo_steps::models::gbm",
            "demo_steps::report",
            "demo_steps::train",
        ]
    );
    for fingerprint in found.modules.values() {
        assert_eq!(fingerprint.len(), 64, "{fingerprint}");
        assert!(
            fingerprint.chars().all(|c| c.is_ascii_hexdigit()),
            "{fingerprint}"
        );
    }
}

#[test]
fn helper_edit_changes_only_its_users() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let before = fingerprints(dir.path());

    edit(dir.path(), "src/helpers.rs", "0.5", "0.6");
    let after = fingerprints(dir.path());

    assert_eq!(
        changed(&before, &after),
        [
            "demo_steps",
            "demo_steps::evaluate",
            "demo_steps::helpers",
            "demo_steps::report",
            "demo_steps::train",
        ]
    );
}

#[test]
fn parent_edit_changes_child_using_super() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let before = fingerprints(dir.path());

    edit(dir.path(), "src/models/mod.rs", "2.0", "3.0");
    let after = fingerprints(dir.path());

    // evaluate imports `models::Gbm`, so it depends on models/mod.rs too.
    assert_eq!(
        changed(&before, &after),
        [
            "demo_steps",
            "demo_steps::evaluate",
            "demo_steps::models",
            "demo_steps::models::gbm",
        ]
    );
}

#[test]
fn child_edit_changes_parent_and_reexport_users() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let before = fingerprints(dir.path());

    edit(
        dir.path(),
        "src/models/gbm.rs",
        "x * SCALE",
        "x * SCALE + 1.0",
    );
    let after = fingerprints(dir.path());

    // models contains gbm; evaluate reaches gbm through `pub use gbm::Gbm`.
    assert_eq!(
        changed(&before, &after),
        [
            "demo_steps",
            "demo_steps::evaluate",
            "demo_steps::models",
            "demo_steps::models::gbm",
        ]
    );
}

#[test]
fn readme_and_test_module_edits_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let before = fingerprints(dir.path());

    edit(dir.path(), "README.md", "demo", "sample");
    edit(dir.path(), "src/checks.rs", "it_works", "still_works");
    let after = fingerprints(dir.path());

    assert_eq!(before, after);
}

#[test]
fn comment_edit_changes_the_module() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let before = fingerprints(dir.path());

    edit(
        dir.path(),
        "src/ingest.rs",
        "pub fn",
        "// Reads the data.\npub fn",
    );
    let after = fingerprints(dir.path());

    assert_eq!(
        changed(&before, &after),
        ["demo_steps", "demo_steps::ingest"]
    );
}

#[test]
fn output_is_identical_across_runs_and_folders() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    write_crate(first.path());
    write_crate(second.path());

    let once = fingerprints(first.path()).to_rust_source();
    let again = fingerprints(first.path()).to_rust_source();
    let elsewhere = fingerprints(second.path()).to_rust_source();
    assert_eq!(once, again);
    assert_eq!(
        once, elsewhere,
        "the fingerprint depends on the crate's folder"
    );
}

#[test]
fn dependency_upgrade_changes_everything() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let before = fingerprints(dir.path());

    edit(dir.path(), "Cargo.lock", "1.3.1", "1.3.2");
    let after = fingerprints(dir.path());

    assert_eq!(changed(&before, &after).len(), before.modules.len());
}

#[test]
fn dev_dependency_upgrade_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let before = fingerprints(dir.path());

    edit(dir.path(), "Cargo.lock", "3.20.0", "3.21.0");
    let after = fingerprints(dir.path());

    assert_eq!(before.modules, after.modules);
}

#[test]
fn inline_module_references_count_for_its_file() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    edit(
        dir.path(),
        "src/ingest.rs",
        "pub fn run",
        "mod inner {\n    pub fn limit() -> f64 { super::super::helpers::THRESHOLD }\n}\npub fn run",
    );
    let before = fingerprints(dir.path());

    edit(dir.path(), "src/helpers.rs", "0.5", "0.6");
    let after = fingerprints(dir.path());

    assert!(changed(&before, &after).contains(&"demo_steps::ingest".to_string()));
    assert!(!before.modules.contains_key("demo_steps::ingest::inner"));
}

#[test]
fn generated_source_is_an_array_expression() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let source = fingerprints(dir.path()).to_rust_source();

    let array: syn::ExprArray = syn::parse_str(&source).unwrap();
    assert_eq!(array.elems.len(), 8);
    assert!(source.contains("(\"demo_steps::train\", \""), "{source}");
}

#[test]
fn inputs_list_sources_and_manifests() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    let inputs = fingerprints(dir.path()).inputs;

    for expected in [
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
        "src/models/gbm.rs",
    ] {
        assert!(
            inputs.contains(&dir.path().join(expected)),
            "{expected} missing from {inputs:?}"
        );
    }
    assert!(!inputs.contains(&dir.path().join("src/checks.rs")));
    assert!(!inputs.contains(&dir.path().join("README.md")));
}

#[test]
fn missing_module_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    edit(
        dir.path(),
        "src/lib.rs",
        "pub mod train;",
        "pub mod train;\npub mod absent;",
    );

    let error =
        fingerprint_crate(&CrateSource::from_manifest_dir(dir.path()).unwrap()).unwrap_err();
    assert!(
        matches!(error, BuildError::ModuleNotFound { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("`absent`"), "{message}");
    assert!(message.contains("absent.rs"), "{message}");
}

#[test]
fn invalid_rust_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    edit(dir.path(), "src/ingest.rs", "pub fn run()", "pub fn run(");

    let error =
        fingerprint_crate(&CrateSource::from_manifest_dir(dir.path()).unwrap()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("ingest.rs"), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn path_attribute_module_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    fs::create_dir_all(dir.path().join("src/extra")).unwrap();
    fs::write(
        dir.path().join("src/extra/special.rs"),
        "pub const K: u8 = 1;\n",
    )
    .unwrap();
    edit(
        dir.path(),
        "src/lib.rs",
        "pub mod train;",
        "pub mod train;\n#[path = \"extra/special.rs\"]\npub mod special;",
    );
    edit(
        dir.path(),
        "src/ingest.rs",
        "pub fn run",
        "pub use crate::special::K;\npub fn run",
    );
    let before = fingerprints(dir.path());

    edit(dir.path(), "src/extra/special.rs", "1", "2");
    let after = fingerprints(dir.path());

    assert_eq!(
        changed(&before, &after),
        ["demo_steps", "demo_steps::ingest", "demo_steps::special"]
    );
}

#[test]
fn root_helper_does_not_link_sibling_steps() {
    // lib.rs calls every module's `register`, and both steps call
    // `crate::trace`, which reads `crate::helpers::THRESHOLD` through
    // `limit`. Editing one step must leave the other alone, while editing
    // what `trace` uses reaches both.
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    edit(
        dir.path(),
        "src/lib.rs",
        "#[cfg(test)]",
        "pub mod alpha;\n\
         pub mod beta;\n\
         pub fn register_all() { alpha::register(); beta::register(); }\n\
         pub fn trace(step: &str) -> bool { step.len() as f64 > limit() }\n\
         fn limit() -> f64 { crate::helpers::THRESHOLD }\n\
         #[cfg(test)]",
    );
    fs::write(
        dir.path().join("src/alpha.rs"),
        "pub fn register() { crate::trace(\"alpha\"); }\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("src/beta.rs"),
        "pub fn register() { crate::trace(\"beta\"); }\n",
    )
    .unwrap();
    let before = fingerprints(dir.path());

    edit(dir.path(), "src/beta.rs", "\"beta\"", "\"b\"");
    let after_beta = fingerprints(dir.path());
    assert_eq!(
        changed(&before, &after_beta),
        ["demo_steps", "demo_steps::beta"]
    );

    edit(dir.path(), "src/helpers.rs", "0.5", "0.6");
    let after_helpers = fingerprints(dir.path());
    let changed_by_helpers = changed(&after_beta, &after_helpers);
    assert!(changed_by_helpers.contains(&"demo_steps::alpha".to_string()));
    assert!(changed_by_helpers.contains(&"demo_steps::beta".to_string()));
    assert!(!changed_by_helpers.contains(&"demo_steps::ingest".to_string()));
}

#[test]
fn type_use_brings_in_its_methods() {
    // ingest names `Scaler` only. The `impl` block of `Scaler` reads
    // `crate::factors::FACTOR`, so editing factors.rs changes ingest.
    // `Other` in the same file as `Scaler` reads `crate::unused`, which
    // ingest never reaches.
    let dir = tempfile::tempdir().unwrap();
    write_crate(dir.path());
    fs::write(
        dir.path().join("src/helpers.rs"),
        "pub const THRESHOLD: f64 = 0.5;\n\
         pub struct Scaler;\n\
         impl Scaler { pub fn factor(&self) -> f64 { crate::factors::FACTOR } }\n\
         pub struct Other;\n\
         impl Other { pub fn value(&self) -> f64 { crate::unused::VALUE } }\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("src/factors.rs"),
        "pub const FACTOR: f64 = 1.0;\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("src/unused.rs"),
        "pub const VALUE: f64 = 1.0;\n",
    )
    .unwrap();
    edit(
        dir.path(),
        "src/lib.rs",
        "pub mod train;",
        "pub mod train;\npub mod factors;\npub mod unused;",
    );
    edit(
        dir.path(),
        "src/ingest.rs",
        "pub fn run",
        "pub fn factor() -> f64 { crate::helpers::Scaler.factor() }\npub fn run",
    );
    let before = fingerprints(dir.path());

    edit(dir.path(), "src/factors.rs", "1.0", "2.0");
    edit(dir.path(), "src/unused.rs", "1.0", "2.0");
    let after = fingerprints(dir.path());
    let edited = changed(&before, &after);

    assert!(
        edited.contains(&"demo_steps::ingest".to_string()),
        "{edited:?}"
    );
    assert!(
        edited.contains(&"demo_steps::helpers".to_string()),
        "{edited:?}"
    );
    assert!(
        !edited.contains(&"demo_steps::train".to_string()),
        "{edited:?}"
    );

    // Only the `unused` edit: ingest stays the same.
    edit(dir.path(), "src/unused.rs", "2.0", "3.0");
    let last = fingerprints(dir.path());
    assert_eq!(
        changed(&after, &last),
        ["demo_steps", "demo_steps::helpers", "demo_steps::unused"]
    );
}
