//! The HTTP front end of `nexus serve --http ADDR` (axum on the server's tokio runtime, the
//! same [`Server`] as the wire protocol: the same databases, limits and data directory).
//!
//! - `POST /app/{app}/endpoint/data/v1/action/{action}`: the Atlas Data API v1 actions
//!   (`data_api.rs`), bodies in relaxed Extended JSON (`application/json`) or canonical
//!   (`application/ejson`), errors as an HTTP status and `{"error", "error_code"}`.
//! - `/api/v1/...`: native endpoints (`native.rs`): databases, collections, indexes,
//!   statistics, and `find` streamed as NDJSON.
//! - `GET /healthz`, `GET /metrics` (Prometheus text, `metrics.rs`), `GET /openapi.json`
//!   (`openapi.rs`).
//!
//! Every request passes [`guard`] first: the API key (`api-key` header or `Authorization:
//! Bearer`, required with `--auth`), the limit on concurrent requests (503 past it) and the
//! request timeout (504). Bodies are read by [`read_body`] up to the body limit (413 past
//! it). The engine is synchronous: each request's work runs on the blocking pool with a
//! NexusLite connection lent by [`Server::handle`].

mod data_api;
mod metrics;
mod native;
mod openapi;

use super::apikeys::ApiKey;
use super::error::CmdError;
use super::state::Server;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use bson::{Bson, Document as BsonDocument};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use metrics::Metrics;

/// The limits of the HTTP front end.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// How long a request may take before it is answered 504.
    pub timeout: Duration,
    /// Requests served at once; more are answered 503.
    pub max_concurrent: usize,
}

/// What every handler shares.
pub struct App {
    pub server: Arc<Server>,
    /// With `--auth`: the API keys (read at start).
    pub keys: Option<Vec<ApiKey>>,
    pub limits: HttpLimits,
    pub metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
}

/// Who is calling: the key presented (None without `--auth`).
#[derive(Clone)]
pub struct Caller(pub Option<ApiKey>);

impl Caller {
    /// 403 unless the caller may use the database `db` (for a write when `write`).
    pub fn check(&self, db: &str, write: bool) -> Result<(), ApiError> {
        match &self.0 {
            Some(k) if !k.allows(db, write) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "the API key '{}' may not {} the database '{db}'",
                    k.name,
                    if write { "write to" } else { "read" }
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// A failed request: its status, the Data API's `error_code` and a message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub msg: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
        }
    }

    /// 400 InvalidParameter.
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            msg,
        )
    }
}

impl From<CmdError> for ApiError {
    fn from(e: CmdError) -> Self {
        let (status, code) = match e.code {
            11000 => (StatusCode::CONFLICT, "DuplicateKey"),
            26 => (StatusCode::NOT_FOUND, "NamespaceNotFound"),
            27 => (StatusCode::NOT_FOUND, "IndexNotFound"),
            13 => (StatusCode::FORBIDDEN, "Forbidden"),
            2 | 9 | 10 | 14 | 73 => (StatusCode::BAD_REQUEST, "InvalidParameter"),
            20 => (StatusCode::CONFLICT, "IllegalOperation"),
            46 => (StatusCode::SERVICE_UNAVAILABLE, "Busy"),
            238 => (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        };
        Self::new(status, code, e.msg)
    }
}

impl From<nexus::Error> for ApiError {
    fn from(e: nexus::Error) -> Self {
        CmdError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.msg, "error_code": self.code});
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

/// Extended JSON: relaxed (`application/json`) or canonical (`application/ejson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ejson {
    Relaxed,
    Canonical,
}

impl Ejson {
    /// The format of a request body, from its Content-Type (none: JSON).
    pub fn of_request(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(ct) = headers.get(header::CONTENT_TYPE) else {
            return Ok(Ejson::Relaxed);
        };
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        match mime {
            "application/json" | "" => Ok(Ejson::Relaxed),
            "application/ejson" => Ok(Ejson::Canonical),
            other => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("Content-Type {other}: use application/json or application/ejson"),
            )),
        }
    }

    /// The format of the response: what Accept asks for, else the request's.
    pub fn of_response(headers: &HeaderMap, request: Ejson) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/ejson") {
            Ejson::Canonical
        } else if accept.contains("application/json") {
            Ejson::Relaxed
        } else {
            request
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Ejson::Relaxed => "application/json",
            Ejson::Canonical => "application/ejson",
        }
    }

    /// A document as Extended JSON text of this format.
    pub fn text(self, d: BsonDocument) -> String {
        let v = match self {
            Ejson::Relaxed => Bson::Document(d).into_relaxed_extjson(),
            Ejson::Canonical => Bson::Document(d).into_canonical_extjson(),
        };
        v.to_string()
    }

    /// A response of this format.
    pub fn respond(self, status: StatusCode, d: BsonDocument) -> Response {
        let mut r = (status, self.text(d)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        r
    }
}

/// A request body, read whole up to the body limit: 413 past it.
pub async fn read_body(app: &App, body: Body, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let limit = app.limits.max_body;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit exceeded"))
            || e.to_string().contains("length limit exceeded")
        {
            too_large()
        } else {
            ApiError::bad(format!("cannot read the request body: {e}"))
        }
    })
}

