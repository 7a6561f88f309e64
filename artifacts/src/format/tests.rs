use super::*;
use crate::{Column, ColumnData, FeatureKind, FeatureSpec, Model, Table};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::PathBuf;

const PRODUCER: &str = "train_model@3f2a9c1b";

fn path() -> PathBuf {
    PathBuf::from("artifacts/ab/test")
}

fn sample_table() -> Table {
    Table::new(vec![
        Column::new(
            "x",
            ColumnData::Float64(vec![1.5, f64::NAN, -0.0, f64::INFINITY]),
        ),
        Column::new(
            "n",
            ColumnData::Int64(vec![Some(7), None, Some(i64::MIN), Some(i64::MAX)]),
        ),
        Column::new(
            "city",
            ColumnData::Utf8(vec![
                Some("Oslo".into()),
                None,
                Some(String::new()),
                Some("Zürich ✓".into()),
            ]),
        ),
        Column::new(
            "ok",
            ColumnData::Bool(vec![Some(true), Some(false), None, Some(true)]),
        ),
    ])
    .expect("valid table")
}

fn sample_model() -> Model {
    Model {
        flavor: "gradient_boosting".into(),
        target: "price".into(),
        features: vec![
            FeatureSpec {
                name: "area".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureSpec {
                name: "city".into(),
                kind: FeatureKind::Categorical {
                    levels: vec!["Oslo".into(), "line\nbreak".into()],
                },
            },
        ],
        payload: b"\n\x00binary\npayload\xff".to_vec(),
        info: json!({"max_depth": 6, "note": "two\nlines"}),
    }
}

fn samples() -> Vec<Artifact> {
    vec![
        Artifact::Table(sample_table()),
        Artifact::Model(sample_model()),
        Artifact::Json(json!({"rmse": 0.25, "folds": [1, 2, 3], "name": "α"})),
    ]
}

fn encode_sample(artifact: &Artifact) -> Vec<u8> {
    encode(artifact, &artifact.content_hash(), PRODUCER).expect("encode")
}

/// Asserts that a decoded artifact equals the original, treating NaN as
/// equal to NaN by comparing content hashes as well.
fn assert_round_trip(artifact: &Artifact) {
    let bytes = encode_sample(artifact);
    let (decoded, metadata) = decode(&bytes, artifact.kind(), &path()).expect("decode");

    assert_eq!(decoded.content_hash(), artifact.content_hash());
    assert_eq!(metadata.content_hash, artifact.content_hash());
    assert_eq!(metadata.producer, PRODUCER);
    assert_eq!(metadata.format_version, FORMAT_VERSION);
}

#[test]
fn table_round_trip() {
    let table = sample_table();
    let artifact = Artifact::Table(table.clone());
    assert_round_trip(&artifact);

    let (decoded, _) =
        decode(&encode_sample(&artifact), ArtifactKind::Table, &path()).expect("decode");
    let Artifact::Table(decoded) = decoded else {
        panic!("decoded a {} instead of a table", decoded.kind())
    };
    assert_eq!(decoded.column_names(), table.column_names());
    assert_eq!(decoded.columns()[1..], table.columns()[1..]);

    let x = decoded.f64_column("x").expect("x");
    assert_eq!(x[0], 1.5);
    assert!(x[1].is_nan());
    assert_eq!(x[2], 0.0);
    assert!(x[2].is_sign_negative());
    assert_eq!(x[3], f64::INFINITY);
}

#[test]
fn table_nan_is_arrow_null() {
    let bytes = encode_sample(&Artifact::Table(sample_table()));
    let reader =
        arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None).expect("reader");

    let schema = reader.schema();
    assert_eq!(schema.metadata()["flowrun.producer"], PRODUCER);
    assert_eq!(schema.metadata()["flowrun.format_version"], "1");
    assert_eq!(
        schema.metadata()["flowrun.content_hash"],
        Artifact::Table(sample_table()).content_hash().as_str()
    );

    let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("batches");
    assert_eq!(batches.len(), 1);
    let nulls: Vec<usize> = batches[0]
        .columns()
        .iter()
        .map(|c| c.null_count())
        .collect();
    assert_eq!(nulls, vec![1, 1, 1, 1]);
    assert!(batches[0].column(0).is_null(1));
    assert!(batches[0].column(0).is_valid(2));
}

#[test]
fn table_empty_round_trips() {
    let no_rows = Table::new(vec![
        Column::new("x", ColumnData::Float64(vec![])),
        Column::new("s", ColumnData::Utf8(vec![])),
    ])
    .expect("valid table");
    let no_columns = Table::new(vec![]).expect("valid table");

    for table in [no_rows, no_columns] {
        let artifact = Artifact::Table(table.clone());
        assert_round_trip(&artifact);
        let (decoded, _) =
            decode(&encode_sample(&artifact), ArtifactKind::Table, &path()).expect("decode");
        assert_eq!(decoded, artifact);
    }
}

