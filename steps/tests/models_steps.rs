//! Tests of the `train_model` and `evaluation` steps run through `Step::run`
//! with a standalone context, as the engine runs them.

use flowrun_artifacts::{Artifact, Column, ColumnData, Table};
use flowrun_engine::{CancelToken, ParamValue, Step, StepContext, StepError};
use flowrun_steps::evaluate::Evaluation;
use flowrun_steps::models::encoding::{
    EncodedFeature, Encoding, FeatureEncoder, FeatureStats, NumericStats,
};
use flowrun_steps::models::linear_regression::{LinearModel, LinearParams, Term};
use flowrun_steps::models::{Fitted, Hyperparameters, TrainedModel};
use flowrun_steps::train::TrainModel;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a step run returned and logged.
struct Ran {
    outputs: Result<BTreeMap<String, Artifact>, StepError>,
    metrics: Vec<(String, f64)>,
}

fn run(
    step: &dyn Step,
    overrides: &[(&str, ParamValue)],
    inputs: Vec<(&str, Artifact)>,
    cancel: &CancelToken,
) -> Ran {
    let mut params: BTreeMap<String, ParamValue> = step
        .signature()
        .params
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.default.clone()?)))
        .collect();
    for (name, value) in overrides {
        params.insert(name.to_string(), value.clone());
    }
    let inputs: BTreeMap<String, Arc<Artifact>> = inputs
        .into_iter()
        .map(|(name, artifact)| (name.to_string(), Arc::new(artifact)))
        .collect();
    let store = tempfile::tempdir().unwrap();
    let ctx = StepContext::standalone("under_test", &params, &inputs, cancel, store.path());
    let outputs = step.run(&ctx).map(|o| o.artifacts);
    Ran {
        outputs,
        metrics: ctx.logged_metrics(),
    }
}

