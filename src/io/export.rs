//! The export driver, [`export_file`]: runs the filter as a `find` over one snapshot and
//! streams the documents into an [`AtomicFile`] in the chosen format. CSV without explicit
//! `fields` first walks a second cursor (opened at the same time) to collect the columns:
//! every leaf path seen, in first-seen order.

use super::bson;
use super::csv::CsvSink;
use super::detect::format_from_extension;
use super::json::JsonWriter;
use super::ndjson;
use super::options::{ExportOptions, Format};
use super::report::ExportReport;
use super::sink::AtomicFile;
use super::Progress;
use crate::error::{Error, Result};
use crate::{Database, FindOptions};
use std::path::Path;
use std::time::Instant;

/// Documents between two progress calls.
const PROGRESS_EVERY: u64 = 4096;

/// Exports collection `coll` of `db` (the documents matching `opts.filter`) to `path`,
/// written under a temporary name and renamed into place only when complete. A missing
/// collection exports an empty file. `progress` is called every few thousand documents.
/// A `path` that [`Database::check_output_path`] refuses (a file of an open database, an
/// existing NexusLite file) is [`Error::InvalidArgument`] before anything is created.
pub fn export_file(
    db: &Database,
    coll: &str,
    path: &Path,
    opts: &ExportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ExportReport> {
    let started = Instant::now();
    Database::check_output_path(path, "export destination")?;
    if let Some(key) = &opts.sign_key {
        key.check()?;
    }
    let format = match opts.format {
        Format::Auto => format_from_extension(path).unwrap_or(Format::Ndjson),
        f => f,
    };
    let filter = opts.filter.clone().unwrap_or_default();
    let c = db.collection(coll);
    let total = if filter.is_empty() {
        Some(c.count(&filter)?)
    } else {
        None
    };
    let mut out = AtomicFile::create(path)?;
    let io = |e: std::io::Error| Error::io(path, e);
    let mut cursor = c.find(&filter, FindOptions::default())?;
    let mut exported = 0u64;
    let mut tick = |n: u64, bytes: u64| {
        if n.is_multiple_of(PROGRESS_EVERY) {
            progress(&Progress {
                bytes,
                total_bytes: None,
                documents: n,
                total_documents: total,
                failed: 0,
            });
        }
    };
    match format {
        Format::Ndjson | Format::Auto => {
            for doc in cursor {
                ndjson::write_doc(&mut out, doc?.into_bson(), opts.extended_json).map_err(io)?;
                exported += 1;
                tick(exported, out.written());
            }
        }
        Format::Json => {
            let mut w = JsonWriter::new(
                opts.array_mode.unwrap_or(true),
                opts.pretty,
                opts.extended_json,
            );
            w.begin(&mut out).map_err(io)?;
            for doc in cursor {
                w.write_doc(&mut out, doc?.into_bson()).map_err(io)?;
                exported += 1;
                tick(exported, out.written());
            }
            w.end(&mut out).map_err(io)?;
        }
        Format::Bson => {
            for doc in cursor {
                bson::write_doc(&mut out, doc?.as_bson()).map_err(io)?;
                exported += 1;
                tick(exported, out.written());
            }
        }
        Format::Csv => {
            let given = opts.fields.is_some();
            let columns = match &opts.fields {
                Some(f) => f.clone(),
                None => {
                    let first_pass = cursor;
                    cursor = c.find(&filter, FindOptions::default())?;
                    collect_columns(first_pass)?
                }
            };
            let known: std::collections::HashSet<String> = columns.iter().cloned().collect();
            let mut sink = CsvSink::new(&mut out, columns, &opts.csv, opts.extended_json)?;
            for doc in cursor {
                let doc = doc?.into_bson();
                if !given {
                    let mut extra = None;
                    super::cell::flatten(&doc, "", &mut |p, _| {
                        if extra.is_none() && !known.contains(&p) {
                            extra = Some(p);
                        }
                    });
                    if let Some(p) = extra {
                        return Err(Error::Busy(format!(
                            "the collection changed during the export (new field '{p}'); run it again"
                        )));
                    }
                }
                sink.write_doc(&doc)
                    .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
                exported += 1;
                tick(exported, 0);
            }
            sink.into_inner()?;
        }
    }
    let bytes = out.commit()?;
    if let Some(key) = &opts.sign_key {
        super::sign_file(path, key.as_str())?;
    }
    progress(&Progress {
        bytes,
        total_bytes: None,
        documents: exported,
        total_documents: total,
        failed: 0,
    });
    Ok(ExportReport {
        format,
        exported,
        bytes,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        path: path.to_path_buf(),
    })
}

/// Every leaf path of the cursor's documents, in first-seen order.
fn collect_columns(cursor: crate::Cursor) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut columns = Vec::new();
    for doc in cursor {
        let doc = doc?;
        super::cell::flatten(doc.as_bson(), "", &mut |p, _| {
            if !seen.contains(&p) {
                seen.insert(p.clone());
                columns.push(p);
            }
        });
    }
    Ok(columns)
}
