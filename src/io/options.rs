//! [`ImportOptions`] and [`ExportOptions`]: what `import` / `export` accept, parsed strictly
//! from the JSON option objects of `nexus_import` / `nexus_export` (unknown keys are
//! [`Error::InvalidArgument`] naming the key), plus the shared [`Format`], [`CsvOptions`] and
//! [`ExtJsonMode`].

use crate::error::{Error, Result};
use crate::options::OptionReader;
use bson::Document as BsonDocument;
use std::path::PathBuf;

/// A file format of import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Detect from the content (first KiB), with the extension as a hint (import only; an
    /// export with `Auto` takes the format from the destination's extension, else NDJSON).
    #[default]
    Auto,
    /// Comma- (or otherwise) separated values with a header row.
    Csv,
    /// MongoDB Extended JSON v2, one document per line (JSON Lines).
    Ndjson,
    /// One JSON array of documents (or, with `array_mode: false`, concatenated documents).
    Json,
    /// A mongodump stream: BSON documents concatenated.
    Bson,
}

impl Format {
    /// Parses `"auto" | "csv" | "ndjson" | "json" | "bson"` (`"jsonl"` is NDJSON).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "csv" | "tsv" => Ok(Self::Csv),
            "ndjson" | "jsonl" => Ok(Self::Ndjson),
            "json" => Ok(Self::Json),
            "bson" => Ok(Self::Bson),
            other => Err(Error::invalid(format!(
                "format must be \"auto\", \"csv\", \"ndjson\", \"json\" or \"bson\", not \"{other}\""
            ))),
        }
    }

    /// The option spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Json => "json",
            Self::Bson => "bson",
        }
    }
}

/// CSV settings shared by import and export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field separator; `None` on import means detect it (`,` `\t` `;` `|`), on export `,`.
    pub delimiter: Option<u8>,
    /// Whether the first row names the columns (default true). Without headers the columns
    /// are `field1`, `field2`, ... on import, and no header row is written on export.
    pub has_headers: bool,
    /// Type inference on import (default true): integers, floats, booleans, empty cell ->
    /// null, ISO-8601 dates -> dates, cells holding Extended JSON (`{"$numberDecimal": ..}`,
    /// arrays) -> those values. Off: every cell is a string.
    pub type_infer: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: None,
            has_headers: true,
            type_infer: true,
        }
    }
}

/// Extended JSON v2 output mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtJsonMode {
    /// Plain JSON numbers and strings where lossless enough (MongoDB's relaxed mode; an
    /// `Int64` within the 32-bit range reads back as `Int32`). The default.
    #[default]
    Relaxed,
    /// Every number wrapped with its type (`{"$numberLong": "5"}`): exact round trips.
    Canonical,
}

/// Options of an import; [`ImportOptions::from_json`] reads the C ABI's JSON form.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The file's format (default [`Format::Auto`]).
    pub format: Format,
    /// Documents per committed transaction (default 1000, at least 1).
    pub batch_size: usize,
    /// `true` (default): documents without a `ttl_field` value are stored persistently.
    /// `false`: every document must be ephemeral (its `ttl_field` is required).
    pub persistent: bool,
    /// A field (dotted path) whose value makes each document ephemeral: milliseconds to live
    /// from the import, or a date at which it expires. The field stays in the document.
    pub ttl_field: Option<String>,
    /// Skip bad rows (recorded in the error sidecar) instead of stopping at the first.
    pub skip_errors: bool,
    /// Where skipped rows are listed (default `<file>.errors.jsonl`); written only when a
    /// row failed. Checked before the import starts: a file of an open database, an
    /// existing NexusLite file or the input itself is refused
    /// ([`crate::Database::check_output_path`]).
    pub error_sidecar: Option<PathBuf>,
    /// Commit nothing unless the whole file imports (one transaction).
    pub atomic: bool,
    /// Read and convert everything, write nothing (validation; the report says what an
    /// import would have done).
    pub dry_run: bool,
    /// CSV settings.
    pub csv: CsvOptions,
    /// JSON: `None` detects; `Some(true)` requires one array; `Some(false)` requires
    /// concatenated documents.
    pub array_mode: Option<bool>,
    /// A public key (SPKI PEM): `FILE.sig` is checked against the file and this key before
    /// anything is read (`crate::crypto::verify_file`); a missing or wrong signature is
    /// [`Error::Crypto`] and nothing is inserted.
    pub verify_key: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            batch_size: 1000,
            persistent: true,
            ttl_field: None,
            skip_errors: false,
            error_sidecar: None,
            atomic: false,
            dry_run: false,
            csv: CsvOptions::default(),
            array_mode: None,
            verify_key: None,
        }
    }
}

