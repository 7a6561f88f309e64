//! References to pipeline parameters inside step parameter values.
//!
//! A string value may contain `${name}`, which names a pipeline parameter.
//! A value that is exactly one reference takes the parameter's typed value;
//! a reference inside a longer string is replaced by the value's text.
//! `$${` is a literal `${`, and a `$` before anything else is kept as is.
//!
//! This module only splits a string into text and references. It never
//! looks parameters up: the step resolution in `resolve` does.

/// A part of a string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Literal text, with `$${` already turned into `${`.
    Text(String),
    /// A `${name}` reference.
    Reference {
        /// The parameter name between the braces.
        name: &'a str,
        /// The offset of the `$` in characters from the start of the string.
        offset: usize,
        /// The length of `${name}` in characters.
        len: usize,
    },
}

/// A malformed reference, located within its string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub(crate) message: String,
    /// The offset of the problem in characters from the start of the string.
    pub(crate) offset: usize,
    /// The length of the problem in characters.
    pub(crate) len: usize,
}

/// Returns true when a string has a `${` that is not escaped, so that it
/// needs resolving.
pub(crate) fn has_reference(text: &str) -> bool {
    text.contains("${")
}

/// Splits `text` into literal text and references.
pub(crate) fn parse(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    // Characters consumed so far, for error offsets.
    let mut consumed = 0;

    while let Some(dollar) = rest.find('$') {
        literal.push_str(&rest[..dollar]);
        consumed += rest[..dollar].chars().count();
        let at_dollar = &rest[dollar..];

        if let Some(after_escape) = at_dollar.strip_prefix("$${") {
            literal.push_str("${");
            consumed += 3;
            rest = after_escape;
            continue;
        }
        let Some(after_open) = at_dollar.strip_prefix("${") else {
            literal.push('$');
            consumed += 1;
            rest = &at_dollar[1..];
            continue;
        };

        let Some(close) = after_open.find('}') else {
            return Err(TemplateError {
                message: format!("`{text}` has a `${{` without a closing `}}`"),
                offset: consumed,
                len: at_dollar.chars().count(),
            });
        };
        let name = &after_open[..close];
        let len = name.chars().count() + 3;
        if !is_valid_name(name) {
            return Err(TemplateError {
                message: format!(
                    "`${{{name}}}` is not a valid reference; a parameter name uses only letters, digits, `_` and `-`"
                ),
                offset: consumed,
                len,
            });
        }

        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Reference {
            name,
            offset: consumed,
            len,
        });
        consumed += len;
        rest = &after_open[close + 1..];
    }

    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// Returns whether `name` is a valid parameter name or step id: letters,
/// digits, `_` and `-`, not empty. A `.` is excluded because it separates a
/// step id from a parameter or output name.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece<'_> {
        Piece::Text(s.to_string())
    }

    #[test]
    fn whole_value_reference() {
        assert_eq!(
            parse("${data_dir}").unwrap(),
            vec![Piece::Reference {
                name: "data_dir",
                offset: 0,
                len: 11
            }]
        );
    }

    #[test]
    fn reference_inside_text() {
        assert_eq!(
            parse("run-${feature_set}!").unwrap(),
            vec![
                text("run-"),
                Piece::Reference {
                    name: "feature_set",
                    offset: 4,
                    len: 14
                },
                text("!"),
            ]
        );
    }

    #[test]
    fn escaped_reference_is_text() {
        assert_eq!(parse("cost $${x} $5").unwrap(), vec![text("cost ${x} $5")]);
    }

    #[test]
    fn offsets_count_characters() {
        let pieces = parse("é-${a}").unwrap();
        assert_eq!(
            pieces[1],
            Piece::Reference {
                name: "a",
                offset: 2,
                len: 4
            }
        );
    }

    #[test]
    fn unterminated_reference_fails() {
        let error = parse("a-${b").unwrap_err();
        assert_eq!((error.offset, error.len), (2, 3));
        assert!(error.message.contains("without a closing"));
    }

    #[test]
    fn empty_reference_fails() {
        assert!(parse("${}").is_err());
        assert!(parse("${a b}").is_err());
    }
}
