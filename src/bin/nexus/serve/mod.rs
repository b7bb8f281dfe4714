//! `nexus serve`: a server that speaks MongoDB's wire protocol over a data directory, so
//! MongoDB drivers and tools work against NexusLite databases (`DIR/NAME.db` per MongoDB
//! database). [`run`] starts a tokio runtime (signals, the cursor reaper, the HTTP and gRPC
//! front ends) and listens; `conn` serves each MongoDB protocol connection on an OS thread of
//! its own with blocking socket I/O: read one framed message, decode and run it ([`handle`];
//! the `nexus` API is synchronous), write the reply. Below: `wire` (framing),
//! `commands` / `crud` (the commands), `state` (databases and cursors shared by all
//! connections), `reply`, `args`, `error`.
//!
//! Beside it, on the same runtime and the same [`Server`] (databases, limits, TLS acceptor),
//! two optional front ends: HTTP (`--http`, `rest/`: the Atlas Data API actions and native
//! endpoints) and gRPC (`--grpc`, `grpc.rs`), whose connections `listen.rs` accepts and whose
//! API keys `apikeys.rs` keeps. Any combination of the three may run; each prints one line
//! naming its address on start.
//!
//! Lifecycle: `run` binds, prints one line naming the address, serves until SIGINT or
//! SIGTERM, then stops accepting, lets in-flight requests finish (idle connections are
//! closed at once, busy ones get [`GRACE`]), checkpoints and closes every database.
//!
//! Robustness: a message that does not decode (bad lengths, truncated, oversized, nesting
//! past the limit, a bad checksum) closes its connection with a log line; a panic while
//! running a command closes that connection too. Neither reaches other connections.

pub mod apikeys;
mod args;
mod commands;
mod conn;
mod crud;
mod error;
mod grpc;
mod listen;
mod reply;
mod rest;
mod scram;
mod sessions;
mod state;
pub mod users;
mod wire;

pub use rest::HttpLimits;
use state::{Limits, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long in-flight requests may take to finish after SIGINT / SIGTERM.
const GRACE: Duration = Duration::from_secs(10);
/// How long the rest of a message may take to arrive once its first bytes did.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The options of `nexus serve`.
pub struct ServeOptions {
    /// The data directory (created when missing).
    pub data_dir: PathBuf,
    /// Where the MongoDB protocol listens (None: not served).
    pub mongo: Option<String>,
    /// Where the HTTP front end listens (None: not served).
    pub http: Option<String>,
    /// Where the gRPC front end listens (None: not served).
    pub grpc: Option<String>,
    /// The HTTP and gRPC front ends' body (message) limit, timeout and concurrency limit.
    pub http_limits: HttpLimits,
    /// Connections served at once.
    pub max_connections: usize,
    /// Open cursors one connection may hold.
    pub max_cursors_per_connection: usize,
    /// A cursor unused this long is killed.
    pub cursor_idle: Duration,
    /// Require SCRAM-SHA-256 authentication (users of `nexus user add`) on the MongoDB
    /// protocol and an API key (`nexus apikey add`) on HTTP and gRPC.
    pub auth: bool,
    /// TLS: the certificate chain and the private key, PEM files.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS acceptor of `--tls-cert` / `--tls-key` (rustls with the ring provider; TLS 1.2 and
/// 1.3, no client certificates).
fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    #[expect(
        deprecated,
        reason = "ring has no post-quantum key exchange; aws-lc-rs, which has, needs cmake"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS: the certificate and key do not make a configuration: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The address of a front end's option: loopback only without `--auth`.
fn address(option: &str, text: &str, auth: bool) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{option} {text}: not an IP address and port"))?;
    if !addr.ip().is_loopback() && !auth {
        return Err(format!(
            "{option} {addr}: listening beyond the loopback address needs --auth"
        ));
    }
    Ok(addr)
}

/// The TLS acceptor of a front end that negotiates `protocol` by ALPN (gRPC clients require
/// `h2`; HTTP clients are told `http/1.1`, the only version served).
fn alpn(
    tls: &Option<tokio_rustls::TlsAcceptor>,
    protocol: &[u8],
) -> Option<tokio_rustls::TlsAcceptor> {
    let mut config = (**tls.as_ref()?.config()).clone();
    config.alpn_protocols = vec![protocol.to_vec()];
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Runs the server in the foreground until SIGINT / SIGTERM.
pub fn run(options: ServeOptions) -> Result<(), String> {
    let mongo = match &options.mongo {
        Some(m) => Some(address("--mongo", m, options.auth)?),
        None => None,
    };
    let http = match &options.http {
        Some(h) => Some(address("--http", h, options.auth)?),
        None => None,
    };
    let grpc = match &options.grpc {
        Some(g) => Some(address("--grpc", g, options.auth)?),
        None => None,
    };
    if mongo.is_none() && http.is_none() && grpc.is_none() {
        return Err("nothing to serve: give --mongo, --http or --grpc".into());
    }
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("{}: {e}", options.data_dir.display()))?;
    let dir = options.data_dir.display();
    let users = if options.auth && mongo.is_some() {
        let users = users::load(&options.data_dir)?;
        if users.is_empty() {
            return Err(format!(
                "--auth: {} has no users: add one with nexus user add {dir}",
                users::path(&options.data_dir).display(),
            ));
        }
        Some(users)
    } else {
        None
    };
    let keys = if options.auth && (http.is_some() || grpc.is_some()) {
        let keys = apikeys::load(&options.data_dir)?;
        if keys.is_empty() {
            return Err(format!(
                "--auth: {} has no API keys for --http / --grpc: add one with nexus apikey add {dir} NAME",
                apikeys::path(&options.data_dir).display(),
            ));
        }
        Some(keys)
    } else {
        None
    };
    let tls = match &options.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nexus-serve")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(
        options,
        Endpoints { mongo, http, grpc },
        users,
        keys,
        tls,
    ))
}

