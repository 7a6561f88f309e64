//! Reads one Kaggle CSV file into typed, compact columns.
//!
//! The `csv` crate does the CSV parsing (quoted line breaks, doubled quotes,
//! empty fields, a UTF-8 byte-order mark), `flate2` the gzip decoding and
//! `encoding_rs` the Windows-1252 decoding. Only the columns listed in the
//! file's [`TableSpec`] are kept, and numbers and timestamps are parsed
//! straight from the record's bytes, so no row is ever held as strings.
//!
//! Bad values fail the read: a number or timestamp that does not parse is
//! an error naming the file, the line and the column, never a silent
//! missing value or a dropped row. An empty field is a missing value.
//!
//! With the default UTF-8 encoding, every field of every record is checked,
//! including the columns not kept, because one invalid byte anywhere means
//! the declared encoding is wrong for the whole file. Windows-1252 (which
//! the WHATWG encoding standard also uses for the `latin-1` label) is
//! ASCII-compatible, so records are split on the raw bytes and only the
//! kept text fields are decoded.
//!
//! This module never joins tables or interprets what a column means.

use super::error::{IngestError, excerpt};
use super::schema::{TableSpec, ValueKind};
use super::timestamp::parse_timestamp;
use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest number of data rows a file may have, because the join
/// numbers rows with `u32` and keeps `u32::MAX` for "no match".
const MAX_ROWS: usize = u32::MAX as usize - 1;

/// The text encoding of the CSV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEncoding {
    Utf8,
    Windows1252,
}

impl TextEncoding {
    /// The values the `encoding` parameter accepts.
    pub(crate) const NAMES: &'static [&'static str] = &["utf-8", "latin-1", "windows-1252"];

    /// Parses the `encoding` parameter. Common spellings (`utf8`,
    /// `iso-8859-1`, `cp1252`) are accepted too.
    pub(crate) fn from_label(label: &str) -> Result<Self, IngestError> {
        match label.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(TextEncoding::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "windows-1252" | "cp1252" => {
                Ok(TextEncoding::Windows1252)
            }
            _ => Err(IngestError::UnsupportedEncoding(label.to_string())),
        }
    }

    /// Decodes one field. Returns `None` only for invalid UTF-8, since every
    /// byte sequence is valid Windows-1252.
    fn decode<'a>(self, bytes: &'a [u8]) -> Option<Cow<'a, str>> {
        match self {
            TextEncoding::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            TextEncoding::Windows1252 => Some(
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0,
            ),
        }
    }
}

/// A text column stored as one string and the end offset of each value,
/// which costs a few bytes per value instead of a heap allocation each.
#[derive(Debug, Default)]
pub(crate) struct TextColumn {
    text: String,
    ends: Vec<usize>,
}

impl TextColumn {
    /// Appends a value. An empty string is a missing value.
    pub(crate) fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len());
    }

    /// Returns the value of a row, or `None` when the field was empty.
    pub(crate) fn get(&self, row: usize) -> Option<&str> {
        let start = if row == 0 { 0 } else { self.ends[row - 1] };
        let value = &self.text[start..self.ends[row]];
        (!value.is_empty()).then_some(value)
    }

    /// Returns the number of values.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}

/// The values of one kept column.
#[derive(Debug)]
pub(crate) enum RawColumn {
    Text(TextColumn),
    /// Numbers and timestamps, with NaN for a missing value.
    Float(Vec<f64>),
}

/// The kept columns of one file, in the order of its [`TableSpec`].
#[derive(Debug)]
pub(crate) struct RawTable {
    pub(crate) spec: &'static TableSpec,
    pub(crate) rows: usize,
    pub(crate) columns: Vec<RawColumn>,
}

impl RawTable {
    /// Returns a kept text column.
    ///
    /// # Panics
    /// Panics when the column is not a kept text column, which is a mistake
    /// in the schema rather than in the data.
    pub(crate) fn text(&self, column: &str) -> &TextColumn {
        match &self.columns[self.spec.position(column)] {
            RawColumn::Text(values) => values,
            RawColumn::Float(_) => panic!("column `{column}` is numeric, not text"),
        }
    }
}

/// Finds a table in `dir` as `<file>.csv` or `<file>.csv.gz`.
pub(crate) fn locate(dir: &Path, file: &str) -> Result<PathBuf, IngestError> {
    let plain = dir.join(format!("{file}.csv"));
    let gzip = dir.join(format!("{file}.csv.gz"));
    match (plain.is_file(), gzip.is_file()) {
        (true, false) => Ok(plain),
        (false, true) => Ok(gzip),
        (true, true) => Err(IngestError::AmbiguousTable { plain, gzip }),
        (false, false) => Err(IngestError::MissingTable {
            dir: dir.to_path_buf(),
            file: file.to_string(),
        }),
    }
}

