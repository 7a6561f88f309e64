//! The module tree of a crate: which file contains which module.
//!
//! It starts at the crate root file and follows every `mod name;`
//! declaration to `name.rs` or `name/mod.rs` (or the file a `#[path]`
//! attribute names), the way rustc does. Inline `mod name { .. }` blocks
//! become modules that live in their parent's file. Modules marked
//! `#[cfg(test)]` are left out, since they never run in a pipeline. This
//! module only finds and parses files; it never decides what a module
//! references.

use crate::BuildError;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use syn::ext::IdentExt;
use syn::{Attribute, Expr, ExprLit, Item, Lit, Meta};

/// The index of a module in [`ModuleTree::modules`].
pub(crate) type ModuleId = usize;

/// The index of a file in [`ModuleTree::files`].
pub(crate) type FileId = usize;

/// The root module's id.
pub(crate) const ROOT: ModuleId = 0;

/// A parsed source file.
pub(crate) struct SourceFile {
    /// The path relative to the crate folder, with `/` separators. This is
    /// what enters the fingerprint, never the absolute path.
    pub(crate) relative_path: String,
    /// The absolute path, for `cargo:rerun-if-changed`.
    pub(crate) path: PathBuf,
    /// The exact bytes.
    pub(crate) bytes: Vec<u8>,
    /// The syntax tree.
    pub(crate) syntax: syn::File,
    /// The module whose file this is.
    pub(crate) module: ModuleId,
}

/// A module of the crate.
pub(crate) struct Module {
    /// The module's name; empty for the crate root.
    pub(crate) name: String,
    /// The enclosing module; `None` for the crate root.
    pub(crate) parent: Option<ModuleId>,
    /// Child modules by name.
    pub(crate) children: BTreeMap<String, ModuleId>,
    /// The file that contains the module's items.
    pub(crate) file: FileId,
    /// Whether the module is an inline `mod name { .. }` block.
    pub(crate) inline: bool,
}

/// Every module and file of a crate.
pub(crate) struct ModuleTree {
    /// Modules; [`ROOT`] is the crate root.
    pub(crate) modules: Vec<Module>,
    /// Files, in the order they were found.
    pub(crate) files: Vec<SourceFile>,
}

/// The folders used to find the file of a declared module.
struct Location<'a> {
    /// The folder of the declaring file.
    file_dir: &'a Path,
    /// The folder where `mod name;` looks for `name.rs` and `name/mod.rs`.
    child_dir: &'a Path,
    /// Whether the declaration sits inside an inline module block.
    in_inline: bool,
}

impl ModuleTree {
    /// Loads every module reachable from `root_file`. Relative paths are
    /// taken against `crate_dir`.
    pub(crate) fn load(crate_dir: &Path, root_file: &Path) -> Result<ModuleTree, BuildError> {
        let mut tree = ModuleTree {
            modules: vec![Module {
                name: String::new(),
                parent: None,
                children: BTreeMap::new(),
                file: 0,
                inline: false,
            }],
            files: Vec::new(),
        };
        let root_dir = root_file.parent().unwrap_or(crate_dir).to_path_buf();
        tree.load_file(crate_dir, root_file, ROOT, &root_dir, &mut Vec::new())?;
        Ok(tree)
    }

    /// Returns the module's path below the crate root, such as
    /// `["models", "gbm"]`.
    pub(crate) fn segments(&self, mut id: ModuleId) -> Vec<&str> {
        let mut segments = Vec::new();
        while let Some(parent) = self.modules[id].parent {
            segments.push(self.modules[id].name.as_str());
            id = parent;
        }
        segments.reverse();
        segments
    }

    /// Returns the module and every module inside it, inline or not.
    pub(crate) fn subtree(&self, id: ModuleId) -> Vec<ModuleId> {
        let mut found = vec![id];
        let mut next = 0;
        while next < found.len() {
            found.extend(self.modules[found[next]].children.values().copied());
            next += 1;
        }
        found
    }

