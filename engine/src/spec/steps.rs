//! Step resolution: checking each step against its registered signature and
//! producing the typed, substituted [`PipelineStep`]s.
//!
//! For every step this module checks:
//!
//! - the registered name in `uses`;
//! - each parameter: declared, typed, within `choices`, references
//!   resolved, `--set` overrides applied and defaults filled in;
//! - each input: declared, written as `step.output`, and naming an existing
//!   step and an output of the same kind;
//! - the `after` list and the run settings (`retries`, `retry_delay`,
//!   `timeout`, `cache`).
//!
//! It records every problem and keeps going, so one load reports them all.
//! Cycles are left to the graph module.

use super::duration::parse_duration;
use super::error::{Diagnostics, Pos, SpecError};
use super::extends::Entry;
use super::params::{self, ParamTable, choices_help, describe, to_param_value, with_article};
use super::raw::{RawStep, RawValue};
use super::template::{self, Piece, is_valid_name};
use super::{InputRef, Override, PipelineStep, suggest};
use crate::param::ParamValue;
use crate::registry::Registry;
use crate::step::{ParamSpec, StepSignature};
use flowrun_artifacts::ArtifactKind;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

type StepEntry = Entry<Spanned<Option<RawStep>>>;

/// Resolves every step in file order. A step with errors is still returned,
/// with what could be resolved, so the caller can look for cycles too.
pub(crate) fn resolve(
    entries: &[StepEntry],
    registry: &Registry,
    params: &ParamTable,
    overrides: &[Override],
    diagnostics: &mut Diagnostics<'_>,
) -> Vec<PipelineStep> {
    let ids: Vec<&str> = entries.iter().map(|e| e.key.value.as_str()).collect();
    let signatures: HashMap<&str, &StepSignature> = entries
        .iter()
        .filter_map(|e| {
            let uses = raw_step(e).uses.as_ref().map_or(&e.key.value, |u| &u.value);
            Some((e.key.value.as_str(), registry.get(uses)?.signature()))
        })
        .collect();

    let mut step_overrides: BTreeMap<&str, Vec<&Override>> = BTreeMap::new();
    for item in overrides {
        let Some(step) = item.step.as_deref() else {
            continue;
        };
        if ids.contains(&step) {
            step_overrides.entry(step).or_default().push(item);
        } else {
            diagnostics.push(
                SpecError::new(format!(
                    "`{}` sets a parameter of step `{step}`, but the pipeline has no step `{step}`",
                    item.as_written()
                ))
                .with_help(suggest::help(step, "steps", ids.iter().copied())),
            );
        }
    }

    let mut resolver = Resolver {
        registry,
        params,
        ids: &ids,
        signatures: &signatures,
        diagnostics,
    };
    entries
        .iter()
        .map(|entry| {
            let overrides = step_overrides
                .get(entry.key.value.as_str())
                .map_or(&[][..], Vec::as_slice);
            resolver.step(entry, overrides)
        })
        .collect()
}

/// Returns every parameter of every step as `(param, step.param)`, from
/// the registered signatures, for suggestions.
pub(super) fn step_param_names(steps: &[StepEntry], registry: &Registry) -> Vec<(String, String)> {
    let mut names = Vec::new();
    for entry in steps {
        let id = &entry.key.value;
        let raw = raw_step(entry);
        let uses = raw.uses.as_ref().map_or(id.as_str(), |u| u.value.as_str());
        if let Some(registered) = registry.get(uses) {
            for spec in &registered.signature().params {
                names.push((spec.name.clone(), format!("{id}.{}", spec.name)));
            }
        }
    }
    names
}

fn raw_step(entry: &StepEntry) -> &RawStep {
    static EMPTY: RawStep = RawStep::EMPTY;
    entry.value.value.as_ref().unwrap_or(&EMPTY)
}

struct Resolver<'a, 'd, 's> {
    registry: &'a Registry,
    params: &'a ParamTable,
    /// Every step id, in file order.
    ids: &'a [&'a str],
    /// The signature of each step whose `uses` is registered.
    signatures: &'a HashMap<&'a str, &'a StepSignature>,
    diagnostics: &'d mut Diagnostics<'s>,
}

