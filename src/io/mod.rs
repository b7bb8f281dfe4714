//! Import and export: moving documents between a collection and CSV, NDJSON (MongoDB
//! Extended JSON v2, one document per line, what `mongoimport`, `mongoexport` and pandas'
//! `lines=True` speak), JSON arrays and BSON (mongodump's concatenated documents).
//!
//! The entry points are [`Collection::import`] / [`Collection::export`] (and their
//! `_with_progress` forms), driven by [`ImportOptions`] / [`ExportOptions`] and answering
//! with an [`ImportReport`] / [`ExportReport`]. The C ABI's `nexus_import` / `nexus_export`
//! and the `nexus` CLI are thin layers over them. This module uses only the public Rust API
//! beneath it (`Database`, `Collection`, `Cursor`).
//!
//! Layout: `detect` (format sniffing), `source` (the row stream every reader yields),
//! `ndjson`, `json`, `csv` (+ `cell`: CSV type inference and dotted columns), `bson` (one
//! file per format, reader and writer), `import` and `export` (the drivers), `sink` (the
//! temporary-file-then-rename writer), `options`, `report` (+ the error sidecar).

mod bson;
mod cell;
mod csv;
mod detect;
mod export;
mod import;
mod json;
mod ndjson;
mod options;
mod report;
mod sink;
mod source;

pub use export::export_file;
pub use import::import_file;
pub use options::{CsvOptions, ExportOptions, ExtJsonMode, Format, ImportOptions};
pub use report::{ExportReport, ImportReport};

/// Signs the file at `path` with `private_pem` (`crate::crypto`: ECDSA P-256, SHA-256) and
/// writes the DER signature to `PATH.sig`, atomically (a complete new signature or the old
/// file), so that `openssl dgst -sha256 -verify pub.pem -signature PATH.sig PATH` and
/// [`crate::crypto::verify_file`] check it.
pub fn sign_file(path: &Path, private_pem: &str) -> Result<()> {
    use std::io::Write;
    let der = crate::crypto::file_signature(path, private_pem)?;
    let sig_path = crate::crypto::signature_path(path);
    let mut out = sink::AtomicFile::create(&sig_path)?;
    out.write_all(&der)
        .map_err(|e| crate::Error::io(&sig_path, e))?;
    out.commit().map(drop)
}

use crate::error::Result;
use crate::Collection;
use std::path::Path;

/// Where an import or export is, handed to progress callbacks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Bytes read (import) or written (export) so far.
    pub bytes: u64,
    /// Size of the input file (import).
    pub total_bytes: Option<u64>,
    /// Documents written so far.
    pub documents: u64,
    /// Documents to export, when known cheaply (export without a filter).
    pub total_documents: Option<u64>,
    /// Rows rejected so far (import with `skip_errors`).
    pub failed: u64,
}

impl Collection<'_> {
    /// Imports the file at `path` into this collection (created when missing).
    ///
    /// Documents are committed in transactions of `batch_size`; an import without
    /// `skip_errors` stops at the first bad row after committing every good row before it,
    /// and the error names the row (number, line, byte offset), the reason and the count
    /// committed. With `atomic` nothing is committed unless the whole file imports.
    ///
    /// Errors: [`crate::Error::InvalidArgument`] for a directory, an empty or UTF-16 file or
    /// a bad option, or (with `skip_errors`) an error sidecar that is a file of an open
    /// database, an existing NexusLite file or the input itself, refused before anything is
    /// imported; [`crate::Error::Parse`] for a bad row; [`crate::Error::DuplicateKey`];
    /// [`crate::Error::Io`]; [`crate::Error::InvalidArgument`] for `persistent: false`
    /// without `ttl_field`, or a `ttl_field` value that is neither milliseconds nor a date.
    ///
    /// ```
    /// use nexus::{Database, io::ImportOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = dir.path().join("people.ndjson");
    /// std::fs::write(&file, "{\"name\": \"ada\"}\n{\"name\": \"alan\"}\n").unwrap();
    /// let db = Database::open_in_memory().unwrap();
    /// let report = db.collection("people").import(&file, &ImportOptions::default()).unwrap();
    /// assert_eq!((report.read, report.imported), (2, 2));
    /// ```
    pub fn import(&self, path: impl AsRef<Path>, options: &ImportOptions) -> Result<ImportReport> {
        import_file(self.db, &self.name, path.as_ref(), options, &mut |_| {})
    }

    /// [`Collection::import`] with a progress callback.
    pub fn import_with_progress(
        &self,
        path: impl AsRef<Path>,
        options: &ImportOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ImportReport> {
        import_file(self.db, &self.name, path.as_ref(), options, progress)
    }

    /// Exports this collection's documents (those matching `options.filter`) to `path`. The
    /// file appears under its name only when complete: it is written beside it under a
    /// temporary name, synced and renamed.
    ///
    /// Errors: [`crate::Error::InvalidArgument`] when `path` is a directory or a bad option,
    /// or when [`crate::Database::check_output_path`] refuses it (a file of a database open
    /// in this process, through links too, or an existing NexusLite file): nothing is
    /// written, not even the temporary file;
    /// [`crate::Error::Io`] when the destination's directory is not writable;
    /// [`crate::Error::Parse`] for a bad filter.
    pub fn export(&self, path: impl AsRef<Path>, options: &ExportOptions) -> Result<ExportReport> {
        export_file(self.db, &self.name, path.as_ref(), options, &mut |_| {})
    }

    /// [`Collection::export`] with a progress callback.
    pub fn export_with_progress(
        &self,
        path: impl AsRef<Path>,
        options: &ExportOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ExportReport> {
        export_file(self.db, &self.name, path.as_ref(), options, progress)
    }
}
