//! The errors of clean_data.

/// An error from turning the `orders` table into training and test parts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanError {
    /// No row is left to train on.
    #[error("no training rows: {0}")]
    NoTrainingRows(String),

    /// The `feature_set` parameter names no feature set.
    #[error("unknown feature set `{0}`; valid feature sets: basic, order_time, post_delivery")]
    UnknownFeatureSet(String),

    /// The `split` parameter names no split.
    #[error("unknown split `{0}`; valid splits: random, group")]
    UnknownSplit(String),

    /// `test_size` is not a fraction strictly between 0 and 1.
    #[error("test_size must be greater than 0 and less than 1, got {0}")]
    InvalidTestSize(f64),

    /// Too few rows or orders to give both parts at least one.
    #[error(
        "too few {unit} to split into a training and a test part with test_size {test_size}: found {have}, need at least {need}; ingest more data or change test_size"
    )]
    TooFewToSplit {
        /// How many there are.
        have: usize,
        /// `rows` for a random split, `orders` for a group split.
        unit: &'static str,
        /// How many are needed.
        need: usize,
        /// The requested test fraction.
        test_size: f64,
    },

    /// The `orders` table lacks a column that the feature set needs.
    #[error(
        "the `orders` table has no column `{column}`, which {needed_by} needs; it has: {available}"
    )]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The step or feature set that needs it, such as "feature set
        /// `order_time`".
        needed_by: String,
        /// The table's columns, comma-separated.
        available: String,
    },

    /// A column of the `orders` table has the wrong type.
    #[error("column `{column}` of the `orders` table is {found}, expected {expected}")]
    ColumnType {
        /// The column.
        column: String,
        /// The types accepted.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
}
