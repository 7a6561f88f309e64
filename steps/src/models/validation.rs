//! The holding out of training rows inside `train_model`, for the
//! validation part of hyperparameter tuning and for the folds of
//! out-of-fold target encoding.
//!
//! Both should mirror how the test part relates to the training part, since
//! the error measured on held-out rows is only a good guide when held-out
//! rows relate to the rest as test rows do:
//!
//! - [`ValidationSplit::Group`] keeps every row of an order on one side, as
//!   `clean_data`'s `group` split does. The join repeats an order's row once
//!   per item and payment, with the same review score, so splitting rows
//!   would put near-copies of held-out rows into the fitting part.
//! - [`ValidationSplit::Random`] assigns rows one by one, as `clean_data`'s
//!   `random` split does. Under that split a test row usually has copies in
//!   the training part, so deep trees that memorise rows score best, and a
//!   validation split by rows finds them where a grouped one cannot.
//!
//! Every assignment comes from a generator seeded with the caller's seed, so
//! the same seed and rows give the same parts. This module never trains or
//! scores anything.

use super::ModelError;
use super::range::ParamRange;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::BTreeMap;

/// The range of the `target_encoding_folds` parameter of `train_model`.
/// Each fold keeps sums per encoded level, so the bound also bounds memory.
pub const TARGET_ENCODING_FOLDS: ParamRange = ParamRange::int("target_encoding_folds", 2, 100);

/// The rule that chooses held-out rows from the training rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationSplit {
    /// Row by row.
    Random,
    /// Order by order, so that no order has rows on both sides.
    Group,
}

impl ValidationSplit {
    /// The names the `validation_split` parameter accepts.
    pub const NAMES: [&'static str; 2] = ["random", "group"];

    /// Parses the `validation_split` parameter.
    pub fn parse(name: &str) -> Result<Self, ModelError> {
        match name {
            "random" => Ok(ValidationSplit::Random),
            "group" => Ok(ValidationSplit::Group),
            _ => Err(ModelError::InvalidHyperparameter {
                name: "validation_split",
                value: name.to_string(),
                expected: "random or group",
            }),
        }
    }

    /// Returns the parameter value that names this split.
    pub fn name(self) -> &'static str {
        match self {
            ValidationSplit::Random => "random",
            ValidationSplit::Group => "group",
        }
    }
}

