//! Runs ingest_data and clean_data on a folder of Olist CSV files and prints
//! the row counts and the time each took, for measuring speed and memory:
//!
//! ```text
//! cargo build --release -p flowrun-steps --example ingest_olist
//! /usr/bin/time -v target/release/examples/ingest_olist ../shared/data/olist
//! ```
//!
//! With `--ingest-only` after the folder, it stops after ingest_data.
//!
//! The data is the Brazilian E-Commerce Public Dataset by Olist, licensed
//! CC BY-NC-SA 4.0.

use flowrun_steps::clean::{CleanOptions, clean};
use flowrun_steps::ingest::ingest;
use std::path::Path;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, ingest_only) = match args.as_slice() {
        [dir] => (dir, false),
        [dir, flag] if flag == "--ingest-only" => (dir, true),
        _ => return Err("usage: ingest_olist <folder of Olist CSV files> [--ingest-only]".into()),
    };

    let started = Instant::now();
    let ingested = ingest(Path::new(dir), "utf-8")?;
    let ingest_time = started.elapsed();
    for (name, rows) in &ingested.table_rows {
        println!("rows_{name}: {rows}");
    }
    println!("rows_joined: {}", ingested.orders.num_rows());
    println!("ingest: {:.3} s", ingest_time.as_secs_f64());
    if ingest_only {
        return Ok(());
    }

    let started = Instant::now();
    let cleaned = clean(&ingested.orders, &CleanOptions::default())?;
    println!(
        "clean (order_time, group): {} training rows, {} test rows, {} features, {:.3} s",
        cleaned.x_train.num_rows(),
        cleaned.x_test.num_rows(),
        cleaned.x_train.columns().len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
