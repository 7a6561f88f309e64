//! Load-level tests: whole pipeline files, written to a temporary folder
//! and loaded against a registry of small test steps.

use super::*;
use crate::step::{ParamSpec, Step, StepContext, StepError, StepOutputs, StepSignature};
use flowrun_artifacts::ArtifactKind;
use std::fs;
use tempfile::TempDir;

/// A step that only declares a signature. Spec tests never run steps.
struct Declared(StepSignature);

impl Step for Declared {
    fn signature(&self) -> &StepSignature {
        &self.0
    }

    fn run(&self, _ctx: &StepContext<'_>) -> Result<StepOutputs, StepError> {
        Err(StepError::failed("spec tests only validate pipelines"))
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    let ingest = StepSignature::new("ingest_data", "Read the raw tables")
        .param(ParamSpec::optional(
            "data_dir",
            ParamType::Path,
            ParamValue::String("data".into()),
            "Folder of CSV files",
        ))
        .param(ParamSpec::optional(
            "label",
            ParamType::String,
            ParamValue::String("run".into()),
            "A free label",
        ))
        .output("orders", ArtifactKind::Table, "Orders")
        .output("report", ArtifactKind::Json, "Row counts");
    let clean = StepSignature::new("clean_data", "Clean and split")
        .input("orders", ArtifactKind::Table, "Orders")
        .param(ParamSpec::optional(
            "drop_na",
            ParamType::Bool,
            ParamValue::Bool(true),
            "Drop rows with missing values",
        ))
        .output("x_train", ArtifactKind::Table, "Features")
        .output("y_train", ArtifactKind::Table, "Labels");
    let train = StepSignature::new("train", "Fit a model")
        .input("x_train", ArtifactKind::Table, "Features")
        .input("y_train", ArtifactKind::Table, "Labels")
        .param(ParamSpec::required(
            "max_depth",
            ParamType::Int,
            "Tree depth",
        ))
        .param(ParamSpec::optional(
            "learning_rate",
            ParamType::Float,
            ParamValue::Float(0.1),
            "Shrinkage",
        ))
        .param(
            ParamSpec::optional(
                "objective",
                ParamType::String,
                ParamValue::String("mse".into()),
                "Loss",
            )
            .with_choices(&["mse", "mae"]),
        )
        .param(ParamSpec::optional(
            "features",
            ParamType::List,
            ParamValue::List(vec![]),
            "Feature columns",
        ))
        .output("model", ArtifactKind::Model, "The model")
        .output("metrics", ArtifactKind::Json, "Training metrics");
    let evaluate = StepSignature::new("evaluate", "Score a model")
        .input("model", ArtifactKind::Model, "The model")
        .optional_input("x_test", ArtifactKind::Table, "Held-out rows")
        .output("metrics", ArtifactKind::Json, "Scores");
    for signature in [ingest, clean, train, evaluate] {
        registry.register(Declared(signature), "test-fingerprint");
    }
    registry
}

/// A valid pipeline that uses every feature of the format.
const TRAINING: &str = "\
name: training
description: Train and evaluate
parameters:
  data_dir:
    type: path
    default: data/olist
    doc: Folder of the Olist tables
  feature_set:
    type: string
    default: order_time
    choices: [basic, order_time]
  learning_rate: 0.0005
  depth: 6
steps:
  ingest:
    uses: ingest_data
    params:
      data_dir: ${data_dir}
      label: \"run-${feature_set}\"
  clean:
    uses: clean_data
    inputs:
      orders: ingest.orders
  train:
    inputs:
      x_train: clean.x_train
      y_train: clean.y_train
    params:
      max_depth: ${depth}
      learning_rate: ${learning_rate}
    retries: 2
    retry_delay: 1s
    timeout: 30m
  evaluate:
    inputs:
      model: train.model
    after: [clean]
    cache: false
";

struct Files(TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        fs::write(&path, text).unwrap();
        path
    }
}

fn load_text(text: &str, overrides: &[&str]) -> Result<Pipeline, SpecErrors> {
    let files = Files::new();
    let path = files.write("pipeline.yaml", text);
    let overrides: Vec<Override> = overrides
        .iter()
        .map(|o| parse_override(o).unwrap())
        .collect();
    load(&path, &registry(), &overrides)
}

/// Loads a pipeline that must fail with exactly one error, and returns it.
fn single_error(text: &str) -> SpecError {
    let errors = load_text(text, &[]).unwrap_err();
    assert_eq!(errors.len(), 1, "expected one error, got:\n{errors}");
    errors.0.into_iter().next().unwrap()
}

/// Replaces `from` with `to` in the valid pipeline, checking it occurs.
fn training_with(from: &str, to: &str) -> String {
    assert!(TRAINING.contains(from), "`{from}` is not in the pipeline");
    TRAINING.replacen(from, to, 1)
}

fn line_column(error: &SpecError) -> (usize, usize) {
    let location = error.location.as_ref().expect("error has a location");
    (location.line, location.column)
}

fn help(error: &SpecError) -> &str {
    error.help.as_deref().unwrap_or_default()
}

// ---- a valid pipeline ----

#[test]
fn valid_pipeline_loads() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    assert_eq!(pipeline.name, "training");
    assert_eq!(pipeline.description.as_deref(), Some("Train and evaluate"));
    let ids: Vec<&str> = pipeline.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["ingest", "clean", "train", "evaluate"]);
    assert_eq!(pipeline.files, std::slice::from_ref(&pipeline.file));
}

