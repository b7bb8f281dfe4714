//! [`ImportReport`] and [`ExportReport`]: what an import or export did (counts, bytes,
//! elapsed time), as Rust values and as the JSON the C ABI hands out; and the error
//! sidecar writer ([`Sidecar`]) that lists rejected rows as JSON Lines.

use super::options::Format;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// The format read (after detection).
    pub format: Format,
    /// Rows (CSV records, lines, array elements, BSON documents) read, good or bad.
    pub read: u64,
    /// Documents committed (for a dry run: documents that would have been).
    pub imported: u64,
    /// Rows rejected (only with `skip_errors`; they are listed in the sidecar).
    pub failed: u64,
    /// Bytes of the file consumed.
    pub bytes: u64,
    /// Wall-clock time of the whole import.
    pub elapsed_ms: u64,
    /// Transactions committed.
    pub batches: u64,
    /// The sidecar written, when a row failed.
    pub error_sidecar: Option<PathBuf>,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
}

impl ImportReport {
    /// The report as a JSON object (the `out_report_json` of `nexus_import`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "format": self.format.as_str(),
            "read": self.read,
            "imported": self.imported,
            "failed": self.failed,
            "bytes": self.bytes,
            "elapsed_ms": self.elapsed_ms,
            "batches": self.batches,
            "docs_per_sec": per_sec(self.imported, self.elapsed_ms),
            "error_sidecar": self.error_sidecar.as_ref().map(|p| p.display().to_string()),
            "dry_run": self.dry_run,
        })
    }
}

/// What an export did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    /// The format written.
    pub format: Format,
    /// Documents written.
    pub exported: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Wall-clock time of the whole export.
    pub elapsed_ms: u64,
    /// The destination.
    pub path: PathBuf,
}

impl ExportReport {
    /// The report as a JSON object (the `out_report_json` of `nexus_export`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "format": self.format.as_str(),
            "exported": self.exported,
            "bytes": self.bytes,
            "elapsed_ms": self.elapsed_ms,
            "docs_per_sec": per_sec(self.exported, self.elapsed_ms),
            "path": self.path.display().to_string(),
        })
    }
}

/// `n` and the noun, singular for one: "1 document", "2 documents" (for messages).
pub(crate) fn count_of(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn per_sec(n: u64, ms: u64) -> u64 {
    n.saturating_mul(1000)
        .checked_div(ms)
        .unwrap_or(n.saturating_mul(1000))
}

/// Where a rejected row was.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowPos {
    /// 1-based row number (record, line, element or document).
    pub row: u64,
    /// 1-based line of the file where the row starts (text formats).
    pub line: Option<u64>,
    /// Byte offset of the row in the file.
    pub offset: u64,
}

impl RowPos {
    /// "row 7 (line 8, byte 512)" for messages.
    pub(crate) fn describe(&self) -> String {
        match self.line {
            Some(l) => format!("row {} (line {l}, byte offset {})", self.row, self.offset),
            None => format!("row {} (byte offset {})", self.row, self.offset),
        }
    }
}

/// The longest raw text kept per rejected row in the sidecar.
const RAW_LIMIT: usize = 64 * 1024;

/// The error sidecar: created on the first rejected row (truncating an older one), one JSON
/// object per line: `{"row", "line", "offset", "raw" | "raw_hex", "reason"}`.
pub(crate) struct Sidecar {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl Sidecar {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, out: None }
    }

    /// The default sidecar of `file`: `<file>.errors.jsonl`.
    pub(crate) fn default_path(file: &Path) -> PathBuf {
        let mut s = file.as_os_str().to_owned();
        s.push(".errors.jsonl");
        PathBuf::from(s)
    }

    /// Appends one rejected row. `raw` is the row's bytes; text goes in `raw`, anything else
    /// (BSON) in `raw_hex`.
    pub(crate) fn record(&mut self, pos: &RowPos, raw: &[u8], reason: &str) -> Result<()> {
        if self.out.is_none() {
            let f = std::fs::File::create(&self.path).map_err(|e| Error::io(&self.path, e))?;
            self.out = Some(std::io::BufWriter::new(f));
        }
        let cut = &raw[..raw.len().min(RAW_LIMIT)];
        let mut entry = serde_json::json!({
            "row": pos.row,
            "line": pos.line,
            "offset": pos.offset,
            "reason": reason,
        });
        match std::str::from_utf8(cut) {
            Ok(text) => entry["raw"] = text.trim_end_matches(['\r', '\n']).into(),
            Err(_) => entry["raw_hex"] = hex(cut).into(),
        }
        if raw.len() > RAW_LIMIT {
            entry["raw_truncated_from"] = raw.len().into();
        }
        let out = self.out.as_mut().expect("opened above");
        writeln!(out, "{entry}").map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes; returns the path when anything was written.
    pub(crate) fn finish(self) -> Result<Option<PathBuf>> {
        match self.out {
            None => Ok(None),
            Some(mut out) => {
                out.flush().map_err(|e| Error::io(&self.path, e))?;
                Ok(Some(self.path))
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
