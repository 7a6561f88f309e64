//! Tests of the three model families through their public API: fitting on a
//! synthetic table with a known relation, the payload round trip, and the
//! predictors' handling of columns, missing values and unseen levels.

use flowrun_artifacts::{Column, ColumnData, FeatureKind, Model, Table};
use flowrun_engine::Registry;
use flowrun_engine::predict::{PredictError, Predictor};
use flowrun_steps::models::{
    self, DecodedModel, Family, Hyperparameters, ModelError, TrainedModel, Unmonitored,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LEVELS: [&str; 3] = ["north", "south", "east"];

/// The relation every family should learn: a linear part, a level effect
/// and small noise. `noise` is a feature that does not enter it.
fn synthetic(rows: usize, seed: u64) -> (Table, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x1 = Vec::with_capacity(rows);
    let mut x2 = Vec::with_capacity(rows);
    let mut noise = Vec::with_capacity(rows);
    let mut region = Vec::with_capacity(rows);
    let mut y = Vec::with_capacity(rows);
    for i in 0..rows {
        let a: f64 = rng.random_range(0.0..10.0);
        let b: f64 = rng.random_range(-1.0..1.0);
        let level = rng.random_range(0..LEVELS.len());
        let effect = [0.0, 1.5, -1.0][level];
        y.push(1.0 + 0.3 * a + 2.0 * b + effect + rng.random_range(-0.2..0.2));
        x1.push(a);
        // Every 50th row misses x2 or its level; training fills them.
        x2.push(if i % 50 == 7 { f64::NAN } else { b });
        noise.push(rng.random_range(0.0..1.0));
        region.push(if i % 50 == 11 {
            None
        } else {
            Some(LEVELS[level].to_string())
        });
    }
    let table = Table::new(vec![
        Column::new("x1", ColumnData::Float64(x1)),
        Column::new("x2", ColumnData::Float64(x2)),
        Column::new("noise", ColumnData::Float64(noise)),
        Column::new("region", ColumnData::Utf8(region)),
    ])
    .unwrap();
    (table, y)
}

/// Small, fast settings of each family.
fn quick(family: Family) -> Hyperparameters {
    let mut params = Hyperparameters::defaults(family);
    match &mut params {
        Hyperparameters::GradientBoosting(p) => {
            p.iterations = 150;
            p.min_leaf_weight = 10.0;
        }
        Hyperparameters::RandomForest(p) => {
            p.trees = 40;
            p.min_leaf = 5;
            p.max_features = 0.5;
        }
        Hyperparameters::LinearRegression(_) => {}
    }
    params
}

fn train(family: Family) -> TrainedModel {
    let (x, y) = synthetic(3000, 1);
    models::train(&x, &y, &quick(family), 42, &Unmonitored).unwrap()
}

fn mse(predicted: &[f64], actual: &[f64]) -> f64 {
    let total: f64 = predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a) * (p - a))
        .sum();
    total / actual.len() as f64
}

fn single_row(columns: Vec<(&str, ColumnData)>) -> Table {
    Table::new(
        columns
            .into_iter()
            .map(|(name, data)| Column::new(name, data))
            .collect(),
    )
    .unwrap()
}

fn query(x1: f64, x2: f64, region: Option<&str>) -> Table {
    single_row(vec![
        ("x1", ColumnData::Float64(vec![x1])),
        ("x2", ColumnData::Float64(vec![x2])),
        ("noise", ColumnData::Float64(vec![0.5])),
        ("region", ColumnData::Utf8(vec![region.map(str::to_string)])),
    ])
}

fn predict_one(predictor: &dyn Predictor, rows: &Table) -> f64 {
    let predictions = predictor.predict(rows).unwrap();
    assert_eq!(predictions.len(), 1);
    predictions[0]
}

fn load(model: &Model) -> Box<dyn Predictor> {
    let mut registry = Registry::new();
    models::register_flavors(&mut registry);
    registry.load_predictor(model).unwrap()
}

