//! The references between the items of a crate, and the files they reach.
//!
//! Each top-level item of a module is a unit: a function, a type with its
//! `impl` blocks, a constant, one leaf of a `use` tree. A unit references
//! another when a path in it resolves to that unit. A path is resolved when
//! its first segment is one of these:
//!
//! - `crate`, `super` or `self`;
//! - a child module of the scope the path appears in, as `gbm::Model` in a
//!   `models/mod.rs` that declares `mod gbm;`;
//! - a name that a `use` in that scope binds, including names brought in
//!   by a glob such as `use super::*`;
//! - an item of the same scope, as `scale()` inside another function of
//!   that file.
//!
//! `use` trees are flattened first, so `use crate::{a, b::c}` counts both
//! `a` and `b::c`. Paths inside macro invocations are found by scanning
//! their tokens, because the tokens are not parsed as Rust until the macro
//! expands. Other paths (to external crates, the standard library, local
//! variables) are ignored.
//!
//! A path resolves to the item after its module segments: in
//! `crate::helpers::THRESHOLD` that is `THRESHOLD` in `helpers`. When the
//! module has no item of that name (it may come from a macro), every item
//! of the module counts. Items with no name, such as macro calls at item
//! level, count whenever any item of their module does. Following items
//! rather than whole files means that a step calling `crate::trace` reaches
//! the root file and what `trace` uses, not every module the root file
//! registers. This module never expands macros or follows `include!`.

use crate::modtree::{FileId, ModuleId, ModuleTree, ROOT, is_cfg_test};
use proc_macro2::{TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use syn::ext::IdentExt;
use syn::visit::Visit;

/// The index of a unit in [`UnitGraph::units`].
type UnitId = usize;

/// A path found in a unit, before resolution.
enum RawReference {
    /// A path in code (an expression, a type, a macro, an attribute). Its
    /// last segment names an item, never a module.
    Path(Vec<String>),
    /// A leaf of a `use` tree, which may name a module.
    Use {
        /// The imported path.
        segments: Vec<String>,
        /// The name it is bound to, or `None` for a glob.
        binding: Option<String>,
    },
}

/// A top-level item, or a leaf of a `use` tree.
struct Unit {
    /// The module the item is declared in.
    scope: ModuleId,
    /// The names other code reaches it by; empty for items with no name.
    names: Vec<String>,
    /// The paths it contains.
    references: Vec<RawReference>,
}

/// The module names a scope has imported.
#[derive(Default)]
struct ScopeNames {
    /// Names bound to modules by `use`.
    aliases: BTreeMap<String, ModuleId>,
    /// Modules whose names a glob `use` brought in.
    globs: BTreeSet<ModuleId>,
}

/// Every unit of a crate and the units each one references.
pub(crate) struct UnitGraph {
    units: Vec<Unit>,
    /// Units by scope.
    by_scope: BTreeMap<ModuleId, Vec<UnitId>>,
    /// Referenced units by unit.
    edges: Vec<BTreeSet<UnitId>>,
}

impl UnitGraph {
    /// Collects and resolves the units of every file in `tree`.
    pub(crate) fn build(tree: &ModuleTree) -> UnitGraph {
        let mut units = Vec::new();
        for file in &tree.files {
            collect_units(tree, file.module, &file.syntax.items, &mut units);
        }
        let mut by_scope: BTreeMap<ModuleId, Vec<UnitId>> = BTreeMap::new();
        for (id, unit) in units.iter().enumerate() {
            by_scope.entry(unit.scope).or_default().push(id);
        }

        let mut graph = UnitGraph {
            units,
            by_scope,
            edges: Vec::new(),
        };
        let names = graph.scope_names(tree);
        let resolver = Resolver {
            tree,
            graph: &graph,
            names: &names,
        };
        let edges = (0..graph.units.len())
            .map(|id| resolver.targets(id))
            .collect();
        graph.edges = edges;
        graph
    }

    /// Returns the files of `modules` and of every unit their units reach.
    pub(crate) fn reachable_files(
        &self,
        tree: &ModuleTree,
        modules: &[ModuleId],
    ) -> BTreeSet<FileId> {
        let mut files: BTreeSet<FileId> = modules.iter().map(|m| tree.modules[*m].file).collect();
        let mut pending: Vec<UnitId> = modules.iter().flat_map(|m| self.units_of(*m)).collect();
        let mut seen_units = BTreeSet::new();
        let mut seen_scopes = BTreeSet::new();

        while let Some(unit) = pending.pop() {
            if !seen_units.insert(unit) {
                continue;
            }
            let scope = self.units[unit].scope;
            if seen_scopes.insert(scope) {
                files.insert(tree.modules[scope].file);
                // Unnamed items (item-level macro calls, say) come along
                // with any item of their module.
                pending.extend(
                    self.units_of(scope)
                        .filter(|id| self.units[*id].names.is_empty()),
                );
            }
            pending.extend(self.edges[unit].iter().copied());
        }
        files
    }

    /// Returns the units declared in `scope`.
    fn units_of(&self, scope: ModuleId) -> impl Iterator<Item = UnitId> + '_ {
        self.by_scope.get(&scope).into_iter().flatten().copied()
    }

    /// Returns the units of `scope` that bear `name`.
    fn named(&self, scope: ModuleId, name: &str) -> Vec<UnitId> {
        self.units_of(scope)
            .filter(|id| self.units[*id].names.iter().any(|n| n == name))
            .collect()
    }

    /// Finds the modules each scope imports by `use`. Two passes, so that an
    /// import may go through a module imported by another one.
    fn scope_names(&self, tree: &ModuleTree) -> BTreeMap<ModuleId, ScopeNames> {
        let mut names: BTreeMap<ModuleId, ScopeNames> = BTreeMap::new();
        for _ in 0..2 {
            for unit in &self.units {
                for reference in &unit.references {
                    let RawReference::Use { segments, binding } = reference else {
                        continue;
                    };
                    let resolver = Resolver {
                        tree,
                        graph: self,
                        names: &names,
                    };
                    let Some((module, None)) = resolver.resolve(unit.scope, segments, true) else {
                        continue;
                    };
                    let scope = names.entry(unit.scope).or_default();
                    match binding {
                        Some(name) => {
                            scope.aliases.insert(name.clone(), module);
                        }
                        None => {
                            scope.globs.insert(module);
                        }
                    }
                }
            }
        }
        names
    }
}

