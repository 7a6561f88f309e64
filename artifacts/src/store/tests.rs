use super::*;
use crate::{Column, ColumnData, FeatureKind, FeatureSpec, Model, Table};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn open_store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(&dir.path().join(".flowrun")).expect("open store");
    (dir, store)
}

fn table(seed: f64) -> Artifact {
    Artifact::Table(
        Table::new(vec![
            Column::new("x", ColumnData::Float64(vec![seed, f64::NAN, 2.5])),
            Column::new(
                "s",
                ColumnData::Utf8(vec![Some("a".into()), None, Some("c".into())]),
            ),
        ])
        .expect("valid table"),
    )
}

fn model() -> Artifact {
    Artifact::Model(Model {
        flavor: "linear".into(),
        target: "y".into(),
        features: vec![FeatureSpec {
            name: "x".into(),
            kind: FeatureKind::Numeric,
        }],
        payload: vec![1, 2, 3],
        info: json!({"alpha": 0.5}),
    })
}

fn samples() -> Vec<Artifact> {
    vec![table(1.0), model(), Artifact::Json(json!({"rmse": 0.3}))]
}

fn entry(outputs: BTreeMap<String, ArtifactRef>) -> CacheEntry {
    CacheEntry {
        format_version: CACHE_ENTRY_FORMAT_VERSION,
        step: "train_model".into(),
        outputs,
        metrics: vec![("rmse".into(), f64::NAN), ("r2".into(), 0.75)],
        tags: vec![("stage".into(), "test".into())],
        run_id: "run-7".into(),
        duration_ms: 1200,
    }
}

/// Flips one byte in the middle of a file, keeping its size.
fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect()
}

#[test]
fn open_creates_layout() {
    let (_dir, store) = open_store();
    for folder in ["artifacts", "cache", "tmp", "locks"] {
        assert!(store.root().join(folder).is_dir(), "{folder}/ is missing");
    }
}

#[test]
fn put_get_round_trip() {
    let (_dir, store) = open_store();
    for artifact in samples() {
        let reference = store.put(&artifact, "step@1234").expect("put");
        assert_eq!(reference.hash, artifact.content_hash());
        assert_eq!(reference.kind, artifact.kind());

        let path = store.path_of(&reference);
        assert_eq!(
            std::fs::metadata(&path).expect("file").len(),
            reference.size
        );
        assert_eq!(
            reference.file_digest,
            blake3::hash(&std::fs::read(&path).expect("read"))
                .to_hex()
                .as_str()
        );

        let back = store.get(&reference).expect("get");
        assert_eq!(back.content_hash(), artifact.content_hash());
        assert!(store.exists(&reference));
        store.verify(&reference).expect("verify");
    }
    assert!(
        files_in(&store.root().join("tmp")).is_empty(),
        "tmp/ is not empty"
    );
}

#[test]
fn path_follows_layout() {
    let (_dir, store) = open_store();
    let reference = store.put(&table(1.0), "p").expect("put");
    let hash = reference.hash.as_str();
    assert_eq!(
        store.path_of(&reference),
        store
            .root()
            .join("artifacts")
            .join(&hash[..2])
            .join(format!("{hash}.arrow"))
    );
}

#[test]
fn put_is_idempotent() {
    let (_dir, store) = open_store();
    let artifact = table(3.0);
    let first = store.put(&artifact, "first@1").expect("put");
    let second = store.put(&artifact, "first@1").expect("put again");
    assert_eq!(first, second);
}

#[test]
fn put_keeps_file_of_other_producer() {
    let (_dir, store) = open_store();
    let artifact = Artifact::Json(json!([1, 2]));
    let first = store.put(&artifact, "clean@aaaa").expect("put");
    let second = store.put(&artifact, "clean_copy@bbbb").expect("put again");

    assert_eq!(first, second, "the existing file was not kept");
    let text = std::fs::read_to_string(store.path_of(&first)).expect("read");
    assert!(text.contains("clean@aaaa"), "{text}");
}

#[test]
fn put_replaces_damaged_file() {
    let (_dir, store) = open_store();
    let artifact = model();
    let good = store.put(&artifact, "p").expect("put");
    std::fs::write(store.path_of(&good), b"garbage").expect("write");

    let again = store.put(&artifact, "p").expect("put over damage");
    assert_eq!(again, good);
    store.verify(&again).expect("verify");
    assert_eq!(store.get(&again).expect("get"), artifact);
}