#[test]
fn step_settings_are_read() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    let train = pipeline.step("train").unwrap();
    assert_eq!(train.uses, "train");
    assert_eq!(train.retries, 2);
    assert_eq!(train.retry_delay, Duration::from_secs(1));
    assert_eq!(train.timeout, Some(Duration::from_secs(1800)));
    assert!(train.cache);
    let evaluate = pipeline.step("evaluate").unwrap();
    assert!(!evaluate.cache);
    assert_eq!(evaluate.after, ["clean"]);
    assert_eq!(evaluate.timeout, None);
    assert_eq!(evaluate.inputs["model"].to_string(), "train.model");
}

#[test]
fn step_location_is_its_key() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    let train = pipeline.step("train").unwrap();
    assert_eq!((train.location.line, train.location.column), (24, 3));
}

#[test]
fn params_are_complete_and_typed() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    let train = &pipeline.step("train").unwrap().params;
    assert_eq!(train["max_depth"], ParamValue::Int(6));
    assert_eq!(train["learning_rate"], ParamValue::Float(0.0005));
    assert_eq!(train["objective"], ParamValue::String("mse".into()));
    assert_eq!(train["features"], ParamValue::List(vec![]));
    assert_eq!(train.len(), 4);
}

#[test]
fn references_keep_type_or_interpolate() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    let ingest = &pipeline.step("ingest").unwrap().params;
    assert_eq!(ingest["data_dir"], ParamValue::String("data/olist".into()));
    assert_eq!(ingest["label"], ParamValue::String("run-order_time".into()));
}

#[test]
fn pipeline_params_are_typed() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    let data_dir = &pipeline.params["data_dir"];
    assert_eq!(data_dir.ty, ParamType::Path);
    assert_eq!(data_dir.doc.as_deref(), Some("Folder of the Olist tables"));
    assert_eq!(pipeline.params["learning_rate"].ty, ParamType::Float);
    assert_eq!(pipeline.params["depth"].ty, ParamType::Int);
    let feature_set = &pipeline.params["feature_set"];
    assert_eq!(
        feature_set.choices.as_deref(),
        Some(&["basic".to_string(), "order_time".to_string()][..])
    );
}

#[test]
fn int_widens_to_float_param() {
    let pipeline = load_text(
        &training_with("learning_rate: ${learning_rate}", "learning_rate: 1"),
        &[],
    )
    .unwrap();
    assert_eq!(
        pipeline.step("train").unwrap().params["learning_rate"],
        ParamValue::Float(1.0)
    );
}

#[test]
fn reference_in_list_and_escape() {
    let text = training_with(
        "      max_depth: ${depth}\n",
        "      max_depth: ${depth}\n      features: [\"${feature_set}\", \"cost $${x}\", \"d-${depth}\"]\n",
    );
    let pipeline = load_text(&text, &[]).unwrap();
    assert_eq!(
        pipeline.step("train").unwrap().params["features"],
        ParamValue::List(vec![
            ParamValue::String("order_time".into()),
            ParamValue::String("cost ${x}".into()),
            ParamValue::String("d-6".into()),
        ])
    );
}

#[test]
fn uses_defaults_to_step_id() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    assert_eq!(pipeline.step("evaluate").unwrap().uses, "evaluate");
}

#[test]
fn merge_keys_share_settings() {
    let text = training_with(
        "    retries: 2\n    retry_delay: 1s\n    timeout: 30m\n",
        "    <<: &slow\n      retries: 2\n      retry_delay: 1s\n      timeout: 30m\n",
    )
    .replace(
        "    after: [clean]\n",
        "    <<: *slow\n    after: [clean]\n",
    );
    let pipeline = load_text(&text, &[]).unwrap();
    assert_eq!(pipeline.step("train").unwrap().retries, 2);
    assert_eq!(pipeline.step("evaluate").unwrap().retries, 2);
    assert_eq!(
        pipeline.step("evaluate").unwrap().timeout,
        Some(Duration::from_secs(1800))
    );
}

#[test]
fn null_step_body_uses_defaults() {
    let text = "name: one\nsteps:\n  ingest_data:\n";
    let pipeline = load_text(text, &[]).unwrap();
    let step = pipeline.step("ingest_data").unwrap();
    assert_eq!(step.uses, "ingest_data");
    assert_eq!(step.params["data_dir"], ParamValue::String("data".into()));
}

// ---- files that do not parse ----

#[test]
fn missing_file_fails() {
    let files = Files::new();
    let path = files.0.path().join("nope.yaml");
    let errors = load(&path, &registry(), &[]).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors.0[0].message.starts_with("cannot read pipeline file"),
        "{errors}"
    );
    assert!(errors.0[0].location.is_none());
    assert!(errors.to_string().ends_with("nothing was run."));
}

#[test]
fn empty_file_fails() {
    for text in ["", "# only a comment\n"] {
        let error = single_error(text);
        assert!(error.message.contains("is empty"), "{error}");
    }
}

#[test]
fn list_file_fails() {
    let error = single_error("- ingest\n- train\n");
    assert!(error.message.contains("must be a mapping"), "{error}");
    assert!(error.message.ends_with("this file is a list"), "{error}");
}

#[test]
fn scalar_file_fails() {
    let error = single_error("hello\n");
    assert!(
        error.message.ends_with("this file is a single value"),
        "{error}"
    );
}

