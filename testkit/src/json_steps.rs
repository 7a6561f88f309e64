//! Steps on JSON numbers: emit a constant, add, scale, always fail, and a
//! no-op for graph-size benchmarks.

use flowrun_artifacts::{Artifact, ArtifactKind};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Registry, Step, StepContext, StepError, StepOutputs,
    StepSignature,
};
use serde_json::json;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(Emit::new(), flowrun_engine::code_fingerprint!());
    registry.register(Add::new(), flowrun_engine::code_fingerprint!());
    registry.register(Scale::new(), flowrun_engine::code_fingerprint!());
    registry.register(Fail::new(), flowrun_engine::code_fingerprint!());
    registry.register(Noop::new(), flowrun_engine::code_fingerprint!());
}

fn number(value: &serde_json::Value, what: &str) -> Result<f64, StepError> {
    value["value"]
        .as_f64()
        .ok_or_else(|| StepError::failed(format!("{what} has no numeric `value`")))
}

/// Emits `{"value": value}`.
struct Emit(StepSignature);

impl Emit {
    fn new() -> Self {
        Emit(
            StepSignature::new("emit", "emit a constant number")
                .param(ParamSpec::optional(
                    "value",
                    ParamType::Float,
                    ParamValue::Float(1.0),
                    "the number",
                ))
                .param(ParamSpec::optional(
                    "label",
                    ParamType::String,
                    ParamValue::String(String::new()),
                    "a free label",
                ))
                .param(ParamSpec::optional(
                    "negate",
                    ParamType::Bool,
                    ParamValue::Bool(false),
                    "emit -value instead",
                ))
                .param(crate::trace_param())
                .output("out", ArtifactKind::Json, "the number as {\"value\": x}"),
        )
    }
}

impl Step for Emit {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(ctx.param_str("trace")?, ctx.step_id())?;
        let mut value = ctx.param_f64("value")?;
        if ctx.param_bool("negate")? {
            value = -value;
        }
        ctx.log_metric("value", value);
        let label = ctx.param_str("label")?;
        Ok(StepOutputs::new().with(
            "out",
            Artifact::Json(json!({"value": value, "label": label})),
        ))
    }
}

/// Adds two numbers.
struct Add(StepSignature);

impl Add {
    fn new() -> Self {
        Add(StepSignature::new("add", "add two numbers")
            .input("a", ArtifactKind::Json, "first number")
            .input("b", ArtifactKind::Json, "second number")
            .param(crate::trace_param())
            .output("sum", ArtifactKind::Json, "a + b"))
    }
}

impl Step for Add {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(ctx.param_str("trace")?, ctx.step_id())?;
        let sum =
            number(ctx.input_json("a")?, "input a")? + number(ctx.input_json("b")?, "input b")?;
        ctx.log_metric("sum", sum);
        Ok(StepOutputs::new().with("sum", Artifact::Json(json!({"value": sum}))))
    }
}

/// Multiplies a number by a factor.
struct Scale(StepSignature);

impl Scale {
    fn new() -> Self {
        Scale(
            StepSignature::new("scale", "multiply a number by a factor")
                .input("x", ArtifactKind::Json, "the number")
                .param(ParamSpec::optional(
                    "factor",
                    ParamType::Float,
                    ParamValue::Float(2.0),
                    "the factor",
                ))
                .param(crate::trace_param())
                .output("out", ArtifactKind::Json, "x * factor"),
        )
    }
}

impl Step for Scale {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(ctx.param_str("trace")?, ctx.step_id())?;
        let value = number(ctx.input_json("x")?, "input x")? * ctx.param_f64("factor")?;
        ctx.log_metric("value", value);
        Ok(StepOutputs::new().with("out", Artifact::Json(json!({"value": value}))))
    }
}

/// Always fails with its message.
struct Fail(StepSignature);

impl Fail {
    fn new() -> Self {
        Fail(
            StepSignature::new("fail", "always fail")
                .optional_input("x", ArtifactKind::Json, "ignored")
                .param(ParamSpec::optional(
                    "message",
                    ParamType::String,
                    ParamValue::String("failed on purpose".into()),
                    "the error message",
                ))
                .param(crate::trace_param())
                .output("out", ArtifactKind::Json, "never produced"),
        )
    }
}

impl Step for Fail {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(
            ctx.param_str("trace")?,
            &format!("{} attempt {}", ctx.step_id(), ctx.attempt()),
        )?;
        Err(StepError::failed(ctx.param_str("message")?))
    }
}

/// Does nothing but pass a small value on; used to measure the engine's
/// own overhead on large graphs.
struct Noop(StepSignature);

impl Noop {
    fn new() -> Self {
        Noop(
            StepSignature::new("noop", "do nothing")
                .optional_input("in", ArtifactKind::Json, "ignored")
                .param(ParamSpec::optional(
                    "n",
                    ParamType::Int,
                    ParamValue::Int(0),
                    "a number that makes the key unique",
                ))
                .output("out", ArtifactKind::Json, "{\"n\": n}"),
        )
    }
}

impl Step for Noop {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        Ok(StepOutputs::new().with("out", Artifact::Json(json!({"n": ctx.param_i64("n")?}))))
    }
}
