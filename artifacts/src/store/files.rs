//! Crash-safe file writes for the local store.
//!
//! Every file is first written in full to a new file in `tmp/` and only
//! then given its final name, so that a reader never sees a half-written
//! file under `artifacts/` or `cache/`, even after `kill -9`.
//!
//! Files are not fsynced: an fsync costs milliseconds per file, which
//! dominated the time of pipelines with many small steps. A power loss can
//! still leave a file with the right name but lost contents; readers catch
//! that, because a cache hit checks each artifact's size and time, every read checks
//! its digest, and a malformed cache entry is dropped, so the step is
//! recomputed rather than a damaged result used.
//!
//! Every file written here gets a fixed modification time,
//! [`SEALED_MTIME_SECS`] (2000-01-01 UTC), before it is given its name.
//! Writing to a file later sets its time to the present. A file with
//! another time has therefore changed since flowrun wrote it (or an older
//! flowrun wrote it), and a cache hit checks its digest before using it. This is how a cache hit notices damage that keeps the size
//! without reading every byte of every artifact. A temporary file is
//! named `<pid>-<sequence>.tmp`, which lets [`remove_stale_tmp_files`]
//! tell the leftovers of a crashed process from the files of a live one.
//!
//! This module owns the `tmp/` folder. It never decides where a file ends
//! up; the store passes the destination.

use crate::ArtifactError;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The modification time of every file as written by flowrun: 2000-01-01
/// 00:00:00 UTC.
pub(super) const SEALED_MTIME_SECS: u64 = 946_684_800;

/// [`SEALED_MTIME_SECS`] as a time.
pub(super) fn sealed_mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SEALED_MTIME_SECS)
}

/// Returns whether a file's metadata shows it unchanged since flowrun
/// wrote it.
pub(super) fn is_sealed(metadata: &std::fs::Metadata) -> bool {
    metadata.modified().is_ok_and(|t| t == sealed_mtime())
}

/// Gives an existing file the sealed time again, after its contents were
/// checked. Fails quietly in a read-only store: the file is then checked
/// again on the next hit.
pub(super) fn reseal(path: &Path) {
    let resealed = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(sealed_mtime()));
    if let Err(error) = resealed {
        tracing::debug!(path = %path.display(), %error, "could not reseal a checked file");
    }
}

/// Numbers the temporary files of this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The outcome of publishing a file without replacing an existing one.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Published {
    /// The file is now at its destination.
    Created,
    /// Another file was already at the destination; it was left alone.
    AlreadyExists,
}

pub(super) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ArtifactError {
    let path = path.to_path_buf();
    move |source| ArtifactError::Io {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to a new file in `tmp_dir` and returns its path.
pub(super) fn write_tmp(tmp_dir: &Path, bytes: &[u8]) -> Result<PathBuf, ArtifactError> {
    let pid = std::process::id();
    loop {
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let path = tmp_dir.join(format!("{pid}-{sequence}.tmp"));

        // `create_new` fails rather than sharing a file with another store in
        // a different PID namespace that happens to have the same pid.
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error("failed to create", &path)(e)),
        };

        let written = file
            .write_all(bytes)
            .and_then(|()| file.set_modified(sealed_mtime()))
            .map_err(io_error("failed to write", &path));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&path);
            return Err(error);
        }
        return Ok(path);
    }
}

/// Moves a temporary file to `destination`, replacing any file there.
pub(super) fn publish_replacing(tmp: &Path, destination: &Path) -> Result<(), ArtifactError> {
    if let Err(error) = std::fs::rename(tmp, destination) {
        let _ = std::fs::remove_file(tmp);
        return Err(io_error(
            "failed to rename a temporary file to",
            destination,
        )(error));
    }
    Ok(())
}

/// Moves a temporary file to `destination` unless a file is already there.
///
/// A hard link is created and the temporary name removed, because `link`
/// fails atomically when the destination exists, while `rename` would
/// silently replace it. On a file system without hard links it falls back to
/// checking for the destination and renaming, which leaves a short window in
/// which a concurrent writer's file can be replaced.
pub(super) fn publish_new(tmp: &Path, destination: &Path) -> Result<Published, ArtifactError> {
    let outcome = match std::fs::hard_link(tmp, destination) {
        Ok(()) => Ok(Published::Created),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Published::AlreadyExists),
        Err(e) => {
            tracing::debug!(path = %destination.display(), error = %e, "hard link failed; renaming instead");
            if destination.exists() {
                Ok(Published::AlreadyExists)
            } else {
                std::fs::rename(tmp, destination)
                    .map(|()| Published::Created)
                    .map_err(io_error(
                        "failed to rename a temporary file to",
                        destination,
                    ))
            }
        }
    };

    // After a link or a failure the temporary name is still there; after a
    // rename it is gone and removing it is a no-op.
    let _ = std::fs::remove_file(tmp);
    outcome
}

/// Deletes the temporary files of processes that are no longer running and
/// returns how many were deleted.
///
/// Liveness is read from `/proc/<pid>`. Where `/proc` does not exist (macOS,
/// Windows) nothing is deleted. A crashed process whose pid has since been
/// reused keeps its files until the new process exits too; they only cost
/// disk space.
pub(super) fn remove_stale_tmp_files(tmp_dir: &Path) -> Result<usize, ArtifactError> {
    if !Path::new("/proc/self").exists() {
        tracing::debug!("no /proc on this system; leftover temporary files are kept");
        return Ok(0);
    }

    let mut removed = 0;
    let entries = std::fs::read_dir(tmp_dir).map_err(io_error("failed to list", tmp_dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error("failed to list", tmp_dir))?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(pid_of_tmp_name) else {
            tracing::debug!(file = ?name, "unrecognised file in the temporary folder is kept");
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "failed to delete a leftover temporary file");
            }
        }
    }
    Ok(removed)
}

/// Parses the pid out of a temporary file name `<pid>-<sequence>.tmp`.
fn pid_of_tmp_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".tmp")?;
    let (pid, sequence) = stem.split_once('-')?;
    sequence.parse::<u64>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_names_parse() {
        assert_eq!(pid_of_tmp_name("123-0.tmp"), Some(123));
        assert_eq!(pid_of_tmp_name("123-x.tmp"), None);
        assert_eq!(pid_of_tmp_name("123.tmp"), None);
        assert_eq!(pid_of_tmp_name("notes.txt"), None);
    }

    #[test]
    fn publish_new_keeps_existing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("file");
        std::fs::write(&destination, b"first").expect("write");

        let tmp = write_tmp(dir.path(), b"second").expect("tmp");
        assert_eq!(
            publish_new(&tmp, &destination).expect("publish"),
            Published::AlreadyExists
        );
        assert_eq!(std::fs::read(&destination).expect("read"), b"first");
        assert!(!tmp.exists(), "the temporary file is left behind");
    }

    #[test]
    fn publish_new_creates_missing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("file");

        let tmp = write_tmp(dir.path(), b"content").expect("tmp");
        assert_eq!(
            publish_new(&tmp, &destination).expect("publish"),
            Published::Created
        );
        assert_eq!(std::fs::read(&destination).expect("read"), b"content");
        assert!(!tmp.exists(), "the temporary file is left behind");
    }

    #[test]
    fn publish_replacing_replaces() {
        let dir = tempfile::tempdir().expect("temp dir");
        let destination = dir.path().join("file");
        std::fs::write(&destination, b"old").expect("write");

        let tmp = write_tmp(dir.path(), b"new").expect("tmp");
        publish_replacing(&tmp, &destination).expect("publish");
        assert_eq!(std::fs::read(&destination).expect("read"), b"new");
    }
}
