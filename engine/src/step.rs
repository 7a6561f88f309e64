//! The contract between the engine and a step.
//!
//! A step is a value implementing [`Step`]: a [`StepSignature`] that declares
//! its parameters, inputs and outputs, and a `run` function that turns typed
//! inputs into typed outputs. The engine validates pipelines against the
//! signature before anything runs, so `run` may assume every declared
//! parameter is present with its declared type and every required input is
//! there with its declared kind.
//!
//! A step must be a pure function of its parameters, inputs and code for the
//! cache to be correct. A step with side effects (deploying a model, sending
//! a batch to a server) sets [`StepSignature::cacheable`] to false.

use crate::param::{ParamType, ParamValue};
use flowrun_artifacts::{Artifact, ArtifactKind, Model, Table};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A declared parameter of a step.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// The parameter name, unique within the step.
    pub name: String,
    /// The declared type; values are converted to it.
    pub ty: ParamType,
    /// The default; `None` makes the parameter required.
    pub default: Option<ParamValue>,
    /// For string parameters, the only values allowed.
    pub choices: Option<Vec<String>>,
    /// A one-line description shown by `flowrun steps`.
    pub doc: String,
    /// For path parameters: the contents of the file or folder enter the
    /// step's cache key, so that changed data re-runs the step.
    pub hash_contents: bool,
    /// For int and float parameters: the inclusive range of valid values,
    /// checked when the pipeline is validated, before anything runs.
    pub range: Option<(f64, f64)>,
}

impl ParamSpec {
    /// Declares a required parameter.
    pub fn required(name: &str, ty: ParamType, doc: &str) -> Self {
        ParamSpec {
            name: name.to_string(),
            ty,
            default: None,
            choices: None,
            doc: doc.to_string(),
            hash_contents: false,
            range: None,
        }
    }

    /// Declares a parameter with a default.
    pub fn optional(name: &str, ty: ParamType, default: ParamValue, doc: &str) -> Self {
        ParamSpec {
            default: Some(default),
            ..ParamSpec::required(name, ty, doc)
        }
    }

    /// Makes the contents of the file or folder named by this path
    /// parameter part of the step's cache key (see `engine::key`).
    pub fn hash_contents(mut self) -> Self {
        self.hash_contents = true;
        self
    }

    /// Restricts an int or float parameter to `min..=max`. NaN is outside
    /// every range.
    pub fn with_range(mut self, min: f64, max: f64) -> Self {
        self.range = Some((min, max));
        self
    }

    /// Checks a typed value against the declared range. Returns a sentence
    /// for the error message when it is outside.
    pub fn check_range(&self, value: &ParamValue) -> Result<(), String> {
        let (Some((min, max)), Some(number)) = (self.range, value.as_f64()) else {
            return Ok(());
        };
        if number >= min && number <= max {
            return Ok(());
        }
        let show = |x: f64| match self.ty {
            ParamType::Int => format!("{}", x as i64),
            _ => crate::param::format_float(x),
        };
        Err(format!(
            "must be between {} and {}, but it is {value}",
            show(min),
            show(max)
        ))
    }

    /// Restricts a string parameter to a fixed set of values.
    pub fn with_choices(mut self, choices: &[&str]) -> Self {
        self.choices = Some(choices.iter().map(|c| c.to_string()).collect());
        self
    }
}

/// A declared input of a step.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The input name, unique within the step.
    pub name: String,
    /// The kind of artifact the input takes.
    pub kind: ArtifactKind,
    /// Whether a pipeline may leave the input unconnected.
    pub optional: bool,
    /// A one-line description.
    pub doc: String,
}

/// A declared output of a step.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// The output name, unique within the step.
    pub name: String,
    /// The kind of artifact the output is.
    pub kind: ArtifactKind,
    /// A one-line description.
    pub doc: String,
}

/// Everything the engine knows about a step before running it.
#[derive(Debug, Clone)]
pub struct StepSignature {
    /// The name pipelines use to refer to the step (`uses:` in YAML).
    pub name: String,
    /// A one-line description.
    pub doc: String,
    /// Declared parameters.
    pub params: Vec<ParamSpec>,
    /// Declared inputs.
    pub inputs: Vec<InputSpec>,
    /// Declared outputs.
    pub outputs: Vec<OutputSpec>,
    /// False for steps with side effects, which are never taken from cache.
    pub cacheable: bool,
}

