//! The customer-satisfaction steps: ingest the Olist tables, clean them into
//! a feature matrix, train a model and evaluate it. Each step registers with
//! the engine by name; the engine never depends on this crate.
//!
//! The Olist data set is published by Olist under CC BY-NC-SA 4.0.

flowrun_engine::include_fingerprints!();

pub mod clean;
pub mod deploy;
pub mod evaluate;
pub mod ingest;
pub mod models;
pub mod train;

use flowrun_engine::Registry;

/// Adds every step and model flavor of this crate to `registry`.
pub fn register_all(registry: &mut Registry) {
    ingest::register(registry);
    clean::register(registry);
    train::register(registry);
    evaluate::register(registry);
    models::register_flavors(registry);
    deploy::register(registry);
}
