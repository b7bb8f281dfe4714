//! JSON files: [`JsonSource`] reads either one top-level array of documents or a stream of
//! concatenated documents (pretty-printed or not), one value at a time: a small scanner finds
//! where each value ends (tracking strings, escapes and nesting), then the value alone is
//! parsed. Memory is one value plus the read buffer, whatever the file size.
//! [`JsonWriter`] writes an array (default) or concatenated documents, compact or pretty.

use super::ndjson::to_ext_json;
use super::options::ExtJsonMode;
use super::report::RowPos;
use super::source::{parse_json_row, Rejected, Row, Source, MAX_TEXT_ROW};
use crate::error::{Error, Result};
use bson::Document as BsonDocument;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Nothing read yet.
    Start,
    /// Inside `[`, before the first element.
    ArrayFirst,
    /// Inside `[`, after an element.
    ArrayNext,
    /// Concatenated documents.
    Stream,
    /// The array closed; only whitespace may follow.
    Done,
}

/// Reads documents from a JSON array or a stream of JSON documents.
pub(crate) struct JsonSource<R> {
    input: R,
    path: PathBuf,
    direct: bool,
    /// `Some(true)`: an array is required; `Some(false)`: a stream is required.
    array_mode: Option<bool>,
    state: State,
    offset: u64,
    line: u64,
    row: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> JsonSource<R> {
    /// `direct`: documents as BSON bytes straight from the text (see [`parse_json_row`]).
    pub(crate) fn new(
        input: R,
        path: PathBuf,
        start: u64,
        array_mode: Option<bool>,
        direct: bool,
    ) -> Self {
        Self {
            input,
            path,
            direct,
            array_mode,
            state: State::Start,
            offset: start,
            line: 1,
            row: 0,
            buf: Vec::new(),
        }
    }

    fn peek(&mut self) -> Result<Option<u8>> {
        let b = self
            .input
            .fill_buf()
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(b.first().copied())
    }

    fn bump(&mut self) -> Result<Option<u8>> {
        let c = self.peek()?;
        if let Some(c) = c {
            self.input.consume(1);
            self.offset += 1;
            if c == b'\n' {
                self.line += 1;
            }
        }
        Ok(c)
    }

    /// Skips whitespace; returns the next byte without consuming it.
    fn skip_ws(&mut self) -> Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(c) if c.is_ascii_whitespace() => {
                    self.bump()?;
                }
                other => return Ok(other),
            }
        }
    }

    fn here(&self) -> String {
        format!("line {}, byte offset {}", self.line, self.offset)
    }

    /// Reads one JSON value's bytes into `self.buf` (structure only; parsing comes later).
    fn capture_value(&mut self) -> Result<()> {
        self.buf.clear();
        let start_line = self.line;
        let first = self.bump()?.expect("caller peeked a byte");
        self.buf.push(first);
        let truncated = |s: &Self, what: &str| {
            Error::parse(format!(
                "{} ends inside {what} that starts on line {start_line}: the file is truncated or malformed",
                s.path.display()
            ))
        };
        if first == b'{' || first == b'[' {
            let mut depth = 1usize;
            let mut in_str = false;
            let mut escaped = false;
            while depth > 0 {
                let Some(c) = self.bump()? else {
                    return Err(truncated(self, "a value"));
                };
                if self.buf.len() >= MAX_TEXT_ROW {
                    return Err(Error::parse(format!(
                        "a JSON value starting on line {start_line} is longer than {} MiB",
                        MAX_TEXT_ROW >> 20
                    )));
                }
                self.buf.push(c);
                if in_str {
                    if escaped {
                        escaped = false;
                    } else if c == b'\\' {
                        escaped = true;
                    } else if c == b'"' {
                        in_str = false;
                    }
                } else {
                    match c {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                }
            }
        } else if first == b'"' {
            let mut escaped = false;
            loop {
                let Some(c) = self.bump()? else {
                    return Err(truncated(self, "a string"));
                };
                self.buf.push(c);
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    break;
                }
            }
        } else {
            while let Some(c) = self.peek()? {
                if c.is_ascii_whitespace() || matches!(c, b',' | b']' | b'}' | b'[' | b'{') {
                    break;
                }
                self.bump()?;
                self.buf.push(c);
            }
        }
        Ok(())
    }

    fn row_from_buf(&mut self, pos: RowPos) -> Row {
        let doc = if self.buf.first() == Some(&b'{') {
            parse_json_row(&self.buf, self.direct)
        } else {
            Err(format!(
                "{} is not a document (an object)",
                if self.state == State::Stream {
                    "the value"
                } else {
                    "the array element"
                }
            ))
        };
        Row {
            pos,
            doc: doc.map_err(|reason| Rejected {
                reason,
                raw: self.buf.clone(),
            }),
        }
    }
}

