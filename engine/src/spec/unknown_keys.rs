//! Keys that a pipeline file's mappings do not accept.
//!
//! Parsing does not stop at an unknown key. The top level, a parameter's
//! full form and a step each keep theirs in an [`UnknownKeys`], and
//! [`report`] turns them into errors that are reported with the semantic
//! ones. The value under an unknown key is read only to skip it, so a
//! syntax error or a duplicate key inside it still stops parsing.
//!
//! An unknown key that is a likely misspelling of a valid key (`stpes` for
//! `steps`) explains errors that follow from the valid key's absence, such
//! as the error that the pipeline has no steps. [`UnknownKeys::misspells`] lets the
//! checks skip those, so each typo is reported once, with its suggestion.
//!
//! This module never decides whether a known key's value is valid.

use super::error::{Diagnostics, FileId, Pos};
use super::raw::{RawParam, RawPipeline};
use super::suggest;
use serde::de::{IgnoredAny, MapAccess};
use serde_saphyr::Spanned;

/// The keys the top level accepts.
pub(crate) const TOP_KEYS: &[&str] = &["name", "description", "extends", "parameters", "steps"];
/// The keys of a parameter written in full.
pub(crate) const PARAM_KEYS: &[&str] = &["type", "default", "doc", "choices"];
/// The keys a step accepts.
pub(crate) const STEP_KEYS: &[&str] = &[
    "uses",
    "params",
    "inputs",
    "after",
    "retries",
    "retry_delay",
    "timeout",
    "cache",
];

/// The kind of mapping whose keys are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MappingKind {
    TopLevel,
    Parameter,
    Step,
}

impl MappingKind {
    pub(crate) fn valid_keys(self) -> &'static [&'static str] {
        match self {
            MappingKind::TopLevel => TOP_KEYS,
            MappingKind::Parameter => PARAM_KEYS,
            MappingKind::Step => STEP_KEYS,
        }
    }

    /// Names the place in error messages ("unknown key `x` in a step").
    fn place(self) -> &'static str {
        match self {
            MappingKind::TopLevel => "at the top level",
            MappingKind::Parameter => "in a parameter",
            MappingKind::Step => "in a step",
        }
    }
}

/// The unknown keys of one mapping, in file order.
#[derive(Debug)]
pub(crate) struct UnknownKeys {
    kind: MappingKind,
    keys: Vec<Spanned<String>>,
}

impl UnknownKeys {
    pub(crate) const fn new(kind: MappingKind) -> Self {
        UnknownKeys {
            kind,
            keys: Vec::new(),
        }
    }

    /// Records `key` as unknown and skips its value.
    pub(crate) fn skip<'de, A: MapAccess<'de>>(
        &mut self,
        key: Spanned<String>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        map.next_value::<IgnoredAny>()?;
        self.keys.push(key);
        Ok(())
    }

    /// Lists the valid keys that the unknown keys are likely misspellings
    /// of, by the same closeness rule as the "did you mean" help.
    pub(crate) fn likely_meant(&self) -> impl Iterator<Item = &'static str> + '_ {
        let valid = self.kind.valid_keys();
        self.keys
            .iter()
            .filter_map(move |key| suggest::closest(&key.value, valid.iter().copied()))
    }

    /// Returns whether one of the unknown keys is a likely misspelling of
    /// the valid key `key`.
    pub(crate) fn misspells(&self, key: &str) -> bool {
        self.likely_meant().any(|meant| meant == key)
    }

    /// Records an error at each unknown key, with the closest valid key as a
    /// suggestion and the list of valid keys.
    fn report(&self, file: FileId, diagnostics: &mut Diagnostics<'_>) {
        let valid = self.kind.valid_keys();
        for key in &self.keys {
            // A key copied in by a merge (`<<: *defaults`) is located where
            // it is written, which is where the fix goes.
            diagnostics.error(
                Pos::from_saphyr(file, &key.defined),
                format!("unknown key `{}` {}", key.value, self.kind.place()),
                Some(suggest::help(
                    &key.value,
                    "valid keys",
                    valid.iter().copied(),
                )),
            );
        }
    }
}

/// Records an error for every unknown key in one parsed file: at the top
/// level, in each parameter's full form and in each step.
pub(crate) fn report(file: FileId, raw: &RawPipeline, diagnostics: &mut Diagnostics<'_>) {
    raw.unknown.report(file, diagnostics);
    for (_, param) in raw.parameters.iter().flat_map(|m| &m.0) {
        if let RawParam::Full(def) = &param.value {
            def.unknown.report(file, diagnostics);
        }
    }
    for (_, step) in raw.steps.iter().flat_map(|m| &m.0) {
        if let Some(step) = &step.value {
            step.unknown.report(file, diagnostics);
        }
    }
}
