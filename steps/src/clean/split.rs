//! Splits row numbers into a training and a test part.
//!
//! `group` (the default) splits by `order_id`, so every row of an order
//! lands on the same side. The join repeats an order's rows once per item
//! and payment, with the same review score and nearly the same features.
//! A row-wise `random` split puts such near-duplicates on both sides, so the
//! test score rewards memorising orders instead of predicting new ones. `random` is kept because the original ZenML project split that
//! way, and comparing the two shows the size of the leak.
//!
//! The test part gets `ceil(n × test_size)` of the `n` rows (random) or
//! orders (group), as scikit-learn's `train_test_split` does, and both
//! parts must get at least one. The shuffle uses rand 0.9's `StdRng`
//! (ChaCha12) seeded with `seed`, which gives the same split on every
//! platform for the rand version in Cargo.lock. Both parts list their rows
//! in input order, so the outputs' content hashes depend only on the data
//! and the seed.
//!
//! This module never looks at feature values.

use super::error::CleanError;
use foldhash::HashMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// The rule that assigns rows to the training and test parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// Row by row, as the original ZenML project did.
    Random,
    /// Order by order, so that no order has rows on both sides.
    Group,
}

impl SplitKind {
    /// The names the `split` parameter accepts.
    pub const NAMES: [&'static str; 2] = ["random", "group"];

    /// Parses the `split` parameter.
    pub fn parse(name: &str) -> Result<Self, CleanError> {
        match name {
            "random" => Ok(SplitKind::Random),
            "group" => Ok(SplitKind::Group),
            _ => Err(CleanError::UnknownSplit(name.to_string())),
        }
    }

    /// Returns the parameter value that names this split.
    pub fn name(self) -> &'static str {
        match self {
            SplitKind::Random => "random",
            SplitKind::Group => "group",
        }
    }
}

/// The row numbers of each part, in ascending order.
#[derive(Debug)]
pub(crate) struct Split {
    pub(crate) train: Vec<usize>,
    pub(crate) test: Vec<usize>,
}