#[test]
fn every_family_beats_mean() {
    let (x_test, y_test) = synthetic(1000, 2);
    let (_, y_train) = synthetic(3000, 1);
    let mean = y_train.iter().sum::<f64>() / y_train.len() as f64;
    let baseline = mse(&vec![mean; y_test.len()], &y_test);
    for family in Family::ALL {
        let trained = train(family);
        let error = mse(&trained.predict(&x_test).unwrap(), &y_test);
        assert!(
            error < 0.2 * baseline,
            "{family}: test MSE {error} against baseline {baseline}"
        );
    }
}

#[test]
fn decoded_payload_predicts_same() {
    let (x_test, _) = synthetic(500, 3);
    for family in Family::ALL {
        let trained = train(family);
        let model = trained.to_model("review_score").unwrap();
        assert_eq!(model.flavor, family.name());
        let from_payload = load(&model).predict(&x_test).unwrap();
        assert_eq!(
            from_payload,
            trained.predict(&x_test).unwrap(),
            "{family}: decoded payload disagrees with the trained model"
        );
    }
}

#[test]
fn large_tables_predict_same_as_rows() {
    // Tables of 4096 rows or more are predicted in parallel chunks.
    let (x_test, _) = synthetic(5000, 4);
    let trained = train(Family::GradientBoosting);
    let predictor = load(&trained.to_model("review_score").unwrap());
    let all = predictor.predict(&x_test).unwrap();
    for i in [0, 1023, 1024, 4095, 4096, 4999] {
        let row = models::tuning::take_rows(&x_test, &[i]);
        assert_eq!(predict_one(predictor.as_ref(), &row), all[i], "row {i}");
    }
}

#[test]
fn columns_matched_by_name() {
    let (x_test, _) = synthetic(200, 5);
    let mut shuffled: Vec<Column> = x_test.columns().to_vec();
    shuffled.reverse();
    shuffled.insert(
        1,
        Column::new("unused", ColumnData::Utf8(vec![Some("x".into()); 200])),
    );
    let shuffled = Table::new(shuffled).unwrap();
    for family in Family::ALL {
        let predictor = load(&train(family).to_model("review_score").unwrap());
        assert_eq!(
            predictor.predict(&shuffled).unwrap(),
            predictor.predict(&x_test).unwrap(),
            "{family}: column order or an extra column changed predictions"
        );
    }
}

#[test]
fn missing_feature_rejected() {
    let rows = single_row(vec![
        ("x1", ColumnData::Float64(vec![1.0])),
        ("noise", ColumnData::Float64(vec![1.0])),
        ("region", ColumnData::Utf8(vec![Some("north".into())])),
    ]);
    for family in Family::ALL {
        let predictor = load(&train(family).to_model("review_score").unwrap());
        match predictor.predict(&rows) {
            Err(PredictError::MissingFeature(name)) => assert_eq!(name, "x2"),
            other => panic!("{family}: expected a missing x2, got {other:?}"),
        }
    }
}

#[test]
fn wrong_column_type_rejected() {
    let rows = single_row(vec![
        ("x1", ColumnData::Utf8(vec![Some("1.0".into())])),
        ("x2", ColumnData::Float64(vec![0.0])),
        ("noise", ColumnData::Float64(vec![1.0])),
        ("region", ColumnData::Utf8(vec![Some("north".into())])),
    ]);
    let predictor = load(
        &train(Family::LinearRegression)
            .to_model("review_score")
            .unwrap(),
    );
    match predictor.predict(&rows) {
        Err(PredictError::FeatureType { column, found, .. }) => {
            assert_eq!(column, "x1");
            assert_eq!(found, "utf8");
        }
        other => panic!("expected a type error on x1, got {other:?}"),
    }
}

#[test]
fn nan_predicts_as_training_median() {
    for family in Family::ALL {
        let model = train(family).to_model("review_score").unwrap();
        let median = model.info["medians"]["x2"].as_f64().unwrap();
        let predictor = load(&model);
        let with_nan = predict_one(predictor.as_ref(), &query(4.0, f64::NAN, Some("south")));
        let with_median = predict_one(predictor.as_ref(), &query(4.0, median, Some("south")));
        assert_eq!(with_nan, with_median, "{family}");
        assert!(with_nan.is_finite(), "{family}");
    }
}

