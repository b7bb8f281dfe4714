//! CSV files: [`CsvSource`] reads records (through the `csv` crate, so quoting, embedded
//! newlines and `\r\n` are handled), turns the header's dotted names into nested documents
//! and infers cell types ([`super::cell::infer`]) unless told not to. [`CsvSink`] writes
//! the chosen columns with cells that inference reads back as the same values.

use super::cell::{check_header, format_cell, get_dotted, infer, set_dotted};
use super::detect::count_unquoted;
use super::options::{CsvOptions, ExtJsonMode};
use super::report::{count_of, RowPos};
use super::source::{Rejected, Row, Source};
use crate::document::body::NewBody;
use crate::error::{Error, Result};
use bson::{Bson, Document as BsonDocument};
use std::io::{Read, Write};
use std::path::PathBuf;

/// Where a [`QuoteWatch`] is in the CSV text it has passed on.
#[derive(Clone, Copy, PartialEq)]
enum Lexeme {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: it closes the field, or starts a doubled `""`.
    QuoteInQuoted,
}

/// Passes the input on to the `csv` reader while following its quoting (RFC 4180, as the
/// crate reads it by default: a `"` opens a quoted field only at the field's start, `""`
/// inside one is a quote). The crate ends a quoted field left open at the end of the file
/// without an error, making the rest of the file one cell; this tells that case apart from
/// a plain field-count mismatch.
struct QuoteWatch<R> {
    inner: R,
    delimiter: u8,
    state: Lexeme,
    /// The 1-based line being read, and the line of the `"` that opened the current quoted
    /// field.
    line: u64,
    quote_line: u64,
    /// Bytes passed on; whether the input has ended.
    passed: u64,
    ended: bool,
}

impl<R: Read> Read for QuoteWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended = true;
        }
        for &b in &buf[..n] {
            let ends_field = b == self.delimiter || b == b'\n' || b == b'\r';
            self.state = match (self.state, b) {
                (Lexeme::FieldStart, b'"') => {
                    self.quote_line = self.line;
                    Lexeme::Quoted
                }
                (Lexeme::Quoted, b'"') => Lexeme::QuoteInQuoted,
                (Lexeme::Quoted, _) => Lexeme::Quoted,
                (Lexeme::QuoteInQuoted, b'"') => Lexeme::Quoted,
                (_, _) if ends_field => Lexeme::FieldStart,
                (_, _) => Lexeme::Unquoted,
            };
            if b == b'\n' {
                self.line += 1;
            }
        }
        self.passed += n as u64;
        Ok(n)
    }
}

/// Reads CSV records as documents.
pub(crate) struct CsvSource<R: Read> {
    reader: csv::Reader<QuoteWatch<R>>,
    path: PathBuf,
    names: Vec<String>,
    infer: bool,
    delimiter: u8,
    start: u64,
    record: csv::ByteRecord,
    row: u64,
    /// The first record when there is no header row (read while sizing the columns).
    pending: Option<csv::ByteRecord>,
}

fn csv_error(path: &PathBuf, e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::parse(format!("{}: malformed CSV: {other:?}", path.display())),
    }
}