/// Resolves paths against the module tree, the units and the imports.
struct Resolver<'a> {
    tree: &'a ModuleTree,
    graph: &'a UnitGraph,
    names: &'a BTreeMap<ModuleId, ScopeNames>,
}

impl Resolver<'_> {
    /// Returns the units that unit `id` references.
    fn targets(&self, id: UnitId) -> BTreeSet<UnitId> {
        let unit = &self.graph.units[id];
        let mut targets = BTreeSet::new();
        for reference in &unit.references {
            let resolved = match reference {
                RawReference::Use { segments, .. } => self.resolve(unit.scope, segments, true),
                RawReference::Path(segments) => self.resolve(unit.scope, segments, false),
            };
            let Some((module, Some(item))) = resolved else {
                continue;
            };
            let named = self.graph.named(module, &item);
            if named.is_empty() {
                // An item this walk cannot see, made by a macro for
                // instance: depend on the whole module.
                targets.extend(self.graph.units_of(module));
            } else {
                targets.extend(named);
            }
        }
        targets.remove(&id);
        targets
    }

    /// Resolves `segments`, seen in `scope`, to a module and the item named
    /// in it, or `None` for the item when the path names the module itself.
    /// `is_use` allows the last segment to be a module.
    fn resolve(
        &self,
        scope: ModuleId,
        segments: &[String],
        is_use: bool,
    ) -> Option<(ModuleId, Option<String>)> {
        let (first, _) = segments.split_first()?;
        let mut module = match first.as_str() {
            "crate" => ROOT,
            "self" => scope,
            "super" => self.tree.modules[scope].parent?,
            name => match self.module_named(scope, name) {
                Some(module) => module,
                None => {
                    return self
                        .item_in_scope(scope, name)
                        .map(|m| (m, Some(name.to_string())));
                }
            },
        };

        // The last segment of a code path is an item, never a module.
        let limit = if is_use {
            segments.len()
        } else {
            segments.len() - 1
        };
        let mut consumed = 1;
        while consumed < limit {
            let next = match segments[consumed].as_str() {
                "super" => self.tree.modules[module].parent,
                "self" => Some(module),
                name => self.child_or_alias(module, name),
            };
            let Some(next) = next else { break };
            module = next;
            consumed += 1;
        }
        Some((module, segments.get(consumed).cloned()))
    }

    /// Finds the module that a path's first segment names in `scope`: a
    /// child, a module imported by `use`, or a child of a glob-imported
    /// module.
    fn module_named(&self, scope: ModuleId, name: &str) -> Option<ModuleId> {
        if let Some(module) = self.child_or_alias(scope, name) {
            return Some(module);
        }
        let globs = self.names.get(&scope).map(|names| &names.globs);
        globs
            .into_iter()
            .flatten()
            .find_map(|glob| self.child_or_alias(*glob, name))
    }

    /// Finds the module that contains an item named `name` as seen from
    /// `scope`: the scope itself, or a glob-imported module.
    fn item_in_scope(&self, scope: ModuleId, name: &str) -> Option<ModuleId> {
        if !self.graph.named(scope, name).is_empty() {
            return Some(scope);
        }
        let globs = self.names.get(&scope).map(|names| &names.globs);
        globs
            .into_iter()
            .flatten()
            .copied()
            .find(|glob| !self.graph.named(*glob, name).is_empty())
    }

    /// Finds a child module, or a module bound by `use`, named `name` in
    /// `module`.
    fn child_or_alias(&self, module: ModuleId, name: &str) -> Option<ModuleId> {
        self.tree.modules[module]
            .children
            .get(name)
            .or_else(|| self.names.get(&module)?.aliases.get(name))
            .copied()
    }
}