#[test]
fn corrupt_byte_is_detected() {
    let (_dir, store) = open_store();
    for artifact in samples() {
        let reference = store.put(&artifact, "p").expect("put");
        flip_middle_byte(&store.path_of(&reference));

        // The size is unchanged, but writing changed the file's time, so
        // the check of a cache hit reads the digest.
        assert!(
            !store.exists(&reference),
            "exists accepted a damaged {}",
            artifact.kind()
        );
        assert!(
            matches!(store.verify(&reference), Err(ArtifactError::Corrupt { .. })),
            "verify accepted a damaged {}",
            artifact.kind()
        );
        assert!(
            matches!(store.get(&reference), Err(ArtifactError::Corrupt { .. })),
            "get accepted a damaged {}",
            artifact.kind()
        );
    }
}

#[test]
fn same_size_damage_fails_read() {
    // A file changed and then given its old time back passes the cheap
    // check, but no read ever returns its bytes.
    let (_dir, store) = open_store();
    let reference = store.put(&table(1.0), "p").expect("put");
    let path = store.path_of(&reference);
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    flip_middle_byte(&path);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(written)
        .unwrap();
    assert!(store.exists(&reference));
    assert!(matches!(
        store.get(&reference),
        Err(ArtifactError::Corrupt { .. })
    ));
}

#[test]
fn touched_file_is_resealed() {
    let (_dir, store) = open_store();
    let reference = store.put(&model(), "p").expect("put");
    let path = store.path_of(&reference);
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    assert!(store.exists(&reference), "an intact file was rejected");
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        written,
        "the checked file got its sealed time back"
    );
}

#[test]
fn truncated_file_is_detected() {
    let (_dir, store) = open_store();
    let reference = store.put(&table(5.0), "p").expect("put");
    let path = store.path_of(&reference);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 10]).expect("write");

    assert!(!store.exists(&reference));
    assert!(matches!(
        store.verify(&reference),
        Err(ArtifactError::Corrupt { .. })
    ));
    assert!(matches!(
        store.get(&reference),
        Err(ArtifactError::Corrupt { .. })
    ));
}

#[test]
fn mismatched_metadata_hash_is_corrupt() {
    // A file whose bytes match the reference but whose metadata names
    // another hash: the reference is wrong, and get must not return it.
    let (_dir, store) = open_store();
    let stored = store.put(&table(1.0), "p").expect("put");
    let other_hash = table(2.0).content_hash();
    let lying = ArtifactRef {
        hash: other_hash.clone(),
        ..stored.clone()
    };
    let lying_path = store.path_of(&lying);
    std::fs::create_dir_all(lying_path.parent().expect("parent")).expect("mkdir");
    std::fs::copy(store.path_of(&stored), &lying_path).expect("copy");

    let error = store.get(&lying).expect_err("metadata names another hash");
    assert!(
        matches!(&error, ArtifactError::Corrupt { expected, .. } if *expected == other_hash.to_string()),
        "{error}"
    );
}

#[test]
fn missing_artifact_is_not_found() {
    let (_dir, store) = open_store();
    let reference = store.put(&model(), "p").expect("put");
    store.remove(&reference).expect("remove");

    assert!(!store.exists(&reference));
    assert!(matches!(
        store.get(&reference),
        Err(ArtifactError::NotFound { .. })
    ));
    assert!(matches!(
        store.verify(&reference),
        Err(ArtifactError::NotFound { .. })
    ));
    store
        .remove(&reference)
        .expect("removing a missing file succeeds");
}

#[test]
fn concurrent_puts_share_one_file() {
    let (_dir, store) = open_store();
    let store = Arc::new(store);
    for round in 0..20 {
        let artifact = Arc::new(table(f64::from(round)));
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|writer| {
                let (store, artifact, barrier) = (store.clone(), artifact.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Different producers give different bytes for one hash.
                    store.put(&artifact, &format!("writer{writer}"))
                })
            })
            .collect();
        let refs: Vec<ArtifactRef> = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("put"))
            .collect();

        assert_eq!(
            refs[0], refs[1],
            "round {round}: the writers got different files"
        );
        store.verify(&refs[0]).expect("verify");
        assert_eq!(
            store.get(&refs[0]).expect("get").content_hash(),
            artifact.content_hash()
        );
    }
    assert!(
        files_in(&store.root().join("tmp")).is_empty(),
        "tmp/ is not empty"
    );
}