impl Resolver<'_, '_, '_> {
    fn step(&mut self, entry: &StepEntry, overrides: &[&Override]) -> PipelineStep {
        let id = entry.key.value.clone();
        let raw = raw_step(entry);
        if !is_valid_name(&id) {
            self.diagnostics.error(
                entry.key_pos(),
                format!("step id `{id}` is invalid"),
                Some("use only ASCII letters, digits, `_` and `-`; a `.` separates a step id from an output name".to_string()),
            );
        }

        let uses = raw.uses.as_ref().map_or(id.clone(), |u| u.value.clone());
        let signature = self.signatures.get(id.as_str()).copied();
        if signature.is_none() {
            self.report_unregistered(entry, raw, &uses);
        }

        let params = match signature {
            Some(signature) => self.params(entry, raw, signature, overrides),
            None => BTreeMap::new(),
        };
        let inputs = self.inputs(entry, raw, signature);
        let after = self.after(entry, raw);

        PipelineStep {
            location: self.diagnostics.sources().location(entry.key_pos()),
            retries: self.retries(entry, raw),
            retry_delay: self
                .duration(entry, raw.retry_delay.as_ref(), "retry_delay")
                .unwrap_or(Duration::ZERO),
            timeout: self.timeout(entry, raw),
            cache: self.cache(entry, raw),
            id,
            uses,
            params,
            inputs,
            after,
        }
    }

    fn report_unregistered(&mut self, entry: &StepEntry, raw: &RawStep, uses: &str) {
        let id = &entry.key.value;
        let registered: Vec<&str> = self.registry.names().collect();
        let help = suggest::help(uses, "registered steps", registered.iter().copied());
        match &raw.uses {
            Some(spanned) => self.diagnostics.error(
                entry.pos_of(spanned),
                format!("step `{id}` uses `{uses}`, which is not a registered step"),
                Some(help),
            ),
            // A misspelled `uses` key is reported on its own.
            None if raw.unknown.misspells("uses") => {}
            None => self.diagnostics.error(
                entry.key_pos(),
                format!("step `{id}` has no `uses:`, and `{id}` is not a registered step"),
                Some(format!("add `uses: <registered step>`; {help}")),
            ),
        }
    }
}

