//! Runs ingest_data, clean_data, train_model and evaluation on a folder of
//! Olist CSV files and prints the test MSE and the time of each stage, for
//! choosing features and hyperparameter defaults and checking accuracy
//! targets:
//!
//! ```text
//! cargo build --release -p flowrun-steps --example train_full
//! target/release/examples/train_full ../shared/data/olist order_time group \
//!     gradient_boosting [seeds=42,43,44] [drop=column,...] [name=value ...]
//! ```
//!
//! `seeds=` runs clean_data and train_model once per seed (the seed sets
//! the split and training) after a single ingest, and prints the MSE of each
//! and their mean. `drop=` removes feature columns from x_train and x_test
//! before training, to measure what a feature adds. Every other
//! `name=value` sets a train_model parameter (for example `iterations=400`
//! or `tuning_trials=8`). The steps run as the engine runs them, through
//! their `Step::run` with a standalone context. With `SINGLE_ROW` set in
//! the environment, it also times one-row predictions as the server makes
//! them.
//!
//! The data is the Brazilian E-Commerce Public Dataset by Olist, licensed
//! CC BY-NC-SA 4.0.

use flowrun_artifacts::{Artifact, Model, Table};
use flowrun_engine::{CancelToken, ParamValue, Step, StepContext, StepSignature};
use flowrun_steps::clean::{CleanOptions, FeatureSet, SplitKind, clean};
use flowrun_steps::evaluate::Evaluation;
use flowrun_steps::ingest::ingest;
use flowrun_steps::models::load_predictor;
use flowrun_steps::models::tuning::take_rows;
use flowrun_steps::train::TrainModel;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

type Failure = Box<dyn std::error::Error>;

/// Returns the CPU seconds this process has used on all its threads, from
/// `/proc/self/stat` (Linux, 100 clock ticks per second), or NaN elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // The fields after the command name in brackets start with the state;
    // user and system time are the 12th and 13th of them.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |k: usize| fields.get(k).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Returns the signature's defaults with `overrides` (`name=value`) applied.
