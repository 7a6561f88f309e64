//! Steps on tables: generate one of a given size, and sum a column.

use flowrun_artifacts::{Artifact, ArtifactKind, Column, ColumnData, Table};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Registry, Step, StepContext, StepError, StepOutputs,
    StepSignature,
};
use serde_json::json;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(MakeTable::new(), flowrun_engine::code_fingerprint!());
    registry.register(SumColumn::new(), flowrun_engine::code_fingerprint!());
    registry.register(CountLines::new(), flowrun_engine::code_fingerprint!());
}

/// Counts the lines of a text file; the file's contents enter the cache key.
struct CountLines(StepSignature);

impl CountLines {
    fn new() -> Self {
        CountLines(
            StepSignature::new("count_lines", "count the lines of a text file")
                .param(
                    ParamSpec::required("path", ParamType::Path, "the file to read")
                        .hash_contents(),
                )
                .param(crate::trace_param())
                .output("count", ArtifactKind::Json, "{\"value\": number of lines}"),
        )
    }
}

impl Step for CountLines {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(ctx.param_str("trace")?, ctx.step_id())?;
        let path = ctx.param_str("path")?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| StepError::failed(format!("failed to read {path}: {e}")))?;
        let lines = text.lines().count();
        ctx.log_metric("lines", lines as f64);
        Ok(StepOutputs::new().with("count", Artifact::Json(json!({"value": lines}))))
    }
}

/// Generates a table with `rows` rows: `x` = 0, 1, 2, ... times `scale`,
/// and a string column.
struct MakeTable(StepSignature);

impl MakeTable {
    fn new() -> Self {
        MakeTable(
            StepSignature::new("make_table", "generate a table of a given size")
                .param(
                    ParamSpec::optional(
                        "rows",
                        ParamType::Int,
                        ParamValue::Int(10),
                        "number of rows",
                    )
                    .with_range(0.0, 50_000_000.0),
                )
                .param(ParamSpec::optional(
                    "scale",
                    ParamType::Float,
                    ParamValue::Float(1.0),
                    "multiplier of x",
                ))
                .param(crate::trace_param())
                .output(
                    "table",
                    ArtifactKind::Table,
                    "columns x (float) and name (string)",
                ),
        )
    }
}

impl Step for MakeTable {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(ctx.param_str("trace")?, ctx.step_id())?;
        let rows = usize::try_from(ctx.param_i64("rows")?)
            .map_err(|_| StepError::failed("rows must not be negative"))?;
        let scale = ctx.param_f64("scale")?;
        let x = (0..rows).map(|i| i as f64 * scale).collect();
        let name = (0..rows).map(|i| Some(format!("row-{i}"))).collect();
        let table = Table::new(vec![
            Column::new("x", ColumnData::Float64(x)),
            Column::new("name", ColumnData::Utf8(name)),
        ])?;
        Ok(StepOutputs::new().with("table", Artifact::Table(table)))
    }
}

/// Sums column `x` of a table.
struct SumColumn(StepSignature);

impl SumColumn {
    fn new() -> Self {
        SumColumn(
            StepSignature::new("sum_column", "sum column x of a table")
                .input(
                    "table",
                    ArtifactKind::Table,
                    "a table with a float column x",
                )
                .param(crate::trace_param())
                .output(
                    "sum",
                    ArtifactKind::Json,
                    "{\"value\": sum of x, \"rows\": n}",
                ),
        )
    }
}

impl Step for SumColumn {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(ctx.param_str("trace")?, ctx.step_id())?;
        let table = ctx.input_table("table")?;
        let sum: f64 = table.f64_column("x")?.iter().sum();
        ctx.log_metric("sum", sum);
        Ok(StepOutputs::new().with(
            "sum",
            Artifact::Json(json!({"value": sum, "rows": table.num_rows()})),
        ))
    }
}
