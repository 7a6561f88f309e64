//! Tests of the routes, the scoring protocol and model swaps, calling the
//! router as a function on a real run store and artifact store in a
//! temporary folder, with no socket.
//!
//! The models use a small linear flavor defined here, because the engine
//! has no model families of its own: `a * wa + b * wb`, plus 100 when the
//! categorical `c` is `"x"`.

use super::router::{self, IGNORED_COLUMNS_HEADER, UNKNOWN_LEVELS_HEADER, VERSION_HEADER};
use super::state::{ServerState, StateConfig};
use crate::predict::{PredictError, Predictor};
use crate::registry::Registry;
use crate::runstore::{NewModelVersion, NewRun, NewStepRun, RunStore, Stage};
use bytes::Bytes;
use flowrun_artifacts::store::{ArtifactStore, LocalStore};
use flowrun_artifacts::{Artifact, ColumnData, FeatureKind, FeatureSpec, Model, Table};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};

const LOOPBACK: &str = "127.0.0.1:50000";

/// Weights of the test flavor.
#[derive(serde::Serialize, serde::Deserialize)]
struct Weights {
    wa: f64,
    wb: f64,
    /// Makes `predict` wait until [`release_blocked`] is called.
    block: bool,
}

struct Linear(Weights);

/// The gate a blocking model waits on: (entered, released).
static GATE: Mutex<(bool, bool)> = Mutex::new((false, false));
static GATE_CHANGED: Condvar = Condvar::new();

fn wait_until_blocked() {
    let mut gate = GATE.lock().unwrap();
    while !gate.0 {
        gate = GATE_CHANGED.wait(gate).unwrap();
    }
}

fn release_blocked() {
    GATE.lock().unwrap().1 = true;
    GATE_CHANGED.notify_all();
}

impl Predictor for Linear {
    fn predict(&self, rows: &Table) -> Result<Vec<f64>, PredictError> {
        if self.0.block {
            let mut gate = GATE.lock().unwrap();
            gate.0 = true;
            GATE_CHANGED.notify_all();
            while !gate.1 {
                gate = GATE_CHANGED.wait(gate).unwrap();
            }
        }
        let column = |name: &str| {
            rows.column(name)
                .ok_or_else(|| PredictError::MissingFeature(name.to_string()))
        };
        let (ColumnData::Float64(a), ColumnData::Float64(b), ColumnData::Utf8(c)) =
            (&column("a")?.data, &column("b")?.data, &column("c")?.data)
        else {
            return Err(PredictError::InvalidModel("unexpected column types".into()));
        };
        Ok((0..rows.num_rows())
            .map(|i| {
                let bonus = if c[i].as_deref() == Some("x") {
                    100.0
                } else {
                    0.0
                };
                a[i] * self.0.wa + b[i] * self.0.wb + bonus
            })
            .collect())
    }
}

fn load_linear(model: &Model) -> Result<Box<dyn Predictor>, PredictError> {
    let weights: Weights = serde_json::from_slice(&model.payload)
        .map_err(|e| PredictError::InvalidModel(e.to_string()))?;
    Ok(Box::new(Linear(weights)))
}