#[test]
fn table_with_foreign_type_is_rejected() {
    use arrow_array::{Int32Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    let metadata = std::collections::HashMap::from([
        ("flowrun.content_hash".to_string(), "a".repeat(64)),
        ("flowrun.producer".to_string(), "elsewhere".to_string()),
        ("flowrun.format_version".to_string(), "1".to_string()),
    ]);
    let schema = Arc::new(Schema::new_with_metadata(
        vec![Field::new("small", DataType::Int32, true)],
        metadata,
    ));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1, 2]))])
        .expect("batch");
    let mut writer = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema).expect("writer");
    writer.write(&batch).expect("write");
    writer.finish().expect("finish");
    let bytes = writer.into_inner().expect("bytes");

    let error =
        decode(&bytes, ArtifactKind::Table, &path()).expect_err("Int32 is not a flowrun type");
    assert!(
        error
            .to_string()
            .contains("column `small` has Arrow type Int32"),
        "{error}"
    );
}

#[test]
fn table_without_metadata_is_rejected() {
    use arrow_array::{Float64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Float64Array::from(vec![1.0]))],
    )
    .expect("batch");
    let mut writer = arrow_ipc::writer::FileWriter::try_new(Vec::new(), &schema).expect("writer");
    writer.write(&batch).expect("write");
    writer.finish().expect("finish");
    let bytes = writer.into_inner().expect("bytes");

    let error = decode(&bytes, ArtifactKind::Table, &path()).expect_err("metadata is required");
    assert!(
        error.to_string().contains("content hash is missing"),
        "{error}"
    );
}

#[test]
fn offsets_buffer_of_odd_length_is_rejected() {
    // Arrow's own validation panics on an offsets buffer that is long enough
    // but whose length is not a multiple of 4; decode must return an error.
    let table = Table::new(vec![Column::new(
        "s",
        ColumnData::Utf8(vec![Some("ab".into()), None, Some("c".into())]),
    )])
    .expect("valid table");
    let mut bytes = encode_sample(&Artifact::Table(table));

    // Find the offsets buffer, the column's second buffer, in the message of
    // the first record batch, and locate its (offset, length) pair.
    let footer_len = i32::from_le_bytes(
        bytes[bytes.len() - 10..bytes.len() - 6]
            .try_into()
            .expect("4 bytes"),
    );
    let footer_end = bytes.len() - 10;
    let footer = arrow_ipc::root_as_footer(&bytes[footer_end - footer_len as usize..footer_end])
        .expect("footer");
    let block = footer.recordBatches().expect("blocks").get(0);
    let meta_start = block.offset() as usize;
    let meta = &bytes[meta_start..meta_start + block.metaDataLength() as usize];
    let message = arrow_ipc::root_as_message(&meta[8..]).expect("message");
    let offsets = message
        .header_as_record_batch()
        .expect("record batch")
        .buffers()
        .expect("buffers")
        .get(1);
    assert_eq!(offsets.length(), 16, "three rows need four 4-byte offsets");

    let pattern = [
        offsets.offset().to_le_bytes(),
        offsets.length().to_le_bytes(),
    ]
    .concat();
    let found: Vec<usize> = meta
        .windows(16)
        .enumerate()
        .filter(|(_, w)| *w == pattern)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the buffer entry is not unique in the message"
    );
    let at = meta_start + found[0] + 8;
    bytes[at..at + 8].copy_from_slice(&17_i64.to_le_bytes());

    let error = decode(&bytes, ArtifactKind::Table, &path()).expect_err("odd offsets length");
    assert!(error.to_string().contains("not a multiple of 4"), "{error}");
}

#[test]
fn model_round_trip() {
    let model = sample_model();
    let artifact = Artifact::Model(model.clone());
    assert_round_trip(&artifact);

    let bytes = encode_sample(&artifact);
    assert!(bytes.starts_with(b"flowrun-model 1\n{"));
    let (decoded, _) = decode(&bytes, ArtifactKind::Model, &path()).expect("decode");
    assert_eq!(decoded, artifact);
}

#[test]
fn model_with_empty_payload_round_trips() {
    let mut model = sample_model();
    model.payload.clear();
    let artifact = Artifact::Model(model);
    let (decoded, _) =
        decode(&encode_sample(&artifact), ArtifactKind::Model, &path()).expect("decode");
    assert_eq!(decoded, artifact);
}

#[test]
fn model_with_appended_bytes_is_rejected() {
    let mut bytes = encode_sample(&Artifact::Model(sample_model()));
    bytes.push(0);
    let error = decode(&bytes, ArtifactKind::Model, &path()).expect_err("trailing byte");
    assert!(error.to_string().contains("payload"), "{error}");
}

#[test]
fn json_round_trip() {
    let artifact =
        Artifact::Json(json!({"rmse": 0.1, "per_fold": [0.1, 1e-300, -2.5e300], "ok": true}));
    assert_round_trip(&artifact);

    let bytes = encode_sample(&artifact);
    let (decoded, _) = decode(&bytes, ArtifactKind::Json, &path()).expect("decode");
    assert_eq!(decoded, artifact);

    let file: serde_json::Value = serde_json::from_slice(&bytes).expect("plain JSON");
    assert_eq!(file["flowrun"]["producer"], PRODUCER);
    assert_eq!(file["flowrun"]["format_version"], 1);
    assert_eq!(file["value"]["ok"], true);
}

