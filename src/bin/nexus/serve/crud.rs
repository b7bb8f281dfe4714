//! The collection commands: insert, update, delete, find, count, distinct, aggregate,
//! findAndModify, createIndexes, listIndexes, dropIndexes, explain. Each reads MongoDB's
//! command shape, calls the matching [`nexus::Collection`] method, and answers in MongoDB's
//! shape: write errors per statement in `writeErrors` (11000 for a duplicate key), cursors
//! through `commands::open_cursor`.

use super::args;
use super::commands::{cursor_batch_size, open_cursor, Ctx};
use super::error::{code_of, CmdError, CmdResult};
use super::reply::Reply;
use super::state::{Source, MAX_WRITE_BATCH};
use bson::oid::ObjectId;
use bson::{doc, Bson, Document as BsonDocument};
use nexus::{
    AggregateOptions, Document, FindOneAndOptions, FindOptions, InsertManyOptions, ModifyOptions,
    UpdateModifications, UpdateResult,
};
use std::collections::VecDeque;

fn check_batch(n: usize, what: &str) -> CmdResult<()> {
    if n > MAX_WRITE_BATCH {
        return Err(CmdError::new(
            10,
            "InvalidLength",
            format!("{what}: {n} statements, more than maxWriteBatchSize {MAX_WRITE_BATCH}"),
        ));
    }
    Ok(())
}

