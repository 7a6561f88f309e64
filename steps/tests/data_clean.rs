//! clean_data on synthetic `orders` tables: feature sets, derived values,
//! fill values from the training part, the two splits, input errors, and
//! that nothing of the test part reaches a model trained on the output.

use flowrun_artifacts::{Artifact, Column, ColumnData, FeatureKind, Model, Table};
use flowrun_engine::{CancelToken, ParamValue, Step, StepContext};
use flowrun_steps::clean::{
    BASIC_FEATURES, CleanData, CleanError, CleanOptions, Cleaned, FeatureSet, SplitKind,
    UNKNOWN_LEVEL, clean,
};
use flowrun_steps::models::gradient_boosting::BoostingParams;
use flowrun_steps::models::{
    self, Hyperparameters, TargetEncoding, TrainingData, Unmonitored, ValidationSplit,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const DAY: f64 = 86_400.0;
/// 2017-10-02 10:56:33 UTC, a Monday.
const MONDAY: f64 = 1_506_941_793.0;

/// One row of a synthetic joined table. The other basic columns are
/// derived from `price`.
#[derive(Clone)]
struct Row {
    order_id: String,
    item: f64,
    seller: &'static str,
    price: f64,
    freight: f64,
    score: f64,
    status: &'static str,
    purchase: f64,
    customer_state: Option<&'static str>,
    seller_state: Option<&'static str>,
    category: Option<&'static str>,
    category_english: Option<&'static str>,
    payment_type: Option<&'static str>,
}

fn row(order: usize) -> Row {
    Row {
        order_id: format!("order-{order:03}"),
        item: 1.0,
        seller: "s1",
        price: 10.0 + order as f64,
        freight: 5.0,
        score: (order % 5 + 1) as f64,
        status: "delivered",
        purchase: MONDAY + order as f64 * DAY,
        customer_state: Some("SP"),
        seller_state: Some("SP"),
        category: Some("artes"),
        category_english: Some("art"),
        payment_type: Some("credit_card"),
    }
}

/// Builds a table with every column the three feature sets read.
fn table(rows: &[Row]) -> Table {
    let floats = |name: &str, value: &dyn Fn(&Row) -> f64| {
        Column::new(name, ColumnData::Float64(rows.iter().map(value).collect()))
    };
    let texts = |name: &str, value: &dyn Fn(&Row) -> Option<String>| {
        Column::new(name, ColumnData::Utf8(rows.iter().map(value).collect()))
    };
    let owned = |value: Option<&str>| value.map(str::to_string);
    let mut columns = vec![
        texts("order_id", &|r| Some(r.order_id.clone())),
        texts("order_status", &|r| Some(r.status.to_string())),
        floats("order_purchase_timestamp", &|r| r.purchase),
        floats("order_delivered_carrier_date", &|r| r.purchase + DAY),
        floats("order_delivered_customer_date", &|r| {
            if r.status == "delivered" {
                r.purchase + 6.0 * DAY
            } else {
                f64::NAN
            }
        }),
        floats("order_estimated_delivery_date", &|r| {
            r.purchase + 10.0 * DAY
        }),
        floats("order_item_id", &|r| r.item),
        texts("seller_id", &|r| Some(r.seller.to_string())),
        floats("review_score", &|r| r.score),
        texts("customer_state", &|r| owned(r.customer_state)),
        texts("seller_state", &|r| owned(r.seller_state)),
        texts("product_category_name", &|r| owned(r.category)),
        texts("product_category_name_english", &|r| {
            owned(r.category_english)
        }),
        texts("payment_type", &|r| owned(r.payment_type)),
    ];
    for name in BASIC_FEATURES {
        columns.push(match name {
            "price" => floats(name, &|r| r.price),
            "freight_value" => floats(name, &|r| r.freight),
            _ => floats(name, &|r| r.price * 2.0 + 1.0),
        });
    }
    Table::new(columns).unwrap()
}

/// `orders` orders with 1 to 3 rows each.
fn many_orders(orders: usize) -> Vec<Row> {
    (0..orders)
        .flat_map(|order| {
            (0..order % 3 + 1).map(move |item| Row {
                item: item as f64 + 1.0,
                ..row(order)
            })
        })
        .collect()
}

fn options(feature_set: FeatureSet, split: SplitKind) -> CleanOptions {
    CleanOptions {
        feature_set,
        split,
        ..CleanOptions::default()
    }
}

fn order_ids(y: &Table) -> Vec<String> {
    y.utf8_column("order_id")
        .unwrap()
        .iter()
        .map(|id| id.clone().unwrap())
        .collect()
}

/// Returns the value of a numeric feature in the first row of `order_id`,
/// looking in both parts.
fn feature_of(cleaned: &Cleaned, order_id: &str, feature: &str) -> f64 {
    for (x, y) in [
        (&cleaned.x_train, &cleaned.y_train),
        (&cleaned.x_test, &cleaned.y_test),
    ] {
        if let Some(row) = order_ids(y).iter().position(|id| id == order_id) {
            return x.f64_column(feature).unwrap()[row];
        }
    }
    panic!("order {order_id} is in neither part");
}

fn level_of(cleaned: &Cleaned, order_id: &str, feature: &str) -> String {
    for (x, y) in [
        (&cleaned.x_train, &cleaned.y_train),
        (&cleaned.x_test, &cleaned.y_test),
    ] {
        if let Some(row) = order_ids(y).iter().position(|id| id == order_id) {
            return x.utf8_column(feature).unwrap()[row].clone().unwrap();
        }
    }
    panic!("order {order_id} is in neither part");
}

#[test]
fn feature_sets_have_their_columns() {
    let mut rows = many_orders(30);
    rows[0].price = f64::NAN;
    rows[1].customer_state = None;
    rows[2].purchase = f64::NAN;
    let orders = table(&rows);

    for (set, count) in [
        (FeatureSet::Basic, 12),
        (FeatureSet::OrderTime, 25),
        (FeatureSet::PostDelivery, 29),
    ] {
        let cleaned = clean(&orders, &options(set, SplitKind::Group)).unwrap();
        for x in [&cleaned.x_train, &cleaned.x_test] {
            assert_eq!(x.column_names(), set.columns(), "{set:?}");
            assert_eq!(x.columns().len(), count, "{set:?}");
            for column in x.columns() {
                match &column.data {
                    ColumnData::Float64(values) => {
                        assert!(!FeatureSet::is_categorical(&column.name), "{}", column.name);
                        assert!(
                            values.iter().all(|v| !v.is_nan()),
                            "{} has NaN",
                            column.name
                        );
                    }
                    ColumnData::Utf8(values) => {
                        assert!(FeatureSet::is_categorical(&column.name), "{}", column.name);
                        assert!(
                            values.iter().all(Option::is_some),
                            "{} has None",
                            column.name
                        );
                    }
                    other => panic!("{} is {}", column.name, other.type_name()),
                }
            }
        }
        for y in [&cleaned.y_train, &cleaned.y_test] {
            assert_eq!(y.column_names(), ["review_score", "order_id"]);
            assert!(y.f64_column("review_score").is_ok());
        }
    }
}

#[test]
fn order_time_values_derived() {
    let mut rows = vec![
        Row {
            seller: "s1",
            price: 50.0,
            freight: 10.0,
            ..row(0)
        },
        Row {
            item: 2.0,
            seller: "s2",
            seller_state: Some("MG"),
            ..row(0)
        },
    ];
    // A second payment repeats item 2, which must not count as a third item.
    rows.push(rows[1].clone());
    rows.push(Row {
        price: 0.0,
        category_english: None,
        category: Some("portateis_cozinha"),
        ..row(1)
    });
    rows.push(Row {
        category_english: None,
        category: None,
        payment_type: None,
        ..row(2)
    });
    rows.extend(many_orders(10).into_iter().skip(5));
    let cleaned = clean(
        &table(&rows),
        &options(FeatureSet::OrderTime, SplitKind::Group),
    )
    .unwrap();

    assert_eq!(feature_of(&cleaned, "order-000", "order_item_count"), 2.0);
    assert_eq!(feature_of(&cleaned, "order-000", "order_seller_count"), 2.0);
    assert_eq!(feature_of(&cleaned, "order-001", "order_item_count"), 1.0);
    assert_eq!(
        feature_of(&cleaned, "order-000", "promised_delivery_days"),
        10.0
    );
    assert_eq!(
        feature_of(&cleaned, "order-000", "freight_price_ratio"),
        0.2
    );
    assert_eq!(feature_of(&cleaned, "order-000", "same_state"), 1.0);
    assert_eq!(feature_of(&cleaned, "order-000", "purchase_month"), 10.0);
    assert_eq!(feature_of(&cleaned, "order-000", "purchase_weekday"), 0.0);
    assert_eq!(feature_of(&cleaned, "order-002", "purchase_weekday"), 2.0);
    assert_eq!(
        feature_of(&cleaned, "order-002", "purchase_timestamp"),
        MONDAY + 2.0 * DAY
    );
    assert_eq!(level_of(&cleaned, "order-000", "seller_id"), "s1");
    assert_eq!(level_of(&cleaned, "order-000", "product_category"), "art");
    assert_eq!(
        level_of(&cleaned, "order-001", "product_category"),
        "portateis_cozinha"
    );
    assert_eq!(
        level_of(&cleaned, "order-002", "product_category"),
        UNKNOWN_LEVEL
    );
    assert_eq!(
        level_of(&cleaned, "order-002", "payment_type"),
        UNKNOWN_LEVEL
    );
}

#[test]
fn post_delivery_values_derived() {
    let mut rows = many_orders(12);
    rows.push(Row {
        status: "canceled",
        ..row(40)
    });
    let cleaned = clean(
        &table(&rows),
        &options(FeatureSet::PostDelivery, SplitKind::Group),
    )
    .unwrap();

    assert_eq!(feature_of(&cleaned, "order-001", "delivery_days"), 6.0);
    assert_eq!(
        feature_of(&cleaned, "order-001", "delivery_delay_days"),
        -4.0
    );
    assert_eq!(
        feature_of(&cleaned, "order-001", "carrier_handover_days"),
        1.0
    );
    assert_eq!(feature_of(&cleaned, "order-001", "delivered"), 1.0);
    assert_eq!(feature_of(&cleaned, "order-040", "delivered"), 0.0);
    // A canceled order has no delivery date, so it gets the training median.
    assert_eq!(feature_of(&cleaned, "order-040", "delivery_days"), 6.0);
}

#[test]
fn fill_uses_training_median_only() {
    let rows = many_orders(40);
    let options = options(FeatureSet::Basic, SplitKind::Group);
    let first = clean(&table(&rows), &options).unwrap();
    let test_orders: HashSet<String> = order_ids(&first.y_test).into_iter().collect();

    // The split depends only on the order ids and the seed, so the same
    // orders stay in the test part when their values change. Give the test
    // rows a huge price, and one row of each part a missing price.
    let mut rows = rows;
    for row in rows
        .iter_mut()
        .filter(|r| test_orders.contains(&r.order_id))
    {
        row.price = 1e9;
    }
    let train_gap = rows
        .iter()
        .position(|r| !test_orders.contains(&r.order_id))
        .unwrap();
    let test_gap = rows
        .iter()
        .position(|r| test_orders.contains(&r.order_id))
        .unwrap();
    rows[train_gap].price = f64::NAN;
    rows[test_gap].price = f64::NAN;
    let cleaned = clean(&table(&rows), &options).unwrap();
    assert_eq!(order_ids(&cleaned.y_test), order_ids(&first.y_test));

    let mut train_prices: Vec<f64> = rows
        .iter()
        .filter(|r| !test_orders.contains(&r.order_id) && !r.price.is_nan())
        .map(|r| r.price)
        .collect();
    train_prices.sort_by(f64::total_cmp);
    let n = train_prices.len();
    let expected = if n % 2 == 1 {
        train_prices[n / 2]
    } else {
        (train_prices[n / 2 - 1] + train_prices[n / 2]) / 2.0
    };
    assert!(
        expected < 100.0,
        "the median of training prices is {expected}"
    );

    let fill = cleaned
        .medians
        .iter()
        .find(|(name, _)| *name == "price")
        .unwrap()
        .1;
    assert_eq!(fill, expected);
    let train_price = cleaned.x_train.f64_column("price").unwrap();
    let test_price = cleaned.x_test.f64_column("price").unwrap();
    assert_eq!(
        train_price[0], expected,
        "the first training row had no price"
    );
    assert_eq!(test_price[0], expected, "the first test row had no price");
    assert!(test_price[1..].iter().all(|&p| p == 1e9));
}

#[test]
fn group_split_keeps_orders_whole() {
    let rows = many_orders(50);
    let cleaned = clean(&table(&rows), &options(FeatureSet::Basic, SplitKind::Group)).unwrap();
    let train: HashSet<String> = order_ids(&cleaned.y_train).into_iter().collect();
    let test: HashSet<String> = order_ids(&cleaned.y_test).into_iter().collect();

    assert!(
        train.is_disjoint(&test),
        "orders on both sides: {:?}",
        train.intersection(&test).collect::<Vec<_>>()
    );
    assert_eq!(test.len(), 10, "ceil(50 × 0.2) orders in the test part");
    assert_eq!(train.len(), 40);
    assert_eq!(
        cleaned.x_train.num_rows() + cleaned.x_test.num_rows(),
        rows.len()
    );
    assert_eq!(cleaned.x_train.num_rows(), cleaned.y_train.num_rows());
    assert_eq!(cleaned.x_test.num_rows(), cleaned.y_test.num_rows());
}

#[test]
fn random_split_splits_rows() {
    let rows = many_orders(50);
    let cleaned = clean(
        &table(&rows),
        &options(FeatureSet::Basic, SplitKind::Random),
    )
    .unwrap();
    let expected_test = (rows.len() as f64 * 0.2).ceil() as usize;
    assert_eq!(cleaned.x_test.num_rows(), expected_test);
    assert_eq!(cleaned.x_train.num_rows(), rows.len() - expected_test);
}

#[test]
fn rows_keep_input_order() {
    let rows = many_orders(30);
    for split in [SplitKind::Group, SplitKind::Random] {
        let cleaned = clean(&table(&rows), &options(FeatureSet::Basic, split)).unwrap();
        for (x, y) in [
            (&cleaned.x_train, &cleaned.y_train),
            (&cleaned.x_test, &cleaned.y_test),
        ] {
            // Prices and order ids both grow with the input row.
            let prices = x.f64_column("price").unwrap();
            assert!(prices.is_sorted(), "{split:?}");
            assert!(order_ids(y).is_sorted(), "{split:?}");
        }
    }
}

#[test]
fn same_seed_same_split() {
    let orders = table(&many_orders(60));
    for split in [SplitKind::Group, SplitKind::Random] {
        let first = clean(&orders, &options(FeatureSet::OrderTime, split)).unwrap();
        let second = clean(&orders, &options(FeatureSet::OrderTime, split)).unwrap();
        assert_eq!(first.x_train, second.x_train);
        assert_eq!(first.x_test, second.x_test);
        assert_eq!(first.y_train, second.y_train);
        assert_eq!(first.y_test, second.y_test);

        let other_seed = CleanOptions {
            seed: 7,
            ..options(FeatureSet::OrderTime, split)
        };
        let third = clean(&orders, &other_seed).unwrap();
        assert_ne!(first.y_test, third.y_test, "{split:?}");
    }
}

#[test]
fn unusable_scores_dropped_and_counted() {
    let mut rows = many_orders(20);
    rows[0].score = f64::NAN;
    rows[1].score = f64::NAN;
    rows[2].score = 7.0;
    let cleaned = clean(&table(&rows), &options(FeatureSet::Basic, SplitKind::Group)).unwrap();
    assert_eq!(cleaned.dropped_missing_score, 2);
    assert_eq!(cleaned.dropped_invalid_score, 1);
    assert_eq!(
        cleaned.x_train.num_rows() + cleaned.x_test.num_rows(),
        rows.len() - 3
    );
    for y in [&cleaned.y_train, &cleaned.y_test] {
        let scores = y.f64_column("review_score").unwrap();
        assert!(scores.iter().all(|s| (1.0..=5.0).contains(s)));
    }
}

#[test]
fn no_rows_no_training_rows() {
    let error = clean(&table(&[]), &CleanOptions::default()).unwrap_err();
    assert!(error.to_string().starts_with("no training rows"), "{error}");

    let rows: Vec<Row> = (0..5)
        .map(|order| Row {
            score: f64::NAN,
            ..row(order)
        })
        .collect();
    let error = clean(&table(&rows), &CleanOptions::default()).unwrap_err();
    assert!(matches!(error, CleanError::NoTrainingRows(_)));
    assert!(error.to_string().contains("all 5 rows"), "{error}");
}

#[test]
fn too_few_orders_to_split() {
    let rows: Vec<Row> = (0..3)
        .map(|item| Row {
            item: item as f64 + 1.0,
            ..row(0)
        })
        .collect();
    let error = clean(&table(&rows), &options(FeatureSet::Basic, SplitKind::Group)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("too few orders"), "{message}");
    assert!(message.contains("found 1, need at least 2"), "{message}");

    // A row-wise split of the same three rows works.
    let cleaned = clean(
        &table(&rows),
        &options(FeatureSet::Basic, SplitKind::Random),
    )
    .unwrap();
    assert_eq!(cleaned.x_test.num_rows(), 1);
}

#[test]
fn unknown_names_list_valid_ones() {
    let error = FeatureSet::parse("everything").unwrap_err().to_string();
    assert!(
        error.contains("unknown feature set `everything`"),
        "{error}"
    );
    assert!(
        error.contains("basic, order_time, post_delivery"),
        "{error}"
    );
    let error = SplitKind::parse("stratified").unwrap_err().to_string();
    assert!(error.contains("unknown split `stratified`"), "{error}");
    assert!(error.contains("random, group"), "{error}");
}

#[test]
fn missing_column_names_feature_set() {
    let orders = table(&many_orders(10));
    let columns = orders
        .into_columns()
        .into_iter()
        .filter(|c| c.name != "seller_state")
        .collect();
    let orders = Table::new(columns).unwrap();
    assert!(clean(&orders, &options(FeatureSet::Basic, SplitKind::Group)).is_ok());
    let message = clean(&orders, &options(FeatureSet::OrderTime, SplitKind::Group))
        .unwrap_err()
        .to_string();
    assert!(message.contains("no column `seller_state`"), "{message}");
    assert!(message.contains("feature set `order_time`"), "{message}");
}

fn run_step(
    orders: Table,
    params: &[(&str, ParamValue)],
) -> Result<BTreeMap<String, Artifact>, String> {
    let mut all = BTreeMap::from([
        (
            "feature_set".to_string(),
            ParamValue::String("order_time".into()),
        ),
        ("split".to_string(), ParamValue::String("group".into())),
        ("test_size".to_string(), ParamValue::Float(0.2)),
        ("seed".to_string(), ParamValue::Int(42)),
    ]);
    for (name, value) in params {
        all.insert(name.to_string(), value.clone());
    }
    let inputs = BTreeMap::from([("orders".to_string(), Arc::new(Artifact::Table(orders)))]);
    let cancel = CancelToken::new();
    let dir = tempfile::tempdir().unwrap();
    let ctx = StepContext::standalone("clean", &all, &inputs, &cancel, dir.path());
    CleanData::new()
        .run(&ctx)
        .map(|outputs| outputs.artifacts)
        .map_err(|error| error.to_string())
}

#[test]
fn step_outputs_four_tables() {
    let outputs = run_step(table(&many_orders(20)), &[]).unwrap();
    assert_eq!(
        outputs.keys().collect::<Vec<_>>(),
        ["x_test", "x_train", "y_test", "y_train"]
    );
    let Some(Artifact::Table(x_train)) = outputs.get("x_train") else {
        panic!("x_train is not a table");
    };
    assert_eq!(x_train.column_names(), FeatureSet::OrderTime.columns());
}

#[test]
fn step_rejects_bad_parameters() {
    let error = run_step(
        table(&many_orders(20)),
        &[("feature_set", ParamValue::String("all".into()))],
    )
    .unwrap_err();
    assert!(
        error.contains("basic, order_time, post_delivery"),
        "{error}"
    );

    let error = run_step(
        table(&many_orders(20)),
        &[("test_size", ParamValue::Float(1.5))],
    )
    .unwrap_err();
    assert!(
        error.contains("test_size must be greater than 0 and less than 1, got 1.5"),
        "{error}"
    );
}

/// Cleans `orders` into order_time features with a group split, and trains
/// gradient boosting with `seller_id` encoded by its mean target on the
/// training part.
fn train_on(orders: &Table) -> (Model, Vec<String>) {
    let cleaned = clean(orders, &options(FeatureSet::OrderTime, SplitKind::Group)).unwrap();
    let data = TrainingData {
        x: &cleaned.x_train,
        y: cleaned.y_train.f64_column("review_score").unwrap(),
        groups: Some(cleaned.y_train.utf8_column("order_id").unwrap()),
    };
    let encoding = TargetEncoding {
        columns: vec!["seller_id".to_string()],
        smoothing: 2.0,
        folds: 3,
        split: ValidationSplit::Group,
    };
    let params = Hyperparameters::GradientBoosting(BoostingParams {
        iterations: 20,
        min_leaf_weight: 2.0,
        ..BoostingParams::default()
    });
    let model = models::train_with(&data, &encoding, &params, 42, &Unmonitored)
        .unwrap()
        .to_model("review_score")
        .unwrap();
    (model, order_ids(&cleaned.y_test))
}

#[test]
fn test_part_never_reaches_model() {
    const SELLERS: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
    let rows: Vec<Row> = many_orders(80)
        .into_iter()
        .enumerate()
        .map(|(i, row)| Row {
            seller: SELLERS[i % SELLERS.len()],
            ..row
        })
        .collect();
    let (model, test_orders) = train_on(&table(&rows));
    assert!(
        matches!(&model.features.iter().find(|f| f.name == "seller_id").unwrap().kind,
            FeatureKind::Categorical { levels } if levels.len() == SELLERS.len()),
        "seller_id should be encoded from its 5 training levels"
    );

    // New scores and sellers in the test part leave the model as it was.
    let changed_test: Vec<Row> = rows
        .iter()
        .map(|row| {
            if test_orders.contains(&row.order_id) {
                Row {
                    score: 6.0 - row.score,
                    seller: "s9",
                    ..row.clone()
                }
            } else {
                row.clone()
            }
        })
        .collect();
    let (unchanged, _) = train_on(&table(&changed_test));
    assert_eq!(unchanged.payload, model.payload);
    assert_eq!(unchanged.info, model.info);

    // A new score in the training part changes it, so the check can fail.
    let mut changed_train = rows.clone();
    let train_row = rows
        .iter()
        .position(|row| !test_orders.contains(&row.order_id))
        .unwrap();
    changed_train[train_row].score = 6.0 - rows[train_row].score;
    let (changed, _) = train_on(&table(&changed_train));
    assert_ne!(changed.payload, model.payload);
}
