//! The content-addressed artifact store and the cache entries that map a
//! step's cache key to the artifacts it produced.
//!
//! The engine talks to a store only through the [`ArtifactStore`] trait.
//! [`LocalStore`] keeps everything in one folder on the local disk:
//!
//! ```text
//! <root>/                  .flowrun/ by default; the caller chooses
//!   artifacts/ab/<hash>.<ext>   one file per artifact, named by content hash
//!   cache/cd/<key>.json         one entry per cache key
//!   tmp/<pid>-<n>.tmp           files being written
//!   locks/<key>.lock            empty files that carry the key locks
//! ```
//!
//! # Guarantees
//!
//! - A half-written file is never visible under `artifacts/` or `cache/`:
//!   every file is written to `tmp/`, then renamed or linked into
//!   place. [`LocalStore::open`] deletes what crashed processes left in
//!   `tmp/`.
//! - An artifact file is never replaced while it is valid, so an
//!   [`ArtifactRef`] handed out by [`put`](ArtifactStore::put) stays valid.
//!   Two writers of the same content race safely: one file wins and both get
//!   a reference to it.
//! - [`get`](ArtifactStore::get) checks the file's size and blake3 digest
//!   against the reference before decoding, then checks the content hash in
//!   the file's metadata, so damaged bytes are reported as
//!   [`ArtifactError::Corrupt`] and never returned as a value.
//! - [`exists`](ArtifactStore::exists), the check of every cache hit,
//!   notices a file changed since it was written without reading it. Each
//!   file is written with a fixed modification time, and a file with
//!   another time has its digest checked before it counts.
//! - The caller writes a cache entry with [`put_entry`](ArtifactStore::put_entry)
//!   only after every artifact it names has been stored, so an entry that
//!   exists names artifacts that existed when it was written.
//!
//! This module never computes cache keys and never decides whether a step
//! runs; it stores what the engine hands it.
//!
//! # Another backend
//!
//! An implementation on an S3-compatible object store (the `object_store`
//! crate) would keep the same layout as object keys and would need:
//!
//! - artifacts written with a create-only conditional put (`PutMode::Create`,
//!   If-None-Match) in place of the hard link that refuses to replace a
//!   file. Objects appear whole, so no `tmp/` area is needed;
//! - `exists` as a HEAD request comparing the object's size;
//! - key locks as lease objects created with a conditional put, carrying an
//!   owner and an expiry time, renewed while held and deleted on drop; a
//!   crashed holder's lease is taken over once it expires, because no
//!   process death releases it as an OS file lock does;
//! - `verify_all` as a listing of the two prefixes.

mod entry;
mod files;
mod local;

pub use entry::{CACHE_ENTRY_FORMAT_VERSION, CacheEntry};
pub use local::LocalStore;

use crate::{Artifact, ArtifactError, ArtifactKind, ContentHash};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A reference to a stored artifact: enough to find the file and to check
/// that it has not changed since it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The content hash of the artifact's value.
    pub hash: ContentHash,
    /// The artifact's kind, which also fixes the file extension.
    pub kind: ArtifactKind,
    /// The file's size in bytes.
    pub size: u64,
    /// The blake3 digest of the file's bytes, as 64 hex digits.
    pub file_digest: String,
}

/// Stores artifacts by content hash and cache entries by cache key.
///
/// Every method may be called from many threads and processes at once.
pub trait ArtifactStore: Send + Sync {
    /// Stores an artifact and returns a reference to its file. `producer`
    /// is written into the file's metadata (for example
    /// `train_model@3f2a9c1b`).
    ///
    /// Idempotent: when a valid file of the same content already exists it
    /// is kept, even if it names another producer, and the reference points
    /// to it.
    fn put(&self, artifact: &Artifact, producer: &str) -> Result<ArtifactRef, ArtifactError>;