/// Options of an export; [`ExportOptions::from_json`] reads the C ABI's JSON form.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The format written (default: from the destination's extension, else NDJSON).
    pub format: Format,
    /// Only documents matching this filter (default all).
    pub filter: Option<BsonDocument>,
    /// CSV columns in this order (dotted paths for nested fields). Default: every leaf
    /// field seen, in first-seen order (a first pass over the snapshot finds them).
    pub fields: Option<Vec<String>>,
    /// Extended JSON mode of NDJSON / JSON output and of CSV cells holding JSON.
    pub extended_json: ExtJsonMode,
    /// CSV settings (`type_infer` is ignored on export).
    pub csv: CsvOptions,
    /// JSON: write one array (default true) or concatenated documents.
    pub array_mode: Option<bool>,
    /// JSON / NDJSON: indent (JSON only; NDJSON stays one document per line).
    pub pretty: bool,
    /// A private key: once the export is complete, its signature is written to `FILE.sig`
    /// (`crate::io::sign_file`). The key is checked before anything is written.
    pub sign_key: Option<crate::crypto::PrivatePem>,
}

fn read_format(r: &mut OptionReader) -> Result<Format> {
    r.string("format")?
        .map(|s| Format::parse(&s))
        .transpose()
        .map(|f| f.unwrap_or(Format::Auto))
}

fn read_delimiter(r: &mut OptionReader) -> Result<Option<u8>> {
    match r.string("delimiter")? {
        None => Ok(None),
        Some(s) => {
            let s = if s == "\\t" || s == "tab" {
                "\t".into()
            } else {
                s
            };
            match s.as_bytes() {
                [b] if b.is_ascii() && *b != b'"' && *b != b'\n' && *b != b'\r' => Ok(Some(*b)),
                _ => Err(Error::invalid(format!(
                    "option 'delimiter' must be one ASCII character other than a quote or newline, not {s:?}"
                ))),
            }
        }
    }
}

impl ImportOptions {
    /// Parses the JSON options of `nexus_import` (`None` or empty: defaults): `format`,
    /// `batch_size`, `persistent`, `ttl_field`, `skip_errors`, `error_sidecar`, `atomic`,
    /// `dry_run`, `delimiter`, `has_headers`, `type_infer`, `array_mode`, `verify_key`.
    pub fn from_json(text: Option<&str>) -> Result<Self> {
        let mut r = OptionReader::parse(text, "import options")?;
        let d = Self::default();
        let batch_size = match r.u64("batch_size")? {
            None => d.batch_size,
            Some(v) => usize::try_from(v)
                .ok()
                .filter(|v| (1..=1_000_000).contains(v))
                .ok_or_else(|| {
                    Error::invalid("import options: 'batch_size' must be between 1 and 1000000")
                })?,
        };
        let o = Self {
            format: read_format(&mut r)?,
            batch_size,
            persistent: r.bool("persistent")?.unwrap_or(true),
            ttl_field: match r.string("ttl_field")? {
                Some(f) => {
                    crate::query::path::check_limits("import option 'ttl_field'", &f)?;
                    Some(f)
                }
                None => None,
            },
            skip_errors: r.bool("skip_errors")?.unwrap_or(false),
            error_sidecar: r.string("error_sidecar")?.map(PathBuf::from),
            atomic: r.bool("atomic")?.unwrap_or(false),
            dry_run: r.bool("dry_run")?.unwrap_or(false),
            csv: CsvOptions {
                delimiter: read_delimiter(&mut r)?,
                has_headers: r.bool("has_headers")?.unwrap_or(true),
                type_infer: r.bool("type_infer")?.unwrap_or(true),
            },
            array_mode: r.bool("array_mode")?,
            verify_key: r.string("verify_key")?,
        };
        r.finish()?;
        Ok(o)
    }

