//! Tables as Arrow IPC files (Feather v2).
//!
//! Writing uses `arrow-ipc`'s `FileWriter` with one record batch. Every
//! column is nullable: a NaN float becomes an Arrow null, and a `None` of the
//! other types becomes a null, so pandas and polars see a missing value in
//! both cases. String columns are Arrow `Utf8`, or `LargeUtf8` when their
//! bytes exceed the 2 GiB that 32-bit offsets address. The content hash,
//! producer and format version are the schema's custom metadata.
//!
//! Reading does not go through `arrow-ipc`'s `FileReader`, because it panics
//! on some damaged inputs (a negative block length in the footer, a buffer
//! that points past the message body, an offsets buffer whose length is not
//! a multiple of 4). This module checks the footer, each
//! block's bounds and each message's buffer bounds itself, then hands the
//! checked blocks to `FileDecoder`, which builds and validates the arrays.
//! Only the four column types flowrun writes are accepted.

use super::{Metadata, parse_metadata};
use crate::{ArtifactError, ArtifactKind, Column, ColumnData, ContentHash, Table};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, RecordBatch,
    RecordBatchOptions, StringArray,
};
use arrow_buffer::{Buffer, NullBuffer, ScalarBuffer};
use arrow_ipc::reader::FileDecoder;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Fields, Schema};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Schema metadata key of the content hash.
pub(crate) const CONTENT_HASH_KEY: &str = "flowrun.content_hash";
/// Schema metadata key of the producer.
pub(crate) const PRODUCER_KEY: &str = "flowrun.producer";
/// Schema metadata key of the format version.
pub(crate) const FORMAT_VERSION_KEY: &str = "flowrun.format_version";

/// The bytes an Arrow IPC file starts and ends with.
const ARROW_MAGIC: &[u8; 6] = b"ARROW1";

/// The end of an Arrow file: a 4-byte footer length, then the magic.
const TRAILER_LEN: usize = 4 + ARROW_MAGIC.len();

/// The start of an Arrow file: the magic padded to 8 bytes.
const LEADER_LEN: usize = 8;

/// The marker that precedes a message's metadata length since Arrow 0.15.
const CONTINUATION_MARKER: [u8; 4] = [0xff; 4];

pub(super) fn encode(
    table: &Table,
    hash: &ContentHash,
    producer: &str,
) -> Result<Vec<u8>, ArtifactError> {
    let encode_error = |error: arrow_schema::ArrowError| ArtifactError::Encode {
        kind: ArtifactKind::Table,
        reason: error.to_string(),
    };

    let mut fields = Vec::with_capacity(table.columns().len());
    let mut arrays = Vec::with_capacity(table.columns().len());
    for column in table.columns() {
        let array = to_arrow(&column.data);
        fields.push(Field::new(&column.name, array.data_type().clone(), true));
        arrays.push(array);
    }

    let metadata = HashMap::from([
        (CONTENT_HASH_KEY.to_string(), hash.to_string()),
        (PRODUCER_KEY.to_string(), producer.to_string()),
        (
            FORMAT_VERSION_KEY.to_string(),
            super::FORMAT_VERSION.to_string(),
        ),
    ]);
    let schema = Arc::new(Schema::new_with_metadata(fields, metadata));

    // The explicit row count lets a table without columns form a batch.
    let options = RecordBatchOptions::new().with_row_count(Some(table.num_rows()));
    let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
        .map_err(encode_error)?;

    let mut writer = FileWriter::try_new(Vec::new(), &schema).map_err(encode_error)?;
    writer.write(&batch).map_err(encode_error)?;
    writer.finish().map_err(encode_error)?;
    writer.into_inner().map_err(encode_error)
}

