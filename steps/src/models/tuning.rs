//! Seeded random search over a family's main hyperparameters.
//!
//! [`validation::holdout`] splits the training rows into a fitting part and
//! a validation part of a fifth of the orders, or of the rows, rounded. A
//! search on fewer than 3 orders (or rows) fails, because a fifth of them
//! rounds to none. It keeps
//! orders whole, or not, as the pipeline's own train/test split does, for
//! the reasons given in [`validation`]. Trial 0 uses the given
//! hyperparameters; each later trial draws a variation with the family's
//! `sample`. Trials train in parallel with rayon, and each is scored by the
//! mean squared error of its predictions on the validation part.
//!
//! Everything random comes from generators seeded with the step's seed, so
//! a search with the same seed, data and trial count gives the same trials
//! and the same validation errors.

use super::validation::{self, ValidationSplit};
use super::{Hyperparameters, ModelError, Monitor, TargetEncoding, TrainingData, train_with};
use flowrun_artifacts::{Column, ColumnData, Table};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde_json::json;

/// The share of orders (or rows) held out for validation.
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

/// The trials of a search and the rule that chooses the held-out rows.
#[derive(Debug, Clone)]
pub struct SearchPlan<'a> {
    /// Trial 0's hyperparameters, and the family of every trial.
    pub base: &'a Hyperparameters,
    /// The number of trials.
    pub trials: usize,
    /// The rule that chooses the validation part.
    pub split: ValidationSplit,
    /// The target encoding every trial is trained with.
    pub target_encoding: &'a TargetEncoding,
    /// The seed of the split, the draws and every trial's training.
    pub seed: u64,
}

/// Runs the trials of `plan`, training each on the fitting part of `data`
/// and scoring it on the validation part.
pub fn search(
    data: &TrainingData<'_>,
    plan: &SearchPlan<'_>,
    monitor: &dyn Monitor,
) -> Result<Search, ModelError> {
    let TrainingData { x, y, groups } = *data;
    if x.num_rows() == 0 {
        return Err(ModelError::NoTrainingRows);
    }
    let (fit, validation) = validation::holdout(
        x.num_rows(),
        groups,
        plan.split,
        VALIDATION_SHARE,
        plan.seed,
    )?;
    let x_fit = take_rows(x, &fit);
    let x_validation = take_rows(x, &validation);
    let y_fit: Vec<f64> = fit.iter().map(|&i| y[i]).collect();
    let y_validation: Vec<f64> = validation.iter().map(|&i| y[i]).collect();
    let groups_fit: Option<Vec<Option<String>>> =
        groups.map(|g| fit.iter().map(|&i| g[i].clone()).collect());
    let fit_data = TrainingData {
        x: &x_fit,
        y: &y_fit,
        groups: groups_fit.as_deref(),
    };
    let candidates = draw_trials(plan.base, plan.trials, plan.seed);

    let results: Vec<Trial> = candidates
        .into_par_iter()
        .enumerate()
        .map(|(index, params)| {
            let model = train_with(&fit_data, plan.target_encoding, &params, plan.seed, monitor)?;
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