#[test]
fn syntax_error_is_located() {
    let error = single_error("name: x\nsteps:\n  a: {uses: train\n  b: c\n");
    assert!(error.location.is_some(), "{error}");
    assert!(!error.message.contains(" at line "), "{error}");
    assert!(!error.message.contains("wrong kind"), "{error}");
}

#[test]
fn wrong_kind_of_value_fails() {
    let error = single_error("name: x\nsteps: [a, b]\n");
    assert_eq!(
        error.message,
        "wrong kind of value: expected a mapping of keys to values here"
    );
    assert_eq!(line_column(&error), (2, 8));
}

#[test]
fn duplicate_key_shows_both_lines() {
    let text = "name: x\nsteps:\n  ingest_data: {}\n  clean_data: {}\n  ingest_data: {}\n";
    let error = single_error(text);
    assert_eq!(error.message, "duplicate key `ingest_data`");
    assert_eq!(line_column(&error), (5, 3));
    assert_eq!(error.notes.len(), 1, "{error}");
    assert_eq!(error.notes[0].location.line, 3);
    let rendered = error.to_string();
    assert!(rendered.contains("5 |   ingest_data: {}"), "{rendered}");
    assert!(rendered.contains("3 |   ingest_data: {}"), "{rendered}");
}

#[test]
fn duplicate_top_level_key_shows_both_lines() {
    let error = single_error("name: x\nname: y\nsteps: {}\n");
    assert_eq!(line_column(&error), (2, 1));
    assert_eq!(error.notes[0].location.line, 1);
}

// ---- unknown keys ----

#[test]
fn unknown_top_level_key_suggests() {
    let error = single_error(&TRAINING.replace("steps:", "stpes:"));
    assert_eq!(error.message, "unknown key `stpes` at the top level");
    assert!(help(&error).starts_with("did you mean `steps`?"), "{error}");
}

#[test]
fn unknown_step_key_suggests() {
    let error = single_error(&training_with("    retries: 2", "    retires: 2"));
    assert_eq!(error.message, "unknown key `retires` in a step");
    assert!(
        help(&error).starts_with("did you mean `retries`?"),
        "{error}"
    );
    assert_eq!(line_column(&error), (31, 5));
}

#[test]
fn unknown_parameter_key_suggests() {
    let error = single_error(&training_with("    doc: Folder", "    dco: Folder"));
    assert_eq!(error.message, "unknown key `dco` in a parameter");
    assert!(help(&error).starts_with("did you mean `doc`?"), "{error}");
}

#[test]
fn unknown_key_reported_with_semantic_errors() {
    let text = training_with("    retries: 2", "    retires: 2")
        .replace("max_depth: ${depth}", "max_depth: abc")
        .replace("model: train.model", "model: trian.model");
    let errors = load_text(&text, &[]).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors}");

    // File order: the parameter (line 29) comes before the unknown key
    // (line 31), although unknown keys are found first.
    let wrong_type = &errors.0[0];
    assert_eq!(
        wrong_type.message,
        "parameter `max_depth` of step `train` must be an int, but it is the string `abc`"
    );
    assert_eq!(line_column(wrong_type), (29, 18));

    let unknown_key = &errors.0[1];
    assert_eq!(unknown_key.message, "unknown key `retires` in a step");
    assert_eq!(line_column(unknown_key), (31, 5));
    assert!(
        help(unknown_key).starts_with("did you mean `retries`?"),
        "{errors}"
    );

    let unknown_step = &errors.0[2];
    assert_eq!(
        unknown_step.message,
        "step `evaluate` reads `trian.model`, but no step `trian` exists"
    );
    assert_eq!(line_column(unknown_step), (36, 14));

    let rendered = errors.to_string();
    assert!(rendered.contains("\n3 errors found in "), "{rendered}");
    assert!(rendered.contains("31 |     retires: 2\n"), "{rendered}");
}

#[test]
fn unknown_top_level_key_with_other_errors() {
    let text =
        training_with("description:", "descripton:").replace("name: training", "name: Training");
    let errors = load_text(&text, &[]).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    assert_eq!(errors.0[0].message, "pipeline name `Training` is invalid");
    assert_eq!(line_column(&errors.0[0]), (1, 7));
    let unknown = &errors.0[1];
    assert_eq!(unknown.message, "unknown key `descripton` at the top level");
    assert_eq!(line_column(unknown), (2, 1));
    assert!(
        help(unknown).starts_with("did you mean `description`?"),
        "{errors}"
    );
}

#[test]
fn unknown_parameter_key_with_other_errors() {
    let text = training_with("    doc: Folder", "    dco: Folder")
        .replace("uses: clean_data", "uses: claen_data");
    let errors = load_text(&text, &[]).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    let unknown = &errors.0[0];
    assert_eq!(unknown.message, "unknown key `dco` in a parameter");
    assert_eq!(line_column(unknown), (7, 5));
    assert!(help(unknown).starts_with("did you mean `doc`?"), "{errors}");
    assert_eq!(
        errors.0[1].message,
        "step `clean` uses `claen_data`, which is not a registered step"
    );
    assert_eq!(line_column(&errors.0[1]), (21, 11));
}