fn model(payload: &[u8]) -> Model {
    Model {
        flavor: "test_linear".to_string(),
        target: "y".to_string(),
        features: vec![
            FeatureSpec {
                name: "a".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureSpec {
                name: "b".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureSpec {
                name: "c".into(),
                kind: FeatureKind::Categorical {
                    levels: vec!["x".into(), "y".into()],
                },
            },
        ],
        payload: payload.to_vec(),
        info: serde_json::json!({}),
    }
}

fn weights(wa: f64, wb: f64, block: bool) -> Vec<u8> {
    serde_json::to_vec(&Weights { wa, wb, block }).unwrap()
}

/// A store with a registry, and a server state over it.
struct Fixture {
    _dir: tempfile::TempDir,
    runs: Arc<RunStore>,
    artifacts: LocalStore,
    run_id: String,
    step_run: i64,
    state: Arc<ServerState>,
}

impl Fixture {
    fn new(max_rows: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(".flowrun");
        let runs = Arc::new(RunStore::open(&store.join("runs.db")).unwrap());
        let artifacts = LocalStore::open(&store).unwrap();
        let run_id = runs
            .begin_run(&NewRun {
                pipeline: "deployment".into(),
                pipeline_file: "deployment.yaml".into(),
                params: Default::default(),
                command_line: "flowrun deployment.yaml".into(),
                pid: std::process::id(),
                graph: None,
            })
            .unwrap();
        let step_run = runs
            .begin_step(
                &run_id,
                &NewStepRun {
                    step_id: "model_deployer".into(),
                    step_name: "model_deployer".into(),
                    cache_key: None,
                    key_detail: None,
                    params: Default::default(),
                },
            )
            .unwrap();
        let mut registry = Registry::new();
        registry.register_flavor("test_linear", load_linear);
        let config = StateConfig {
            model: "m".to_string(),
            max_rows,
        };
        let state = Arc::new(ServerState::new(
            config,
            registry,
            RunStore::open(&store.join("runs.db")).unwrap(),
            LocalStore::open(&store).unwrap(),
        ));
        Fixture {
            _dir: dir,
            runs,
            artifacts,
            run_id,
            step_run,
            state,
        }
    }

    /// Registers a version with `payload` and returns its number.
    fn register(&self, payload: &[u8], mse: f64) -> i64 {
        let artifact = Artifact::Model(model(payload));
        let reference = self.artifacts.put(&artifact, "test").unwrap();
        self.runs
            .register_served_version(&NewModelVersion {
                model: "m",
                artifact: &reference,
                flavor: "test_linear",
                run_id: &self.run_id,
                step_run_id: self.step_run,
                metrics: &serde_json::json!({ "mse": mse }),
                params: &serde_json::json!({ "seed": 1 }),
            })
            .unwrap()
    }

    /// Returns the artifact file of a registered version.
    fn artifact_path(&self, version: i64) -> std::path::PathBuf {
        let info = self.runs.model_version_info("m", version).unwrap();
        self.artifacts.path_of(&info.artifact_ref().unwrap())
    }

    /// Moves a version to production without loading it.
    fn promote(&self, version: i64) {
        self.runs
            .set_stage("m", version, Stage::Production, "test")
            .unwrap();
    }

    /// Registers a version, promotes it and loads it.
    fn serve(&self, payload: &[u8]) -> i64 {
        let version = self.register(payload, 1.0);
        self.runs
            .set_stage("m", version, Stage::Production, "test")
            .unwrap();
        self.state.reload().unwrap();
        version
    }
}

fn post(content_type: &str, body: &str) -> Request<Bytes> {
    Request::post("/invocations")
        .header("content-type", content_type)
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn get(path: &str) -> Request<Bytes> {
    Request::get(path).body(Bytes::new()).unwrap()
}

fn head(path: &str) -> Request<Bytes> {
    Request::head(path).body(Bytes::new()).unwrap()
}

async fn body_of(response: Response<Full<Bytes>>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

async fn call(state: &Arc<ServerState>, request: Request<Bytes>) -> Response<Full<Bytes>> {
    router::handle(state, request, LOOPBACK.parse().unwrap()).await
}

async fn json_of(response: Response<Full<Bytes>>) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn header<'a>(response: &'a Response<Full<Bytes>>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Asserts a 4xx JSON error whose message contains `needle`.
async fn assert_rejected(response: Response<Full<Bytes>>, status: StatusCode, needle: &str) {
    assert_eq!(response.status(), status);
    let body = json_of(response).await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message}");
    assert!(body["error_code"].is_string(), "{body}");
}

#[tokio::test]
async fn every_input_format_scores_alike() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 10.0, false));
    let bodies = [
        (
            "application/json",
            r#"{"dataframe_split": {"columns": ["c", "b", "a"], "data": [["x", 2, 1], ["y", 4, 3]]}}"#,
        ),
        (
            "application/json",
            r#"{"dataframe_split": {"index": [7, 8], "columns": ["a", "b", "c"], "data": [[1, 2, "x"], [3, 4, "y"]]}}"#,
        ),
        (
            "application/json",
            r#"{"dataframe_records": [{"b": 2, "a": 1, "c": "x"}, {"a": 3, "c": "y", "b": 4}]}"#,
        ),
        (
            "application/json",
            r#"{"instances": [{"a": 1, "b": 2, "c": "x"}, {"a": 3, "b": 4, "c": "y"}]}"#,
        ),
        (
            "application/json",
            r#"{"inputs": {"c": ["x", "y"], "a": [1, 3], "b": [2, 4]}}"#,
        ),
        (
            "application/json; charset=utf-8",
            r#"{"inputs": [{"a": 1, "b": 2, "c": "x"}, {"a": 3, "b": 4, "c": "y"}]}"#,
        ),
        ("text/csv", "b,c,a\n2,x,1\n4,y,3\n"),
    ];
    for (content_type, body) in bodies {
        let response = call(&fixture.state, post(content_type, body)).await;
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        assert_eq!(header(&response, VERSION_HEADER), Some("m/1"));
        let json = json_of(response).await;
        assert_eq!(
            json["predictions"],
            serde_json::json!([121.0, 43.0]),
            "{body}"
        );
    }
}

