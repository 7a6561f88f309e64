//! The training pipeline rejects absurd hyperparameters before any step
//! runs, and `train_model` rejects a data set too small to train on.
//!
//! Each test runs the real `flowrun` binary, with the Olist steps, in a
//! temporary directory that contains a copy of `pipelines/` and
//! `data/olist-sample/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary project: the repository's pipelines and sample data, and
/// the store `.flowrun/` once something runs.
struct Project {
    dir: tempfile::TempDir,
}

/// The exit code and output of one `flowrun` invocation.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("failed to create a temp dir");
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_dir(&repository.join("pipelines"), &dir.path().join("pipelines"));
        copy_dir(
            &repository.join("data/olist-sample"),
            &dir.path().join("data/olist-sample"),
        );
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn store(&self) -> PathBuf {
        self.path().join(".flowrun")
    }

    /// Runs `flowrun` with `args` in the project and waits for it.
    fn run(&self, args: &[&str]) -> Outcome {
        let output = Command::new(env!("CARGO_BIN_EXE_flowrun"))
            .args(args)
            .current_dir(self.path())
            .env_remove("FLOWRUN_STORE")
            .env_remove("FLOWRUN_LOG")
            .output()
            .expect("failed to start flowrun");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs the training pipeline with `--set` for each of `overrides`.
    fn train(&self, overrides: &[&str]) -> Outcome {
        let mut args = vec!["pipelines/training.yaml"];
        for item in overrides {
            args.extend(["--set", item]);
        }
        self.run(&args)
    }
}

/// An absurd value and what the rejection must name.
struct Absurd {
    overrides: &'static [&'static str],
    param: &'static str,
    /// The value as the message shows it.
    displayed_value: &'static str,
    range: &'static str,
}

const ABSURD: [Absurd; 10] = [
    Absurd {
        overrides: &["train_model.iterations=100000000000"],
        param: "iterations",
        displayed_value: "100000000000",
        range: "between 1 and 100000",
    },
    Absurd {
        overrides: &[
            "model=random_forest",
            "train_model.forest_trees=100000000000",
        ],
        param: "forest_trees",
        displayed_value: "100000000000",
        range: "between 1 and 10000",
    },
    Absurd {
        overrides: &["train_model.learning_rate=nan"],
        param: "learning_rate",
        displayed_value: "NaN",
        range: "between 1e-6 and 1.0",
    },
    Absurd {
        overrides: &["train_model.learning_rate=0"],
        param: "learning_rate",
        displayed_value: "0.0",
        range: "between 1e-6 and 1.0",
    },
    Absurd {
        overrides: &["train_model.learning_rate=2"],
        param: "learning_rate",
        displayed_value: "2.0",
        range: "between 1e-6 and 1.0",
    },
    Absurd {
        overrides: &["train_model.iterations=-5"],
        param: "iterations",
        displayed_value: "-5",
        range: "between 1 and 100000",
    },
    Absurd {
        overrides: &["train_model.max_depth=0"],
        param: "max_depth",
        displayed_value: "0",
        range: "between 1 and 64",
    },
    Absurd {
        overrides: &["clean_data.test_size=1.5"],
        param: "test_size",
        displayed_value: "1.5",
        range: "between 0.01 and 0.99",
    },
    Absurd {
        overrides: &["tuning_trials=-1"],
        param: "tuning_trials",
        displayed_value: "-1",
        range: "between 0 and 1000",
    },
    Absurd {
        overrides: &["seed=-7"],
        param: "seed",
        displayed_value: "-7",
        range: "between 0 and 9223372036854775807",
    },
];

#[test]
fn absurd_values_rejected_before_running() {
    let project = Project::new();
    for case in &ABSURD {
        let out = project.train(case.overrides);
        let label = format!("--set {}", case.overrides.join(" --set "));
        assert_eq!(out.code, 2, "{label}: expected exit code 2\n{}", out.all());
        assert!(
            !project.store().exists(),
            "{label}: a rejected pipeline must not create the store\n{}",
            out.all()
        );
        assert!(
            out.stderr.contains("nothing was run"),
            "{label}\n{}",
            out.all()
        );
        let named = format!("parameter `{}`", case.param);
        assert!(out.stderr.contains(&named), "{label}\n{}", out.all());
        let reason = format!("must be {}, but it is {}", case.range, case.displayed_value);
        assert!(out.stderr.contains(&reason), "{label}\n{}", out.all());
    }
}

