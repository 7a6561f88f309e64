//! Tests of the web pages through `router::handle`, without a socket, on a
//! real run store and artifact store in a temporary folder.
//!
//! The fixture records one run of a four-step pipeline by hand:
//!
//! ```text
//!   split ──y_train──> train ──model──> evaluate     report (skipped, never started)
//!                        └─────model──> deploy
//! ```
//!
//! `deploy` registers the model as version 1 of `m`. The model is a small
//! linear flavor defined here: `a + 10 b`, plus 100 when `c` is `"x"`.

use crate::predict::{PredictError, Predictor};
use crate::registry::Registry;
use crate::runstore::{
    ArtifactRecord, NewModelVersion, NewRun, NewStepRun, RunStatus, RunStore, Stage, StepFinish,
    StepStatus,
};
use crate::server::daemon::{ServerFiles, ServerInfo};
use crate::server::router;
use crate::server::state::{ServerState, StateConfig};
use bytes::Bytes;
use flowrun_artifacts::store::{ArtifactRef, ArtifactStore, LocalStore};
use flowrun_artifacts::{Artifact, Column, ColumnData, FeatureKind, FeatureSpec, Model, Table};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use std::sync::Arc;

const HOSTILE: &str = "<script>alert('x')</script>";

struct Linear;

impl Predictor for Linear {
    fn predict(&self, rows: &Table) -> Result<Vec<f64>, PredictError> {
        let (ColumnData::Float64(a), ColumnData::Float64(b), ColumnData::Utf8(c)) = (
            &rows.require("a").unwrap().data,
            &rows.require("b").unwrap().data,
            &rows.require("c").unwrap().data,
        ) else {
            return Err(PredictError::InvalidModel("unexpected column types".into()));
        };
        Ok((0..rows.num_rows())
            .map(|i| {
                let bonus = if c[i].as_deref() == Some("x") {
                    100.0
                } else {
                    0.0
                };
                a[i] + 10.0 * b[i] + bonus
            })
            .collect())
    }
}

fn load_linear(_: &Model) -> Result<Box<dyn Predictor>, PredictError> {
    Ok(Box::new(Linear))
}

fn model() -> Model {
    Model {
        flavor: "test_linear".into(),
        target: "review_score".into(),
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
        payload: Vec::new(),
        info: json!({
            "feature_stats": {
                "a": {"type": "numeric", "min": 0.0, "max": 10.0, "median": 2.5, "p1": 0.5,
                      "p99": 9.0, "mean": 3.0, "missing": 0},
                "b": {"type": "numeric", "min": -1.0, "max": 1.0, "median": 0.0, "p1": -0.9,
                      "p99": 0.9, "mean": 0.0, "missing": 0},
                "c": {"type": "categorical", "level_counts": {"x": 30, "y": 70}},
            },
            "feature_docs": {
                "a": {"label": "Amount", "unit": "BRL", "help": "Money paid."},
            },
        }),
    }
}

