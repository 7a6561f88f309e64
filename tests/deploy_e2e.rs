//! The whole deployment flow through the real `flowrun` binary on the
//! shipped sample. A first deployment starts the server. A second one, with
//! another training parameter, swaps the model in the same server process
//! while a client keeps sending requests. Batch inference then scores a
//! sample through the server.

mod serving_common;

use serving_common::{Project, get, post, server_port, valid_record};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The client thread's record: the version header of each response, in
/// order, and every failure.
struct Seen {
    versions: Vec<String>,
    errors: Vec<String>,
}

fn client(port: u16, body: String, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen {
        versions: Vec::new(),
        errors: Vec::new(),
    };
    while !stop.load(Ordering::SeqCst) {
        match post(port, "application/json", &body) {
            Ok(answer) if answer.status == 200 => {
                let prediction = answer.json()["predictions"][0].as_f64();
                if prediction.is_none_or(|p| !p.is_finite()) {
                    seen.errors
                        .push(format!("no finite prediction: {}", answer.body));
                }
                seen.versions.push(answer.version);
            }
            Ok(answer) => seen
                .errors
                .push(format!("{}: {}", answer.status, answer.body)),
            Err(error) => seen.errors.push(error),
        }
    }
    seen
}

/// Returns the distinct versions in the order they first appear, and how
/// many times the version changed from one response to the next.
fn changes(versions: &[String]) -> (Vec<&str>, usize) {
    let mut order: Vec<&str> = Vec::new();
    let mut switches = 0;
    for (i, version) in versions.iter().enumerate() {
        if i > 0 && versions[i - 1] != *version {
            switches += 1;
        }
        if !order.contains(&version.as_str()) {
            order.push(version);
        }
    }
    (order, switches)
}

#[test]
fn second_deploy_swaps_model_in_place() {
    let project = Project::new();
    let _guard = project.guard();
    let first = project.deploy(0, &["max_mse=100"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let port = server_port(&project);
    let pid = project
        .server_pid()
        .expect("the first deployment starts the server");
    assert_eq!(project.production_version(), Some(1));
    let version = get(port, "/version").unwrap().json();
    assert_eq!(version["version"], 1);

    let body = serde_json::json!({ "dataframe_records": [valid_record(port)] }).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || client(port, body, stop))
    };
    std::thread::sleep(Duration::from_millis(300));

    let second = project.deploy(
        port,
        &[
            "max_mse=100",
            "require_improvement=false",
            "train_model.iterations=120",
        ],
    );
    assert_eq!(second.code, 0, "{}", second.all());
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let seen = requests.join().unwrap();

    assert_eq!(project.server_pid(), Some(pid), "the server was restarted");
    assert_eq!(project.production_version(), Some(2));
    assert!(seen.errors.is_empty(), "client errors: {:?}", seen.errors);
    let (order, switches) = changes(&seen.versions);
    assert_eq!(
        order,
        ["customer_satisfaction/1", "customer_satisfaction/2"],
        "versions seen"
    );
    assert_eq!(switches, 1, "the version changed more than once");
    assert!(
        seen.versions.len() > 10,
        "only {} requests",
        seen.versions.len()
    );

    // The trigger's decision is recorded with the run.
    let run = project.run(&["runs", "show", "latest", "--json"]);
    let run: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let trigger = project.latest_trigger();
    assert_eq!(trigger["tags"]["decision"], "deploy");
    assert!(
        trigger["tags"]["reason"]
            .as_str()
            .unwrap()
            .contains("improvement not required")
    );

    // The registry links each version to its run, metrics and artifact.
    let models = project.models();
    let versions = models["models"][0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["run_id"], run["id"]);
    assert!(versions[1]["metrics"]["mse"].is_number());
    assert!(versions[1]["artifact_size"].as_u64().unwrap() > 0);
    assert_eq!(versions[1]["params"]["port"], port);
    assert_eq!(versions[0]["stage"], "archived");

    // Batch inference scores a sample through the server.
    let inference = project.run(&[
        "run",
        "pipelines/inference.yaml",
        "--set",
        &format!(
            "data_dir={}",
            serving_common::repo().join("data/olist-sample").display()
        ),
        "--set",
        "sample_rows=50",
    ]);
    assert_eq!(inference.code, 0, "{}", inference.all());
    let csv = std::fs::read_to_string(project.path().join("predictions.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.ends_with("prediction,model_version"), "{header}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 50);
    assert!(
        rows.iter()
            .all(|row| row.ends_with(",customer_satisfaction/2"))
    );

    // The same rows as a CSV batch file score the same.
    let mut orders = String::new();
    let mut expected = Vec::new();
    for line in csv.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        let (features, scored) = fields.split_at(fields.len() - 2);
        orders.push_str(&features.join(","));
        orders.push('\n');
        expected.push(scored[0].to_string());
    }
    std::fs::write(project.path().join("orders.csv"), orders).unwrap();
    let from_csv = project.run(&[
        "run",
        "pipelines/inference.yaml",
        "--set",
        &format!(
            "data_dir={}",
            serving_common::repo().join("data/olist-sample").display()
        ),
        "--set",
        "batch_csv=orders.csv",
        "--set",
        "sample_rows=0",
        "--set",
        "output_csv=out/scored.csv",
    ]);
    assert_eq!(from_csv.code, 0, "{}", from_csv.all());
    let scored = std::fs::read_to_string(project.path().join("out/scored.csv")).unwrap();
    let got: Vec<String> = scored
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            fields[fields.len() - 2].to_string()
        })
        .collect();
    assert_eq!(got, expected);

    let stopped = project.run(&["serve", "stop"]);
    assert_eq!(stopped.code, 0, "{}", stopped.all());
    assert!(serving_common::wait_for(Duration::from_secs(5), || {
        serving_common::process_gone(pid)
    }));
}

