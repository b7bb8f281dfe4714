//! The reading side shared by the formats: a [`Source`] yields [`Row`]s, each either a
//! document or a rejected row with its raw bytes and the reason. A `Source` error (as
//! opposed to a rejected row) is fatal: the file cannot be read past that point (I/O
//! failure, truncated BSON, an unterminated JSON array).

use super::report::RowPos;
use crate::document::body::NewBody;
use crate::error::Result;

/// A row that could not become a document.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub reason: String,
    pub raw: Vec<u8>,
}

/// One row of the input: where it was, and what it became.
#[derive(Debug)]
pub(crate) struct Row {
    pub pos: RowPos,
    pub doc: std::result::Result<NewBody, Rejected>,
}

/// A stream of rows read with bounded memory (one row at a time plus a read buffer).
pub(crate) trait Source {
    /// The next row, `Ok(None)` at the end of the input.
    fn next_row(&mut self) -> Result<Option<Row>>;
    /// Bytes of the file consumed so far.
    fn bytes_read(&self) -> u64;
}

/// The longest line or JSON value a text reader buffers (documents are at most 16 MiB as
/// BSON; their JSON text may be larger).
pub(crate) const MAX_TEXT_ROW: usize = 64 * 1024 * 1024;

/// The document a JSON text row denotes, or why not. `direct`: as BSON bytes written straight
/// from the text where it can be (`NewBody::from_json`, the path of `nexus_insert`: no
/// `bson::Document` is built, and the insert takes the bytes as they are), else as a
/// `bson::Document` (for the callers that look into it). The same document and the same
/// messages either way.
pub(crate) fn parse_json_row(raw: &[u8], direct: bool) -> std::result::Result<NewBody, String> {
    let text = std::str::from_utf8(raw).map_err(|e| {
        format!(
            "not valid UTF-8 (bad byte at offset {} of the row)",
            e.valid_up_to()
        )
    })?;
    if !crate::document::json::document_text_may_fit(text, 0) {
        // Surely deeper than a document may nest: refused before it is parsed.
        return Err(crate::document::too_deep().to_string());
    }
    if direct {
        return NewBody::from_json(text, "document").map_err(|e| e.to_string());
    }
    crate::document::json::parse_document(text)
        .map(|d| NewBody::Doc(d.into()))
        .map_err(|e| e.to_string())
}