#[test]
fn misspelled_step_keys_hide_their_consequences() {
    // Without the suppression, `usse` would also report an unregistered
    // step, `parms` a missing `max_depth` and `inptus` two unconnected
    // inputs.
    let text = "\
name: typos
steps:
  ingest:
    usse: ingest_data
  train:
    parms: {max_depth: 3}
    inptus: {x_train: ingest.orders}
";
    let errors = load_text(text, &[]).unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown key `usse` in a step",
            "unknown key `parms` in a step",
            "unknown key `inptus` in a step",
        ]
    );
}

#[test]
fn misspelled_top_level_keys_hide_their_consequences() {
    let text = TRAINING
        .replace("name: training", "nme: training")
        .replace("parameters:", "paramters:");
    let errors = load_text(&text, &["depth=3"]).unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown key `nme` at the top level",
            "unknown key `paramters` at the top level",
        ]
    );
}

#[test]
fn misspelled_default_hides_missing_default() {
    let error = single_error(&training_with("default: data/olist", "defualt: data/olist"));
    assert_eq!(error.message, "unknown key `defualt` in a parameter");
    assert!(
        help(&error).starts_with("did you mean `default`?"),
        "{error}"
    );
}

#[test]
fn unrelated_unknown_key_hides_nothing() {
    let text = "name: x\nowner: data-team\n";
    let errors = load_text(text, &[]).unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "pipeline `x` has no steps",
            "unknown key `owner` at the top level",
        ]
    );
    assert_eq!(
        help(&errors.0[1]),
        "valid keys: `name`, `description`, `extends`, `parameters`, `steps`"
    );
}

#[test]
fn unknown_key_in_anchor_reported_once() {
    let text = "\
name: shared
steps:
  ingest: &settings
    uses: ingest_data
    retires: 2
  ingest_again:
    <<: *settings
";
    let error = single_error(text);
    assert_eq!(error.message, "unknown key `retires` in a step");
    assert_eq!(line_column(&error), (5, 5));
}

#[test]
fn duplicate_key_under_unknown_key_stops_parsing() {
    let error = single_error(&training_with(
        "    retries: 2",
        "    retires: {a: 1, a: 2}",
    ));
    assert_eq!(error.message, "duplicate key `a`");
}

#[test]
fn unknown_keys_across_extends_sorted() {
    let files = Files::new();
    files.write(
        "base.yaml",
        &BASE.replace("uses: clean_data", "usse: clean_data"),
    );
    let child = files.write(
        "child.yaml",
        "name: child\nextends: base.yaml\nsteps:\n  train:\n    inputs: {x_train: clean.x_train, y_train: clean.y_train}\n    params: {max_depth: 2}\n    timout: 1m\n",
    );
    let errors = load(&child, &registry(), &[]).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    let first = errors.0[0].location.as_ref().unwrap();
    assert!(first.file.ends_with("child.yaml"), "{errors}");
    assert_eq!((first.line, first.column), (7, 5));
    assert!(help(&errors.0[0]).starts_with("did you mean `timeout`?"));
    let second = errors.0[1].location.as_ref().unwrap();
    assert!(second.file.ends_with("base.yaml"), "{errors}");
    assert_eq!((second.line, second.column), (12, 5));
}

#[test]
fn unknown_key_reported_with_missing_parent() {
    let files = Files::new();
    let child = files.write(
        "child.yaml",
        "name: child\ndescripton: x\nextends: nope.yaml\n",
    );
    let errors = load(&child, &registry(), &[]).unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{errors}");
    assert_eq!(messages[0], "unknown key `descripton` at the top level");
    assert!(
        messages[1].starts_with("cannot read extended file"),
        "{errors}"
    );
}

// ---- semantic errors ----

#[test]
fn missing_name_fails() {
    let error = single_error(&TRAINING.replace("name: training\n", ""));
    assert_eq!(error.message, "the pipeline has no `name`");
}

#[test]
fn invalid_name_fails() {
    let error = single_error(&TRAINING.replace("name: training", "name: Training Run"));
    assert_eq!(error.message, "pipeline name `Training Run` is invalid");
}

#[test]
fn unregistered_uses_lists_steps() {
    let error = single_error(&training_with("uses: clean_data", "uses: claen_data"));
    assert_eq!(
        error.message,
        "step `clean` uses `claen_data`, which is not a registered step"
    );
    assert_eq!(
        help(&error),
        "did you mean `clean_data`? registered steps: `clean_data`, `evaluate`, `ingest_data`, `train`"
    );
    assert_eq!(line_column(&error), (21, 11));
}

#[test]
fn unregistered_step_id_without_uses() {
    let error = single_error("name: x\nsteps:\n  trian:\n");
    assert_eq!(
        error.message,
        "step `trian` has no `uses:`, and `trian` is not a registered step"
    );
    assert!(help(&error).contains("did you mean `train`?"), "{error}");
}

#[test]
fn unknown_step_parameter_suggests() {
    let text = training_with(
        "max_depth: ${depth}",
        "max_dept: ${depth}\n      max_depth: 3",
    );
    let error = single_error(&text);
    assert_eq!(error.message, "step `train` has no parameter `max_dept`");
    assert!(
        help(&error).starts_with("did you mean `max_depth`?"),
        "{error}"
    );
}

#[test]
fn missing_required_parameter_fails() {
    let error = single_error(&training_with("      max_depth: ${depth}\n", ""));
    assert_eq!(
        error.message,
        "step `train` is missing required parameter `max_depth` (int)"
    );
    assert_eq!(line_column(&error), (24, 3));
}

