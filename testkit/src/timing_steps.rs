//! Steps with behaviour over time: one that sleeps while checking for
//! cancellation, and one that fails a set number of times before it
//! succeeds.

use flowrun_artifacts::{Artifact, ArtifactKind};
use flowrun_engine::{
    ParamSpec, ParamType, ParamValue, Registry, Step, StepContext, StepError, StepOutputs,
    StepSignature,
};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) fn register(registry: &mut Registry) {
    registry.register(Sleep::new(), flowrun_engine::code_fingerprint!());
    registry.register(Flaky::new(), flowrun_engine::code_fingerprint!());
}

/// Sleeps for `seconds`, checking for cancellation every 10 ms.
struct Sleep(StepSignature);

impl Sleep {
    fn new() -> Self {
        Sleep(
            StepSignature::new("sleep", "sleep, checking for cancellation")
                .optional_input("in", ArtifactKind::Json, "ignored")
                .param(
                    ParamSpec::optional(
                        "seconds",
                        ParamType::Float,
                        ParamValue::Float(1.0),
                        "how long to sleep, in seconds",
                    )
                    .with_range(0.0, 86_400.0),
                )
                .param(crate::trace_param())
                .output("out", ArtifactKind::Json, "{\"slept\": seconds}"),
        )
    }
}

impl Step for Sleep {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        crate::trace(ctx.param_str("trace")?, &format!("{} start", ctx.step_id()))?;
        let seconds = ctx.param_f64("seconds")?;
        let until = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
        while Instant::now() < until {
            ctx.check_cancelled()?;
            std::thread::sleep(Duration::from_millis(10));
        }
        crate::trace(ctx.param_str("trace")?, &format!("{} end", ctx.step_id()))?;
        Ok(StepOutputs::new().with("out", Artifact::Json(json!({"slept": seconds}))))
    }
}

/// Fails on its first `fail_times` attempts, then succeeds; every attempt
/// appends its number and a Unix timestamp in milliseconds to the trace.
struct Flaky(StepSignature);

impl Flaky {
    fn new() -> Self {
        Flaky(
            StepSignature::new("flaky", "fail a given number of attempts, then succeed")
                .param(ParamSpec::optional(
                    "fail_times",
                    ParamType::Int,
                    ParamValue::Int(2),
                    "attempts that fail before one succeeds",
                ))
                .param(crate::trace_param())
                .output("out", ArtifactKind::Json, "{\"attempt\": n}"),
        )
    }
}

impl Step for Flaky {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        crate::trace(
            ctx.param_str("trace")?,
            &format!("attempt {} at {millis}", ctx.attempt()),
        )?;
        let fail_times = ctx.param_i64("fail_times")?;
        if i64::from(ctx.attempt()) <= fail_times {
            return Err(StepError::failed(format!(
                "attempt {} failed on purpose",
                ctx.attempt()
            )));
        }
        Ok(StepOutputs::new().with("out", Artifact::Json(json!({"attempt": ctx.attempt()}))))
    }
}