/// Opens a file, decompressing it when its name ends in `.gz`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read + Send>, IngestError> {
    let file = File::open(path).map_err(|source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let is_gzip = path.extension().is_some_and(|ext| ext == "gz");
    Ok(if is_gzip {
        // A multi-member decoder reads files made by concatenating gzip
        // streams, which `gzip` itself accepts.
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Reads the kept columns of one table from `dir`.
pub(crate) fn read_table(
    dir: &Path,
    spec: &'static TableSpec,
    encoding: TextEncoding,
) -> Result<RawTable, IngestError> {
    let path = locate(dir, spec.file)?;
    let mut reader = csv::ReaderBuilder::new()
        .buffer_capacity(1 << 16)
        .from_reader(open(&path)?);

    let header = read_header(&mut reader, &path, spec, encoding)?;
    let positions = spec
        .columns
        .iter()
        .map(|column| {
            header
                .iter()
                .position(|name| name == column.name)
                .ok_or_else(|| IngestError::MissingColumn {
                    path: path.clone(),
                    column: column.name.to_string(),
                    found: header.join(", "),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut columns: Vec<RawColumn> = spec
        .columns
        .iter()
        .map(|column| match column.kind {
            ValueKind::Text => RawColumn::Text(TextColumn::default()),
            ValueKind::Number | ValueKind::Timestamp => RawColumn::Float(Vec::new()),
        })
        .collect();

    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader
        .read_byte_record(&mut record)
        .map_err(|error| csv_error(&path, error))?
    {
        let start = record
            .position()
            .cloned()
            .unwrap_or_else(csv::Position::new);
        if encoding == TextEncoding::Utf8 {
            check_utf8(&record, &header, &path, &start)?;
        }
        for ((column, kept), &position) in spec.columns.iter().zip(&mut columns).zip(&positions) {
            let field = &record[position];
            let at = FieldAt {
                path: &path,
                start: &start,
                column: column.name,
            };
            match (kept, column.kind) {
                (RawColumn::Text(values), _) => values.push(&at.decode_text(field, encoding)?),
                (RawColumn::Float(values), ValueKind::Timestamp) => {
                    values.push(at.parse_timestamp(field)?)
                }
                (RawColumn::Float(values), _) => values.push(at.parse_number(field)?),
            }
        }
        rows += 1;
        if rows > MAX_ROWS {
            return Err(IngestError::TooManyRows {
                path,
                max: MAX_ROWS as u64,
            });
        }
    }

    // Growth by doubling can leave half a column unused, and the join keeps
    // these columns alive while it builds the output.
    for column in &mut columns {
        match column {
            RawColumn::Text(values) => {
                values.text.shrink_to_fit();
                values.ends.shrink_to_fit();
            }
            RawColumn::Float(values) => values.shrink_to_fit(),
        }
    }
    tracing::debug!(file = %path.display(), rows, "read table");
    Ok(RawTable {
        spec,
        rows,
        columns,
    })
}

/// Reads and decodes the header, failing on an empty file.
fn read_header(
    reader: &mut csv::Reader<Box<dyn Read + Send>>,
    path: &Path,
    spec: &TableSpec,
    encoding: TextEncoding,
) -> Result<Vec<String>, IngestError> {
    let header = reader
        .byte_headers()
        .map_err(|error| csv_error(path, error))?;
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(IngestError::MissingHeader {
            path: path.to_path_buf(),
            expected: spec
                .columns
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let name = encoding
                .decode(name)
                .ok_or_else(|| IngestError::InvalidUtf8 {
                    path: path.to_path_buf(),
                    line: 1,
                    column: format!("#{}", i + 1),
                })?;
            // csv strips a byte-order mark at the start of the stream. This
            // also covers one that arrives split across the first reads.
            Ok(name.trim_start_matches('\u{feff}').to_string())
        })
        .collect()
}

/// Fails on the first field of a record that is not valid UTF-8.
fn check_utf8(
    record: &csv::ByteRecord,
    header: &[String],
    path: &Path,
    start: &csv::Position,
) -> Result<(), IngestError> {
    // Each field is checked on its own: the concatenation of all fields can
    // be valid while a multi-byte sequence is split across two of them.
    match record
        .iter()
        .position(|field| std::str::from_utf8(field).is_err())
    {
        None => Ok(()),
        Some(index) => Err(IngestError::InvalidUtf8 {
            path: path.to_path_buf(),
            line: line_of(path, start),
            column: header
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("#{}", index + 1)),
        }),
    }
}

/// The file, line and column of a field, for parsing it and naming it in
/// errors.
struct FieldAt<'a> {
    path: &'a Path,
    start: &'a csv::Position,
    column: &'static str,
}

impl FieldAt<'_> {
    fn decode_text<'b>(
        &self,
        field: &'b [u8],
        encoding: TextEncoding,
    ) -> Result<Cow<'b, str>, IngestError> {
        encoding
            .decode(field)
            .ok_or_else(|| IngestError::InvalidUtf8 {
                path: self.path.to_path_buf(),
                line: line_of(self.path, self.start),
                column: self.column.to_string(),
            })
    }

    /// Parses a number. An empty field and `NaN` are missing. Infinities
    /// are rejected because no Olist quantity can be infinite.
    fn parse_number(&self, field: &[u8]) -> Result<f64, IngestError> {
        let invalid = |text: &str| IngestError::InvalidNumber {
            path: self.path.to_path_buf(),
            line: line_of(self.path, self.start),
            column: self.column.to_string(),
            value: excerpt(text),
        };
        let text = std::str::from_utf8(field)
            .map_err(|_| invalid(&String::from_utf8_lossy(field)))?
            .trim();
        if text.is_empty() {
            return Ok(f64::NAN);
        }
        match text.parse::<f64>() {
            Ok(value) if !value.is_infinite() => Ok(value),
            _ => Err(invalid(text)),
        }
    }

    fn parse_timestamp(&self, field: &[u8]) -> Result<f64, IngestError> {
        let invalid = |text: &str| IngestError::InvalidTimestamp {
            path: self.path.to_path_buf(),
            line: line_of(self.path, self.start),
            column: self.column.to_string(),
            value: excerpt(text),
        };
        let text = std::str::from_utf8(field)
            .map_err(|_| invalid(&String::from_utf8_lossy(field)))?
            .trim();
        if text.is_empty() {
            return Ok(f64::NAN);
        }
        parse_timestamp(text).ok_or_else(|| invalid(text))
    }
}

/// Returns the line where the record at `start` begins, from 1.
///
/// The `csv` crate's own line count can be one short: after a record that
/// ends in CRLF, the next record's position points at the LF (the reviews
/// file uses CRLF). This reads the file again up to the record and counts
/// line feeds, skipping the line ends and blank lines before the record.
/// It runs only when building an error message, so the hot loop pays
/// nothing. When the file cannot be read again, it falls back to the `csv`
/// count.
fn line_of(path: &Path, start: &csv::Position) -> u64 {
    let count = || -> std::io::Result<u64> {
        let mut reader = std::io::BufReader::new(open(path).map_err(std::io::Error::other)?);
        let mut line_feeds = 0;
        let mut offset = 0u64;
        loop {
            let buffer = std::io::BufRead::fill_buf(&mut reader)?;
            if buffer.is_empty() {
                return Ok(line_feeds + 1);
            }
            for (i, &byte) in buffer.iter().enumerate() {
                let at = offset + i as u64;
                if at >= start.byte() && byte != b'\n' && byte != b'\r' {
                    return Ok(line_feeds + 1);
                }
                line_feeds += u64::from(byte == b'\n');
            }
            offset += buffer.len() as u64;
            let consumed = buffer.len();
            std::io::BufRead::consume(&mut reader, consumed);
        }
    };
    count().unwrap_or(start.line())
}

/// Converts a `csv` error into an error naming the file and line.
fn csv_error(path: &Path, error: csv::Error) -> IngestError {
    let line = error.position().map_or(0, |start| line_of(path, start));
    if let csv::ErrorKind::UnequalLengths {
        expected_len, len, ..
    } = error.kind()
    {
        return IngestError::Csv {
            path: path.to_path_buf(),
            line,
            message: format!(
                "the record has {len} fields but the header has {expected_len}; quote any field that contains a comma"
            ),
        };
    }

    let message = error.to_string();
    match error.into_kind() {
        csv::ErrorKind::Io(source) => IngestError::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => IngestError::Csv {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::schema::ColumnSpec;

    static REVIEWS: TableSpec = TableSpec {
        file: "reviews",
        name: "reviews",
        columns: &[
            ColumnSpec {
                name: "review_id",
                kind: ValueKind::Text,
            },
            ColumnSpec {
                name: "review_score",
                kind: ValueKind::Number,
            },
            ColumnSpec {
                name: "review_comment_message",
                kind: ValueKind::Text,
            },
            ColumnSpec {
                name: "review_creation_date",
                kind: ValueKind::Timestamp,
            },
        ],
    };

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    fn text_values(table: &RawTable, column: &str) -> Vec<Option<String>> {
        let values = table.text(column);
        (0..values.len())
            .map(|row| values.get(row).map(str::to_string))
            .collect()
    }

    fn floats(table: &RawTable, column: &str) -> Vec<f64> {
        match &table.columns[table.spec.position(column)] {
            RawColumn::Float(values) => values.clone(),
            RawColumn::Text(_) => panic!("{column} is text"),
        }
    }

    #[test]
    fn quoted_fields_parse() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "reviews.csv",
            b"review_id,review_score,review_comment_message,review_creation_date\r\n\
              r1,4,\"first line\r\nsecond line\",2018-01-18 00:00:00\r\n\
              r2,5,,2018-03-10 00:00:00\r\n\
              r3,1,\"it said \"\"fast\"\", it was not\",\r\n",
        );
        let table = read_table(dir.path(), &REVIEWS, TextEncoding::Utf8).unwrap();
        assert_eq!(table.rows, 3);
        assert_eq!(
            text_values(&table, "review_comment_message"),
            vec![
                Some("first line\r\nsecond line".to_string()),
                None,
                Some("it said \"fast\", it was not".to_string()),
            ]
        );
        assert_eq!(
            text_values(&table, "review_id"),
            vec![Some("r1".into()), Some("r2".into()), Some("r3".into())]
        );
        let dates = floats(&table, "review_creation_date");
        assert_eq!(dates[0], 1_516_233_600.0);
        assert!(dates[2].is_nan());
        assert_eq!(floats(&table, "review_score"), vec![4.0, 5.0, 1.0]);
    }

    #[test]
    fn latin1_decoded_when_declared() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "reviews.csv",
            b"review_id,review_score,review_comment_message,review_creation_date\n\
              r1,5,Entrega r\xE1pida,2018-01-18 00:00:00\n",
        );
        let table = read_table(dir.path(), &REVIEWS, TextEncoding::Windows1252).unwrap();
        assert_eq!(
            text_values(&table, "review_comment_message"),
            vec![Some("Entrega rápida".to_string())]
        );

        let error = read_table(dir.path(), &REVIEWS, TextEncoding::Utf8).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("reviews.csv, line 2"), "{message}");
        assert!(message.contains("`review_comment_message`"), "{message}");
        assert!(message.contains("encoding: latin-1"), "{message}");
    }

    #[test]
    fn byte_order_mark_stripped_from_header() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "reviews.csv.gz",
            &gzip(
                "\u{feff}review_id,review_score,review_comment_message,review_creation_date\r\n\
                 r1,3,ok,2018-01-18 00:00:00\r\n"
                    .as_bytes(),
            ),
        );
        let table = read_table(dir.path(), &REVIEWS, TextEncoding::Utf8).unwrap();
        assert_eq!(
            text_values(&table, "review_id"),
            vec![Some("r1".to_string())]
        );
    }

    #[test]
    fn number_spellings() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "reviews.csv",
            b"review_id,review_score,review_comment_message,review_creation_date\n\
              r1, 4 ,,\n\
              r2,NaN,,\n\
              r3,-1.5e1,,\n",
        );
        let table = read_table(dir.path(), &REVIEWS, TextEncoding::Utf8).unwrap();
        let scores = floats(&table, "review_score");
        assert_eq!(scores[0], 4.0);
        assert!(scores[1].is_nan());
        assert_eq!(scores[2], -15.0);

        write(
            dir.path(),
            "reviews.csv",
            b"review_id,review_score,review_comment_message,review_creation_date\n\
              r1,inf,,\n",
        );
        let error = read_table(dir.path(), &REVIEWS, TextEncoding::Utf8).unwrap_err();
        assert!(
            matches!(error, IngestError::InvalidNumber { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn encoding_labels() {
        assert_eq!(
            TextEncoding::from_label("UTF-8").unwrap(),
            TextEncoding::Utf8
        );
        for label in ["latin-1", "windows-1252", "ISO-8859-1", "cp1252"] {
            assert_eq!(
                TextEncoding::from_label(label).unwrap(),
                TextEncoding::Windows1252,
                "{label}"
            );
        }
        let error = TextEncoding::from_label("utf-16").unwrap_err();
        assert!(error.to_string().contains("utf-8, latin-1, windows-1252"));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }
}
