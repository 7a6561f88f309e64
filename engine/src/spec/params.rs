//! Pipeline parameters: typing their defaults and applying `--set`
//! overrides of them.
//!
//! A parameter's type is the declared `type`, or the type inferred from its
//! default when there is none. Both the default and an override are
//! converted to that type, so `5e-4` given with `--set` and `0.0005` written
//! as the default are the same float. This module never looks at steps.

use super::error::{Diagnostics, Pos, SpecError};
use super::extends::Entry;
use super::raw::{RawParam, RawParamDef, RawValue};
use super::template::is_valid_name;
use super::{Override, PipelineParam, suggest};
use crate::param::{ParamType, ParamValue};
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};

/// The resolved pipeline parameters.
#[derive(Debug, Default)]
pub(crate) struct ParamTable {
    pub(crate) params: BTreeMap<String, PipelineParam>,
    /// Parameters declared with an error already reported. References to
    /// them are not reported again.
    pub(crate) broken: BTreeSet<String>,
    /// True when a file of the chain has an unknown top-level key that is a
    /// likely misspelling of `parameters`. A name missing from the table
    /// may be declared under that key, so references and overrides naming
    /// it are not reported.
    pub(crate) names_incomplete: bool,
}

impl ParamTable {
    /// Lists every declared name, valid or not, for suggestions.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.params.keys().map(String::as_str).collect();
        names.extend(self.broken.iter().map(String::as_str));
        names.sort_unstable();
        names
    }
}

