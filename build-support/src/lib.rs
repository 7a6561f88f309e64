//! Build-time fingerprints of a crate's source code, one per module, so that
//! a step's cache key changes when the code it runs changes, and only then.
//!
//! A crate of steps calls [`write_fingerprints`] from its `build.rs`. It
//! writes `$OUT_DIR/flowrun_fingerprints.rs`, an array of
//! `(module path, fingerprint)` pairs that the engine's
//! `include_fingerprints!` and `code_fingerprint!` macros read. Module paths
//! are spelled as `module_path!()` prints them, starting with the crate
//! name, such as `flowrun_steps::train`.
//!
//! # What enters a module's fingerprint
//!
//! | input | why |
//! |---|---|
//! | the bytes of the module's own file | the step's code |
//! | the bytes of its child modules' files, recursively | they are part of the module |
//! | the bytes of the file of every crate item its items use, transitively | code it calls, constants it reads (the `refs` module describes how uses are found) |
//! | each file's path relative to the crate folder | moving code between files is a change |
//! | `name version` of each normal dependency, from the workspace `Cargo.lock` | upgrading a library can change results |
//! | a format tag (`flowrun-build fingerprint v1`) | changing this algorithm invalidates every old fingerprint |
//!
//! # What is left out
//!
//! | left out | why |
//! |---|---|
//! | files no module of the crate declares (README, data, scripts) | they are not code the step runs |
//! | modules the step's module neither contains nor references | editing one step does not re-run the others |
//! | `#[cfg(test)]` modules | tests never run in a pipeline |
//! | dev- and build-dependencies | they never run inside a step |
//! | absolute paths, timestamps, file-system order | the fingerprint must be the same on every machine and every build |
//!
//! Because a file's bytes are hashed as they are, a change to a comment or
//! to formatting changes the fingerprint too. That costs a re-run, never a
//! stale result.
//!
//! # Limits
//!
//! - Macros are not expanded. A path written inside a macro call is found
//!   by scanning its tokens, but code that a macro generates, and the
//!   modules a macro defined elsewhere refers to, are not followed.
//! - Files pulled in with `include!`, `include_str!` or `include_bytes!` are
//!   not part of any fingerprint.
//! - References are followed item by item, but hashed file by file: a
//!   step that calls `crate::trace` depends on the whole root file and on
//!   what `trace` uses, not on every module the root file registers.
//! - A method call `x.factor()` is not resolved on its own. Its `impl`
//!   block counts when some item the step reaches names the type (as
//!   `Scaler::new` or `helpers::Scaler`). Names written inside format
//!   strings (`"{THRESHOLD}"`) are not seen.
//! - Source of other workspace crates (the engine, for instance) is not
//!   hashed; their version from `Cargo.lock` is.
//!
//! The module tree, references and lock file are read with `syn` and
//! `toml`. The walk over modules and the name resolution are written here
//! because no maintained crate resolves module references without
//! compiling the crate.

#![warn(missing_docs)]

mod manifest;
mod modtree;
mod refs;

use modtree::{FileId, ModuleTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The name of the generated file in `OUT_DIR`.
pub const OUTPUT_FILE_NAME: &str = "flowrun_fingerprints.rs";

/// Bumped whenever the hashing changes, so every old fingerprint differs.
const FORMAT_TAG: &str = "flowrun-build fingerprint v1";

/// Errors from fingerprinting a crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An environment variable that Cargo sets for build scripts is missing.
    #[error(
        "environment variable {0} is not set; call flowrun_build from a build script run by Cargo"
    )]
    MissingEnv(&'static str),

    /// A file cannot be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// The failed operation ("failed to read", "failed to write").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A source file that is not valid Rust.
    #[error("failed to parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message with line and column.
        message: String,
    },

    /// A `Cargo.toml` that lacks what the fingerprint needs.
    #[error("invalid manifest {path}: {message}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The problem found.
        message: String,
    },

    /// A `Cargo.lock` that lacks what the fingerprint needs.
    #[error("invalid lock file {path}: {message}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The problem found.
        message: String,
    },

    /// A `mod name;` whose file does not exist.
    #[error(
        "module `{module}` is declared but none of its files exist (looked for {}); create the file or remove the declaration",
        candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ModuleNotFound {
        /// The module name.
        module: String,
        /// The files looked for.
        candidates: Vec<PathBuf>,
    },

    /// A module with both `name.rs` and `name/mod.rs`.
    #[error("module `{module}` has two files, {} and {}; delete one", first.display(), second.display())]
    AmbiguousModule {
        /// The module name.
        module: String,
        /// `name.rs`.
        first: PathBuf,
        /// `name/mod.rs`.
        second: PathBuf,
    },

    /// A `#[path]` attribute that makes a file include itself.
    #[error("file {path} declares itself as a module through #[path]; fix the path attribute")]
    ModuleCycle {
        /// The file.
        path: PathBuf,
    },
}

/// The crate to fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateSource {
    /// The folder that contains `Cargo.toml`.
    pub manifest_dir: PathBuf,
    /// The crate name as `module_path!()` prints it (`-` becomes `_`).
    pub crate_name: String,
    /// The crate root: `src/lib.rs`, `src/main.rs` or the `[lib] path`.
    pub root_file: PathBuf,
    /// The package name, as in `Cargo.lock`.
    pub package_name: String,
    /// The package version, as in `Cargo.lock`.
    pub package_version: String,
}

