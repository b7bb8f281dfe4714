//! The import driver, [`import_file`]: opens and sniffs the file (`detect`), reads it row by
//! row through a format's `Source`, and writes documents through the public Rust API in
//! transactions of `batch_size` documents ([`Batcher`]).
//!
//! Guarantees: memory is bounded by one row, the read buffer and one open transaction; a row
//! that fails (bad text, duplicate `_id`, oversized document) either stops the import, after
//! committing every good row before it, with an error naming the row and the number of
//! committed documents, or, with `skip_errors`, goes to the sidecar and the import goes on.
//! With `atomic`, one transaction covers the whole file and any stop commits nothing. Inside
//! a transaction the caller opened on the connection, the import joins it and commits nothing
//! itself.

use super::bson::BsonSource;
use super::csv::CsvSource;
use super::detect::{detect, open_input, sniff_delimiter};
use super::json::JsonSource;
use super::ndjson::NdjsonSource;
use super::options::{Format, ImportOptions};
use super::report::{count_of, ImportReport, RowPos, Sidecar};
use super::source::Source;
use super::Progress;
use crate::api::collection::check_collection_name;
use crate::api::database::same_file;
use crate::document::body::NewBody;
use crate::error::{Error, Result};
use crate::Database;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Instant;

/// Read buffer of the input file.
const READ_BUFFER: usize = 256 * 1024;
/// Rows between two progress calls (besides one per batch).
const PROGRESS_EVERY: u64 = 4096;

/// Writes documents in transactions of `batch_size`, or into one enclosing transaction.
struct Batcher<'a> {
    db: &'a Database,
    coll: &'a str,
    batch_size: usize,
    /// Whether the batcher begins and commits transactions itself.
    own: bool,
    open: bool,
    pending: u64,
    committed: u64,
    batches: u64,
    dry_run: bool,
}