    /// Reads an artifact. Fails with [`ArtifactError::NotFound`] when the
    /// file is missing, with [`ArtifactError::Corrupt`] when its size,
    /// digest or stored content hash differs from the reference, and with
    /// [`ArtifactError::Decode`] when a file with the right digest cannot be
    /// decoded.
    fn get(&self, r: &ArtifactRef) -> Result<Artifact, ArtifactError>;

    /// Returns whether the file is present, with the right size and
    /// contents. Every cache hit calls it, so it must be cheap for an
    /// unchanged file. [`LocalStore`] reads only the metadata of a file that
    /// still has the modification time it was written with, and checks the
    /// digest of any other.
    fn exists(&self, r: &ArtifactRef) -> bool;

    /// Checks the file's size and digest without decoding it.
    fn verify(&self, r: &ArtifactRef) -> Result<(), ArtifactError>;

    /// Deletes an artifact file, for example a corrupt one. Deleting a
    /// missing file succeeds.
    fn remove(&self, r: &ArtifactRef) -> Result<(), ArtifactError>;

    /// Returns where a user can open the artifact.
    fn path_of(&self, r: &ArtifactRef) -> PathBuf;

    /// Reads the cache entry of a key. A missing entry is `None`. An
    /// unreadable or malformed entry is logged as a warning, deleted and
    /// reported as `None`, so that the step runs again and rewrites it.
    fn get_entry(&self, key: &str) -> Result<Option<CacheEntry>, ArtifactError>;

    /// Writes the cache entry of a key, replacing any previous one. Store
    /// every artifact the entry names first.
    fn put_entry(&self, key: &str, entry: &CacheEntry) -> Result<(), ArtifactError>;

    /// Deletes the cache entry of a key. Deleting a missing entry succeeds.
    fn remove_entry(&self, key: &str) -> Result<(), ArtifactError>;

    /// Takes the exclusive lock of a cache key, waiting for it as long as
    /// another thread or process holds it. The lock is released when the
    /// returned [`KeyLock`] is dropped or the process dies.
    fn lock_key(&self, key: &str) -> Result<KeyLock, ArtifactError>;

    /// Takes the exclusive lock of a cache key if it is free; returns `None`
    /// when another holder has it.
    fn try_lock_key(&self, key: &str) -> Result<Option<KeyLock>, ArtifactError>;
}

/// A held lock on one cache key; dropping it releases the lock.
pub struct KeyLock {
    key: String,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl KeyLock {
    /// Wraps a backend's lock guard; the lock must be released when `guard`
    /// is dropped.
    pub fn new(key: &str, guard: impl std::any::Any + Send + Sync) -> Self {
        KeyLock {
            key: key.to_string(),
            _guard: Box::new(guard),
        }
    }

    /// Returns the locked cache key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for KeyLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLock")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The result of checking every file of a store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerifyReport {
    /// How many artifact files were checked.
    pub artifacts_checked: usize,
    /// How many cache entry files were checked.
    pub entries_checked: usize,
    /// Artifact files that are damaged, undecodable or misnamed.
    pub corrupt_artifacts: Vec<VerifyProblem>,
    /// Cache entries that are malformed or name a missing or damaged
    /// artifact.
    pub corrupt_entries: Vec<VerifyProblem>,
}

impl VerifyReport {
    /// Returns true when no problem was found.
    pub fn is_clean(&self) -> bool {
        self.corrupt_artifacts.is_empty() && self.corrupt_entries.is_empty()
    }
}

/// One file that failed verification, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyProblem {
    /// The file.
    pub path: PathBuf,
    /// The problem found.
    pub reason: String,
}

/// Checks that a cache key can be used as a file name: 2 to 128 ASCII
/// letters, digits, `-` or `_`. The first two characters name the entry's
/// subfolder.
pub(crate) fn check_key(key: &str) -> Result<(), ArtifactError> {
    let invalid = |reason: &str| ArtifactError::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.len() < 2 || key.len() > 128 {
        return Err(invalid("a key has 2 to 128 characters"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "a key contains only ASCII letters, digits, `-` and `_`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