#[test]
fn wrong_type_parameter_fails() {
    let error = single_error(&training_with("max_depth: ${depth}", "max_depth: abc"));
    assert_eq!(
        error.message,
        "parameter `max_depth` of step `train` must be an int, but it is the string `abc`"
    );
    assert_eq!(line_column(&error), (29, 18));
    assert!(error.to_string().contains("^^^"), "{error}");
}

#[test]
fn yes_is_not_a_bool() {
    let text = training_with(
        "      orders: ingest.orders\n",
        "      orders: ingest.orders\n    params:\n      drop_na: yes\n",
    );
    let error = single_error(&text);
    assert_eq!(
        error.message,
        "parameter `drop_na` of step `clean` must be a bool, but it is the string `yes`"
    );
}

#[test]
fn reference_of_wrong_type_names_it() {
    let error = single_error(&training_with(
        "max_depth: ${depth}",
        "max_depth: ${learning_rate}",
    ));
    assert!(
        error
            .message
            .ends_with("but it is the float `0.0005` (from `${learning_rate}`)"),
        "{error}"
    );
}

#[test]
fn value_outside_choices_lists_them() {
    let text = training_with(
        "      max_depth: ${depth}\n",
        "      max_depth: 3\n      objective: msee\n",
    );
    let error = single_error(&text);
    assert_eq!(
        error.message,
        "parameter `objective` of step `train` is `msee`, which is not one of its choices"
    );
    assert_eq!(
        help(&error),
        "did you mean `mse`? valid values: `mse`, `mae`"
    );
}

#[test]
fn pipeline_default_outside_choices_fails() {
    let error = single_error(&training_with("default: order_time", "default: ordertime"));
    assert!(
        error.message.contains("is not one of its choices"),
        "{error}"
    );
    assert!(help(&error).contains("`basic`, `order_time`"), "{error}");
}

#[test]
fn unknown_reference_suggests() {
    let error = single_error(&training_with(
        "\"run-${feature_set}\"",
        "\"run-${feature_sett}\"",
    ));
    assert_eq!(
        error.message,
        "parameter `label` of step `ingest` refers to `${feature_sett}`, but the pipeline has no parameter `feature_sett`"
    );
    assert!(
        help(&error).starts_with("did you mean `feature_set`?"),
        "{error}"
    );
    // The underline starts at the `$` inside the quoted string.
    assert_eq!(line_column(&error), (19, 19));
    assert!(
        error
            .to_string()
            .contains(&format!("{}^^^^^^^^^^^^^^^\n", " ".repeat(18))),
        "{error}"
    );
}

#[test]
fn unterminated_reference_fails() {
    let error = single_error(&training_with(
        "\"run-${feature_set}\"",
        "\"run-${feature_set\"",
    ));
    assert!(error.message.contains("without a closing `}`"), "{error}");
}

#[test]
fn input_from_unknown_step_suggests() {
    let error = single_error(&training_with("model: train.model", "model: trian.model"));
    assert_eq!(
        error.message,
        "step `evaluate` reads `trian.model`, but no step `trian` exists"
    );
    assert!(help(&error).starts_with("did you mean `train`?"), "{error}");
    let rendered = error.to_string();
    assert!(
        rendered.contains("|       model: trian.model\n"),
        "{rendered}"
    );
    assert!(
        rendered.contains("|              ^^^^^^^^^^^\n"),
        "{rendered}"
    );
}

#[test]
fn input_of_unknown_output_lists_outputs() {
    let error = single_error(&training_with("model: train.model", "model: train.modle"));
    assert_eq!(
        error.message,
        "step `evaluate` reads `train.modle`, but step `train` has no output `modle`"
    );
    assert_eq!(
        help(&error),
        "did you mean `model`? outputs of `train`: `model` (model), `metrics` (json)"
    );
}

#[test]
fn undeclared_input_name_suggests() {
    let text = training_with(
        "      model: train.model\n",
        "      model: train.model\n      x_tset: clean.x_train\n",
    );
    let error = single_error(&text);
    assert_eq!(error.message, "step `evaluate` has no input `x_tset`");
    assert!(
        help(&error).starts_with("did you mean `x_test`?"),
        "{error}"
    );
}

#[test]
fn malformed_input_reference_fails() {
    let error = single_error(&training_with("model: train.model", "model: train"));
    assert!(error.message.contains("does not name an output"), "{error}");
}

#[test]
fn unconnected_required_input_fails() {
    let error = single_error(&training_with("      y_train: clean.y_train\n", ""));
    assert_eq!(
        error.message,
        "step `train` needs input `y_train` (table), which is not connected"
    );
    assert_eq!(
        help(&error),
        "connect it under `inputs:`, for example `y_train: clean.y_train`"
    );
}

#[test]
fn optional_input_may_stay_unconnected() {
    let pipeline = load_text(TRAINING, &[]).unwrap();
    assert!(
        !pipeline
            .step("evaluate")
            .unwrap()
            .inputs
            .contains_key("x_test")
    );
}

#[test]
fn input_kind_mismatch_fails() {
    let error = single_error(&training_with("model: train.model", "model: train.metrics"));
    assert_eq!(
        error.message,
        "input `model` of step `evaluate` takes a model, but `train.metrics` is a json"
    );
}

