//! In-memory tables: named columns of equal length.

use crate::ArtifactError;

/// The values of one column.
///
/// Floating-point columns mark a missing value with NaN, as pandas and most
/// learners do; the other types use `None`. When a table is written as Arrow
/// IPC, a NaN float becomes a null, so a reader in pandas or polars sees a
/// missing value in both cases.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// 64-bit floats; NaN is a missing value.
    Float64(Vec<f64>),
    /// 64-bit signed integers.
    Int64(Vec<Option<i64>>),
    /// UTF-8 strings.
    Utf8(Vec<Option<String>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl ColumnData {
    /// Returns the number of values in the column.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Float64(v) => v.len(),
            ColumnData::Int64(v) => v.len(),
            ColumnData::Utf8(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
        }
    }

    /// Returns true when the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the name of the column's type, as shown in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnData::Float64(_) => "float64",
            ColumnData::Int64(_) => "int64",
            ColumnData::Utf8(_) => "utf8",
            ColumnData::Bool(_) => "bool",
        }
    }
}

/// One named column of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column name, unique within its table.
    pub name: String,
    /// The column values.
    pub data: ColumnData,
}

impl Column {
    /// Creates a column.
    pub fn new(name: impl Into<String>, data: ColumnData) -> Self {
        Column {
            name: name.into(),
            data,
        }
    }
}

/// A table of named columns of equal length, in a fixed column order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    columns: Vec<Column>,
    num_rows: usize,
}

impl Table {
    /// Builds a table, checking that column names are unique and that every
    /// column has the same length.
    pub fn new(columns: Vec<Column>) -> Result<Self, ArtifactError> {
        let num_rows = columns.first().map_or(0, |c| c.data.len());
        for (i, column) in columns.iter().enumerate() {
            if column.data.len() != num_rows {
                return Err(ArtifactError::InvalidTable(format!(
                    "column `{}` has {} rows but column `{}` has {num_rows}",
                    column.name,
                    column.data.len(),
                    columns[0].name
                )));
            }
            if columns[..i].iter().any(|c| c.name == column.name) {
                return Err(ArtifactError::InvalidTable(format!(
                    "column `{}` appears twice",
                    column.name
                )));
            }
        }
        Ok(Table { columns, num_rows })
    }

    /// Returns the number of rows.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Returns the columns in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Consumes the table and returns its columns.
    pub fn into_columns(self) -> Vec<Column> {
        self.columns
    }

    /// Returns the column names in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Looks up a column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Looks up a column by name, or fails with an error that lists the
    /// columns the table has.
    pub fn require(&self, name: &str) -> Result<&Column, ArtifactError> {
        self.column(name)
            .ok_or_else(|| ArtifactError::MissingColumn {
                column: name.to_string(),
                available: self.columns.iter().map(|c| c.name.clone()).collect(),
            })
    }

    /// Looks up a float column by name.
    pub fn f64_column(&self, name: &str) -> Result<&[f64], ArtifactError> {
        match &self.require(name)?.data {
            ColumnData::Float64(values) => Ok(values),
            other => Err(ArtifactError::ColumnType {
                column: name.to_string(),
                expected: "float64",
                found: other.type_name(),
            }),
        }
    }

    /// Looks up a string column by name.
    pub fn utf8_column(&self, name: &str) -> Result<&[Option<String>], ArtifactError> {
        match &self.require(name)?.data {
            ColumnData::Utf8(values) => Ok(values),
            other => Err(ArtifactError::ColumnType {
                column: name.to_string(),
                expected: "utf8",
                found: other.type_name(),
            }),
        }
    }
}