#[test]
fn every_error_reported_at_once() {
    let project = Project::new();
    let out = project.train(&[
        "train_model.subsample=0",
        "train_model.colsample_bytree=1.5",
        "train_model.forest_max_features=-1",
    ]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(!project.store().exists(), "{}", out.all());
    for param in ["subsample", "colsample_bytree", "forest_max_features"] {
        assert!(
            out.stderr.contains(&format!("parameter `{param}`")),
            "{param}\n{}",
            out.all()
        );
    }
    assert!(out.stderr.contains("3 errors"), "{}", out.all());
}

#[test]
fn range_bounds_accepted() {
    let project = Project::new();
    let out = project.run(&[
        "plan",
        "pipelines/training.yaml",
        "--set",
        "train_model.iterations=100000",
        "--set",
        "train_model.forest_trees=10000",
        "--set",
        "train_model.max_depth=64",
        "--set",
        "train_model.max_leaves=65536",
        "--set",
        "train_model.learning_rate=1e-6",
        "--set",
        "train_model.subsample=1",
        "--set",
        "clean_data.test_size=0.01",
        "--set",
        "tuning_trials=1000",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn shipped_sample_trains() {
    let project = Project::new();
    let out = project.train(&[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("Metrics of evaluation"),
        "{}",
        out.all()
    );
}

/// Writes the eight Olist tables, as plain CSV, for `orders` delivered
/// orders with one item and one payment each, and returns the folder.
fn write_tiny_data(project: &Project, orders: usize) -> PathBuf {
    let dir = project.path().join("tiny");
    std::fs::create_dir_all(&dir).unwrap();
    let mut tables: Vec<(&str, String)> = vec![
        (
            "olist_orders_dataset",
            "order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,\
             order_delivered_carrier_date,order_delivered_customer_date,\
             order_estimated_delivery_date\n"
                .to_string(),
        ),
        (
            "olist_customers_dataset",
            "customer_id,customer_unique_id,customer_zip_code_prefix,customer_city,\
             customer_state\n"
                .to_string(),
        ),
        (
            "olist_order_items_dataset",
            "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,\
             freight_value\n"
                .to_string(),
        ),
        (
            "olist_order_payments_dataset",
            "order_id,payment_sequential,payment_type,payment_installments,payment_value\n"
                .to_string(),
        ),
        (
            "olist_order_reviews_dataset",
            "review_id,order_id,review_score,review_comment_title,review_comment_message,\
             review_creation_date,review_answer_timestamp\n"
                .to_string(),
        ),
    ];
    for i in 0..orders {
        let day = 1 + i % 28;
        let price = 10.0 + i as f64;
        let rows = [
            format!(
                "order{i},customer{i},delivered,2017-05-{day:02} 10:00:00,\
                 2017-05-{day:02} 10:15:00,2017-06-{day:02} 09:00:00,\
                 2017-06-{day:02} 18:00:00,2017-06-28 00:00:00"
            ),
            format!("customer{i},person{i},01000,sao paulo,SP"),
            format!(
                "order{i},1,product{},seller{},2017-05-{day:02} 12:00:00,{price:.2},5.50",
                i % 3,
                i % 2
            ),
            format!("order{i},1,credit_card,1,{:.2}", price + 5.5),
            format!(
                "review{i},order{i},{},,,2017-06-{day:02} 00:00:00,2017-06-{day:02} 12:00:00",
                1 + i % 5
            ),
        ];
        for ((_, text), row) in tables.iter_mut().zip(rows) {
            writeln!(text, "{row}").unwrap();
        }
    }
    let mut products = String::from(
        "product_id,product_category_name,product_name_lenght,product_description_lenght,\
         product_photos_qty,product_weight_g,product_length_cm,product_height_cm,\
         product_width_cm\n",
    );
    for p in 0..3 {
        writeln!(products, "product{p},beleza_saude,40,300,1,500,20,10,15").unwrap();
    }
    tables.push(("olist_products_dataset", products));
    tables.push((
        "olist_sellers_dataset",
        "seller_id,seller_zip_code_prefix,seller_city,seller_state\n\
         seller0,13844,mogi guacu,SP\nseller1,01000,sao paulo,SP\n"
            .to_string(),
    ));
    tables.push((
        "product_category_name_translation",
        "product_category_name,product_category_name_english\nbeleza_saude,health_beauty\n"
            .to_string(),
    ));
    for (name, text) in tables {
        std::fs::write(dir.join(format!("{name}.csv")), text).unwrap();
    }
    dir
}

#[test]
fn tiny_data_fails_in_train_model() {
    let project = Project::new();
    // 3 orders: the test part takes one and leaves 2 training rows.
    let data = write_tiny_data(&project, 3);
    let data_dir = format!("data_dir={}", data.display());
    let out = project.train(&[&data_dir]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("too few training rows: 2; train_model needs at least 20"),
        "{}",
        out.all()
    );
    assert!(
        !out.stderr.contains("Metrics of evaluation"),
        "nothing is evaluated\n{}",
        out.all()
    );
}

#[test]
fn minimum_rows_train() {
    let project = Project::new();
    // 25 orders: the test part takes 5 and leaves exactly 20 training rows.
    let data = write_tiny_data(&project, 25);
    let data_dir = format!("data_dir={}", data.display());
    let out = project.train(&[&data_dir]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("test_rows 5"), "{}", out.all());
}
