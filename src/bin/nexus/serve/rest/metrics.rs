//! `GET /metrics`: Prometheus' text format (version 0.0.4). The HTTP requests by route and
//! status (`nexus_http_requests_total`), their latency by route
//! (`nexus_http_request_duration_seconds`, a histogram), the gRPC calls by method and code
//! (`nexus_grpc_calls_total`, `nexus_grpc_call_duration_seconds`) when `--grpc` runs too,
//! and the engine's own figures of
//! each open database: every number of [`nexus::Database::stats`]' `storage` and `cache`
//! objects as a gauge `nexus_storage_*` / `nexus_cache_*` (nested objects joined with `_`,
//! booleans as 0 / 1), labelled `db`, plus `nexus_database_connections`.
//!
//! Routes are labelled by their pattern (`/api/v1/databases/{db}/stats`), the Data API by
//! action (`data-api/find`), so a client cannot grow the label set without bound.

use super::data_api::ACTIONS;
use super::{ApiError, App};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// The histogram's upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The request counters and latency histograms of the HTTP front end and of the gRPC one.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    calls: Mutex<BTreeMap<(&'static str, String), u64>>,
    call_latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Histogram {
    fn add(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        self.count += 1;
        self.sum += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, label: &str, value: &str) {
        let v = escape(value);
        for (le, n) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{label}=\"{v}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}=\"{v}\",le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{label}=\"{v}\"}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{label}=\"{v}\"}} {}", self.count);
    }
}

/// The label of a Data API request: its action (`data-api/find`), or `data-api/unknown`.
pub fn data_api_label(path: &str) -> Option<String> {
    if !(path.starts_with("/app/") && path.contains("/endpoint/data/v1/action/")) {
        return None;
    }
    let action = path.rsplit('/').next().unwrap_or("");
    Some(if ACTIONS.iter().any(|(a, _)| *a == action) {
        format!("data-api/{action}")
    } else {
        "data-api/unknown".to_owned()
    })
}

impl Metrics {
    pub fn record(&self, route: &str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .entry((route.to_owned(), status))
            .or_default() += 1;
        self.latency
            .lock()
            .entry(route.to_owned())
            .or_default()
            .add(took);
    }

    /// A gRPC call of `method` that ended with the status `code` (for a streaming call: the
    /// time until its stream was handed out).
    pub fn record_call(&self, method: &'static str, code: tonic::Code, took: Duration) {
        *self
            .calls
            .lock()
            .entry((method, format!("{code:?}")))
            .or_default() += 1;
        self.call_latency
            .lock()
            .entry(method)
            .or_default()
            .add(took);
    }

    fn render_requests(&self, out: &mut String) {
        out.push_str(
            "# HELP nexus_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE nexus_http_requests_total counter\n");
        for ((route, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "nexus_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP nexus_http_request_duration_seconds Time to answer HTTP requests, by route.\n",
        );
        out.push_str("# TYPE nexus_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().iter() {
            h.render(out, "nexus_http_request_duration_seconds", "route", route);
        }
        out.push_str(
            "# HELP nexus_grpc_calls_total gRPC calls answered, by method and status code.\n",
        );
        out.push_str("# TYPE nexus_grpc_calls_total counter\n");
        for ((method, code), n) in self.calls.lock().iter() {
            let _ = writeln!(
                out,
                "nexus_grpc_calls_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP nexus_grpc_call_duration_seconds Time to answer gRPC calls (streams: until the stream starts), by method.\n",
        );
        out.push_str("# TYPE nexus_grpc_call_duration_seconds histogram\n");
        for (method, h) in self.call_latency.lock().iter() {
            h.render(out, "nexus_grpc_call_duration_seconds", "method", method);
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The numbers of a stats object as `(name, value)`, nested keys joined with `_`.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let k: String = k
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                flatten(&format!("{prefix}_{k}"), v, out);
            }
        }
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((prefix.to_owned(), f));
            }
        }
        serde_json::Value::Bool(b) => out.push((prefix.to_owned(), f64::from(u8::from(*b)))),
        _ => {}
    }
}

pub async fn handler(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let server = Arc::clone(&app.server);
    let metrics = Arc::clone(&app.metrics);
    let text = super::blocking(move || {
        let mut out = String::new();
        metrics.render_requests(&mut out);
        // name -> (db, value): one TYPE line per name.
        let mut gauges: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        for (name, db) in server.open_databases() {
            let Ok(stats) = db.stats() else { continue };
            let mut flat = Vec::new();
            if let Some(n) = stats.get("connections").and_then(serde_json::Value::as_f64) {
                flat.push(("nexus_database_connections".to_owned(), n));
            }
            for part in ["storage", "cache"] {
                if let Some(v) = stats.get(part) {
                    flatten(&format!("nexus_{part}"), v, &mut flat);
                }
            }
            for (metric, v) in flat {
                gauges.entry(metric).or_default().push((name.clone(), v));
            }
        }
        for (metric, values) in gauges {
            let _ = writeln!(out, "# TYPE {metric} gauge");
            for (db, v) in values {
                let _ = writeln!(out, "{metric}{{db=\"{}\"}} {v}", escape(&db));
            }
        }
        Ok(out)
    })
    .await?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}
