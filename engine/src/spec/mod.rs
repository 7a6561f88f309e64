//! The pipeline spec: reading a pipeline YAML file, checking it against the
//! registered steps, and producing a validated [`Pipeline`].
//!
//! # The format
//!
//! ```yaml
//! name: training                 # required, [a-z0-9_-]+
//! description: Train and evaluate the review-score model   # optional
//! extends: base.yaml             # optional, relative to this file
//! parameters:                    # pipeline parameters, typed, with defaults
//!   data_dir:
//!     type: path                 # bool | int | float | string | path | list | map
//!     default: data/olist-sample
//!     doc: Folder of the Olist CSV tables      # optional
//!   feature_set:
//!     type: string
//!     default: order_time
//!     choices: [basic, order_time, post_delivery]   # optional, strings only
//!   max_mse: 1.8                 # shorthand: the default, type inferred
//! steps:                         # in file order; the key is the step id
//!   ingest_data:
//!     uses: ingest_data          # registered step name; defaults to the id
//!     params:
//!       data_dir: ${data_dir}    # a whole-value reference keeps the type
//!       label: "run-${feature_set}"   # interpolated; "$${" is a literal "${"
//!   train_model:
//!     inputs:                    # input name -> "<step id>.<output name>"
//!       x_train: clean_data.x_train
//!     after: [ingest_data]       # ordering without a data edge
//!     retries: 2                 # extra attempts after a failure (default 0)
//!     retry_delay: 1s            # ms, s, m, h; default 0s
//!     timeout: 30m               # optional; the step checks it cooperatively
//!     cache: false               # default true
//! ```
//!
//! Rules the example does not show:
//!
//! - A parameter written as a mapping is always the full form, so a `map`
//!   parameter needs `type: map` and `default:`. The full form needs a
//!   `default`; without `type` the type is inferred from it.
//! - References (`${name}`) are resolved in step `params` only, including
//!   inside lists and maps. Pipeline parameter defaults are taken literally.
//!   Inside a longer string, numbers and booleans appear as `--set` shows
//!   them and lists and maps as JSON.
//! - Step ids and parameter names use letters, digits, `_` and `-`. A `.`
//!   is reserved, since it separates a step id from an output name in
//!   `inputs` and from a parameter name in `--set step.param=value`.
//! - Only `true` and `false` are booleans: `yes`, `on` and `no` are strings,
//!   so a bool parameter given `yes` is a type error. Duplicate keys and
//!   unknown keys are errors. YAML anchors, aliases and merge keys (`<<`)
//!   work, for example to share settings between steps.
//! - With `extends`, a parameter or step defined in the child replaces the
//!   parent's whole entry and keeps the parent's position. New ones are
//!   added after the parent's. `name` comes from the child; `description` from the
//!   nearest file that has one.
//!
//! # What this module owns
//!
//! Two types describe a pipeline: a private serde mirror of the YAML
//! (`raw`), and the public, validated [`Pipeline`] whose step parameters are
//! complete, typed and substituted. [`load`] goes from one to the other.
//! Validation collects every error it can find, each with its file, line
//! and column, and a returned [`Pipeline`] has passed the graph checks too,
//! so it is acyclic.
//!
//! # Which errors are collected
//!
//! One load reports all of these together, sorted by file (the loaded file
//! first, then the files it extends, nearest first), line and column, with
//! `--set` errors last:
//!
//! - unknown keys at the top level, in a parameter's full form and in a
//!   step, each with the closest valid key as a suggestion;
//! - every semantic error: the pipeline name, parameter types, defaults and
//!   choices, each step's `uses`, `params`, `${ref}` references, `inputs`,
//!   `after` and run settings, `--set` overrides, and cycles.
//!
//! An unknown key that is a likely misspelling of a valid key hides the
//! errors that only report the valid key as missing, so each typo is reported
//! once. These are a missing `name`, a pipeline with no steps, a missing
//! `default`, and a step's missing `uses`, missing required parameters
//! (for `params`) and unconnected inputs (for `inputs`). A misspelled
//! `parameters` key also hides references and `--set` overrides naming an
//! undeclared parameter.
//!
//! These errors stop parsing, so a file reports one of them at a time:
//! a YAML syntax error, a duplicate key, a value of the wrong kind (a list
//! where a mapping belongs), and an empty file. In an `extends` chain, a
//! file that cannot be read and a cycle of `extends` stop it too. Serde
//! stops at the first such problem in a document, and nothing can be merged
//! past a file that did not parse. The load then returns that error with
//! the unknown keys of the files parsed before it, and runs no semantic
//! check. A duplicate key or syntax error inside the value of an unknown key
//! also stops parsing, because the value is still read to skip it.
//!
//! This module never runs a step, touches the artifact store or computes a
//! cache key.