#[test]
fn open_removes_tmp_files_of_dead_processes() {
    let (dir, store) = open_store();
    let tmp = store.root().join("tmp");

    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let dead_pid = child.id();
    child.wait().expect("wait");

    let dead = tmp.join(format!("{dead_pid}-0.tmp"));
    let live = tmp.join(format!("{}-999999.tmp", std::process::id()));
    let unknown = tmp.join("notes.txt");
    for path in [&dead, &live, &unknown] {
        std::fs::write(path, b"partial").expect("write");
    }

    LocalStore::open(&dir.path().join(".flowrun")).expect("reopen");
    assert!(!dead.exists(), "the file of a dead process was kept");
    assert!(live.exists(), "the file of a live process was deleted");
    assert!(unknown.exists(), "a file of unknown origin was deleted");
}

#[test]
fn entry_round_trip() {
    let (_dir, store) = open_store();
    let reference = store.put(&model(), "p").expect("put");
    let original = entry(BTreeMap::from([("model".to_string(), reference)]));

    store.put_entry("ab12cd", &original).expect("put entry");
    let back = store
        .get_entry("ab12cd")
        .expect("get entry")
        .expect("present");
    assert_eq!(back.outputs, original.outputs);
    assert!(back.metrics[0].1.is_nan());
    assert_eq!(back.metrics[1], ("r2".to_string(), 0.75));
    assert_eq!(back.tags, original.tags);
    assert_eq!(back.run_id, "run-7");
    assert!(store.root().join("cache/ab/ab12cd.json").is_file());

    store.remove_entry("ab12cd").expect("remove entry");
    assert!(store.get_entry("ab12cd").expect("get entry").is_none());
    store
        .remove_entry("ab12cd")
        .expect("removing a missing entry succeeds");
}

#[test]
fn missing_entry_is_none() {
    let (_dir, store) = open_store();
    assert!(store.get_entry("ffee00").expect("get entry").is_none());
}

#[test]
fn malformed_entry_is_absent_and_deleted() {
    let (_dir, store) = open_store();
    let path = store.root().join("cache/ab/ab99.json");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");

    for content in [
        &b"{\"format_version\": 1, \"step\""[..],
        b"",
        b"[1, 2]",
        b"\xff\xfe",
    ] {
        std::fs::write(&path, content).expect("write");
        assert!(store.get_entry("ab99").expect("get entry").is_none());
        assert!(!path.exists(), "malformed entry {content:?} was kept");
    }
}

#[test]
fn entry_of_other_version_is_absent() {
    let (_dir, store) = open_store();
    let mut old = entry(BTreeMap::new());
    old.format_version = 0;
    store.put_entry("0000aa", &old).expect("put entry");
    assert!(store.get_entry("0000aa").expect("get entry").is_none());
    assert!(
        !store.root().join("cache/00/0000aa.json").exists(),
        "old entry was kept"
    );

    let mut newer = entry(BTreeMap::new());
    newer.format_version = CACHE_ENTRY_FORMAT_VERSION + 1;
    store.put_entry("1111aa", &newer).expect("put entry");
    assert!(store.get_entry("1111aa").expect("get entry").is_none());
    assert!(
        store.root().join("cache/11/1111aa.json").exists(),
        "newer entry was deleted"
    );
}

#[test]
fn invalid_keys_are_rejected() {
    let (_dir, store) = open_store();
    for key in ["", "a", "../etc", "a/b", "a.b", "ключ", &"k".repeat(129)] {
        assert!(
            matches!(store.get_entry(key), Err(ArtifactError::InvalidKey { .. })),
            "key {key:?} was accepted"
        );
        assert!(matches!(
            store.try_lock_key(key),
            Err(ArtifactError::InvalidKey { .. })
        ));
    }
}

#[test]
fn try_lock_fails_while_held() {
    let (dir, store) = open_store();
    // A second handle on the same folder, as another process would open it.
    let other = LocalStore::open(&dir.path().join(".flowrun")).expect("open");

    let held = store.try_lock_key("k1").expect("lock").expect("free");
    assert_eq!(held.key(), "k1");
    assert!(other.try_lock_key("k1").expect("try lock").is_none());
    assert!(store.try_lock_key("k1").expect("try lock").is_none());
    assert!(
        other.try_lock_key("k2").expect("try lock").is_some(),
        "another key is blocked"
    );

    drop(held);
    assert!(other.try_lock_key("k1").expect("try lock").is_some());
}