impl<R: BufRead> Source for JsonSource<R> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            let c = self.skip_ws()?;
            match self.state {
                State::Start => match c {
                    None => return Ok(None),
                    Some(b'[') => {
                        if self.array_mode == Some(false) {
                            return Err(Error::parse(format!(
                                "{} holds a JSON array, but array_mode is false",
                                self.path.display()
                            )));
                        }
                        self.bump()?;
                        self.state = State::ArrayFirst;
                    }
                    Some(_) => {
                        if self.array_mode == Some(true) {
                            return Err(Error::parse(format!(
                                "{} does not start with '[' ({}), but array_mode is true",
                                self.path.display(),
                                self.here()
                            )));
                        }
                        self.state = State::Stream;
                    }
                },
                State::ArrayFirst | State::ArrayNext => {
                    match c {
                        None => {
                            return Err(Error::parse(format!(
                                "{} ends before the JSON array is closed with ']': the file is truncated",
                                self.path.display()
                            )))
                        }
                        Some(b']') => {
                            self.bump()?;
                            self.state = State::Done;
                            continue;
                        }
                        Some(b',') if self.state == State::ArrayNext => {
                            self.bump()?;
                            if self.skip_ws()? == Some(b']') {
                                return Err(Error::parse(format!(
                                    "a trailing ',' before ']' at {}",
                                    self.here()
                                )));
                            }
                        }
                        Some(other) if self.state == State::ArrayNext => {
                            return Err(Error::parse(format!(
                                "expected ',' or ']' after array element {} but found '{}' at {}",
                                self.row,
                                char::from(other),
                                self.here()
                            )));
                        }
                        Some(_) => {}
                    }
                    if self.skip_ws()?.is_none() {
                        continue; // reported as truncated above
                    }
                    self.row += 1;
                    let pos = RowPos {
                        row: self.row,
                        line: Some(self.line),
                        offset: self.offset,
                    };
                    self.capture_value()?;
                    self.state = State::ArrayNext;
                    return Ok(Some(self.row_from_buf(pos)));
                }
                State::Stream => {
                    if c.is_none() {
                        return Ok(None);
                    }
                    self.row += 1;
                    let pos = RowPos {
                        row: self.row,
                        line: Some(self.line),
                        offset: self.offset,
                    };
                    self.capture_value()?;
                    return Ok(Some(self.row_from_buf(pos)));
                }
                State::Done => {
                    return match c {
                        None => Ok(None),
                        Some(other) => Err(Error::parse(format!(
                            "unexpected '{}' after the closing ']' at {}",
                            char::from(other),
                            self.here()
                        ))),
                    }
                }
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.offset
    }
}

/// Writes documents as one JSON array or as concatenated documents.
pub(crate) struct JsonWriter {
    array: bool,
    pretty: bool,
    mode: ExtJsonMode,
    first: bool,
}

impl JsonWriter {
    pub(crate) fn new(array: bool, pretty: bool, mode: ExtJsonMode) -> Self {
        Self {
            array,
            pretty,
            mode,
            first: true,
        }
    }

    pub(crate) fn begin(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.array {
            out.write_all(b"[")?;
        }
        Ok(())
    }

    pub(crate) fn write_doc(
        &mut self,
        out: &mut impl Write,
        doc: BsonDocument,
    ) -> std::io::Result<()> {
        let sep: &[u8] = match (self.array, self.first) {
            (true, true) => b"\n",
            (true, false) => b",\n",
            (false, true) => b"",
            (false, false) => b"\n",
        };
        out.write_all(sep)?;
        self.first = false;
        let v = to_ext_json(doc, self.mode);
        if self.pretty {
            serde_json::to_writer_pretty(&mut *out, &v)?;
        } else {
            serde_json::to_writer(&mut *out, &v)?;
        }
        Ok(())
    }

    pub(crate) fn end(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.array {
            out.write_all(if self.first { b"]\n" } else { b"\n]\n" })
        } else if self.first {
            Ok(())
        } else {
            out.write_all(b"\n")
        }
    }
}
