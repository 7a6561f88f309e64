//! The cache: a step re-runs exactly when its parameters, inputs or code
//! change, says why, and never uses a corrupt or half-written result.

mod common;

use common::Project;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Two steps: `a` emits `${v}`, `b` doubles it.
fn two_steps(value: &str) -> String {
    format!(
        "name: two\nparameters:\n  v: {value}\nsteps:\n  a:\n    uses: emit\n    params: {{value: \"${{v}}\"}}\n  b:\n    uses: scale\n    inputs: {{x: a.out}}\n"
    )
}

/// The stored file of a step's output in the latest run.
fn output_path(project: &Project, step: &str, output: &str) -> PathBuf {
    let run = project.latest_run();
    let steps = run["steps"].as_array().expect("steps array");
    let step = steps
        .iter()
        .find(|s| s["step_id"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {run}"));
    let outputs = step["outputs"].as_array().expect("outputs array");
    let artifact = outputs
        .iter()
        .find(|o| o["output"] == output)
        .unwrap_or_else(|| panic!("no output {output} in {step}"));
    PathBuf::from(artifact["path"].as_str().expect("artifact path"))
}

fn metric(project: &Project, step: &str, name: &str) -> f64 {
    let run = project.latest_run();
    let step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == step)
        .unwrap()
        .clone();
    let metrics = step["metrics"].as_array().expect("metrics array");
    let found = metrics
        .iter()
        .find(|m| m["key"] == name)
        .expect("metric present");
    found["value"].as_f64().expect("finite metric")
}

#[test]
fn changed_parameter_reruns_both_steps() {
    let project = Project::new();
    project.write("p.yaml", &two_steps("1.5"));
    let first = project.run(&["run", "p.yaml"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(first.status_of("a").as_deref(), Some("ran"));
    assert_eq!(first.status_of("b").as_deref(), Some("ran"));
    let first_path = output_path(&project, "b", "out");
    let first_bytes = std::fs::read(&first_path).unwrap();
    assert_eq!(metric(&project, "b", "value"), 3.0);

    project.write("p.yaml", &two_steps("2.5"));
    let second = project.run(&["run", "p.yaml"]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(
        second.status_of("a").as_deref(),
        Some("ran"),
        "{}",
        second.all()
    );
    assert_eq!(
        second.status_of("b").as_deref(),
        Some("ran"),
        "{}",
        second.all()
    );
    assert!(
        second
            .line_of("a")
            .contains("parameter value changed from 1.5 to 2.5"),
        "{}",
        second.all()
    );
    assert!(
        second.line_of("b").contains("input a.out changed"),
        "{}",
        second.all()
    );
    assert_eq!(metric(&project, "b", "value"), 5.0);

    project.write("p.yaml", &two_steps("1.5"));
    let third = project.run(&["run", "p.yaml"]);
    assert_eq!(third.code, 0, "{}", third.all());
    assert_eq!(
        third.status_of("a").as_deref(),
        Some("cached"),
        "{}",
        third.all()
    );
    assert_eq!(
        third.status_of("b").as_deref(),
        Some("cached"),
        "{}",
        third.all()
    );
    assert_eq!(output_path(&project, "b", "out"), first_path);
    assert_eq!(std::fs::read(&first_path).unwrap(), first_bytes);
    assert_eq!(
        metric(&project, "b", "value"),
        3.0,
        "metrics replayed from cache"
    );
}

#[test]
fn plan_explains_without_running() {
    let project = Project::new();
    project.write("p.yaml", &two_steps("1.5"));
    let fresh = project.run(&["plan", "p.yaml"]);
    assert_eq!(fresh.code, 0, "{}", fresh.all());
    assert!(fresh.stdout.contains("run"), "{}", fresh.all());
    assert!(project.trace("t").is_empty());

    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    let cached = project.run(&["plan", "p.yaml"]);
    assert_eq!(cached.code, 0, "{}", cached.all());
    assert!(
        cached
            .stdout
            .lines()
            .any(|l| l.contains("cached") && l.contains(" a")),
        "{}",
        cached.all()
    );
    assert!(
        cached
            .stdout
            .lines()
            .any(|l| l.contains("cached") && l.contains(" b")),
        "{}",
        cached.all()
    );

    project.write("p.yaml", &two_steps("4"));
    let changed = project.run(&["plan", "p.yaml"]);
    assert!(
        changed
            .stdout
            .contains("parameter value changed from 1.5 to 4.0"),
        "{}",
        changed.all()
    );
    assert!(
        changed.stdout.contains("input a.out will be recomputed"),
        "{}",
        changed.all()
    );

    let runs_before = project.run(&["runs", "--json"]).stdout;
    let again = project.run(&["plan", "p.yaml"]);
    assert_eq!(again.code, 0);
    assert_eq!(
        project.run(&["runs", "--json"]).stdout,
        runs_before,
        "plan records no run"
    );
}

#[test]
fn no_cache_and_cache_false_rerun() {
    let project = Project::new();
    project.write("p.yaml", &two_steps("1"));
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);

    let forced = project.run(&["run", "p.yaml", "--no-cache"]);
    assert_eq!(
        forced.status_of("a").as_deref(),
        Some("ran"),
        "{}",
        forced.all()
    );
    assert!(
        forced.line_of("a").contains("--no-cache"),
        "{}",
        forced.all()
    );

    let yaml = two_steps("1").replace("    uses: emit\n", "    uses: emit\n    cache: false\n");
    project.write("p.yaml", &yaml);
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.status_of("a").as_deref(), Some("ran"), "{}", out.all());
    assert!(out.line_of("a").contains("cache: false"), "{}", out.all());
    // Same value, same content hash: the downstream step stays cached.
    assert_eq!(
        out.status_of("b").as_deref(),
        Some("cached"),
        "{}",
        out.all()
    );
}

#[test]
fn corrupt_artifact_is_recomputed() {
    let project = Project::new();
    let yaml = "name: tables\nsteps:\n  gen:\n    uses: make_table\n    params: {rows: 1000, trace: t}\n  total:\n    uses: sum_column\n    inputs: {table: gen.table}\n    params: {trace: t}\n";
    project.write("p.yaml", yaml);
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    assert_eq!(metric(&project, "total", "sum"), 499_500.0);

    // Flip one byte in the middle of the stored table, keeping its size
    // and, as a copy tool that keeps times would, its modification time:
    // the cache hit of gen cannot tell, so the read of total must.
    let path = output_path(&project, "gen", "table");
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(written)
        .unwrap();

    // The consumer re-runs (its trace parameter changed) and must not read
    // the corrupt table: the producer runs again first.
    project.write(
        "p.yaml",
        &yaml.replace("params: {trace: t}", "params: {trace: t2}"),
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("corrupt"),
        "reports the corrupt artifact\n{}",
        out.all()
    );
    assert_eq!(
        project.trace("t"),
        vec!["gen", "total", "gen"],
        "gen ran again"
    );
    assert_eq!(project.trace("t2"), vec!["total"]);
    assert_eq!(metric(&project, "total", "sum"), 499_500.0);
    assert_ne!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the corrupt file was replaced"
    );

    // The run store records that gen ran in this run, and why, rather than
    // that it came from the cache.
    let run = project.latest_run();
    let gen_step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "gen")
        .unwrap()
        .clone();
    assert_eq!(gen_step["status"], "succeeded", "{gen_step}");
    let reason = gen_step["miss_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("unusable"), "{gen_step}");
    assert_eq!(
        output_path(&project, "gen", "table"),
        path,
        "the new table replaced the corrupt one at the same address"
    );
}

#[test]
fn truncated_artifact_is_never_used() {
    let project = Project::new();
    project.write("p.yaml", &two_steps("3"));
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    let path = output_path(&project, "a", "out");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.status_of("a").as_deref(), Some("ran"), "{}", out.all());
    assert_eq!(
        out.status_of("b").as_deref(),
        Some("cached"),
        "{}",
        out.all()
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file is whole again"
    );
}