fn importance() -> Artifact {
    Artifact::Table(
        Table::new(vec![
            Column::new(
                "feature",
                ColumnData::Utf8(vec![Some("a".into()), Some("b".into()), Some("c".into())]),
            ),
            Column::new("importance", ColumnData::Float64(vec![0.6, 0.3, 0.1])),
        ])
        .unwrap(),
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    runs: RunStore,
    artifacts: LocalStore,
    state: Arc<ServerState>,
    run_id: String,
    /// The model artifact of version 1.
    model_ref: ArtifactRef,
    /// The step run that registered version 1.
    deploy_step: i64,
}

fn record(store: &LocalStore, reference: &ArtifactRef) -> ArtifactRecord {
    ArtifactRecord {
        hash: reference.hash.to_string(),
        kind: reference.kind,
        size: reference.size,
        path: store.path_of(reference).display().to_string(),
    }
}

fn new_step(id: &str, inputs: serde_json::Value) -> NewStepRun {
    NewStepRun {
        step_id: id.into(),
        step_name: id.into(),
        cache_key: None,
        key_detail: Some(json!({ "inputs": inputs })),
        params: Default::default(),
    }
}

fn finished(status: StepStatus) -> StepFinish {
    StepFinish {
        status,
        attempts: u32::from(status == StepStatus::Succeeded),
        duration_ms: 12,
        miss_reason: None,
        error: None,
    }
}

impl Fixture {
    /// Records the run and registers version 1, without promoting it.
    fn new() -> Self {
        Fixture::with_model(model())
    }

    /// Like [`Fixture::new`], with `model` as the trained model.
    fn with_model(model: Model) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(".flowrun");
        let runs = RunStore::open(&store.join("runs.db")).unwrap();
        let artifacts = LocalStore::open(&store).unwrap();
        let run_id = runs
            .begin_run(&NewRun {
                pipeline: "deployment".into(),
                pipeline_file: "deployment.yaml".into(),
                params: [
                    (
                        "note".to_string(),
                        crate::ParamValue::String(HOSTILE.into()),
                    ),
                    ("seed".to_string(), crate::ParamValue::Int(42)),
                ]
                .into(),
                command_line: "flowrun deployment.yaml".into(),
                pid: std::process::id(),
                graph: None,
            })
            .unwrap();

        let split = runs
            .record_step(
                &run_id,
                &new_step("split", json!({})),
                &finished(StepStatus::Succeeded),
            )
            .unwrap();
        let y_train = Artifact::Table(
            Table::new(vec![Column::new(
                "review_score",
                ColumnData::Float64(vec![5.0, 1.0, 4.0, 2.0]),
            )])
            .unwrap(),
        );
        let y_ref = artifacts.put(&y_train, "test").unwrap();
        runs.record_output(split, "y_train", &record(&artifacts, &y_ref))
            .unwrap();

        let model_ref = artifacts.put(&Artifact::Model(model), "test").unwrap();
        let model_hash = model_ref.hash.to_string();
        let reads_target =
            json!({"y_train": {"from": "split.y_train", "hash": y_ref.hash.to_string()}});
        let train = runs
            .record_step(
                &run_id,
                &new_step("train", reads_target),
                &finished(StepStatus::Succeeded),
            )
            .unwrap();
        runs.record_input(train, "y_train", y_ref.hash.as_str())
            .unwrap();
        runs.record_output(train, "model", &record(&artifacts, &model_ref))
            .unwrap();

        let reads_model = json!({"model": {"from": "train.model", "hash": model_hash}});
        let evaluate = runs
            .record_step(
                &run_id,
                &new_step("evaluate", reads_model.clone()),
                &finished(StepStatus::Cached),
            )
            .unwrap();
        runs.record_input(evaluate, "model", &model_hash).unwrap();
        let importance_ref = artifacts.put(&importance(), "test").unwrap();
        runs.record_output(
            evaluate,
            "feature_importance",
            &record(&artifacts, &importance_ref),
        )
        .unwrap();
        runs.log_metrics(
            &run_id,
            evaluate,
            &[("mse".into(), 1.25), ("r2".into(), 0.1)],
        )
        .unwrap();

        let deploy = runs
            .record_step(
                &run_id,
                &new_step("deploy", reads_model),
                &finished(StepStatus::Succeeded),
            )
            .unwrap();
        runs.record_input(deploy, "model", &model_hash).unwrap();
        let mut skipped = new_step("report", json!({}));
        skipped.key_detail = None;
        runs.record_step(&run_id, &skipped, &finished(StepStatus::Skipped))
            .unwrap();
        runs.finish_run(&run_id, RunStatus::Succeeded).unwrap();

        runs.register_served_version(&NewModelVersion {
            model: "m",
            artifact: &model_ref,
            flavor: "test_linear",
            run_id: &run_id,
            step_run_id: deploy,
            metrics: &json!({"mse": 1.25, "rmse": 1.118, "mae": 0.9, "r2": 0.1, "baseline_mse": 1.5}),
            params: &json!({"seed": 42, "note": HOSTILE}),
        })
        .unwrap();

        let mut registry = Registry::new();
        registry.register_flavor("test_linear", load_linear);
        let config = StateConfig {
            model: "m".into(),
            max_rows: 100,
        };
        let state = Arc::new(ServerState::new(
            config,
            registry,
            RunStore::open(&store.join("runs.db")).unwrap(),
            LocalStore::open(&store).unwrap(),
        ));
        Fixture {
            dir,
            runs,
            artifacts,
            state,
            run_id,
            model_ref,
            deploy_step: deploy,
        }
    }

    /// Promotes version 1 and loads it.
    fn deployed() -> Self {
        Fixture::new().promote_first()
    }

    /// Promotes version 1 and loads it.
    fn promote_first(self) -> Self {
        let fixture = self;
        fixture
            .runs
            .set_stage("m", 1, Stage::Production, "test")
            .unwrap();
        fixture.state.reload().unwrap();
        fixture
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let request = Request::get(path)
            .header("accept", "text/html")
            .body(Bytes::new())
            .unwrap();
        let response = self.call(request).await;
        (response.status(), body(response).await)
    }

    /// Sends a GET with `host` as its `Host` header, as a browser does.
    async fn get_from(&self, host: &str, path: &str) -> (StatusCode, String) {
        let request = Request::get(path)
            .header("accept", "text/html")
            .header("host", host)
            .body(Bytes::new())
            .unwrap();
        let response = self.call(request).await;
        (response.status(), body(response).await)
    }

    async fn call(&self, request: Request<Bytes>) -> Response<Full<Bytes>> {
        router::handle(&self.state, request, "127.0.0.1:50000".parse().unwrap()).await
    }
}

