//! Tests of the run store against real SQLite files in temporary folders.

use super::*;
use crate::param::ParamValue;
use flowrun_artifacts::ArtifactKind;
use std::collections::BTreeMap;
use std::sync::Arc;

fn open_temp() -> (tempfile::TempDir, RunStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RunStore::open(&dir.path().join(".flowrun").join("runs.db")).unwrap();
    (dir, store)
}

fn new_run(pipeline: &str) -> NewRun {
    let mut params = BTreeMap::new();
    params.insert("learning_rate".to_string(), ParamValue::Float(5e-4));
    params.insert(
        "target".to_string(),
        ParamValue::String("review_score".into()),
    );
    NewRun {
        pipeline: pipeline.to_string(),
        pipeline_file: "pipelines/training.yaml".to_string(),
        params,
        command_line: "flowrun pipelines/training.yaml".to_string(),
        pid: std::process::id(),
        graph: None,
    }
}

fn new_step(step_id: &str, cache_key: &str) -> NewStepRun {
    let mut params = BTreeMap::new();
    params.insert("max_depth".to_string(), ParamValue::Int(6));
    NewStepRun {
        step_id: step_id.to_string(),
        step_name: format!("{step_id}_step"),
        cache_key: Some(cache_key.to_string()),
        key_detail: Some(serde_json::json!({ "params": { "max_depth": 6 } })),
        params,
    }
}

fn finish(status: StepStatus) -> StepFinish {
    StepFinish {
        status,
        attempts: 1,
        duration_ms: 42,
        miss_reason: None,
        error: None,
    }
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RunStore>();
}