#[test]
fn lock_key_waits_for_release() {
    let (_dir, store) = open_store();
    let store = Arc::new(store);
    let released = Arc::new(AtomicBool::new(false));
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();

    let holder = {
        let (store, released) = (store.clone(), released.clone());
        std::thread::spawn(move || {
            let lock = store.lock_key("shared").expect("lock");
            locked_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(200));
            released.store(true, Ordering::SeqCst);
            drop(lock);
        })
    };

    locked_rx.recv().expect("holder locked");
    let _lock = store.lock_key("shared").expect("lock");
    assert!(
        released.load(Ordering::SeqCst),
        "the lock was taken while held"
    );
    holder.join().expect("holder");
}

/// Environment variable that turns [`key_lock_child_process`] into a lock
/// holder.
const LOCK_CHILD_ROOT: &str = "FLOWRUN_TEST_LOCK_CHILD_ROOT";

#[test]
#[ignore = "helper: run as a child process by key_lock_spans_processes"]
fn key_lock_child_process() {
    let Ok(root) = std::env::var(LOCK_CHILD_ROOT) else {
        return;
    };
    let store = LocalStore::open(Path::new(&root)).expect("open");
    let _lock = store.lock_key("crossproc").expect("lock");
    println!("locked");
    // The parent kills this process; the sleep only bounds a stray child.
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn key_lock_spans_processes() {
    let (_dir, store) = open_store();
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "store::tests::key_lock_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env(LOCK_CHILD_ROOT, store.root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");

    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let locked = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "locked");
    assert!(locked, "the child process did not take the lock");
    assert!(
        store.try_lock_key("crossproc").expect("try lock").is_none(),
        "the lock of another process was ignored"
    );

    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(
        store.try_lock_key("crossproc").expect("try lock").is_some(),
        "the lock outlived its process"
    );
}

#[test]
fn verify_all_reports_damage() {
    let (_dir, store) = open_store();
    let refs: Vec<ArtifactRef> = samples()
        .iter()
        .map(|a| store.put(a, "p").expect("put"))
        .collect();
    store
        .put_entry(
            "aa01",
            &entry(BTreeMap::from([("out".to_string(), refs[0].clone())])),
        )
        .expect("put entry");
    store
        .put_entry(
            "bb02",
            &entry(BTreeMap::from([("out".to_string(), refs[1].clone())])),
        )
        .expect("put entry");

    let clean = store.verify_all().expect("verify all");
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.artifacts_checked, 3);
    assert_eq!(clean.entries_checked, 2);

    // A cut-off table fails to decode; a flipped byte could land in padding
    // and leave the value intact.
    let table_path = store.path_of(&refs[0]);
    let bytes = std::fs::read(&table_path).expect("read");
    std::fs::write(&table_path, &bytes[..bytes.len() / 2]).expect("write");
    store.remove(&refs[1]).expect("remove");
    std::fs::write(store.root().join("cache/aa/aa99.json"), b"{").expect("write");
    std::fs::write(store.root().join("artifacts/stray.bin"), b"x").expect("write");

    let report = store.verify_all().expect("verify all");
    let bad_artifacts: Vec<_> = report
        .corrupt_artifacts
        .iter()
        .map(|p| p.path.clone())
        .collect();
    assert_eq!(
        bad_artifacts,
        vec![
            store.path_of(&refs[0]),
            store.root().join("artifacts/stray.bin")
        ]
    );
    let bad_entries: Vec<_> = report
        .corrupt_entries
        .iter()
        .map(|p| p.path.clone())
        .collect();
    assert_eq!(
        bad_entries,
        vec![
            store.root().join("cache/aa/aa01.json"),
            store.root().join("cache/aa/aa99.json"),
            store.root().join("cache/bb/bb02.json"),
        ]
    );
}

#[test]
fn store_is_object_safe() {
    let (_dir, store) = open_store();
    let store: Box<dyn ArtifactStore> = Box::new(store);
    let reference = store.put(&model(), "p").expect("put");
    assert!(store.exists(&reference));
}