#[test]
fn json_null_value_round_trips() {
    let artifact = Artifact::Json(serde_json::Value::Null);
    let (decoded, _) =
        decode(&encode_sample(&artifact), ArtifactKind::Json, &path()).expect("decode");
    assert_eq!(decoded, artifact);
}

#[test]
fn json_without_value_is_rejected() {
    let bytes = format!(
        r#"{{"flowrun": {{"content_hash": "{}", "producer": "p", "format_version": 1}}}}"#,
        "b".repeat(64)
    );
    let error = decode(bytes.as_bytes(), ArtifactKind::Json, &path()).expect_err("no value");
    assert!(error.to_string().contains("value"), "{error}");
}

#[test]
fn json_with_invalid_hash_is_rejected() {
    let bytes = br#"{"flowrun": {"content_hash": "xyz", "producer": "p", "format_version": 1}, "value": 1}"#;
    let error = decode(bytes, ArtifactKind::Json, &path()).expect_err("bad hash");
    assert!(
        error.to_string().contains("invalid content hash `xyz`"),
        "{error}"
    );
}

#[test]
fn newer_format_version_is_rejected() {
    let json = format!(
        r#"{{"flowrun": {{"content_hash": "{}", "producer": "p", "format_version": 2}}, "value": 1}}"#,
        "c".repeat(64)
    );
    let error = decode(json.as_bytes(), ArtifactKind::Json, &path()).expect_err("version 2");
    assert!(error.to_string().contains("format version 2"), "{error}");

    let mut model = encode_sample(&Artifact::Model(sample_model()));
    model[b"flowrun-model ".len()] = b'2';
    let error = decode(&model, ArtifactKind::Model, &path()).expect_err("version 2");
    assert!(error.to_string().contains("format version 2"), "{error}");
}

#[test]
fn decode_names_the_path() {
    let error =
        decode(b"garbage", ArtifactKind::Table, Path::new("/store/x.arrow")).expect_err("garbage");
    assert!(
        matches!(&error, ArtifactError::Decode { path, .. } if path == Path::new("/store/x.arrow"))
    );
    assert!(
        error.to_string().contains("not an Arrow IPC file"),
        "{error}"
    );
}

#[test]
fn wrong_kind_is_rejected() {
    for artifact in samples() {
        let bytes = encode_sample(&artifact);
        for kind in [ArtifactKind::Table, ArtifactKind::Model, ArtifactKind::Json] {
            if kind == artifact.kind() {
                continue;
            }
            let result = decode(&bytes, kind, &path());
            assert!(
                matches!(result, Err(ArtifactError::Decode { .. })),
                "a {} file decoded as a {kind}: {result:?}",
                artifact.kind()
            );
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    for artifact in samples() {
        let bytes = encode_sample(&artifact);
        for len in 0..bytes.len() {
            let result = decode(&bytes[..len], artifact.kind(), &path());
            assert!(
                result.is_err(),
                "a {} file cut to {len} of {} bytes decoded",
                artifact.kind(),
                bytes.len()
            );
        }
    }
}

#[test]
fn damaged_bytes_never_panic() {
    // Each case overwrites a few random bytes of a valid file. Some damage
    // still decodes (a changed float is a valid float); the point is that
    // decoding returns instead of panicking.
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for artifact in samples() {
        let bytes = encode_sample(&artifact);
        for _ in 0..3000 {
            let mut damaged = bytes.clone();
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(0..damaged.len());
                damaged[at] = match rng.random_range(0..4) {
                    0 => 0xff,
                    1 => 0x00,
                    2 => damaged[at] ^ (1 << rng.random_range(0..8)),
                    _ => rng.random(),
                };
            }
            let _ = decode(&damaged, artifact.kind(), &path());
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(7);
    for len in [0, 1, 5, 17, 64, 300, 4096] {
        for _ in 0..200 {
            let mut garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Give the garbage valid magic bytes now and then, so that the
            // checks after the magic run too.
            if len >= 16 && rng.random_bool(0.5) {
                garbage[..6].copy_from_slice(b"ARROW1");
                let tail = garbage.len() - 6;
                garbage[tail..].copy_from_slice(b"ARROW1");
            }
            for kind in [ArtifactKind::Table, ArtifactKind::Model, ArtifactKind::Json] {
                let _ = decode(&garbage, kind, &path());
            }
        }
    }
}

#[test]
fn extensions_match_kinds() {
    for kind in [ArtifactKind::Table, ArtifactKind::Model, ArtifactKind::Json] {
        assert_eq!(kind_for_extension(extension(kind)), Some(kind));
    }
    assert_eq!(kind_for_extension("csv"), None);
}
