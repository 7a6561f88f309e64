//! Recorded runs (`flowrun runs`, `runs show`, `--json`) and the DAG
//! printed by `flowrun graph`.

mod common;

use common::Project;

const PIPELINE: &str = "name: rec\nparameters:\n  v: 1.5\nsteps:\n  a:\n    uses: emit\n    params: {value: \"${v}\"}\n  b:\n    uses: scale\n    inputs: {x: a.out}\n    params: {factor: 4}\n";

#[test]
fn runs_list_and_show() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);

    let list = project.run(&["runs"]);
    assert_eq!(list.code, 0, "{}", list.all());
    assert!(list.stdout.contains("rec"), "{}", list.all());
    assert!(list.stdout.contains("succeeded"), "{}", list.all());

    let limited = project.run(&["runs", "--limit", "1"]);
    assert_eq!(limited.code, 0, "{}", limited.all());
    assert!(
        limited
            .stderr
            .contains("Showing the newest 1 of 2 runs; see more with --limit 2."),
        "{}",
        limited.all()
    );
    assert!(!list.stderr.contains("Showing"), "{}", list.all());

    let json = project.run(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&json.stdout).expect("runs --json");
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");

    let show = project.run(&["runs", "show", "latest"]);
    assert_eq!(show.code, 0, "{}", show.all());
    for text in ["a", "b", "cached", "factor", "value"] {
        assert!(
            show.stdout.contains(text),
            "runs show lists {text}\n{}",
            show.all()
        );
    }

    let detail = project.latest_run();
    let steps = detail["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|s| s["status"] == "cached"), "{detail}");
    let text = detail.to_string();
    assert!(text.contains("\"factor\""), "{text}");
}

#[test]
fn runs_show_unknown_id_fails() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    assert_eq!(project.run(&["run", "p.yaml"]).code, 0);
    let out = project.run(&["runs", "show", "no-such-run"]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("no-such-run"), "{}", out.all());
}

#[test]
fn non_finite_metrics_round_trip() {
    let project = Project::new();
    // JSON has no NaN, so the value goes no further than the metric.
    project.write("p.yaml", "name: rec\nparameters:\n  v: 1.5\nsteps:\n  a:\n    uses: emit\n    params: {value: \"${v}\"}\n");
    for (text, check) in [
        ("nan", f64::is_nan as fn(f64) -> bool),
        ("inf", |v: f64| v == f64::INFINITY),
        ("-inf", |v: f64| v == f64::NEG_INFINITY),
    ] {
        let out = project.run(&["run", "p.yaml", "--set", &format!("v={text}")]);
        assert_eq!(out.code, 0, "{text}: {}", out.all());
        let detail = project.latest_run();
        let step = detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step_id"] == "a")
            .unwrap()
            .clone();
        let metric = step["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == "value")
            .unwrap()
            .clone();
        let value = match &metric["value"] {
            serde_json::Value::String(s) => s.parse::<f64>().unwrap(),
            other => other.as_f64().unwrap(),
        };
        assert!(check(value), "{text} came back as {value}");
    }
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let mermaid = project.run(&["graph", "p.yaml"]);
    assert_eq!(mermaid.code, 0, "{}", mermaid.all());
    assert!(mermaid.stdout.contains("flowchart"), "{}", mermaid.all());
    assert!(
        mermaid.stdout.contains("a") && mermaid.stdout.contains("-->"),
        "{}",
        mermaid.all()
    );

    let dot = project.run(&["graph", "p.yaml", "--format", "dot"]);
    assert_eq!(dot.code, 0, "{}", dot.all());
    assert!(dot.stdout.contains("digraph"), "{}", dot.all());
    assert!(dot.stdout.contains("->"), "{}", dot.all());
    assert!(!project.store().exists(), "graph writes nothing");
}

#[test]
fn bare_file_runs_the_pipeline() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["p.yaml", "--set", "v=2"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.status_of("b").as_deref(), Some("ran"), "{}", out.all());
}

#[test]
fn store_flag_and_env_choose_the_store() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["--store", "elsewhere", "run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(project.path().join("elsewhere/runs.db").exists());

    let out = project
        .command(&["run", "p.yaml"])
        .env("FLOWRUN_STORE", project.path().join("from-env"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(project.path().join("from-env/runs.db").exists());
    assert!(!project.store().exists());
}

#[test]
fn quiet_run_prints_nothing() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    let out = project.run(&["-q", "run", "p.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stderr, "", "{}", out.all());
    assert_eq!(out.stdout, "", "{}", out.all());
}

#[test]
fn closed_stdout_pipe_is_not_an_error() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    for _ in 0..3 {
        assert_eq!(project.run(&["run", "p.yaml", "--no-cache"]).code, 0);
    }
    let mut child = project
        .command(&["runs"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before flowrun writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn latest_of_an_empty_store_says_so() {
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    // A store with no runs yet, as a server started before any run leaves.
    flowrun_engine::runstore::RunStore::open(&project.store().join("runs.db")).unwrap();
    let show = project.run(&["runs", "show", "latest"]);
    assert_ne!(show.code, 0, "{}", show.all());
    assert!(show.stderr.contains("no runs yet"), "{}", show.all());
}

#[test]
fn misspelled_step_selection_is_suggested() {
    let project = Project::new();
    project.write(
        "p.yaml",
        "name: sel\nsteps:\n  train_model:\n    uses: emit\n  evaluation:\n    uses: scale\n    inputs: {x: train_model.out}\n",
    );
    let out = project.run(&["run", "p.yaml", "--from", "trian"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("did you mean `train_model`?"),
        "{}",
        out.all()
    );
}

#[test]
fn closed_stderr_pipe_does_not_stop_a_run() {
    // `flowrun run ... 2>&1 | head -3`: progress goes to stderr, whose
    // reader is gone. The run finishes, is recorded, and exits 0.
    let project = Project::new();
    project.write("p.yaml", PIPELINE);
    for jobs in ["1", "2"] {
        let mut child = project
            .command(&["run", "p.yaml", "--no-cache", "--jobs", jobs])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stderr.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the run did not finish with a closed stderr (--jobs {jobs})");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(0), "--jobs {jobs}");
        assert_eq!(project.latest_run()["status"], "succeeded");
    }
}
