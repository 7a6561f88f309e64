//! The declared ranges of the numeric step parameters of this crate.
//!
//! One [`ParamRange`] per parameter serves twice. [`ParamRange::optional`]
//! and [`ParamRange::required`] declare the parameter with the range, so
//! the engine rejects an out-of-range value before any step runs. The code that reads or uses the
//! value checks it again with [`ParamRange::check`], which protects library
//! callers and steps run outside the engine. Both checks compare the value
//! as an `f64` against the same inclusive bounds, so they accept the same
//! values and word their errors alike. NaN is outside every range.
//!
//! This module only describes and checks values; it never chooses a
//! default or changes a value.

use flowrun_engine::param::format_float;
use flowrun_engine::{ParamSpec, ParamType, ParamValue, StepContext, StepError};

/// The range of every `seed` parameter. Seeds are unsigned 64-bit
/// numbers, and a negative one is more likely a typo than a choice.
pub const SEED: ParamRange = ParamRange::int("seed", 0, i64::MAX);

/// A value outside its parameter's declared range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{name}` must be between {min} and {max}, but it is {value}")]
pub struct OutOfRange {
    /// The parameter.
    pub name: &'static str,
    /// The value given, as messages show it.
    pub value: String,
    /// The smallest valid value.
    pub min: String,
    /// The largest valid value.
    pub max: String,
}

impl From<OutOfRange> for StepError {
    fn from(error: OutOfRange) -> Self {
        StepError::failed(error.to_string())
    }
}

/// The inclusive range of valid values of one int or float parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamRange {
    name: &'static str,
    min: f64,
    max: f64,
    integer: bool,
}

impl ParamRange {
    /// Declares the range `min..=max` of the int parameter `name`.
    pub const fn int(name: &'static str, min: i64, max: i64) -> Self {
        ParamRange {
            name,
            min: min as f64,
            max: max as f64,
            integer: true,
        }
    }

    /// Declares the range `min..=max` of the float parameter `name`.
    pub const fn float(name: &'static str, min: f64, max: f64) -> Self {
        ParamRange {
            name,
            min,
            max,
            integer: false,
        }
    }

    /// Returns the parameter name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Returns the smallest valid value.
    pub fn min(&self) -> f64 {
        self.min
    }

    /// Returns the largest valid value.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// Returns whether `value` is in the range; NaN never is.
    pub fn contains(&self, value: f64) -> bool {
        value >= self.min && value <= self.max
    }

    /// Declares this parameter with a default, its range, and `doc`
    /// followed by the range, so that `flowrun steps` shows it.
    pub fn optional(&self, default: ParamValue, doc: &str) -> ParamSpec {
        ParamSpec::optional(self.name, self.param_type(), default, &self.doc(doc))
            .with_range(self.min, self.max)
    }

    /// Declares this parameter as required, with its range and `doc`
    /// followed by the range.
    pub fn required(&self, doc: &str) -> ParamSpec {
        ParamSpec::required(self.name, self.param_type(), &self.doc(doc))
            .with_range(self.min, self.max)
    }

    fn param_type(&self) -> ParamType {
        if self.integer {
            ParamType::Int
        } else {
            ParamType::Float
        }
    }

    fn doc(&self, doc: &str) -> String {
        format!(
            "{doc} ({} to {})",
            self.show_bound(self.min),
            self.show_bound(self.max)
        )
    }

    fn show_bound(&self, bound: f64) -> String {
        if self.integer {
            (bound as i64).to_string()
        } else {
            format_float(bound)
        }
    }

    /// Checks a float value.
    pub fn check(&self, value: f64) -> Result<f64, OutOfRange> {
        if self.contains(value) {
            Ok(value)
        } else {
            Err(self.out_of_range(format_float(value)))
        }
    }

    /// Checks an integer value, comparing it as the engine does (as `f64`).
    pub fn check_int(&self, value: i64) -> Result<i64, OutOfRange> {
        if self.contains(value as f64) {
            Ok(value)
        } else {
            Err(self.out_of_range(value.to_string()))
        }
    }

    /// Checks a count or size held as `usize`.
    pub fn check_usize(&self, value: usize) -> Result<usize, OutOfRange> {
        if self.contains(value as f64) {
            Ok(value)
        } else {
            Err(self.out_of_range(value.to_string()))
        }
    }

    /// Reads and checks this float parameter of a running step.
    pub fn read_f64(&self, ctx: &StepContext<'_>) -> Result<f64, StepError> {
        Ok(self.check(ctx.param_f64(self.name)?)?)
    }