#[tokio::test]
async fn missing_feature_is_named() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let response = call(
        &fixture.state,
        post(
            "application/json",
            r#"{"dataframe_split": {"columns": ["a", "c"], "data": [[1, "x"]]}}"#,
        ),
    )
    .await;
    assert_rejected(
        response,
        StatusCode::BAD_REQUEST,
        "missing feature column `b`",
    )
    .await;
    let response = call(&fixture.state, post("text/csv", "a,c\n1,x\n")).await;
    assert_rejected(
        response,
        StatusCode::BAD_REQUEST,
        "missing feature column `b`",
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let cases = [
        (
            r#"{"dataframe_records": [{"a": 1, "b": 2, "c": "x"}"#,
            "invalid JSON",
        ),
        (
            r#"{"dataframe_records": [{"a": NaN, "b": 2, "c": "x"}]}"#,
            "invalid JSON",
        ),
        (
            r#"{"dataframe_records": [{"a": null, "b": 2, "c": "x"}]}"#,
            "column `a` row 0: expected a number, found null",
        ),
        (
            r#"{"dataframe_records": [{"a": "1", "b": 2, "c": "x"}]}"#,
            "expected a number",
        ),
        (
            r#"{"dataframe_records": [{"a": 1, "b": 2, "c": 3}]}"#,
            "categorical",
        ),
        (
            r#"{"instances": [[1, 2, "x"]]}"#,
            "matched by name, never by position",
        ),
        (
            r#"{"dataframe_records": [], "inputs": []}"#,
            "use exactly one",
        ),
        (r#"{"rows": []}"#, "unknown key `rows`"),
        (r#"{"dataframe_records": []}"#, "no rows"),
        (
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}"#,
            "has 1 values but there are 2 columns",
        ),
        (r#"[1, 2]"#, "must be an object"),
    ];
    for (body, needle) in cases {
        let response = call(&fixture.state, post("application/json", body)).await;
        assert_rejected(response, StatusCode::BAD_REQUEST, needle).await;
    }
    let csv_cases = [
        ("a,b,c\n1,,x\n", "`` is not a finite number"),
        ("a,b,c\n1,NaN,x\n", "not a finite number"),
        ("a,b,c\n1,2\n", "invalid CSV"),
        ("", "missing the header row"),
        ("\n\n", "missing the header row"),
    ];
    for (body, needle) in csv_cases {
        let response = call(&fixture.state, post("text/csv", body)).await;
        assert_rejected(response, StatusCode::BAD_REQUEST, needle).await;
    }

    // The server still scores a valid request after the bad ones.
    let response = call(&fixture.state, post("text/csv", "a,b,c\n1,2,\n")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_of(response).await["predictions"],
        serde_json::json!([3.0])
    );
}

#[tokio::test]
async fn wrong_content_type_gets_415() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = call(&fixture.state, post(content_type, "a=1")).await;
        assert_rejected(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, content_type).await;
    }
    let request = Request::post("/invocations")
        .body(Bytes::from("{}"))
        .unwrap();
    let response = call(&fixture.state, request).await;
    assert_rejected(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "(none)").await;
}

#[tokio::test]
async fn batch_over_limit_gets_413() {
    let fixture = Fixture::new(2);
    fixture.serve(&weights(1.0, 1.0, false));
    let json = r#"{"inputs": {"a": [1, 2, 3], "b": [1, 2, 3], "c": ["x", "x", "x"]}}"#;
    let response = call(&fixture.state, post("application/json", json)).await;
    assert_rejected(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "3 rows, more than the limit of 2",
    )
    .await;
    let csv = "a,b,c\n1,1,x\n2,2,x\n3,3,x\n4,4,x\n";
    let response = call(&fixture.state, post("text/csv", csv)).await;
    assert_rejected(response, StatusCode::PAYLOAD_TOO_LARGE, "4 rows").await;
}

