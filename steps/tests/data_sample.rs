//! The shipped sample in data/olist-sample: it follows its documented
//! selection rule, stays small, and runs through ingest_data and
//! clean_data with every feature set and split.

use flowrun_steps::clean::{CleanOptions, FeatureSet, SplitKind, clean};
use flowrun_steps::ingest::ingest;
use std::collections::HashSet;
use std::path::PathBuf;

fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/olist-sample")
}

/// Returns whether an order passes the selection rule stated in the
/// sample's README: the 64-bit FNV-1a hash of its id, modulo 1000, is below
/// 35.
fn selected(order_id: &str) -> bool {
    let hash = order_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    hash % 1000 < 35
}

#[test]
fn sample_is_small_and_credited() {
    let dir = sample_dir();
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        total += entry.unwrap().metadata().unwrap().len();
    }
    assert!(total < 2_000_000, "the sample takes {total} bytes");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("Brazilian E-Commerce Public Dataset by Olist"));
    assert!(readme.contains("CC BY-NC-SA 4.0"));
}

#[test]
fn sample_follows_selection_rule() {
    let ingested = ingest(&sample_dir(), "utf-8").unwrap();
    let orders = ingested.table_rows[0].1;
    assert!((3_000..=4_000).contains(&orders), "{orders} orders");
    assert_eq!(ingested.table_rows[7], ("category_translation", 71));

    let ids = ingested.orders.utf8_column("order_id").unwrap();
    let distinct: HashSet<&str> = ids.iter().flatten().map(String::as_str).collect();
    assert!(distinct.len() > 3_000, "{} joined orders", distinct.len());
    for id in distinct {
        assert!(selected(id), "order {id} does not pass the selection rule");
    }
}

#[test]
fn sample_cleans_with_every_option() {
    let orders = ingest(&sample_dir(), "utf-8").unwrap().orders;
    for feature_set in [
        FeatureSet::Basic,
        FeatureSet::OrderTime,
        FeatureSet::PostDelivery,
    ] {
        for split in [SplitKind::Group, SplitKind::Random] {
            let options = CleanOptions {
                feature_set,
                split,
                ..CleanOptions::default()
            };
            let cleaned = clean(&orders, &options).unwrap();
            assert_eq!(
                cleaned.x_train.num_rows() + cleaned.x_test.num_rows(),
                orders.num_rows(),
                "{feature_set:?} {split:?}"
            );
            assert_eq!(cleaned.x_train.column_names(), feature_set.columns());
        }
    }
}

#[test]
fn sample_group_split_disjoint_random_not() {
    let orders = ingest(&sample_dir(), "utf-8").unwrap().orders;
    let sides = |split| {
        let options = CleanOptions {
            split,
            ..CleanOptions::default()
        };
        let cleaned = clean(&orders, &options).unwrap();
        let ids = |y: &flowrun_artifacts::Table| -> HashSet<String> {
            y.utf8_column("order_id")
                .unwrap()
                .iter()
                .flatten()
                .cloned()
                .collect()
        };
        (ids(&cleaned.y_train), ids(&cleaned.y_test))
    };

    let (train, test) = sides(SplitKind::Group);
    assert!(train.is_disjoint(&test));
    // A row-wise split puts some multi-row orders on both sides, which is
    // the leak the group split exists to prevent.
    let (train, test) = sides(SplitKind::Random);
    assert!(!train.is_disjoint(&test));
}