impl StepSignature {
    /// Starts a signature with no parameters, inputs or outputs.
    pub fn new(name: &str, doc: &str) -> Self {
        StepSignature {
            name: name.to_string(),
            doc: doc.to_string(),
            params: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            cacheable: true,
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, spec: ParamSpec) -> Self {
        self.params.push(spec);
        self
    }

    /// Adds a required input.
    pub fn input(mut self, name: &str, kind: ArtifactKind, doc: &str) -> Self {
        self.inputs.push(InputSpec {
            name: name.to_string(),
            kind,
            optional: false,
            doc: doc.to_string(),
        });
        self
    }

    /// Adds an input that a pipeline may leave unconnected.
    pub fn optional_input(mut self, name: &str, kind: ArtifactKind, doc: &str) -> Self {
        self.inputs.push(InputSpec {
            name: name.to_string(),
            kind,
            optional: true,
            doc: doc.to_string(),
        });
        self
    }

    /// Adds an output.
    pub fn output(mut self, name: &str, kind: ArtifactKind, doc: &str) -> Self {
        self.outputs.push(OutputSpec {
            name: name.to_string(),
            kind,
            doc: doc.to_string(),
        });
        self
    }

    /// Marks the step as having side effects, so it is never cached.
    pub fn not_cacheable(mut self) -> Self {
        self.cacheable = false;
        self
    }

    /// Looks up a declared parameter.
    pub fn find_param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Looks up a declared input.
    pub fn find_input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|p| p.name == name)
    }

    /// Looks up a declared output.
    pub fn find_output(&self, name: &str) -> Option<&OutputSpec> {
        self.outputs.iter().find(|p| p.name == name)
    }
}

/// A fingerprint of a step's source code, computed at build time by the
/// `flowrun-build` helper from the step's module and the modules it uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeFingerprint(pub String);

/// A unit of work that a pipeline can use by name.
pub trait Step: Send + Sync {
    /// Returns the step's declared name, parameters, inputs and outputs.
    fn signature(&self) -> &StepSignature;

    /// Runs the step once.
    ///
    /// Long steps call [`StepContext::check_cancelled`] often enough (about
    /// once a second) for timeouts and Ctrl-C to take effect.
    fn run(&self, ctx: &StepContext<'_>) -> Result<StepOutputs, StepError>;
}

/// The error a step returns.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step failed; the message says why and what to do.
    #[error("{0}")]
    Failed(String),
    /// The step stopped because the run was cancelled or its timeout passed.
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl StepError {
    /// Creates a failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        StepError::Failed(message.into())
    }
}

impl From<flowrun_artifacts::ArtifactError> for StepError {
    fn from(error: flowrun_artifacts::ArtifactError) -> Self {
        StepError::Failed(error.to_string())
    }
}

/// The outputs and metrics of a successful step.
#[derive(Debug, Default)]
pub struct StepOutputs {
    /// Output artifacts by declared output name.
    pub artifacts: BTreeMap<String, Artifact>,
}

impl StepOutputs {
    /// Starts an empty set of outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an output artifact.
    pub fn with(mut self, name: &str, artifact: Artifact) -> Self {
        self.artifacts.insert(name.to_string(), artifact);
        self
    }
}

/// A flag shared between the executor and running steps; once set, steps
/// should stop at their next [`StepContext::check_cancelled`].
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Creates a token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Returns whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a running step can see and do: its parameters, its inputs, the
/// cancellation flag and the metric log.
pub struct StepContext<'a> {
    pub(crate) step_id: &'a str,
    pub(crate) params: &'a BTreeMap<String, ParamValue>,
    pub(crate) inputs: &'a BTreeMap<String, Arc<Artifact>>,
    pub(crate) cancel: &'a CancelToken,
    pub(crate) deadline: Option<Instant>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) attempt: u32,
    pub(crate) store_dir: &'a Path,
    pub(crate) run_id: &'a str,
    pub(crate) metrics: std::sync::Mutex<Vec<(String, f64)>>,
    pub(crate) tags: std::sync::Mutex<Vec<(String, String)>>,
    pub(crate) progress: Option<&'a indicatif::MultiProgress>,
}

impl<'a> StepContext<'a> {
    /// Creates a context for running a step outside the executor, as unit
    /// tests of steps do.
    pub fn standalone(
        step_id: &'a str,
        params: &'a BTreeMap<String, ParamValue>,
        inputs: &'a BTreeMap<String, Arc<Artifact>>,
        cancel: &'a CancelToken,
        store_dir: &'a Path,
    ) -> Self {
        StepContext {
            step_id,
            params,
            inputs,
            cancel,
            deadline: None,
            timeout: None,
            attempt: 1,
            store_dir,
            run_id: "standalone",
            metrics: Default::default(),
            tags: Default::default(),
            progress: None,
        }
    }

    /// Returns the id of the step in its pipeline (the YAML key).
    pub fn step_id(&self) -> &str {
        self.step_id
    }

    /// Returns the id of the run.
    pub fn run_id(&self) -> &str {
        self.run_id
    }

    /// Returns the attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Returns the store directory (`.flowrun/` by default), for steps that
    /// keep state beside the run store, such as a model deployer.
    pub fn store_dir(&self) -> &Path {
        self.store_dir
    }

    /// Returns all resolved parameters.
    pub fn params(&self) -> &BTreeMap<String, ParamValue> {
        self.params
    }