/// A JSON body parsed as Extended JSON (either form) into a document: 400 for text that is
/// not JSON, not an object, or not valid Extended JSON.
pub fn parse_body(bytes: &[u8]) -> Result<BsonDocument, ApiError> {
    if bytes.is_empty() {
        return Ok(BsonDocument::new());
    }
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad("the request body must be a JSON object"));
    }
    match Bson::try_from(v) {
        Ok(Bson::Document(d)) => Ok(d),
        Ok(_) => Err(ApiError::bad(
            "the request body must be an object, not an Extended JSON value",
        )),
        Err(e) => Err(ApiError::bad(format!(
            "the request body is not valid Extended JSON: {e}"
        ))),
    }
}

/// Runs `f` on the blocking pool (the engine is synchronous).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the request failed unexpectedly: {e}")))?
}

/// The API key of a request: the `api-key` header or `Authorization: Bearer KEY`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The routes that need no API key.
const OPEN_ROUTES: &[&str] = &["/healthz", "/openapi.json"];

/// The route label of a response (set by [`authenticate`], which runs after routing).
#[derive(Clone)]
struct RouteLabel(String);

/// The concurrency limit, the timeout and the metrics of every request.
async fn guard(
    State(app): State<Arc<App>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let start = Instant::now();
    let path_label = metrics::data_api_label(req.uri().path());
    let mut response = limited(&app, req, next).await;
    // Answers given before the request body was read (or while reading it) leave its rest
    // unread on the connection: close it rather than let the client reuse it.
    if matches!(
        response.status().as_u16(),
        401 | 404 | 405 | 413 | 415 | 503 | 504
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let route = path_label
        .or_else(|| {
            response
                .extensions()
                .get::<RouteLabel>()
                .map(|l| l.0.clone())
        })
        .unwrap_or_else(|| "unmatched".to_owned());
    app.metrics
        .record(&route, response.status().as_u16(), start.elapsed());
    response
}

/// A request's slot of the concurrency limit. Handlers that answer with a stream keep a
/// clone until the stream ends, so a slow reader of a long stream still counts.
#[derive(Clone)]
pub struct Slot(#[allow(dead_code, reason = "held, never read")] Arc<OwnedSemaphorePermit>);

async fn limited(app: &Arc<App>, mut req: Request, next: axum::middleware::Next) -> Response {
    let Ok(slot) = Arc::clone(&app.slots).try_acquire_owned() else {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TooManyRequests",
            format!(
                "{} requests are in progress (the limit): retry later",
                app.limits.max_concurrent
            ),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    req.extensions_mut().insert(Slot(Arc::new(slot)));
    match tokio::time::timeout(app.limits.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!(
                "the request took longer than the limit of {:?}",
                app.limits.timeout
            ),
        )
        .into_response(),
    }
}

/// The API key check of a routed request (with `--auth`); hands the handlers the
/// [`Caller`] and labels the response with its route for the metrics.
async fn authenticate(
    State(app): State<Arc<App>>,
    mut req: Request,
    next: axum::middleware::Next,
) -> Response {
    let label = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| RouteLabel(m.as_str().to_owned()));
    let caller = match &app.keys {
        None => Ok(Caller(None)),
        Some(_) if OPEN_ROUTES.contains(&req.uri().path()) => Ok(Caller(None)),
        Some(keys) => match presented_key(req.headers()) {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "an API key is required: the 'api-key' header or 'Authorization: Bearer KEY'",
            )),
            Some(k) => match super::apikeys::find(keys, k) {
                Some(key) => Ok(Caller(Some(key.clone()))),
                None => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "invalid API key",
                )),
            },
        },
    };
    let mut response = match caller {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    };
    if let Some(l) = label {
        response.extensions_mut().insert(l);
    }
    response
}

async fn healthz() -> Response {
    let mut r = r#"{"status":"ok"}"#.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "no route {} {} (GET /openapi.json lists them)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let r = next.run(req).await;
    if r.status() == StatusCode::METHOD_NOT_ALLOWED {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{path} does not take {method} (GET /openapi.json lists the routes)"),
        )
        .into_response();
    }
    r
}

/// The router of the HTTP front end (each route is listed in `openapi.rs`).
pub fn router(
    server: Arc<Server>,
    keys: Option<Vec<ApiKey>>,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
) -> Router {
    let app = Arc::new(App {
        server,
        keys,
        slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
        limits,
        metrics,
    });
    let db = "/api/v1/databases/{db}";
    let coll = "/api/v1/databases/{db}/collections/{coll}";
    Router::new()
        .route(
            "/app/{app}/endpoint/data/v1/action/{action}",
            post(data_api::action),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::handler))
        .route("/openapi.json", get(openapi::handler))
        .route("/api/v1/databases", get(native::databases))
        .route(&format!("{db}/stats"), get(native::db_stats))
        .route(&format!("{db}/collections"), get(native::collections))
        .route(
            coll,
            axum::routing::put(native::create_collection).delete(native::drop_collection),
        )
        .route(&format!("{coll}/stats"), get(native::coll_stats))
        .route(&format!("{coll}/find"), post(native::find_stream))
        .route(
            &format!("{coll}/indexes"),
            get(native::list_indexes).post(native::create_index),
        )
        .route(
            &format!("{coll}/indexes/{{name}}"),
            delete(native::drop_index),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            authenticate,
        ))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(wrong_method))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            guard,
        ))
        .with_state(app)
}