#[test]
fn open_creates_folder_and_schema() {
    let (dir, store) = open_temp();
    assert!(dir.path().join(".flowrun/runs.db").is_file());
    drop(store);

    // Opening again finds the schema current and migrates nothing.
    let store = RunStore::open(&dir.path().join(".flowrun/runs.db")).unwrap();
    let version: i64 = store
        .lock()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, schema::current_version());
    let mode: String = store
        .lock()
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn open_rejects_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);

    let error = RunStore::open(&path).unwrap_err();
    assert!(
        matches!(error, RunStoreError::SchemaTooNew { found: 99, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("upgrade flowrun"), "{error}");
}

#[test]
fn run_round_trips_with_steps() {
    let (_dir, store) = open_temp();
    let run_id = store.begin_run(&new_run("training")).unwrap();

    let train = store
        .begin_step(&run_id, &new_step("train", "key-1"))
        .unwrap();
    store
        .log_metrics(&run_id, train, &[("rmse".to_string(), 0.75)])
        .unwrap();
    store
        .log_tags(
            &run_id,
            train,
            &[("decision".to_string(), "deploy".to_string())],
        )
        .unwrap();
    store.record_input(train, "features", "abc123").unwrap();
    let artifact = ArtifactRecord {
        hash: "def456".to_string(),
        kind: ArtifactKind::Model,
        size: 1024,
        path: "artifacts/de/def456".to_string(),
    };
    store.record_output(train, "model", &artifact).unwrap();
    store
        .finish_step(
            train,
            &StepFinish {
                miss_reason: Some("parameter max_depth changed from 4 to 6".to_string()),
                ..finish(StepStatus::Succeeded)
            },
        )
        .unwrap();
    let ingest = store
        .record_step(
            &run_id,
            &new_step("ingest", "key-0"),
            &finish(StepStatus::Cached),
        )
        .unwrap();
    store.finish_run(&run_id, RunStatus::Succeeded).unwrap();

    let detail = store.get_run(&run_id).unwrap();
    assert_eq!(detail.run.id, run_id);
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    assert_eq!(detail.run.pipeline, "training");
    assert_eq!(detail.run.flowrun_version, env!("CARGO_PKG_VERSION"));
    assert!(detail.run.ended_at.is_some());
    assert!(detail.run.duration_ms.is_some());
    assert_eq!(detail.params, new_run("training").params);
    assert_eq!(detail.steps.len(), 2);

    let step = &detail.steps[0];
    assert_eq!(step.id, train);
    assert_eq!(step.status, StepStatus::Succeeded);
    assert_eq!(step.attempts, 1);
    assert_eq!(step.duration_ms, Some(42));
    assert_eq!(step.cache_key.as_deref(), Some("key-1"));
    assert_eq!(
        step.miss_reason.as_deref(),
        Some("parameter max_depth changed from 4 to 6")
    );
    assert_eq!(step.key_detail, new_step("train", "key-1").key_detail);
    assert_eq!(step.params.get("max_depth"), Some(&ParamValue::Int(6)));
    assert_eq!(
        step.metrics,
        vec![Metric {
            key: "rmse".to_string(),
            value: 0.75
        }]
    );
    assert_eq!(
        step.tags.get("decision").map(String::as_str),
        Some("deploy")
    );
    assert_eq!(
        step.inputs,
        vec![InputRecord {
            input: "features".to_string(),
            hash: "abc123".to_string()
        }]
    );
    assert_eq!(
        step.outputs,
        vec![OutputRecord {
            output: "model".to_string(),
            artifact
        }]
    );

    let cached = &detail.steps[1];
    assert_eq!(cached.id, ingest);
    assert_eq!(cached.status, StepStatus::Cached);
    assert!(cached.ended_at.is_some());
    assert!(cached.started_at <= *cached.ended_at.as_ref().unwrap());
}

#[test]
fn metrics_keep_nan_and_infinities() {
    let (_dir, store) = open_temp();
    let run_id = store.begin_run(&new_run("training")).unwrap();
    let step = store
        .begin_step(&run_id, &new_step("evaluate", "k"))
        .unwrap();
    let values = [
        ("nan", f64::NAN),
        ("inf", f64::INFINITY),
        ("neg_inf", f64::NEG_INFINITY),
        ("tiny", f64::MIN_POSITIVE),
        ("third", 1.0 / 3.0),
        ("zero", 0.0),
    ];
    let logged: Vec<(String, f64)> = values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    store.log_metrics(&run_id, step, &logged).unwrap();

    let detail = store.get_run(&run_id).unwrap();
    let metrics = &detail.steps[0].metrics;
    assert_eq!(metrics.len(), values.len());
    for ((key, expected), metric) in values.iter().zip(metrics) {
        assert_eq!(metric.key, *key);
        assert_eq!(metric.value.to_bits(), expected.to_bits(), "metric {key}");
    }

    let json = serde_json::to_value(&detail).unwrap();
    let json_metrics = &json["steps"][0]["metrics"];
    assert_eq!(json_metrics[0]["value"], "NaN");
    assert_eq!(json_metrics[1]["value"], "inf");
    assert_eq!(json_metrics[2]["value"], "-inf");
    assert_eq!(json_metrics[4]["value"], 1.0 / 3.0);
}

#[test]
fn params_keep_types_and_non_finite_floats() {
    let (_dir, store) = open_temp();
    let mut run = new_run("training");
    run.params
        .insert("alpha".to_string(), ParamValue::Float(f64::NAN));
    run.params
        .insert("beta".to_string(), ParamValue::Float(f64::NEG_INFINITY));
    run.params
        .insert("whole".to_string(), ParamValue::Float(3.0));
    run.params
        .insert("flag".to_string(), ParamValue::Bool(false));
    run.params
        .insert("word".to_string(), ParamValue::String("inf".to_string()));
    let run_id = store.begin_run(&run).unwrap();

    let params = store.get_run(&run_id).unwrap().params;
    assert!(params["alpha"].as_f64().unwrap().is_nan());
    assert_eq!(params["beta"], ParamValue::Float(f64::NEG_INFINITY));
    assert_eq!(params["whole"], ParamValue::Float(3.0));
    assert_eq!(params["flag"], ParamValue::Bool(false));
    assert_eq!(params["word"], ParamValue::String("inf".to_string()));
    assert_eq!(params["learning_rate"], ParamValue::Float(5e-4));
}

#[test]
fn finish_run_leaves_no_running_step() {
    let (_dir, store) = open_temp();
    let run_id = store.begin_run(&new_run("training")).unwrap();
    store.begin_step(&run_id, &new_step("a", "ka")).unwrap();
    store.begin_step(&run_id, &new_step("b", "kb")).unwrap();
    let done = store.begin_step(&run_id, &new_step("c", "kc")).unwrap();
    store
        .finish_step(done, &finish(StepStatus::Succeeded))
        .unwrap();

    store.finish_run(&run_id, RunStatus::Cancelled).unwrap();

    let detail = store.get_run(&run_id).unwrap();
    assert_eq!(detail.run.status, RunStatus::Cancelled);
    let statuses: Vec<StepStatus> = detail.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Interrupted,
            StepStatus::Interrupted,
            StepStatus::Succeeded
        ]
    );
    for step in &detail.steps {
        assert!(
            step.ended_at.is_some(),
            "step {} has no end time",
            step.step_id
        );
    }
    assert!(store.running_runs().unwrap().is_empty());
}

