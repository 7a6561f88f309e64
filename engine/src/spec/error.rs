//! Spec errors: what went wrong in a pipeline file, where, and how to fix it.
//!
//! This module owns the error types that [`load`](super::load) returns and
//! their rendering, which follows rustc's diagnostics. An error shows a
//! message, a `--> file:line:column` pointer and the source line with the
//! offending text underlined. Optional notes point at a second place (the
//! first definition of a duplicate key), and an optional `help` line follows.
//!
//! It also owns [`Sources`], the text of every file read during one load,
//! which is where the underlined source lines come from. Errors copy the line
//! they show, so a [`SpecError`] stays printable after the load returns. This
//! module never decides what is an error: the parsing and validation modules
//! do, and build errors through [`Diagnostics`].

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a pipeline file, 1-based, with columns counted in
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as the user named it, or as joined from an `extends` path.
    pub file: PathBuf,
    /// The line, starting at 1.
    pub line: usize,
    /// The column in characters, starting at 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The source line shown under an error, with the part to underline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The whole source line, without its line break.
    pub line_text: String,
    /// The number of characters to underline, starting at the location's
    /// column; at least 1.
    pub width: usize,
}

/// A secondary place that an error refers to, such as the first of two
/// duplicate keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// What the place is ("`train` is first defined here").
    pub message: String,
    /// Where it is.
    pub location: Location,
    /// The source line at that place.
    pub snippet: Option<Snippet>,
}

/// One problem found in a pipeline file or in a `--set` override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// What is wrong, naming the step, parameter or key involved.
    pub message: String,
    /// Where it is; `None` for problems outside any file, such as a `--set`
    /// override or a pipeline file that cannot be read.
    pub location: Option<Location>,
    /// A suggestion: the closest valid name, or the list of valid values.
    pub help: Option<String>,
    /// The source line at `location`, when the file could be read.
    pub snippet: Option<Snippet>,
    /// Other places the message refers to.
    pub notes: Vec<Note>,
    /// The pipeline file whose load found this error. It can differ from
    /// `location.file` when the error is inside a file that the pipeline
    /// extends.
    pub pipeline_file: Option<PathBuf>,
}

impl SpecError {
    /// Creates an error with a message and nothing else.
    pub fn new(message: impl Into<String>) -> Self {
        SpecError {
            message: message.into(),
            location: None,
            help: None,
            snippet: None,
            notes: Vec::new(),
            pipeline_file: None,
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line when `help` is `Some`.
    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gutter = gutter_width(self);
        writeln!(f, "error: {}", self.message)?;
        if let Some(location) = &self.location {
            write_pointer(f, gutter, location, self.snippet.as_ref())?;
        }
        for note in &self.notes {
            writeln!(f, "note: {}", note.message)?;
            write_pointer(f, gutter, &note.location, note.snippet.as_ref())?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "{:gutter$} = help: {help}", "")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Computes the width of the line-number column from the widest line
/// number shown.
fn gutter_width(error: &SpecError) -> usize {
    let lines = error
        .location
        .iter()
        .chain(error.notes.iter().map(|n| &n.location))
        .map(|l| l.line);
    lines.max().map_or(1, |line| line.to_string().len())
}

/// Writes `  --> file:line:column` and, when known, the source line with
/// carets under the located text.
fn write_pointer(
    f: &mut fmt::Formatter<'_>,
    gutter: usize,
    location: &Location,
    snippet: Option<&Snippet>,
) -> fmt::Result {
    writeln!(f, "{:gutter$}--> {location}", "")?;
    let Some(snippet) = snippet else {
        return Ok(());
    };

    // Keep tabs in the padding so the carets line up under tabbed text.
    let padding: String = snippet
        .line_text
        .chars()
        .take(location.column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    writeln!(f, "{:gutter$} |", "")?;
    writeln!(f, "{:>gutter$} | {}", location.line, snippet.line_text)?;
    writeln!(
        f,
        "{:gutter$} | {padding}{}",
        "",
        "^".repeat(snippet.width.max(1))
    )
}

/// Every error found while loading one pipeline.
///
/// Displayed as each error in turn, then a summary line such as
/// `2 errors found in pipelines/training.yaml; nothing was run.`
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_all(&self.0))]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    /// Returns the number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns true when there are no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, SpecError> {
        self.0.iter()
    }
}

