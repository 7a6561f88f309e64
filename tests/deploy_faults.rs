//! Deployments that go wrong or race, through the real binaries. The cases
//! are a model file damaged on disk, a server that cannot load the model, a
//! deployment while the server is down and two deployments at once. The
//! server also follows registry changes made by hand (promote, rollback) or
//! found by polling.

mod serving_common;

use serving_common::{Project, get, process_gone, server_port, wait_for};
use std::process::Command;
use std::time::Duration;

/// Returns the served version from `/version`.
fn served(port: u16) -> Option<i64> {
    get(port, "/version").ok()?.json()["version"].as_i64()
}

/// Deploys twice, so that version 2 serves and version 1 is archived, and
/// returns the server's port.
fn two_versions(project: &Project) -> u16 {
    let first = project.deploy(0, &["max_mse=100"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let port = server_port(project);
    let second = project.deploy(
        port,
        &[
            "max_mse=100",
            "require_improvement=false",
            "train_model.iterations=120",
        ],
    );
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(served(port), Some(2));
    port
}

fn history(project: &Project) -> Vec<serde_json::Value> {
    let out = project.run(&["models", "history", "customer_satisfaction", "--json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn damaged_model_file_is_not_promoted() {
    let project = Project::new();
    let _guard = project.guard();
    let port = two_versions(&project);

    let models = project.models();
    let v1 = &models["models"][0]["versions"][0];
    let hash = v1["artifact_hash"].as_str().unwrap();
    let path = project
        .store()
        .join("artifacts")
        .join(&hash[..2])
        .join(format!("{hash}.model"));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();

    let promote = project.run(&[
        "models",
        "promote",
        "customer_satisfaction",
        "1",
        "production",
    ]);
    assert_eq!(promote.code, 1, "{}", promote.all());
    assert!(promote.stderr.contains("corrupt"), "{}", promote.all());
    assert!(
        promote
            .stderr
            .contains("the promotion was undone and version 2 is in production again"),
        "{}",
        promote.all()
    );
    assert_eq!(project.production_version(), Some(2));
    assert_eq!(served(port), Some(2));
    let last = history(&project).last().unwrap().clone();
    assert_eq!(last["version"], 2);
    assert_eq!(last["to_stage"], "production");
}

#[test]
fn unloadable_model_fails_the_deploy_step() {
    let project = Project::new();
    let _guard = project.guard();
    let first = project.deploy(0, &["max_mse=100"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(project.run(&["serve", "stop"]).code, 0);

    // flowrun-testkit has the same commands but no model flavors, so the
    // server it runs cannot load any model.
    let testkit = Command::new(env!("CARGO_BIN_EXE_flowrun-testkit"))
        .args(["serve", "--daemon", "--port", "0"])
        .current_dir(project.path())
        .env_remove("FLOWRUN_STORE")
        .output()
        .unwrap();
    assert!(testkit.status.success(), "{testkit:?}");
    let port = server_port(&project);

    let second = project.deploy(
        port,
        &["max_mse=100", "require_improvement=false", "seed=7"],
    );
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second.stderr.contains("no loader for model flavor"),
        "{}",
        second.all()
    );
    assert!(
        second.stderr.contains("the promotion was undone"),
        "{}",
        second.all()
    );

    let models = project.models();
    let versions = models["models"][0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["stage"], "production");
    assert_eq!(versions[1]["stage"], "none");
    let undone = history(&project);
    assert!(
        undone.iter().any(|t| t["version"] == 2
            && t["from_stage"] == "production"
            && t["reason"]
                .as_str()
                .unwrap()
                .starts_with("promotion undone")),
        "{undone:?}"
    );
    // The server is still up.
    assert_eq!(get(port, "/ping").unwrap().status, 503);
}

#[test]
fn deploy_starts_a_stopped_server() {
    let project = Project::new();
    let _guard = project.guard();
    let first = project.deploy(0, &["max_mse=100"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let pid = project.server_pid().unwrap();
    assert_eq!(project.run(&["serve", "stop"]).code, 0);
    assert!(wait_for(Duration::from_secs(5), || process_gone(pid)));

    let second = project.deploy(
        0,
        &[
            "max_mse=100",
            "require_improvement=false",
            "train_model.iterations=120",
        ],
    );
    assert_eq!(second.code, 0, "{}", second.all());
    let restarted = project
        .server_pid()
        .expect("the deployment starts the server");
    assert_ne!(restarted, pid);
    assert_eq!(served(server_port(&project)), Some(2));
}

#[test]
fn trigger_skips_model_above_threshold() {
    let project = Project::new();
    let _guard = project.guard();
    let first = project.deploy(0, &["max_mse=100"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let port = server_port(&project);

    let strict = project.deploy(port, &["max_mse=0.01", "seed=7"]);
    assert_eq!(strict.code, 0, "{}", strict.all());
    let models = project.models();
    assert_eq!(models["models"][0]["production_version"], 1);
    assert_eq!(models["models"][0]["versions"][1]["stage"], "none");
    assert_eq!(served(port), Some(1));
    let trigger = project.latest_trigger();
    assert_eq!(trigger["tags"]["decision"], "skip");
    assert!(
        trigger["tags"]["reason"]
            .as_str()
            .unwrap()
            .contains("above the threshold max_mse = 0.01"),
        "{trigger}"
    );
}

#[test]
fn concurrent_deploys_end_consistent() {
    let project = Project::new();
    let _guard = project.guard();
    let data = format!(
        "data_dir={}",
        serving_common::repo().join("data/olist-sample").display()
    );
    let port_set = "port=0".to_string();
    let spawn = |iterations: &str| {
        project
            .command(&[
                "run",
                "pipelines/deployment.yaml",
                "--set",
                &data,
                "--set",
                &port_set,
                "--set",
                "max_mse=100",
                "--set",
                "require_improvement=false",
                "--set",
                iterations,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("train_model.iterations=100");
    let b = spawn("train_model.iterations=140");
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));

    let models = project.models();
    let versions = models["models"][0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let production: Vec<i64> = versions
        .iter()
        .filter(|v| v["stage"] == "production")
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(production.len(), 1, "{versions:?}");
    assert_eq!(served(server_port(&project)), Some(production[0]));
}

#[test]
fn promote_rollback_and_poll_are_followed() {
    let project = Project::new();
    let _guard = project.guard();
    let port = two_versions(&project);
    let pid = project.server_pid().unwrap();

    let rollback = project.run(&["models", "rollback", "customer_satisfaction"]);
    assert_eq!(rollback.code, 0, "{}", rollback.all());
    assert!(
        rollback.stdout.contains("serves version 1"),
        "{}",
        rollback.all()
    );
    assert_eq!(served(port), Some(1));

    let promote = project.run(&[
        "models",
        "promote",
        "customer_satisfaction",
        "2",
        "production",
        "--reason",
        "back to the tuned model",
    ]);
    assert_eq!(promote.code, 0, "{}", promote.all());
    assert_eq!(served(port), Some(2));
    let last = history(&project).last().unwrap().clone();
    assert_eq!(last["reason"], "back to the tuned model");
    assert!(last["by"].as_str().is_some_and(|by| !by.is_empty()));

    // A change made without notifying the server is picked up by its
    // registry poll, every 2 seconds.
    let runs = flowrun_engine::runstore::RunStore::open(&project.store().join("runs.db")).unwrap();
    runs.set_stage(
        "customer_satisfaction",
        1,
        flowrun_engine::runstore::Stage::Production,
        "changed behind the server's back",
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(6), || served(port) == Some(1)));
    assert_eq!(project.server_pid(), Some(pid));

    let listing = project.run(&["models"]);
    assert!(
        listing.stdout.contains("customer_satisfaction"),
        "{}",
        listing.all()
    );
    assert!(listing.stdout.contains("production"), "{}", listing.all());
}

/// A deployment whose server cannot bind its port fails with one message
/// that gives the pipeline's way to choose another port.
#[test]
fn busy_port_names_pipeline_parameter() {
    let project = Project::new();
    let _guard = project.guard();
    let occupier = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupier.local_addr().unwrap().port();

    let deployed = project.deploy(port, &["max_mse=100"]);
    assert_eq!(deployed.code, 1, "{}", deployed.all());
    let error = deployed
        .stderr
        .lines()
        .find(|line| line.trim_start().starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {}", deployed.all()))
        .to_string();
    assert!(
        error.contains(&format!("port {port} already in use on 127.0.0.1")),
        "{error}"
    );
    assert_eq!(error.matches("already in use").count(), 1, "{error}");
    assert_eq!(error.matches("could not start").count(), 1, "{error}");
    assert!(error.contains("`--set port=N`"), "{error}");
    assert!(error.contains("`port` parameter"), "{error}");
    assert!(!error.contains("--port"), "{error}");
    assert!(
        !deployed
            .stderr
            .contains("failed to start: the server failed to start"),
        "{}",
        deployed.all()
    );
    assert_eq!(project.production_version(), None);

    let undone = history(&project);
    let reason = undone.last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.starts_with("promotion undone: port"), "{reason}");
    assert_eq!(reason.matches("already in use").count(), 1, "{reason}");
}

#[test]
fn unknown_model_name_is_rejected() {
    let project = Project::new();
    let _guard = project.guard();
    let deployed = project.deploy(0, &["max_mse=100"]);
    assert_eq!(deployed.code, 0, "{}", deployed.all());

    let commands: [&[&str]; 4] = [
        &["models", "history", "nosuch"],
        &["models", "history", "nosuch", "--json"],
        &["models", "promote", "nosuch", "1", "production"],
        &["models", "rollback", "nosuch"],
    ];
    for args in commands {
        let out = project.run(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.all());
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.all());
        assert!(
            out.stderr.contains(
                "model `nosuch` is not registered; the registered models are: customer_satisfaction"
            ),
            "{args:?}: {}",
            out.all()
        );
    }

    // A registered model keeps its commands.
    let history = project.run(&["models", "history", "customer_satisfaction"]);
    assert_eq!(history.code, 0, "{}", history.all());
    assert!(history.stdout.contains("production"), "{}", history.all());
}