/// Parameters.
impl Resolver<'_, '_, '_> {
    /// Resolves every declared parameter of a step: the YAML value or the
    /// default, with references substituted and overrides applied.
    fn params(
        &mut self,
        entry: &StepEntry,
        raw: &RawStep,
        signature: &StepSignature,
        overrides: &[&Override],
    ) -> BTreeMap<String, ParamValue> {
        let id = &entry.key.value;
        let mut values = BTreeMap::new();
        // Parameters given with an error, so they are not also missing.
        let mut given = BTreeSet::new();

        for (key, value) in raw.params.iter().flat_map(|m| &m.0) {
            let name = &key.value;
            given.insert(name.clone());
            let Some(spec) = signature.find_param(name) else {
                let declared = signature.params.iter().map(|p| p.name.as_str());
                self.diagnostics.error(
                    entry.pos_of(key),
                    format!("step `{id}` has no parameter `{name}`"),
                    Some(suggest::help(
                        name,
                        &format!("parameters of `{}`", signature.name),
                        declared,
                    )),
                );
                continue;
            };
            if let Some(resolved) = self.yaml_param(entry, spec, value) {
                values.insert(name.clone(), resolved);
            }
        }

        for item in overrides {
            let Some(spec) = signature.find_param(&item.name) else {
                let declared = signature.params.iter().map(|p| p.name.as_str());
                self.diagnostics.push(
                    SpecError::new(format!(
                        "`{}` sets `{}`, but step `{id}` has no parameter `{}`",
                        item.as_written(),
                        item.name,
                        item.name
                    ))
                    .with_help(suggest::help(
                        &item.name,
                        &format!("parameters of `{}`", signature.name),
                        declared,
                    )),
                );
                continue;
            };
            match params::typed_override(item, spec.ty, spec.choices.as_deref()) {
                Ok(value) if spec.check_range(&value).is_err() => {
                    let reason = spec.check_range(&value).unwrap_err();
                    self.diagnostics.push(SpecError::new(format!(
                        "`{}` sets parameter `{}` of step `{id}`, which {reason}",
                        item.as_written(),
                        item.name
                    )));
                }
                Ok(value) => {
                    tracing::debug!(step = %id, parameter = %item.name, value = %value, "applied --set override");
                    given.insert(item.name.clone());
                    values.insert(item.name.clone(), value);
                }
                Err(error) => self.diagnostics.push(error),
            }
        }

        // A misspelled `params` key is reported on its own, so the
        // parameters under it are not also reported missing.
        let params_misspelled = raw.unknown.misspells("params");
        for spec in &signature.params {
            if values.contains_key(&spec.name) || given.contains(&spec.name) {
                continue;
            }
            match &spec.default {
                Some(default) => {
                    values.insert(spec.name.clone(), default.clone());
                }
                None if params_misspelled => {}
                None => self.diagnostics.error(
                    entry.key_pos(),
                    format!(
                        "step `{id}` is missing required parameter `{}` ({})",
                        spec.name, spec.ty
                    ),
                    Some(format!(
                        "add `{}: <{}>` under `params:` ({})",
                        spec.name, spec.ty, spec.doc
                    )),
                ),
            }
        }
        values
    }

    /// Resolves one parameter value written in the YAML: references, type
    /// and choices.
    fn yaml_param(
        &mut self,
        entry: &StepEntry,
        spec: &ParamSpec,
        value: &Spanned<RawValue>,
    ) -> Option<ParamValue> {
        let id = &entry.key.value;
        let pos = entry.pos_of(value);
        let Some(untyped) = to_param_value(&value.value) else {
            let help = match &spec.default {
                Some(default) => format!(
                    "give {}, or remove the line to use the default {default}",
                    with_article(spec.ty)
                ),
                None => format!("give {}", with_article(spec.ty)),
            };
            self.diagnostics.error(
                pos,
                format!("parameter `{}` of step `{id}` is null", spec.name),
                Some(help),
            );
            return None;
        };

        // Where the string's text starts inside the located scalar, so a
        // reference can be underlined exactly: 0 for a plain scalar, 1 after
        // an opening quote. `None` when the text does not appear as written
        // (escapes, folded lines), and then the whole value is underlined.
        let text_offset = value.value.as_string_ref().and_then(|text| {
            let covered = self.diagnostics.sources().covered_text(pos)?;
            let chars = text.chars().count();
            if covered == text {
                Some(0)
            } else if covered.starts_with(['"', '\''])
                && covered.chars().count() == chars + 2
                && covered[1..].starts_with(text)
            {
                Some(1)
            } else {
                None
            }
        });
        let context = ReferenceSite {
            step: id,
            param: &spec.name,
            pos,
            text_offset,
        };
        let (substituted, whole_reference) = self.substitute(untyped, &context)?;

        let Some(typed) = substituted.clone().coerce(spec.ty) else {
            let source = whole_reference
                .map(|name| format!(" (from `${{{name}}}`)"))
                .unwrap_or_default();
            self.diagnostics.error(
                pos,
                format!(
                    "parameter `{}` of step `{id}` must be {}, but it is {}{source}",
                    spec.name,
                    with_article(spec.ty),
                    describe(&substituted)
                ),
                Some(format!("`{}` ({}): {}", spec.name, spec.ty, spec.doc))
                    .filter(|_| !spec.doc.is_empty()),
            );
            return None;
        };

        if let (Some(choices), Some(text)) = (&spec.choices, typed.as_str())
            && !choices.iter().any(|c| c == text)
        {
            self.diagnostics.error(
                pos,
                format!(
                    "parameter `{}` of step `{id}` is `{text}`, which is not one of its choices",
                    spec.name
                ),
                Some(choices_help(text, choices)),
            );
            return None;
        }
        if let Err(reason) = spec.check_range(&typed) {
            let source = whole_reference
                .map(|name| format!(" (from `${{{name}}}`)"))
                .unwrap_or_default();
            self.diagnostics.error(
                pos,
                format!("parameter `{}` of step `{id}` {reason}{source}", spec.name),
                Some(format!("`{}` ({}): {}", spec.name, spec.ty, spec.doc))
                    .filter(|_| !spec.doc.is_empty()),
            );
            return None;
        }
        Some(typed)
    }

    /// Replaces `${name}` references in a value, inside lists and maps too.
    /// Returns the new value and, when the whole value was one reference,
    /// the parameter it came from.
    fn substitute(
        &mut self,
        value: ParamValue,
        site: &ReferenceSite<'_>,
    ) -> Option<(ParamValue, Option<String>)> {
        match value {
            ParamValue::String(text) if template::has_reference(&text) => {
                self.substitute_string(&text, site)
            }
            ParamValue::List(items) => {
                let nested = ReferenceSite {
                    text_offset: None,
                    ..*site
                };
                let mut out = Vec::with_capacity(items.len());
                let mut failed = false;
                for item in items {
                    match self.substitute(item, &nested) {
                        Some((value, _)) => out.push(value),
                        None => failed = true,
                    }
                }
                (!failed).then_some((ParamValue::List(out), None))
            }
            ParamValue::Map(map) => {
                let nested = ReferenceSite {
                    text_offset: None,
                    ..*site
                };
                let mut out = BTreeMap::new();
                let mut failed = false;
                for (key, item) in map {
                    match self.substitute(item, &nested) {
                        Some((value, _)) => {
                            out.insert(key, value);
                        }
                        None => failed = true,
                    }
                }
                (!failed).then_some((ParamValue::Map(out), None))
            }
            other => Some((other, None)),
        }
    }

    fn substitute_string(
        &mut self,
        text: &str,
        site: &ReferenceSite<'_>,
    ) -> Option<(ParamValue, Option<String>)> {
        let pieces = match template::parse(text) {
            Ok(pieces) => pieces,
            Err(error) => {
                let pos = site.place(error.offset, error.len);
                self.diagnostics.error(
                    pos,
                    format!(
                        "parameter `{}` of step `{}` is invalid: {}",
                        site.param, site.step, error.message
                    ),
                    Some(
                        "write `${name}` to use a pipeline parameter, or `$${` for a literal `${`"
                            .to_string(),
                    ),
                );
                return None;
            }
        };

        if let [Piece::Reference { name, offset, len }] = pieces.as_slice() {
            let value = self.lookup(name, site, *offset, *len)?;
            return Some((value.clone(), Some(name.to_string())));
        }
        let mut out = String::new();
        let mut failed = false;
        for piece in &pieces {
            match piece {
                Piece::Text(literal) => out.push_str(literal),
                Piece::Reference { name, offset, len } => {
                    match self.lookup(name, site, *offset, *len) {
                        Some(value) => out.push_str(&interpolated_text(value)),
                        None => failed = true,
                    }
                }
            }
        }
        (!failed).then_some((ParamValue::String(out), None))
    }

    /// Looks up a referenced pipeline parameter, reporting unknown names.
    fn lookup(
        &mut self,
        name: &str,
        site: &ReferenceSite<'_>,
        offset: usize,
        len: usize,
    ) -> Option<&ParamValue> {
        if let Some(param) = self.params.params.get(name) {
            return Some(&param.value);
        }
        if !self.params.broken.contains(name) && !self.params.names_incomplete {
            let names = self.params.names();
            let help = if names.is_empty() {
                "declare it under `parameters:` at the top level".to_string()
            } else {
                suggest::help(name, "pipeline parameters", names.iter().copied())
            };
            self.diagnostics.error(
                site.place(offset, len),
                format!(
                    "parameter `{}` of step `{}` refers to `${{{name}}}`, but the pipeline has no parameter `{name}`",
                    site.param, site.step
                ),
                Some(help),
            );
        }
        None
    }
}