/// Waits until a temporary artifact file appears in the store, which means
/// the step finished and its output is being written.
fn wait_for_tmp_file(store: &std::path::Path, timeout: Duration) -> bool {
    let tmp = store.join("tmp");
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if let Ok(entries) = std::fs::read_dir(&tmp)
            && entries.flatten().next().is_some()
        {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}

#[test]
fn kill_during_write_leaves_usable_store() {
    let project = Project::new();
    let yaml = "name: big\nsteps:\n  small:\n    uses: make_table\n    params: {rows: 10, trace: t}\n  big:\n    uses: make_table\n    params: {rows: 3000000, scale: 2.0, trace: t}\n    after: [small]\n  total:\n    uses: sum_column\n    inputs: {table: big.table}\n    params: {trace: t}\n";
    // Cache `small` first, alone.
    project.write(
        "p.yaml",
        "name: big\nsteps:\n  small:\n    uses: make_table\n    params: {rows: 10, trace: t}\n",
    );
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);

    project.write("p.yaml", yaml);
    let mut child = project
        .command(&["run", "p.yaml", "--jobs", "1"])
        .spawn()
        .unwrap();
    let writing = wait_for_tmp_file(&project.store(), Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    assert!(writing, "the big table was never written");

    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.status_of("small").as_deref(),
        Some("cached"),
        "{}",
        out.all()
    );
    assert_eq!(
        out.status_of("big").as_deref(),
        Some("ran"),
        "{}",
        out.all()
    );
    assert_eq!(
        out.status_of("total").as_deref(),
        Some("ran"),
        "{}",
        out.all()
    );
    let expected: f64 = (0..3_000_000u64).map(|i| i as f64 * 2.0).sum();
    assert_eq!(metric(&project, "total", "sum"), expected);

    // The killed run is marked interrupted and has no step left running.
    let db = project.db();
    let running: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM step_runs WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0);
    let interrupted: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE status = 'interrupted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(interrupted, 1);
    let leftovers = std::fs::read_dir(project.store().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(
        leftovers, 0,
        "temporary files of the killed process are removed"
    );
}