fn render_all(errors: &[SpecError]) -> String {
    let mut text = String::new();
    for error in errors {
        text.push_str(&error.to_string());
        text.push('\n');
    }

    let file = errors
        .iter()
        .find_map(|e| e.pipeline_file.clone())
        .or_else(|| {
            errors
                .iter()
                .find_map(|e| Some(e.location.as_ref()?.file.clone()))
        });
    let count = match errors.len() {
        1 => "1 error".to_string(),
        n => format!("{n} errors"),
    };
    match file {
        Some(file) => text.push_str(&format!(
            "{count} found in {}; nothing was run.",
            file.display()
        )),
        None => text.push_str(&format!("{count} found; nothing was run.")),
    }
    text
}

/// An index into [`Sources`].
pub(crate) type FileId = usize;

/// A located piece of source text: where it starts and how many characters
/// it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) file: FileId,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) len: usize,
}

impl Pos {
    /// Converts a serde-saphyr location into a position in `file`.
    pub(crate) fn from_saphyr(file: FileId, location: &serde_saphyr::Location) -> Pos {
        Pos {
            file,
            line: usize::try_from(location.line()).unwrap_or(usize::MAX),
            column: usize::try_from(location.column()).unwrap_or(usize::MAX),
            len: usize::try_from(location.span().len()).unwrap_or(1),
        }
    }

    /// Moves the position `offset` characters to the right on its line and
    /// sets its length.
    pub(crate) fn shifted(self, offset: usize, len: usize) -> Pos {
        Pos {
            column: self.column + offset,
            len,
            ..self
        }
    }
}

/// A file read during a load.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

