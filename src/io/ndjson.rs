//! NDJSON (JSON Lines) of MongoDB Extended JSON v2: [`NdjsonSource`] reads one document per
//! line (blank lines are skipped, `\r\n` accepted); [`write_doc`] writes one document per
//! line in relaxed or canonical mode.

use super::options::ExtJsonMode;
use super::report::RowPos;
use super::source::{parse_json_row, Rejected, Row, Source, MAX_TEXT_ROW};
use crate::error::{Error, Result};
use bson::{Bson, Document as BsonDocument};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

/// Reads documents line by line; memory is one line plus the read buffer.
pub(crate) struct NdjsonSource<R> {
    input: R,
    path: PathBuf,
    direct: bool,
    buf: Vec<u8>,
    offset: u64,
    line: u64,
    row: u64,
}

impl<R: BufRead> NdjsonSource<R> {
    /// `start` is the offset of the first byte `input` yields (after a BOM).
    /// `direct`: rows as BSON bytes straight from the text (see [`parse_json_row`]).
    pub(crate) fn new(input: R, path: PathBuf, start: u64, direct: bool) -> Self {
        Self {
            input,
            path,
            direct,
            buf: Vec::new(),
            offset: start,
            line: 0,
            row: 0,
        }
    }
}

impl<R: BufRead> Source for NdjsonSource<R> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            self.buf.clear();
            let start = self.offset;
            let n = (&mut self.input)
                .take(MAX_TEXT_ROW as u64 + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.offset += n as u64;
            self.line += 1;
            if n > MAX_TEXT_ROW && !self.buf.ends_with(b"\n") {
                return Err(Error::parse(format!(
                    "line {} (byte offset {start}) is longer than {} MiB; is this really NDJSON?",
                    self.line,
                    MAX_TEXT_ROW >> 20
                )));
            }
            let text = self.buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            self.row += 1;
            let pos = RowPos {
                row: self.row,
                line: Some(self.line),
                offset: start,
            };
            let doc = parse_json_row(text, self.direct).map_err(|reason| Rejected {
                reason,
                raw: text.to_vec(),
            });
            return Ok(Some(Row { pos, doc }));
        }
    }

    fn bytes_read(&self) -> u64 {
        self.offset
    }
}

/// A document as one Extended JSON value.
pub(crate) fn to_ext_json(doc: BsonDocument, mode: ExtJsonMode) -> serde_json::Value {
    value_to_ext_json(Bson::Document(doc), mode)
}

/// The last millisecond of year 9999: relaxed Extended JSON writes dates up to it as ISO
/// text, later ones in the canonical `$numberLong` form.
const MAX_ISO_DATE_MS: i64 = 253_402_300_799_999;

/// Any value as Extended JSON. Relaxed mode goes through the `bson` crate except for dates
/// after year 9999, which it would clamp to 9999-12-31 (losing the value); those are written
/// canonically, as the Extended JSON specification asks.
pub(crate) fn value_to_ext_json(value: Bson, mode: ExtJsonMode) -> serde_json::Value {
    match (mode, value) {
        (ExtJsonMode::Canonical, v) => v.into_canonical_extjson(),
        (ExtJsonMode::Relaxed, Bson::Document(d)) => serde_json::Value::Object(
            d.into_iter()
                .map(|(k, v)| (k, value_to_ext_json(v, mode)))
                .collect(),
        ),
        (ExtJsonMode::Relaxed, Bson::Array(a)) => {
            serde_json::Value::Array(a.into_iter().map(|v| value_to_ext_json(v, mode)).collect())
        }
        (ExtJsonMode::Relaxed, Bson::DateTime(d)) if d.timestamp_millis() > MAX_ISO_DATE_MS => {
            Bson::DateTime(d).into_canonical_extjson()
        }
        (ExtJsonMode::Relaxed, v) => v.into_relaxed_extjson(),
    }
}

/// Writes one document and a newline.
pub(crate) fn write_doc(
    out: &mut impl Write,
    doc: BsonDocument,
    mode: ExtJsonMode,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &to_ext_json(doc, mode))?;
    out.write_all(b"\n")
}