fn to_arrow(data: &ColumnData) -> ArrayRef {
    match data {
        ColumnData::Float64(values) => {
            let nulls = values
                .iter()
                .any(|v| v.is_nan())
                .then(|| NullBuffer::from_iter(values.iter().map(|v| !v.is_nan())));
            Arc::new(Float64Array::new(ScalarBuffer::from(values.clone()), nulls))
        }
        ColumnData::Int64(values) => Arc::new(Int64Array::from(values.clone())),
        ColumnData::Utf8(values) => {
            let bytes: usize = values.iter().flatten().map(String::len).sum();
            let strings = values.iter().map(Option::as_deref);
            // NOTE: the `LargeUtf8` branch needs over 2 GiB of text in one
            // column, so no test runs it.
            if bytes <= i32::MAX as usize {
                Arc::new(StringArray::from_iter(strings))
            } else {
                Arc::new(LargeStringArray::from_iter(strings))
            }
        }
        ColumnData::Bool(values) => Arc::new(BooleanArray::from(values.clone())),
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<(Table, Metadata), String> {
    let footer = arrow_ipc::root_as_footer(footer_bytes(bytes)?)
        .map_err(|e| format!("its Arrow footer is invalid: {e}"))?;
    let fb_schema = footer.schema().ok_or("its Arrow footer has no schema")?;
    let schema = arrow_ipc::convert::try_fb_to_schema(fb_schema)
        .map_err(|e| format!("its Arrow schema is invalid: {e}"))?;

    let stored = schema.metadata();
    let metadata = parse_metadata(
        stored.get(CONTENT_HASH_KEY).map(String::as_str),
        stored.get(PRODUCER_KEY).map(String::as_str),
        stored.get(FORMAT_VERSION_KEY).map(String::as_str),
    )?;

    let mut columns = schema
        .fields()
        .iter()
        .map(|field| empty_column(field))
        .collect::<Result<Vec<_>, _>>()?;

    if footer.dictionaries().is_some_and(|d| !d.is_empty()) {
        return Err("it has dictionary batches, which flowrun never writes".to_string());
    }
    let blocks = footer
        .recordBatches()
        .ok_or("its Arrow footer lists no record batches")?;

    let whole = Buffer::from_vec(bytes.to_vec());
    let decoder = FileDecoder::new(Arc::new(schema.clone()), footer.version());
    for (index, block) in blocks.iter().enumerate() {
        let range = block_range(block, bytes.len())
            .map_err(|reason| format!("record batch {index}: {reason}"))?;
        check_message(
            &bytes[range.clone()],
            block.metaDataLength() as usize,
            schema.fields(),
        )
        .map_err(|reason| format!("record batch {index}: {reason}"))?;

        let block_buffer = whole.slice_with_length(range.start, range.len());
        let batch = decoder
            .read_record_batch(block, &block_buffer)
            .map_err(|e| format!("record batch {index} is invalid: {e}"))?
            .ok_or_else(|| format!("record batch {index} is empty"))?;
        for (column, array) in columns.iter_mut().zip(batch.columns()) {
            append(column, array.as_ref())?;
        }
    }

    let columns = schema
        .fields()
        .iter()
        .zip(columns)
        .map(|(field, data)| Column::new(field.name(), data))
        .collect();
    let table = Table::new(columns).map_err(|e| e.to_string())?;
    Ok((table, metadata))
}

/// Returns the footer's flatbuffer bytes after checking the file's magic
/// bytes and footer length.
fn footer_bytes(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < LEADER_LEN + TRAILER_LEN {
        if !bytes.starts_with(ARROW_MAGIC) {
            return Err(format!(
                "it is not an Arrow IPC file (it starts with {})",
                super::describe_start(bytes)
            ));
        }
        return Err(format!(
            "it is {} bytes long, too short for an Arrow IPC file; it is truncated",
            bytes.len()
        ));
    }
    if !bytes.starts_with(ARROW_MAGIC) {
        return Err(format!(
            "it is not an Arrow IPC file (it starts with {})",
            super::describe_start(bytes)
        ));
    }

    let trailer = &bytes[bytes.len() - TRAILER_LEN..];
    if &trailer[4..] != ARROW_MAGIC {
        return Err("it does not end with the Arrow file footer; it is truncated".to_string());
    }
    let footer_len = i32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let room = bytes.len() - TRAILER_LEN - LEADER_LEN;
    let footer_len = usize::try_from(footer_len)
        .ok()
        .filter(|len| *len <= room)
        .ok_or_else(|| format!("its footer length {footer_len} does not fit in the file"))?;

    let end = bytes.len() - TRAILER_LEN;
    Ok(&bytes[end - footer_len..end])
}

/// Returns the byte range of a record batch block after checking that its
/// offset and lengths are non-negative and inside the file.
fn block_range(block: &arrow_ipc::Block, file_len: usize) -> Result<Range<usize>, String> {
    let offset = usize::try_from(block.offset()).ok();
    let meta_len = usize::try_from(block.metaDataLength()).ok();
    let body_len = usize::try_from(block.bodyLength()).ok();
    let (Some(offset), Some(meta_len), Some(body_len)) = (offset, meta_len, body_len) else {
        return Err("its offset or lengths are negative".to_string());
    };
    if meta_len < 8 {
        return Err(format!("its metadata length {meta_len} is too short"));
    }

    let end = offset
        .checked_add(meta_len)
        .and_then(|end| end.checked_add(body_len))
        .filter(|end| *end <= file_len)
        .ok_or_else(|| {
            format!(
                "it spans bytes {offset} + {meta_len} + {body_len}, past the end of the \
                 {file_len}-byte file; the file is truncated"
            )
        })?;
    Ok(offset..end)
}

/// Checks a record batch message before `FileDecoder` reads it: it must be a
/// record batch, uncompressed, with one node per column and the buffers that
/// the columns' types need, each inside the message body.
fn check_message(block: &[u8], meta_len: usize, fields: &Fields) -> Result<(), String> {
    let flatbuffer = if block[..4] == CONTINUATION_MARKER {
        &block[8..]
    } else {
        &block[4..]
    };
    let message = arrow_ipc::root_as_message(flatbuffer)
        .map_err(|e| format!("its message is invalid: {e}"))?;
    let batch = message
        .header_as_record_batch()
        .ok_or("its message is not a record batch")?;

    if batch.compression().is_some() {
        return Err(
            "it is compressed, and flowrun only reads the uncompressed files it writes".to_string(),
        );
    }

    let rows = batch.length();
    if rows < 0 {
        return Err(format!("its row count {rows} is negative"));
    }
    let nodes = batch.nodes().ok_or("it lists no column nodes")?;
    if nodes.len() != fields.len() {
        return Err(format!(
            "it has {} column nodes for {} columns",
            nodes.len(),
            fields.len()
        ));
    }
    for node in nodes.iter() {
        if node.length() != rows || node.null_count() < 0 || node.null_count() > rows {
            return Err(format!(
                "a column node has length {} and null count {} in a batch of {rows} rows",
                node.length(),
                node.null_count()
            ));
        }
    }

    let buffers = batch.buffers().ok_or("it lists no buffers")?;
    let body_len = (block.len() - meta_len) as u64;
    check_buffers(buffers.iter(), fields, body_len)
}

/// Checks that each buffer lies inside the body and that a buffer of fixed
/// width elements contains a whole number of them. Arrow 60's array validation
/// panics, rather than failing, on an offsets buffer that is long enough but
/// whose length is not a multiple of 4.
fn check_buffers<'a>(
    buffers: impl ExactSizeIterator<Item = &'a arrow_ipc::Buffer>,
    fields: &Fields,
    body_len: u64,
) -> Result<(), String> {
    // The element width of each buffer, in the order the IPC format lists
    // them. `None` marks a bitmap or a byte buffer, which any length fits.
    let widths: Vec<Option<u64>> = fields
        .iter()
        .flat_map(|field| match field.data_type() {
            DataType::Float64 | DataType::Int64 => vec![None, Some(8)],
            DataType::Utf8 => vec![None, Some(4), None],
            DataType::LargeUtf8 => vec![None, Some(8), None],
            _ => vec![None, None],
        })
        .collect();
    if buffers.len() != widths.len() {
        return Err(format!(
            "it lists {} buffers where its columns need {}",
            buffers.len(),
            widths.len()
        ));
    }

    for (buffer, width) in buffers.zip(widths) {
        let offset = u64::try_from(buffer.offset()).ok();
        let length = u64::try_from(buffer.length()).ok();
        let in_body = offset
            .zip(length)
            .and_then(|(offset, length)| offset.checked_add(length))
            .is_some_and(|end| end <= body_len);
        if !in_body {
            return Err(format!(
                "a buffer at offset {} of length {} lies outside the {body_len}-byte body",
                buffer.offset(),
                buffer.length()
            ));
        }
        if let (Some(width), Some(length)) = (width, length)
            && length % width != 0
        {
            return Err(format!(
                "a buffer of {width}-byte values has {length} bytes, not a multiple of {width}"
            ));
        }
    }
    Ok(())
}

/// Starts an empty column for a field, or rejects a type flowrun does not
/// write.
fn empty_column(field: &Field) -> Result<ColumnData, String> {
    match field.data_type() {
        DataType::Float64 => Ok(ColumnData::Float64(Vec::new())),
        DataType::Int64 => Ok(ColumnData::Int64(Vec::new())),
        DataType::Utf8 | DataType::LargeUtf8 => Ok(ColumnData::Utf8(Vec::new())),
        DataType::Boolean => Ok(ColumnData::Bool(Vec::new())),
        other => Err(format!(
            "column `{}` has Arrow type {other}; flowrun reads float64, int64, utf8 and bool",
            field.name()
        )),
    }
}

/// Appends the values of one batch's array to a column.
fn append(column: &mut ColumnData, array: &dyn Array) -> Result<(), String> {
    let mismatch = || {
        format!(
            "a record batch has a {} array where the schema says otherwise",
            array.data_type()
        )
    };
    match column {
        ColumnData::Float64(values) => {
            let array = array
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(mismatch)?;
            values.extend(array.iter().map(|v| v.unwrap_or(f64::NAN)));
        }
        ColumnData::Int64(values) => {
            let array = array.as_primitive_opt::<Int64Type>().ok_or_else(mismatch)?;
            values.extend(array.iter());
        }
        ColumnData::Utf8(values) => {
            if let Some(array) = array.as_string_opt::<i32>() {
                values.extend(array.iter().map(|v| v.map(str::to_string)));
            } else {
                let array = array.as_string_opt::<i64>().ok_or_else(mismatch)?;
                values.extend(array.iter().map(|v| v.map(str::to_string)));
            }
        }
        ColumnData::Bool(values) => {
            let array = array.as_boolean_opt().ok_or_else(mismatch)?;
            values.extend(array.iter());
        }
    }
    Ok(())
}
