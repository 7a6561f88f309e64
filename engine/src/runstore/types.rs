//! The records that go into the run store and the ones that come out of it.
//!
//! Every record returned to callers derives `serde::Serialize`, so the CLI
//! can print it as JSON. Floats that JSON cannot hold (NaN, inf, -inf) are
//! written as the strings `"NaN"`, `"inf"` and `"-inf"`. This module contains
//! plain data only and never touches SQLite.

use crate::param::{ParamValue, format_float};
use flowrun_artifacts::ArtifactKind;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// Defines a status-like enum stored as lowercase text, with `as_str`,
/// `parse`, `Display` and `Serialize` as that text.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Returns the lowercase name stored in the database and shown
            /// by the CLI.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses the lowercase name written by [`Self::as_str`].
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// The state of a whole run.
    pub enum RunStatus {
        /// The run has started and has not finished.
        Running => "running",
        /// Every step succeeded or came from the cache.
        Succeeded => "succeeded",
        /// At least one step failed.
        Failed => "failed",
        /// The user stopped the run (Ctrl-C).
        Cancelled => "cancelled",
        /// The process died without finishing the run, found by a later
        /// flowrun process.
        Interrupted => "interrupted",
    }
}

text_enum! {
    /// The state of one step within a run.
    pub enum StepStatus {
        /// Waiting for its inputs.
        Pending => "pending",
        /// Running now.
        Running => "running",
        /// Ran and succeeded.
        Succeeded => "succeeded",
        /// Taken from the cache without running.
        Cached => "cached",
        /// Ran and failed after its last attempt.
        Failed => "failed",
        /// Not run because a step it depends on failed or was cancelled.
        Skipped => "skipped",
        /// Stopped by a cancellation or a timeout.
        Cancelled => "cancelled",
        /// Left unfinished when its run ended, for example when the process
        /// died.
        Interrupted => "interrupted",
    }
}

text_enum! {
    /// The lifecycle stage of a registered model version.
    pub enum Stage {
        /// Registered, not yet promoted.
        None => "none",
        /// Under evaluation before production.
        Staging => "staging",
        /// Served in production. At most one version per model has it.
        Production => "production",
        /// Retired, for example replaced by a newer production version.
        Archived => "archived",
    }
}

impl StepStatus {
    /// Returns whether the step is done: anything but pending or running.
    pub fn is_final(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The pipeline name.
    pub pipeline: String,
    /// The pipeline file as given on the command line.
    pub pipeline_file: String,
    /// The pipeline-level parameters after overrides were applied.
    pub params: BTreeMap<String, ParamValue>,
    /// The command line, joined with spaces.
    pub command_line: String,
    /// The id of the flowrun process.
    pub pid: u32,
    /// The pipeline's steps and the connections between them, when known.
    pub graph: Option<RunGraph>,
}

/// A pipeline's graph as it was when a run started: every step, the
/// outputs it reads and the steps it must follow. The run store keeps it
/// with the run because the pipeline file may change afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunGraph {
    /// The steps in the pipeline's order.
    pub steps: Vec<GraphStep>,
}

/// A step of a [`RunGraph`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphStep {
    /// The step id in the pipeline.
    pub id: String,
    /// The registered step it uses.
    pub uses: String,
    /// Each input and the output it reads, as `step.output`.
    pub inputs: BTreeMap<String, String>,
    /// The steps it runs after without reading their outputs.
    pub after: Vec<String>,
}

/// A step run about to start, or one recorded whole.
#[derive(Debug, Clone)]
pub struct NewStepRun {
    /// The step id in the pipeline (the YAML key).
    pub step_id: String,
    /// The registered step name (`uses:` in YAML).
    pub step_name: String,
    /// The cache key, when the step is cacheable.
    pub cache_key: Option<String>,
    /// Every input to the cache key, kept so that a later miss can name the
    /// input that changed.
    pub key_detail: Option<serde_json::Value>,
    /// The resolved step parameters.
    pub params: BTreeMap<String, ParamValue>,
}

/// The outcome of a step run.
#[derive(Debug, Clone)]
pub struct StepFinish {
    /// The final status; pending and running are rejected.
    pub status: StepStatus,
    /// How many times the step ran (0 for cached and skipped steps).
    pub attempts: u32,
    /// The wall-clock time of all attempts, in milliseconds.
    pub duration_ms: u64,
    /// The reason the cache was not used, as a sentence.
    pub miss_reason: Option<String>,
    /// The error of the last attempt.
    pub error: Option<String>,
}

/// An artifact written or reused by a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactRecord {
    /// The content hash (hex).
    pub hash: String,
    /// The artifact kind.
    pub kind: ArtifactKind,
    /// The size of the stored file in bytes.
    pub size: u64,
    /// The storage path, as the artifact store reports it.
    pub path: String,
}