/// The addresses of the front ends served.
struct Endpoints {
    mongo: Option<SocketAddr>,
    http: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
}

async fn bind(what: &str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
    Ok((listener, local))
}

/// One line on standard output (the banner naming each address).
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn serve(
    options: ServeOptions,
    at: Endpoints,
    users: Option<Vec<users::User>>,
    keys: Option<Vec<apikeys::ApiKey>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), String> {
    let mongo = match at.mongo {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on {addr} (--mongo): {e}"))?;
            let local = listener
                .local_addr()
                .map_err(|e| format!("cannot listen on {addr} (--mongo): {e}"))?;
            Some((listener, local))
        }
        None => None,
    };
    let http = match at.http {
        Some(addr) => Some(bind("--http", addr).await?),
        None => None,
    };
    let grpc = match at.grpc {
        Some(addr) => Some(bind("--grpc", addr).await?),
        None => None,
    };
    let limits = Limits {
        max_connections: options.max_connections,
        max_cursors_per_connection: options.max_cursors_per_connection,
        cursor_idle: options.cursor_idle.max(Duration::from_secs(1)),
        ..Limits::default()
    };
    let server = Arc::new(Server::new(options.data_dir.clone(), limits, users).map_err(|e| e.msg)?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let dir = options.data_dir.display();
    if let Some((_, local)) = &mongo {
        announce(&format!(
            "nexus serve: MongoDB protocol on {local} (mongodb://{local}/{}), data directory {dir}",
            if tls.is_some() { "?tls=true" } else { "" },
        ));
        log::info!("MongoDB protocol on {local}");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut front_ends = tokio::task::JoinSet::new();
    // Counted by both front ends, shown by the HTTP one's /metrics.
    let metrics = Arc::new(rest::Metrics::default());
    if let Some((listener, local)) = http {
        let scheme = if tls.is_some() { "https" } else { "http" };
        announce(&format!(
            "nexus serve: HTTP on {local} ({scheme}://{local}/app/data-api/endpoint/data/v1), data directory {dir}"
        ));
        log::info!("HTTP on {local}");
        let incoming = listen::Incoming::start(
            listener,
            alpn(&tls, b"http/1.1"),
            options.max_connections,
            "HTTP",
        )
        .map_err(|e| format!("--http {local}: {e}"))?;
        let app = rest::router(
            Arc::clone(&server),
            keys.clone(),
            options.http_limits.clone(),
            Arc::clone(&metrics),
        );
        let mut stop = stop_rx.clone();
        front_ends.spawn(async move {
            let served = axum::serve(incoming, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                log::error!("HTTP: {e}");
            }
        });
    }
    if let Some((listener, local)) = grpc {
        announce(&format!(
            "nexus serve: gRPC on {local} (nexus.v1.Nexus{}), data directory {dir}",
            if tls.is_some() { ", TLS" } else { "" }
        ));
        log::info!("gRPC on {local}");
        let incoming =
            listen::Incoming::start(listener, alpn(&tls, b"h2"), options.max_connections, "gRPC")
                .map_err(|e| format!("--grpc {local}: {e}"))?;
        let served = grpc::serve(
            Arc::clone(&server),
            keys,
            options.http_limits.clone(),
            metrics,
            incoming,
            stop_rx.clone(),
        );
        front_ends.spawn(async move {
            if let Err(e) = served.await {
                log::error!("{e}");
            }
        });
    }
    let expiry = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let every = (server.limits.cursor_idle / 4)
                .min(sessions::TXN_LIFETIME / 4)
                .max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                let n = server.expire_cursors();
                if n > 0 {
                    log::info!("killed {n} idle cursors");
                }
                let n = server.sessions.expire();
                if n > 0 {
                    log::info!("rolled back {n} idle transactions");
                }
            }
        })
    };
    let wire = match mongo {
        Some((listener, local)) => Some(
            conn::WireServer::start(
                Arc::clone(&server),
                listener,
                tls.as_ref().map(|t| Arc::clone(t.config())),
            )
            .map_err(|e| format!("--mongo {local}: {e}"))?,
        ),
        None => None,
    };
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM: shutting down"),
        _ = int.recv() => log::info!("SIGINT: shutting down"),
    }
    expiry.abort();
    let _ = stop_tx.send(true);
    // The wire connections' threads are waited for on the blocking pool, beside the
    // HTTP and gRPC tasks.
    let wire_done = tokio::task::spawn_blocking(move || {
        let mut wire = wire?;
        wire.stop();
        Some(wire.finish(GRACE))
    });
    let finished = tokio::time::timeout(GRACE, async {
        while front_ends.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        front_ends.abort_all();
    }
    let wire_finished = wire_done.await.ok().flatten().unwrap_or(true);
    if finished.is_err() || !wire_finished {
        log::warn!("requests still running after {GRACE:?}: abandoned");
    }
    let errors = tokio::task::spawn_blocking(move || server.close_all())
        .await
        .map_err(|e| format!("shutdown: {e}"))?;
    for e in &errors {
        log::error!("shutdown: {e}");
    }
    log::info!("stopped");
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

static NEXT_REPLY_ID: AtomicI32 = AtomicI32::new(1);

/// Decodes and runs one message; the reply frame, or None when none is wanted.
fn handle(
    server: &Server,
    conn: u64,
    state: &mut commands::ConnState,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, String> {
    let msg = wire::decode(bytes, server.limits.max_message)
        .map_err(|e| format!("refused message: {e}"))?;
    let compressor = msg.compressor;
    let reply = answer(server, conn, state, msg)?;
    Ok(match (reply, compressor) {
        (Some(r), Some(c)) => Some(wire::compress(&r, c)),
        (r, _) => r,
    })
}

/// The reply frame of a decoded message, or None when none is wanted.
fn answer(
    server: &Server,
    conn: u64,
    state: &mut commands::ConnState,
    msg: wire::Message,
) -> Result<Option<Vec<u8>>, String> {
    let reply_id = NEXT_REPLY_ID.fetch_add(1, Ordering::Relaxed);
    match msg.kind {
        wire::Kind::Msg { body, more_to_come } => {
            let db = match body.get("$db") {
                Some(bson::Bson::String(db)) => db.clone(),
                _ => {
                    let e = error::CmdError::parse("OP_MSG body has no '$db' string");
                    return Ok((!more_to_come).then(|| {
                        wire::op_msg_reply(
                            msg.request_id,
                            reply_id,
                            &reply::Reply::Doc(e.to_doc()).into_bytes(),
                        )
                    }));
                }
            };
            let reply = commands::run(server, conn, state, &db, &body).into_bytes();
            Ok((!more_to_come).then(|| wire::op_msg_reply(msg.request_id, reply_id, &reply)))
        }
        wire::Kind::Query { db, command } => {
            let reply = commands::run(server, conn, state, &db, &command).into_bytes();
            Ok(Some(wire::op_reply(msg.request_id, reply_id, &reply)))
        }
        wire::Kind::LegacyQuery { namespace } => {
            let e = error::CmdError::new(
                352,
                "UnsupportedOpQueryCommand",
                format!("OP_QUERY on {namespace} is not supported: use a driver speaking OP_MSG"),
            );
            let reply = reply::Reply::Doc(e.to_doc()).into_bytes();
            Ok(Some(wire::op_reply(msg.request_id, reply_id, &reply)))
        }
    }
}