/// Converts a YAML value to a parameter value, or `None` when it contains a
/// null, which no parameter type accepts.
pub(crate) fn to_param_value(raw: &RawValue) -> Option<ParamValue> {
    Some(match raw {
        RawValue::Null => return None,
        RawValue::Bool(b) => ParamValue::Bool(*b),
        RawValue::Int(i) => ParamValue::Int(*i),
        RawValue::Float(f) => ParamValue::Float(*f),
        RawValue::String(s) => ParamValue::String(s.clone()),
        RawValue::List(items) => {
            ParamValue::List(items.iter().map(to_param_value).collect::<Option<_>>()?)
        }
        RawValue::Map(map) => ParamValue::Map(
            map.iter()
                .map(|(k, v)| Some((k.clone(), to_param_value(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// Describes a value for messages: "the string `abc`", "a list".
pub(crate) fn describe(value: &ParamValue) -> String {
    match value {
        ParamValue::Bool(b) => format!("the bool `{b}`"),
        ParamValue::Int(i) => format!("the int `{i}`"),
        ParamValue::Float(f) => format!("the float `{}`", crate::param::format_float(*f)),
        ParamValue::String(s) => format!("the string `{s}`"),
        ParamValue::List(_) => "a list".to_string(),
        ParamValue::Map(_) => "a map".to_string(),
    }
}

/// Returns "a" or "an" followed by the type name.
pub(crate) fn with_article(ty: ParamType) -> String {
    match ty {
        ParamType::Int => "an int".to_string(),
        other => format!("a {other}"),
    }
}

/// Formats the help line for a value outside `choices`.
pub(crate) fn choices_help(value: &str, choices: &[String]) -> String {
    suggest::help(value, "valid values", choices.iter().map(String::as_str))
}

/// Types every declared pipeline parameter, in file order.
pub(crate) fn resolve(
    entries: &[Entry<Spanned<RawParam>>],
    diagnostics: &mut Diagnostics<'_>,
) -> ParamTable {
    let mut table = ParamTable::default();
    for entry in entries {
        let name = entry.key.value.clone();
        match resolve_one(entry, diagnostics) {
            Some(param) => {
                table.params.insert(name, param);
            }
            None => {
                table.broken.insert(name);
            }
        }
    }
    table
}

fn resolve_one(
    entry: &Entry<Spanned<RawParam>>,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<PipelineParam> {
    let name = &entry.key.value;
    if !is_valid_name(name) {
        diagnostics.error(
            entry.key_pos(),
            format!("parameter name `{name}` is invalid"),
            Some("use only ASCII letters, digits, `_` and `-`".to_string()),
        );
        return None;
    }

    match &entry.value.value {
        RawParam::Shorthand(RawValue::Null) => {
            diagnostics.error(
                entry.key_pos(),
                format!("parameter `{name}` has no default value"),
                Some(format!(
                    "write a default such as `{name}: 1`, or the full form with `type:` and `default:`"
                )),
            );
            None
        }
        RawParam::Shorthand(raw) => {
            let default = to_param_value(raw)?;
            Some(PipelineParam {
                name: name.clone(),
                ty: default.inferred_type(),
                value: default.clone(),
                default,
                doc: None,
                choices: None,
            })
        }
        RawParam::Full(def) => resolve_full(entry, def, diagnostics),
    }
}

/// Types a parameter written as a mapping of `type`, `default`, `doc` and
/// `choices`.
fn resolve_full(
    entry: &Entry<Spanned<RawParam>>,
    def: &RawParamDef,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<PipelineParam> {
    let name = &entry.key.value;
    let declared_type = match &def.ty {
        Some(ty) => match ParamType::parse(&ty.value) {
            Some(parsed) => Some(parsed),
            None => {
                diagnostics.error(
                    entry.pos_of(ty),
                    format!("parameter `{name}` has unknown type `{}`", ty.value),
                    Some(suggest::help(
                        &ty.value,
                        "valid types",
                        ParamType::NAMES.iter().copied(),
                    )),
                );
                return None;
            }
        },
        None => None,
    };

    let Some(raw_default) = &def.default else {
        // A misspelled `default` key is reported on its own.
        if def.unknown.misspells("default") {
            return None;
        }
        let example = declared_type.map_or("a value".to_string(), with_article);
        diagnostics.error(
            entry.key_pos(),
            format!("parameter `{name}` has no `default`"),
            Some(format!(
                "add `default:` with {example}; `--set` can still change it for one run"
            )),
        );
        return None;
    };
    let default_pos = entry.pos_of(raw_default);
    let Some(untyped) = to_param_value(&raw_default.value) else {
        diagnostics.error(
            default_pos,
            format!("the default of parameter `{name}` is null"),
            Some("give a value; no parameter type accepts null".to_string()),
        );
        return None;
    };
    let ty = declared_type.unwrap_or_else(|| untyped.inferred_type());
    let Some(default) = untyped.clone().coerce(ty) else {
        diagnostics.error(
            default_pos,
            format!(
                "the default of parameter `{name}` is {}, but its type is {ty}",
                describe(&untyped)
            ),
            None,
        );
        return None;
    };

    let choices = match &def.choices {
        Some(choices) => Some(check_choices(
            entry,
            name,
            ty,
            choices,
            &default,
            default_pos,
            diagnostics,
        )?),
        None => None,
    };
    Some(PipelineParam {
        name: name.clone(),
        ty,
        value: default.clone(),
        default,
        doc: def.doc.clone(),
        choices,
    })
}

/// Checks that `choices` applies to the type and contains the default.
fn check_choices(
    entry: &Entry<Spanned<RawParam>>,
    name: &str,
    ty: ParamType,
    choices: &Spanned<Vec<String>>,
    default: &ParamValue,
    default_pos: Pos,
    diagnostics: &mut Diagnostics<'_>,
) -> Option<Vec<String>> {
    if !matches!(ty, ParamType::String | ParamType::Path) {
        diagnostics.error(
            entry.pos_of(choices),
            format!("parameter `{name}` has `choices`, but its type is {ty}"),
            Some("`choices` applies only to string and path parameters".to_string()),
        );
        return None;
    }
    let choices = choices.value.clone();
    let value = default.as_str().unwrap_or_default();
    if !choices.iter().any(|c| c == value) {
        diagnostics.error(
            default_pos,
            format!("the default `{value}` of parameter `{name}` is not one of its choices"),
            Some(choices_help(value, &choices)),
        );
        return None;
    }
    Some(choices)
}

/// Applies the overrides of pipeline parameters (those without a step).
/// Later overrides of the same name win.
///
/// `step_params` lists every step parameter as `(param, step.param)`: an
/// unknown name close to one of them is suggested in its `step.param`
/// form, since a step parameter is set that way.
pub(crate) fn apply_overrides(
    table: &mut ParamTable,
    overrides: &[Override],
    step_params: &[(String, String)],
    diagnostics: &mut Diagnostics<'_>,
) {
    for item in overrides.iter().filter(|o| o.step.is_none()) {
        if table.broken.contains(&item.name) {
            continue;
        }
        let Some(param) = table.params.get_mut(&item.name) else {
            if table.names_incomplete {
                continue;
            }
            let names = table.names();
            let mut help = suggest::help(&item.name, "pipeline parameters", names.iter().copied());
            if suggest::closest(&item.name, names.iter().copied()).is_none()
                && let Some(short) =
                    suggest::closest(&item.name, step_params.iter().map(|(p, _)| p.as_str()))
            {
                let full = &step_params
                    .iter()
                    .find(|(p, _)| p == short)
                    .expect("found")
                    .1;
                help = format!("did you mean the step parameter `{full}`? {help}");
            }
            diagnostics.push(
                SpecError::new(format!(
                    "`{}` sets `{}`, but the pipeline has no parameter `{}`",
                    item.as_written(),
                    item.name,
                    item.name
                ))
                .with_help(format!("{help}; use STEP.PARAM=VALUE for a step parameter")),
            );
            continue;
        };
        match typed_override(item, param.ty, param.choices.as_deref()) {
            Ok(value) => {
                tracing::debug!(parameter = %item.name, value = %value, "applied --set override");
                param.value = value;
            }
            Err(error) => diagnostics.push(error),
        }
    }
}

/// Types an override's text as `ty` and checks it against `choices`.
#[expect(
    clippy::result_large_err,
    reason = "a SpecError is built only on the failure path of a load, so its size costs nothing that matters"
)]
pub(crate) fn typed_override(
    item: &Override,
    ty: ParamType,
    choices: Option<&[String]>,
) -> Result<ParamValue, SpecError> {
    let value =
        ParamValue::parse_as(&item.value, ty).map_err(|reason| {
            SpecError::new(format!("`{}` is invalid: {reason}", item.as_written()))
                .with_help(format!("`{}` is {}", item.name, with_article(ty)))
        })?;
    if let (Some(choices), Some(text)) = (choices, value.as_str())
        && !choices.iter().any(|c| c == text)
    {
        return Err(SpecError::new(format!(
            "`{}` is invalid: `{text}` is not one of the choices of `{}`",
            item.as_written(),
            item.name
        ))
        .with_help(choices_help(text, choices)));
    }
    Ok(value)
}