#[tokio::test]
async fn extra_columns_are_ignored_and_named() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let body =
        r#"{"dataframe_records": [{"a": 1, "b": 2, "c": "y", "zip": "01000", "note": null}]}"#;
    let response = call(&fixture.state, post("application/json", body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, IGNORED_COLUMNS_HEADER), Some("note,zip"));
    assert_eq!(
        json_of(response).await["predictions"],
        serde_json::json!([3.0])
    );
}

#[tokio::test]
async fn no_model_gets_503() {
    let fixture = Fixture::new(100);
    for request in [
        get("/ping"),
        get("/health"),
        get("/metadata"),
        post("text/csv", "a,b,c\n1,2,x\n"),
    ] {
        let response = call(&fixture.state, request).await;
        assert_eq!(header(&response, VERSION_HEADER), Some("none"));
        assert_rejected(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "no version of model `m`",
        )
        .await;
    }
    let response = call(&fixture.state, get("/version")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn metadata_lists_features_in_order() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let response = call(&fixture.state, get("/metadata")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let json = json_of(response).await;
    assert_eq!(json["model"], "m");
    assert_eq!(json["version"], 1);
    assert_eq!(json["flavor"], "test_linear");
    let names: Vec<&str> = json["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(json["features"][2]["type"], "categorical");
    assert_eq!(json["metrics"]["mse"], 1.0);
}

#[tokio::test]
async fn unknown_route_and_method() {
    let fixture = Fixture::new(100);
    let response = call(&fixture.state, get("/predict")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = call(&fixture.state, get("/invocations")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "allow"), Some("POST"));
}

#[tokio::test]
async fn reload_only_from_loopback() {
    let fixture = Fixture::new(100);
    let remote: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let request = Request::post("/admin/reload").body(Bytes::new()).unwrap();
    let response = router::handle(&fixture.state, request, remote).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let version = fixture.register(&weights(1.0, 1.0, false), 1.0);
    fixture
        .runs
        .set_stage("m", version, Stage::Production, "test")
        .unwrap();
    let request = Request::post("/admin/reload").body(Bytes::new()).unwrap();
    let response = call(&fixture.state, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let json = json_of(response).await;
    assert_eq!(json["version"], version);
    assert_eq!(json["changed"], true);
}

#[tokio::test]
async fn failed_load_keeps_old_model() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let broken = fixture.register(b"not json", 1.0);
    fixture
        .runs
        .set_stage("m", broken, Stage::Production, "test")
        .unwrap();

    let request = Request::post("/admin/reload").body(Bytes::new()).unwrap();
    let response = call(&fixture.state, request).await;
    assert_rejected(response, StatusCode::INTERNAL_SERVER_ERROR, "invalid model").await;
    let response = call(&fixture.state, post("text/csv", "a,b,c\n1,2,y\n")).await;
    assert_eq!(header(&response, VERSION_HEADER), Some("m/1"));
    assert_eq!(
        json_of(response).await["predictions"],
        serde_json::json!([3.0])
    );
}

#[tokio::test]
async fn damaged_artifact_file_is_not_loaded() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let version = fixture.register(&weights(2.0, 2.0, false), 1.0);
    let info = fixture.runs.model_version_info("m", version).unwrap();
    let path = fixture.artifacts.path_of(&info.artifact_ref().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    fixture
        .runs
        .set_stage("m", version, Stage::Production, "test")
        .unwrap();

    let error = fixture.state.reload().unwrap_err().to_string();
    assert!(error.contains("corrupt"), "{error}");
    assert_eq!(fixture.state.current().unwrap().version, 1);
}

/// A request that is scoring when the model is swapped finishes on the old
/// model; the next request gets the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_keeps_in_flight_request_on_old_model() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, true));

    let state = Arc::clone(&fixture.state);
    let in_flight =
        tokio::spawn(async move { call(&state, post("text/csv", "a,b,c\n1,2,y\n")).await });
    tokio::task::spawn_blocking(wait_until_blocked)
        .await
        .unwrap();

    let version = fixture.register(&weights(10.0, 10.0, false), 1.0);
    fixture
        .runs
        .set_stage("m", version, Stage::Production, "test")
        .unwrap();
    let state = Arc::clone(&fixture.state);
    let outcome = tokio::task::spawn_blocking(move || state.reload())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.version, 2);

    let after = call(&fixture.state, post("text/csv", "a,b,c\n1,2,y\n")).await;
    assert_eq!(header(&after, VERSION_HEADER), Some("m/2"));
    assert_eq!(
        json_of(after).await["predictions"],
        serde_json::json!([30.0])
    );

    release_blocked();
    let before = in_flight.await.unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    assert_eq!(header(&before, VERSION_HEADER), Some("m/1"));
    assert_eq!(
        json_of(before).await["predictions"],
        serde_json::json!([3.0])
    );
}

#[test]
fn previous_production_version_follows_history() {
    let fixture = Fixture::new(100);
    let v1 = fixture.register(&weights(1.0, 1.0, false), 1.0);
    let v2 = fixture.register(&weights(1.0, 1.0, false), 1.0);
    assert_eq!(fixture.runs.previous_production_version("m").unwrap(), None);
    fixture
        .runs
        .set_stage("m", v1, Stage::Production, "first")
        .unwrap();
    assert_eq!(fixture.runs.previous_production_version("m").unwrap(), None);
    fixture
        .runs
        .set_stage("m", v2, Stage::Production, "second")
        .unwrap();
    assert_eq!(
        fixture.runs.previous_production_version("m").unwrap(),
        Some(v1)
    );
    fixture
        .runs
        .set_stage("m", v1, Stage::Production, "rollback")
        .unwrap();
    assert_eq!(
        fixture.runs.previous_production_version("m").unwrap(),
        Some(v2)
    );
}

#[test]
fn served_version_keeps_artifact_ref() {
    let fixture = Fixture::new(100);
    let version = fixture.register(&weights(1.0, 1.0, false), 1.5);
    let info = fixture.runs.model_version_info("m", version).unwrap();
    let reference = info.artifact_ref().unwrap();
    assert!(fixture.artifacts.verify(&reference).is_ok());
    assert_eq!(info.flavor.as_deref(), Some("test_linear"));
    assert_eq!(info.params["seed"], 1);
    assert_eq!(info.version.metrics["mse"], 1.5);

    let legacy = fixture
        .runs
        .register_model_version(
            "m",
            info.version.artifact_hash.as_str(),
            &fixture.run_id,
            fixture.step_run,
            &serde_json::json!({}),
        )
        .unwrap();
    let legacy = fixture.runs.model_version_info("m", legacy).unwrap();
    assert!(legacy.artifact_ref().is_none());
}

#[tokio::test]
async fn unseen_levels_are_scored_and_named() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let cases = [
        (
            "application/json",
            r#"{"dataframe_records": [{"a": 1, "b": 2, "c": "x"}, {"a": 1, "b": 2, "c": "zz"}]}"#,
        ),
        (
            "application/json",
            r#"{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, "x"], [1, 2, "zz"]]}}"#,
        ),
        (
            "application/json",
            r#"{"inputs": {"a": [1, 1], "b": [2, 2], "c": ["x", "zz"]}}"#,
        ),
        ("text/csv", "a,b,c\n1,2,x\n1,2,zz\n"),
    ];
    for (content_type, body) in cases {
        let response = call(&fixture.state, post(content_type, body)).await;
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        assert_eq!(
            header(&response, UNKNOWN_LEVELS_HEADER),
            Some("c"),
            "{body}"
        );
        assert_eq!(
            json_of(response).await["predictions"],
            serde_json::json!([103.0, 3.0]),
            "{body}"
        );
    }
}