#[test]
fn int64_numeric_column_accepted() {
    let as_int = single_row(vec![
        ("x1", ColumnData::Int64(vec![Some(3), None])),
        ("x2", ColumnData::Float64(vec![0.5, 0.5])),
        ("noise", ColumnData::Float64(vec![0.5, 0.5])),
        ("region", ColumnData::Utf8(vec![Some("east".into()); 2])),
    ]);
    for family in Family::ALL {
        let model = train(family).to_model("review_score").unwrap();
        let median = model.info["medians"]["x1"].as_f64().unwrap();
        let predictor = load(&model);
        let predicted = predictor.predict(&as_int).unwrap();
        let three = predict_one(predictor.as_ref(), &query(3.0, 0.5, Some("east")));
        let at_median = predict_one(predictor.as_ref(), &query(median, 0.5, Some("east")));
        assert_eq!(predicted, vec![three, at_median], "{family}");
    }
}

#[test]
fn unseen_level_predicts_as_unknown() {
    for family in Family::ALL {
        let predictor = load(&train(family).to_model("review_score").unwrap());
        let unseen = predict_one(predictor.as_ref(), &query(5.0, 0.0, Some("west")));
        let unknown = predict_one(predictor.as_ref(), &query(5.0, 0.0, Some("unknown")));
        let missing = predict_one(predictor.as_ref(), &query(5.0, 0.0, None));
        assert_eq!(unseen, unknown, "{family}");
        assert_eq!(missing, unknown, "{family}");
    }
}

#[test]
fn model_schema_and_info() {
    let model = train(Family::GradientBoosting)
        .to_model("review_score")
        .unwrap();
    assert_eq!(model.target, "review_score");
    let names: Vec<&str> = model.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["x1", "x2", "noise", "region"]);
    assert_eq!(model.features[0].kind, FeatureKind::Numeric);
    let FeatureKind::Categorical { levels } = &model.features[3].kind else {
        panic!("region should be categorical: {:?}", model.features[3]);
    };
    let mut sorted = levels.clone();
    sorted.sort();
    assert_eq!(sorted, ["east", "north", "south", "unknown"]);

    let info = &model.info;
    assert_eq!(info["family"], "gradient_boosting");
    assert_eq!(info["train_rows"], 3000);
    assert_eq!(info["hyperparameters"]["iterations"], 150);
    assert_eq!(info["hyperparameters"]["seed"], 42);
    let x1 = &info["feature_stats"]["x1"];
    assert_eq!(x1["type"], "numeric");
    for key in ["min", "max", "median", "p1", "p99", "mean"] {
        assert!(x1[key].is_f64(), "x1 stats lack {key}: {x1}");
    }
    assert!(x1["p1"].as_f64() < x1["p99"].as_f64());
    assert_eq!(info["feature_stats"]["x2"]["missing"], 60);
    let region = &info["feature_stats"]["region"];
    assert_eq!(region["type"], "categorical");
    assert_eq!(region["level_counts"]["unknown"], 60);
    assert_eq!(info["medians"]["x1"], x1["median"]);
    assert!(info["medians"].get("region").is_none());
}

#[test]
fn importance_ranks_noise_last() {
    for family in Family::ALL {
        let model = train(family).to_model("review_score").unwrap();
        let shares = DecodedModel::decode(&model).unwrap().feature_importance();
        let total: f64 = shares.iter().map(|(_, s)| s).sum();
        assert!(
            (total - 1.0).abs() < 1e-9,
            "{family}: shares sum to {total}"
        );
        let last = &shares.last().unwrap().0;
        assert_eq!(last, "noise", "{family}: importance {shares:?}");
    }
}

#[test]
fn zero_training_rows_rejected() {
    let (x, y) = synthetic(10, 1);
    let empty = models::tuning::take_rows(&x, &[]);
    for family in Family::ALL {
        let error = models::train(&empty, &y[..0], &quick(family), 1, &Unmonitored)
            .err()
            .unwrap();
        assert!(matches!(error, ModelError::NoTrainingRows), "{error}");
        assert!(error.to_string().contains("no training rows"), "{error}");
    }
}

#[test]
fn nan_target_rejected() {
    let (x, mut y) = synthetic(20, 1);
    y[13] = f64::NAN;
    let error = models::train(&x, &y, &quick(Family::LinearRegression), 1, &Unmonitored)
        .err()
        .unwrap();
    assert!(error.to_string().contains("row 13"), "{error}");
}