    /// Checks option combinations before any I/O: `persistent: false` needs `ttl_field`.
    pub(crate) fn check_supported(&self) -> Result<()> {
        if !self.persistent && self.ttl_field.is_none() {
            return Err(Error::invalid(
                "import option 'persistent: false' needs 'ttl_field' to say when each document expires",
            ));
        }
        Ok(())
    }

    /// When a document expires, from its `ttl_field`: a number is a time to live in
    /// milliseconds from `now`, a date is the expiry time itself; a missing or null field
    /// leaves the document persistent (an error when `persistent` is false).
    pub(crate) fn expiry_of(&self, doc: &bson::Document, now: i64) -> Result<Option<i64>> {
        let Some(field) = &self.ttl_field else {
            return Ok(None);
        };
        let at = match crate::query::path::get_exact(doc, field) {
            None | Some(bson::Bson::Null) => None,
            Some(bson::Bson::DateTime(d)) => Some(d.timestamp_millis()),
            Some(v) => {
                // A finite non-negative double; float-to-int `as` saturates, as before.
                #[allow(clippy::cast_possible_truncation)]
                let ms = match v {
                    bson::Bson::Int32(i) => Some(i64::from(*i)),
                    bson::Bson::Int64(i) => Some(*i),
                    bson::Bson::Double(d) if d.is_finite() && *d >= 0.0 => Some(*d as i64),
                    _ => None,
                }
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "ttl_field '{field}' must hold milliseconds (a non-negative number) or a date"
                    ))
                })?;
                Some(now.saturating_add(ms))
            }
        };
        if at.is_none() && !self.persistent {
            return Err(Error::invalid(format!(
                "ttl_field '{field}' is missing and 'persistent' is false"
            )));
        }
        Ok(at)
    }
}

impl ExportOptions {
    /// Parses the JSON options of `nexus_export` (`None` or empty: defaults): `format`,
    /// `filter`, `fields`, `extended_json`, `delimiter`, `has_headers`, `array_mode`,
    /// `pretty`, `sign_key`.
    pub fn from_json(text: Option<&str>) -> Result<Self> {
        let mut r = OptionReader::parse(text, "export options")?;
        let format = read_format(&mut r)?;
        let filter = r.document("filter")?;
        let fields = match r.take("fields") {
            None => None,
            Some(serde_json::Value::Array(items)) => Some(
                items
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) if !s.is_empty() => {
                            crate::query::path::check_limits("export option 'fields'", &s)?;
                            Ok(s)
                        }
                        _ => Err(Error::invalid(
                            "export options: 'fields' must be an array of non-empty strings",
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(_) => {
                return Err(Error::invalid(
                    "export options: 'fields' must be an array of non-empty strings",
                ))
            }
        };
        let extended_json = match r.string("extended_json")?.as_deref() {
            None | Some("relaxed") => ExtJsonMode::Relaxed,
            Some("canonical") => ExtJsonMode::Canonical,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "export options: 'extended_json' must be \"relaxed\" or \"canonical\", not \"{other}\""
                )))
            }
        };
        let o = Self {
            format,
            filter,
            fields,
            extended_json,
            csv: CsvOptions {
                delimiter: read_delimiter(&mut r)?,
                has_headers: r.bool("has_headers")?.unwrap_or(true),
                type_infer: true,
            },
            array_mode: r.bool("array_mode")?,
            pretty: r.bool("pretty")?.unwrap_or(false),
            sign_key: r.string("sign_key")?.map(crate::crypto::PrivatePem::new),
        };
        r.finish()?;
        Ok(o)
    }
}