#[test]
fn finish_rejects_unfinished_statuses() {
    let (_dir, store) = open_temp();
    let run_id = store.begin_run(&new_run("training")).unwrap();
    let step = store.begin_step(&run_id, &new_step("a", "ka")).unwrap();

    let error = store
        .finish_step(step, &finish(StepStatus::Running))
        .unwrap_err();
    assert!(matches!(error, RunStoreError::InvalidStatus(_)), "{error}");
    let error = store.finish_run(&run_id, RunStatus::Running).unwrap_err();
    assert!(matches!(error, RunStoreError::InvalidStatus(_)), "{error}");
    let error = store
        .finish_step(step + 100, &finish(StepStatus::Failed))
        .unwrap_err();
    assert!(
        matches!(error, RunStoreError::StepRunNotFound { .. }),
        "{error}"
    );
}

#[test]
fn step_of_other_run_is_rejected() {
    let (_dir, store) = open_temp();
    let first = store.begin_run(&new_run("training")).unwrap();
    let second = store.begin_run(&new_run("training")).unwrap();
    let step = store.begin_step(&first, &new_step("a", "ka")).unwrap();

    let error = store
        .log_metrics(&second, step, &[("x".to_string(), 1.0)])
        .unwrap_err();
    assert!(
        matches!(error, RunStoreError::StepRunOfOtherRun { .. }),
        "{error}"
    );
    let error = store
        .begin_step("no-such-run", &new_step("a", "ka"))
        .unwrap_err();
    assert!(
        matches!(error, RunStoreError::RunNotFound { .. }),
        "{error}"
    );
}

#[test]
fn mark_interrupted_only_touches_running_runs() {
    let (_dir, store) = open_temp();
    let crashed = store.begin_run(&new_run("training")).unwrap();
    store.begin_step(&crashed, &new_step("a", "ka")).unwrap();
    let finished = store.begin_run(&new_run("training")).unwrap();
    store.finish_run(&finished, RunStatus::Failed).unwrap();

    let running: Vec<String> = store
        .running_runs()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0], crashed);

    store.mark_interrupted(&crashed).unwrap();
    store.mark_interrupted(&finished).unwrap();

    let crashed = store.get_run(&crashed).unwrap();
    assert_eq!(crashed.run.status, RunStatus::Interrupted);
    assert_eq!(crashed.steps[0].status, StepStatus::Interrupted);
    assert_eq!(
        store.get_run(&finished).unwrap().run.status,
        RunStatus::Failed
    );
    assert!(store.running_runs().unwrap().is_empty());
}