#[test]
fn step_reading_own_output_fails() {
    let error = single_error(&training_with(
        "x_train: clean.x_train",
        "x_train: train.model",
    ));
    assert_eq!(
        error.message,
        "step `train` reads its own output `train.model`"
    );
}

#[test]
fn after_unknown_step_suggests() {
    let error = single_error(&training_with("after: [clean]", "after: [claen]"));
    assert_eq!(
        error.message,
        "step `evaluate` runs after `claen`, but no step `claen` exists"
    );
    assert!(help(&error).starts_with("did you mean `clean`?"), "{error}");
}

#[test]
fn cycle_is_reported_as_path() {
    let text = training_with(
        "      orders: ingest.orders\n",
        "      orders: ingest.orders\n    after: [evaluate]\n",
    );
    let error = single_error(&text);
    assert_eq!(
        error.message,
        "steps form a cycle: clean -> evaluate -> clean"
    );
    assert_eq!(line_column(&error), (20, 3));
}

#[test]
fn invalid_duration_fails() {
    let error = single_error(&training_with("timeout: 30m", "timeout: 30 minutes"));
    assert!(
        error.message.starts_with(
            "`timeout` of step `train` is invalid: `30 minutes` has an unknown unit `minutes`"
        ),
        "{error}"
    );
    assert_eq!(line_column(&error), (33, 14));
}

#[test]
fn invalid_retries_and_cache_fail() {
    let text = training_with("retries: 2", "retries: -1").replace("cache: false", "cache: no");
    let errors = load_text(&text, &[]).unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{errors}");
    assert!(
        messages[0].contains("`retries` of step `train` must be a whole number"),
        "{errors}"
    );
    assert!(
        messages[1].contains(
            "`cache` of step `evaluate` must be `true` or `false`, but it is the string `no`"
        ),
        "{errors}"
    );
}

#[test]
fn unknown_parameter_type_suggests() {
    let error = single_error(&training_with("type: string", "type: strng"));
    assert_eq!(
        error.message,
        "parameter `feature_set` has unknown type `strng`"
    );
    assert!(
        help(&error).starts_with("did you mean `string`?"),
        "{error}"
    );
    assert!(
        help(&error).contains("`bool`, `int`, `float`, `string`, `path`, `list`, `map`"),
        "{error}"
    );
}

#[test]
fn parameter_default_of_wrong_type_fails() {
    let error = single_error(&training_with(
        "type: path\n    default: data/olist",
        "type: int\n    default: data/olist",
    ));
    assert_eq!(
        error.message,
        "the default of parameter `data_dir` is the string `data/olist`, but its type is int"
    );
}

#[test]
fn bool_parameter_given_yes_fails() {
    let error = single_error(&training_with(
        "  depth: 6\n",
        "  depth: 6\n  verbose:\n    type: bool\n    default: yes\n",
    ));
    assert!(
        error
            .message
            .contains("is the string `yes`, but its type is bool"),
        "{error}"
    );
}

#[test]
fn every_error_is_reported() {
    let text = training_with("uses: clean_data", "uses: claen_data")
        .replace("max_depth: ${depth}", "max_depth: abc")
        .replace("model: train.model", "model: trian.model")
        .replace("timeout: 30m", "timeout: soon");
    let errors = load_text(&text, &[]).unwrap_err();
    assert_eq!(errors.len(), 4, "{errors}");
    let rendered = errors.to_string();
    assert!(rendered.contains("\n4 errors found in "), "{rendered}");
    assert!(
        rendered.ends_with("pipeline.yaml; nothing was run."),
        "{rendered}"
    );
}

// ---- extends ----

const BASE: &str = "\
name: base
description: Shared steps
parameters:
  data_dir: data/base
  depth: 4
steps:
  ingest:
    uses: ingest_data
    params:
      data_dir: ${data_dir}
  clean:
    uses: clean_data
    inputs:
      orders: ingest.orders
";