fn metric(ran: &Ran, name: &str) -> Option<f64> {
    ran.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// Training tables of `orders` orders with three rows each, where the score
/// grows with `price` and drops for the `late` level.
fn training_tables(orders: usize) -> (Table, Table) {
    let rows = orders * 3;
    let price: Vec<f64> = (0..rows).map(|i| ((i * 7) % 50) as f64).collect();
    let status: Vec<Option<String>> = (0..rows)
        .map(|i| Some(if i % 4 == 0 { "late" } else { "on_time" }.to_string()))
        .collect();
    let score: Vec<f64> = (0..rows)
        .map(|i| {
            let base = 1.0 + price[i] / 15.0;
            if i % 4 == 0 { base - 1.0 } else { base }
        })
        .collect();
    let order_id: Vec<Option<String>> =
        (0..rows).map(|i| Some(format!("order{}", i / 3))).collect();
    let x = Table::new(vec![
        Column::new("price", ColumnData::Float64(price)),
        Column::new("status", ColumnData::Utf8(status)),
    ])
    .unwrap();
    let y = Table::new(vec![
        Column::new("review_score", ColumnData::Float64(score)),
        Column::new("order_id", ColumnData::Utf8(order_id)),
    ])
    .unwrap();
    (x, y)
}

fn train_inputs(orders: usize) -> Vec<(&'static str, Artifact)> {
    let (x, y) = training_tables(orders);
    vec![
        ("x_train", Artifact::Table(x)),
        ("y_train", Artifact::Table(y)),
    ]
}

fn failure(ran: Ran) -> StepError {
    match ran.outputs {
        Err(error) => error,
        Ok(outputs) => panic!("the step succeeded with outputs {:?}", outputs.keys()),
    }
}

#[test]
fn train_step_outputs_model() {
    let ran = run(
        &TrainModel::new(),
        &[("iterations", ParamValue::Int(20))],
        train_inputs(100),
        &CancelToken::new(),
    );
    assert_eq!(metric(&ran, "train_rows"), Some(300.0));
    assert!(metric(&ran, "train_seconds").is_some_and(|s| s >= 0.0));
    assert_eq!(metric(&ran, "val_mse"), None, "no tuning, no val_mse");
    let outputs = ran.outputs.unwrap();
    let Some(Artifact::Model(model)) = outputs.get("model") else {
        panic!("no model output: {:?}", outputs.keys());
    };
    assert_eq!(model.flavor, "gradient_boosting");
    assert_eq!(model.target, "review_score");
    assert_eq!(
        outputs.get("tuning"),
        Some(&Artifact::Json(serde_json::json!([])))
    );
}

#[test]
fn train_step_zero_rows_rejected() {
    let (x, y) = training_tables(0);
    let error = failure(run(
        &TrainModel::new(),
        &[],
        vec![
            ("x_train", Artifact::Table(x)),
            ("y_train", Artifact::Table(y)),
        ],
        &CancelToken::new(),
    ));
    assert!(error.to_string().contains("no training rows"), "{error}");
}

#[test]
fn train_step_unknown_model_rejected() {
    let error = failure(run(
        &TrainModel::new(),
        &[("model", ParamValue::String("svm".into()))],
        train_inputs(10),
        &CancelToken::new(),
    ));
    let message = error.to_string();
    assert!(message.contains("`svm`"), "{message}");
    assert!(
        message.contains("linear_regression, random_forest, gradient_boosting"),
        "{message}"
    );
}

#[test]
fn model_choices_list_families() {
    let step = TrainModel::new();
    let choices = step
        .signature()
        .find_param("model")
        .unwrap()
        .choices
        .clone();
    assert_eq!(
        choices.unwrap(),
        ["linear_regression", "random_forest", "gradient_boosting"]
    );
}

#[test]
fn train_step_invalid_hyperparameter_named() {
    let error = failure(run(
        &TrainModel::new(),
        &[("subsample", ParamValue::Float(1.5))],
        train_inputs(10),
        &CancelToken::new(),
    ));
    assert!(error.to_string().contains("`subsample`"), "{error}");
}

#[test]
fn train_step_missing_target_named() {
    let (x, _) = training_tables(5);
    let y = Table::new(vec![Column::new(
        "score",
        ColumnData::Float64(vec![1.0; 15]),
    )])
    .unwrap();
    let error = failure(run(
        &TrainModel::new(),
        &[],
        vec![
            ("x_train", Artifact::Table(x)),
            ("y_train", Artifact::Table(y)),
        ],
        &CancelToken::new(),
    ));
    assert!(error.to_string().contains("`review_score`"), "{error}");
}

#[test]
fn cancelled_training_stops() {
    let cancel = CancelToken::new();
    cancel.cancel();
    for model in ["gradient_boosting", "random_forest", "linear_regression"] {
        let error = failure(run(
            &TrainModel::new(),
            &[("model", ParamValue::String(model.into()))],
            train_inputs(50),
            &cancel,
        ));
        assert!(matches!(error, StepError::Cancelled(_)), "{model}: {error}");
    }
}

fn tune(seed: i64) -> Ran {
    run(
        &TrainModel::new(),
        &[
            ("iterations", ParamValue::Int(15)),
            ("tuning_trials", ParamValue::Int(4)),
            ("seed", ParamValue::Int(seed)),
        ],
        train_inputs(120),
        &CancelToken::new(),
    )
}

fn tuning_output(ran: &Ran) -> serde_json::Value {
    match ran.outputs.as_ref().unwrap().get("tuning") {
        Some(Artifact::Json(json)) => json.clone(),
        other => panic!("no tuning output: {other:?}"),
    }
}

#[test]
fn tuning_records_every_trial() {
    let ran = tune(7);
    let trials = tuning_output(&ran);
    let trials = trials.as_array().unwrap();
    assert_eq!(trials.len(), 4);
    let mut best = f64::INFINITY;
    for (i, trial) in trials.iter().enumerate() {
        assert_eq!(trial["trial"], i);
        assert_eq!(trial["params"]["iterations"], 15);
        let val_mse = trial["val_mse"].as_f64().unwrap();
        assert_eq!(metric(&ran, &format!("trial_{i}_val_mse")), Some(val_mse));
        best = best.min(val_mse);
    }
    assert_eq!(metric(&ran, "val_mse"), Some(best));
    let marked: Vec<&serde_json::Value> = trials.iter().filter(|t| t["best"] == true).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["val_mse"].as_f64(), Some(best));

    // The final model is trained with the best trial's parameters.
    let Some(Artifact::Model(model)) = ran.outputs.as_ref().unwrap().get("model") else {
        panic!("no model output");
    };
    let mut chosen = marked[0]["params"].clone();
    chosen["seed"] = serde_json::json!(7);
    assert_eq!(model.info["hyperparameters"], chosen);
    assert_eq!(model.info["val_mse"].as_f64(), Some(best));
}