#[test]
fn unknown_flavor_rejected() {
    let mut model = train(Family::LinearRegression)
        .to_model("review_score")
        .unwrap();
    model.flavor = "svm".to_string();
    match DecodedModel::decode(&model) {
        Err(PredictError::UnknownFlavor { flavor, known }) => {
            assert_eq!(flavor, "svm");
            assert!(known.contains("gradient_boosting"), "{known}");
        }
        Err(other) => panic!("expected an unknown flavor, got {other}"),
        Ok(_) => panic!("a model of flavor svm decoded"),
    }
}

#[test]
fn corrupt_payload_rejected() {
    let mut model = train(Family::RandomForest)
        .to_model("review_score")
        .unwrap();
    model.payload.truncate(model.payload.len() / 2);
    match DecodedModel::decode(&model) {
        Err(PredictError::InvalidModel(reason)) => {
            assert!(reason.contains("random_forest"), "{reason}");
        }
        Err(other) => panic!("expected an invalid model, got {other}"),
        Ok(_) => panic!("half a payload decoded"),
    }
}

/// Builds a table with a `seller` column of 60 levels, each with its own
/// effect on the target, with the target and the orders (two rows each).
fn sellers(rows: usize, seed: u64) -> (Table, Vec<f64>, Vec<Option<String>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seller = Vec::with_capacity(rows);
    let mut x1 = Vec::with_capacity(rows);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let level = rng.random_range(0..60);
        let a: f64 = rng.random_range(0.0..1.0);
        y.push(f64::from(level % 5) + a + rng.random_range(-0.3..0.3));
        seller.push(Some(format!("seller{level:02}")));
        x1.push(a);
    }
    let orders = (0..rows).map(|i| Some(format!("order{}", i / 2))).collect();
    let table = Table::new(vec![
        Column::new("x1", ColumnData::Float64(x1)),
        Column::new("seller", ColumnData::Utf8(seller)),
    ])
    .unwrap();
    (table, y, orders)
}

#[test]
fn target_encoded_level_learned() {
    let (x, y, orders) = sellers(3000, 5);
    let (x_test, y_test, _) = sellers(1000, 6);
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let baseline = mse(&vec![mean; y_test.len()], &y_test);
    let data = models::TrainingData {
        x: &x,
        y: &y,
        groups: Some(&orders),
    };
    let encoding = models::TargetEncoding {
        columns: vec!["seller".to_string()],
        smoothing: 10.0,
        folds: 5,
        split: models::ValidationSplit::Group,
    };
    for family in Family::ALL {
        let trained =
            models::train_with(&data, &encoding, &quick(family), 42, &Unmonitored).unwrap();
        let model = trained.to_model("review_score").unwrap();
        let predictor = load(&model);
        let error = mse(&predictor.predict(&x_test).unwrap(), &y_test);
        assert!(
            error < 0.3 * baseline,
            "{family}: test MSE {error} against baseline {baseline}"
        );

        // An unseen seller predicts as one with the mean score.
        let unseen = single_row(vec![
            ("x1", ColumnData::Float64(vec![0.5])),
            ("seller", ColumnData::Utf8(vec![Some("new seller".into())])),
        ]);
        let prediction = predict_one(predictor.as_ref(), &unseen);
        assert!(
            (prediction - mean).abs() < 1.0,
            "{family}: {prediction} against mean {mean}"
        );
    }
}

#[test]
fn grouped_target_encoding_needs_orders() {
    let (x, y, _) = sellers(100, 7);
    let data = models::TrainingData {
        x: &x,
        y: &y,
        groups: None,
    };
    let encoding = models::TargetEncoding {
        columns: vec!["seller".to_string()],
        smoothing: 10.0,
        folds: 5,
        split: models::ValidationSplit::Group,
    };
    let params = quick(Family::GradientBoosting);
    let error = models::train_with(&data, &encoding, &params, 1, &Unmonitored)
        .err()
        .unwrap();
    assert!(error.to_string().contains("`order_id`"), "{error}");
    let by_rows = models::TargetEncoding {
        split: models::ValidationSplit::Random,
        ..encoding
    };
    assert!(models::train_with(&data, &by_rows, &params, 1, &Unmonitored).is_ok());
}
