//! The server daemon's life: start and stop, a `kill -9` and a restart, a
//! port already in use, and a second server for the same store. These runs
//! need no model: a server without one returns 503 until one is promoted.

mod serving_common;

use serving_common::{Project, get, process_gone, server_port, wait_for};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Starts a daemon on a free port and returns its pid and port.
fn start(project: &Project) -> (u32, u16) {
    let out = project.run(&["serve", "--daemon", "--port", "0"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("Server started"), "{}", out.all());
    let pid = project.server_pid().expect("a running server has a pid");
    (pid, server_port(project))
}

#[test]
fn daemon_stop_frees_everything() {
    let project = Project::new();
    let _guard = project.guard();
    let (pid, port) = start(&project);

    let status = project.run(&["serve", "status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.all());
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["state"], "running");
    assert_eq!(json["port"], port);
    let ping = get(port, "/ping").unwrap();
    assert_eq!(ping.status, 503, "{}", ping.body);
    assert_eq!(ping.version, "none");
    assert!(project.server_dir().join("server.pid").exists());

    let stop = project.run(&["serve", "stop"]);
    assert_eq!(stop.code, 0, "{}", stop.all());
    assert!(
        stop.stdout.contains(&format!("Server pid {pid} stopped")),
        "{}",
        stop.all()
    );
    assert!(
        wait_for(Duration::from_secs(5), || process_gone(pid)),
        "pid {pid} still runs"
    );
    assert!(!project.server_dir().join("server.pid").exists());
    assert!(!project.server_dir().join("server.json").exists());
    assert!(
        TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} still taken"
    );
    assert!(get(port, "/ping").is_err());

    let status = project.run(&["serve", "status"]);
    assert_eq!(status.code, 3, "{}", status.all());
    assert!(
        status.stdout.contains("No server running"),
        "{}",
        status.all()
    );
}

#[test]
fn kill_9_leaves_stale_pid_file() {
    let project = Project::new();
    let _guard = project.guard();
    let (pid, _) = start(&project);

    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(wait_for(Duration::from_secs(5), || process_gone(pid)));
    assert!(project.server_dir().join("server.pid").exists());

    // NOTE: once, on a loaded machine, a status call right after the kill
    // still found the server lock held; the cause is not known. The check
    // polls for a few seconds, and a lock that stays held still fails it.
    let mut status = project.run(&["serve", "status", "--json"]);
    wait_for(Duration::from_secs(5), || {
        status = project.run(&["serve", "status", "--json"]);
        status.code == 3
    });
    assert_eq!(status.code, 3, "{}", status.all());
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["state"], "stopped");
    assert_eq!(json["stale_pid"], pid);

    let (second, port) = start(&project);
    assert_ne!(second, pid);
    let pid_file = std::fs::read_to_string(project.server_dir().join("server.pid")).unwrap();
    assert_eq!(pid_file.trim(), second.to_string());
    let log = project.server_dir().join("server.log");
    let warned = wait_for(Duration::from_secs(2), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("stale pid file"))
    });
    assert!(
        warned,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(get(port, "/ping").unwrap().status, 503);
}

#[test]
fn port_in_use_fails_fast() {
    let project = Project::new();
    let _guard = project.guard();
    let occupier = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupier.local_addr().unwrap().port();

    for args in [vec!["serve", "--daemon"], vec!["serve"]] {
        let started = Instant::now();
        let mut args = args;
        let port_text = port.to_string();
        args.extend(["--port", &port_text]);
        let out = project.run(&args);
        let elapsed = started.elapsed();
        assert_ne!(out.code, 0, "{}", out.all());
        assert!(
            out.stderr.contains(&format!("port {port} already in use")),
            "{}",
            out.all()
        );
        assert_eq!(
            out.stderr.matches("already in use").count(),
            1,
            "{}",
            out.all()
        );
        assert!(
            out.stderr.contains("choose another port with --port N"),
            "{}",
            out.all()
        );
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
        assert!(!project.server_dir().join("server.pid").exists());
    }
}