    /// Returns a parameter. Validation guarantees that declared parameters
    /// are present, so a missing one is an error in the step's signature.
    pub fn param(&self, name: &str) -> Result<&ParamValue, StepError> {
        self.params.get(name).ok_or_else(|| {
            StepError::failed(format!(
                "step `{}` read parameter `{name}`, which its signature does not declare",
                self.step_id
            ))
        })
    }

    /// Returns a float parameter.
    pub fn param_f64(&self, name: &str) -> Result<f64, StepError> {
        let value = self.param(name)?;
        value
            .as_f64()
            .ok_or_else(|| self.type_error(name, "float", value))
    }

    /// Returns an integer parameter.
    pub fn param_i64(&self, name: &str) -> Result<i64, StepError> {
        let value = self.param(name)?;
        value
            .as_i64()
            .ok_or_else(|| self.type_error(name, "int", value))
    }

    /// Returns a string or path parameter.
    pub fn param_str(&self, name: &str) -> Result<&str, StepError> {
        let value = self.param(name)?;
        value
            .as_str()
            .ok_or_else(|| self.type_error(name, "string", value))
    }

    /// Returns a boolean parameter.
    pub fn param_bool(&self, name: &str) -> Result<bool, StepError> {
        let value = self.param(name)?;
        value
            .as_bool()
            .ok_or_else(|| self.type_error(name, "bool", value))
    }

    fn type_error(&self, name: &str, expected: &str, found: &ParamValue) -> StepError {
        StepError::failed(format!(
            "parameter `{name}` of step `{}` is {found}, expected a {expected}",
            self.step_id
        ))
    }

    /// Returns an input if it is connected.
    pub fn input(&self, name: &str) -> Option<&Artifact> {
        self.inputs.get(name).map(|a| a.as_ref())
    }

    /// Returns a required table input.
    pub fn input_table(&self, name: &str) -> Result<&Table, StepError> {
        match self.input(name) {
            Some(Artifact::Table(table)) => Ok(table),
            other => Err(self.input_error(name, "table", other)),
        }
    }

    /// Returns a required model input.
    pub fn input_model(&self, name: &str) -> Result<&Model, StepError> {
        match self.input(name) {
            Some(Artifact::Model(model)) => Ok(model),
            other => Err(self.input_error(name, "model", other)),
        }
    }

    /// Returns a required JSON input.
    pub fn input_json(&self, name: &str) -> Result<&serde_json::Value, StepError> {
        match self.input(name) {
            Some(Artifact::Json(value)) => Ok(value),
            other => Err(self.input_error(name, "json", other)),
        }
    }

    fn input_error(&self, name: &str, expected: &str, found: Option<&Artifact>) -> StepError {
        let found = match found {
            Some(artifact) => format!("a {}", artifact.kind()),
            None => "not connected".to_string(),
        };
        StepError::failed(format!(
            "input `{name}` of step `{}` is {found}, expected a {expected}",
            self.step_id
        ))
    }

    /// Returns an error if the run was cancelled or the step's timeout has
    /// passed. Long-running steps call this between units of work.
    pub fn check_cancelled(&self) -> Result<(), StepError> {
        if self.cancel.is_cancelled() {
            return Err(StepError::Cancelled("the run was cancelled".to_string()));
        }
        if let (Some(deadline), Some(timeout)) = (self.deadline, self.timeout)
            && Instant::now() >= deadline
        {
            return Err(StepError::Cancelled(format!(
                "timed out after {}; raise `timeout:` of step `{}` in the pipeline file if it \
                 needs longer",
                crate::spec::format_duration(timeout),
                self.step_id
            )));
        }
        Ok(())
    }

    /// Records a metric of this step; it is stored with the run and replayed
    /// when the step is later taken from cache.
    pub fn log_metric(&self, name: &str, value: f64) {
        self.metrics
            .lock()
            .expect("metric log poisoned")
            .push((name.to_string(), value));
    }

    /// Returns the metrics logged so far, in logging order, so that a test
    /// running a step with a standalone context can check them.
    pub fn logged_metrics(&self) -> Vec<(String, f64)> {
        self.metrics.lock().expect("metric log poisoned").clone()
    }

    /// Records a text tag of this step, such as a deployment decision and its
    /// reason; stored with the run like a metric.
    pub fn set_tag(&self, name: &str, value: &str) {
        self.tags
            .lock()
            .expect("tag log poisoned")
            .push((name.to_string(), value.to_string()));
    }

    /// Creates a progress bar for `total` units of work, shown under the
    /// run's output when flowrun writes to a terminal and hidden otherwise.
    pub fn progress_bar(&self, total: u64, message: &str) -> indicatif::ProgressBar {
        let bar = match self.progress {
            Some(multi) => multi.add(indicatif::ProgressBar::new(total)),
            None => indicatif::ProgressBar::hidden(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} {msg} [{bar:30}] {pos}/{len} ({eta} left)",
            )
            .expect("progress template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix(self.step_id.to_string());
        bar.set_message(message.to_string());
        bar
    }
}