/// Adds a unit for each top-level item of `items`, declared in `scope`.
fn collect_units(tree: &ModuleTree, scope: ModuleId, items: &[syn::Item], units: &mut Vec<Unit>) {
    for item in items {
        match item {
            syn::Item::Mod(declaration) => {
                if is_cfg_test(&declaration.attrs) {
                    continue;
                }
                let Some((_, content)) = &declaration.content else {
                    // `mod name;` declares a child; its file is read on its own.
                    continue;
                };
                let name = declaration.ident.unraw().to_string();
                if let Some(inner) = tree.modules[scope].children.get(&name) {
                    collect_units(tree, *inner, content, units);
                }
            }
            syn::Item::Use(declaration) => {
                if declaration.leading_colon.is_some() {
                    continue;
                }
                let mut leaves = Vec::new();
                flatten_use(&declaration.tree, &mut Vec::new(), &mut leaves);
                for leaf in leaves {
                    let names = match &leaf {
                        RawReference::Use {
                            binding: Some(name),
                            ..
                        } => vec![name.clone()],
                        _ => Vec::new(),
                    };
                    units.push(Unit {
                        scope,
                        names,
                        references: vec![leaf],
                    });
                }
            }
            other => {
                let mut collector = Collector {
                    references: Vec::new(),
                };
                collector.visit_item(other);
                units.push(Unit {
                    scope,
                    names: item_names(other),
                    references: collector.references,
                });
            }
        }
    }
}