/// Splits `rows` (row numbers into `order_ids`) into two parts.
pub(crate) fn split_rows(
    rows: &[usize],
    order_ids: &[Option<String>],
    kind: SplitKind,
    test_size: f64,
    seed: u64,
) -> Result<Split, CleanError> {
    if !(test_size > 0.0 && test_size < 1.0) {
        return Err(CleanError::InvalidTestSize(test_size));
    }
    let mut rng = StdRng::seed_from_u64(seed);

    let mut split = match kind {
        SplitKind::Random => {
            check_size(rows.len(), "rows", test_size)?;
            let mut shuffled = rows.to_vec();
            shuffled.shuffle(&mut rng);
            let test = shuffled.split_off(shuffled.len() - test_count(rows.len(), test_size));
            Split {
                train: shuffled,
                test,
            }
        }
        SplitKind::Group => {
            let group_of_row = group_rows(rows, order_ids);
            let groups = group_of_row.iter().max().map_or(0, |g| g + 1);
            check_size(groups, "orders", test_size)?;
            let mut shuffled: Vec<usize> = (0..groups).collect();
            shuffled.shuffle(&mut rng);
            let mut in_test = vec![false; groups];
            for &group in &shuffled[..test_count(groups, test_size)] {
                in_test[group] = true;
            }
            let (test, train) = rows
                .iter()
                .zip(&group_of_row)
                .partition::<Vec<_>, _>(|(_, group)| in_test[**group]);
            Split {
                train: train.into_iter().map(|(row, _)| *row).collect(),
                test: test.into_iter().map(|(row, _)| *row).collect(),
            }
        }
    };
    split.train.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

/// Numbers the orders of `rows` in order of first appearance and returns
/// each row's number. A row without an order id is an order of its own.
fn group_rows(rows: &[usize], order_ids: &[Option<String>]) -> Vec<usize> {
    let mut groups: HashMap<&str, usize> = HashMap::default();
    let mut next = 0;
    rows.iter()
        .map(|&row| {
            let group = match order_ids[row].as_deref() {
                Some(id) => *groups.entry(id).or_insert(next),
                None => next,
            };
            if group == next {
                next += 1;
            }
            group
        })
        .collect()
}

/// The slack in [`test_count`] that keeps a product such as 10 × 0.3, which
/// lands just above 3 in floating point, from rounding up to 4.
const TOLERANCE: f64 = 1e-9;

/// Returns the size of the test part for `n` rows or orders.
fn test_count(n: usize, test_size: f64) -> usize {
    (n as f64 * test_size - TOLERANCE).ceil().max(0.0) as usize
}

/// Returns whether both parts get at least one of `n`.
fn fits(n: usize, test_size: f64) -> bool {
    let test = test_count(n, test_size);
    test >= 1 && test < n
}

/// Returns the smallest `n` that [`fits`]. The test part is non-empty once
/// `n × test_size` exceeds the tolerance, and the training part once
/// `n × (1 - test_size)` reaches 1 minus it, so the search starts at the
/// larger bound and ends within a step or two.
fn min_size(test_size: f64) -> usize {
    let bound = (TOLERANCE / test_size).max((1.0 - TOLERANCE) / (1.0 - test_size));
    // `as` saturates, so an absurdly small test_size gives usize::MAX.
    let mut n = (bound.floor() as usize).max(2);
    while !fits(n, test_size) && n < usize::MAX {
        n += 1;
    }
    n
}

/// Fails unless both parts get at least one of `n`.
fn check_size(n: usize, unit: &'static str, test_size: f64) -> Result<(), CleanError> {
    if fits(n, test_size) {
        return Ok(());
    }
    Err(CleanError::TooFewToSplit {
        have: n,
        unit,
        need: min_size(test_size),
        test_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some(v.to_string())).collect()
    }

    #[test]
    fn minimum_size_matches_search() {
        for test_size in [0.01, 0.2, 0.25, 0.3, 0.5, 0.6, 0.9, 0.999] {
            let expected = (2..).find(|&n| fits(n, test_size)).unwrap();
            assert_eq!(min_size(test_size), expected, "test_size {test_size}");
        }
        assert_eq!(min_size(1e-300), usize::MAX);
    }

    #[test]
    fn test_count_rounds_up() {
        assert_eq!(test_count(10, 0.3), 3);
        assert_eq!(test_count(5, 0.2), 1);
        assert_eq!(test_count(6, 0.2), 2);
        assert_eq!(test_count(10, 0.2), 2);
        assert_eq!(test_count(2, 0.2), 1);
        assert_eq!(test_count(100, 0.25), 25);
    }

    #[test]
    fn group_numbers_follow_first_appearance() {
        let order_ids = ids(&["b", "a", "b", "c", "a"]);
        assert_eq!(
            group_rows(&[0, 1, 2, 3, 4], &order_ids),
            vec![0, 1, 0, 2, 1]
        );
        let mut with_missing = ids(&["a", "a"]);
        with_missing.push(None);
        with_missing.push(None);
        assert_eq!(group_rows(&[0, 1, 2, 3], &with_missing), vec![0, 0, 1, 2]);
    }

    #[test]
    fn random_split_sizes_and_order() {
        let rows: Vec<usize> = (0..10).collect();
        let order_ids = ids(&["x"; 10]);
        let split = split_rows(&rows, &order_ids, SplitKind::Random, 0.3, 7).unwrap();
        assert_eq!(split.test.len(), 3);
        assert_eq!(split.train.len(), 7);
        assert!(split.train.is_sorted());
        assert!(split.test.is_sorted());
        let mut all = [split.train, split.test].concat();
        all.sort_unstable();
        assert_eq!(all, rows);
    }

    #[test]
    fn minimum_sizes_named() {
        let order_ids = ids(&["a", "a", "a"]);
        let error = split_rows(&[0, 1, 2], &order_ids, SplitKind::Group, 0.2, 1).unwrap_err();
        assert!(matches!(
            error,
            CleanError::TooFewToSplit {
                have: 1,
                unit: "orders",
                need: 2,
                ..
            }
        ));
        let error = split_rows(&[0, 1], &order_ids, SplitKind::Random, 0.6, 1).unwrap_err();
        assert!(matches!(
            error,
            CleanError::TooFewToSplit {
                have: 2,
                unit: "rows",
                need: 3,
                ..
            }
        ));
    }

    #[test]
    fn test_size_outside_zero_one_rejected() {
        let order_ids = ids(&["a", "b"]);
        for test_size in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            let error = split_rows(&[0, 1], &order_ids, SplitKind::Random, test_size, 1);
            assert!(
                matches!(error, Err(CleanError::InvalidTestSize(_))),
                "test_size {test_size}"
            );
        }
    }
}