/// Copies the shipped sample into `dir`, keeping only the first `orders`
/// orders (the other tables keep every row; the join drops the rest).
fn small_sample(dir: &std::path::Path, orders: usize) {
    use std::io::{BufRead, Write};
    std::fs::create_dir_all(dir).unwrap();
    let sample = serving_common::repo().join("data/olist-sample");
    for entry in std::fs::read_dir(&sample).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".csv.gz") {
            continue;
        }
        let target = dir.join(name.trim_end_matches(".gz"));
        let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&path).unwrap(),
        ));
        let mut out = std::fs::File::create(&target).unwrap();
        let keep = if name.starts_with("olist_orders_") {
            orders + 1
        } else {
            usize::MAX
        };
        for line in reader.lines().take(keep) {
            writeln!(out, "{}", line.unwrap()).unwrap();
        }
    }
}

#[test]
fn trigger_compares_models_on_the_same_test_rows() {
    let project = Project::new();
    let _guard = project.guard();
    let first = project.deploy(0, &["max_mse=100"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(
        first.stderr.contains(
            "Result of model_deployer: customer_satisfaction version 1 deployed to production"
        ),
        "{}",
        first.all()
    );
    assert!(
        first
            .stderr
            .contains("started the server: http://127.0.0.1:")
    );
    let port = server_port(&project);

    // A model with one boosting round is worse on the same test rows: it
    // is registered, not deployed, and the run output states it.
    let worse = project.deploy(port, &["max_mse=100", "train_model.iterations=1"]);
    assert_eq!(worse.code, 0, "{}", worse.all());
    assert!(
        worse.stderr.contains(
            "Result of model_deployer: customer_satisfaction version 2 registered, not deployed"
        ),
        "{}",
        worse.all()
    );
    assert!(worse.stderr.contains("keeps serving"), "{}", worse.all());
    let trigger = project.latest_trigger();
    assert_eq!(trigger["tags"]["decision"], "skip", "{trigger}");
    let reason = trigger["tags"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("worse than production version 1's"),
        "{reason}"
    );
    assert!(reason.contains("on the same"), "{reason}");
    assert_eq!(project.production_version(), Some(1));
    // The step override is recorded with the run's parameters.
    let run = project.run(&["runs", "show", "latest", "--json"]);
    let run: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(run["params"]["train_model.iterations"], 1, "{run}");

    // A model scored on a few dozen rows is not trusted, however good its
    // MSE looks, and production is scored on those same rows.
    let tiny = project.path().join("tiny");
    small_sample(&tiny, 150);
    let small = project.deploy_data(&tiny, port, &["max_mse=100"]);
    assert_eq!(small.code, 0, "{}", small.all());
    let trigger = project.latest_trigger();
    assert_eq!(trigger["tags"]["decision"], "skip", "{trigger}");
    let reason = trigger["tags"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("fewer than min_test_rows = 200"),
        "{reason}"
    );
    assert_eq!(project.production_version(), Some(1));
    let version = get(port, "/version").unwrap().json();
    assert_eq!(version["version"], 1, "the server still serves version 1");

    // With the row check lowered, the comparison runs on the small test
    // set, without the rows whose orders version 1 trained on: the sample's
    // group split put most of these orders in its training part.
    let compared = project.deploy_data(&tiny, port, &["max_mse=100", "min_test_rows=1"]);
    assert_eq!(compared.code, 0, "{}", compared.all());
    let trigger = project.latest_trigger();
    let reason = trigger["tags"]["reason"].as_str().unwrap();
    assert!(reason.contains("leaving out the"), "{reason}");
    assert!(
        reason.contains("whose orders production trained on"),
        "{reason}"
    );

    let pid = project.server_pid().unwrap();
    let stopped = project.run(&["serve", "stop"]);
    assert_eq!(stopped.code, 0, "{}", stopped.all());
    assert!(serving_common::wait_for(Duration::from_secs(5), || {
        serving_common::process_gone(pid)
    }));
}
