//! Typed parameter values.
//!
//! A parameter has one of a few types. Values from YAML and from
//! `--set name=value` on the command line are both converted to a
//! [`ParamValue`] of the declared type, so that `5e-4` written either way is
//! the same float and gives the same cache key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// `true` or `false`.
    Bool,
    /// A 64-bit signed integer.
    Int,
    /// A 64-bit float; an integer literal is accepted and widened.
    Float,
    /// A string.
    String,
    /// A filesystem path, kept as written. Relative paths are resolved
    /// against the working directory by the step that opens them, so the
    /// cache key never contains an absolute path.
    Path,
    /// A list of values.
    List,
    /// A mapping from string keys to values.
    Map,
}

impl ParamType {
    /// Returns the name used in YAML and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Bool => "bool",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::Path => "path",
            ParamType::List => "list",
            ParamType::Map => "map",
        }
    }

    /// Parses a type name as written in YAML.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "bool" => ParamType::Bool,
            "int" => ParamType::Int,
            "float" => ParamType::Float,
            "string" | "str" => ParamType::String,
            "path" => ParamType::Path,
            "list" => ParamType::List,
            "map" => ParamType::Map,
            _ => return None,
        })
    }

    /// Lists the type names accepted by [`ParamType::parse`].
    pub const NAMES: &'static [&'static str] =
        &["bool", "int", "float", "string", "path", "list", "map"];
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string or a path.
    String(String),
    /// A list.
    List(Vec<ParamValue>),
    /// A mapping with sorted keys.
    Map(BTreeMap<String, ParamValue>),
}

impl ParamValue {
    /// Returns the type this value has when no type is declared.
    pub fn inferred_type(&self) -> ParamType {
        match self {
            ParamValue::Bool(_) => ParamType::Bool,
            ParamValue::Int(_) => ParamType::Int,
            ParamValue::Float(_) => ParamType::Float,
            ParamValue::String(_) => ParamType::String,
            ParamValue::List(_) => ParamType::List,
            ParamValue::Map(_) => ParamType::Map,
        }
    }

    /// Converts this value to `ty`, widening an integer to a float. Returns
    /// `None` when the value does not fit the type.
    pub fn coerce(self, ty: ParamType) -> Option<ParamValue> {
        match (ty, self) {
            (ParamType::Bool, v @ ParamValue::Bool(_)) => Some(v),
            (ParamType::Int, v @ ParamValue::Int(_)) => Some(v),
            (ParamType::Float, v @ ParamValue::Float(_)) => Some(v),
            (ParamType::Float, ParamValue::Int(i)) => Some(ParamValue::Float(i as f64)),
            (ParamType::String | ParamType::Path, v @ ParamValue::String(_)) => Some(v),
            (ParamType::List, v @ ParamValue::List(_)) => Some(v),
            (ParamType::Map, v @ ParamValue::Map(_)) => Some(v),
            _ => None,
        }
    }

    /// Parses a command-line value (`--set name=value`) as `ty`.
    ///
    /// Floats accept any form Rust's float parser accepts (`5e-4`, `0.0005`),
    /// plus `nan`, `inf` and `-inf`; booleans accept only `true` and `false`;
    /// lists and maps are written as JSON.
    pub fn parse_as(text: &str, ty: ParamType) -> Result<ParamValue, String> {
        let invalid = || format!("`{text}` is not a valid {ty}");
        match ty {
            ParamType::Bool => match text {
                "true" => Ok(ParamValue::Bool(true)),
                "false" => Ok(ParamValue::Bool(false)),
                _ => Err(format!("`{text}` is not a valid bool; use true or false")),
            },
            ParamType::Int => text.parse().map(ParamValue::Int).map_err(|_| invalid()),
            ParamType::Float => text.parse().map(ParamValue::Float).map_err(|_| invalid()),
            ParamType::String | ParamType::Path => Ok(ParamValue::String(text.to_string())),
            ParamType::List | ParamType::Map => {
                let json: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| format!("`{text}` is not valid JSON for a {ty}: {e}"))?;
                ParamValue::from_json(&json)
                    .and_then(|v| v.coerce(ty))
                    .ok_or_else(invalid)
            }
        }
    }

    /// Infers the type of a command-line value for a parameter that declares
    /// none: an integer, then a float, then `true`/`false`, else a string.
    pub fn infer_from_text(text: &str) -> ParamValue {
        if let Ok(i) = text.parse::<i64>() {
            ParamValue::Int(i)
        } else if let Ok(f) = text.parse::<f64>() {
            ParamValue::Float(f)
        } else if text == "true" || text == "false" {
            ParamValue::Bool(text == "true")
        } else {
            ParamValue::String(text.to_string())
        }
    }

    /// Converts a JSON value. Returns `None` for `null`, which no parameter
    /// type accepts.
    pub fn from_json(json: &serde_json::Value) -> Option<ParamValue> {
        use serde_json::Value;
        Some(match json {
            Value::Null => return None,
            Value::Bool(b) => ParamValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => ParamValue::Int(i),
                None => ParamValue::Float(n.as_f64()?),
            },
            Value::String(s) => ParamValue::String(s.clone()),
            Value::Array(items) => ParamValue::List(
                items
                    .iter()
                    .map(ParamValue::from_json)
                    .collect::<Option<_>>()?,
            ),
            Value::Object(map) => ParamValue::Map(
                map.iter()
                    .map(|(k, v)| Some((k.clone(), ParamValue::from_json(v)?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// Converts to JSON. Non-finite floats become the strings `"NaN"`,
    /// `"inf"` and `"-inf"`, because JSON has no literal for them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            ParamValue::Bool(b) => Value::Bool(*b),
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Value::Number(n),
                None => Value::String(format_float(*f)),
            },
            ParamValue::String(s) => Value::String(s.clone()),
            ParamValue::List(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            ParamValue::Map(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Returns the value as a float, widening integers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Float(f) => Some(*f),
            ParamValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// Returns the value as an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Returns the value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// Returns the value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Formats a float the way messages and the CLI show it: the shortest form
/// that reads back to the same value, and `NaN`, `inf`, `-inf`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{f:?}")
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => f.write_str(&format_float(*x)),
            ParamValue::String(s) => write!(f, "{s:?}"),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_spellings_parse_equal() {
        let a = ParamValue::parse_as("1e-3", ParamType::Float).unwrap();
        let b = ParamValue::parse_as("1.0e-3", ParamType::Float).unwrap();
        let c = ParamValue::parse_as("0.001", ParamType::Float).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
    }

    #[test]
    fn int_widens_to_float() {
        assert_eq!(
            ParamValue::Int(3).coerce(ParamType::Float),
            Some(ParamValue::Float(3.0))
        );
        assert_eq!(ParamValue::Float(3.0).coerce(ParamType::Int), None);
    }

    #[test]
    fn bool_rejects_yes() {
        assert!(ParamValue::parse_as("yes", ParamType::Bool).is_err());
        assert!(ParamValue::parse_as("abc", ParamType::Float).is_err());
    }
}