/// Returns the units of rows that are held out together. With `Group`, a
/// unit is the rows of one order, and a row without an order is a unit of
/// its own. With `Random`, a unit is one row. Units come in order of their
/// key, so that the result never depends on hash-map iteration.
fn units(
    rows: usize,
    groups: Option<&[Option<String>]>,
    split: ValidationSplit,
) -> Vec<Vec<usize>> {
    let (ValidationSplit::Group, Some(groups)) = (split, groups) else {
        return (0..rows).map(|row| vec![row]).collect();
    };
    let mut rows_of: BTreeMap<UnitKey<'_>, Vec<usize>> = BTreeMap::new();
    for (row, group) in groups.iter().enumerate() {
        let key = match group {
            Some(name) => UnitKey::Named(name),
            None => UnitKey::Row(row),
        };
        rows_of.entry(key).or_default().push(row);
    }
    rows_of.into_values().collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum UnitKey<'a> {
    Named(&'a str),
    Row(usize),
}

/// Checks that `Group` has an order key for every row.
fn check_groups(
    rows: usize,
    groups: Option<&[Option<String>]>,
    split: ValidationSplit,
) -> Result<(), ModelError> {
    match (split, groups) {
        (ValidationSplit::Group, None) => Err(ModelError::MissingGroups),
        (ValidationSplit::Group, Some(groups)) if groups.len() != rows => {
            Err(ModelError::RowMismatch {
                x_rows: rows,
                y_rows: groups.len(),
            })
        }
        _ => Ok(()),
    }
}

/// Splits row numbers `0..rows` into a fitting and a validation part,
/// holding out `share` of the units, rounded to the nearest whole unit.
/// Both parts are in ascending order.
///
/// Fails with [`ModelError::EmptyValidation`] when the rounding leaves
/// either part without a unit, instead of scoring trials on nothing.
/// `share` must be above 0 and below 1.
pub fn holdout(
    rows: usize,
    groups: Option<&[Option<String>]>,
    split: ValidationSplit,
    share: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), ModelError> {
    if !(share > 0.0 && share < 1.0) {
        return Err(ModelError::Training(format!(
            "the validation share must be above 0 and below 1, but it is {share}"
        )));
    }
    check_groups(rows, groups, split)?;
    let mut units = units(rows, groups, split);
    let Some(held_out) = held_out_units(units.len(), share) else {
        return Err(ModelError::EmptyValidation {
            found: units.len(),
            need: min_units(share),
            unit: unit_name(split),
            percent: (share * 1000.0).round() / 10.0,
        });
    };
    units.shuffle(&mut StdRng::seed_from_u64(seed));

    let mut validation: Vec<usize> = units[..held_out].iter().flatten().copied().collect();
    let mut fit: Vec<usize> = units[held_out..].iter().flatten().copied().collect();
    validation.sort_unstable();
    fit.sort_unstable();
    Ok((fit, validation))
}

/// Returns how many of `units` units a holdout of `share` takes, or `None`
/// when the rounded count leaves the validation or the fitting part empty.
fn held_out_units(units: usize, share: f64) -> Option<usize> {
    let held_out = (units as f64 * share).round();
    (held_out >= 1.0 && held_out < units as f64).then_some(held_out as usize)
}

/// Returns the fewest units that a holdout of `share` (above 0 and below
/// 1) splits into two non-empty parts.
fn min_units(share: f64) -> usize {
    (1..)
        .find(|&n| held_out_units(n, share).is_some())
        .expect("a share between 0 and 1 splits some number of units")
}

/// Assigns each of `rows` rows to one of `folds` folds of nearly equal
/// numbers of units, keeping units whole.
pub fn assign_folds(
    rows: usize,
    groups: Option<&[Option<String>]>,
    split: ValidationSplit,
    folds: usize,
    seed: u64,
) -> Result<Vec<usize>, ModelError> {
    check_groups(rows, groups, split)?;
    let folds = TARGET_ENCODING_FOLDS.check_usize(folds)?;
    let mut units = units(rows, groups, split);
    units.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut fold_of_row = vec![0; rows];
    for (position, unit) in units.iter().enumerate() {
        for &row in unit {
            fold_of_row[row] = position % folds;
        }
    }
    Ok(fold_of_row)
}

fn unit_name(split: ValidationSplit) -> &'static str {
    match split {
        ValidationSplit::Random => "rows",
        ValidationSplit::Group => "orders",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders_of_three(rows: usize) -> Vec<Option<String>> {
        (0..rows).map(|i| Some(format!("o{}", i / 3))).collect()
    }

    #[test]
    fn group_holdout_keeps_orders_whole() {
        let groups = orders_of_three(100);
        let (fit, validation) =
            holdout(100, Some(&groups), ValidationSplit::Group, 0.2, 9).unwrap();
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
    fn random_holdout_splits_orders() {
        let groups = orders_of_three(300);
        let (fit, validation) =
            holdout(300, Some(&groups), ValidationSplit::Random, 0.2, 9).unwrap();
        assert_eq!(validation.len(), 60, "a fifth of the rows");
        assert_eq!(fit.len(), 240);
        let shared = validation
            .iter()
            .filter(|&&v| fit.iter().any(|&f| groups[f] == groups[v]))
            .count();
        assert!(
            shared > 0,
            "a row split should put some orders on both sides"
        );
    }

    #[test]
    fn random_holdout_needs_no_groups() {
        let (fit, validation) = holdout(10, None, ValidationSplit::Random, 0.2, 1).unwrap();
        assert_eq!((fit.len(), validation.len()), (8, 2));
    }

    #[test]
    fn group_holdout_needs_three_orders() {
        // A fifth of 2 orders rounds to none, which would leave nothing to
        // score the trials on.
        let groups: Vec<Option<String>> = (0..30)
            .map(|i| Some(if i < 15 { "a" } else { "b" }.to_string()))
            .collect();
        let error = holdout(30, Some(&groups), ValidationSplit::Group, 0.2, 1).unwrap_err();
        assert!(
            matches!(
                error,
                ModelError::EmptyValidation {
                    found: 2,
                    need: 3,
                    ..
                }
            ),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("20% of the training orders"), "{message}");
        assert!(message.contains("none of 2 orders"), "{message}");
        assert!(message.contains("at least 3 orders"), "{message}");
        assert!(message.contains("tuning_trials to 0"), "{message}");

        let groups: Vec<Option<String>> = (0..30).map(|i| Some(format!("o{}", i % 3))).collect();
        let (fit, validation) = holdout(30, Some(&groups), ValidationSplit::Group, 0.2, 1).unwrap();
        assert_eq!((fit.len(), validation.len()), (20, 10));
    }

    #[test]
    fn random_holdout_needs_three_rows() {
        let error = holdout(2, None, ValidationSplit::Random, 0.2, 1).unwrap_err();
        assert!(error.to_string().contains("none of 2 rows"), "{error}");
        let (fit, validation) = holdout(3, None, ValidationSplit::Random, 0.2, 1).unwrap();
        assert_eq!((fit.len(), validation.len()), (2, 1));
    }

    #[test]
    fn min_units_matches_rounding() {
        assert_eq!(min_units(0.2), 3);
        assert_eq!(min_units(0.5), 2);
        assert_eq!(min_units(0.01), 50);
        assert_eq!(min_units(0.9), 6);
    }

    #[test]
    fn group_split_needs_groups() {
        let error = holdout(5, None, ValidationSplit::Group, 0.2, 1).unwrap_err();
        assert!(matches!(error, ModelError::MissingGroups), "{error}");
    }

    #[test]
    fn folds_keep_orders_whole() {
        let groups = orders_of_three(90);
        let folds = assign_folds(90, Some(&groups), ValidationSplit::Group, 5, 3).unwrap();
        for row in 0..90 {
            assert_eq!(folds[row], folds[row - row % 3], "row {row}");
        }
        for fold in 0..5 {
            let rows = folds.iter().filter(|&&f| f == fold).count();
            assert_eq!(rows, 18, "30 orders in 5 folds of 6 orders");
        }
    }

    #[test]
    fn random_folds_split_orders() {
        let groups = orders_of_three(300);
        let folds = assign_folds(300, Some(&groups), ValidationSplit::Random, 5, 3).unwrap();
        let split_orders = (0..100)
            .filter(|o| folds[o * 3] != folds[o * 3 + 1] || folds[o * 3] != folds[o * 3 + 2])
            .count();
        assert!(split_orders > 50, "{split_orders} of 100 orders span folds");
        for fold in 0..5 {
            assert_eq!(folds.iter().filter(|&&f| f == fold).count(), 60);
        }
    }

    #[test]
    fn fold_count_outside_range_rejected() {
        for folds in [0, 1, 101] {
            let error = assign_folds(10, None, ValidationSplit::Random, folds, 3).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "parameter `target_encoding_folds` must be between 2 and 100, but it is {folds}"
                )
            );
        }
    }
}
