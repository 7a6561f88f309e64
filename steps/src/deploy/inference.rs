//! The `batch_inference` step: sends a batch of orders to the store's
//! running server over HTTP and keeps the predictions.
//!
//! The batch is a CSV file (`csv_path`) or the connected `batch` table,
//! such as a sample of `clean_data.x_test`. Rows go to `/invocations` in
//! chunks of `chunk_rows` as `dataframe_split` JSON, on the loopback
//! address. The output table is the batch with two more columns:
//! `prediction`, and `model_version`, the version that scored the row as
//! the server's response header names it (a deployment can swap the model
//! between two chunks). The same table is written as CSV to `output_csv`.
//!
//! A CSV file's columns that the served model reads as categorical (as its
//! `/metadata` lists them) are read as text, so that codes made of digits
//! stay strings. Other columns are read as float64 when every non-empty
//! field parses as a number, and as text otherwise. An empty numeric field
//! is a missing value, which the server rejects for numeric features.
//!
//! The step never loads a model: scoring is the server's work. It is not
//! cached, because its result depends on the version being served.

use super::{MAX_BATCH_ROWS, PORT};
use crate::models::range::ParamRange;
use flowrun_artifacts::{Artifact, ArtifactKind, Column, ColumnData, Table};
use flowrun_engine::server::ServerFiles;
use flowrun_engine::server::client::Client;
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Step, StepContext, StepError, StepOutputs, StepSignature,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

/// The range of `sample_rows`; 0 scores every row.
pub const SAMPLE_ROWS: ParamRange = ParamRange::int("sample_rows", 0, 1_000_000_000);

/// The range of `chunk_rows`.
pub const CHUNK_ROWS: ParamRange = ParamRange::int("chunk_rows", 1, MAX_BATCH_ROWS);

/// The `batch_inference` step.
pub struct BatchInference {
    signature: StepSignature,
}

