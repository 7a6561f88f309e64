//! The errors of ingest_data. Every error about the data names the file, and
//! where it can, the line and the column, so that the user can open the file
//! at the right place.

use std::path::PathBuf;

/// The source of the full data set, shown when a table is missing.
const FULL_DATA_HINT: &str = "the full data is the Kaggle dataset `olistbr/brazilian-ecommerce` \
     (Brazilian E-Commerce Public Dataset by Olist), and a small sample ships in data/olist-sample";

/// An error from reading or joining the Olist tables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// Neither `<file>.csv` nor `<file>.csv.gz` exists in the data folder.
    #[error(
        "table `{file}` not found: expected {file}.csv or {file}.csv.gz in {}; {FULL_DATA_HINT}",
        dir.display()
    )]
    MissingTable {
        /// The data folder.
        dir: PathBuf,
        /// The file name without extension.
        file: String,
    },

    /// Both the plain and the gzip file exist, so which one is meant is
    /// unclear.
    #[error("both {} and {} exist; remove one so that the table has a single source", plain.display(), gzip.display())]
    AmbiguousTable {
        /// The `.csv` file.
        plain: PathBuf,
        /// The `.csv.gz` file.
        gzip: PathBuf,
    },

    /// A file cannot be opened or read, or its gzip stream is corrupt.
    #[error("failed to read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The file is empty, so it has no header line.
    #[error(
        "{}: missing header: the file is empty, but it must start with a header line naming its columns ({expected})",
        path.display()
    )]
    MissingHeader {
        /// The file.
        path: PathBuf,
        /// The columns ingest_data needs from the file, comma-separated.
        expected: String,
    },

    /// The header lacks a column that ingest_data needs.
    #[error(
        "{}: missing column `{column}`; the header has: {found}. Restore the column under its Kaggle name",
        path.display()
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The header's columns, comma-separated.
        found: String,
    },

    /// A field of a numeric column is not a number.
    #[error(
        "{}, line {line}, column `{column}`: `{value}` is not a number; correct the value or leave the field empty for a missing value",
        path.display()
    )]
    InvalidNumber {
        /// The file.
        path: PathBuf,
        /// The line where the record starts, from 1 (the header).
        line: u64,
        /// The column.
        column: String,
        /// The field's text, shortened when long.
        value: String,
    },

    /// A field of a timestamp column is not `YYYY-MM-DD HH:MM:SS`.
    #[error(
        "{}, line {line}, column `{column}`: `{value}` is not a timestamp of the form YYYY-MM-DD HH:MM:SS; correct the value or leave the field empty for a missing value",
        path.display()
    )]
    InvalidTimestamp {
        /// The file.
        path: PathBuf,
        /// The line where the record starts, from 1 (the header).
        line: u64,
        /// The column.
        column: String,
        /// The field's text, shortened when long.
        value: String,
    },

    /// A field is not valid UTF-8 while the declared encoding is UTF-8.
    #[error(
        "{}, line {line}, column `{column}`: invalid UTF-8; if the file is Latin-1 or Windows-1252, declare `encoding: latin-1` on ingest_data",
        path.display()
    )]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// The line where the record starts, from 1 (the header).
        line: u64,
        /// The column of the first invalid field.
        column: String,
    },

    /// The CSV structure is broken, such as a record with more or fewer
    /// fields than the header.
    #[error("{}, line {line}: invalid CSV: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line where the record starts.
        line: u64,
        /// The problem, in words.
        message: String,
    },

    /// A file has more rows than the join can number.
    #[error(
        "{}: more than {max} data rows; ingest_data numbers rows with 32 bits, so split the file or filter it first",
        path.display()
    )]
    TooManyRows {
        /// The file.
        path: PathBuf,
        /// The largest number of data rows a file may have.
        max: u64,
    },

    /// The `encoding` parameter names an encoding ingest_data cannot read.
    #[error("unsupported encoding `{0}`; use one of: utf-8, latin-1, windows-1252")]
    UnsupportedEncoding(String),
}

/// Shortens a field's text for an error message, so that a stray
/// multi-line comment does not flood the terminal.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    if text.chars().count() <= MAX_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head}…")
    }
}
