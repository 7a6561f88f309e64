//! ingest_data and clean_data on the full Kaggle data, when a copy sits at
//! `../shared/data/olist` beside the repository. A clone without it skips
//! these tests with a message.

use flowrun_steps::clean::{CleanOptions, FeatureSet, SplitKind, clean};
use flowrun_steps::ingest::ingest;
use std::collections::HashSet;
use std::path::PathBuf;

fn full_data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/olist");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: the full Olist data is not at {}; get the Kaggle dataset olistbr/brazilian-ecommerce to run this test",
            dir.display()
        );
        None
    }
}

#[test]
#[cfg_attr(
    flowrun_no_full_data,
    ignore = "needs the full Olist data in ../shared/data/olist"
)]
fn full_data_join_count() {
    let Some(dir) = full_data() else { return };
    let ingested = ingest(&dir, "utf-8").unwrap();
    assert_eq!(
        ingested.table_rows,
        vec![
            ("orders", 99_441),
            ("order_items", 112_650),
            ("order_payments", 103_886),
            ("order_reviews", 99_224),
            ("products", 32_951),
            ("customers", 99_441),
            ("sellers", 3_095),
            ("category_translation", 71),
        ]
    );
    assert_eq!(ingested.orders.num_rows(), 117_329);

    // The 60 reviews with lost dates load as missing values.
    let created = ingested.orders.f64_column("review_creation_date").unwrap();
    assert!(created.iter().any(|d| d.is_nan()));
    let scores = ingested.orders.f64_column("review_score").unwrap();
    assert!(scores.iter().all(|s| (1.0..=5.0).contains(s)));
}

#[test]
#[cfg_attr(
    flowrun_no_full_data,
    ignore = "needs the full Olist data in ../shared/data/olist"
)]
fn full_data_group_split() {
    let Some(dir) = full_data() else { return };
    let orders = ingest(&dir, "utf-8").unwrap().orders;
    let options = CleanOptions {
        feature_set: FeatureSet::PostDelivery,
        split: SplitKind::Group,
        ..CleanOptions::default()
    };
    let cleaned = clean(&orders, &options).unwrap();
    assert_eq!(
        cleaned.dropped_missing_score + cleaned.dropped_invalid_score,
        0
    );
    assert_eq!(
        cleaned.x_train.num_rows() + cleaned.x_test.num_rows(),
        117_329
    );
    let ids = |y: &flowrun_artifacts::Table| -> HashSet<String> {
        y.utf8_column("order_id")
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    };
    let (train, test) = (ids(&cleaned.y_train), ids(&cleaned.y_test));
    assert!(train.is_disjoint(&test));
    let share = test.len() as f64 / (train.len() + test.len()) as f64;
    assert!((share - 0.2).abs() < 0.001, "test share of orders {share}");
}