fn i32_of(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// A count as mongod answers it: an int32, an int64 only past its range (drivers and
/// shells show an int64 as a Long).
fn count_value(n: u64) -> Bson {
    match i32::try_from(n) {
        Ok(n) => Bson::Int32(n),
        Err(_) => Bson::Int64(i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

/// One entry of `writeErrors`.
fn write_error(index: usize, e: &nexus::Error) -> BsonDocument {
    let (code, name) = code_of(e);
    let msg = if code == 11000 {
        format!("E11000 duplicate key error: {e}")
    } else {
        e.to_string()
    };
    doc! {"index": i32_of(index), "code": code, "codeName": name, "errmsg": msg}
}

fn with_write_errors(mut reply: BsonDocument, errors: Vec<BsonDocument>) -> BsonDocument {
    if !errors.is_empty() {
        reply.insert("writeErrors", errors);
    }
    reply.insert("ok", 1.0);
    reply
}

/// A document to insert, given an ObjectId `_id` first when it has none (as mongod does).
pub fn with_id(d: BsonDocument) -> Document {
    if d.contains_key("_id") {
        return Document::from_bson(d);
    }
    let mut out = BsonDocument::new();
    out.insert("_id", ObjectId::new());
    out.extend(d);
    Document::from_bson(out)
}

pub fn insert(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let coll = args::string(body, "insert")?;
    let docs = args::docs(body, "documents")?;
    check_batch(docs.len(), "insert")?;
    let ordered = args::boolean(body, "ordered")?.unwrap_or(true);
    let database = ctx.db_write(db)?;
    let r = database.collection(&coll).insert_many_with(
        docs.into_iter().map(with_id).collect(),
        InsertManyOptions { ordered },
    )?;
    let errors = r
        .write_errors
        .iter()
        .map(|w| write_error(w.index, &w.error))
        .collect();
    Ok(with_write_errors(
        doc! {"n": i32_of(r.inserted_ids.len())},
        errors,
    ))
}

/// One statement of an update command, checked before any runs.
struct UpdateStmt {
    q: BsonDocument,
    u: UpdateModifications,
    multi: bool,
    options: ModifyOptions,
}

fn update_stmt(s: &BsonDocument) -> CmdResult<UpdateStmt> {
    let q = args::doc(s, "q")?.unwrap_or_default();
    let u = match s.get("u") {
        Some(Bson::Document(d)) => UpdateModifications::Document(d.clone()),
        Some(Bson::Array(_)) => UpdateModifications::Pipeline(args::docs(s, "u")?),
        _ => {
            return Err(CmdError::parse(
                "update: 'u' must be a document or a pipeline",
            ))
        }
    };
    let array_filters = match s.get("arrayFilters") {
        None | Some(Bson::Null) => None,
        Some(_) => Some(args::docs(s, "arrayFilters")?),
    };
    Ok(UpdateStmt {
        q,
        u,
        multi: args::boolean(s, "multi")?.unwrap_or(false),
        options: ModifyOptions {
            upsert: args::boolean(s, "upsert")?.unwrap_or(false),
            array_filters,
            sort: args::doc(s, "sort")?,
            hint: s.get("hint").filter(|h| !matches!(h, Bson::Null)).cloned(),
        },
    })
}

fn run_update(c: &nexus::Collection, s: UpdateStmt) -> nexus::Result<UpdateResult> {
    let upsert = s.options.upsert;
    let r = match s.u {
        UpdateModifications::Document(d)
            if !d.keys().next().is_some_and(|k| k.starts_with('$')) =>
        {
            if s.multi {
                return Err(nexus::Error::Parse(
                    "multi update is not supported for replacement-style update".into(),
                ));
            }
            c.replace_one(&s.q, &d, s.options)
        }
        u if s.multi => c.update_many(&s.q, u, s.options),
        u => c.update_one(&s.q, u, s.options),
    };
    match r {
        // Nothing to update in a missing collection (mongod answers n: 0).
        Err(nexus::Error::NoCollection(_)) if !upsert => Ok(UpdateResult::default()),
        r => r,
    }
}

pub fn update(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let coll = args::string(body, "update")?;
    let stmts = args::docs(body, "updates")?;
    check_batch(stmts.len(), "update")?;
    let ordered = args::boolean(body, "ordered")?.unwrap_or(true);
    let stmts = stmts
        .iter()
        .map(update_stmt)
        .collect::<CmdResult<Vec<_>>>()?;
    let database = ctx.db_write(db)?;
    let c = database.collection(&coll);
    let (mut n, mut modified) = (0u64, 0u64);
    let (mut upserted, mut errors) = (Vec::new(), Vec::new());
    for (i, s) in stmts.into_iter().enumerate() {
        match run_update(&c, s) {
            Ok(r) => {
                n += r.matched;
                modified += r.modified;
                if let Some(id) = r.upserted_id {
                    n += 1;
                    upserted.push(doc! {"index": i32_of(i), "_id": id.as_bson().clone()});
                }
            }
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    let mut reply = doc! {"n": count_value(n), "nModified": count_value(modified)};
    if !upserted.is_empty() {
        reply.insert("upserted", upserted);
    }
    Ok(with_write_errors(reply, errors))
}

pub fn delete(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let coll = args::string(body, "delete")?;
    let stmts = args::docs(body, "deletes")?;
    check_batch(stmts.len(), "delete")?;
    let ordered = args::boolean(body, "ordered")?.unwrap_or(true);
    let mut parsed = Vec::with_capacity(stmts.len());
    for s in &stmts {
        let q = args::doc(s, "q")?.unwrap_or_default();
        let limit = args::int(s, "limit")?
            .ok_or_else(|| CmdError::parse("delete: each statement needs 'limit' (0 or 1)"))?;
        if limit != 0 && limit != 1 {
            return Err(CmdError::bad_value("delete: 'limit' must be 0 (all) or 1"));
        }
        parsed.push((q, limit == 0));
    }
    // A delete never creates a database file: a missing one has nothing to delete.
    let database = ctx.db_read(db)?;
    let c = database.collection(&coll);
    let mut n = 0u64;
    let mut errors = Vec::new();
    for (i, (q, multi)) in parsed.iter().enumerate() {
        match c.delete(q, *multi) {
            Ok(k) => n += k,
            Err(nexus::Error::NoCollection(_)) => {}
            Err(e) => {
                errors.push(write_error(i, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    Ok(with_write_errors(doc! {"n": count_value(n)}, errors))
}

/// find's options: the NexusLite ones, the first batch's size and `singleBatch`.
fn find_options(body: &BsonDocument) -> CmdResult<(FindOptions, Option<usize>, bool)> {
    let mut single = args::boolean(body, "singleBatch")?.unwrap_or(false);
    let limit = match args::int(body, "limit")? {
        // A negative limit: that many, in one batch (the legacy form).
        Some(n) if n < 0 => {
            single = true;
            n.unsigned_abs()
        }
        Some(n) => n.unsigned_abs(),
        None => 0,
    };
    let batch = args::count(body, "batchSize")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let opts = FindOptions {
        sort: args::doc(body, "sort")?.filter(|s| !s.is_empty()),
        projection: args::doc(body, "projection")?.filter(|p| !p.is_empty()),
        skip: args::count(body, "skip")?.unwrap_or(0),
        limit,
        hint: body
            .get("hint")
            .filter(|h| !matches!(h, Bson::Null))
            .cloned(),
    };
    Ok((opts, batch, single))
}

fn empty() -> Source {
    Source::Docs(VecDeque::new())
}

pub fn find(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<Reply> {
    let coll = args::string(body, "find")?;
    let filter = args::doc(body, "filter")?.unwrap_or_default();
    let (opts, batch, single) = find_options(body)?;
    let database = ctx.db_read(db)?;
    let source = match database.collection(&coll).find(&filter, opts) {
        Ok(c) => Source::Nexus(Box::new(c)),
        Err(nexus::Error::NoCollection(_)) => empty(),
        Err(e) => return Err(e.into()),
    };
    open_cursor(ctx, source, format!("{db}.{coll}"), batch, single)
}

pub fn count(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let coll = args::string(body, "count")?;
    let filter = args::doc(body, "query")?.unwrap_or_default();
    let skip = args::count(body, "skip")?.unwrap_or(0);
    let limit = args::int(body, "limit")?.map_or(0, i64::unsigned_abs);
    let database = ctx.db_read(db)?;
    let n = match database.collection(&coll).count(&filter) {
        Ok(n) => n,
        Err(nexus::Error::NoCollection(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut n = n.saturating_sub(skip);
    if limit > 0 {
        n = n.min(limit);
    }
    Ok(doc! {"n": count_value(n), "ok": 1.0})
}

pub fn distinct(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let coll = args::string(body, "distinct")?;
    let key = match body.get("key") {
        Some(Bson::String(k)) => k.clone(),
        _ => {
            return Err(CmdError::new(
                14,
                "TypeMismatch",
                "distinct: 'key' must be a string",
            ))
        }
    };
    let filter = args::doc(body, "query")?.unwrap_or_default();
    let database = ctx.db_read(db)?;
    let values = match database.collection(&coll).distinct(&key, &filter) {
        Ok(v) => v,
        Err(nexus::Error::NoCollection(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(doc! {"values": values, "ok": 1.0})
}

pub fn aggregate(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<Reply> {
    let coll = match body.get("aggregate") {
        Some(Bson::String(s)) => s.clone(),
        _ => {
            return Err(CmdError::new(
                238,
                "NotImplemented",
                "aggregate: only collection pipelines are supported ({aggregate: \"name\"})",
            ))
        }
    };
    let mut pipeline = args::docs(body, "pipeline")?;
    let explain = args::boolean(body, "explain")?.unwrap_or(false);
    if pipeline
        .first()
        .is_some_and(|s| s.contains_key("$collStats"))
    {
        return coll_stats_stage(ctx, db, &coll, body, &mut pipeline);
    }
    if !explain && args::doc(body, "cursor")?.is_none() {
        return Err(CmdError::parse(
            "aggregate: the 'cursor' option is required, except with explain",
        ));
    }
    let writes = pipeline
        .last()
        .is_some_and(|s| s.contains_key("$out") || s.contains_key("$merge"));
    let database = if writes {
        ctx.db_write(db)?
    } else {
        ctx.db_read(db)?
    };
    let options = AggregateOptions {
        let_vars: args::doc(body, "let")?,
        allow_disk_use: args::boolean(body, "allowDiskUse")?.unwrap_or(true),
        explain,
        ..AggregateOptions::default()
    };
    let mut cursor = database.collection(&coll).aggregate(&pipeline, options)?;
    if explain {
        let mut plan = cursor
            .next_document()?
            .map(Document::into_bson)
            .unwrap_or_default();
        plan.insert("ok", 1.0);
        return Ok(Reply::Doc(plan));
    }
    open_cursor(
        ctx,
        Source::Nexus(Box::new(cursor)),
        format!("{db}.{coll}"),
        cursor_batch_size(body)?,
        false,
    )
}

/// A pipeline that starts with `$collStats` (`count`, `storageStats`): its one document is
/// made here, and the rest of the pipeline runs over it on a private in-memory database.
fn coll_stats_stage(
    ctx: &Ctx,
    db: &str,
    coll: &str,
    body: &BsonDocument,
    pipeline: &mut Vec<BsonDocument>,
) -> CmdResult<Reply> {
    let first = pipeline.remove(0);
    let spec = match first.get("$collStats") {
        Some(Bson::Document(d)) => d.clone(),
        _ => return Err(CmdError::parse("$collStats takes a document")),
    };
    let stats = super::commands::coll_stats_doc(ctx, db, coll)?;
    let mut out = doc! {"ns": format!("{db}.{coll}"), "localTime": bson::DateTime::now()};
    for key in spec.keys() {
        match key.as_str() {
            "count" => {
                out.insert(
                    "count",
                    stats.get("count").cloned().unwrap_or(Bson::Int64(0)),
                );
            }
            "storageStats" => {
                out.insert("storageStats", stats.clone());
            }
            other => {
                return Err(CmdError::new(
                    238,
                    "NotImplemented",
                    format!("$collStats: '{other}' is not supported (count, storageStats are)"),
                ))
            }
        }
    }
    let mem = nexus::Database::open_in_memory()?;
    let c = mem.collection("collstats");
    let mut wrapped = doc! {"_id": 0};
    wrapped.extend(out);
    c.insert(Document::from_bson(wrapped))?;
    pipeline.insert(0, doc! {"$unset": "_id"});
    let cursor = c.aggregate(pipeline, AggregateOptions::default())?;
    // Computed now, whole: the documents go out with the first batch.
    let docs = cursor
        .map(|d| d.map(Document::into_bson).map_err(CmdError::from))
        .collect::<CmdResult<VecDeque<_>>>()?;
    open_cursor(
        ctx,
        Source::Docs(docs),
        format!("{db}.{coll}"),
        cursor_batch_size(body)?,
        false,
    )
}

pub fn find_and_modify(
    ctx: &Ctx,
    db: &str,
    body: &BsonDocument,
    name: &str,
) -> CmdResult<BsonDocument> {
    let coll = args::string(body, name)?;
    let query = args::doc(body, "query")?.unwrap_or_default();
    let remove = args::boolean(body, "remove")?.unwrap_or(false);
    let upsert = args::boolean(body, "upsert")?.unwrap_or(false);
    let array_filters = match body.get("arrayFilters") {
        None | Some(Bson::Null) => None,
        Some(_) => Some(args::docs(body, "arrayFilters")?),
    };
    let options = FindOneAndOptions {
        sort: args::doc(body, "sort")?.filter(|s| !s.is_empty()),
        projection: args::doc(body, "fields")?.filter(|p| !p.is_empty()),
        upsert,
        return_after: args::boolean(body, "new")?.unwrap_or(false),
        array_filters,
    };
    let update = match body.get("update") {
        None | Some(Bson::Null) => None,
        Some(Bson::Document(d)) => Some(UpdateModifications::Document(d.clone())),
        Some(Bson::Array(_)) => Some(UpdateModifications::Pipeline(args::docs(body, "update")?)),
        Some(_) => {
            return Err(CmdError::parse(
                "findAndModify: 'update' must be a document or a pipeline",
            ))
        }
    };
    let database = ctx.db_write(db)?;
    let c = database.collection(&coll);
    let (value, last) = match (remove, update) {
        (true, Some(_)) => {
            return Err(CmdError::parse(
                "findAndModify: either 'remove' or 'update', not both",
            ))
        }
        (true, None) => {
            if upsert {
                return Err(CmdError::parse("findAndModify: 'upsert' needs 'update'"));
            }
            let found = match c.find_one_and_delete(&query, options) {
                Err(nexus::Error::NoCollection(_)) => None,
                r => r?,
            };
            let n = i32::from(found.is_some());
            (found, doc! {"n": n})
        }
        (false, None) => return Err(CmdError::parse("findAndModify: needs 'remove' or 'update'")),
        (false, Some(u)) => {
            // Whether a document matched, to tell an update from an upsert (the answer
            // does not say when it returns the document as it was).
            let existed = !upsert
                || match c.count(&query) {
                    Ok(n) => n > 0,
                    Err(nexus::Error::NoCollection(_)) => false,
                    Err(e) => return Err(e.into()),
                };
            let return_after = options.return_after;
            let found = match c.find_one_and_update_with(&query, u, options) {
                Err(nexus::Error::NoCollection(_)) if !upsert => None,
                r => r?,
            };
            let matched = if upsert { existed } else { found.is_some() };
            let mut last = doc! {"n": i32::from(matched || upsert), "updatedExisting": matched};
            if upsert && !matched && return_after {
                if let Some(id) = found.as_ref().and_then(|d| d.id()) {
                    last.insert("upserted", id.clone());
                }
            }
            (found, last)
        }
    };
    Ok(doc! {
        "lastErrorObject": last,
        "value": value.map_or(Bson::Null, |d| Bson::Document(d.into_bson())),
        "ok": 1.0,
    })
}

pub fn create_indexes(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let coll = args::string(body, "createIndexes")?;
    let specs = args::docs(body, "indexes")?;
    if specs.is_empty() {
        return Err(CmdError::bad_value(
            "createIndexes: 'indexes' must not be empty",
        ));
    }
    let database = ctx.db_write(db)?;
    let existed = database.list_collections()?.contains(&coll);
    let c = database.collection(&coll);
    let before = if existed { c.list_indexes()?.len() } else { 1 };
    for spec in specs {
        let key = args::doc(&spec, "key")?
            .ok_or_else(|| CmdError::parse("createIndexes: each index needs 'key'"))?;
        let mut options = spec;
        for k in ["key", "v", "ns", "background"] {
            options.remove(k);
        }
        c.create_index(&key, &options)?;
    }
    let after = c.list_indexes()?.len();
    Ok(doc! {
        "numIndexesBefore": i32_of(before),
        "numIndexesAfter": i32_of(after),
        "createdCollectionAutomatically": !existed,
        "ok": 1.0,
    })
}

pub fn list_indexes(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<Reply> {
    let coll = args::string(body, "listIndexes")?;
    let database = ctx.db_read(db)?;
    let indexes = match database.collection(&coll).list_indexes() {
        Ok(i) => i,
        Err(nexus::Error::NoCollection(_)) => {
            return Err(CmdError::ns_not_found(format!(
                "ns does not exist: {db}.{coll}"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    open_cursor(
        ctx,
        Source::Docs(indexes.into()),
        format!("{db}.$cmd.listIndexes.{coll}"),
        cursor_batch_size(body)?,
        false,
    )
}

pub fn drop_indexes(
    ctx: &Ctx,
    db: &str,
    body: &BsonDocument,
    name: &str,
) -> CmdResult<BsonDocument> {
    let coll = args::string(body, name)?;
    let database = ctx.db_read(db)?;
    let c = database.collection(&coll);
    let existing = match c.list_indexes() {
        Ok(i) => i,
        Err(nexus::Error::NoCollection(_)) => {
            return Err(CmdError::ns_not_found(format!("ns not found {db}.{coll}")))
        }
        Err(e) => return Err(e.into()),
    };
    let names: Vec<String> = match body.get("index") {
        Some(Bson::String(s)) => vec![s.clone()],
        Some(Bson::Array(items)) => items
            .iter()
            .map(|v| match v {
                Bson::String(s) => Ok(s.clone()),
                _ => Err(CmdError::bad_value(
                    "dropIndexes: index names must be strings",
                )),
            })
            .collect::<CmdResult<_>>()?,
        Some(Bson::Document(key)) => {
            let found = existing
                .iter()
                .find(|i| i.get_document("key").is_ok_and(|k| k == key))
                .and_then(|i| i.get_str("name").ok())
                .ok_or_else(|| {
                    CmdError::new(
                        27,
                        "IndexNotFound",
                        format!("can't find index with key: {key}"),
                    )
                })?;
            vec![found.to_owned()]
        }
        _ => {
            return Err(CmdError::parse(
                "dropIndexes: 'index' must be a name, names or a key pattern",
            ))
        }
    };
    for n in &names {
        match c.drop_index(n) {
            Ok(()) => {}
            Err(nexus::Error::NotFound(_)) => {
                return Err(CmdError::new(
                    27,
                    "IndexNotFound",
                    format!("index not found with name [{n}]"),
                ))
            }
            Err(nexus::Error::InvalidArgument(m)) if n == "_id_" => {
                return Err(CmdError::new(72, "InvalidOptions", m))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(doc! {"nIndexesWas": i32_of(existing.len()), "ok": 1.0})
}

pub fn explain(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let inner = args::doc(body, "explain")?
        .ok_or_else(|| CmdError::parse("explain: needs the command to explain"))?;
    if inner.keys().next().map(String::as_str) != Some("find") {
        return Err(CmdError::new(
            238,
            "NotImplemented",
            "explain: only find is explained by this server (aggregate takes explain: true)",
        ));
    }
    let coll = args::string(&inner, "find")?;
    let filter = args::doc(&inner, "filter")?.unwrap_or_default();
    let (opts, _, _) = find_options(&inner)?;
    let database = ctx.db_read(db)?;
    let mut plan = database.collection(&coll).explain(&filter, opts)?;
    plan.insert("ok", 1.0);
    Ok(plan)
}