#[test]
fn tuning_deterministic_with_seed() {
    let first = tuning_output(&tune(7));
    let second = tuning_output(&tune(7));
    assert_eq!(first, second);
    let other = tuning_output(&tune(8));
    assert_ne!(first[1]["params"], other[1]["params"]);
}

#[test]
fn tuning_without_order_ids_rejected() {
    let (x, y) = training_tables(5);
    let y = Table::new(vec![y.column("review_score").unwrap().clone()]).unwrap();
    let error = failure(run(
        &TrainModel::new(),
        &[("tuning_trials", ParamValue::Int(2))],
        vec![
            ("x_train", Artifact::Table(x)),
            ("y_train", Artifact::Table(y)),
        ],
        &CancelToken::new(),
    ));
    assert!(error.to_string().contains("`order_id`"), "{error}");
}

/// A linear model written by hand: `1 + 2 * price + (0 for a, 1 for b)`.
fn hand_model() -> flowrun_artifacts::Model {
    let encoder = FeatureEncoder {
        features: vec![
            EncodedFeature {
                name: "price".into(),
                encoding: Encoding::Numeric { median: 1.0 },
            },
            EncodedFeature {
                name: "kind".into(),
                encoding: Encoding::Categorical {
                    levels: vec!["a".into(), "b".into()],
                    fallback: 0,
                },
            },
        ],
    };
    let stats = vec![
        FeatureStats::Numeric(NumericStats {
            min: 0.0,
            max: 2.0,
            median: 1.0,
            p1: 0.0,
            p99: 2.0,
            mean: 1.0,
            missing: 0,
        }),
        FeatureStats::Categorical {
            level_counts: BTreeMap::from([("a".into(), 2), ("b".into(), 1)]),
        },
    ];
    let fitted = Fitted::LinearRegression(LinearModel {
        intercept: 1.0,
        terms: vec![
            Term::Numeric {
                mean: 0.0,
                scale: 1.0,
                weight: 2.0,
            },
            Term::Categorical {
                weights: vec![0.0, 1.0],
            },
        ],
        contribution_sd: vec![3.0, 1.0],
    });
    TrainedModel {
        encoder,
        stats,
        hyperparameters: Hyperparameters::LinearRegression(LinearParams::default()),
        seed: 0,
        train_rows: 3,
        fitted,
    }
    .to_model("review_score")
    .unwrap()
}

fn target(values: &[f64]) -> Artifact {
    Artifact::Table(
        Table::new(vec![Column::new(
            "review_score",
            ColumnData::Float64(values.to_vec()),
        )])
        .unwrap(),
    )
}

#[test]
fn evaluation_hand_computed() {
    // Predictions: 1 + 2*0 = 1, 1 + 2*1 + 1 = 4, 1 + 2*2 = 5, and NaN price
    // becomes the median 1, so 1 + 2 = 3.
    let x_test = Table::new(vec![
        Column::new(
            "kind",
            ColumnData::Utf8(vec![
                Some("a".into()),
                Some("b".into()),
                Some("a".into()),
                Some("a".into()),
            ]),
        ),
        Column::new("price", ColumnData::Float64(vec![0.0, 1.0, 2.0, f64::NAN])),
    ])
    .unwrap();
    // Against 2, 4, 4, 3 the errors are -1, 0, 1, 0: SSE 2 and absolute
    // sum 2. The actual mean is 3.25, so SST = 1.5625 + 0.5625 + 0.5625 +
    // 0.0625 = 2.75. The training mean 3 misses by -1, 1, 1, 0: squared
    // sum 3.
    let ran = run(
        &Evaluation::new(),
        &[],
        vec![
            ("model", Artifact::Model(hand_model())),
            ("x_test", Artifact::Table(x_test)),
            ("y_test", target(&[2.0, 4.0, 4.0, 3.0])),
            ("y_train", target(&[2.0, 3.0, 4.0])),
        ],
        &CancelToken::new(),
    );
    let expected = [
        ("mse", 0.5),
        ("rmse", 0.5f64.sqrt()),
        ("mae", 0.5),
        ("r2", 1.0 - 2.0 / 2.75),
        ("baseline_mse", 0.75),
        ("test_rows", 4.0),
    ];
    for (name, value) in expected {
        let logged = metric(&ran, name).unwrap_or_else(|| panic!("{name} not logged"));
        assert!(
            (logged - value).abs() < 1e-12,
            "{name}: {logged} != {value}"
        );
    }
    let outputs = ran.outputs.unwrap();
    let Some(Artifact::Json(metrics)) = outputs.get("metrics") else {
        panic!("no metrics output");
    };
    for (name, value) in expected {
        let stored = metrics[name].as_f64().unwrap();
        assert!(
            (stored - value).abs() < 1e-12,
            "{name}: {stored} != {value}"
        );
    }
    assert_eq!(metrics["model"], "linear_regression");

    let Some(Artifact::Table(importance)) = outputs.get("feature_importance") else {
        panic!("no feature_importance output");
    };
    assert_eq!(importance.column_names(), ["feature", "importance"]);
    assert_eq!(
        importance.utf8_column("feature").unwrap(),
        &[Some("price".to_string()), Some("kind".to_string())]
    );
    assert_eq!(importance.f64_column("importance").unwrap(), &[0.75, 0.25]);
}

