//! The Atlas Data API v1 actions: `POST /app/{app}/endpoint/data/v1/action/{action}` with
//! `{dataSource, database, collection, ...}` and MongoDB's Data API answers:
//!
//! | action | body | answer |
//! |---|---|---|
//! | findOne | filter, projection | `{document}` (null when none matches) |
//! | find | filter, projection, sort, limit, skip | `{documents}` |
//! | insertOne | document | 201 `{insertedId}` |
//! | insertMany | documents | 201 `{insertedIds}` |
//! | updateOne, updateMany | filter, update, upsert | `{matchedCount, modifiedCount[, upsertedId]}` |
//! | replaceOne | filter, replacement, upsert | as updateOne |
//! | deleteOne, deleteMany | filter | `{deletedCount}` |
//! | aggregate | pipeline | `{documents}` |
//!
//! `dataSource` is accepted and ignored (one server, one data source). A missing
//! collection reads as empty, as in MongoDB. `find` and `aggregate` answer at most
//! [`MAX_DOCUMENTS`] documents (the Data API's own cap); past it the request is refused with
//! 400 `ResultTooLarge` (page with `skip`/`limit`, or stream with the native NDJSON find).

use super::{blocking, parse_body, read_body, ApiError, App, Caller, Ejson};
use crate::serve::args;
use crate::serve::crud::with_id;
use crate::serve::state::{Server, MAX_WRITE_BATCH};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bson::{doc, Bson, Document as BsonDocument};
use nexus::{
    AggregateOptions, Document, FindOptions, InsertManyOptions, ModifyOptions, UpdateModifications,
    UpdateResult,
};
use std::sync::Arc;

/// The most documents `find` and `aggregate` answer in one response.
pub const MAX_DOCUMENTS: u64 = 50_000;

/// The actions, and whether each writes.
pub const ACTIONS: &[(&str, bool)] = &[
    ("findOne", false),
    ("find", false),
    ("insertOne", true),
    ("insertMany", true),
    ("updateOne", true),
    ("updateMany", true),
    ("replaceOne", true),
    ("deleteOne", true),
    ("deleteMany", true),
    ("aggregate", false),
];

