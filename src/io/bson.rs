//! BSON files as mongodump writes them: documents concatenated, each starting with its
//! little-endian `int32` length. [`BsonSource`] reads one document at a time; a bad
//! document body is a rejected row, but an implausible length or a truncated tail is fatal
//! (nothing after it can be found). [`write_doc`] appends one document.

use super::report::RowPos;
use super::source::{Rejected, Row, Source};
use crate::document::body::NewBody;
use crate::document::MAX_DOCUMENT_BYTES;
use crate::error::{Error, Result};
use bson::Document as BsonDocument;
use std::io::{Read, Write};
use std::path::PathBuf;

/// The largest length prefix accepted (MongoDB allows a little over 16 MiB in dumps).
const MAX_BSON_LEN: usize = MAX_DOCUMENT_BYTES + 16 * 1024;

/// Reads concatenated BSON documents.
pub(crate) struct BsonSource<R> {
    input: R,
    path: PathBuf,
    direct: bool,
    offset: u64,
    row: u64,
    buf: Vec<u8>,
}

impl<R: Read> BsonSource<R> {
    /// `direct`: documents kept as the BSON bytes they are where they can be
    /// (`NewBody::from_bson_bytes`), not decoded into a `bson::Document`.
    pub(crate) fn new(input: R, path: PathBuf, direct: bool) -> Self {
        Self {
            input,
            path,
            direct,
            offset: 0,
            row: 0,
            buf: Vec::new(),
        }
    }

    /// Reads up to `want` bytes into the end of `buf`; returns how many arrived.
    fn fill(&mut self, want: usize) -> Result<usize> {
        let before = self.buf.len();
        (&mut self.input)
            .take(want as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(self.buf.len() - before)
    }
}

impl<R: Read> Source for BsonSource<R> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        self.buf.clear();
        let start = self.offset;
        let got = self.fill(4)?;
        if got == 0 {
            return Ok(None);
        }
        self.row += 1;
        let truncated = |have: usize, need: usize, row: u64| {
            Error::parse(format!(
                "truncated BSON: document {row} at byte offset {start} needs {need} bytes but the file ends after {have}"
            ))
        };
        if got < 4 {
            return Err(truncated(got, 4, self.row));
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if !(5..=MAX_BSON_LEN).contains(&len) {
            return Err(Error::parse(format!(
                "implausible BSON length {len} for document {} at byte offset {start}: not a BSON file, or corrupt",
                self.row
            )));
        }
        let body = self.fill(len - 4)?;
        self.offset += (4 + body) as u64;
        if body < len - 4 {
            return Err(truncated(4 + body, len, self.row));
        }
        let pos = RowPos {
            row: self.row,
            line: None,
            offset: start,
        };
        let parsed = if self.direct {
            NewBody::from_bson_bytes(&self.buf)
        } else {
            crate::Document::from_bson_bytes(&self.buf).map(NewBody::Doc)
        };
        let doc = parsed.map_err(|e| Rejected {
            reason: e.to_string(),
            raw: self.buf.clone(),
        });
        Ok(Some(Row { pos, doc }))
    }

    fn bytes_read(&self) -> u64 {
        self.offset
    }
}

/// Appends one document's BSON encoding.
pub(crate) fn write_doc(out: &mut impl Write, doc: &BsonDocument) -> std::io::Result<()> {
    let bytes = doc
        .to_vec()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    out.write_all(&bytes)
}
