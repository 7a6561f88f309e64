//! Seeded random search over a family's main hyperparameters.
//!
//! The training rows are split by order into a fitting part and a
//! validation part (a fifth of the orders), so that the rows of one order,
//! which the join repeats once per item and payment, never sit on both
//! sides and flatter the validation error. Trial 0 uses the given
//! hyperparameters; each later trial draws a variation with the family's
//! `sample`. Trials train in parallel with rayon, and each is scored by the
//! mean squared error of its predictions on the validation part.
//!
//! Everything random comes from generators seeded with the step's seed, so
//! a search with the same seed, data and trial count gives the same trials
//! and the same validation errors.

use super::{Hyperparameters, ModelError, Monitor, train};
use flowrun_artifacts::{Column, ColumnData, Table};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

/// The share of orders held out for validation.
const VALIDATION_SHARE: f64 = 0.2;

/// One evaluated set of hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The trial number, from 0.
    pub index: usize,
    /// The hyperparameters tried.
    pub params: Hyperparameters,
    /// The mean squared error on the validation part.
    pub val_mse: f64,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// Every trial, in trial order.
    pub trials: Vec<Trial>,
    /// The index of the trial with the lowest validation error.
    pub best: usize,
    /// Rows in the fitting part.
    pub fit_rows: usize,
    /// Rows in the validation part.
    pub validation_rows: usize,
}

impl Search {
    /// Returns the best trial.
    pub fn best_trial(&self) -> &Trial {
        &self.trials[self.best]
    }

    /// Returns every trial as a JSON list, for the `tuning` output.
    pub fn to_json(&self) -> serde_json::Value {
        self.trials
            .iter()
            .map(|t| {
                json!({
                    "trial": t.index,
                    "params": t.params.to_json(),
                    "val_mse": t.val_mse,
                    "best": t.index == self.best,
                })
            })
            .collect()
    }
}

/// Draws the hyperparameters of `trials` trials; the first is `base`.
pub fn draw_trials(base: &Hyperparameters, trials: usize, seed: u64) -> Vec<Hyperparameters> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..trials)
        .map(|i| {
            if i == 0 {
                return base.clone();
            }
            match base {
                Hyperparameters::LinearRegression(p) => {
                    Hyperparameters::LinearRegression(p.sample(&mut rng))
                }
                Hyperparameters::RandomForest(p) => {
                    Hyperparameters::RandomForest(p.sample(&mut rng))
                }
                Hyperparameters::GradientBoosting(p) => {
                    Hyperparameters::GradientBoosting(p.sample(&mut rng))
                }
            }
        })
        .collect()
}