impl Default for BatchInference {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchInference {
    /// Creates the step with its signature.
    pub fn new() -> Self {
        let signature = StepSignature::new(
            "batch_inference",
            "score a batch of orders with the running server and keep the predictions",
        )
        .optional_input(
            "batch",
            ArtifactKind::Table,
            "the rows to score, used when csv_path is empty",
        )
        .output(
            "predictions",
            ArtifactKind::Table,
            "the batch with `prediction` and `model_version` columns",
        )
        .param(ParamSpec::optional(
            "csv_path",
            ParamType::Path,
            ParamValue::String(String::new()),
            "CSV file of orders to score, with a header row; empty uses the `batch` input",
        ))
        .param(SAMPLE_ROWS.optional(
            ParamValue::Int(0),
            "score only the first N rows; 0 scores all",
        ))
        .param(ParamSpec::optional(
            "output_csv",
            ParamType::Path,
            ParamValue::String("predictions.csv".to_string()),
            "CSV file the predictions are written to; empty writes none",
        ))
        .param(PORT.optional(
            ParamValue::Int(0),
            "server port on 127.0.0.1; 0 uses the store's running server",
        ))
        .param(CHUNK_ROWS.optional(
            ParamValue::Int(1000),
            "rows per request; keep it at most the server's --max-rows",
        ))
        .not_cacheable();
        BatchInference { signature }
    }
}

impl Step for BatchInference {
    fn signature(&self) -> &StepSignature {
        &self.signature
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        let client = server_client(ctx)?;
        let batch = load_batch(ctx, &client)?;
        let chunk_rows = CHUNK_ROWS.read_usize(ctx)?;

        let mut predictions = Vec::with_capacity(batch.num_rows());
        let mut versions = Vec::with_capacity(batch.num_rows());
        let mut start = 0;
        while start < batch.num_rows() {
            ctx.check_cancelled()?;
            let end = (start + chunk_rows).min(batch.num_rows());
            let body = dataframe_split(&batch, start..end);
            let answer = client.invoke(&body).map_err(|e| {
                StepError::failed(format!("scoring rows {start}..{end} failed: {e}"))
            })?;
            if answer.predictions.len() != end - start {
                return Err(StepError::failed(format!(
                    "the server returned {} predictions for {} rows",
                    answer.predictions.len(),
                    end - start
                )));
            }
            predictions.extend(answer.predictions);
            versions.extend(std::iter::repeat_n(Some(answer.model_version), end - start));
            start = end;
        }

        let distinct: std::collections::BTreeSet<&str> =
            versions.iter().flatten().map(String::as_str).collect();
        let versions_text = distinct.into_iter().collect::<Vec<_>>().join(", ");
        ctx.log_metric("rows_scored", predictions.len() as f64);
        ctx.set_tag("model_version", &versions_text);

        let mut columns = batch.into_columns();
        columns.push(Column::new("prediction", ColumnData::Float64(predictions)));
        columns.push(Column::new("model_version", ColumnData::Utf8(versions)));
        let table = Table::new(columns)?;

        let output = ctx.param_str("output_csv")?;
        let written = if output.is_empty() {
            String::new()
        } else {
            write_csv(&table, Path::new(output))?;
            format!(", written to {output}")
        };
        ctx.set_tag(
            "summary",
            &format!(
                "{} rows scored by {}{written}",
                table.num_rows(),
                if versions_text.is_empty() {
                    "the server"
                } else {
                    &versions_text
                }
            ),
        );
        tracing::info!(rows = table.num_rows(), versions = %versions_text, output, "batch scored");
        Ok(StepOutputs::new().with("predictions", Artifact::Table(table)))
    }
}

/// Reads the rows to score: the CSV file, else the `batch` input, cut to
/// `sample_rows`.
fn load_batch(ctx: &StepContext<'_>, client: &Client) -> Result<Table, StepError> {
    let csv_path = ctx.param_str("csv_path")?;
    let table = if csv_path.is_empty() {
        ctx.input_table("batch")
            .map_err(|_| {
                StepError::failed(
                    "no rows to score: set csv_path, or connect the `batch` input to a table",
                )
            })?
            .clone()
    } else {
        read_csv(Path::new(csv_path), &categorical_features(client)?)?
    };
    let keep = match SAMPLE_ROWS.read_usize(ctx)? {
        0 => table.num_rows(),
        n => n.min(table.num_rows()),
    };
    if keep == 0 {
        return Err(StepError::failed("the batch has no rows to score"));
    }
    Ok(head(table, keep)?)
}

fn head(table: Table, rows: usize) -> Result<Table, flowrun_artifacts::ArtifactError> {
    if rows == table.num_rows() {
        return Ok(table);
    }
    let columns = table
        .into_columns()
        .into_iter()
        .map(|c| {
            let data = match c.data {
                ColumnData::Float64(mut v) => {
                    v.truncate(rows);
                    ColumnData::Float64(v)
                }
                ColumnData::Int64(mut v) => {
                    v.truncate(rows);
                    ColumnData::Int64(v)
                }
                ColumnData::Utf8(mut v) => {
                    v.truncate(rows);
                    ColumnData::Utf8(v)
                }
                ColumnData::Bool(mut v) => {
                    v.truncate(rows);
                    ColumnData::Bool(v)
                }
            };
            Column::new(c.name, data)
        })
        .collect();
    Table::new(columns)
}

/// Returns a client for the `port` parameter, or for the store's running
/// server when it is 0.
fn server_client(ctx: &StepContext<'_>) -> Result<Client, StepError> {
    let port: u16 = PORT.read_int(ctx)?;
    if port != 0 {
        return Ok(Client::local(port));
    }
    let files = ServerFiles::new(ctx.store_dir());
    match files.status() {
        Ok(flowrun_engine::server::ServerStatus::Running(info)) => Ok(Client::for_server(&info)),
        Ok(_) => Err(StepError::failed(format!(
            "no server is running for store {}; start one with `flowrun serve --daemon` or run \
             pipelines/deployment.yaml, or set the `port` parameter",
            ctx.store_dir().display()
        ))),
        Err(e) => Err(StepError::failed(format!(
            "failed to find the store's server: {e}"
        ))),
    }
}

/// Returns the names of the served model's categorical features.
fn categorical_features(client: &Client) -> Result<BTreeSet<String>, StepError> {
    let metadata = client.get_json("/metadata").map_err(|e| {
        StepError::failed(format!("failed to read the served model's features: {e}"))
    })?;
    let features = metadata
        .get("features")
        .and_then(|f| f.as_array())
        .ok_or_else(|| StepError::failed("the server's /metadata has no `features` list"))?;
    Ok(features
        .iter()
        .filter(|f| f.get("type").and_then(|t| t.as_str()) == Some("categorical"))
        .filter_map(|f| f.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .collect())
}

/// Builds a `dataframe_split` body for rows `range` of `table`.
fn dataframe_split(table: &Table, range: std::ops::Range<usize>) -> Value {
    let names: Vec<&str> = table.column_names();
    let rows: Vec<Value> = range
        .map(|row| {
            Value::Array(
                table
                    .columns()
                    .iter()
                    .map(|c| cell_json(&c.data, row))
                    .collect(),
            )
        })
        .collect();
    json!({"dataframe_split": {"columns": names, "data": rows}})
}

fn cell_json(data: &ColumnData, row: usize) -> Value {
    match data {
        ColumnData::Float64(v) => {
            serde_json::Number::from_f64(v[row]).map_or(Value::Null, Value::Number)
        }
        ColumnData::Int64(v) => v[row].map_or(Value::Null, Value::from),
        ColumnData::Utf8(v) => v[row].clone().map_or(Value::Null, Value::String),
        ColumnData::Bool(v) => v[row].map_or(Value::Null, Value::Bool),
    }
}

/// Reads a CSV file with a header row into a table; the `categorical`
/// columns are read as text.
fn read_csv(path: &Path, categorical: &BTreeSet<String>) -> Result<Table, StepError> {
    let fail = |e: &dyn std::fmt::Display| {
        StepError::failed(format!(
            "failed to read the batch CSV {}: {e}",
            path.display()
        ))
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| fail(&e))?;
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| fail(&e))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut fields: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.map_err(|e| fail(&e))?;
        for (column, value) in fields.iter_mut().zip(record.iter()) {
            column.push(value.to_string());
        }
    }
    let columns = names
        .into_iter()
        .zip(fields)
        .map(|(name, values)| {
            let numeric = !categorical.contains(&name)
                && values
                    .iter()
                    .all(|v| v.trim().is_empty() || v.trim().parse::<f64>().is_ok());
            let data = if numeric {
                ColumnData::Float64(
                    values
                        .iter()
                        .map(|v| v.trim().parse().unwrap_or(f64::NAN))
                        .collect(),
                )
            } else {
                ColumnData::Utf8(
                    values
                        .into_iter()
                        .map(|v| (!v.is_empty()).then_some(v))
                        .collect(),
                )
            };
            Column::new(name, data)
        })
        .collect();
    Table::new(columns).map_err(|e| fail(&e))
}

