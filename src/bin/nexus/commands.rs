//! The document commands shared by the one-shot subcommands and the shell: find, count,
//! insert, update, delete, collections, stats, and the index commands create-index, drop-index,
//! indexes, explain; and keygen, sign and verify (keys and signature files, no database).
//! Each takes parsed arguments, runs them
//! through the Rust API and writes plain results to `out` (documents as relaxed Extended
//! JSON, one per line; counts as bare numbers).

use crate::relaxed::to_strict_json;
use nexus::{AggregateOptions, Database, Document, FindOptions, ModifyOptions, UpdateOptions};
use std::io::Write;

/// A command failure: a message for stderr.
pub type CmdResult = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Parses relaxed JSON that must be one object, for `what` (filter, update, document, ...).
pub fn parse_object(text: &str, what: &str) -> Result<bson::Document, String> {
    let strict = to_strict_json(text).map_err(|e| format!("{what}: {e}"))?;
    Document::from_json(&strict)
        .map(Document::into_bson)
        .map_err(|e| format!("{what}: {e}"))
}

/// Parses `--array-filters` (relaxed JSON: `[{x: {$gte: 100}}]`).
pub fn parse_array_filters(text: &str) -> Result<Vec<bson::Document>, String> {
    let strict = to_strict_json(&format!("{{arrayFilters: {text}}}"))
        .map_err(|e| format!("--array-filters: {e}"))?;
    ModifyOptions::from_json(Some(&strict))
        .map(|o| o.array_filters.unwrap_or_default())
        .map_err(|e| format!("--array-filters: {e}"))
}

/// Parses an optional filter (absent: match all).
pub fn parse_filter(text: Option<&str>) -> Result<bson::Document, String> {
    match text {
        None => Ok(bson::Document::new()),
        Some(t) if t.trim().is_empty() => Ok(bson::Document::new()),
        Some(t) => parse_object(t, "filter"),
    }
}

/// Find options from relaxed JSON (`{sort: {age: -1}, limit: 5}`).
pub fn parse_find_options(text: Option<&str>) -> Result<FindOptions, String> {
    match text {
        None => Ok(FindOptions::default()),
        Some(t) => {
            let strict = to_strict_json(t).map_err(|e| format!("find options: {e}"))?;
            FindOptions::from_json(&strict).map_err(err)
        }
    }
}

/// Prints every match, one document per line.
pub fn find(
    db: &Database,
    coll: &str,
    filter: &bson::Document,
    opts: FindOptions,
    out: &mut dyn Write,
) -> CmdResult {
    for doc in db.collection(coll).find(filter, opts).map_err(err)? {
        let doc = doc.map_err(err)?;
        writeln!(out, "{}", doc.to_json()).map_err(err)?;
    }
    Ok(())
}

/// Runs an aggregation pipeline (a JSON array of stages, mongosh-style JSON allowed) and
/// prints the results, one document per line.
pub fn aggregate(
    db: &Database,
    coll: &str,
    pipeline: &str,
    options: Option<&str>,
    out: &mut dyn Write,
) -> CmdResult {
    let strict = to_strict_json(pipeline).map_err(|e| format!("pipeline: {e}"))?;
    let opts = match options {
        None => AggregateOptions::default(),
        Some(t) => {
            let strict = to_strict_json(t).map_err(|e| format!("aggregate options: {e}"))?;
            AggregateOptions::from_json(Some(&strict)).map_err(err)?
        }
    };
    for doc in db
        .collection(coll)
        .aggregate_json(&strict, opts)
        .map_err(err)?
    {
        let doc = doc.map_err(err)?;
        writeln!(out, "{}", doc.to_json()).map_err(err)?;
    }
    Ok(())
}

/// Prints a vector search's documents, best first, one JSON line each.
pub fn vector_search(db: &Database, coll: &str, spec: &str, out: &mut dyn Write) -> CmdResult {
    let strict = to_strict_json(spec).map_err(|e| format!("vector search: {e}"))?;
    for doc in db
        .collection(coll)
        .vector_search_json(&strict)
        .map_err(err)?
    {
        let doc = doc.map_err(err)?;
        writeln!(out, "{}", doc.to_json()).map_err(err)?;
    }
    Ok(())
}

/// Prints the number of matches.
pub fn count(db: &Database, coll: &str, filter: &bson::Document, out: &mut dyn Write) -> CmdResult {
    let n = db.collection(coll).count(filter).map_err(err)?;
    writeln!(out, "{n}").map_err(err)
}