pub async fn action(
    State(app): State<Arc<App>>,
    Path((_app, action)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    match run(app, action, caller, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(
    app: Arc<App>,
    action: String,
    caller: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let Some(&(_, writes)) = ACTIONS.iter().find(|(a, _)| *a == action) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ActionNotFound",
            format!(
                "no action '{action}': {}",
                ACTIONS
                    .iter()
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let (parts, body) = req.into_parts();
    let format = Ejson::of_request(&parts.headers)?;
    let out = Ejson::of_response(&parts.headers, format);
    let bytes = read_body(&app, body, &parts.headers).await?;
    let body = parse_body(&bytes)?;
    if !matches!(body.get("dataSource"), None | Some(Bson::String(_))) {
        return Err(ApiError::bad("'dataSource' must be a string"));
    }
    let database = required_string(&body, "database")?;
    let collection = required_string(&body, "collection")?;
    let pipeline_writes = action == "aggregate"
        && args::docs(&body, "pipeline")
            .ok()
            .and_then(|p| p.last().cloned())
            .is_some_and(|s| s.contains_key("$out") || s.contains_key("$merge"));
    caller.check(&database, writes || pipeline_writes)?;
    let server = Arc::clone(&app.server);
    let (status, answer) = blocking(move || {
        let write = writes || pipeline_writes;
        // A delete never creates a database file.
        let creates = write && !action.starts_with("delete");
        let db = server_handle(&server, &database, creates)?;
        let c = db.collection(&collection);
        execute(&c, &action, &body)
    })
    .await?;
    Ok(out.respond(status, answer))
}

fn server_handle<'a>(
    server: &'a Server,
    db: &str,
    write: bool,
) -> Result<crate::serve::state::Lent<'a>, ApiError> {
    Ok(server.handle(db, write)?)
}

fn required_string(body: &BsonDocument, key: &str) -> Result<String, ApiError> {
    match body.get(key) {
        Some(Bson::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(ApiError::bad(format!("'{key}' must be a non-empty string"))),
        None => Err(ApiError::bad(format!("missing parameter '{key}'"))),
    }
}

fn filter(body: &BsonDocument) -> Result<BsonDocument, ApiError> {
    Ok(args::doc(body, "filter")?.unwrap_or_default())
}

/// An empty result for a missing collection.
fn or_empty<T: Default>(r: nexus::Result<T>) -> Result<T, ApiError> {
    match r {
        Err(nexus::Error::NoCollection(_)) => Ok(T::default()),
        r => Ok(r?),
    }
}

/// The documents of a cursor, at most [`MAX_DOCUMENTS`].
fn collect(cursor: nexus::Cursor) -> Result<Vec<Bson>, ApiError> {
    let mut out = Vec::new();
    for d in cursor {
        if out.len() as u64 >= MAX_DOCUMENTS {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ResultTooLarge",
                format!(
                    "more than {MAX_DOCUMENTS} documents: page with skip and limit ($skip and \
                     $limit), or stream them with POST /api/v1/databases/DB/collections/C/find"
                ),
            ));
        }
        out.push(Bson::Document(d?.into_bson()));
    }
    Ok(out)
}

fn update_result(r: UpdateResult) -> BsonDocument {
    let n = |v: u64| Bson::Int64(i64::try_from(v).unwrap_or(i64::MAX));
    let mut d = doc! {"matchedCount": n(r.matched), "modifiedCount": n(r.modified)};
    if let Some(id) = r.upserted_id {
        d.insert("upsertedId", id.as_bson().clone());
    }
    d
}

fn execute(
    c: &nexus::Collection,
    action: &str,
    body: &BsonDocument,
) -> Result<(StatusCode, BsonDocument), ApiError> {
    let ok = |d| Ok((StatusCode::OK, d));
    match action {
        "findOne" => {
            let opts = FindOptions {
                projection: args::doc(body, "projection")?.filter(|p| !p.is_empty()),
                limit: 1,
                ..FindOptions::default()
            };
            let found = match c.find(&filter(body)?, opts) {
                Ok(mut cursor) => cursor.next_document()?.map(Document::into_bson),
                Err(nexus::Error::NoCollection(_)) => None,
                Err(e) => return Err(e.into()),
            };
            ok(doc! {"document": found.map_or(Bson::Null, Bson::Document)})
        }
        "find" => {
            let limit = args::count(body, "limit")?.unwrap_or(0);
            if limit > MAX_DOCUMENTS {
                return Err(ApiError::bad(format!(
                    "'limit' {limit} is more than the {MAX_DOCUMENTS} documents a response holds"
                )));
            }
            let opts = FindOptions {
                projection: args::doc(body, "projection")?.filter(|p| !p.is_empty()),
                sort: args::doc(body, "sort")?.filter(|s| !s.is_empty()),
                skip: args::count(body, "skip")?.unwrap_or(0),
                limit,
                hint: None,
            };
            let docs = match c.find(&filter(body)?, opts) {
                Ok(cursor) => collect(cursor)?,
                Err(nexus::Error::NoCollection(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            ok(doc! {"documents": docs})
        }
        "insertOne" => {
            let d = args::doc(body, "document")?
                .ok_or_else(|| ApiError::bad("missing parameter 'document'"))?;
            let id = c.insert(with_id(d))?;
            Ok((
                StatusCode::CREATED,
                doc! {"insertedId": id.as_bson().clone()},
            ))
        }
        "insertMany" => {
            let docs = args::docs(body, "documents")?;
            if docs.is_empty() || docs.len() > MAX_WRITE_BATCH {
                return Err(ApiError::bad(format!(
                    "'documents' must hold 1 to {MAX_WRITE_BATCH} documents"
                )));
            }
            let r = c.insert_many_with(
                docs.into_iter().map(with_id).collect(),
                InsertManyOptions { ordered: true },
            )?;
            if let Some(w) = r.write_errors.into_iter().next() {
                let mut e = ApiError::from(w.error);
                e.msg = format!(
                    "document {}: {} ({} documents before it were inserted)",
                    w.index,
                    e.msg,
                    r.inserted_ids.len()
                );
                return Err(e);
            }
            let ids: Vec<Bson> = r
                .inserted_ids
                .values()
                .map(|id| id.as_bson().clone())
                .collect();
            Ok((StatusCode::CREATED, doc! {"insertedIds": ids}))
        }
        "updateOne" | "updateMany" => {
            let update = match body.get("update") {
                Some(Bson::Document(d)) => UpdateModifications::Document(d.clone()),
                Some(Bson::Array(_)) => UpdateModifications::Pipeline(args::docs(body, "update")?),
                Some(_) => {
                    return Err(ApiError::bad(
                        "'update' must be a document of operators or a pipeline",
                    ))
                }
                None => return Err(ApiError::bad("missing parameter 'update'")),
            };
            let upsert = args::boolean(body, "upsert")?.unwrap_or(false);
            let options = ModifyOptions {
                upsert,
                ..ModifyOptions::default()
            };
            let f = filter(body)?;
            let r = if action == "updateOne" {
                c.update_one(&f, update, options)
            } else {
                c.update_many(&f, update, options)
            };
            ok(update_result(or_empty(r)?))
        }
        "replaceOne" => {
            let replacement = args::doc(body, "replacement")?
                .ok_or_else(|| ApiError::bad("missing parameter 'replacement'"))?;
            let upsert = args::boolean(body, "upsert")?.unwrap_or(false);
            let options = ModifyOptions {
                upsert,
                ..ModifyOptions::default()
            };
            ok(update_result(or_empty(c.replace_one(
                &filter(body)?,
                &replacement,
                options,
            ))?))
        }
        "deleteOne" | "deleteMany" => {
            let n = or_empty(c.delete(&filter(body)?, action == "deleteMany"))?;
            ok(doc! {"deletedCount": i64::try_from(n).unwrap_or(i64::MAX)})
        }
        "aggregate" => {
            let pipeline = args::docs(body, "pipeline")?;
            let options = AggregateOptions {
                allow_disk_use: true,
                ..AggregateOptions::default()
            };
            let docs = match c.aggregate(&pipeline, options) {
                Ok(cursor) => collect(cursor)?,
                Err(nexus::Error::NoCollection(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            ok(doc! {"documents": docs})
        }
        _ => Err(ApiError::internal(format!(
            "action {action} has no handler"
        ))),
    }
}