mod duration;
mod error;
mod extends;
mod overrides;
mod params;
mod raw;
mod steps;
mod suggest;
mod template;
mod unknown_keys;

#[cfg(test)]
mod tests;

pub use duration::{format_duration, parse_duration};
pub use error::{Location, Note, Snippet, SpecError, SpecErrors};
pub use overrides::{Override, parse_override};
pub use suggest::closest as closest_name;

use crate::graph::PipelineGraph;
use crate::param::{ParamType, ParamValue};
use crate::registry::Registry;
use error::{Diagnostics, Pos, Sources};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A pipeline parameter after typing and overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineParam {
    /// The name, as referenced by `${name}`.
    pub name: String,
    /// The declared type, or the one inferred from the default.
    pub ty: ParamType,
    /// The value for this run: the default, or the `--set` override.
    pub value: ParamValue,
    /// The default written in the file.
    pub default: ParamValue,
    /// The description from `doc:`.
    pub doc: Option<String>,
    /// The only values allowed, for string and path parameters.
    pub choices: Option<Vec<String>>,
}

/// A step's input: an output of another step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputRef {
    /// The producing step's id.
    pub step: String,
    /// The output name in the producer's signature.
    pub output: String,
}

impl fmt::Display for InputRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.step, self.output)
    }
}

/// A validated step.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineStep {
    /// The id: the step's key under `steps:`.
    pub id: String,
    /// The registered step name it runs.
    pub uses: String,
    /// Every parameter the step declares: the YAML value or the step's
    /// default, with references substituted, overrides applied, and
    /// converted to the declared type.
    pub params: BTreeMap<String, ParamValue>,
    /// Connected inputs by input name.
    pub inputs: BTreeMap<String, InputRef>,
    /// Steps that must finish first although no data flows from them.
    pub after: Vec<String>,
    /// Extra attempts after a failure.
    pub retries: u32,
    /// The wait between attempts.
    pub retry_delay: Duration,
    /// The time limit of one attempt, checked by the step itself.
    pub timeout: Option<Duration>,
    /// False to always run the step, even when a cached result exists.
    pub cache: bool,
    /// Where the step's key is.
    pub location: Location,
}

/// A validated pipeline: every step registered, every parameter typed,
/// every input connected to an output of the same kind, and no cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The pipeline name.
    pub name: String,
    /// The description, if any file of the chain has one.
    pub description: Option<String>,
    /// The file that was loaded.
    pub file: PathBuf,
    /// The file that was loaded, then every file it extends, nearest first.
    pub files: Vec<PathBuf>,
    /// Pipeline parameters by name.
    pub params: BTreeMap<String, PipelineParam>,
    /// Steps in file order, a parent's before the child's new ones.
    pub steps: Vec<PipelineStep>,
    /// The step parameters set on the command line (`--set step.param=v`),
    /// as `step.param` with the typed value, so that a run records them
    /// beside the pipeline parameters.
    pub step_overrides: BTreeMap<String, ParamValue>,
}