async fn body(response: Response<Full<Bytes>>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Returns the exact prediction the page carries in `data-prediction`.
fn page_prediction(html: &str) -> f64 {
    let start = html
        .find("data-prediction=\"")
        .expect("no prediction on the page")
        + 17;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].parse().unwrap()
}

#[tokio::test]
async fn form_starts_at_training_defaults() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"name="a" type="number" inputmode="decimal" step="any" required min="0" max="20" value="2.5""#), "{html}");
    assert!(html.contains(r#"name="b" type="number" inputmode="decimal" step="any" required min="-3" max="3" value="0""#), "{html}");
    assert!(html.contains(r#"<option value="y" selected>"#), "{html}");
    assert!(html.contains("Amount"), "the documented label is missing");
    assert!(html.contains("(BRL)"), "the unit is missing");
    assert!(
        html.contains(">B<"),
        "an undocumented feature gets its readable name"
    );
    assert!(html.contains("Serving <strong>m/1</strong>"));
    assert!(
        !html.contains("data-prediction"),
        "a new form shows no prediction"
    );
}

#[tokio::test]
async fn prediction_equals_invocations() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get("/?a=1.5&b=0.25&c=x").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let from_page = page_prediction(&html);

    let api = Request::post("/invocations")
        .header("content-type", "application/json")
        .body(Bytes::from(
            json!({"dataframe_records": [{"a": 1.5, "b": 0.25, "c": "x"}]}).to_string(),
        ))
        .unwrap();
    let response = fixture.call(api).await;
    assert_eq!(response.status(), StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body(response).await).unwrap();
    assert_eq!(from_page, json["predictions"][0].as_f64().unwrap());
    assert_eq!(from_page, 104.0);
    assert!(
        html.contains(">104.0<"),
        "the score is shown with one decimal"
    );
    assert!(html.contains(r#"id="model-version">m/1<"#));
    // The training target, read through the lineage, ran from 1 to 5, and
    // 104 lies above it.
    assert!(html.contains("Training data ranged from 1 to 5."), "{html}");
    assert!(html.contains(r#"<svg class="scale""#));
    assert!(html.contains("The prediction lies outside the range seen in training."));
}

#[tokio::test]
async fn inputs_compared_with_training() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get("/?a=9.5&b=0&c=y").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(r#"<tr class="unusual"><td>Amount</td>"#),
        "{html}"
    );
    assert!(html.contains("1 input(s) are unusual"), "{html}");

    let (_, html) = fixture.get("/?a=15&b=0&c=y").await;
    assert!(
        html.contains(r#"<tr class="outside"><td>Amount</td>"#),
        "{html}"
    );
    assert!(
        html.contains("outside the range seen in training: Amount"),
        "{html}"
    );

    let (_, html) = fixture.get("/?a=2&b=0&c=y").await;
    assert!(
        html.contains("Every input is within the 1st–99th percentile"),
        "{html}"
    );
}

#[tokio::test]
async fn invalid_values_get_messages() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get("/?a=&b=abc&c=zz").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("3 of 3 inputs need a change"), "{html}");
    assert!(
        html.contains(r#"<p class="error" id="e-a">Enter a value; every input is required.</p>"#),
        "{html}"
    );
    assert!(html.contains("“abc” is not a number"), "{html}");
    assert!(html.contains("“zz” was not seen in training"), "{html}");
    assert!(html.contains(r#"name="b" type="text" inputmode="decimal" step="any" required min="-3" max="3" value="abc""#), "the user's value is kept in a text field: {html}");
    assert!(!html.contains("data-prediction"));

    let (status, html) = fixture.get("/?a=-4&b=1e6&c=x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Enter 0 or more"), "{html}");
    assert!(html.contains("“1e6” is implausible"), "{html}");
    assert!(html.contains(r#"value="-4""#));
    assert!(html.contains(r#"aria-invalid="true""#));

    let (status, html) = fixture.get("/?a=1&b=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains(r#"<option value="" selected>Choose…</option>"#),
        "{html}"
    );
}

#[tokio::test]
async fn hostile_form_value_is_escaped() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture
        .get("/?a=%3Cscript%3Ealert(1)%3C%2Fscript%3E&b=0&c=x")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
}

#[tokio::test]
async fn predict_without_model_explains_deploy() {
    let fixture = Fixture::new();
    let (status, html) = fixture.get("/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(html.contains("No model is deployed yet"), "{html}");
    assert!(html.contains("flowrun pipelines/deployment.yaml"));
    assert!(html.contains("No version of <code>m</code> is deployed"));

    let (status, html) = fixture.get("/models").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("No version is in production"), "{html}");
    let (status, _) = fixture.get("/runs").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = fixture.get(&format!("/runs/{}", fixture.run_id)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn models_page_compares_versions() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get("/models").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(r#"<a href="/models/m/1">v1</a>"#), "{html}");
    assert!(html.contains(r#"<span class="badge stage-production">production</span>"#));
    for value in ["1.2500", "1.1180", "0.9000", "0.1000", "1.5000", "16.7%"] {
        assert!(html.contains(value), "metric {value} missing: {html}");
    }
    assert!(html.contains("Test MSE of each version against its baseline"));
    assert!(
        html.contains("Amount (a)"),
        "importance bars use the feature labels"
    );
    assert!(html.contains("60.0%"), "{html}");
    assert!(html.contains("<code>evaluate</code> step"));

    let (status, html) = fixture.get("/models/m").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Stage history"), "{html}");

    let (status, html) = fixture.get("/models/m/1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Run parameters"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("Feature importance of version 1"));
}

#[tokio::test]
async fn runs_page_escapes_parameters() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get("/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains(&format!(r#"href="/runs/{}""#, fixture.run_id)));
    assert!(html.contains("3 ran · 1 cached · 1 skipped"), "{html}");
    assert!(
        html.contains(r#"<span class="k">mse</span> <span class="v">1.25</span>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="k">r2</span> <span class="v">0.1</span>"#),
        "{html}"
    );
}

#[tokio::test]
async fn run_page_draws_dag_and_lineage() {
    let fixture = Fixture::deployed();
    for id in [fixture.run_id.as_str(), "latest", &fixture.run_id[..12]] {
        let (status, html) = fixture.get(&format!("/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id}");
        assert!(html.contains(&fixture.run_id), "{id}");
    }
    let (_, html) = fixture.get("/runs/latest").await;
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains(r#"<svg class="dag""#));
    assert_eq!(html.matches(r#"<path class="edge""#).count(), 3, "{html}");
    assert!(html.contains("train → evaluate: model → model"), "{html}");
    for class in ["st-succeeded", "st-cached", "st-skipped"] {
        assert!(
            html.contains(&format!(r#"<g class="node {class}">"#)),
            "{class}"
        );
    }
    assert!(html.contains("Steps that never started recorded no inputs"));
    assert!(html.contains(r#"<ul class="legend""#));
    // Lineage: the model is produced by train and read by evaluate and deploy.
    assert!(html.contains("<code>train.model</code>"), "{html}");
    assert!(html.contains(r##"<a href="#step-evaluate">evaluate</a> (model), <a href="#step-deploy">deploy</a> (model)"##), "{html}");
    assert!(html.contains(r#"<tr id="step-report">"#));
}

#[tokio::test]
async fn unknown_ids_get_404_pages() {
    let fixture = Fixture::deployed();
    let cases = [
        ("/runs/nope", "No run has the id “nope”.", "/runs"),
        (
            "/models/nope",
            "No model named “nope” is registered.",
            "/models",
        ),
        ("/models/m/9", "Model “m” has no version “9”.", "/models"),
        (
            "/models/m/abc",
            "Model “m” has no version “abc”.",
            "/models",
        ),
        ("/nowhere", "There is no page at /nowhere.", "/"),
        ("/runs/a/b", "There is no page at /runs/a/b.", "/"),
    ];
    for (path, message, back) in cases {
        let (status, html) = fixture.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains(message), "{path}: {html}");
        assert!(
            html.contains(&format!(r#"<a class="button" href="{back}">"#)),
            "{path}"
        );
    }
    let (status, html) = fixture.get("/runs/%3Cscript%3Ex").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;x"));
}

#[tokio::test]
async fn api_clients_keep_json_404() {
    let fixture = Fixture::deployed();
    let request = Request::get("/nowhere").body(Bytes::new()).unwrap();
    let response = fixture.call(request).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&body(response).await).unwrap();
    assert_eq!(json["error_code"], "ENDPOINT_NOT_FOUND");
}

#[tokio::test]
async fn pages_send_safety_headers() {
    let fixture = Fixture::deployed();
    let request = Request::get("/").body(Bytes::new()).unwrap();
    let response = fixture.call(request).await;
    let header = |name: &str| response.headers().get(name).unwrap().to_str().unwrap();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert!(header("content-security-policy").contains("default-src 'none'"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header(router::VERSION_HEADER), "m/1");
}

#[tokio::test]
async fn assets_and_methods() {
    let fixture = Fixture::deployed();
    let request = Request::get("/assets/style.css")
        .body(Bytes::new())
        .unwrap();
    let response = fixture.call(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/css; charset=utf-8"
    );
    let request = Request::post("/").body(Bytes::new()).unwrap();
    let response = fixture.call(request).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers().get("allow").unwrap(), "GET, HEAD");
}

#[tokio::test]
async fn unreadable_importance_is_a_sentence() {
    let fixture = Fixture::deployed();
    let reference = fixture.artifacts.put(&importance(), "test").unwrap();
    std::fs::write(fixture.artifacts.path_of(&reference), b"damaged").unwrap();
    let (status, html) = fixture.get("/models").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("The feature importance table cannot be read"),
        "{html}"
    );
}

#[tokio::test]
async fn runs_list_pages_through_older_runs() {
    let fixture = Fixture::deployed();
    // The fixture's own run plus 55 more: two pages of 50 and 6.
    let mut newest = String::new();
    for i in 0..55 {
        newest = fixture
            .runs
            .begin_run(&NewRun {
                pipeline: format!("extra{i}"),
                pipeline_file: "extra.yaml".into(),
                params: Default::default(),
                command_line: "flowrun extra.yaml".into(),
                pid: 1,
                graph: None,
            })
            .unwrap();
        fixture
            .runs
            .finish_run(&newest, RunStatus::Succeeded)
            .unwrap();
    }

    let (status, first) = fixture.get("/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("Runs 1 to 50 of the 56 runs"), "{first}");
    assert!(first.contains("Page 1 of 2"), "{first}");
    assert!(first.contains(r#"href="/runs?page=2""#), "{first}");
    assert!(first.contains(&newest), "the newest run is on page 1");
    assert!(!first.contains(&fixture.run_id), "the oldest run is not");

    let (status, second) = fixture.get("/runs?page=2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(second.contains("Runs 51 to 56 of the 56 runs"), "{second}");
    assert!(
        second.contains(&fixture.run_id),
        "the oldest run is on page 2"
    );
    assert!(second.contains(r#"href="/runs?page=1""#), "{second}");
    assert!(!second.contains("page=3"), "{second}");

    for (query, message) in [
        (
            "page=3",
            "There is no runs page 3: this store has 56 runs, on 2 pages.",
        ),
        ("page=0", "There is no runs page &quot;0&quot;"),
        ("page=abc", "There is no runs page &quot;abc&quot;"),
    ] {
        let (status, html) = fixture.get(&format!("/runs?{query}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{query}");
        assert!(html.contains(message), "{query}: {html}");
        assert!(
            html.contains(r#"<a class="button" href="/runs">"#),
            "{query}"
        );
    }
}

/// Returns the fixture's model with `b` documented as a whole number from
/// -1 to 1, which is narrower than the generic bounds from its statistics,
/// -3 to 3.
fn model_with_domain() -> Model {
    let mut model = model();
    model.info["feature_docs"]["b"] = json!({
        "label": "Direction",
        "unit": "",
        "help": "Down, level or up.",
        "domain": {"min": -1, "max": 1, "integer": true,
                   "rule": "A direction is a whole number from -1 to 1."},
    });
    model
}

#[tokio::test]
async fn form_uses_declared_domain() {
    let fixture = Fixture::with_model(model_with_domain()).promote_first();
    let (status, html) = fixture.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"name="b" type="number" inputmode="decimal" step="1" required min="-1" max="1" value="0""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="rule">A direction is a whole number from -1 to 1.</span>"#),
        "{html}"
    );
    // A feature without a domain keeps the generic bounds.
    assert!(
        html.contains(
            r#"name="a" type="number" inputmode="decimal" step="any" required min="0" max="20""#
        ),
        "{html}"
    );
}

#[tokio::test]
async fn values_outside_domain_rejected() {
    let fixture = Fixture::with_model(model_with_domain()).promote_first();
    for bad in ["2", "-2", "0.5"] {
        let (status, html) = fixture.get(&format!("/?a=1&b={bad}&c=x")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "b={bad}");
        let message = format!(
            r#"<p class="error" id="e-b">“{bad}” is not a valid value. A direction is a whole number from -1 to 1.</p>"#
        );
        assert!(html.contains(&message), "b={bad}: {html}");
        assert!(!html.contains("data-prediction"), "b={bad}");
    }
    let (status, html) = fixture.get("/?a=1&b=-1&c=x").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(page_prediction(&html), 91.0);
}

#[tokio::test]
async fn absurd_value_stays_compact() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get("/?a=1e308&b=0&c=x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("“1e308” is implausible: enter a value from 0 to 20 (training saw 0 to 10)."),
        "{html}"
    );
    assert!(!html.contains("0000000000"), "a long run of digits: {html}");
    assert!(html.contains(r#"value="1e308""#), "the value as typed");

    let (status, html) = fixture.get("/?a=1e309&b=0&c=x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("“1e309” is too large"), "{html}");
}

#[tokio::test]
async fn api_snippet_uses_host_header() {
    let fixture = Fixture::deployed();
    let (status, html) = fixture.get_from("127.0.0.1:43210", "/?a=1&b=0&c=x").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("\\\n  'http://127.0.0.1:43210/invocations'</code>"),
        "{html}"
    );
    assert!(!html.contains("HOST:PORT"), "{html}");

    let (_, html) = fixture.get_from("[::1]:43210", "/?a=1&b=0&c=x").await;
    assert!(html.contains("curl --globoff -H"), "{html}");
    assert!(html.contains("'http://[::1]:43210/invocations'"), "{html}");
}

#[tokio::test]
async fn api_snippet_without_host() {
    let fixture = Fixture::deployed();
    // A forged Host header is not put into a shell command.
    let (status, html) = fixture.get_from("x';rm -rf ~;'", "/?a=1&b=0&c=x").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(!html.contains("rm -rf"), "{html}");
    assert!(html.contains("'http://HOST:PORT/invocations'"), "{html}");
    assert!(
        html.contains("Replace HOST:PORT with this server"),
        "{html}"
    );

    // The server's state file names its bound address, and an unspecified
    // address is reached through the loopback address.
    let files = ServerFiles::new(&fixture.dir.path().join(".flowrun"));
    std::fs::create_dir_all(files.dir()).unwrap();
    let mut info = ServerInfo {
        pid: std::process::id(),
        host: "0.0.0.0".into(),
        port: 5123,
        model: "m".into(),
        started_at: "2026-12-04T20:15:30Z".into(),
    };
    std::fs::write(files.state_path(), serde_json::to_string(&info).unwrap()).unwrap();
    let (_, html) = fixture.get("/?a=1&b=0&c=x").await;
    assert!(
        html.contains("'http://127.0.0.1:5123/invocations'"),
        "{html}"
    );
    assert!(!html.contains("Replace HOST:PORT"), "{html}");

    // A state file of another process does not describe this one.
    info.pid = info.pid.wrapping_add(1);
    std::fs::write(files.state_path(), serde_json::to_string(&info).unwrap()).unwrap();
    let (_, html) = fixture.get("/?a=1&b=0&c=x").await;
    assert!(html.contains("'http://HOST:PORT/invocations'"), "{html}");
}

#[tokio::test]
async fn models_page_explains_metrics() {
    let fixture = Fixture::deployed();
    let (_, html) = fixture.get("/models").await;
    assert!(
        html.contains(r#"<abbr title="1 − MSE / variance of the test rows"#),
        "{html}"
    );
    assert!(html.contains(">R² vs test mean</abbr>"), "{html}");
    assert!(
        html.contains(r#"<abbr title="1 − MSE / baseline MSE: the share of the baseline's error"#),
        "{html}"
    );
    assert!(
        html.contains("R² can be below 0 while the gain is positive"),
        "{html}"
    );
    // One version: nothing to compare its data with.
    assert!(!html.contains("different data"), "{html}");
    assert!(
        html.contains(r#"<div class="scroll"><table class="history">"#),
        "{html}"
    );
    assert!(html.contains(r#"<td class="reason">test</td>"#), "{html}");

    let (_, html) = fixture.get("/models/m/1").await;
    assert!(html.contains(">R² vs test mean</abbr>"), "{html}");
    assert!(html.contains(">Gain over baseline</abbr></dt>"), "{html}");
    assert!(html.contains("16.7%"), "{html}");
}

#[tokio::test]
async fn models_page_shows_differing_data() {
    let fixture = Fixture::deployed();
    fixture
        .runs
        .register_served_version(&NewModelVersion {
            model: "m",
            artifact: &fixture.model_ref,
            flavor: "test_linear",
            run_id: &fixture.run_id,
            step_run_id: fixture.deploy_step,
            metrics: &json!({"mse": 1.0, "r2": -3.11, "baseline_mse": 1.24}),
            params: &json!({"seed": 42, "data_dir": "/data/olist-full", "feature_set": "post_delivery"}),
        })
        .unwrap();

    let (status, html) = fixture.get("/models").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("These versions were trained and tested on different data"),
        "{html}"
    );
    assert!(
        html.contains("differ in <code>data_dir</code>, <code>feature_set</code>."),
        "{html}"
    );
    assert!(
        html.contains(r#"<td class="param">/data/olist-full</td>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<td class="param">post_delivery</td>"#),
        "{html}"
    );
    assert!(html.contains(r#"<td class="param">—</td>"#), "{html}");

    // Both runs used seed 42, so seed gets no column.
    assert!(!html.contains("<code>seed</code>"), "{html}");
    assert!(html.contains("-3.1100"), "{html}");
    assert!(html.contains("19.4%"), "{html}");
}

#[tokio::test]
async fn predict_page_shows_load_error() {
    let fixture = Fixture::new();
    let path = fixture.artifacts.path_of(&fixture.model_ref);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    fixture
        .runs
        .set_stage("m", 1, Stage::Production, "test")
        .unwrap();
    assert!(fixture.state.reload().is_err(), "a damaged model loaded");

    let (status, html) = fixture.get("/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        html.contains("The production model could not be loaded"),
        "{html}"
    );
    assert!(html.contains("is damaged"), "{html}");
    assert!(
        html.contains("Run the pipeline that trained it again"),
        "{html}"
    );
}
