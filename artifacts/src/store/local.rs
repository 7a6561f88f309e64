//! [`LocalStore`]: the artifact store in a folder on the local disk.
//!
//! This module owns the layout under the store's root and the checks on
//! read. It never holds a key lock itself: locking is the caller's choice,
//! and the writes here are safe without one.

use super::files::{self, Published, io_error};
use super::{
    ArtifactRef, ArtifactStore, CACHE_ENTRY_FORMAT_VERSION, CacheEntry, KeyLock, VerifyProblem,
    VerifyReport, check_key,
};
use crate::format::{self, extension, kind_for_extension};
use crate::{Artifact, ArtifactError, ArtifactKind, ContentHash};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The artifact store in a folder on the local disk; see the
/// [module documentation](super) for the layout and guarantees.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens the store at `root`, creating its folders if needed, and deletes
    /// the temporary files of processes that are no longer running.
    pub fn open(root: &Path) -> Result<LocalStore, ArtifactError> {
        let store = LocalStore {
            root: root.to_path_buf(),
        };
        for folder in [
            store.artifacts_dir(),
            store.cache_dir(),
            store.tmp_dir(),
            store.locks_dir(),
        ] {
            std::fs::create_dir_all(&folder)
                .map_err(io_error("failed to create folder", &folder))?;
        }

        let removed = files::remove_stale_tmp_files(&store.tmp_dir())?;
        if removed > 0 {
            tracing::info!(removed, root = %root.display(), "deleted temporary files left by stopped processes");
        }
        Ok(store)
    }

    /// Returns the store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks every artifact file and every cache entry and lists the
    /// problems found. Nothing is deleted.
    ///
    /// An artifact file is decoded and its content hash recomputed, so this
    /// reads every byte of the store and takes as long as loading every
    /// artifact once. An entry is checked by parsing it and verifying the
    /// size and digest of each artifact it names. A changed byte that leaves
    /// the decoded value intact (Arrow padding, the value under a null) is
    /// therefore reported only through the entries that name the file.
    pub fn verify_all(&self) -> Result<VerifyReport, ArtifactError> {
        let mut report = VerifyReport::default();

        for path in files_in_subfolders(&self.artifacts_dir())? {
            report.artifacts_checked += 1;
            if let Err(reason) = self.check_artifact_file(&path) {
                report
                    .corrupt_artifacts
                    .push(VerifyProblem { path, reason });
            }
        }

        for path in files_in_subfolders(&self.cache_dir())? {
            report.entries_checked += 1;
            if let Err(reason) = self.check_entry_file(&path) {
                report.corrupt_entries.push(VerifyProblem { path, reason });
            }
        }

        tracing::info!(
            artifacts = report.artifacts_checked,
            entries = report.entries_checked,
            corrupt_artifacts = report.corrupt_artifacts.len(),
            corrupt_entries = report.corrupt_entries.len(),
            "verified the artifact store"
        );
        Ok(report)
    }

    fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    fn artifact_path(&self, hash: &ContentHash, kind: ArtifactKind) -> PathBuf {
        self.artifacts_dir()
            .join(&hash.as_str()[..2])
            .join(format!("{hash}.{}", extension(kind)))
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.cache_dir().join(&key[..2]).join(format!("{key}.json"))
    }

    /// Returns the existing file's reference if a valid file for `hash` is
    /// at `path`, and `None` when there is no file or it is invalid.
    ///
    /// A file with exactly the bytes about to be written is valid. Any other
    /// file (another producer, a damaged file) is decoded and its content
    /// hash recomputed.
    fn existing_valid_file(
        &self,
        path: &Path,
        new_bytes: &[u8],
        hash: &ContentHash,
        kind: ArtifactKind,
    ) -> Result<Option<ArtifactRef>, ArtifactError> {
        let existing = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("failed to read", path)(e)),
        };
        let reference = artifact_ref(hash, kind, &existing);
        if existing == new_bytes {
            return Ok(Some(reference));
        }

        match format::decode(&existing, kind, path) {
            Ok((artifact, metadata))
                if metadata.content_hash == *hash && artifact.content_hash() == *hash =>
            {
                Ok(Some(reference))
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "stored artifact's value does not match the content hash in its file name; replacing it");
                Ok(None)
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "stored artifact cannot be decoded; replacing it");
                Ok(None)
            }
        }
    }

    fn check_artifact_file(&self, path: &Path) -> Result<(), String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        let hash = ContentHash::from_hex(stem)
            .ok_or("the file name is not a content hash; the file does not belong in the store")?;
        let kind = kind_for_extension(ext)
            .ok_or_else(|| format!("the extension `.{ext}` is not an artifact format"))?;
        if self.artifact_path(&hash, kind) != path {
            return Err("the file is in the wrong subfolder for its hash".to_string());
        }

        let bytes = std::fs::read(path).map_err(|e| format!("failed to read: {e}"))?;
        let (artifact, metadata) = format::decode(&bytes, kind, path).map_err(|e| e.to_string())?;
        if metadata.content_hash != hash {
            return Err(format!(
                "its metadata names content hash {}",
                metadata.content_hash
            ));
        }
        let actual = artifact.content_hash();
        if actual != hash {
            return Err(format!("its value has content hash {actual}"));
        }
        Ok(())
    }

    fn check_entry_file(&self, path: &Path) -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("failed to read: {e}"))?;
        let entry: CacheEntry =
            serde_json::from_slice(&bytes).map_err(|e| format!("malformed cache entry: {e}"))?;

        let mut problems = Vec::new();
        for (output, reference) in &entry.outputs {
            if let Err(error) = self.verify(reference) {
                problems.push(format!("output `{output}`: {error}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn open_lock_file(&self, key: &str) -> Result<(File, PathBuf), ArtifactError> {
        check_key(key)?;
        let path = self.locks_dir().join(format!("{key}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("failed to open lock file", &path))?;
        Ok((file, path))
    }

    /// Deletes an unusable cache entry file, logging the outcome.
    fn discard_entry(&self, path: &Path, reason: &str) {
        tracing::warn!(path = %path.display(), reason, "ignoring and deleting an unusable cache entry");
        if let Err(error) = std::fs::remove_file(path)
            && error.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "failed to delete an unusable cache entry");
        }
    }
}

impl ArtifactStore for LocalStore {
    fn put(&self, artifact: &Artifact, producer: &str) -> Result<ArtifactRef, ArtifactError> {
        let hash = artifact.content_hash();
        let kind = artifact.kind();
        let path = self.artifact_path(&hash, kind);
        let bytes = format::encode(artifact, &hash, producer)?;

        if let Some(existing) = self.existing_valid_file(&path, &bytes, &hash, kind)? {
            tracing::debug!(hash = hash.short(), %kind, "artifact already stored");
            return Ok(existing);
        }

        let folder = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(folder).map_err(io_error("failed to create folder", folder))?;
        let tmp = files::write_tmp(&self.tmp_dir(), &bytes)?;
        match files::publish_new(&tmp, &path)? {
            Published::Created => {
                tracing::debug!(hash = hash.short(), %kind, size = bytes.len(), "stored artifact");
                Ok(artifact_ref(&hash, kind, &bytes))
            }
            Published::AlreadyExists => {
                // Another writer got there first, or an invalid file is in
                // the way.
                if let Some(existing) = self.existing_valid_file(&path, &bytes, &hash, kind)? {
                    return Ok(existing);
                }
                // NOTE: two writers that both find an invalid file here both
                // replace it, and the first one's reference goes stale; its
                // next `get` reports `Corrupt` and the artifact is rebuilt.
                let tmp = files::write_tmp(&self.tmp_dir(), &bytes)?;
                files::publish_replacing(&tmp, &path)?;
                tracing::debug!(hash = hash.short(), %kind, size = bytes.len(), "replaced invalid artifact file");
                Ok(artifact_ref(&hash, kind, &bytes))
            }
        }
    }

    fn get(&self, r: &ArtifactRef) -> Result<Artifact, ArtifactError> {
        let path = self.path_of(r);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ArtifactError::NotFound {
                    hash: r.hash.to_string(),
                });
            }
            Err(e) => return Err(io_error("failed to read", &path)(e)),
        };

        let digest = blake3::hash(&bytes).to_hex().to_string();
        if bytes.len() as u64 != r.size || digest != r.file_digest {
            return Err(ArtifactError::Corrupt {
                path,
                expected: r.file_digest.clone(),
                found: digest,
            });
        }

        let (artifact, metadata) = format::decode(&bytes, r.kind, &path)?;
        if metadata.content_hash != r.hash {
            return Err(ArtifactError::Corrupt {
                path,
                expected: r.hash.to_string(),
                found: metadata.content_hash.to_string(),
            });
        }
        Ok(artifact)
    }

    fn exists(&self, r: &ArtifactRef) -> bool {
        let path = self.path_of(r);
        let Ok(metadata) = std::fs::metadata(&path) else {
            return false;
        };
        if !metadata.is_file() || metadata.len() != r.size {
            return false;
        }
        if files::is_sealed(&metadata) {
            return true;
        }
        // Changed since it was written, or written by an older flowrun:
        // only the digest can decide.
        match self.verify(r) {
            Ok(()) => {
                files::reseal(&path);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "a stored artifact changed since it was written");
                false
            }
        }
    }

    fn verify(&self, r: &ArtifactRef) -> Result<(), ArtifactError> {
        let path = self.path_of(r);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ArtifactError::NotFound {
                    hash: r.hash.to_string(),
                });
            }
            Err(e) => return Err(io_error("failed to open", &path)(e)),
        };

        // Streams the file, so that verifying a large artifact does not load
        // it into memory.
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(file)
            .map_err(io_error("failed to read", &path))?;
        let digest = hasher.finalize().to_hex().to_string();
        if hasher.count() != r.size || digest != r.file_digest {
            return Err(ArtifactError::Corrupt {
                path,
                expected: r.file_digest.clone(),
                found: digest,
            });
        }
        Ok(())
    }

    fn remove(&self, r: &ArtifactRef) -> Result<(), ArtifactError> {
        let path = self.path_of(r);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(hash = r.hash.short(), "removed artifact");
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("failed to delete", &path)(e)),
        }
    }

    fn path_of(&self, r: &ArtifactRef) -> PathBuf {
        self.artifact_path(&r.hash, r.kind)
    }

    fn get_entry(&self, key: &str) -> Result<Option<CacheEntry>, ArtifactError> {
        check_key(key)?;
        let path = self.entry_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                self.discard_entry(&path, &format!("failed to read: {e}"));
                return Ok(None);
            }
        };

        let entry: CacheEntry = match serde_json::from_slice(&bytes) {
            Ok(entry) => entry,
            Err(e) => {
                self.discard_entry(&path, &format!("malformed JSON: {e}"));
                return Ok(None);
            }
        };

        if entry.format_version > CACHE_ENTRY_FORMAT_VERSION {
            // A newer flowrun wrote it; leave it for that version.
            tracing::warn!(
                path = %path.display(),
                version = entry.format_version,
                "ignoring a cache entry written by a newer flowrun"
            );
            return Ok(None);
        }
        if entry.format_version < CACHE_ENTRY_FORMAT_VERSION {
            self.discard_entry(
                &path,
                &format!("old format version {}", entry.format_version),
            );
            return Ok(None);
        }
        Ok(Some(entry))
    }

    fn put_entry(&self, key: &str, entry: &CacheEntry) -> Result<(), ArtifactError> {
        check_key(key)?;
        let path = self.entry_path(key);
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| ArtifactError::Io {
            action: "failed to serialize cache entry for",
            path: path.clone(),
            source: e.into(),
        })?;

        let folder = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(folder).map_err(io_error("failed to create folder", folder))?;
        let tmp = files::write_tmp(&self.tmp_dir(), &bytes)?;
        files::publish_replacing(&tmp, &path)?;
        tracing::debug!(key, step = %entry.step, "stored cache entry");
        Ok(())
    }

    fn remove_entry(&self, key: &str) -> Result<(), ArtifactError> {
        check_key(key)?;
        let path = self.entry_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("failed to delete", &path)(e)),
        }
    }

    fn lock_key(&self, key: &str) -> Result<KeyLock, ArtifactError> {
        let (file, path) = self.open_lock_file(key)?;
        file.lock().map_err(io_error("failed to lock", &path))?;
        Ok(KeyLock::new(key, file))
    }

    fn try_lock_key(&self, key: &str) -> Result<Option<KeyLock>, ArtifactError> {
        let (file, path) = self.open_lock_file(key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(KeyLock::new(key, file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error("failed to lock", &path)(e)),
        }
    }
}

/// Builds the reference to a file holding `bytes`.
fn artifact_ref(hash: &ContentHash, kind: ArtifactKind, bytes: &[u8]) -> ArtifactRef {
    ArtifactRef {
        hash: hash.clone(),
        kind,
        size: bytes.len() as u64,
        file_digest: blake3::hash(bytes).to_hex().to_string(),
    }
}

/// Lists the files one level below the subfolders of `dir`, sorted.
fn files_in_subfolders(dir: &Path) -> Result<Vec<PathBuf>, ArtifactError> {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(dir).map_err(io_error("failed to list", dir))? {
        let folder = folder.map_err(io_error("failed to list", dir))?.path();
        if !folder.is_dir() {
            found.push(folder);
            continue;
        }
        for file in std::fs::read_dir(&folder).map_err(io_error("failed to list", &folder))? {
            found.push(file.map_err(io_error("failed to list", &folder))?.path());
        }
    }
    found.sort();
    Ok(found)
}