/// The files read during one load, so that errors can show source lines.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// Keeps a file's text and returns its id.
    pub(crate) fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { path, text });
        self.files.len() - 1
    }

    /// Lists the files in the order they were read.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// Finds a file by the path it was read from.
    pub(crate) fn find(&self, path: &Path) -> Option<FileId> {
        self.files.iter().position(|f| f.path == path)
    }

    /// Adds the source line to an error built without access to the
    /// sources, underlining the word at its location.
    pub(crate) fn add_snippet(&self, error: &mut SpecError) {
        let Some(location) = &error.location else {
            return;
        };
        let Some(file) = self.find(&location.file) else {
            return;
        };
        let mut pos = Pos {
            file,
            line: location.line,
            column: location.column,
            len: 1,
        };
        if let Some(line) = self.line_text(pos) {
            pos.len = line
                .chars()
                .skip(location.column.saturating_sub(1))
                .take_while(|c| !c.is_whitespace() && *c != ':')
                .count();
        }
        error.snippet = self.snippet(pos);
    }

    pub(crate) fn path(&self, file: FileId) -> &Path {
        &self.files[file].path
    }

    pub(crate) fn text(&self, file: FileId) -> &str {
        &self.files[file].text
    }

    /// Returns the source line at `pos`, without its line break.
    pub(crate) fn line_text(&self, pos: Pos) -> Option<&str> {
        self.files
            .get(pos.file)?
            .text
            .lines()
            .nth(pos.line.checked_sub(1)?)
    }

    /// Returns the characters that `pos` covers on its line.
    pub(crate) fn covered_text(&self, pos: Pos) -> Option<String> {
        let line = self.line_text(pos)?;
        Some(
            line.chars()
                .skip(pos.column.saturating_sub(1))
                .take(pos.len)
                .collect(),
        )
    }

    pub(crate) fn location(&self, pos: Pos) -> Location {
        Location {
            file: self.files[pos.file].path.clone(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// Returns the line at `pos` with an underline clamped to the end of the
    /// line, since a span may run onto later lines.
    pub(crate) fn snippet(&self, pos: Pos) -> Option<Snippet> {
        let line_text = self.line_text(pos)?.to_string();
        let remaining = line_text
            .chars()
            .count()
            .saturating_sub(pos.column.saturating_sub(1));
        Some(Snippet {
            width: pos.len.min(remaining).max(1),
            line_text,
        })
    }
}

/// The errors collected during one load.
pub(crate) struct Diagnostics<'a> {
    sources: &'a Sources,
    pub(crate) errors: Vec<SpecError>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(sources: &'a Sources) -> Self {
        Diagnostics {
            sources,
            errors: Vec::new(),
        }
    }

    /// Builds an error at `pos`, with the source line under it.
    pub(crate) fn at(&self, pos: Pos, message: impl Into<String>) -> SpecError {
        SpecError {
            location: Some(self.sources.location(pos)),
            snippet: self.sources.snippet(pos),
            ..SpecError::new(message)
        }
    }

    /// Builds a note at `pos`.
    pub(crate) fn note(&self, pos: Pos, message: impl Into<String>) -> Note {
        Note {
            message: message.into(),
            location: self.sources.location(pos),
            snippet: self.sources.snippet(pos),
        }
    }

    pub(crate) fn push(&mut self, error: SpecError) {
        self.errors.push(error);
    }

    /// Records an error at `pos` with an optional help line.
    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>, help: Option<String>) {
        let error = self.at(pos, message).with_optional_help(help);
        self.errors.push(error);
    }

    pub(crate) fn sources(&self) -> &'a Sources {
        self.sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located_error() -> SpecError {
        SpecError {
            location: Some(Location {
                file: PathBuf::from("pipelines/training.yaml"),
                line: 14,
                column: 14,
            }),
            snippet: Some(Snippet {
                line_text: "      model: trian.model".to_string(),
                width: 11,
            }),
            ..SpecError::new("step `evaluate` reads `trian.model`, but no step `trian` exists")
                .with_help("did you mean `train`?")
        }
    }

    #[test]
    fn error_renders_like_rustc() {
        let expected = "\
error: step `evaluate` reads `trian.model`, but no step `trian` exists
  --> pipelines/training.yaml:14:14
   |
14 |       model: trian.model
   |              ^^^^^^^^^^^
   = help: did you mean `train`?
";
        assert_eq!(located_error().to_string(), expected);
    }

    #[test]
    fn errors_end_with_summary() {
        let mut second = SpecError::new("unknown parameter `lr` in `--set lr=1`");
        second.pipeline_file = Some(PathBuf::from("p.yaml"));
        let text = SpecErrors(vec![located_error(), second]).to_string();
        assert!(
            text.ends_with("2 errors found in p.yaml; nothing was run."),
            "{text}"
        );
        assert!(text.contains("error: unknown parameter `lr`"), "{text}");
    }

    #[test]
    fn single_error_summary_is_singular() {
        let text = SpecErrors(vec![located_error()]).to_string();
        assert!(
            text.ends_with("1 error found in pipelines/training.yaml; nothing was run."),
            "{text}"
        );
    }

    #[test]
    fn note_renders_second_place() {
        let mut error = located_error();
        error.help = None;
        error.notes.push(Note {
            message: "first defined here".to_string(),
            location: Location {
                file: PathBuf::from("p.yaml"),
                line: 2,
                column: 3,
            },
            snippet: Some(Snippet {
                line_text: "  train:".to_string(),
                width: 5,
            }),
        });
        let text = error.to_string();
        assert!(
            text.contains(
                "note: first defined here\n  --> p.yaml:2:3\n   |\n 2 |   train:\n   |   ^^^^^\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn snippet_clamps_to_line_end() {
        let mut sources = Sources::default();
        let file = sources.add(PathBuf::from("a.yaml"), "name: x\nsteps:\n".to_string());
        let pos = Pos {
            file,
            line: 1,
            column: 7,
            len: 40,
        };
        assert_eq!(sources.snippet(pos).unwrap().width, 1);
        assert_eq!(sources.covered_text(pos).unwrap(), "x");
    }
}