/// Where a parameter value that may contain references sits.
#[derive(Clone, Copy)]
struct ReferenceSite<'a> {
    step: &'a str,
    param: &'a str,
    pos: Pos,
    text_offset: Option<usize>,
}

impl ReferenceSite<'_> {
    /// Returns the position of characters `offset..offset + len` of the
    /// string, or the whole value when the string's text cannot be located.
    fn place(&self, offset: usize, len: usize) -> Pos {
        match self.text_offset {
            Some(start) => self.pos.shifted(start + offset, len),
            None => self.pos,
        }
    }
}

/// Formats a parameter value for use inside a longer string: strings as
/// they are, numbers and booleans as `--set` shows them, lists and maps as
/// JSON.
fn interpolated_text(value: &ParamValue) -> String {
    match value {
        ParamValue::String(s) => s.clone(),
        ParamValue::List(_) | ParamValue::Map(_) => value.to_json().to_string(),
        other => other.to_string(),
    }
}

impl RawValue {
    fn as_string_ref(&self) -> Option<&str> {
        match self {
            RawValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Inputs and ordering.
impl Resolver<'_, '_, '_> {
    fn inputs(
        &mut self,
        entry: &StepEntry,
        raw: &RawStep,
        signature: Option<&StepSignature>,
    ) -> BTreeMap<String, InputRef> {
        let mut inputs = BTreeMap::new();
        let mut given = BTreeSet::new();
        for (key, value) in raw.inputs.iter().flat_map(|m| &m.0) {
            given.insert(key.value.clone());
            if let Some(input) = self.input(entry, signature, key, value) {
                inputs.insert(key.value.clone(), input);
            }
        }

        // A misspelled `inputs` key is reported on its own, so the inputs
        // it connects are not also reported unconnected.
        let Some(signature) = signature.filter(|_| !raw.unknown.misspells("inputs")) else {
            return inputs;
        };
        for spec in signature.inputs.iter().filter(|i| !i.optional) {
            if given.contains(&spec.name) {
                continue;
            }
            let example = self.example_producer(&entry.key.value, &spec.name, spec.kind);
            self.diagnostics.error(
                entry.key_pos(),
                format!(
                    "step `{}` needs input `{}` ({}), which is not connected",
                    entry.key.value, spec.name, spec.kind
                ),
                Some(example),
            );
        }
        inputs
    }

    /// Checks one `name: step.output` line.
    fn input(
        &mut self,
        entry: &StepEntry,
        signature: Option<&StepSignature>,
        key: &Spanned<String>,
        value: &Spanned<String>,
    ) -> Option<InputRef> {
        let id = entry.key.value.as_str();
        let name = &key.value;
        let spec = match signature {
            Some(signature) => match signature.find_input(name) {
                Some(spec) => Some(spec),
                None => {
                    let declared = signature.inputs.iter().map(|i| i.name.as_str());
                    self.diagnostics.error(
                        entry.pos_of(key),
                        format!("step `{id}` has no input `{name}`"),
                        Some(suggest::help(
                            name,
                            &format!("inputs of `{}`", signature.name),
                            declared,
                        )),
                    );
                    return None;
                }
            },
            None => None,
        };

        let pos = entry.pos_of(value);
        let text = value.value.trim();
        let Some((producer, output)) = text
            .split_once('.')
            .filter(|(s, o)| !s.is_empty() && !o.is_empty())
        else {
            self.diagnostics.error(
                pos,
                format!("input `{name}` of step `{id}` is `{text}`, which does not name an output"),
                Some("write `<step id>.<output name>`, such as `train.model`".to_string()),
            );
            return None;
        };

        if producer == id {
            self.diagnostics.error(
                pos,
                format!("step `{id}` reads its own output `{text}`"),
                Some(
                    "a step cannot take its own output as input; read it from an earlier step"
                        .to_string(),
                ),
            );
            return None;
        }
        if !self.ids.contains(&producer) {
            let others = self.ids.iter().copied().filter(|s| *s != id);
            self.diagnostics.error(
                pos,
                format!("step `{id}` reads `{text}`, but no step `{producer}` exists"),
                Some(suggest::help(producer, "steps", others)),
            );
            return None;
        }

        // The producer's signature is unknown when its `uses` is not
        // registered, which is reported on that step.
        if let Some(producer_signature) = self.signatures.get(producer) {
            let Some(out) = producer_signature.find_output(output) else {
                let outputs: Vec<String> = producer_signature
                    .outputs
                    .iter()
                    .map(|o| format!("`{}` ({})", o.name, o.kind))
                    .collect();
                let outputs = if outputs.is_empty() {
                    "none".to_string()
                } else {
                    outputs.join(", ")
                };
                let suggestion = suggest::did_you_mean(
                    output,
                    producer_signature.outputs.iter().map(|o| o.name.as_str()),
                )
                .map(|s| format!("{s} "))
                .unwrap_or_default();
                self.diagnostics.error(
                    pos,
                    format!(
                        "step `{id}` reads `{text}`, but step `{producer}` has no output `{output}`"
                    ),
                    Some(format!("{suggestion}outputs of `{producer}`: {outputs}")),
                );
                return None;
            };
            if let Some(spec) = spec
                && spec.kind != out.kind
            {
                self.diagnostics.error(
                    pos,
                    format!(
                        "input `{name}` of step `{id}` takes {}, but `{text}` is {}",
                        kind_with_article(spec.kind),
                        kind_with_article(out.kind)
                    ),
                    Some(format!(
                        "connect an output that produces {}",
                        kind_with_article(spec.kind)
                    )),
                );
                return None;
            }
        }

        Some(InputRef {
            step: producer.to_string(),
            output: output.to_string(),
        })
    }

    /// Suggests a producer for an unconnected input: a step with an output
    /// of the same name and kind, else any output of the same kind.
    fn example_producer(&self, id: &str, input: &str, kind: ArtifactKind) -> String {
        let candidates = self
            .ids
            .iter()
            .filter(|s| **s != id)
            .filter_map(|s| Some((*s, *self.signatures.get(s)?)));
        let mut same_kind = None;
        for (step, signature) in candidates {
            for output in signature.outputs.iter().filter(|o| o.kind == kind) {
                if output.name == input {
                    return format!(
                        "connect it under `inputs:`, for example `{input}: {step}.{}`",
                        output.name
                    );
                }
                same_kind.get_or_insert(format!("{step}.{}", output.name));
            }
        }
        match same_kind {
            Some(example) => {
                format!("connect it under `inputs:`, for example `{input}: {example}`")
            }
            None => format!(
                "no step in this pipeline produces {}; add one that does",
                kind_with_article(kind)
            ),
        }
    }

    fn after(&mut self, entry: &StepEntry, raw: &RawStep) -> Vec<String> {
        let id = entry.key.value.as_str();
        let mut after: Vec<String> = Vec::new();
        for item in raw.after.iter().flatten() {
            let other = item.value.as_str();
            if other == id {
                self.diagnostics.error(
                    entry.pos_of(item),
                    format!("step `{id}` lists itself in `after`"),
                    Some("a step cannot run after itself; remove it from the list".to_string()),
                );
            } else if !self.ids.contains(&other) {
                let others = self.ids.iter().copied().filter(|s| *s != id);
                self.diagnostics.error(
                    entry.pos_of(item),
                    format!("step `{id}` runs after `{other}`, but no step `{other}` exists"),
                    Some(suggest::help(other, "steps", others)),
                );
            } else if !after.iter().any(|a| a == other) {
                after.push(other.to_string());
            }
        }
        after
    }
}

fn kind_with_article(kind: ArtifactKind) -> String {
    format!("a {kind}")
}

/// Run settings.
impl Resolver<'_, '_, '_> {
    fn retries(&mut self, entry: &StepEntry, raw: &RawStep) -> u32 {
        let Some(retries) = &raw.retries else {
            return 0;
        };
        if let RawValue::Int(n) = retries.value
            && let Ok(n) = u32::try_from(n)
        {
            return n;
        }
        self.diagnostics.error(
            entry.pos_of(retries),
            format!(
                "`retries` of step `{}` must be a whole number of extra attempts, 0 or more, but it is {}",
                entry.key.value,
                retries.value.describe()
            ),
            None,
        );
        0
    }

    fn cache(&mut self, entry: &StepEntry, raw: &RawStep) -> bool {
        let Some(cache) = &raw.cache else {
            return true;
        };
        if let RawValue::Bool(b) = cache.value {
            return b;
        }
        self.diagnostics.error(
            entry.pos_of(cache),
            format!(
                "`cache` of step `{}` must be `true` or `false`, but it is {}",
                entry.key.value,
                cache.value.describe()
            ),
            Some(
                "only `true` and `false` are booleans; words such as `yes` and `off` are strings"
                    .to_string(),
            ),
        );
        true
    }

    fn timeout(&mut self, entry: &StepEntry, raw: &RawStep) -> Option<Duration> {
        let timeout = self.duration(entry, raw.timeout.as_ref(), "timeout")?;
        if timeout.is_zero() {
            let pos = raw
                .timeout
                .as_ref()
                .map_or(entry.key_pos(), |t| entry.pos_of(t));
            self.diagnostics.error(
                pos,
                format!(
                    "`timeout` of step `{}` is zero, so the step could never finish",
                    entry.key.value
                ),
                Some("remove `timeout` to let the step run without a time limit".to_string()),
            );
            return None;
        }
        Some(timeout)
    }

    fn duration(
        &mut self,
        entry: &StepEntry,
        value: Option<&Spanned<String>>,
        key: &str,
    ) -> Option<Duration> {
        let value = value?;
        match parse_duration(&value.value) {
            Ok(duration) => Some(duration),
            Err(reason) => {
                self.diagnostics.error(
                    entry.pos_of(value),
                    format!("`{key}` of step `{}` is invalid: {reason}", entry.key.value),
                    None,
                );
                None
            }
        }
    }
}