#[test]
fn evaluation_missing_feature_named() {
    let x_test = Table::new(vec![Column::new("price", ColumnData::Float64(vec![1.0]))]).unwrap();
    let error = failure(run(
        &Evaluation::new(),
        &[],
        vec![
            ("model", Artifact::Model(hand_model())),
            ("x_test", Artifact::Table(x_test)),
            ("y_test", target(&[2.0])),
            ("y_train", target(&[2.0])),
        ],
        &CancelToken::new(),
    ));
    assert!(error.to_string().contains("`kind`"), "{error}");
}

#[test]
fn evaluation_zero_test_rows_rejected() {
    let x_test = Table::new(vec![
        Column::new("price", ColumnData::Float64(vec![])),
        Column::new("kind", ColumnData::Utf8(vec![])),
    ])
    .unwrap();
    let error = failure(run(
        &Evaluation::new(),
        &[],
        vec![
            ("model", Artifact::Model(hand_model())),
            ("x_test", Artifact::Table(x_test)),
            ("y_test", target(&[])),
            ("y_train", target(&[2.0])),
        ],
        &CancelToken::new(),
    ));
    assert!(error.to_string().contains("no test rows"), "{error}");
}

#[test]
fn model_info_has_feature_docs() {
    let ran = run(
        &TrainModel::new(),
        &[("iterations", ParamValue::Int(5))],
        train_inputs(30),
        &CancelToken::new(),
    );
    let outputs = ran.outputs.unwrap();
    let Some(Artifact::Model(model)) = outputs.get("model") else {
        panic!("no model output: {:?}", outputs.keys());
    };
    let docs = &model.info["feature_docs"];
    assert_eq!(docs["price"]["label"], "Item price");
    assert_eq!(docs["price"]["unit"], "BRL");
    assert!(
        docs["price"]["help"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    // `status` is no feature of clean_data, so it has no documentation.
    assert!(docs.get("status").is_none(), "{docs}");
    assert_eq!(model.info["validation_split"], "group");
    // x_train has none of the default target-encoded columns.
    assert_eq!(
        model.info["target_encoding"]["columns"],
        serde_json::json!([])
    );
}

fn tune_with_split(split: &str, y_has_orders: bool) -> Ran {
    let (x, y) = training_tables(120);
    let y = if y_has_orders {
        y
    } else {
        Table::new(vec![y.column("review_score").unwrap().clone()]).unwrap()
    };
    run(
        &TrainModel::new(),
        &[
            ("iterations", ParamValue::Int(15)),
            ("tuning_trials", ParamValue::Int(2)),
            ("validation_split", ParamValue::String(split.into())),
        ],
        vec![
            ("x_train", Artifact::Table(x)),
            ("y_train", Artifact::Table(y)),
        ],
        &CancelToken::new(),
    )
}

#[test]
fn random_validation_split_needs_no_orders() {
    let ran = tune_with_split("random", false);
    assert!(ran.outputs.is_ok(), "{:?}", ran.outputs.err());
    assert!(metric(&ran, "val_mse").is_some());
}

#[test]
fn validation_split_changes_holdout() {
    let random = tuning_output(&tune_with_split("random", true));
    let group = tuning_output(&tune_with_split("group", true));
    assert_eq!(random[0]["params"], group[0]["params"]);
    assert_ne!(
        random[0]["val_mse"], group[0]["val_mse"],
        "the same trial should be scored on other rows"
    );
}

#[test]
fn unknown_validation_split_rejected() {
    let error = failure(tune_with_split("by_customer", true));
    assert!(error.to_string().contains("random or group"), "{error}");
}