    /// Reads and checks this int parameter of a running step.
    pub fn read_i64(&self, ctx: &StepContext<'_>) -> Result<i64, StepError> {
        Ok(self.check_int(ctx.param_i64(self.name)?)?)
    }

    /// Reads and checks this int parameter of a running step as `usize`.
    pub fn read_usize(&self, ctx: &StepContext<'_>) -> Result<usize, StepError> {
        self.read_int(ctx)
    }

    /// Reads and checks this int parameter of a running step as `u64`.
    pub fn read_u64(&self, ctx: &StepContext<'_>) -> Result<u64, StepError> {
        self.read_int(ctx)
    }

    /// Reads and checks this int parameter of a running step, and converts
    /// it to `T`. A range that `T` cannot hold, such as a negative minimum
    /// for an unsigned type, makes the values `T` lacks fail as out of range.
    pub fn read_int<T: TryFrom<i64>>(&self, ctx: &StepContext<'_>) -> Result<T, StepError> {
        let value = self.read_i64(ctx)?;
        T::try_from(value).map_err(|_| self.out_of_range(value.to_string()).into())
    }

    fn out_of_range(&self, value: String) -> OutOfRange {
        OutOfRange {
            name: self.name,
            value,
            min: self.show_bound(self.min),
            max: self.show_bound(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREES: ParamRange = ParamRange::int("trees", 1, 10_000);
    const SHARE: ParamRange = ParamRange::float("share", 1e-6, 1.0);

    #[test]
    fn bounds_are_inclusive() {
        assert!(TREES.check_int(1).is_ok());
        assert!(TREES.check_int(10_000).is_ok());
        assert!(SHARE.check(1e-6).is_ok());
        assert!(SHARE.check(1.0).is_ok());
    }

    #[test]
    fn outside_values_rejected() {
        for value in [0, -5, 10_001, i64::MAX] {
            assert!(TREES.check_int(value).is_err(), "{value}");
        }
        for value in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            assert!(SHARE.check(value).is_err(), "{value}");
        }
    }

    #[test]
    fn message_names_value_and_range() {
        let error = TREES.check_int(100_000_000_000).unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter `trees` must be between 1 and 10000, but it is 100000000000"
        );
        let error = SHARE.check(f64::NAN).unwrap_err();
        assert_eq!(
            error.to_string(),
            "parameter `share` must be between 1e-6 and 1.0, but it is NaN"
        );
    }

    #[test]
    fn spec_carries_range_and_doc() {
        let spec = TREES.optional(ParamValue::Int(100), "number of trees");
        assert_eq!(spec.ty, ParamType::Int);
        assert_eq!(spec.range, Some((1.0, 10_000.0)));
        assert_eq!(spec.doc, "number of trees (1 to 10000)");
        let spec = SHARE.required("a share");
        assert_eq!(spec.ty, ParamType::Float);
        assert!(spec.default.is_none());
        assert_eq!(spec.doc, "a share (1e-6 to 1.0)");
    }

    #[test]
    fn runtime_check_agrees_with_engine() {
        let spec = SHARE.optional(ParamValue::Float(0.5), "a share");
        for value in [0.0, 1e-7, 1e-6, 0.5, 1.0, 1.0000001, f64::NAN] {
            assert_eq!(
                spec.check_range(&ParamValue::Float(value)).is_ok(),
                SHARE.check(value).is_ok(),
                "{value}"
            );
        }
        let engine = spec.check_range(&ParamValue::Float(2.0)).unwrap_err();
        let ours = SHARE.check(2.0).unwrap_err().to_string();
        assert!(ours.ends_with(&engine), "{ours} / {engine}");
    }

    #[test]
    fn every_numeric_parameter_has_range() {
        let mut registry = flowrun_engine::Registry::new();
        crate::register_all(&mut registry);
        let mut numeric = 0;
        for step in registry.iter() {
            let signature = step.signature();
            for spec in &signature.params {
                if !matches!(spec.ty, ParamType::Int | ParamType::Float) {
                    continue;
                }
                numeric += 1;
                let name = format!("{}.{}", signature.name, spec.name);
                assert!(spec.range.is_some(), "{name} declares no range");
                if let Some(default) = &spec.default {
                    assert!(
                        spec.check_range(default).is_ok(),
                        "{name}: the default {default} is outside its range"
                    );
                }
            }
        }
        assert!(numeric >= 25, "only {numeric} numeric parameters found");
    }
}