#[test]
fn second_server_is_rejected() {
    let project = Project::new();
    let _guard = project.guard();
    let (pid, _) = start(&project);

    let out = project.run(&["serve", "--daemon", "--port", "0"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("already running"), "{}", out.all());
    assert!(out.stderr.contains(&format!("pid {pid}")), "{}", out.all());
    assert_eq!(project.server_pid(), Some(pid));
}

/// A request whose body is still arriving when `serve stop` sends SIGTERM
/// gets its response before the server exits.
#[test]
fn stop_lets_in_flight_request_finish() {
    use std::io::{Read, Write};

    let project = Project::new();
    let _guard = project.guard();
    let deployed = project.deploy(0, &["max_mse=100"]);
    assert_eq!(deployed.code, 0, "{}", deployed.all());
    let pid = project.server_pid().unwrap();
    let port = server_port(&project);
    let body = serde_json::json!({ "dataframe_records": [serving_common::valid_record(port)] })
        .to_string();

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let stopper = {
        let command = project.command(&["serve", "stop"]);
        std::thread::spawn(move || {
            let mut command = command;
            command.output().unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !process_gone(pid),
        "the server exited with a request in flight"
    );
    stream.write_all(rest.as_bytes()).unwrap();

    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"predictions\""), "{response}");
    let stopped = stopper.join().unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    assert!(wait_for(Duration::from_secs(5), || process_gone(pid)));
}

/// Returns the artifact file of the production version of the default
/// model.
fn production_model_file(project: &Project) -> std::path::PathBuf {
    let models = project.models();
    let production = models["models"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["stage"] == "production")
        .expect("a production version")
        .clone();
    let hash = production["artifact_hash"].as_str().unwrap();
    project
        .store()
        .join("artifacts")
        .join(&hash[..2])
        .join(format!("{hash}.model"))
}

/// A server that starts after its production version's file was damaged
/// runs, and reports that it serves no model, and why.
#[test]
fn corrupt_production_model_is_reported() {
    let project = Project::new();
    let _guard = project.guard();
    let deployed = project.deploy(0, &["max_mse=100"]);
    assert_eq!(deployed.code, 0, "{}", deployed.all());
    let pid = project.server_pid().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(wait_for(Duration::from_secs(5), || process_gone(pid)));
    let file = std::fs::File::options()
        .write(true)
        .open(production_model_file(&project))
        .unwrap();
    file.set_len(100).unwrap();
    drop(file);

    let expected = "production version 1 of model `customer_satisfaction` could not be loaded";
    let out = project.run(&["serve", "--daemon", "--port", "0"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("serving no model"), "{}", out.all());
    assert!(
        out.stderr.contains(&format!(
            "warning: the server runs but serves no model: {expected}"
        )),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("is damaged"), "{}", out.all());

    let port = server_port(&project);
    for path in ["/ping", "/health"] {
        let answer = get(port, path).unwrap();
        assert_eq!(answer.status, 503, "{}", answer.body);
        let message = answer.json()["message"].as_str().unwrap().to_string();
        assert!(message.starts_with(expected), "{message}");
        assert!(
            message.contains("Run the pipeline that trained it again"),
            "{message}"
        );
    }

    let status = project.run(&["serve", "status"]);
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status.stdout.contains("serves no model"),
        "{}",
        status.all()
    );
    assert!(status.stdout.contains(expected), "{}", status.all());
    let status = project.run(&["serve", "status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["version"], serde_json::Value::Null);
    assert_eq!(json["load_error"]["version"], 1);
}

/// Sends one request on a new connection and returns the raw response.
fn raw_request(port: u16, head: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn head_gets_headers_without_body() {
    let project = Project::new();
    let _guard = project.guard();
    let (_, port) = start(&project);

    for path in ["/ping", "/health", "/version", "/metadata"] {
        let got = raw_request(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        let headed = raw_request(
            port,
            &format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        let status_line = |text: &str| text.lines().next().unwrap_or_default().to_string();
        assert_eq!(status_line(&headed), status_line(&got), "{headed}");
        assert_ne!(status_line(&headed), "HTTP/1.1 405 Method Not Allowed");
        let (headers, body) = headed.split_once("\r\n\r\n").unwrap();
        assert!(body.is_empty(), "{headed}");
        assert!(
            headers.contains("x-flowrun-model-version: none"),
            "{headed}"
        );
        let got_body = got.split_once("\r\n\r\n").unwrap().1;
        assert!(
            headers.contains(&format!("content-length: {}", got_body.len())),
            "{headed}\n---\n{got}"
        );
    }
}