#[test]
fn only_and_from_reuse_upstream() {
    let project = Project::new();
    let yaml = "name: chain\nsteps:\n  a:\n    uses: emit\n    params: {value: 2, trace: t}\n  b:\n    uses: scale\n    inputs: {x: a.out}\n    params: {trace: t}\n  c:\n    uses: scale\n    inputs: {x: b.out}\n    params: {factor: 10, trace: t}\n";
    project.write("p.yaml", yaml);

    let cold = project.run(&["run", "p.yaml", "--only", "c"]);
    assert_eq!(cold.code, 2, "upstream not cached yet\n{}", cold.all());
    assert!(
        cold.stderr.contains("need a, b from the cache"),
        "{}",
        cold.all()
    );
    assert!(
        !cold.stderr.contains("Running pipeline"),
        "no run starts\n{}",
        cold.all()
    );
    assert!(project.trace("t").is_empty(), "nothing executed");

    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    assert_eq!(project.trace("t"), vec!["a", "b", "c"]);

    project.write("p.yaml", &yaml.replace("factor: 10", "factor: 100"));
    let only = project.run(&["run", "p.yaml", "--only", "c"]);
    assert_eq!(only.code, 0, "{}", only.all());
    assert_eq!(only.status_of("a").as_deref(), Some("cached"));
    assert_eq!(only.status_of("c").as_deref(), Some("ran"));
    assert_eq!(metric(&project, "c", "value"), 400.0);

    let from = project.run(&["run", "p.yaml", "--from", "b", "--no-cache"]);
    assert_eq!(from.code, 0, "{}", from.all());
    assert_eq!(
        from.status_of("a").as_deref(),
        Some("cached"),
        "{}",
        from.all()
    );
    assert_eq!(
        from.status_of("b").as_deref(),
        Some("ran"),
        "{}",
        from.all()
    );
    assert_eq!(
        from.status_of("c").as_deref(),
        Some("ran"),
        "{}",
        from.all()
    );
    assert_eq!(project.trace("t"), vec!["a", "b", "c", "c", "b", "c"]);

    let unknown = project.run(&["run", "p.yaml", "--only", "zz"]);
    assert_eq!(unknown.code, 2, "{}", unknown.all());
}

