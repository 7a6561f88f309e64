//! Command-line overrides (`--set`) are typed against the declared or
//! inferred type, and give the same cache key as the same edit in the YAML.

mod common;

use common::Project;

const PIPELINE: &str = "\
name: typed
parameters:
  lr: {type: float, default: 0.0005}
  negate: {type: bool, default: false}
  rows: 300
steps:
  value:
    uses: emit
    params: {value: \"${lr}\", negate: \"${negate}\"}
  table:
    uses: make_table
    params: {rows: \"${rows}\"}
";

fn pipeline_with(lr: &str, negate: &str, rows: &str) -> String {
    PIPELINE
        .replace("default: 0.0005", &format!("default: {lr}"))
        .replace("default: false", &format!("default: {negate}"))
        .replace("rows: 300", &format!("rows: {rows}"))
}

#[test]
fn override_matches_yaml_edit() {
    let project = Project::new();
    project.write("p.yaml", &pipeline_with("0.0005", "true", "300"));
    let first = project.run(&["run", "p.yaml"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(first.status_of("value").as_deref(), Some("ran"));

    // The YAML now says something else, and the command line restores the
    // first values in other spellings: every step is a cache hit.
    project.write("p.yaml", &pipeline_with("0.1", "false", "7"));
    let second = project.run(&[
        "run",
        "p.yaml",
        "--set",
        "lr=5e-4",
        "--set",
        "negate=true",
        "--set",
        "rows=300",
    ]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(
        second.status_of("value").as_deref(),
        Some("cached"),
        "{}",
        second.all()
    );
    assert_eq!(
        second.status_of("table").as_deref(),
        Some("cached"),
        "{}",
        second.all()
    );
}

#[test]
fn float_spellings_share_a_key() {
    let project = Project::new();
    project.write("p.yaml", &pipeline_with("1e-3", "false", "3"));
    let first = project.run(&["run", "p.yaml"]);
    assert_eq!(first.code, 0, "{}", first.all());
    for spelling in ["1.0e-3", "0.001"] {
        project.write("p.yaml", &pipeline_with(spelling, "false", "3"));
        let out = project.run(&["run", "p.yaml"]);
        assert_eq!(
            out.status_of("value").as_deref(),
            Some("cached"),
            "{spelling}\n{}",
            out.all()
        );
        let out = project.run(&["run", "p.yaml", "--set", &format!("lr={spelling}")]);
        assert_eq!(
            out.status_of("value").as_deref(),
            Some("cached"),
            "--set {spelling}\n{}",
            out.all()
        );
    }
}

#[test]
fn step_parameter_override_is_typed() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["run", "p.yaml", "--set", "table.rows=5"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let run = project.latest_run();
    // The run records the step override beside the pipeline parameters,
    // typed, so that it is not hidden behind `rows: 300`.
    assert_eq!(run["params"]["table.rows"], 5, "{run}");
    assert_eq!(run["params"]["rows"], 300, "{run}");

    let bad = project.run(&["run", "p.yaml", "--set", "table.rows=2.5"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("rows"), "{}", bad.all());
}

#[test]
fn invalid_float_override_is_rejected() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["run", "p.yaml", "--set", "lr=abc"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("abc"), "{}", out.all());
    assert!(out.stderr.contains("float"), "{}", out.all());
    assert!(!project.store().exists(), "nothing written\n{}", out.all());
}

#[test]
fn unknown_override_suggests_name() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["run", "p.yaml", "--set", "lrr=0.1"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("lrr"), "{}", out.all());
    assert!(
        out.stderr.contains("`lr`"),
        "suggests the closest name\n{}",
        out.all()
    );

    // A step parameter set without its step is suggested with it.
    let out = project.run(&["run", "p.yaml", "--set", "scal=2"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("did you mean the step parameter `table.scale`?"),
        "{}",
        out.all()
    );
}

#[test]
fn bool_override_rejects_yes() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["run", "p.yaml", "--set", "negate=yes"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("negate"), "{}", out.all());
}

#[test]
fn override_without_equals_is_rejected() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["run", "p.yaml", "--set", "lr"]);
    assert_eq!(out.code, 2, "{}", out.all());
}
