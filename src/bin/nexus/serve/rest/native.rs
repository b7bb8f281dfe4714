//! The native endpoints under `/api/v1/databases`: the databases and their statistics, the
//! collections (list, create with PUT, drop with DELETE) and theirs, indexes (list, create,
//! drop), and `find` streamed as NDJSON: one Extended JSON document per line, read from the
//! engine's cursor as the client takes them (no size cap, no whole result in memory). A
//! failure after the first document can no longer change the status: it ends the stream
//! with a last line `{"error", "error_code"}`.

use super::{blocking, parse_body, read_body, ApiError, App, Caller, Ejson, Slot};
use crate::serve::args;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bson::{doc, Bson, Document as BsonDocument};
use nexus::FindOptions;
use std::sync::Arc;

type Answer = Result<Response, ApiError>;

fn i64_of(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn json(status: StatusCode, d: BsonDocument) -> Response {
    Ejson::Relaxed.respond(status, d)
}

/// 404 unless the collection exists.
fn existing(db: &nexus::Database, dbname: &str, coll: &str) -> Result<(), ApiError> {
    if db.list_collections()?.iter().any(|n| n == coll) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NamespaceNotFound",
            format!("no collection {dbname}.{coll}"),
        ))
    }
}

pub async fn databases(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Answer {
    let server = Arc::clone(&app.server);
    let list = blocking(move || {
        let mut out = Vec::new();
        for name in server.database_names()? {
            if caller.check(&name, false).is_ok() {
                out.push(Bson::Document(
                    doc! {"name": &name, "sizeOnDisk": i64_of(server.size_on_disk(&name))},
                ));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(json(StatusCode::OK, doc! {"databases": list}))
}

pub async fn db_stats(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(db): Path<String>,
) -> Answer {
    caller.check(&db, false)?;
    let server = Arc::clone(&app.server);
    let d = blocking(move || {
        let h = server.handle(&db, false)?;
        let names = h.list_collections()?;
        let (mut objects, mut indexes) = (0u64, 0usize);
        for n in &names {
            let c = h.collection(n);
            objects += c.count(&BsonDocument::new())?;
            indexes += c.list_indexes()?.len();
        }
        Ok(doc! {
            "db": &db,
            "collections": i64_of(names.len()),
            "objects": i64_of(objects),
            "indexes": i64_of(indexes),
            "sizeOnDisk": i64_of(server.size_on_disk(&db)),
        })
    })
    .await?;
    Ok(json(StatusCode::OK, d))
}

pub async fn collections(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(db): Path<String>,
) -> Answer {
    caller.check(&db, false)?;
    let server = Arc::clone(&app.server);
    let names = blocking(move || Ok(server.handle(&db, false)?.list_collections()?)).await?;
    Ok(json(StatusCode::OK, doc! {"collections": names}))
}

pub async fn create_collection(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((db, coll)): Path<(String, String)>,
) -> Answer {
    caller.check(&db, true)?;
    let server = Arc::clone(&app.server);
    blocking(move || {
        let h = server.handle(&db, true)?;
        if h.list_collections()?.contains(&coll) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "NamespaceExists",
                format!("collection {db}.{coll} already exists"),
            ));
        }
        h.create_collection(&coll, None)?;
        Ok(())
    })
    .await?;
    Ok(json(StatusCode::CREATED, doc! {"created": true}))
}

pub async fn drop_collection(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((db, coll)): Path<(String, String)>,
) -> Answer {
    caller.check(&db, true)?;
    let server = Arc::clone(&app.server);
    blocking(move || {
        let h = server.handle(&db, false)?;
        existing(&h, &db, &coll)?;
        h.drop_collection(&coll)?;
        Ok(())
    })
    .await?;
    Ok(json(StatusCode::OK, doc! {"dropped": true}))
}

pub async fn coll_stats(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((db, coll)): Path<(String, String)>,
) -> Answer {
    caller.check(&db, false)?;
    let server = Arc::clone(&app.server);
    let d = blocking(move || {
        let h = server.handle(&db, false)?;
        existing(&h, &db, &coll)?;
        let c = h.collection(&coll);
        let indexes = c.list_indexes()?;
        Ok(doc! {
            "ns": format!("{db}.{coll}"),
            "count": i64_of(c.count(&BsonDocument::new())?),
            "nindexes": i64_of(indexes.len()),
            "indexNames": indexes.iter().filter_map(|i| i.get_str("name").ok()).collect::<Vec<_>>(),
        })
    })
    .await?;
    Ok(json(StatusCode::OK, d))
}

pub async fn list_indexes(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((db, coll)): Path<(String, String)>,
) -> Answer {
    caller.check(&db, false)?;
    let server = Arc::clone(&app.server);
    let list = blocking(move || {
        let h = server.handle(&db, false)?;
        existing(&h, &db, &coll)?;
        Ok(h.collection(&coll).list_indexes()?)
    })
    .await?;
    Ok(json(StatusCode::OK, doc! {"indexes": list}))
}

/// `POST .../indexes` with `{"keys": {...}, "options": {...}}` (options as createIndexes
/// takes them: name, unique, sparse, partialFilterExpression, expireAfterSeconds, ...).
pub async fn create_index(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((db, coll)): Path<(String, String)>,
    req: Request,
) -> Answer {
    caller.check(&db, true)?;
    let (parts, body) = req.into_parts();
    Ejson::of_request(&parts.headers)?;
    let body = parse_body(&read_body(&app, body, &parts.headers).await?)?;
    let keys = args::doc(&body, "keys")?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad("missing parameter 'keys' (a key pattern)"))?;
    let options = args::doc(&body, "options")?.unwrap_or_default();
    let server = Arc::clone(&app.server);
    let name = blocking(move || {
        let h = server.handle(&db, true)?;
        Ok(h.collection(&coll).create_index(&keys, &options)?)
    })
    .await?;
    Ok(json(StatusCode::CREATED, doc! {"name": name}))
}

pub async fn drop_index(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path((db, coll, name)): Path<(String, String, String)>,
) -> Answer {
    caller.check(&db, true)?;
    let server = Arc::clone(&app.server);
    blocking(move || {
        let h = server.handle(&db, false)?;
        existing(&h, &db, &coll)?;
        match h.collection(&coll).drop_index(&name) {
            Ok(()) => Ok(()),
            Err(nexus::Error::NotFound(_)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "IndexNotFound",
                format!("no index '{name}' on {db}.{coll}"),
            )),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    Ok(json(StatusCode::OK, doc! {"dropped": true}))
}

/// Lines are sent in chunks of about this many bytes.
const CHUNK: usize = 64 * 1024;

/// `POST .../find` with `{filter, projection, sort, skip, limit}`: `application/x-ndjson`.
pub async fn find_stream(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(slot): Extension<Slot>,
    Path((db, coll)): Path<(String, String)>,
    req: Request,
) -> Answer {
    caller.check(&db, false)?;
    let (parts, body) = req.into_parts();
    let format = Ejson::of_response(&parts.headers, Ejson::of_request(&parts.headers)?);
    let body = parse_body(&read_body(&app, body, &parts.headers).await?)?;
    let filter = args::doc(&body, "filter")?.unwrap_or_default();
    let opts = FindOptions {
        projection: args::doc(&body, "projection")?.filter(|p| !p.is_empty()),
        sort: args::doc(&body, "sort")?.filter(|s| !s.is_empty()),
        skip: args::count(&body, "skip")?.unwrap_or(0),
        limit: args::count(&body, "limit")?.unwrap_or(0),
        hint: None,
    };
    let server = Arc::clone(&app.server);
    // The cursor is opened before the answer starts, so a bad filter is still a 400.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    tokio::task::spawn_blocking(move || {
        // The stream holds its slot of the concurrency limit until it ends.
        let _slot = slot;
        let h = match server.handle(&db, false) {
            Ok(h) => h,
            Err(e) => return drop(opened_tx.send(Err(e.into()))),
        };
        let cursor = match h.collection(&coll).find(&filter, opts) {
            Ok(c) => Some(c),
            Err(nexus::Error::NoCollection(_)) => None,
            Err(e) => return drop(opened_tx.send(Err(e.into()))),
        };
        if opened_tx.send(Ok(())).is_err() {
            return;
        }
        let mut buf = Vec::with_capacity(CHUNK);
        for d in cursor.into_iter().flatten() {
            match d {
                Ok(d) => {
                    buf.extend_from_slice(format.text(d.into_bson()).as_bytes());
                    buf.push(b'\n');
                }
                Err(e) => {
                    let e = ApiError::from(e);
                    let line = serde_json::json!({"error": e.msg, "error_code": e.code});
                    buf.extend_from_slice(line.to_string().as_bytes());
                    buf.push(b'\n');
                    break;
                }
            }
            if buf.len() >= CHUNK {
                let chunk = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(CHUNK)));
                // The client went away: stop reading.
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return;
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(buf)));
        }
    });
    opened_rx
        .await
        .map_err(|_| ApiError::internal("the find failed unexpectedly"))??;
    let mut r = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(r)
}