#[test]
fn extended_pipeline_reuses_parent_results() {
    let project = Project::new();
    project.write("base.yaml", &two_steps("2"));
    project.write(
        "child.yaml",
        "name: child\nextends: base.yaml\nsteps:\n  c:\n    uses: scale\n    inputs: {x: b.out}\n    params: {factor: 3}\n",
    );
    assert_eq!(project.run(&["run", "base.yaml"]).code, 0);
    let out = project.run(&["run", "child.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.status_of("a").as_deref(),
        Some("cached"),
        "{}",
        out.all()
    );
    assert_eq!(
        out.status_of("b").as_deref(),
        Some("cached"),
        "{}",
        out.all()
    );
    assert_eq!(out.status_of("c").as_deref(), Some("ran"), "{}", out.all());
    assert_eq!(metric(&project, "c", "value"), 12.0);
}

#[test]
fn changed_data_file_reruns_reader() {
    let project = Project::new();
    project.write("data.txt", "a\nb\n");
    project.write(
        "p.yaml",
        "name: data\nsteps:\n  count:\n    uses: count_lines\n    params: {path: data.txt, trace: t}\n",
    );
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    assert_eq!(
        project
            .run(&["run", "p.yaml"])
            .status_of("count")
            .as_deref(),
        Some("cached")
    );

    project.write("data.txt", "a\nb\nc\n");
    let plan = project.run(&["plan", "p.yaml"]);
    assert!(
        plan.stdout.contains("contents of path (data.txt) changed"),
        "{}",
        plan.all()
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(
        out.status_of("count").as_deref(),
        Some("ran"),
        "{}",
        out.all()
    );
    assert!(
        out.line_of("count")
            .contains("contents of path (data.txt) changed"),
        "{}",
        out.all()
    );
    assert_eq!(metric(&project, "count", "lines"), 3.0);
    assert_eq!(project.trace("t"), vec!["count", "count"]);
}

#[test]
fn missing_data_path_is_invalid_input() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: data\nsteps:\n  count:\n    uses: count_lines\n    params: {path: no/such/file.txt}\n",
    );
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("no/such/file.txt"), "{}", out.all());
    assert!(out.stderr.contains("does not exist"), "{}", out.all());
    assert!(!project.store().exists(), "nothing written\n{}", out.all());

    // The plan agrees with the run instead of promising to run the step.
    let plan = project.run(&["plan", "p.yaml"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stderr.contains("does not exist"), "{}", plan.all());
}

#[test]
fn damaged_final_output_misses_cache() {
    // Nothing reads `total`'s output, so only the cache hit itself can
    // notice that its stored file changed.
    let project = Project::new();
    let yaml = "name: tables\nsteps:\n  gen:\n    uses: make_table\n    params: {rows: 1000, trace: t}\n  copy:\n    uses: make_table\n    params: {rows: 10, trace: t}\n";
    project.write("p.yaml", yaml);
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    let path = output_path(&project, "gen", "table");
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();

    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.status_of("gen").as_deref(),
        Some("ran"),
        "{}",
        out.all()
    );
    assert_eq!(
        out.status_of("copy").as_deref(),
        Some("cached"),
        "{}",
        out.all()
    );
    assert_eq!(std::fs::read(&path).unwrap(), good, "the file was repaired");

    // Touching a file without changing it costs one check, not a re-run.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let out = project.run(&["run", "p.yaml"]);
    assert_eq!(
        out.status_of("gen").as_deref(),
        Some("cached"),
        "{}",
        out.all()
    );
}

#[test]
fn only_needs_no_cache_for_an_after_dependency() {
    // `after:` orders steps without passing data, so a selected step does
    // not need the other step's result.
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: ordered\nsteps:\n  probe:\n    uses: emit\n    params: {trace: t}\n  train:\n    uses: emit\n    params: {value: 2, trace: t}\n    after: [probe]\n",
    );
    let out = project.run(&["run", "p.yaml", "--only", "train"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(project.trace("t"), vec!["train"]);
}

#[test]
fn plan_names_the_steps_a_selection_leaves_out() {
    let project = Project::new();
    project.write("p.yaml", &two_steps("3"));
    // Without a store, then with one.
    for _ in 0..2 {
        let plan = project.run(&["plan", "p.yaml", "--only", "a"]);
        assert_eq!(plan.code, 0, "{}", plan.all());
        let line = plan
            .stdout
            .lines()
            .find(|l| l.contains(" b "))
            .unwrap_or_default();
        assert!(
            line.contains("skip") && line.contains("not selected"),
            "{}",
            plan.all()
        );
        assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    }
}