#[test]
fn get_run_by_prefix_and_latest() {
    let (_dir, store) = open_temp();
    let first = store.begin_run(&new_run("training")).unwrap();
    let second = store.begin_run(&new_run("scoring")).unwrap();
    assert_ne!(first, second);

    assert_eq!(store.get_run("latest").unwrap().run.id, second);
    assert_eq!(store.get_run(&first).unwrap().run.id, first);

    // The full id minus its last character still names exactly one run,
    // unless both ids share everything but that character.
    let prefix = &first[..first.len() - 1];
    if !second.starts_with(prefix) {
        assert_eq!(store.get_run(prefix).unwrap().run.id, first);
    }

    // Both ids start with the same date, so the date prefix is ambiguous.
    let error = store.get_run(&first[..8]).unwrap_err();
    match &error {
        RunStoreError::AmbiguousRun { prefix, matches } => {
            assert_eq!(prefix, &first[..8]);
            assert_eq!(matches, &[second.clone(), first.clone()]);
        }
        other => panic!("expected an ambiguous prefix, got {other}"),
    }
    assert!(error.to_string().contains("flowrun runs"), "{error}");

    let error = store.get_run("19990101").unwrap_err();
    assert!(
        matches!(error, RunStoreError::RunNotFound { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("19990101"), "{error}");
    let error = store.get_run("%").unwrap_err();
    assert!(
        matches!(error, RunStoreError::RunNotFound { .. }),
        "{error}"
    );

    let listed: Vec<String> = store
        .list_runs(10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [second.clone(), first.clone()]);
    assert_eq!(store.list_runs(1).unwrap().len(), 1);
}

#[test]
fn latest_on_empty_store_fails() {
    let (_dir, store) = open_temp();
    let error = store.get_run("latest").unwrap_err();
    assert!(matches!(error, RunStoreError::NoRuns), "{error}");
    assert!(error.to_string().contains("no runs yet"), "{error}");
}

#[test]
fn previous_step_finds_latest_success() {
    let (_dir, store) = open_temp();
    assert_eq!(store.previous_step("training", "train").unwrap(), None);

    let first = store.begin_run(&new_run("training")).unwrap();
    let ok = store
        .begin_step(&first, &new_step("train", "key-old"))
        .unwrap();
    store
        .finish_step(ok, &finish(StepStatus::Succeeded))
        .unwrap();
    store.finish_run(&first, RunStatus::Succeeded).unwrap();

    // A later failure, and a success in another pipeline, do not count.
    let second = store.begin_run(&new_run("training")).unwrap();
    store
        .record_step(
            &second,
            &new_step("train", "key-failed"),
            &finish(StepStatus::Failed),
        )
        .unwrap();
    let other = store.begin_run(&new_run("other")).unwrap();
    store
        .record_step(
            &other,
            &new_step("train", "key-other"),
            &finish(StepStatus::Succeeded),
        )
        .unwrap();

    let previous = store.previous_step("training", "train").unwrap().unwrap();
    assert_eq!(previous.run_id, first);
    assert_eq!(previous.step_run_id, ok);
    assert_eq!(previous.status, StepStatus::Succeeded);
    assert_eq!(previous.cache_key.as_deref(), Some("key-old"));
    assert_eq!(previous.key_detail, new_step("train", "key-old").key_detail);

    let third = store.begin_run(&new_run("training")).unwrap();
    store
        .record_step(
            &third,
            &new_step("train", "key-old"),
            &finish(StepStatus::Cached),
        )
        .unwrap();
    let previous = store.previous_step("training", "train").unwrap().unwrap();
    assert_eq!(previous.run_id, third);
    assert_eq!(previous.status, StepStatus::Cached);
}

#[test]
fn concurrent_writers_never_fail() {
    const THREADS: usize = 8;
    const RUNS_PER_THREAD: usize = 5;
    const STEPS_PER_RUN: usize = 4;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let stores = [
        Arc::new(RunStore::open(&path).unwrap()),
        Arc::new(RunStore::open(&path).unwrap()),
    ];

    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(&stores[thread % 2]);
            std::thread::spawn(move || -> Result<Vec<String>, RunStoreError> {
                let mut ids = Vec::new();
                for _ in 0..RUNS_PER_THREAD {
                    let run_id = store.begin_run(&new_run(&format!("pipeline-{thread}")))?;
                    for step in 0..STEPS_PER_RUN {
                        let step_id = format!("step-{step}");
                        let id = store.begin_step(&run_id, &new_step(&step_id, "k"))?;
                        store.log_metrics(&run_id, id, &[("loss".to_string(), step as f64)])?;
                        store.finish_step(id, &finish(StepStatus::Succeeded))?;
                    }
                    store.finish_run(&run_id, RunStatus::Succeeded)?;
                    ids.push(run_id);
                }
                Ok(ids)
            })
        })
        .collect();

    let mut all_ids = Vec::new();
    for handle in handles {
        all_ids.extend(handle.join().unwrap().unwrap());
    }
    let total = THREADS * RUNS_PER_THREAD;
    all_ids.sort();
    all_ids.dedup();
    assert_eq!(all_ids.len(), total, "run ids are not unique");

    let listed = stores[0].list_runs(total + 10).unwrap();
    assert_eq!(listed.len(), total);
    for run in &listed {
        assert_eq!(run.status, RunStatus::Succeeded);
        let detail = stores[1].get_run(&run.id).unwrap();
        assert_eq!(detail.steps.len(), STEPS_PER_RUN);
        assert!(
            detail
                .steps
                .iter()
                .all(|s| s.status == StepStatus::Succeeded)
        );
    }
}