impl Batcher<'_> {
    /// Inserts one document. A failure of the document itself (`DuplicateKey`,
    /// `InvalidArgument`) leaves the transaction as it was.
    fn insert(&mut self, body: NewBody, expires_at: Option<i64>) -> Result<()> {
        if self.dry_run {
            // The checks of an insert: `_id`, nesting, size.
            body.finish()?;
            self.pending += 1;
            return self.maybe_commit();
        }
        if self.own && !self.open {
            self.db.begin()?;
            self.open = true;
        }
        self.db
            .collection(self.coll)
            .insert_expiring(body, expires_at)?;
        self.pending += 1;
        self.maybe_commit()
    }

    fn maybe_commit(&mut self) -> Result<()> {
        if self.pending >= self.batch_size as u64 {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits the open batch (a no-op inside an enclosing transaction, which counts
    /// documents as committed only when it ends).
    fn commit(&mut self) -> Result<()> {
        if self.pending == 0 && !self.open {
            return Ok(());
        }
        if self.open {
            self.open = false;
            self.db.commit()?;
        }
        if self.own || self.dry_run {
            self.committed += self.pending;
            self.pending = 0;
            self.batches += 1;
        }
        Ok(())
    }

    /// Abandons the open batch.
    fn rollback(&mut self) {
        if self.open {
            self.open = false;
            let _ = self.db.rollback();
        }
    }

    /// Documents written so far, committed or pending in the enclosing transaction.
    fn written(&self) -> u64 {
        self.committed + self.pending
    }
}

/// Re-labels an error with where the import stopped and what was committed.
fn stopped(e: Error, path: &Path, pos: Option<&RowPos>, committed: &str) -> Error {
    let at = pos
        .map(|p| format!(" at {}", p.describe()))
        .unwrap_or_default();
    let msg = |m: &str| format!("import of {} stopped{at}: {m}; {committed}", path.display());
    match e {
        Error::Parse(m) => Error::Parse(msg(&m)),
        Error::InvalidArgument(m) => Error::InvalidArgument(msg(&m)),
        Error::DuplicateKey(m) => Error::DuplicateKey(msg(&m)),
        Error::Io { path: p, source } => Error::Io {
            path: p,
            source: std::io::Error::new(source.kind(), msg(&source.to_string())),
        },
        other => other,
    }
}

/// When a row's document expires under the `ttl_field` option (`None`: never).
fn expiry(opts: &ImportOptions, body: &NewBody, now: i64) -> Result<Option<i64>> {
    match body {
        NewBody::Doc(d) => opts.expiry_of(d.as_bson(), now),
        NewBody::Raw(_) if opts.ttl_field.is_none() => Ok(None),
        // The sources give bytes only when no TTL field is asked for.
        NewBody::Raw(_) => Err(Error::Internal(
            "import: a row was read as bytes although ttl_field needs its document".into(),
        )),
    }
}

/// Whether an insert error belongs to the document (skippable) rather than the database.
fn row_error(e: &Error) -> bool {
    matches!(
        e,
        Error::DuplicateKey(_) | Error::InvalidArgument(_) | Error::Parse(_)
    )
}

/// Refuses an error sidecar that would overwrite a database's file (see
/// [`Database::check_output_path`]) or the input itself, which it would truncate while it is
/// being read.
fn check_sidecar(sidecar: &Path, input: &Path) -> Result<()> {
    Database::check_output_path(sidecar, "error sidecar")?;
    if same_file(sidecar, input) {
        return Err(Error::invalid(format!(
            "error sidecar {} is the input file {} of the import; refusing to overwrite it",
            sidecar.display(),
            input.display()
        )));
    }
    Ok(())
}

/// Imports `path` into collection `coll` of `db`; see the module doc for the guarantees.
/// `progress` is called every few thousand rows and at the end.
pub fn import_file(
    db: &Database,
    coll: &str,
    path: &Path,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportReport> {
    let started = Instant::now();
    opts.check_supported()?;
    check_collection_name(coll)?;
    if let Some(key) = &opts.verify_key {
        crate::crypto::verify_file(path, key)?;
    }
    let sidecar_path = opts.skip_errors.then(|| {
        opts.error_sidecar
            .clone()
            .unwrap_or_else(|| Sidecar::default_path(path))
    });
    if let Some(s) = &sidecar_path {
        check_sidecar(s, path)?;
    }
    let (file, total, head) = open_input(path)?;
    let found = detect(path, &head, total, opts.format)?;
    let mut input = BufReader::with_capacity(READ_BUFFER, file);
    std::io::copy(
        &mut (&mut input).take(found.skip as u64),
        &mut std::io::sink(),
    )
    .map_err(|e| Error::io(path, e))?;
    let start = found.skip as u64;
    let p = path.to_path_buf();
    // Documents straight as BSON bytes unless something must look into them: the TTL field,
    // or the error sidecar (which shows a refused document as its JSON).
    let direct = opts.ttl_field.is_none() && sidecar_path.is_none();
    let mut source: Box<dyn Source> = match found.format {
        Format::Ndjson => Box::new(NdjsonSource::new(input, p, start, direct)),
        Format::Json => Box::new(JsonSource::new(input, p, start, opts.array_mode, direct)),
        Format::Bson => Box::new(BsonSource::new(input, p, direct)),
        Format::Csv => {
            let delim = opts
                .csv
                .delimiter
                .unwrap_or_else(|| sniff_delimiter(&head[found.skip..]));
            Box::new(CsvSource::new(
                input,
                p,
                start,
                &opts.csv,
                delim,
                opts.csv.delimiter.is_some(),
            )?)
        }
        Format::Auto => unreachable!("detect resolves Auto"),
    };

    let outer = !opts.dry_run && db.in_transaction();
    let atomic = opts.atomic && !opts.dry_run && !outer;
    if atomic {
        db.begin()?;
    }
    let mut batcher = Batcher {
        db,
        coll,
        batch_size: if atomic { usize::MAX } else { opts.batch_size },
        own: !outer && !atomic,
        open: false,
        pending: 0,
        committed: 0,
        batches: 0,
        dry_run: opts.dry_run,
    };
    let mut sidecar = sidecar_path.map(Sidecar::new);
    let mut report = ImportReport {
        format: found.format,
        read: 0,
        imported: 0,
        failed: 0,
        bytes: 0,
        elapsed_ms: 0,
        batches: 0,
        error_sidecar: None,
        dry_run: opts.dry_run,
    };

    let result = (|| -> std::result::Result<(), (Error, Option<RowPos>)> {
        loop {
            let row = match source.next_row() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err((e, None)),
            };
            report.read += 1;
            let failure = match row.doc {
                Ok(body) => {
                    // The sidecar shows a refused document as its JSON text (the source
                    // gives documents, not bytes, when there is a sidecar).
                    let keep = match (&sidecar, &body) {
                        (Some(_), NewBody::Doc(d)) => Some(d.clone()),
                        _ => None,
                    };
                    let inserted = expiry(opts, &body, crate::document::now_millis())
                        .and_then(|at| batcher.insert(body, at));
                    match inserted {
                        Ok(()) => None,
                        Err(e) if row_error(&e) => {
                            let raw = keep.map(|d| d.to_json().into_bytes());
                            Some((e, raw.unwrap_or_default()))
                        }
                        Err(e) => return Err((e, Some(row.pos))),
                    }
                }
                Err(rej) => Some((Error::Parse(rej.reason), rej.raw)),
            };
            if let Some((e, raw)) = failure {
                match sidecar.as_mut() {
                    Some(s) => {
                        s.record(&row.pos, &raw, &e.to_string())
                            .map_err(|se| (se, Some(row.pos.clone())))?;
                        report.failed += 1;
                    }
                    None => return Err((e, Some(row.pos))),
                }
            }
            if report.read.is_multiple_of(PROGRESS_EVERY) {
                progress(&Progress {
                    bytes: source.bytes_read(),
                    total_bytes: Some(total),
                    total_documents: None,
                    documents: batcher.written(),
                    failed: report.failed,
                });
            }
        }
    })();

    report.bytes = source.bytes_read();
    let finish = match result {
        Ok(()) => batcher.commit().map_err(|e| (e, None)),
        Err((e, pos)) if atomic || outer => Err((e, pos)),
        Err((e, pos)) => {
            // Keep every good row before the failure: commit the open batch.
            match batcher.commit() {
                Ok(()) => Err((e, pos)),
                Err(ce) => {
                    batcher.rollback();
                    Err((ce, pos))
                }
            }
        }
    };
    let finish = match finish {
        Ok(()) if atomic => db.commit().map_err(|e| (e, None)),
        Ok(()) => Ok(()),
        Err(ep) => {
            if atomic {
                let _ = db.rollback();
            }
            Err(ep)
        }
    };
    let sidecar_path = match sidecar {
        Some(s) => s.finish()?,
        None => None,
    };
    if let Err((e, pos)) = finish {
        let committed = if opts.dry_run {
            "nothing was written (dry run)".to_owned()
        } else if atomic {
            "nothing was committed (atomic import)".to_owned()
        } else if outer {
            let n = batcher.written();
            format!(
                "{} {} written into the open transaction before it",
                count_of(n, "document"),
                if n == 1 { "was" } else { "were" }
            )
        } else {
            let n = batcher.committed;
            format!(
                "{} {} committed before it",
                count_of(n, "document"),
                if n == 1 { "was" } else { "were" }
            )
        };
        return Err(stopped(e, path, pos.as_ref(), &committed));
    }
    report.imported = batcher.written();
    report.batches = if atomic { 1 } else { batcher.batches };
    report.error_sidecar = sidecar_path;
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    progress(&Progress {
        bytes: report.bytes,
        total_bytes: Some(total),
        total_documents: None,
        documents: report.imported,
        failed: report.failed,
    });
    Ok(report)
}
