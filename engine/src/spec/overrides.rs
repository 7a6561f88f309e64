//! `--set` overrides: `name=value` for a pipeline parameter and
//! `step.param=value` for one step's parameter.
//!
//! This module only splits the text. The values are typed during
//! [`load`](super::load), against the parameter's declared type, so an
//! override and an edit of the YAML default give the same typed value.

/// One `--set` override, split but not yet typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The step id for a step parameter; `None` for a pipeline parameter.
    pub step: Option<String>,
    /// The parameter name.
    pub name: String,
    /// The value as written on the command line.
    pub value: String,
}

impl Override {
    /// Formats the override as it was written, for messages.
    pub fn as_written(&self) -> String {
        match &self.step {
            Some(step) => format!("--set {step}.{}={}", self.name, self.value),
            None => format!("--set {}={}", self.name, self.value),
        }
    }
}

/// Splits `name=value` or `step.param=value`. The name ends at the first
/// `=`, and a step id ends at the first `.` of the name, so values may
/// contain both. An empty value is an empty string.
pub fn parse_override(text: &str) -> Result<Override, String> {
    let usage = "use NAME=VALUE for a pipeline parameter or STEP.PARAM=VALUE for a step parameter";
    let Some((target, value)) = text.split_once('=') else {
        return Err(format!("`{text}` has no `=`; {usage}"));
    };
    let target = target.trim();
    if target.is_empty() {
        return Err(format!(
            "`{text}` has no parameter name before `=`; {usage}"
        ));
    }

    let (step, name) = match target.split_once('.') {
        Some((step, name)) => {
            if step.is_empty() || name.is_empty() {
                return Err(format!(
                    "`{text}` names `{target}`, which needs both a step id and a parameter name around the `.`; {usage}"
                ));
            }
            (Some(step.to_string()), name.to_string())
        }
        None => (None, target.to_string()),
    };
    Ok(Override {
        step,
        name,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_parameter_override() {
        assert_eq!(
            parse_override("learning_rate=5e-4"),
            Ok(Override {
                step: None,
                name: "learning_rate".to_string(),
                value: "5e-4".to_string()
            })
        );
    }

    #[test]
    fn step_parameter_override() {
        let parsed = parse_override("train.max_depth=8").unwrap();
        assert_eq!(parsed.step.as_deref(), Some("train"));
        assert_eq!(parsed.name, "max_depth");
        assert_eq!(parsed.value, "8");
    }

    #[test]
    fn value_keeps_equals_and_dots() {
        let parsed = parse_override("label=a=b.c").unwrap();
        assert_eq!(parsed.step, None);
        assert_eq!(parsed.value, "a=b.c");
        assert_eq!(parse_override("empty=").unwrap().value, "");
    }

    #[test]
    fn malformed_overrides_fail() {
        assert!(
            parse_override("no_equals")
                .unwrap_err()
                .contains("has no `=`")
        );
        assert!(parse_override("=5").is_err());
        assert!(parse_override(".x=5").is_err());
        assert!(parse_override("train.=5").is_err());
    }

    #[test]
    fn as_written_round_trips() {
        for text in ["a=1", "step.p=x y"] {
            let parsed = parse_override(text).unwrap();
            assert_eq!(parsed.as_written(), format!("--set {text}"));
        }
    }
}