    /// Reads and parses one file, then loads the modules it declares.
    /// `loading` lists the files being loaded, to reject a `#[path]` cycle.
    fn load_file(
        &mut self,
        crate_dir: &Path,
        path: &Path,
        module: ModuleId,
        child_dir: &Path,
        loading: &mut Vec<PathBuf>,
    ) -> Result<(), BuildError> {
        let path = normalize(path);
        if loading.contains(&path) {
            return Err(BuildError::ModuleCycle { path });
        }
        let bytes = std::fs::read(&path).map_err(|source| BuildError::Io {
            action: "failed to read",
            path: path.clone(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|error| BuildError::Parse {
            path: path.clone(),
            message: format!("the file is not UTF-8: {error}"),
        })?;
        let syntax = syn::parse_file(text).map_err(|error| {
            let start = error.span().start();
            BuildError::Parse {
                path: path.clone(),
                message: format!("line {}, column {}: {error}", start.line, start.column + 1),
            }
        })?;

        let id = self.files.len();
        self.modules[module].file = id;
        self.files.push(SourceFile {
            relative_path: relative_path(&path, crate_dir),
            path: path.clone(),
            bytes,
            syntax: syn::File {
                shebang: None,
                attrs: Vec::new(),
                items: Vec::new(),
            },
            module,
        });

        loading.push(path.clone());
        let file_dir = path.parent().unwrap_or(crate_dir).to_path_buf();
        let location = Location {
            file_dir: &file_dir,
            child_dir,
            in_inline: false,
        };
        self.declare(crate_dir, &syntax.items, module, id, &location, loading)?;
        loading.pop();

        self.files[id].syntax = syntax;
        Ok(())
    }

    /// Adds the modules declared among `items` as children of `parent`.
    fn declare(
        &mut self,
        crate_dir: &Path,
        items: &[Item],
        parent: ModuleId,
        file: FileId,
        location: &Location<'_>,
        loading: &mut Vec<PathBuf>,
    ) -> Result<(), BuildError> {
        for item in items {
            let Item::Mod(declaration) = item else {
                continue;
            };
            if is_cfg_test(&declaration.attrs) {
                continue;
            }
            let name = declaration.ident.unraw().to_string();

            if let Some((_, content)) = &declaration.content {
                let id = self.add_module(&name, parent, file, true);
                let inner_dir = location.child_dir.join(&name);
                let inner = Location {
                    file_dir: location.file_dir,
                    child_dir: &inner_dir,
                    in_inline: true,
                };
                self.declare(crate_dir, content, id, file, &inner, loading)?;
                continue;
            }

            let Some((path, owns_dir)) = self.find_module_file(&name, declaration, location)?
            else {
                // A module behind a `cfg` whose file is absent (for another
                // platform, say) is not part of this build.
                continue;
            };
            let id = self.add_module(&name, parent, file, false);
            let child_dir = if owns_dir {
                path.parent().unwrap_or(crate_dir).to_path_buf()
            } else {
                let stem = path.file_stem().unwrap_or_default();
                path.parent().unwrap_or(crate_dir).join(stem)
            };
            self.load_file(crate_dir, &path, id, &child_dir, loading)?;
        }
        Ok(())
    }

    /// Finds the file of `mod name;`. Returns the path and whether its
    /// children live beside it (`mod.rs` files and `#[path]` files) rather
    /// than in a folder named after it. Returns `None` for a missing file of
    /// a module behind a `cfg` attribute.
    fn find_module_file(
        &self,
        name: &str,
        declaration: &syn::ItemMod,
        location: &Location<'_>,
    ) -> Result<Option<(PathBuf, bool)>, BuildError> {
        if let Some(path_attr) = path_attribute(&declaration.attrs) {
            let base = if location.in_inline {
                location.child_dir
            } else {
                location.file_dir
            };
            let path = base.join(path_attr);
            if path.is_file() {
                return Ok(Some((path, true)));
            }
            return self.missing(name, declaration, vec![path]);
        }

        let flat = location.child_dir.join(format!("{name}.rs"));
        let nested = location.child_dir.join(name).join("mod.rs");
        match (flat.is_file(), nested.is_file()) {
            (true, false) => Ok(Some((flat, false))),
            (false, true) => Ok(Some((nested, true))),
            (true, true) => Err(BuildError::AmbiguousModule {
                module: name.to_string(),
                first: flat,
                second: nested,
            }),
            (false, false) => self.missing(name, declaration, vec![flat, nested]),
        }
    }

    /// Skips a missing module file behind a `cfg`, and rejects any other.
    fn missing(
        &self,
        name: &str,
        declaration: &syn::ItemMod,
        candidates: Vec<PathBuf>,
    ) -> Result<Option<(PathBuf, bool)>, BuildError> {
        if declaration
            .attrs
            .iter()
            .any(|attr| attr.path().is_ident("cfg"))
        {
            return Ok(None);
        }
        Err(BuildError::ModuleNotFound {
            module: name.to_string(),
            candidates,
        })
    }

    /// Adds a module and links it to its parent.
    fn add_module(&mut self, name: &str, parent: ModuleId, file: FileId, inline: bool) -> ModuleId {
        let id = self.modules.len();
        self.modules.push(Module {
            name: name.to_string(),
            parent: Some(parent),
            children: BTreeMap::new(),
            file,
            inline,
        });
        self.modules[parent].children.insert(name.to_string(), id);
        id
    }
}

/// Returns whether the attributes contain exactly `#[cfg(test)]`.
pub(crate) fn is_cfg_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

/// Returns the value of a `#[path = "..."]` attribute.
fn path_attribute(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        Meta::NameValue(pair) if pair.path.is_ident("path") => match &pair.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => Some(text.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Removes `.` and `..` components without touching the file system, so that
/// a path reached through `#[path = "../x.rs"]` has one spelling.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Spells `path` relative to `base` with `/` separators, using `..` for a
/// file outside `base`.
fn relative_path(path: &Path, base: &Path) -> String {
    let path = normalize(path);
    let base = normalize(base);
    let path_parts: Vec<_> = path.components().collect();
    let base_parts: Vec<_> = base.components().collect();
    let common = path_parts
        .iter()
        .zip(&base_parts)
        .take_while(|(a, b)| a == b)
        .count();

    let mut parts: Vec<String> = vec!["..".to_string(); base_parts.len() - common];
    parts.extend(
        path_parts[common..]
            .iter()
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_uses_slashes_and_dotdot() {
        let base = Path::new("/work/crate");
        assert_eq!(
            relative_path(Path::new("/work/crate/src/lib.rs"), base),
            "src/lib.rs"
        );
        assert_eq!(
            relative_path(Path::new("/work/crate/src/../shared/x.rs"), base),
            "shared/x.rs"
        );
        assert_eq!(
            relative_path(Path::new("/work/other/x.rs"), base),
            "../other/x.rs"
        );
    }

    #[test]
    fn cfg_test_is_recognised() {
        let item: syn::ItemMod = syn::parse_quote! { #[cfg(test)] mod tests; };
        assert!(is_cfg_test(&item.attrs));
        let item: syn::ItemMod = syn::parse_quote! { #[cfg(unix)] mod unix; };
        assert!(!is_cfg_test(&item.attrs));
    }
}
