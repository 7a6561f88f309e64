//! Invalid pipelines are rejected before anything runs: exit code 2, every
//! error with file, line and column, nothing executed and nothing written.

mod common;

use common::Project;

/// Asserts that a command rejected its input and left no store behind.
fn assert_rejected(project: &Project, out: &common::Outcome) {
    assert_eq!(out.code, 2, "expected exit code 2\n{}", out.all());
    assert!(
        !project.store().exists(),
        "a rejected pipeline must not create the store\n{}",
        out.all()
    );
}

#[test]
fn duplicate_key_reports_both_lines() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: dup\nsteps:\n  a:\n    uses: emit\n    params:\n      value: 0.1\n      value: 0.01\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(
        out.stderr.contains("p.yaml:7"),
        "second occurrence line\n{}",
        out.all()
    );
    assert!(
        out.stderr.contains('6'),
        "first occurrence line\n{}",
        out.all()
    );
    assert!(
        out.stderr.to_lowercase().contains("duplicate"),
        "{}",
        out.all()
    );
}

#[test]
fn cycle_reported_as_path() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: cyc\nsteps:\n  a:\n    uses: scale\n    inputs: {x: c.out}\n  b:\n    uses: scale\n    inputs: {x: a.out}\n  c:\n    uses: scale\n    inputs: {x: b.out}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    let has_path = ["a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"]
        .iter()
        .any(|path| out.stderr.contains(path));
    assert!(has_path, "cycle path missing\n{}", out.all());
}

#[test]
fn unknown_step_reference_suggests_name() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: typo\nsteps:\n  train:\n    uses: emit\n  evaluate:\n    uses: scale\n    inputs: {x: trian.out}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("trian"), "{}", out.all());
    assert!(
        out.stderr.contains("evaluate"),
        "names the step that made the reference\n{}",
        out.all()
    );
    assert!(
        out.stderr.contains("`train`"),
        "suggests the closest step\n{}",
        out.all()
    );
    assert!(
        out.stderr.contains("p.yaml:7:"),
        "points at the reference\n{}",
        out.all()
    );
}

#[test]
fn self_reference_is_rejected() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: selfref\nsteps:\n  a:\n    uses: scale\n    inputs: {x: a.out}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(
        out.stderr.contains("own output") || out.stderr.contains("a -> a"),
        "{}",
        out.all()
    );
}

#[test]
fn every_error_is_reported() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: many\nsteps:\n  a:\n    uses: emitt\n  b:\n    uses: scale\n    inputs: {x: nowhere.out}\n    params: {factr: 2}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("emitt"), "{}", out.all());
    assert!(out.stderr.contains("nowhere"), "{}", out.all());
    assert!(out.stderr.contains("factr"), "{}", out.all());
    assert!(
        out.stderr.contains("`factor`"),
        "suggests the parameter\n{}",
        out.all()
    );
}

#[test]
fn unregistered_step_lists_registered() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: unreg\nsteps:\n  a:\n    uses: launch_rocket\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("launch_rocket"), "{}", out.all());
    for name in ["emit", "scale", "make_table", "sleep"] {
        assert!(
            out.stderr.contains(name),
            "lists registered step {name}\n{}",
            out.all()
        );
    }
}

#[test]
fn missing_output_lists_outputs() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: noout\nsteps:\n  a:\n    uses: emit\n  b:\n    uses: scale\n    inputs: {x: a.result}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("result"), "{}", out.all());
    assert!(
        out.stderr.contains("out"),
        "lists the outputs of a\n{}",
        out.all()
    );
}

#[test]
fn wrong_parameter_type_is_rejected() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: badtype\nsteps:\n  a:\n    uses: make_table\n    params: {rows: many}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("rows"), "{}", out.all());
    assert!(
        out.stderr.contains("int"),
        "names the expected type\n{}",
        out.all()
    );
    assert!(
        out.stderr.contains("p.yaml:5:"),
        "points at the value\n{}",
        out.all()
    );
}

#[test]
fn yes_is_not_a_boolean() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: yesno\nparameters:\n  flag: {type: bool, default: yes}\nsteps:\n  a:\n    uses: emit\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("flag"), "{}", out.all());
}

#[test]
fn non_mapping_yaml_is_rejected() {
    let project = Project::new();
    project.write("list.yaml", "- a\n- b\n");
    let out = project.run(&["run", "list.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("list.yaml"), "{}", out.all());

    project.write("scalar.yaml", "just a string\n");
    let out = project.run(&["run", "scalar.yaml"]);
    assert_rejected(&project, &out);
}

#[test]
fn empty_file_is_rejected() {
    let project = Project::new();
    project.write("empty.yaml", "");
    let out = project.run(&["run", "empty.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("empty.yaml"), "{}", out.all());
    assert!(out.stderr.to_lowercase().contains("empty"), "{}", out.all());
}

#[test]
fn missing_file_is_rejected() {
    let project = Project::new();
    let out = project.run(&["run", "nope.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("nope.yaml"), "{}", out.all());
}

#[test]
fn unknown_key_suggests_valid_key() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: keys\nsteps:\n  a:\n    uses: emit\n    retires: 2\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("retires"), "{}", out.all());
    assert!(
        out.stderr.contains("retries"),
        "suggests the valid key\n{}",
        out.all()
    );
}

#[test]
fn plan_and_graph_reject_invalid_pipeline() {
    let project = Project::new();
    project.write("p.yaml", "name: bad\nsteps:\n  a:\n    uses: nosuchstep\n");
    assert_rejected(&project, &project.run(&["plan", "p.yaml"]));
    assert_rejected(&project, &project.run(&["graph", "p.yaml"]));
}

#[test]
fn out_of_range_parameter_is_rejected() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: range\nparameters:\n  rows: 10\nsteps:\n  t:\n    uses: make_table\n    params: {rows: \"${rows}\"}\n  nap:\n    uses: sleep\n    params: {seconds: 1e300}\n",
    );
    let out = project.run(&["run", "p.yaml", "--set", "rows=-5"]);
    assert_rejected(&project, &out);
    assert!(
        out.stderr.contains("between 0 and 50000000"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("p.yaml:7:"),
        "points at the reference\n{}",
        out.all()
    );
    assert!(
        out.stderr.contains("seconds"),
        "both errors are reported\n{}",
        out.all()
    );

    let out = project.run(&["run", "p.yaml", "--set", "t.rows=100000000000"]);
    assert_rejected(&project, &out);
    assert!(out.stderr.contains("t.rows=100000000000"), "{}", out.all());
}