#[tokio::test]
async fn known_and_missing_levels_get_no_header() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let bodies = [
        (
            "application/json",
            r#"{"dataframe_records": [{"a": 1, "b": 2, "c": "y"}, {"a": 1, "b": 2, "c": null}]}"#,
        ),
        ("text/csv", "a,b,c\n1,2,y\n1,2,\n"),
    ];
    for (content_type, body) in bodies {
        let response = call(&fixture.state, post(content_type, body)).await;
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        assert_eq!(header(&response, UNKNOWN_LEVELS_HEADER), None, "{body}");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_body() {
    let fixture = Fixture::new(100);
    for path in ["/ping", "/health", "/metadata"] {
        let response = call(&fixture.state, head(path)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(body_of(response).await.is_empty(), "{path}");
    }

    fixture.serve(&weights(1.0, 1.0, false));
    for path in ["/ping", "/health", "/version", "/metadata"] {
        let got = call(&fixture.state, get(path)).await;
        let headed = call(&fixture.state, head(path)).await;
        assert_eq!(headed.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&headed, VERSION_HEADER), Some("m/1"), "{path}");
        assert_eq!(
            header(&headed, "content-type"),
            Some("application/json"),
            "{path}"
        );
        let got_body = body_of(got).await;
        let length = header(&headed, "content-length").map(str::to_string);
        assert!(body_of(headed).await.is_empty(), "{path}");
        // /health reports the uptime, which may tick between the two
        // requests without changing the body's length.
        assert_eq!(length, Some(got_body.len().to_string()), "{path}");
    }
}

#[tokio::test]
async fn other_methods_list_get_and_head() {
    let fixture = Fixture::new(100);
    let request = Request::delete("/ping").body(Bytes::new()).unwrap();
    let response = call(&fixture.state, request).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "allow"), Some("GET, HEAD"));
}

