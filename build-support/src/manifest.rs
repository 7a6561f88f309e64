//! The parts of `Cargo.toml` and `Cargo.lock` that the fingerprint uses: the
//! crate's name, version and root file, and the locked versions of its
//! direct dependencies.
//!
//! Only normal dependencies count (`[dependencies]` and
//! `[target.*.dependencies]`): dev-dependencies never run inside a step, and
//! build-dependencies only run at build time. This module reads manifests
//! and never looks at source files.

use crate::BuildError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The parts of a package manifest the fingerprint uses.
pub(crate) struct Manifest {
    /// The package name (`[package] name`).
    pub(crate) package_name: String,
    /// The package version, or `None` when inherited from the workspace.
    pub(crate) package_version: Option<String>,
    /// The `[lib] name`, if set.
    pub(crate) lib_name: Option<String>,
    /// The `[lib] path`, if set.
    pub(crate) lib_path: Option<String>,
    /// The package names of the normal dependencies.
    pub(crate) dependencies: BTreeSet<String>,
}

impl Manifest {
    /// Reads `Cargo.toml` from `manifest_dir`.
    pub(crate) fn read(manifest_dir: &Path) -> Result<Manifest, BuildError> {
        let path = manifest_dir.join("Cargo.toml");
        let table = read_toml(&path)?;
        let invalid = |message: &str| BuildError::Manifest {
            path: path.clone(),
            message: message.to_string(),
        };

        let package = table
            .get("package")
            .and_then(Value::as_table)
            .ok_or_else(|| invalid("it has no [package] table"))?;
        let package_name = package
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("[package] has no name"))?
            .to_string();
        let package_version = package
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string);
        let lib = table.get("lib").and_then(Value::as_table);
        let lib_field = |key: &str| {
            lib.and_then(|lib| lib.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };

        let mut dependencies = BTreeSet::new();
        add_dependencies(table.get("dependencies"), &mut dependencies);
        if let Some(targets) = table.get("target").and_then(Value::as_table) {
            for target in targets.values() {
                add_dependencies(target.get("dependencies"), &mut dependencies);
            }
        }

        Ok(Manifest {
            package_name,
            package_version,
            lib_name: lib_field("name"),
            lib_path: lib_field("path"),
            dependencies,
        })
    }
}

/// Adds the package names of a dependency table, following `package = ".."`
/// renames.
fn add_dependencies(table: Option<&Value>, out: &mut BTreeSet<String>) {
    let Some(table) = table.and_then(Value::as_table) else {
        return;
    };
    for (key, spec) in table {
        let package = spec
            .get("package")
            .and_then(Value::as_str)
            .unwrap_or(key.as_str());
        out.insert(package.to_string());
    }
}

/// Finds the first `Cargo.lock` in `start` or a folder above it.
pub(crate) fn find_lock_file(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("Cargo.lock"))
        .find(|path| path.is_file())
}

/// Returns `name version` for each normal dependency of the package, from
/// the lock file, sorted.
///
/// NOTE: a dependency renamed through the workspace's
/// `[workspace.dependencies]` table (`alias = { package = "real" }`) is looked
/// up under its alias, which the lock file does not know, so its version is
/// left out.
pub(crate) fn locked_versions(
    lock_path: &Path,
    manifest: &Manifest,
    package_version: &str,
) -> Result<Vec<String>, BuildError> {
    let lock = read_toml(lock_path)?;
    let invalid = |message: String| BuildError::Lock {
        path: lock_path.to_path_buf(),
        message,
    };
    let packages: Vec<&Table> = lock
        .get("package")
        .and_then(Value::as_array)
        .map(|array| array.iter().filter_map(Value::as_table).collect())
        .unwrap_or_default();
    let field =
        |package: &Table, key: &str| package.get(key).and_then(Value::as_str).map(str::to_string);

    // The package itself is a local one, so its entry has no `source`.
    let own = packages
        .iter()
        .find(|package| {
            field(package, "name").as_deref() == Some(manifest.package_name.as_str())
                && field(package, "version").as_deref() == Some(package_version)
                && package.get("source").is_none()
        })
        .ok_or_else(|| {
            invalid(format!(
                "it has no entry for {} {package_version}; run `cargo update -p {}` to refresh it",
                manifest.package_name, manifest.package_name
            ))
        })?;

    let mut versions = Vec::new();
    let listed = own.get("dependencies").and_then(Value::as_array);
    for entry in listed.into_iter().flatten().filter_map(Value::as_str) {
        // An entry is `name`, or `name version` when several versions of
        // the package are locked, possibly followed by `(source)`.
        let mut words = entry.split_whitespace();
        let Some(name) = words.next() else { continue };
        if !manifest.dependencies.contains(name) {
            continue;
        }
        let version = match words.next() {
            Some(version) => version.to_string(),
            None => packages
                .iter()
                .find(|package| field(package, "name").as_deref() == Some(name))
                .and_then(|package| field(package, "version"))
                .ok_or_else(|| invalid(format!("dependency `{name}` has no package entry")))?,
        };
        versions.push(format!("{name} {version}"));
    }
    versions.sort();
    Ok(versions)
}

/// Reads and parses a TOML file.
fn read_toml(path: &Path) -> Result<Table, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::Io {
        action: "failed to read",
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<Table>().map_err(|error| BuildError::Manifest {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// Returns `[workspace.package] version` from the first workspace manifest
/// above `manifest_dir`, for a package that inherits its version.
pub(crate) fn workspace_version(manifest_dir: &Path) -> Option<String> {
    manifest_dir.ancestors().skip(1).find_map(|dir| {
        let table = read_toml(&dir.join("Cargo.toml")).ok()?;
        let version = table
            .get("workspace")?
            .get("package")?
            .get("version")?
            .as_str()?;
        Some(version.to_string())
    })
}