impl<R: Read> CsvSource<R> {
    /// Reads the header (or, without one, the first record to count the columns).
    /// `explicit_delimiter` says whether the caller chose the delimiter (then a header that
    /// plainly uses another one is refused).
    pub(crate) fn new(
        input: R,
        path: PathBuf,
        start: u64,
        opts: &CsvOptions,
        delimiter: u8,
        explicit_delimiter: bool,
    ) -> Result<Self> {
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(QuoteWatch {
                inner: input,
                delimiter,
                state: Lexeme::FieldStart,
                line: 1,
                quote_line: 0,
                passed: 0,
                ended: false,
            });
        let mut s = Self {
            reader,
            path,
            names: Vec::new(),
            infer: opts.type_infer,
            delimiter,
            start,
            record: csv::ByteRecord::new(),
            row: 0,
            pending: None,
        };
        let mut first = csv::ByteRecord::new();
        if !s
            .reader
            .read_byte_record(&mut first)
            .map_err(|e| csv_error(&s.path, e))?
        {
            return Err(Error::invalid(format!(
                "{} has no CSV records",
                s.path.display()
            )));
        }
        s.check_quotes_closed()?;
        if opts.has_headers {
            let names = first
                .iter()
                .map(|f| {
                    std::str::from_utf8(f)
                        .map(|t| t.trim().to_owned())
                        .map_err(|_| {
                            Error::parse(format!(
                                "{}: the CSV header is not valid UTF-8",
                                s.path.display()
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            if explicit_delimiter && names.len() == 1 {
                for other in [b',', b'\t', b';', b'|'] {
                    if other != delimiter && count_unquoted(&names[0], other) > 0 {
                        return Err(Error::invalid(format!(
                            "{}: the header has no {:?} but contains {:?}: wrong delimiter? (got {:?})",
                            s.path.display(),
                            char::from(delimiter),
                            char::from(other),
                            names[0]
                        )));
                    }
                }
            }
            check_header(&names).map_err(|e| {
                let m = format!("{}: {e}", s.path.display());
                match e {
                    // A path limit stays what it is everywhere.
                    Error::InvalidArgument(_) => Error::invalid(m),
                    _ => Error::parse(m),
                }
            })?;
            s.names = names;
        } else {
            s.names = (1..=first.len()).map(|i| format!("field{i}")).collect();
            s.pending = Some(first);
        }
        Ok(s)
    }

    /// Refuses the record just read when it is the last one and a quoted field in it was
    /// never closed: the file is cut short or a quote is stray, and every row after the
    /// quote was swallowed into one cell. Like a JSON file ending inside a value, this
    /// stops the import (no later row can be told apart).
    fn check_quotes_closed(&self) -> Result<()> {
        let watch = self.reader.get_ref();
        let at_end = watch.ended && self.reader.position().byte() == watch.passed;
        if at_end && watch.state == Lexeme::Quoted {
            return Err(Error::parse(format!(
                "{} ends inside a quoted field that starts on line {}: unterminated quoted field (the file is truncated or a '\"' is not closed)",
                self.path.display(),
                watch.quote_line
            )));
        }
        Ok(())
    }

    fn convert(&self, rec: &csv::ByteRecord) -> std::result::Result<BsonDocument, String> {
        if rec.len() != self.names.len() {
            return Err(format!(
                "has {} but the header has {} (wrong delimiter or unquoted {:?}?)",
                count_of(rec.len() as u64, "field"),
                self.names.len(),
                char::from(self.delimiter)
            ));
        }
        let mut doc = BsonDocument::new();
        for (name, field) in self.names.iter().zip(rec.iter()) {
            let cell = std::str::from_utf8(field)
                .map_err(|_| format!("column '{name}' is not valid UTF-8"))?;
            let value = if self.infer {
                infer(cell)
            } else {
                Bson::String(cell.to_owned())
            };
            if name == "_id" && (value == Bson::Null || cell.is_empty()) {
                continue; // an empty _id cell: let the database assign one
            }
            set_dotted(&mut doc, name, value).map_err(|e| e.to_string())?;
        }
        Ok(doc)
    }
}

impl<R: Read> Source for CsvSource<R> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        let rec = match self.pending.take() {
            Some(r) => r,
            None => {
                let mut rec = std::mem::take(&mut self.record);
                let more = self
                    .reader
                    .read_byte_record(&mut rec)
                    .map_err(|e| csv_error(&self.path, e))?;
                if !more {
                    self.record = rec;
                    return Ok(None);
                }
                self.check_quotes_closed()?;
                rec
            }
        };
        self.row += 1;
        let (line, byte) = rec.position().map_or((0, 0), |p| (p.line(), p.byte()));
        let pos = RowPos {
            row: self.row,
            line: Some(line),
            offset: self.start + byte,
        };
        let doc = self
            .convert(&rec)
            .map(|d| NewBody::Doc(d.into()))
            .map_err(|reason| {
                let mut raw = Vec::new();
                for (i, f) in rec.iter().enumerate() {
                    if i > 0 {
                        raw.push(self.delimiter);
                    }
                    raw.extend_from_slice(f);
                }
                Rejected { reason, raw }
            });
        self.record = rec;
        Ok(Some(Row { pos, doc }))
    }

    fn bytes_read(&self) -> u64 {
        self.start + self.reader.position().byte()
    }
}

/// Writes documents as CSV rows of fixed columns.
pub(crate) struct CsvSink<W: Write> {
    writer: csv::Writer<W>,
    columns: Vec<String>,
    mode: ExtJsonMode,
}

impl<W: Write> CsvSink<W> {
    pub(crate) fn new(
        out: W,
        columns: Vec<String>,
        opts: &CsvOptions,
        mode: ExtJsonMode,
    ) -> Result<Self> {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(opts.delimiter.unwrap_or(b','))
            .from_writer(out);
        if opts.has_headers {
            writer
                .write_record(&columns)
                .map_err(|e| Error::parse(format!("writing the CSV header: {e}")))?;
        }
        Ok(Self {
            writer,
            columns,
            mode,
        })
    }

    pub(crate) fn write_doc(&mut self, doc: &BsonDocument) -> std::result::Result<(), csv::Error> {
        let mode = self.mode;
        let cells = self.columns.iter().map(|c| {
            get_dotted(doc, c)
                .map(|v| format_cell(v, mode))
                .unwrap_or_default()
        });
        self.writer.write_record(cells)
    }

    /// Flushes the CSV buffer and returns the inner writer.
    pub(crate) fn into_inner(self) -> Result<W> {
        self.writer
            .into_inner()
            .map_err(|e| Error::Internal(format!("flushing CSV output: {}", e.error())))
    }
}