#[test]
fn promotion_archives_old_production() {
    let (_dir, store) = open_temp();
    let run_id = store.begin_run(&new_run("training")).unwrap();
    let step = store
        .begin_step(&run_id, &new_step("register", "k"))
        .unwrap();
    let metrics = serde_json::json!({ "rmse": 0.8 });

    let v1 = store
        .register_model_version("satisfaction", "hash-1", &run_id, step, &metrics)
        .unwrap();
    let v2 = store
        .register_model_version("satisfaction", "hash-2", &run_id, step, &metrics)
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(store.production_version("satisfaction").unwrap(), None);

    store
        .set_stage("satisfaction", v1, Stage::Production, "first model")
        .unwrap();
    let production = store.production_version("satisfaction").unwrap().unwrap();
    assert_eq!(production.version, v1);
    assert_eq!(production.artifact_hash, "hash-1");
    assert_eq!(production.metrics, metrics);

    store
        .set_stage(
            "satisfaction",
            v2,
            Stage::Production,
            "rmse improved from 0.8 to 0.7",
        )
        .unwrap();
    let production = store.production_version("satisfaction").unwrap().unwrap();
    assert_eq!(production.version, v2);

    let versions = store.list_models().unwrap();
    let stages: Vec<(i64, Stage)> = versions.iter().map(|v| (v.version, v.stage)).collect();
    assert_eq!(stages, [(1, Stage::Archived), (2, Stage::Production)]);

    let history = store.stage_history("satisfaction").unwrap();
    let moves: Vec<(i64, Stage, Stage)> = history
        .iter()
        .map(|t| (t.version, t.from_stage, t.to_stage))
        .collect();
    assert_eq!(
        moves,
        [
            (1, Stage::None, Stage::Production),
            (1, Stage::Production, Stage::Archived),
            (2, Stage::None, Stage::Production),
        ]
    );
    assert_eq!(history[0].reason, "first model");
    assert_eq!(history[1].reason, "replaced in production by version 2");
    assert_eq!(history[2].reason, "rmse improved from 0.8 to 0.7");
    assert!(!history[0].by.is_empty());

    // Promoting the production version again records nothing.
    store
        .set_stage("satisfaction", v2, Stage::Production, "again")
        .unwrap();
    assert_eq!(store.stage_history("satisfaction").unwrap().len(), 3);

    let error = store
        .set_stage("satisfaction", 9, Stage::Staging, "missing")
        .unwrap_err();
    assert!(
        matches!(
            error,
            RunStoreError::ModelVersionNotFound { version: 9, .. }
        ),
        "{error}"
    );
}