/// One line of `flowrun runs`: a run without its steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run id, such as `20261204-201530-3f9a`.
    pub id: String,
    /// The pipeline name.
    pub pipeline: String,
    /// The pipeline file as given on the command line.
    pub pipeline_file: String,
    /// The run status.
    pub status: RunStatus,
    /// The start time (RFC 3339, UTC).
    pub started_at: String,
    /// The end time (RFC 3339, UTC), unset while running.
    pub ended_at: Option<String>,
    /// The wall-clock duration in milliseconds, unset while running.
    pub duration_ms: Option<i64>,
    /// The command line, joined with spaces.
    pub command_line: String,
    /// The id of the flowrun process that ran it.
    pub pid: u32,
    /// The flowrun version that ran it.
    pub flowrun_version: String,
}

/// A run with its parameters and steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    /// The run itself.
    #[serde(flatten)]
    pub run: RunSummary,
    /// The pipeline-level parameters as resolved.
    #[serde(serialize_with = "serialize_params")]
    pub params: BTreeMap<String, ParamValue>,
    /// The step runs in the order they started.
    pub steps: Vec<StepRunDetail>,
    /// The pipeline's graph when the run started; unset for runs recorded
    /// by flowrun versions that did not keep it.
    pub graph: Option<RunGraph>,
}

/// A step run with its parameters, metrics, tags and lineage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRunDetail {
    /// The step run id, unique in the store.
    pub id: i64,
    /// The step id in the pipeline.
    pub step_id: String,
    /// The registered step name.
    pub step_name: String,
    /// The step status.
    pub status: StepStatus,
    /// How many times the step ran.
    pub attempts: u32,
    /// The start time (RFC 3339, UTC).
    pub started_at: String,
    /// The end time (RFC 3339, UTC), unset while running.
    pub ended_at: Option<String>,
    /// The wall-clock time in milliseconds, unset while running.
    pub duration_ms: Option<i64>,
    /// The cache key.
    pub cache_key: Option<String>,
    /// The reason the cache was not used.
    pub miss_reason: Option<String>,
    /// The error of the last attempt.
    pub error: Option<String>,
    /// The inputs of the cache key.
    pub key_detail: Option<serde_json::Value>,
    /// The resolved step parameters.
    #[serde(serialize_with = "serialize_params")]
    pub params: BTreeMap<String, ParamValue>,
    /// Logged metrics in the order they were logged.
    pub metrics: Vec<Metric>,
    /// Tags by key.
    pub tags: BTreeMap<String, String>,
    /// The artifacts the step read, by input name.
    pub inputs: Vec<InputRecord>,
    /// The artifacts the step produced, by output name.
    pub outputs: Vec<OutputRecord>,
}

/// A metric value logged by a step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// The metric name.
    pub key: String,
    /// The value; NaN and infinities are kept exactly.
    #[serde(serialize_with = "serialize_float")]
    pub value: f64,
}

/// An artifact a step read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputRecord {
    /// The declared input name.
    pub input: String,
    /// The content hash of the artifact.
    pub hash: String,
}

/// An artifact a step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputRecord {
    /// The declared output name.
    pub output: String,
    /// The artifact.
    #[serde(flatten)]
    pub artifact: ArtifactRecord,
}

/// The latest successful or cached run of a step, used to explain a cache
/// miss.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviousStep {
    /// The run it belongs to.
    pub run_id: String,
    /// The step run id.
    pub step_run_id: i64,
    /// `succeeded` or `cached`.
    pub status: StepStatus,
    /// The cache key it had.
    pub cache_key: Option<String>,
    /// The inputs of that cache key.
    pub key_detail: Option<serde_json::Value>,
}

/// A version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    /// The model name.
    pub model: String,
    /// The version number, from 1.
    pub version: i64,
    /// The content hash of the model artifact.
    pub artifact_hash: String,
    /// The run that registered it.
    pub run_id: String,
    /// The step run that registered it.
    pub step_run_id: i64,
    /// When it was registered (RFC 3339, UTC).
    pub created_at: String,
    /// The model's metrics when it was registered.
    pub metrics: serde_json::Value,
    /// The current stage.
    pub stage: Stage,
}

/// A change of stage of a model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageTransition {
    /// The model name.
    pub model: String,
    /// The version number.
    pub version: i64,
    /// The stage before.
    pub from_stage: Stage,
    /// The stage after.
    pub to_stage: Stage,
    /// When it changed (RFC 3339, UTC).
    pub at: String,
    /// The user who changed it: `$USER`, or `flowrun` when unset.
    pub by: String,
    /// The reason for the change.
    pub reason: String,
}

/// Writes a float as a JSON number, or as `"NaN"`, `"inf"` or `"-inf"`.
fn serialize_float<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_str(&format_float(*value))
    }
}

/// Writes parameters through [`ParamValue::to_json`], which spells
/// non-finite floats as strings.
fn serialize_params<S: Serializer>(
    params: &BTreeMap<String, ParamValue>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(params.iter().map(|(name, value)| (name, value.to_json())))
}
