//! `GET /openapi.json`: the OpenAPI 3.0 document of the HTTP front end, made from [`ROUTES`]
//! (one row per route and method; tests/server/test_rest.py checks that every route the
//! router serves is listed) and the Data API actions of `data_api.rs`.

use super::data_api::ACTIONS;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// A route: method, path (OpenAPI's `{param}` form), summary, whether it takes a JSON body,
/// and its success status.
pub const ROUTES: &[(&str, &str, &str, bool, &str)] = &[
    ("get", "/healthz", "Liveness: {\"status\": \"ok\"}.", false, "200"),
    ("get", "/metrics", "Prometheus text: requests, latency histograms, cache and storage figures.", false, "200"),
    ("get", "/openapi.json", "This document.", false, "200"),
    ("get", "/api/v1/databases", "The databases of the data directory: {\"databases\": [{name, sizeOnDisk}]}.", false, "200"),
    ("get", "/api/v1/databases/{db}/stats", "A database's collections, objects, indexes and size on disk.", false, "200"),
    ("get", "/api/v1/databases/{db}/collections", "The collection names: {\"collections\": [...]}.", false, "200"),
    ("put", "/api/v1/databases/{db}/collections/{coll}", "Creates the collection (409 when it exists).", false, "201"),
    ("delete", "/api/v1/databases/{db}/collections/{coll}", "Drops the collection (404 when missing).", false, "200"),
    ("get", "/api/v1/databases/{db}/collections/{coll}/stats", "A collection's count and indexes.", false, "200"),
    ("post", "/api/v1/databases/{db}/collections/{coll}/find", "Streams the documents matching {filter, projection, sort, skip, limit} as NDJSON (application/x-ndjson), one Extended JSON document per line.", true, "200"),
    ("get", "/api/v1/databases/{db}/collections/{coll}/indexes", "The index specifications: {\"indexes\": [...]}.", false, "200"),
    ("post", "/api/v1/databases/{db}/collections/{coll}/indexes", "Creates an index from {keys, options}: {\"name\"}.", true, "201"),
    ("delete", "/api/v1/databases/{db}/collections/{coll}/indexes/{name}", "Drops the index.", false, "200"),
];

/// The Data API's route.
pub const DATA_API: &str = "/app/{app}/endpoint/data/v1/action/{action}";

fn params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let mut p =
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
            if name == "action" {
                p["schema"]["enum"] = json!(ACTIONS.iter().map(|(a, _)| *a).collect::<Vec<_>>());
            }
            if name == "app" {
                p["description"] = json!(
                    "The Atlas App Services app id of the Data API URL; any value (e.g. data-api)."
                );
            }
            p
        })
        .collect()
}

fn error_responses() -> Value {
    let err = json!({"$ref": "#/components/schemas/Error"});
    let mut m = Map::new();
    for (code, what) in [
        ("400", "Bad input: not JSON, a missing or wrong parameter."),
        ("401", "No API key, or an unknown one (with --auth)."),
        (
            "403",
            "The API key may not use this database, or not write.",
        ),
        ("404", "No such route, action, collection or index."),
        ("413", "The request body is larger than --http-max-body."),
        (
            "503",
            "More requests in progress than --http-max-concurrent.",
        ),
        ("504", "The request took longer than --http-timeout."),
    ] {
        m.insert(
            code.to_owned(),
            json!({"description": what, "content": {"application/json": {"schema": err}}}),
        );
    }
    Value::Object(m)
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, body, status) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params(path),
            "responses": error_responses(),
        });
        op["responses"][*status] = json!({"description": "Success.", "content": {"application/json": {"schema": {"type": "object"}}}});
        if *body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        if matches!(*path, "/healthz" | "/openapi.json") {
            op["security"] = json!([]);
        }
        paths
            .entry((*path).to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert((*method).to_owned(), op));
    }
    let mut data_api = json!({
        "summary": "An Atlas Data API v1 action: findOne, find, insertOne, insertMany, updateOne, updateMany, replaceOne, deleteOne, deleteMany, aggregate.",
        "operationId": "dataApiAction",
        "parameters": params(DATA_API),
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/DataApiRequest"}},
            "application/ejson": {"schema": {"$ref": "#/components/schemas/DataApiRequest"}}
        }},
        "responses": error_responses(),
    });
    let ok = json!({"description": "The action's result: {document}, {documents}, {matchedCount, modifiedCount, upsertedId}, {deletedCount}.", "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/ejson": {"schema": {"type": "object"}}
    }});
    data_api["responses"]["200"] = ok;
    data_api["responses"]["201"] = json!({"description": "insertOne / insertMany: {insertedId} / {insertedIds}.", "content": {"application/json": {"schema": {"type": "object"}}}});
    paths.insert(DATA_API.to_owned(), json!({"post": data_api}));
    let doc = json!({"type": "object", "additionalProperties": true});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "NexusLite HTTP API (nexus serve --http)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Atlas Data API v1 actions and NexusLite's native endpoints. Documents are Extended JSON: relaxed with application/json, canonical with application/ejson (the Accept header chooses the answer's form).",
        },
        "paths": paths,
        "security": [{"apiKey": []}, {"bearer": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
                "bearer": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "error_code"], "properties": {
                    "error": {"type": "string"}, "error_code": {"type": "string"}
                }},
                "DataApiRequest": {"type": "object", "required": ["database", "collection"], "properties": {
                    "dataSource": {"type": "string"},
                    "database": {"type": "string"},
                    "collection": {"type": "string"},
                    "filter": doc, "projection": doc, "sort": doc,
                    "limit": {"type": "integer"}, "skip": {"type": "integer"},
                    "document": doc,
                    "documents": {"type": "array", "items": doc},
                    "update": {"oneOf": [doc, {"type": "array", "items": doc}]},
                    "replacement": doc,
                    "upsert": {"type": "boolean"},
                    "pipeline": {"type": "array", "items": doc}
                }}
            }
        }
    })
}

pub async fn handler() -> Response {
    let mut r = document().to_string().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