#[test]
fn registration_checks_step_run() {
    let (_dir, store) = open_temp();
    let run_id = store.begin_run(&new_run("training")).unwrap();
    let error = store
        .register_model_version("m", "h", &run_id, 12345, &serde_json::json!({}))
        .unwrap_err();
    assert!(
        matches!(error, RunStoreError::StepRunNotFound { id: 12345 }),
        "{error}"
    );
}

/// The environment variable that passes the store path to [`writer_process`].
const CHILD_STORE_VAR: &str = "FLOWRUN_RUNSTORE_TEST_CHILD_STORE";

/// How many runs each child process of [`two_processes_write_at_once`]
/// records.
const CHILD_RUNS: usize = 40;

#[test]
#[ignore = "started as a child process by two_processes_write_at_once"]
fn writer_process() {
    let path = std::env::var(CHILD_STORE_VAR).expect("the parent test sets the store path");
    let store = RunStore::open(std::path::Path::new(&path)).unwrap();
    for _ in 0..CHILD_RUNS {
        let run_id = store.begin_run(&new_run("from-child")).unwrap();
        for step in 0..3 {
            let id = store
                .begin_step(&run_id, &new_step(&format!("s{step}"), "k"))
                .unwrap();
            store
                .log_metrics(&run_id, id, &[("loss".to_string(), 0.5)])
                .unwrap();
            store
                .finish_step(id, &finish(StepStatus::Succeeded))
                .unwrap();
        }
        store.finish_run(&run_id, RunStatus::Succeeded).unwrap();
    }
}

#[test]
fn two_processes_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let exe = std::env::current_exe().unwrap();

    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "runstore::tests::writer_process", "--ignored"])
                .env(CHILD_STORE_VAR, &path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "child writer failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // A filter that matched no test would also exit successfully.
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("1 passed"),
            "child writer ran no test:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    let store = RunStore::open(&path).unwrap();
    let runs = store.list_runs(1000).unwrap();
    assert_eq!(runs.len(), 2 * CHILD_RUNS);
    assert!(runs.iter().all(|run| run.status == RunStatus::Succeeded));
}

#[test]
fn run_graph_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    // A store written by a flowrun that kept no graphs (schema version 2),
    // with one finished run.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &schema::MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO pipelines (name, first_seen) VALUES ('p', '2026-01-01T00:00:00Z');
             INSERT INTO runs (id, pipeline, pipeline_file, status, started_at, ended_at,
                               duration_ms, command_line, pid, flowrun_version)
             VALUES ('20260101-000000-0000', 'p', 'p.yaml', 'succeeded',
                     '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 1000,
                     'flowrun p.yaml', 1, '0.1.0');",
        )
        .unwrap();
    }

    let store = RunStore::open(&path).unwrap();
    let old = store.get_run("20260101-000000-0000").unwrap();
    assert_eq!(old.run.status, RunStatus::Succeeded, "the old run survives");
    assert_eq!(old.graph, None);

    let graph = RunGraph {
        steps: vec![
            GraphStep {
                id: "a".into(),
                uses: "emit".into(),
                inputs: BTreeMap::new(),
                after: vec![],
            },
            GraphStep {
                id: "b".into(),
                uses: "scale".into(),
                inputs: [("x".to_string(), "a.out".to_string())].into(),
                after: vec!["a".into()],
            },
        ],
    };
    let mut run = new_run("p");
    run.graph = Some(graph.clone());
    let id = store.begin_run(&run).unwrap();
    assert_eq!(store.get_run(&id).unwrap().graph, Some(graph));
    let json = serde_json::to_value(store.get_run(&id).unwrap()).unwrap();
    assert_eq!(json["graph"]["steps"][1]["inputs"]["x"], "a.out");
}

#[test]
fn many_processes_create_one_store_at_once() {
    // Each RunStore has its own connection, as separate processes do.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join(format!("store{round}/runs.db")));
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let path = Arc::clone(&path);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    RunStore::open(&path).map(|_| ())
                })
            })
            .collect();
        for handle in handles {
            let opened = handle.join().unwrap();
            assert!(opened.is_ok(), "round {round}: {}", opened.unwrap_err());
        }
    }
}