/// Returns the names an item is reached by. An `impl` block is reached by
/// the name of the type it implements, so that using a type brings in its
/// methods.
fn item_names(item: &syn::Item) -> Vec<String> {
    let ident = match item {
        syn::Item::Const(item) => &item.ident,
        syn::Item::Enum(item) => &item.ident,
        syn::Item::ExternCrate(item) => match &item.rename {
            Some((_, rename)) => rename,
            None => &item.ident,
        },
        syn::Item::Fn(item) => &item.sig.ident,
        syn::Item::Macro(item) => match &item.ident {
            Some(ident) => ident,
            None => return Vec::new(),
        },
        syn::Item::Static(item) => &item.ident,
        syn::Item::Struct(item) => &item.ident,
        syn::Item::Trait(item) => &item.ident,
        syn::Item::TraitAlias(item) => &item.ident,
        syn::Item::Type(item) => &item.ident,
        syn::Item::Union(item) => &item.ident,
        syn::Item::Impl(item) => match &*item.self_ty {
            syn::Type::Path(path) => match path.path.segments.last() {
                Some(segment) => &segment.ident,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        },
        syn::Item::ForeignMod(item) => {
            return item
                .items
                .iter()
                .filter_map(|foreign| match foreign {
                    syn::ForeignItem::Fn(f) => Some(f.sig.ident.unraw().to_string()),
                    syn::ForeignItem::Static(s) => Some(s.ident.unraw().to_string()),
                    syn::ForeignItem::Type(t) => Some(t.ident.unraw().to_string()),
                    _ => None,
                })
                .collect();
        }
        _ => return Vec::new(),
    };
    vec![ident.unraw().to_string()]
}

/// Records every path inside one item.
struct Collector {
    references: Vec<RawReference>,
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        // A module inside a function body is not in the module tree, so
        // its paths count for the enclosing item.
        if !is_cfg_test(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if item.leading_colon.is_none() {
            flatten_use(&item.tree, &mut Vec::new(), &mut self.references);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments = path
                .segments
                .iter()
                .map(|segment| segment.ident.unraw().to_string())
                .collect();
            self.references.push(RawReference::Path(segments));
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {
        // `pub(in crate::a)` limits visibility; it uses nothing.
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        syn::visit::visit_macro(self, mac);
        scan_tokens(mac.tokens.clone(), &mut self.references);
    }
}

/// Flattens a `use` tree into its leaves.
fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<RawReference>) {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.unraw().to_string());
            flatten_use(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => out.push(use_leaf(prefix, &name.ident, &name.ident)),
        syn::UseTree::Rename(rename) => out.push(use_leaf(prefix, &rename.ident, &rename.rename)),
        syn::UseTree::Glob(_) => out.push(RawReference::Use {
            segments: prefix.clone(),
            binding: None,
        }),
        syn::UseTree::Group(group) => {
            for item in &group.items {
                flatten_use(item, prefix, out);
            }
        }
    }
}

/// Builds the leaf for `prefix::ident as binding`, where `ident` may be
/// `self` (as in `use a::{self}`).
fn use_leaf(prefix: &[String], ident: &syn::Ident, binding: &syn::Ident) -> RawReference {
    let mut segments = prefix.to_vec();
    let ident = ident.unraw().to_string();
    let binding = if ident == "self" && binding == "self" {
        prefix.last().cloned().unwrap_or(ident.clone())
    } else {
        binding.unraw().to_string()
    };
    if ident != "self" || segments.is_empty() {
        segments.push(ident);
    }
    RawReference::Use {
        segments,
        binding: Some(binding),
    }
}

/// Finds paths in macro tokens: every `a::b::c` sequence, and every lone
/// identifier as a one-segment path (it may name an item of the scope).
fn scan_tokens(tokens: TokenStream, out: &mut Vec<RawReference>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut index = 0;
    while index < tokens.len() {
        match &tokens[index] {
            TokenTree::Group(group) => scan_tokens(group.stream(), out),
            TokenTree::Ident(ident) => {
                let mut segments = vec![ident.unraw().to_string()];
                let mut next = index + 1;
                while let Some(segment) = path_separator_then_ident(&tokens, next) {
                    segments.push(segment);
                    next += 3;
                }
                out.push(RawReference::Path(segments));
                index = next;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
}

/// Returns the identifier after a `::` that starts at `index`.
fn path_separator_then_ident(tokens: &[TokenTree], index: usize) -> Option<String> {
    match tokens.get(index..index + 3)? {
        [
            TokenTree::Punct(a),
            TokenTree::Punct(b),
            TokenTree::Ident(ident),
        ] if a.as_char() == ':' && b.as_char() == ':' => Some(ident.unraw().to_string()),
        _ => None,
    }
}
