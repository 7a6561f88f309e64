//! Content fingerprints of the files and folders that path parameters name.
//!
//! A step declares with [`ParamSpec::hash_contents`](crate::ParamSpec::hash_contents)
//! that it reads the data at a path parameter. The engine then puts a
//! fingerprint of that data into the step's cache key, so that changed input
//! files re-run the step even though the path is the same, as DVC does for
//! its dependencies.
//!
//! A file's fingerprint is the blake3 hash of its bytes. A folder's is the
//! hash of every regular file below it, in sorted order of relative path
//! (with `/` separators), each with its relative path and its bytes' hash.
//! Names starting with `.` are skipped, so `.DS_Store` or an editor's swap
//! file does not invalidate the cache. A path that does not exist or cannot
//! be read gets a fingerprint saying so, and the step then reports the
//! problem when it runs.
//!
//! Fingerprints are cached in memory for the life of the process, keyed by
//! path, size, modification time and inode, so a path read by several steps
//! of one run is hashed once.
//!
//! NOTE: every run hashes the data again (about 30 MB of gzip files for the
//! full Olist data set, some milliseconds with blake3 on two cores). A
//! persistent cache of fingerprints by size and modification time, as DVC
//! keeps, would avoid that for very large data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// The file attributes that identify an unchanged file without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Stamp {
    path: PathBuf,
    size: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn memo() -> &'static Mutex<HashMap<Stamp, String>> {
    static MEMO: OnceLock<Mutex<HashMap<Stamp, String>>> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

/// Returns the fingerprint of the file or folder at `path`, as hex or as a
/// short description of why it could not be read.
pub fn fingerprint(path: &Path) -> String {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return "missing".to_string(),
        Err(error) => return format!("unreadable: {}", error.kind()),
    };
    if metadata.is_dir() {
        let mut files = Vec::new();
        if let Err(error) = collect_files(path, Path::new(""), &mut files) {
            return format!("unreadable: {}", error.kind());
        }
        files.sort();
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"folder");
        for relative in files {
            let name = relative.to_string_lossy().replace('\\', "/");
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(file_hash(&path.join(&relative)).as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    } else {
        file_hash(path)
    }
}

/// Lists regular files below `root`, relative to it, skipping hidden names.
fn collect_files(root: &Path, relative: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let child = relative.join(&name);
        let metadata = std::fs::metadata(entry.path())?;
        if metadata.is_dir() {
            collect_files(root, &child, out)?;
        } else if metadata.is_file() {
            out.push(child);
        }
    }
    Ok(())
}

fn file_hash(path: &Path) -> String {
    let Ok(metadata) = std::fs::metadata(path) else {
        return "unreadable".to_string();
    };
    let stamp = Stamp {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        size: metadata.len(),
        modified: metadata.modified().ok(),
        inode: inode(&metadata),
    };
    if let Some(hash) = memo()
        .lock()
        .expect("fingerprint memo poisoned")
        .get(&stamp)
    {
        return hash.clone();
    }

    let mut hasher = blake3::Hasher::new();
    let hash = match hasher.update_mmap_rayon(path) {
        Ok(_) => hasher.finalize().to_hex().to_string(),
        Err(error) => format!("unreadable: {}", error.kind()),
    };
    memo()
        .lock()
        .expect("fingerprint memo poisoned")
        .insert(stamp, hash.clone());
    hash
}

/// Fingerprints the data of every `hash_contents` path parameter of a step,
/// by parameter name.
pub fn for_params(
    signature: &crate::StepSignature,
    params: &std::collections::BTreeMap<String, crate::ParamValue>,
) -> std::collections::BTreeMap<String, String> {
    signature
        .params
        .iter()
        .filter(|spec| spec.hash_contents)
        .filter_map(|spec| {
            let path = params.get(&spec.name)?.as_str()?;
            Some((spec.name.clone(), fingerprint(Path::new(path))))
        })
        .collect()
}

#[cfg(unix)]
fn inode(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.ino()
}

#[cfg(not(unix))]
fn inode(_metadata: &std::fs::Metadata) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_fingerprint_follows_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.csv"), "y\n2\n").unwrap();
        let first = fingerprint(dir.path());

        std::fs::write(dir.path().join(".hidden"), "ignored").unwrap();
        assert_eq!(fingerprint(dir.path()), first, "hidden files are skipped");

        std::fs::write(dir.path().join("sub/b.csv"), "y\n3\n").unwrap();
        assert_ne!(fingerprint(dir.path()), first, "a changed file changes it");
    }

    #[test]
    fn renamed_file_changes_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n").unwrap();
        let first = fingerprint(dir.path());
        std::fs::rename(dir.path().join("a.csv"), dir.path().join("b.csv")).unwrap();
        assert_ne!(fingerprint(dir.path()), first);
    }

    #[test]
    fn missing_path_has_fingerprint() {
        assert_eq!(fingerprint(Path::new("/no/such/flowrun/path")), "missing");
    }
}