fn step_ids(pipeline: &Pipeline) -> Vec<&str> {
    pipeline.steps.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn extends_inherits_and_adds() {
    let files = Files::new();
    files.write("base.yaml", BASE);
    let child = files.write(
        "child.yaml",
        "\
name: child
extends: base.yaml
steps:
  train:
    inputs: {x_train: clean.x_train, y_train: clean.y_train}
    params: {max_depth: '${depth}'}
",
    );
    let pipeline = load(&child, &registry(), &[]).unwrap();
    assert_eq!(pipeline.name, "child");
    assert_eq!(pipeline.description.as_deref(), Some("Shared steps"));
    assert_eq!(step_ids(&pipeline), ["ingest", "clean", "train"]);
    assert_eq!(
        pipeline.step("train").unwrap().params["max_depth"],
        ParamValue::Int(4)
    );
    assert_eq!(
        pipeline.files,
        [child.clone(), files.0.path().join("base.yaml")]
    );
    // The inherited step points into the parent file.
    assert!(
        pipeline
            .step("ingest")
            .unwrap()
            .location
            .file
            .ends_with("base.yaml")
    );
}

#[test]
fn extends_child_replaces_whole_entry() {
    let files = Files::new();
    files.write("base.yaml", BASE);
    let child = files.write(
        "child.yaml",
        "\
name: child
extends: base.yaml
parameters:
  depth:
    type: float
    default: 2
steps:
  ingest:
    uses: ingest_data
",
    );
    let pipeline = load(&child, &registry(), &[]).unwrap();
    // The replaced step keeps its place and loses the parent's params.
    assert_eq!(step_ids(&pipeline), ["ingest", "clean"]);
    let ingest = pipeline.step("ingest").unwrap();
    assert_eq!(ingest.params["data_dir"], ParamValue::String("data".into()));
    assert!(ingest.location.file.ends_with("child.yaml"));
    assert_eq!(pipeline.params["depth"].ty, ParamType::Float);
    assert_eq!(pipeline.params["depth"].value, ParamValue::Float(2.0));
}

#[test]
fn extends_chain_of_three() {
    let files = Files::new();
    files.write("base.yaml", BASE);
    fs::create_dir(files.0.path().join("mid")).unwrap();
    files.write(
        "mid/mid.yaml",
        "name: mid\nextends: ../base.yaml\nparameters:\n  depth: 7\n",
    );
    let child = files.write(
        "child.yaml",
        "\
name: child
description: Own description
extends: mid/mid.yaml
steps:
  train:
    inputs: {x_train: clean.x_train, y_train: clean.y_train}
    params: {max_depth: '${depth}'}
",
    );
    let pipeline = load(&child, &registry(), &[]).unwrap();
    assert_eq!(pipeline.description.as_deref(), Some("Own description"));
    assert_eq!(pipeline.files.len(), 3);
    assert_eq!(
        pipeline.step("train").unwrap().params["max_depth"],
        ParamValue::Int(7)
    );
}

#[test]
fn extends_cycle_shows_chain() {
    let files = Files::new();
    files.write("a.yaml", "name: a\nextends: b.yaml\nsteps: {}\n");
    files.write("b.yaml", "name: b\nextends: a.yaml\n");
    let errors = load(&files.0.path().join("a.yaml"), &registry(), &[]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let error = &errors.0[0];
    let (a, b) = (files.0.path().join("a.yaml"), files.0.path().join("b.yaml"));
    assert_eq!(
        error.message,
        format!(
            "`extends` forms a cycle: {} -> {} -> {}",
            a.display(),
            b.display(),
            a.display()
        )
    );
    let location = error.location.as_ref().unwrap();
    assert!(location.file.ends_with("b.yaml"), "{error}");
    assert_eq!((location.line, location.column), (2, 10));
}

#[test]
fn extends_missing_parent_points_at_extends() {
    let files = Files::new();
    let child = files.write("child.yaml", "name: child\nextends: nope.yaml\n");
    let errors = load(&child, &registry(), &[]).unwrap_err();
    let error = &errors.0[0];
    assert!(
        error.message.starts_with("cannot read extended file"),
        "{error}"
    );
    assert!(
        error
            .location
            .as_ref()
            .unwrap()
            .file
            .ends_with("child.yaml")
    );
}

#[test]
fn errors_in_parent_point_into_parent() {
    let files = Files::new();
    files.write(
        "base.yaml",
        &BASE.replace("uses: clean_data", "uses: clean_dta"),
    );
    let child = files.write("child.yaml", "name: child\nextends: base.yaml\n");
    let errors = load(&child, &registry(), &[]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let location = errors.0[0].location.as_ref().unwrap();
    assert!(location.file.ends_with("base.yaml"));
    assert_eq!((location.line, location.column), (12, 11));
    // The summary still names the pipeline that was loaded.
    assert!(
        errors.to_string().contains("child.yaml; nothing was run."),
        "{errors}"
    );
}

#[test]
fn unknown_key_in_parent_points_into_parent() {
    let files = Files::new();
    files.write(
        "base.yaml",
        "name: base\nsteps:\n  ingest:\n    usse: ingest_data\n",
    );
    let child = files.write("child.yaml", "name: child\nextends: base.yaml\n");
    let errors = load(&child, &registry(), &[]).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let location = errors.0[0].location.as_ref().unwrap();
    assert!(location.file.ends_with("base.yaml"), "{errors}");
    assert_eq!(location.line, 4);
}

#[test]
fn child_needs_its_own_name() {
    let files = Files::new();
    files.write("base.yaml", BASE);
    let child = files.write("child.yaml", "extends: base.yaml\n");
    let errors = load(&child, &registry(), &[]).unwrap_err();
    assert_eq!(errors.0[0].message, "the pipeline has no `name`");
}

// ---- overrides ----

#[test]
fn override_flows_through_references() {
    let pipeline = load_text(TRAINING, &["depth=9", "feature_set=basic"]).unwrap();
    assert_eq!(pipeline.params["depth"].value, ParamValue::Int(9));
    assert_eq!(pipeline.params["depth"].default, ParamValue::Int(6));
    assert_eq!(
        pipeline.step("train").unwrap().params["max_depth"],
        ParamValue::Int(9)
    );
    assert_eq!(
        pipeline.step("ingest").unwrap().params["label"],
        ParamValue::String("run-basic".into())
    );
}

#[test]
fn override_equals_yaml_edit() {
    let from_override = load_text(TRAINING, &["learning_rate=5e-4"]).unwrap();
    let from_yaml = load_text(
        &training_with("learning_rate: 0.0005", "learning_rate: 5.0e-4"),
        &[],
    )
    .unwrap();
    let edited_default = load_text(
        &training_with("learning_rate: 0.0005", "learning_rate: 0.0005000"),
        &[],
    )
    .unwrap();
    let train = |p: &Pipeline| p.step("train").unwrap().params.clone();
    assert_eq!(train(&from_override), train(&from_yaml));
    assert_eq!(train(&from_yaml), train(&edited_default));
    assert_eq!(
        train(&from_override)["learning_rate"],
        ParamValue::Float(0.0005)
    );
}

#[test]
fn int_override_of_float_is_float() {
    let pipeline = load_text(TRAINING, &["learning_rate=1"]).unwrap();
    assert_eq!(
        pipeline.params["learning_rate"].value,
        ParamValue::Float(1.0)
    );
    assert_eq!(
        pipeline.step("train").unwrap().params["learning_rate"],
        ParamValue::Float(1.0)
    );
}

#[test]
fn step_override_replaces_value() {
    let pipeline = load_text(TRAINING, &["train.max_depth=12", "train.objective=mae"]).unwrap();
    let train = &pipeline.step("train").unwrap().params;
    assert_eq!(train["max_depth"], ParamValue::Int(12));
    assert_eq!(train["objective"], ParamValue::String("mae".into()));
}

#[test]
fn step_override_fills_required_param() {
    let text = training_with("      max_depth: ${depth}\n", "");
    let pipeline = load_text(&text, &["train.max_depth=3"]).unwrap();
    assert_eq!(
        pipeline.step("train").unwrap().params["max_depth"],
        ParamValue::Int(3)
    );
}

#[test]
fn step_override_float_spellings_match() {
    let a = load_text(TRAINING, &["train.learning_rate=5e-4"]).unwrap();
    let b = load_text(TRAINING, &["train.learning_rate=0.0005"]).unwrap();
    assert_eq!(
        a.step("train").unwrap().params,
        b.step("train").unwrap().params
    );
}

#[test]
fn later_override_wins() {
    let pipeline = load_text(TRAINING, &["depth=1", "depth=2"]).unwrap();
    assert_eq!(pipeline.params["depth"].value, ParamValue::Int(2));
}

#[test]
fn unknown_override_names_suggest() {
    let errors = load_text(
        TRAINING,
        &["dpeth=3", "trian.max_depth=3", "train.max_dpth=3"],
    )
    .unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`--set dpeth=3` sets `dpeth`, but the pipeline has no parameter `dpeth`",
            "`--set trian.max_depth=3` sets a parameter of step `trian`, but the pipeline has no step `trian`",
            "`--set train.max_dpth=3` sets `max_dpth`, but step `train` has no parameter `max_dpth`",
        ]
    );
    assert!(
        help(&errors.0[0]).starts_with("did you mean `depth`?"),
        "{errors}"
    );
    assert!(
        help(&errors.0[1]).starts_with("did you mean `train`?"),
        "{errors}"
    );
    assert!(
        help(&errors.0[2]).starts_with("did you mean `max_depth`?"),
        "{errors}"
    );
}

#[test]
fn override_of_wrong_type_fails() {
    let errors = load_text(TRAINING, &["depth=abc", "train.max_depth=1.5"]).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    assert_eq!(
        errors.0[0].message,
        "`--set depth=abc` is invalid: `abc` is not a valid int"
    );
    assert_eq!(
        errors.0[1].message,
        "`--set train.max_depth=1.5` is invalid: `1.5` is not a valid int"
    );
}

#[test]
fn override_outside_choices_fails() {
    let errors = load_text(TRAINING, &["feature_set=fancy", "train.objective=rmse"]).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors}");
    assert!(
        errors.0[0]
            .message
            .contains("`fancy` is not one of the choices of `feature_set`"),
        "{errors}"
    );
    assert_eq!(help(&errors.0[0]), "valid values: `basic`, `order_time`");
    assert!(
        errors.0[1]
            .message
            .contains("`rmse` is not one of the choices of `objective`"),
        "{errors}"
    );
}

