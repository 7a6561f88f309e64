//! Reading a pipeline file together with the files it extends, and merging
//! them into one list of parameters and steps.
//!
//! `extends: base.yaml` names a parent file, relative to the file that names
//! it. The child inherits the parent's parameters and steps. An entry with
//! the same name in the child replaces the parent's whole entry in its
//! place, and new entries follow the parent's. Chains of any length work; a
//! chain that comes back to a file it already read is an error that shows
//! the chain. The name always comes from the file being loaded, and the
//! description from the nearest file that has one.
//!
//! This module never checks what the entries mean: `params` and `steps` do.

use super::error::{Diagnostics, FileId, Pos, Sources, SpecError};
use super::raw::{self, RawParam, RawPipeline, RawStep};
use serde_saphyr::Spanned;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One file of the chain after parsing.
pub(crate) struct Layer {
    pub(crate) file: FileId,
    pub(crate) raw: RawPipeline,
}

/// A named entry (a parameter or a step) with the file it came from.
pub(crate) struct Entry<V> {
    pub(crate) file: FileId,
    pub(crate) key: Spanned<String>,
    pub(crate) value: V,
}

impl<V> Entry<V> {
    pub(crate) fn key_pos(&self) -> Pos {
        Pos::from_saphyr(self.file, &self.key.referenced)
    }

    pub(crate) fn pos_of<T>(&self, spanned: &Spanned<T>) -> Pos {
        Pos::from_saphyr(self.file, &spanned.referenced)
    }
}

/// The pipeline file and its ancestors merged into one.
pub(crate) struct Merged {
    /// The file being loaded.
    pub(crate) root: FileId,
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) description: Option<String>,
    pub(crate) params: Vec<Entry<Spanned<RawParam>>>,
    pub(crate) steps: Vec<Entry<Spanned<Option<RawStep>>>>,
    /// The top-level keys that an unknown top-level key is a likely
    /// misspelling of. Errors saying such a key is missing are not reported,
    /// since the unknown key is.
    pub(crate) misspelled: BTreeSet<&'static str>,
}

/// The files of an `extends` chain that were read and parsed, child first,
/// and the error that stopped reading, if any.
pub(crate) struct Chain {
    pub(crate) layers: Vec<Layer>,
    pub(crate) failure: Option<SpecError>,
}

/// Reads `path` and every file it extends, child first. Stops at the first
/// file that cannot be read or parsed, since nothing can be merged past it,
/// but keeps the files parsed before it, so that their unknown keys can
/// still be reported.
pub(crate) fn read_chain(path: &Path, sources: &mut Sources) -> Chain {
    let mut layers = Vec::new();
    let failure = read_layers(path, sources, &mut layers).err();
    Chain { layers, failure }
}

#[expect(
    clippy::result_large_err,
    reason = "a SpecError is built only on the failure path of a load, so its size costs nothing that matters"
)]
fn read_layers(
    path: &Path,
    sources: &mut Sources,
    layers: &mut Vec<Layer>,
) -> Result<(), SpecError> {
    let mut canonical_chain: Vec<PathBuf> = Vec::new();
    let mut next = path.to_path_buf();
    // Where the current file was named, for errors about reading it.
    let mut named_at: Option<Pos> = None;

    loop {
        let text = std::fs::read_to_string(&next).map_err(|error| {
            let message = match named_at {
                None => format!("cannot read pipeline file `{}`: {error}", next.display()),
                Some(_) => format!("cannot read extended file `{}`: {error}", next.display()),
            };
            let help = match named_at {
                None => "check the path; a relative path starts at the current directory",
                Some(_) => "an `extends` path is relative to the folder of the file that names it",
            };
            located(sources, named_at, message).with_help(help)
        })?;

        let canonical = next.canonicalize().unwrap_or_else(|_| next.clone());
        if let Some(start) = canonical_chain.iter().position(|p| *p == canonical) {
            let mut names: Vec<String> = layers[start..]
                .iter()
                .map(|l| sources.path(l.file).display().to_string())
                .collect();
            names.push(next.display().to_string());
            return Err(located(
                sources,
                named_at,
                format!("`extends` forms a cycle: {}", names.join(" -> ")),
            )
            .with_help("remove the `extends` line from one of these files"));
        }

        let file = sources.add(next.clone(), text);
        let raw = {
            let diagnostics = Diagnostics::new(sources);
            raw::parse_file(file, &diagnostics)?
        };
        let Some(raw) = raw else {
            return Err(located(
                sources,
                named_at,
                format!("pipeline file `{}` is empty", next.display()),
            )
            .with_help("a pipeline needs at least `name:` and `steps:`"));
        };

        let parent = raw.extends.as_ref().map(|extends| {
            let base = next.parent().unwrap_or(Path::new(""));
            (
                base.join(&extends.value),
                Pos::from_saphyr(file, &extends.referenced),
            )
        });
        canonical_chain.push(canonical);
        layers.push(Layer { file, raw });

        match parent {
            Some((parent_path, pos)) => {
                next = parent_path;
                named_at = Some(pos);
            }
            None => return Ok(()),
        }
    }
}

fn located(sources: &Sources, pos: Option<Pos>, message: String) -> SpecError {
    match pos {
        Some(pos) => Diagnostics::new(sources).at(pos, message),
        None => SpecError::new(message),
    }
}

/// Merges a chain read by [`read_chain`] (child first) into one pipeline.
pub(crate) fn merge(layers: Vec<Layer>) -> Merged {
    let root = layers.first().map_or(0, |l| l.file);
    let mut merged = Merged {
        root,
        name: None,
        description: None,
        params: Vec::new(),
        steps: Vec::new(),
        misspelled: BTreeSet::new(),
    };

    // Apply the oldest ancestor first, so each child overrides its parent.
    for layer in layers.into_iter().rev() {
        let file = layer.file;
        let raw = layer.raw;
        for key in raw.unknown.likely_meant() {
            // The name comes from the loaded file alone, so a parent's
            // misspelled `name` does not explain a missing one.
            if key != "name" || file == root {
                merged.misspelled.insert(key);
            }
        }
        merged.name = raw.name;
        if let Some(description) = raw.description {
            merged.description = Some(description.value);
        }
        for (key, value) in raw.parameters.map(|m| m.0).unwrap_or_default() {
            upsert(&mut merged.params, Entry { file, key, value });
        }
        for (key, value) in raw.steps.map(|m| m.0).unwrap_or_default() {
            upsert(&mut merged.steps, Entry { file, key, value });
        }
    }
    merged
}

/// Replaces the entry with the same key in place, or appends a new one.
fn upsert<V>(entries: &mut Vec<Entry<V>>, entry: Entry<V>) {
    match entries.iter_mut().find(|e| e.key.value == entry.key.value) {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
}