/// Truncates a file to 100 bytes, as a damaged disk or an interrupted copy
/// leaves it.
fn truncate(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..100]).unwrap();
    bytes
}

#[tokio::test]
async fn corrupt_production_version_is_named_in_503() {
    let fixture = Fixture::new(100);
    let version = fixture.register(&weights(1.0, 1.0, false), 1.0);
    fixture.promote(version);
    truncate(&fixture.artifact_path(version));
    assert!(fixture.state.reload().is_err());

    for request in [
        get("/ping"),
        get("/health"),
        get("/metadata"),
        post("text/csv", "a,b,c\n1,2,x\n"),
    ] {
        let response = call(&fixture.state, request).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let message = json_of(response).await["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with("production version 1 of model `m` could not be loaded: "),
            "{message}"
        );
        assert!(message.contains("is damaged"), "{message}");
        assert!(
            message.contains("Run the pipeline that trained it again"),
            "{message}"
        );
        assert!(!message.contains("no version of model"), "{message}");
    }

    let json = json_of(call(&fixture.state, get("/version")).await).await;
    assert_eq!(json["version"], serde_json::Value::Null);
    assert_eq!(json["load_error"]["version"], 1);
    assert!(
        json["load_error"]["message"]
            .as_str()
            .unwrap()
            .contains("is damaged"),
        "{json}"
    );
}

#[tokio::test]
async fn failed_newer_version_is_reported_while_old_serves() {
    let fixture = Fixture::new(100);
    fixture.serve(&weights(1.0, 1.0, false));
    let broken = fixture.register(b"not json", 1.0);
    fixture.promote(broken);
    assert!(fixture.state.reload().is_err());

    let response = call(&fixture.state, get("/health")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let json = json_of(response).await;
    assert_eq!(json["version"], 1);
    assert_eq!(json["load_error"]["version"], broken);

    // Undoing the promotion, as a deployment does, clears the report at
    // the next poll.
    fixture.promote(1);
    fixture.state.poll();
    let json = json_of(call(&fixture.state, get("/health")).await).await;
    assert_eq!(json["load_error"], serde_json::Value::Null);
}

#[test]
fn poll_retries_a_failed_version_whose_file_changed() {
    let fixture = Fixture::new(100);
    let version = fixture.register(&weights(1.0, 1.0, false), 1.0);
    fixture.promote(version);
    let path = fixture.artifact_path(version);
    let original = truncate(&path);
    assert!(fixture.state.reload().is_err());

    // An unchanged file is not read again.
    fixture.state.poll();
    assert!(fixture.state.current().is_none());
    assert!(fixture.state.last_load_failure().is_some());

    // A pipeline run rewrites the file; the next poll serves the version.
    std::fs::write(&path, original).unwrap();
    fixture.state.poll();
    assert_eq!(fixture.state.current().unwrap().version, version);
    assert!(fixture.state.last_load_failure().is_none());
}

/// A batch large enough to check levels with a hash set finds an unseen
/// level in its last row, and none when every level is known.
#[tokio::test]
async fn large_batch_finds_unseen_level() {
    let fixture = Fixture::new(10_000);
    fixture.serve(&weights(1.0, 1.0, false));
    let rows = 6_000;
    let known = "a,b,c\n".to_string() + &"1,2,x\n".repeat(rows);
    let unseen = known.clone() + "1,2,zz\n";
    for (body, expected) in [(known, None), (unseen, Some("c"))] {
        let response = call(&fixture.state, post("text/csv", &body)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, UNKNOWN_LEVELS_HEADER), expected);
    }
}