impl Pipeline {
    /// Looks up a step by id.
    pub fn step(&self, id: &str) -> Option<&PipelineStep> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// Reads, validates and resolves a pipeline file, applying `overrides`.
///
/// Every error found is returned, not only the first. The returned pipeline
/// has also passed [`PipelineGraph::build`], so it has no cycles.
pub fn load(
    path: &Path,
    registry: &Registry,
    overrides: &[Override],
) -> Result<Pipeline, SpecErrors> {
    let mut sources = Sources::default();
    let with_file = |errors: Vec<SpecError>| {
        SpecErrors(
            errors
                .into_iter()
                .map(|mut e| {
                    e.pipeline_file = Some(path.to_path_buf());
                    e
                })
                .collect(),
        )
    };

    let chain = extends::read_chain(path, &mut sources);
    let mut diagnostics = Diagnostics::new(&sources);
    for layer in &chain.layers {
        unknown_keys::report(layer.file, &layer.raw, &mut diagnostics);
    }
    if let Some(failure) = chain.failure {
        diagnostics.push(failure);
        return Err(with_file(in_file_order(diagnostics.errors, &sources)));
    }

    let merged = extends::merge(chain.layers);
    let pipeline = resolve(merged, registry, overrides, &mut diagnostics);

    // Look for cycles even when other errors were found: the graph is built
    // from the references that resolved, so the errors do not overlap.
    if let Err(cycles) = PipelineGraph::build(&pipeline) {
        for mut error in cycles.0 {
            sources.add_snippet(&mut error);
            diagnostics.push(error);
        }
    }
    if !diagnostics.errors.is_empty() {
        return Err(with_file(in_file_order(diagnostics.errors, &sources)));
    }

    tracing::debug!(
        pipeline = %pipeline.name,
        steps = pipeline.steps.len(),
        files = pipeline.files.len(),
        overrides = overrides.len(),
        "loaded pipeline"
    );
    Ok(pipeline)
}

/// Sorts errors by file (the loaded file first, then the files it extends,
/// nearest first), line and column, and drops exact repeats, such as an
/// unknown key that several steps merge in from one anchor. Errors outside
/// any file, from `--set`, come last in the order they were found.
fn in_file_order(mut errors: Vec<SpecError>, sources: &Sources) -> Vec<SpecError> {
    errors.sort_by_key(|error| match &error.location {
        Some(location) => (
            false,
            sources.find(&location.file).unwrap_or(usize::MAX),
            location.line,
            location.column,
        ),
        None => (true, 0, 0, 0),
    });
    errors.dedup();
    errors
}

/// Checks the merged pipeline and builds the [`Pipeline`], recording every
/// error in `diagnostics`.
fn resolve(
    merged: extends::Merged,
    registry: &Registry,
    overrides: &[Override],
    diagnostics: &mut Diagnostics<'_>,
) -> Pipeline {
    let sources = diagnostics.sources();
    let root_start = Pos {
        file: merged.root,
        line: 1,
        column: 1,
        len: 0,
    };

    let name = match &merged.name {
        Some(name) if is_pipeline_name(&name.value) => name.value.clone(),
        Some(name) => {
            diagnostics.error(
                Pos::from_saphyr(merged.root, &name.referenced),
                format!("pipeline name `{}` is invalid", name.value),
                Some("use only lowercase ASCII letters, digits, `_` and `-`".to_string()),
            );
            name.value.clone()
        }
        // A misspelled `name` key is reported on its own.
        None if merged.misspelled.contains("name") => String::new(),
        None => {
            diagnostics.error(
                root_start,
                "the pipeline has no `name`",
                Some("add `name: <pipeline name>` at the top of the file; each file names its own pipeline, even one that uses `extends`".to_string()),
            );
            String::new()
        }
    };
    if merged.steps.is_empty() && !merged.misspelled.contains("steps") {
        diagnostics.error(
            root_start,
            format!("pipeline `{name}` has no steps"),
            Some("add at least one step under `steps:`".to_string()),
        );
    }

    let mut params = params::resolve(&merged.params, diagnostics);
    params.names_incomplete = merged.misspelled.contains("parameters");
    let step_params = steps::step_param_names(&merged.steps, registry);
    params::apply_overrides(&mut params, overrides, &step_params, diagnostics);
    let steps = steps::resolve(&merged.steps, registry, &params, overrides, diagnostics);

    let step_overrides = overrides
        .iter()
        .filter_map(|o| {
            let step = steps.iter().find(|s| Some(&s.id) == o.step.as_ref())?;
            let value = step.params.get(&o.name)?;
            Some((format!("{}.{}", step.id, o.name), value.clone()))
        })
        .collect();
    let files: Vec<PathBuf> = sources.paths().map(Path::to_path_buf).collect();
    Pipeline {
        name,
        description: merged.description,
        file: sources.path(merged.root).to_path_buf(),
        files,
        params: params.params,
        steps,
        step_overrides,
    }
}

/// Returns whether `name` is a valid pipeline name: lowercase letters,
/// digits, `_` and `-`.
fn is_pipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