/// Inserts one document, or every document of a JSON array (atomically); prints the ids.
pub fn insert(db: &Database, coll: &str, text: &str, out: &mut dyn Write) -> CmdResult {
    let strict = to_strict_json(text).map_err(|e| format!("document: {e}"))?;
    let c = db.collection(coll);
    if strict.trim_start().starts_with('[') {
        let value: serde_json::Value =
            serde_json::from_str(&strict).map_err(|e| format!("documents: {e}"))?;
        let docs = value
            .as_array()
            .expect("starts with '['")
            .iter()
            .map(|v| Document::from_json(&v.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        for id in c.insert_many(docs).map_err(err)? {
            writeln!(out, "{}", id.to_text()).map_err(err)?;
        }
        return Ok(());
    }
    let doc = Document::from_json(&strict).map_err(|e| format!("document: {e}"))?;
    let id = c.insert(doc).map_err(err)?;
    writeln!(out, "{}", id.to_text()).map_err(err)
}

/// Updates the first match (or all with `multi`); prints what happened.
pub fn update(
    db: &Database,
    coll: &str,
    filter: &bson::Document,
    update: &bson::Document,
    options: UpdateOptions,
    array_filters: Option<Vec<bson::Document>>,
    out: &mut dyn Write,
) -> CmdResult {
    let c = db.collection(coll);
    let r = match array_filters {
        // With arrayFilters: MongoDB's update form (operators only).
        Some(filters) => {
            let o = ModifyOptions {
                upsert: options.upsert,
                array_filters: Some(filters),
                ..ModifyOptions::default()
            };
            if options.multi {
                c.update_many(filter, update.clone(), o)
            } else {
                c.update_one(filter, update.clone(), o)
            }
        }
        None => c.update(filter, update, options),
    }
    .map_err(err)?;
    match r.upserted_id {
        Some(id) => writeln!(
            out,
            "matched {}, modified {}, upserted {}",
            r.matched,
            r.modified,
            id.to_text()
        ),
        None => writeln!(out, "matched {}, modified {}", r.matched, r.modified),
    }
    .map_err(err)
}

/// Deletes the first match (or all with `multi`); prints the number deleted.
pub fn delete(
    db: &Database,
    coll: &str,
    filter: &bson::Document,
    multi: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let n = db.collection(coll).delete(filter, multi).map_err(err)?;
    writeln!(out, "deleted {n}").map_err(err)
}

/// Prints the collection names, one per line.
pub fn collections(db: &Database, out: &mut dyn Write) -> CmdResult {
    for name in db.list_collections().map_err(err)? {
        writeln!(out, "{name}").map_err(err)?;
    }
    Ok(())
}

/// Prints the statistics as indented JSON.
pub fn stats(db: &Database, out: &mut dyn Write) -> CmdResult {
    let s = db.stats().map_err(err)?;
    writeln!(out, "{}", serde_json::to_string_pretty(&s).map_err(err)?).map_err(err)
}

/// Creates a secondary index; prints its name.
pub fn create_index(
    db: &Database,
    coll: &str,
    keys: &bson::Document,
    options: &bson::Document,
    out: &mut dyn Write,
) -> CmdResult {
    let name = db
        .collection(coll)
        .create_index(keys, options)
        .map_err(err)?;
    writeln!(out, "{name}").map_err(err)
}

/// Drops the secondary index `name`.
pub fn drop_index(db: &Database, coll: &str, name: &str) -> CmdResult {
    db.collection(coll).drop_index(name).map_err(err)
}

/// Prints the indexes as one JSON array (the `_id` index first).
pub fn indexes(db: &Database, coll: &str, out: &mut dyn Write) -> CmdResult {
    let list = db.collection(coll).list_indexes().map_err(err)?;
    let arr = bson::Bson::Array(list.into_iter().map(bson::Bson::Document).collect());
    writeln!(out, "{}", arr.into_relaxed_extjson()).map_err(err)
}

/// Prints the plan of a find and what it examined as indented JSON.
pub fn explain(
    db: &Database,
    coll: &str,
    filter: &bson::Document,
    opts: FindOptions,
    out: &mut dyn Write,
) -> CmdResult {
    let plan = db.collection(coll).explain(filter, opts).map_err(err)?;
    let json = bson::Bson::Document(plan).into_relaxed_extjson();
    writeln!(out, "{}", serde_json::to_string_pretty(&json).map_err(err)?).map_err(err)
}

/// Reads a PEM key file (its text is never put in a message).
pub fn read_key(path: &std::path::Path) -> Result<nexus::crypto::Zeroizing<String>, String> {
    std::fs::read_to_string(path)
        .map(nexus::crypto::Zeroizing::new)
        .map_err(|e| format!("key file {}: {e}", path.display()))
}

/// Writes `text` to a new file (never over an existing one), readable by its owner only
/// when `private`.
fn write_new(path: &std::path::Path, text: &str, private: bool) -> CmdResult {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn keygen(
    private: &std::path::Path,
    public: &std::path::Path,
    algorithm: Option<&str>,
) -> CmdResult {
    let (private_pem, public_pem) = nexus::crypto::keygen(algorithm).map_err(err)?;
    // Both names are checked before either file is written.
    for p in [private, public] {
        if p.symlink_metadata().is_ok() {
            return Err(format!("{} already exists", p.display()));
        }
    }
    write_new(private, &private_pem, true)?;
    write_new(public, &public_pem, false)
}

pub fn sign(file: &std::path::Path, key: &std::path::Path) -> CmdResult {
    nexus::io::sign_file(file, &read_key(key)?).map_err(err)
}

pub fn verify(
    file: &std::path::Path,
    key: &std::path::Path,
    quiet: bool,
    out: &mut dyn Write,
) -> CmdResult {
    nexus::crypto::verify_file(file, &read_key(key)?).map_err(err)?;
    if !quiet {
        writeln!(out, "{}: signature verified", file.display()).map_err(err)?;
    }
    Ok(())
}