#[test]
fn bool_override_rejects_yes() {
    let text = training_with("  depth: 6\n", "  depth: 6\n  verbose: false\n");
    let errors = load_text(&text, &["verbose=yes"]).unwrap_err();
    assert!(
        errors.0[0].message.contains("`yes` is not a valid bool"),
        "{errors}"
    );
    let pipeline = load_text(&text, &["verbose=true"]).unwrap();
    assert_eq!(pipeline.params["verbose"].value, ParamValue::Bool(true));
}

// ---- size ----

/// Writes a chain of `n` steps: `s0` ingests, then each `clean` step reads
/// the previous table.
fn long_pipeline(n: usize) -> String {
    let mut text = String::from("name: long\nparameters:\n  data_dir: data\nsteps:\n");
    text.push_str("  s0:\n    uses: ingest_data\n    params: {data_dir: '${data_dir}'}\n");
    text.push_str("  s1:\n    uses: clean_data\n    inputs: {orders: s0.orders}\n");
    for i in 2..n {
        text.push_str(&format!(
            "  s{i}:\n    uses: clean_data\n    inputs: {{orders: s{}.x_train}}\n",
            i - 1
        ));
    }
    text
}

#[test]
fn thousand_step_pipeline_loads() {
    let pipeline = load_text(&long_pipeline(1000), &[]).unwrap();
    assert_eq!(pipeline.steps.len(), 1000);
    let graph = PipelineGraph::build(&pipeline).unwrap();
    let order = graph.topological_order();
    assert_eq!(order.first(), Some(&"s0"));
    assert_eq!(order.last(), Some(&"s999"));
    assert_eq!(graph.downstream_closure("s998").len(), 2);
}