/// Splits row indices into a fitting and a validation part by `groups`,
/// holding out a fifth of the distinct groups. A row without a group is a
/// group of its own.
pub fn split_by_group(
    groups: &[Option<String>],
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), ModelError> {
    let mut rows_of: BTreeMap<GroupKey<'_>, Vec<usize>> = BTreeMap::new();
    for (i, group) in groups.iter().enumerate() {
        let key = match group {
            Some(name) => GroupKey::Named(name),
            None => GroupKey::Row(i),
        };
        rows_of.entry(key).or_default().push(i);
    }
    if rows_of.len() < 2 {
        return Err(ModelError::TooFewGroups {
            orders: rows_of.len(),
        });
    }
    let mut keys: Vec<&GroupKey<'_>> = rows_of.keys().collect();
    keys.shuffle(&mut StdRng::seed_from_u64(seed));
    let held_out =
        ((keys.len() as f64 * VALIDATION_SHARE).round() as usize).clamp(1, keys.len() - 1);

    let mut validation: Vec<usize> = keys[..held_out]
        .iter()
        .flat_map(|k| rows_of[*k].iter().copied())
        .collect();
    let mut fit: Vec<usize> = keys[held_out..]
        .iter()
        .flat_map(|k| rows_of[*k].iter().copied())
        .collect();
    validation.sort_unstable();
    fit.sort_unstable();
    Ok((fit, validation))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey<'a> {
    Named(&'a str),
    Row(usize),
}

/// Returns a table of the rows `rows` of `table`, in that order.
pub fn take_rows(table: &Table, rows: &[usize]) -> Table {
    let columns = table
        .columns()
        .iter()
        .map(|c| {
            let data = match &c.data {
                ColumnData::Float64(v) => ColumnData::Float64(rows.iter().map(|&i| v[i]).collect()),
                ColumnData::Int64(v) => ColumnData::Int64(rows.iter().map(|&i| v[i]).collect()),
                ColumnData::Utf8(v) => {
                    ColumnData::Utf8(rows.iter().map(|&i| v[i].clone()).collect())
                }
                ColumnData::Bool(v) => ColumnData::Bool(rows.iter().map(|&i| v[i]).collect()),
            };
            Column::new(c.name.clone(), data)
        })
        .collect();
    Table::new(columns).expect("rows taken from a valid table form a valid table")
}

/// Runs `trials` trials of random search around `base`, training each on the
/// fitting part of `x` and scoring it on the validation part.
pub fn search(
    x: &Table,
    y: &[f64],
    groups: &[Option<String>],
    base: &Hyperparameters,
    trials: usize,
    seed: u64,
    monitor: &dyn Monitor,
) -> Result<Search, ModelError> {
    if x.num_rows() == 0 {
        return Err(ModelError::NoTrainingRows);
    }
    let (fit, validation) = split_by_group(groups, seed)?;
    let x_fit = take_rows(x, &fit);
    let x_validation = take_rows(x, &validation);
    let y_fit: Vec<f64> = fit.iter().map(|&i| y[i]).collect();
    let y_validation: Vec<f64> = validation.iter().map(|&i| y[i]).collect();
    let candidates = draw_trials(base, trials, seed);

    let results: Vec<Trial> = candidates
        .into_par_iter()
        .enumerate()
        .map(|(index, params)| {
            let model = train(&x_fit, &y_fit, &params, seed, monitor)?;
            let predictions = model
                .predict(&x_validation)
                .map_err(|e| ModelError::Training(format!("trial {index} cannot predict: {e}")))?;
            let val_mse = predictions
                .iter()
                .zip(&y_validation)
                .map(|(p, t)| (p - t) * (p - t))
                .sum::<f64>()
                / y_validation.len() as f64;
            tracing::debug!(trial = index, val_mse, "tuning trial finished");
            Ok(Trial {
                index,
                params,
                val_mse,
            })
        })
        .collect::<Result<_, ModelError>>()?;

    // The first trial wins ties, so the given parameters are kept unless
    // another set does strictly better.
    let best = results
        .iter()
        .min_by(|a, b| a.val_mse.total_cmp(&b.val_mse).then(a.index.cmp(&b.index)))
        .map_or(0, |t| t.index);
    Ok(Search {
        trials: results,
        best,
        fit_rows: fit.len(),
        validation_rows: validation.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_orders_whole() {
        let groups: Vec<Option<String>> = (0..100).map(|i| Some(format!("o{}", i / 3))).collect();
        let (fit, validation) = split_by_group(&groups, 9).unwrap();
        assert_eq!(fit.len() + validation.len(), 100);
        for v in &validation {
            for f in &fit {
                assert_ne!(groups[*v], groups[*f], "rows {v} and {f} share an order");
            }
        }
        let orders: std::collections::BTreeSet<_> =
            validation.iter().map(|&i| groups[i].clone()).collect();
        assert_eq!(orders.len(), 7, "a fifth of 34 orders, rounded");
    }

    #[test]
    fn split_needs_two_orders() {
        let groups = vec![Some("a".to_string()); 5];
        let error = split_by_group(&groups, 1).unwrap_err();
        assert!(error.to_string().contains("found 1"), "{error}");
    }

    #[test]
    fn take_rows_reorders() {
        let table = Table::new(vec![
            Column::new("a", ColumnData::Float64(vec![1.0, 2.0, 3.0])),
            Column::new(
                "b",
                ColumnData::Utf8(vec![Some("x".into()), None, Some("z".into())]),
            ),
        ])
        .unwrap();
        let taken = take_rows(&table, &[2, 0]);
        assert_eq!(taken.f64_column("a").unwrap(), &[3.0, 1.0]);
        assert_eq!(
            taken.utf8_column("b").unwrap(),
            &[Some("z".to_string()), Some("x".to_string())]
        );
    }
}