fn params(
    signature: &StepSignature,
    overrides: &[String],
) -> Result<BTreeMap<String, ParamValue>, Failure> {
    let mut values: BTreeMap<String, ParamValue> = signature
        .params
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.default.clone()?)))
        .collect();
    for item in overrides {
        let (name, text) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}` is not name=value"))?;
        let spec = signature
            .find_param(name)
            .ok_or_else(|| format!("train_model has no parameter `{name}`"))?;
        values.insert(name.to_string(), ParamValue::parse_as(text, spec.ty)?);
    }
    Ok(values)
}

fn run_step(
    step: &dyn Step,
    params: &BTreeMap<String, ParamValue>,
    inputs: BTreeMap<String, Arc<Artifact>>,
) -> Result<BTreeMap<String, Artifact>, Failure> {
    let cancel = CancelToken::new();
    let store = std::env::temp_dir();
    let ctx = StepContext::standalone(&step.signature().name, params, &inputs, &cancel, &store);
    Ok(step.run(&ctx)?.artifacts)
}

/// Returns the mean time of predicting one-row tables with the model's
/// predictor, as the server does per request, over the first 20,000 test
/// rows (repeated when there are fewer).
fn single_row_micros(model: &Model, x_test: &Table) -> Result<f64, Failure> {
    let predictor = load_predictor(model)?;
    let rows: Vec<Table> = (0..x_test.num_rows().min(1000))
        .map(|i| take_rows(x_test, &[i]))
        .collect();
    if rows.is_empty() {
        return Ok(f64::NAN);
    }
    let requests = 20_000;
    let started = Instant::now();
    let mut checksum = 0.0;
    for i in 0..requests {
        checksum += predictor.predict(&rows[i % rows.len()])?[0];
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(checksum.is_finite(), "a prediction is not finite");
    Ok(elapsed * 1e6 / requests as f64)
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, feature_set, split, model, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: train_full <data dir> <feature set> <split> <model> [name=value ...]".into(),
        );
    };
    let mut seeds = vec![42u64];
    let mut dropped: Vec<String> = Vec::new();
    let mut overrides = Vec::new();
    for item in rest {
        if let Some(list) = item.strip_prefix("seeds=") {
            seeds = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
        } else if let Some(list) = item.strip_prefix("drop=") {
            dropped = list.split(',').map(str::to_string).collect();
        } else {
            overrides.push(item.clone());
        }
    }

    let started = Instant::now();
    let ingested = ingest(Path::new(dir), "utf-8")?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    println!("seconds: ingest {ingest_seconds:.2}");
    let mut mses = Vec::new();
    for seed in seeds {
        let mut overrides = overrides.clone();
        overrides.push(format!("seed={seed}"));
        let mse = run_seed(
            &ingested.orders,
            feature_set,
            split,
            model,
            seed,
            &overrides,
            &dropped,
        )?;
        mses.push(mse);
    }
    let mean = mses.iter().sum::<f64>() / mses.len() as f64;
    let text: Vec<String> = mses.iter().map(|m| format!("{m:.4}")).collect();
    println!("mse per seed: {} mean {mean:.4}", text.join(" "));
    Ok(())
}

fn drop_columns(table: Table, dropped: &[String]) -> Result<Table, Failure> {
    let kept = table
        .into_columns()
        .into_iter()
        .filter(|c| !dropped.contains(&c.name))
        .collect();
    Ok(Table::new(kept)?)
}

fn run_seed(
    orders: &Table,
    feature_set: &str,
    split: &str,
    model: &str,
    seed: u64,
    overrides: &[String],
    dropped: &[String],
) -> Result<f64, Failure> {
    let started = Instant::now();
    let options = CleanOptions {
        feature_set: FeatureSet::parse(feature_set)?,
        split: SplitKind::parse(split)?,
        seed,
        ..CleanOptions::default()
    };
    let cleaned = clean(orders, &options)?;
    let clean_seconds = started.elapsed().as_secs_f64();
    let x_train = drop_columns(cleaned.x_train, dropped)?;
    let x_test = drop_columns(cleaned.x_test, dropped)?;

    let started = Instant::now();
    let cpu_before_train = cpu_seconds();
    let trainer = TrainModel::new();
    let mut overrides = overrides.to_vec();
    overrides.push(format!("model={model}"));
    let train_params = params(trainer.signature(), &overrides)?;
    let y_train = Arc::new(Artifact::Table(cleaned.y_train));
    let inputs = BTreeMap::from([
        ("x_train".to_string(), Arc::new(Artifact::Table(x_train))),
        ("y_train".to_string(), y_train.clone()),
    ]);
    let mut trained = run_step(&trainer, &train_params, inputs)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let train_cpu_seconds = cpu_seconds() - cpu_before_train;
    let model_artifact = trained
        .remove("model")
        .ok_or("train_model returned no model")?;
    if let Some(Artifact::Json(tuning)) = trained.get("tuning")
        && tuning.as_array().is_some_and(|t| !t.is_empty())
    {
        println!("tuning: {tuning}");
    }
    if let Artifact::Model(m) = &model_artifact {
        println!("payload: {} bytes", m.payload.len());
        if std::env::var_os("SINGLE_ROW").is_some() {
            let per_row = single_row_micros(m, &x_test)?;
            println!("single-row predict: {per_row:.2} us per request (one thread)");
        }
    }

    let started = Instant::now();
    let inputs = BTreeMap::from([
        ("model".to_string(), Arc::new(model_artifact)),
        ("x_test".to_string(), Arc::new(Artifact::Table(x_test))),
        (
            "y_test".to_string(),
            Arc::new(Artifact::Table(cleaned.y_test)),
        ),
        ("y_train".to_string(), y_train),
    ]);
    let evaluated = run_step(&Evaluation::new(), &BTreeMap::new(), inputs)?;
    let evaluate_seconds = started.elapsed().as_secs_f64();

    let mut mse = f64::NAN;
    if let Some(Artifact::Json(metrics)) = evaluated.get("metrics") {
        println!("metrics: {metrics}");
        mse = metrics["mse"].as_f64().unwrap_or(f64::NAN);
    }
    if let Some(Artifact::Table(importance)) = evaluated.get("feature_importance") {
        let names = importance.utf8_column("feature")?;
        let shares = importance.f64_column("importance")?;
        let top: Vec<String> = names
            .iter()
            .zip(shares)
            .take(12)
            .map(|(n, s)| format!("{}={s:.3}", n.as_deref().unwrap_or("?")))
            .collect();
        println!("top features: {}", top.join(" "));
    }
    println!(
        "seed {seed}: clean {clean_seconds:.2}, train {train_seconds:.2} \
         (CPU {train_cpu_seconds:.2}), evaluate {evaluate_seconds:.2}"
    );
    Ok(mse)
}