/// Writes a table as CSV with a header row; missing values are empty.
fn write_csv(table: &Table, path: &Path) -> Result<(), StepError> {
    let fail = |e: &dyn std::fmt::Display| {
        StepError::failed(format!(
            "failed to write the predictions CSV {}: {e}",
            path.display()
        ))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(&e))?;
    }
    let mut writer = csv::Writer::from_path(path).map_err(|e| fail(&e))?;
    writer
        .write_record(table.column_names())
        .map_err(|e| fail(&e))?;
    for row in 0..table.num_rows() {
        let record: Vec<String> = table
            .columns()
            .iter()
            .map(|c| match &c.data {
                ColumnData::Float64(v) if v[row].is_nan() => String::new(),
                ColumnData::Float64(v) => v[row].to_string(),
                ColumnData::Int64(v) => v[row].map(|x| x.to_string()).unwrap_or_default(),
                ColumnData::Utf8(v) => v[row].clone().unwrap_or_default(),
                ColumnData::Bool(v) => v[row].map(|x| x.to_string()).unwrap_or_default(),
            })
            .collect();
        writer.write_record(&record).map_err(|e| fail(&e))?;
    }
    writer.flush().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_types_follow_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orders.csv");
        std::fs::write(&path, "price,zip,state\n10.5,01000,SP\n,02000,\n").unwrap();
        let categorical = BTreeSet::from(["zip".to_string()]);
        let table = read_csv(&path, &categorical).unwrap();

        let price = table.f64_column("price").unwrap();
        assert_eq!(price[0], 10.5);
        assert!(price[1].is_nan());
        assert_eq!(
            table.utf8_column("zip").unwrap(),
            [Some("01000".to_string()), Some("02000".to_string())]
        );
        assert_eq!(
            table.utf8_column("state").unwrap(),
            [Some("SP".to_string()), None]
        );
    }

    #[test]
    fn split_body_names_columns() {
        let table = Table::new(vec![
            Column::new("a", ColumnData::Float64(vec![1.0, f64::NAN])),
            Column::new("b", ColumnData::Utf8(vec![Some("x".into()), None])),
        ])
        .unwrap();
        let body = dataframe_split(&table, 0..2);
        assert_eq!(
            body,
            json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, "x"], [null, null]]}})
        );
    }

    #[test]
    fn written_csv_leaves_missing_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/out.csv");
        let table = Table::new(vec![
            Column::new("prediction", ColumnData::Float64(vec![3.5, f64::NAN])),
            Column::new(
                "model_version",
                ColumnData::Utf8(vec![Some("m/1".into()), None]),
            ),
        ])
        .unwrap();
        write_csv(&table, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "prediction,model_version\n3.5,m/1\n,\n");
    }
}