impl CrateSource {
    /// Describes the crate whose build script is running, from the
    /// variables Cargo sets.
    pub fn from_env() -> Result<CrateSource, BuildError> {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .ok_or(BuildError::MissingEnv("CARGO_MANIFEST_DIR"))?;
        let mut source = CrateSource::from_manifest_dir(Path::new(&manifest_dir))?;
        if let Ok(version) = std::env::var("CARGO_PKG_VERSION") {
            source.package_version = version;
        }
        Ok(source)
    }

    /// Describes the crate in `manifest_dir` from its `Cargo.toml`.
    pub fn from_manifest_dir(manifest_dir: &Path) -> Result<CrateSource, BuildError> {
        let manifest = manifest::Manifest::read(manifest_dir)?;
        let package_version = manifest
            .package_version
            .clone()
            .or_else(|| manifest::workspace_version(manifest_dir))
            .ok_or_else(|| BuildError::Manifest {
                path: manifest_dir.join("Cargo.toml"),
                message: "no [package] version, and no [workspace.package] version above it"
                    .to_string(),
            })?;
        let crate_name = manifest
            .lib_name
            .clone()
            .unwrap_or_else(|| manifest.package_name.replace('-', "_"));
        let root_file = match &manifest.lib_path {
            Some(path) => manifest_dir.join(path),
            None if manifest_dir.join("src/lib.rs").is_file() => manifest_dir.join("src/lib.rs"),
            None => manifest_dir.join("src/main.rs"),
        };

        Ok(CrateSource {
            manifest_dir: manifest_dir.to_path_buf(),
            crate_name,
            root_file,
            package_name: manifest.package_name,
            package_version,
        })
    }
}

/// The fingerprints of a crate's modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    /// Hex fingerprints by module path (`crate_name::a::b`). Only modules
    /// with a file of their own are listed; an inline module shares its
    /// file's entry.
    pub modules: BTreeMap<String, String>,
    /// Every file read: the source files, `Cargo.toml` and `Cargo.lock`.
    pub inputs: Vec<PathBuf>,
}

impl Fingerprints {
    /// Renders the array expression that `include_fingerprints!` includes.
    pub fn to_rust_source(&self) -> String {
        let mut out = String::from("// Generated by flowrun-build. Do not edit.\n[\n");
        for (module, fingerprint) in &self.modules {
            out.push_str(&format!("    ({module:?}, {fingerprint:?}),\n"));
        }
        out.push_str("]\n");
        out
    }
}

/// Computes the fingerprint of every module of a crate.
pub fn fingerprint_crate(source: &CrateSource) -> Result<Fingerprints, BuildError> {
    let manifest = manifest::Manifest::read(&source.manifest_dir)?;
    let mut inputs = vec![source.manifest_dir.join("Cargo.toml")];
    let dependencies = match manifest::find_lock_file(&source.manifest_dir) {
        Some(lock_path) => {
            let versions =
                manifest::locked_versions(&lock_path, &manifest, &source.package_version)?;
            inputs.push(lock_path);
            versions
        }
        // Without a lock file (a crate outside any workspace that was never
        // built), no dependency version is known.
        None => Vec::new(),
    };

    let tree = ModuleTree::load(&source.manifest_dir, &source.root_file)?;
    let units = refs::UnitGraph::build(&tree);
    inputs.extend(tree.files.iter().map(|file| file.path.clone()));

    let mut modules = BTreeMap::new();
    for (id, module) in tree.modules.iter().enumerate() {
        if module.inline {
            continue;
        }
        let mut path = vec![source.crate_name.as_str()];
        path.extend(tree.segments(id));
        let files = units.reachable_files(&tree, &tree.subtree(id));
        modules.insert(path.join("::"), hash_module(&tree, &files, &dependencies));
    }
    Ok(Fingerprints { modules, inputs })
}

/// Hashes the files (sorted by relative path) and dependency versions.
fn hash_module(tree: &ModuleTree, files: &BTreeSet<FileId>, dependencies: &[String]) -> String {
    let mut sorted: Vec<_> = files.iter().map(|id| &tree.files[*id]).collect();
    sorted.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));

    let mut hasher = blake3::Hasher::new();
    hasher.update(FORMAT_TAG.as_bytes());
    hasher.update(b"\n");
    for file in sorted {
        // The length prefix keeps the boundary between files unambiguous.
        hasher.update(format!("file {} {}\n", file.relative_path, file.bytes.len()).as_bytes());
        hasher.update(&file.bytes);
    }
    for dependency in dependencies {
        hasher.update(format!("dependency {dependency}\n").as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// Fingerprints the crate whose build script is running, writes
/// `$OUT_DIR/flowrun_fingerprints.rs` and prints `cargo:rerun-if-changed`
/// for every file it read.
pub fn try_write_fingerprints() -> Result<(), BuildError> {
    let out_dir = std::env::var_os("OUT_DIR").ok_or(BuildError::MissingEnv("OUT_DIR"))?;
    let source = CrateSource::from_env()?;
    let fingerprints = fingerprint_crate(&source)?;

    for input in &fingerprints.inputs {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    let path = Path::new(&out_dir).join(OUTPUT_FILE_NAME);
    std::fs::write(&path, fingerprints.to_rust_source()).map_err(|source| BuildError::Io {
        action: "failed to write",
        path,
        source,
    })
}

/// Runs [`try_write_fingerprints`] and stops the build with its error
/// message if it fails. Call it from the `main` function of `build.rs`:
///
/// ```no_run
/// flowrun_build::write_fingerprints();
/// ```
///
/// # Panics
/// Panics when the crate's source or manifests cannot be read or parsed,
/// which fails the build with the error message.
pub fn write_fingerprints() {
    if let Err(error) = try_write_fingerprints() {
        panic!("flowrun-build: {error}");
    }
}
