//! The scoring protocol against a real server and a real model: every
//! input format, and bad requests that get a 4xx with a JSON error naming
//! the problem while the server keeps serving.

mod serving_common;

use serving_common::{Answer, Project, get, post, server_port, valid_record};

/// Deploys a model, then restarts the server with a 5-row batch limit.
fn served_project() -> (Project, u16) {
    let project = Project::new();
    let deployed = project.deploy(0, &["max_mse=100"]);
    assert_eq!(deployed.code, 0, "{}", deployed.all());
    assert_eq!(project.run(&["serve", "stop"]).code, 0);
    let started = project.run(&["serve", "--daemon", "--port", "0", "--max-rows", "5"]);
    assert_eq!(started.code, 0, "{}", started.all());
    let port = server_port(&project);
    (project, port)
}

fn assert_error(answer: &Answer, status: u16, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let json = answer.json();
    let message = json["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{message}");
    assert_eq!(answer.version, "customer_satisfaction/1");
}

#[test]
fn formats_and_bad_requests() {
    let (project, port) = served_project();
    let _guard = project.guard();
    let record = valid_record(port);
    let names: Vec<String> = record.keys().cloned().collect();
    let values: Vec<serde_json::Value> = record.values().cloned().collect();

    // Every format scores the same row alike; columns are sent in reverse
    // order to show they are matched by name.
    let mut reversed_names = names.clone();
    reversed_names.reverse();
    let mut reversed_values = values.clone();
    reversed_values.reverse();
    let csv_row: Vec<String> = values
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect();
    let bodies = [
        ("application/json", serde_json::json!({"dataframe_split": {"columns": reversed_names, "data": [reversed_values]}}).to_string()),
        ("application/json", serde_json::json!({"dataframe_records": [record]}).to_string()),
        ("application/json; charset=utf-8", serde_json::json!({"instances": [record]}).to_string()),
        ("application/json", serde_json::json!({"inputs": record.iter().map(|(k, v)| (k.clone(), serde_json::json!([v]))).collect::<serde_json::Map<_, _>>()}).to_string()),
        ("text/csv", format!("{}\n{}\n", names.join(","), csv_row.join(","))),
    ];
    let mut predictions = Vec::new();
    for (content_type, body) in &bodies {
        let answer = post(port, content_type, body).unwrap();
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.body);
        assert_eq!(answer.version, "customer_satisfaction/1");
        predictions.push(answer.json()["predictions"][0].as_f64().unwrap());
    }
    assert!(
        predictions.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-9),
        "{predictions:?}"
    );

    let valid = serde_json::json!({"dataframe_records": [record]}).to_string();
    let mut missing = record.clone();
    missing.remove("price");
    let mut null_number = record.clone();
    null_number.insert("price".into(), serde_json::Value::Null);
    let six = serde_json::json!({"dataframe_records": vec![record.clone(); 6]}).to_string();
    let cases = [
        (
            "application/json",
            serde_json::json!({"dataframe_records": [missing]}).to_string(),
            400,
            "missing feature column `price`",
        ),
        (
            "application/json",
            valid[..valid.len() - 5].to_string(),
            400,
            "invalid JSON",
        ),
        (
            "application/json",
            valid.replacen("1.5", "NaN", 1),
            400,
            "invalid JSON",
        ),
        (
            "application/json",
            serde_json::json!({"dataframe_records": [null_number]}).to_string(),
            400,
            "column `price` row 0: expected a number, found null",
        ),
        (
            "text/plain",
            valid.clone(),
            415,
            "unsupported content type `text/plain`",
        ),
        (
            "application/json",
            six,
            413,
            "6 rows, more than the limit of 5",
        ),
    ];
    for (content_type, body, status, needle) in &cases {
        let answer = post(port, content_type, body).unwrap();
        assert_error(&answer, *status, needle);

        // The server stays up and the next valid request succeeds.
        let next = post(port, "application/json", &valid).unwrap();
        assert_eq!(next.status, 200, "{}", next.body);
    }

    let mut extra = record.clone();
    extra.insert("customer_zip".into(), serde_json::json!("01000"));
    let answer = post(
        port,
        "application/json",
        &serde_json::json!({"dataframe_records": [extra]}).to_string(),
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);

    // A level unseen in training is scored, and the response and the log
    // name its column, never its value.
    let unseen_state = "XQ_UNSEEN_LEVEL";
    let mut unseen = record.clone();
    unseen.insert("customer_state".into(), serde_json::json!(unseen_state));
    let response = ureq::post(&format!("http://127.0.0.1:{port}/invocations"))
        .header("content-type", "application/json")
        .send(serde_json::json!({"dataframe_records": [record, unseen]}).to_string())
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        header("x-flowrun-unknown-levels").as_deref(),
        Some("customer_state")
    );
    assert_eq!(header("x-flowrun-ignored-columns"), None);
    let answer = post(port, "application/json", &valid).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);

    let metadata = get(port, "/metadata").unwrap().json();
    assert_eq!(metadata["model"], "customer_satisfaction");
    assert_eq!(metadata["flavor"], "gradient_boosting");
    assert_eq!(metadata["max_rows"], 5);
    assert!(metadata["metrics"]["mse"].is_number());
    let health = get(port, "/health").unwrap();
    assert_eq!(health.status, 200);

    // Request lines reach the log within 200 ms. Each rejection is logged
    // once with its reason, never with the body.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = std::fs::read_to_string(project.server_dir().join("server.log")).unwrap();
    assert_eq!(
        log.matches("request rejected").count(),
        cases.len(),
        "{log}"
    );
    assert!(
        log.contains("reason=row 0 of `dataframe_records`: missing feature column `price`"),
        "{log}"
    );
    assert!(
        !log.contains("dataframe_records\":"),
        "a request body reached the log"
    );
    let unseen_lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("unseen in training"))
        .collect();
    assert_eq!(unseen_lines.len(), 1, "{log}");
    assert!(unseen_lines[0].contains("columns=customer_state"), "{log}");
    assert!(
        !log.contains(unseen_state),
        "a request value reached the log"
    );
}
