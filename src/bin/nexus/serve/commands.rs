//! The command dispatcher ([`run`]) and the commands that are about the server or a whole
//! database: hello / isMaster, ping, buildInfo, connectionStatus, hostInfo, listDatabases,
//! listCollections, create, drop, dropDatabase, renameCollection, collStats, dbStats,
//! endSessions, killCursors, getMore. The collection reads and writes are in `crud.rs`.
//! Everything runs through the public API of the `nexus` library.

use super::args;
use super::crud;
use super::error::{CmdError, CmdResult};
use super::reply::{self, Reply};
use super::scram::Conversation;
use super::sessions;
use super::state::{check_db_name, Server, ServerCursor, Source, MAX_BSON, MAX_WRITE_BATCH};
use bson::{doc, Bson, Document as BsonDocument};
use nexus::{Database, FindOptions};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The wire versions this server speaks (MongoDB 7.0's range top).
pub const MAX_WIRE_VERSION: i32 = 21;
/// The MongoDB version reported by buildInfo (the feature level drivers compare with).
pub const COMPAT_VERSION: &str = "7.0.0";

/// One connection's view: the shared server, the connection's id, and the transaction the
/// command belongs to (its database's name and connection).
pub struct Ctx<'a> {
    pub server: &'a Server,
    pub conn: u64,
    pub txn: Option<(String, Arc<Database>)>,
    /// The authenticated user of the connection.
    pub user: Option<String>,
    /// The connection's own handles of the databases it used ([`ConnState::dbs`]).
    dbs: RefCell<HashMap<String, Arc<Database>>>,
}

/// What a connection keeps between its commands: who authenticated, a SCRAM conversation
/// between its two steps, and a handle of its own on each database it used.
#[derive(Default)]
pub struct ConnState {
    pub user: Option<String>,
    pub scram: Option<Conversation>,
    /// One NexusLite connection per database, joining the engine the server holds open: the
    /// auto-commit writes of several wire connections then commit as separate connections
    /// do (their fsyncs shared by group commit) instead of one after another on one handle.
    pub dbs: HashMap<String, Arc<Database>>,
}

/// The commands a connection may run before it authenticates (with `--auth`).
const WITHOUT_AUTH: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "saslStart",
    "saslContinue",
    "ping",
    "buildInfo",
    "buildinfo",
    "connectionStatus",
    "endSessions",
    "logout",
];

impl Ctx<'_> {
    fn in_txn(&self, name: &str) -> CmdResult<Option<Arc<Database>>> {
        match &self.txn {
            None => Ok(None),
            Some((db, handle)) if db == name => Ok(Some(Arc::clone(handle))),
            Some((db, _)) => Err(CmdError::new(
                263,
                "OperationNotSupportedInTransaction",
                format!(
                    "this transaction is on database '{db}'; a transaction covers one database"
                ),
            )),
        }
    }

    /// The database `name` for a read: the transaction's connection inside one, else this
    /// wire connection's own (an empty database while no file exists: a read creates none).
    pub fn db_read(&self, name: &str) -> CmdResult<Arc<Database>> {
        if let Some(h) = self.in_txn(name)? {
            return Ok(h);
        }
        if let Some(h) = self.dbs.borrow().get(name) {
            return Ok(Arc::clone(h));
        }
        let shared = self.server.db_for_read(name)?;
        if self.server.is_empty_db(&shared) {
            return Ok(shared);
        }
        self.own(name)
    }

    /// The database `name` for a write (created when missing).
    pub fn db_write(&self, name: &str) -> CmdResult<Arc<Database>> {
        if let Some(h) = self.in_txn(name)? {
            return Ok(h);
        }
        if let Some(h) = self.dbs.borrow().get(name) {
            return Ok(Arc::clone(h));
        }
        self.own(name)
    }

    /// Opens this wire connection's handle of `name` (created when missing).
    fn own(&self, name: &str) -> CmdResult<Arc<Database>> {
        let h = Arc::new(self.server.session_connection(name)?);
        self.dbs
            .borrow_mut()
            .insert(name.to_owned(), Arc::clone(&h));
        Ok(h)
    }
}

/// Runs the command `body` (its first key names it) against the database `db`, inside the
/// session's transaction when it carries `autocommit: false`.
pub fn run(
    server: &Server,
    conn: u64,
    state: &mut ConnState,
    db: &str,
    body: &BsonDocument,
) -> Reply {
    let Some(name) = body.keys().next().cloned() else {
        return CmdError::parse("empty command document").to_doc().into();
    };
    let result = match name.as_str() {
        "saslStart" => sasl_start(server, state, body),
        "saslContinue" => sasl_continue(conn, state, body),
        "logout" => {
            state.user = None;
            Ok(Reply::Doc(doc! {"ok": 1.0}))
        }
        _ if server.users.is_some()
            && state.user.is_none()
            && !WITHOUT_AUTH.contains(&name.as_str()) =>
        {
            Err(CmdError::unauthorized(format!(
                "command {name} requires authentication"
            )))
        }
        _ => Ok(Reply::Doc(BsonDocument::new())),
    };
    let mut ctx = Ctx {
        server,
        conn,
        txn: None,
        user: state.user.clone(),
        dbs: RefCell::new(std::mem::take(&mut state.dbs)),
    };
    let result = match result {
        Ok(Reply::Doc(d)) if d.is_empty() => in_session(&mut ctx, db, &name, body),
        r => r,
    };
    state.dbs = std::mem::take(ctx.dbs.get_mut());
    match result {
        Ok(r) => r,
        Err(e) => {
            log::debug!("command {name} on {db}: {} ({})", e.msg, e.name);
            let mut reply = e.to_doc();
            // What a driver's with_transaction retries: the whole transaction again.
            let in_txn = ctx.txn.is_some()
                || matches!(name.as_str(), "commitTransaction" | "abortTransaction");
            if in_txn && matches!(e.code, 46 | 251) {
                reply.insert("errorLabels", vec!["TransientTransactionError"]);
            }
            reply.into()
        }
    }
}

fn in_session(ctx: &mut Ctx, db: &str, name: &str, body: &BsonDocument) -> CmdResult<Reply> {
    let txn = sessions::fields(body)?;
    match (name, &txn) {
        ("commitTransaction", Some(t)) => {
            ctx.server.sessions.commit(t)?;
            return Ok(Reply::Doc(doc! {"ok": 1.0}));
        }
        ("abortTransaction", Some(t)) => {
            ctx.server.sessions.abort(t)?;
            return Ok(Reply::Doc(doc! {"ok": 1.0}));
        }
        ("commitTransaction" | "abortTransaction", None) => {
            return Err(CmdError::bad_value(format!(
                "{name} needs autocommit: false, lsid and txnNumber"
            )))
        }
        (_, Some(t)) => ctx.txn = Some(ctx.server.sessions.enter(ctx.server, db, t)?),
        (_, None) => {}
    }
    dispatch(ctx, db, name, body)
}

fn dispatch(ctx: &Ctx, db: &str, name: &str, body: &BsonDocument) -> CmdResult<Reply> {
    let d = |doc: BsonDocument| Ok(Reply::Doc(doc));
    match name {
        "hello" | "isMaster" | "ismaster" => d(hello(ctx, name != "hello", body)),
        "ping" => d(doc! {"ok": 1.0}),
        "buildInfo" | "buildinfo" => d(build_info()),
        "connectionStatus" => d(doc! {
            "authInfo": {
                "authenticatedUsers": ctx.user.iter().map(|u| doc! {"user": u, "db": "admin"}).collect::<Vec<_>>(),
                "authenticatedUserRoles": [],
            },
            "ok": 1.0
        }),
        "hostInfo" => d(host_info()),
        "whatsmyuri" => d(doc! {"you": "", "ok": 1.0}),
        "getCmdLineOpts" => d(doc! {"argv": ["nexus", "serve"], "parsed": {}, "ok": 1.0}),
        "endSessions" => d(end_sessions(ctx, body)?),
        "startSession" | "refreshSessions" => d(doc! {"ok": 1.0}),
        "listDatabases" => d(list_databases(ctx, body)?),
        "listCollections" => list_collections(ctx, db, body),
        "create" => d(create(ctx, db, body)?),
        "drop" => d(drop_collection(ctx, db, body)?),
        "dropDatabase" => d(drop_database(ctx, db)?),
        "renameCollection" => d(rename(ctx, body)?),
        "collStats" => d(coll_stats(ctx, db, body)?),
        "dbStats" => d(db_stats(ctx, db)?),
        "getMore" => get_more(ctx, db, body),
        "killCursors" => d(kill_cursors(ctx, db, body)?),
        "insert" => d(crud::insert(ctx, db, body)?),
        "update" => d(crud::update(ctx, db, body)?),
        "delete" => d(crud::delete(ctx, db, body)?),
        "find" => crud::find(ctx, db, body),
        "count" => d(crud::count(ctx, db, body)?),
        "distinct" => d(crud::distinct(ctx, db, body)?),
        "aggregate" => crud::aggregate(ctx, db, body),
        "findAndModify" | "findandmodify" => d(crud::find_and_modify(ctx, db, body, name)?),
        "createIndexes" => d(crud::create_indexes(ctx, db, body)?),
        "listIndexes" => crud::list_indexes(ctx, db, body),
        "dropIndexes" | "deleteIndexes" => d(crud::drop_indexes(ctx, db, body, name)?),
        "explain" => d(crud::explain(ctx, db, body)?),
        _ => Err(CmdError::no_command(name)),
    }
}

/// hello / isMaster: the limits and versions drivers read. `legacy`: the isMaster form
/// (`ismaster` instead of `isWritablePrimary`).
fn hello(ctx: &Ctx, legacy: bool, body: &BsonDocument) -> BsonDocument {
    let mut d = BsonDocument::new();
    // Compression: snappy when the client offers it.
    if let Ok(offered) = body.get_array("compression") {
        let snappy = offered.iter().any(|c| c.as_str() == Some("snappy"));
        d.insert(
            "compression",
            if snappy { vec!["snappy"] } else { Vec::new() },
        );
    }
    if ctx.server.users.is_some() && body.contains_key("saslSupportedMechs") {
        d.insert("saslSupportedMechs", vec!["SCRAM-SHA-256"]);
    }
    d.insert(
        if legacy {
            "ismaster"
        } else {
            "isWritablePrimary"
        },
        true,
    );
    d.insert("helloOk", true);
    d.insert(
        "maxBsonObjectSize",
        i32::try_from(MAX_BSON).unwrap_or(i32::MAX),
    );
    d.insert(
        "maxMessageSizeBytes",
        i32::try_from(ctx.server.limits.max_message).unwrap_or(i32::MAX),
    );
    d.insert(
        "maxWriteBatchSize",
        i32::try_from(MAX_WRITE_BATCH).unwrap_or(i32::MAX),
    );
    d.insert("localTime", bson::DateTime::now());
    d.insert("logicalSessionTimeoutMinutes", 30);
    d.insert("connectionId", i64::try_from(ctx.conn).unwrap_or(i64::MAX));
    d.insert("minWireVersion", 0);
    d.insert("maxWireVersion", MAX_WIRE_VERSION);
    d.insert("readOnly", false);
    d.insert("ok", 1.0);
    d
}

fn build_info() -> BsonDocument {
    doc! {
        "version": COMPAT_VERSION,
        "gitVersion": "nexuslite",
        "versionArray": [7, 0, 0, 0],
        "nexusliteVersion": env!("CARGO_PKG_VERSION"),
        "bits": 64,
        "debug": false,
        "maxBsonObjectSize": i32::try_from(MAX_BSON).unwrap_or(i32::MAX),
        "storageEngines": ["nexuslite"],
        "modules": [],
        "ok": 1.0,
    }
}

fn host_info() -> BsonDocument {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    doc! {
        "system": {
            "currentTime": bson::DateTime::now(),
            "hostname": hostname,
            "cpuAddrSize": 64,
            "numCores": i32::try_from(cores).unwrap_or(i32::MAX),
            "cpuArch": std::env::consts::ARCH,
        },
        "os": {"type": std::env::consts::OS, "name": std::env::consts::OS},
        "extra": {},
        "ok": 1.0,
    }
}

/// Filters `docs` with a MongoDB query, evaluated by NexusLite itself on a private
/// in-memory database (the listings' `filter` options).
fn filter_docs(docs: Vec<BsonDocument>, filter: &BsonDocument) -> CmdResult<Vec<BsonDocument>> {
    if filter.is_empty() {
        return Ok(docs);
    }
    let mem = Database::open_in_memory()?;
    let c = mem.collection("listing");
    let wrapped: Vec<nexus::Document> = docs
        .into_iter()
        .enumerate()
        .map(|(i, mut d)| {
            d.insert("_id", i64::try_from(i).unwrap_or(i64::MAX));
            nexus::Document::from_bson(d)
        })
        .collect();
    c.insert_many(wrapped)?;
    let opts = FindOptions {
        projection: Some(doc! {"_id": 0}),
        ..FindOptions::default()
    };
    c.find(filter, opts)?
        .map(|r| r.map(nexus::Document::into_bson).map_err(CmdError::from))
        .collect()
}

fn list_databases(ctx: &Ctx, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let name_only = args::boolean(body, "nameOnly")?.unwrap_or(false);
    let mut dbs = Vec::new();
    let mut total = 0u64;
    for name in ctx.server.database_names()? {
        let db = ctx.db_read(&name)?;
        // A database whose collections were all dropped is not listed (as in MongoDB).
        if db.list_collections()?.is_empty() {
            continue;
        }
        let size = ctx.server.size_on_disk(&name);
        total += size;
        dbs.push(if name_only {
            doc! {"name": name}
        } else {
            doc! {"name": name, "sizeOnDisk": i64::try_from(size).unwrap_or(i64::MAX), "empty": false}
        });
    }
    if let Some(f) = args::doc(body, "filter")? {
        dbs = filter_docs(dbs, &f)?;
    }
    let mut out = doc! {"databases": dbs};
    if !name_only {
        out.insert("totalSize", i64::try_from(total).unwrap_or(i64::MAX));
        out.insert(
            "totalSizeMb",
            i64::try_from(total >> 20).unwrap_or(i64::MAX),
        );
    }
    out.insert("ok", 1.0);
    Ok(out)
}

/// The batch size of a `cursor: {batchSize}` option (None: the default).
pub fn cursor_batch_size(body: &BsonDocument) -> CmdResult<Option<usize>> {
    match args::doc(body, "cursor")? {
        Some(c) => {
            Ok(args::count(&c, "batchSize")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
        }
        None => Ok(None),
    }
}

/// Answers with the first batch of `source` and keeps the rest as a server-side cursor.
/// `first`: the first batch's size (None: MongoDB's 101); `single`: close after it.
pub fn open_cursor(
    ctx: &Ctx,
    source: Source,
    ns: String,
    first: Option<usize>,
    single: bool,
) -> CmdResult<Reply> {
    let mut cursor = ServerCursor::new(source, ns.clone(), ctx.conn);
    let (docs, done) = cursor.batch(Some(first.unwrap_or(101)))?;
    let id = if done || single {
        0
    } else {
        ctx.server.add_cursor(cursor)?
    };
    Ok(reply::cursor("firstBatch", &docs, id, &ns))
}

fn list_collections(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<Reply> {
    let name_only = args::boolean(body, "nameOnly")?.unwrap_or(false);
    let database = ctx.db_read(db)?;
    let mut out = Vec::new();
    for name in database.list_collections()? {
        out.push(if name_only {
            doc! {"name": name, "type": "collection"}
        } else {
            doc! {
                "name": name,
                "type": "collection",
                "options": {},
                "info": {"readOnly": false},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            }
        });
    }
    if let Some(f) = args::doc(body, "filter")? {
        out = filter_docs(out, &f)?;
    }
    open_cursor(
        ctx,
        Source::Docs(VecDeque::from(out)),
        format!("{db}.$cmd.listCollections"),
        cursor_batch_size(body)?,
        false,
    )
}

/// Options of `create` this server cannot honour: refused rather than ignored.
const CREATE_UNSUPPORTED: &[&str] = &[
    "capped",
    "validator",
    "viewOn",
    "pipeline",
    "timeseries",
    "clusteredIndex",
    "changeStreamPreAndPostImages",
    "expireAfterSeconds",
];

fn create(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let name = args::string(body, "create")?;
    for key in CREATE_UNSUPPORTED {
        let set = match body.get(*key) {
            None | Some(Bson::Null) | Some(Bson::Boolean(false)) => false,
            Some(_) => true,
        };
        if set {
            return Err(CmdError::new(
                238,
                "NotImplemented",
                format!("create: option '{key}' is not supported by NexusLite"),
            ));
        }
    }
    let database = ctx.db_write(db)?;
    match database.create_collection(&name, None) {
        Ok(()) => Ok(doc! {"ok": 1.0}),
        Err(nexus::Error::DuplicateKey(_)) => Err(CmdError::new(
            48,
            "NamespaceExists",
            format!("Collection {db}.{name} already exists."),
        )),
        Err(e) => Err(e.into()),
    }
}

fn drop_collection(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let name = args::string(body, "drop")?;
    let database = ctx.db_read(db)?;
    if !database.list_collections()?.contains(&name) {
        // MongoDB 7: dropping a missing collection succeeds.
        return Ok(doc! {"ok": 1.0});
    }
    let indexes = database.collection(&name).list_indexes()?.len();
    database.drop_collection(&name)?;
    Ok(doc! {
        "nIndexesWas": i32::try_from(indexes).unwrap_or(i32::MAX),
        "ns": format!("{db}.{name}"),
        "ok": 1.0
    })
}

fn drop_database(ctx: &Ctx, db: &str) -> CmdResult<BsonDocument> {
    let database = ctx.db_read(db)?;
    for name in database.list_collections()? {
        database.drop_collection(&name)?;
    }
    Ok(doc! {"dropped": db, "ok": 1.0})
}

/// `db.coll` split at the first dot.
fn split_ns(ns: &str) -> CmdResult<(&str, &str)> {
    ns.split_once('.')
        .filter(|(d, c)| !d.is_empty() && !c.is_empty())
        .ok_or_else(|| CmdError::invalid_ns(format!("invalid namespace '{ns}'")))
}

fn rename(ctx: &Ctx, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let from = args::string(body, "renameCollection")?;
    let to = args::string(body, "to")?;
    let (from_db, from_coll) = split_ns(&from)?;
    let (to_db, to_coll) = split_ns(&to)?;
    check_db_name(from_db)?;
    if from_db != to_db {
        return Err(CmdError::new(
            238,
            "NotImplemented",
            "renameCollection across databases is not supported by NexusLite",
        ));
    }
    let database = ctx.db_read(from_db)?;
    let names = database.list_collections()?;
    if !names.iter().any(|n| n == from_coll) {
        return Err(CmdError::ns_not_found(format!(
            "source namespace {from} does not exist"
        )));
    }
    if names.iter().any(|n| n == to_coll) {
        if args::boolean(body, "dropTarget")?.unwrap_or(false) {
            database.drop_collection(to_coll)?;
        } else {
            return Err(CmdError::new(
                48,
                "NamespaceExists",
                format!("target namespace {to} exists"),
            ));
        }
    }
    database.rename_collection(from_coll, to_coll)?;
    Ok(doc! {"ok": 1.0})
}

fn coll_stats(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let name = args::string(body, "collStats")?;
    let mut stats = coll_stats_doc(ctx, db, &name)?;
    stats.insert("ok", 1.0);
    Ok(stats)
}

/// collStats' numbers of `db.name` (also the `$collStats` stage's `storageStats`).
pub fn coll_stats_doc(ctx: &Ctx, db: &str, name: &str) -> CmdResult<BsonDocument> {
    let database = ctx.db_read(db)?;
    if !database.list_collections()?.iter().any(|n| n == name) {
        return Err(CmdError::ns_not_found(format!(
            "Collection [{db}.{name}] not found."
        )));
    }
    let c = database.collection(name);
    let count = c.count(&BsonDocument::new())?;
    let indexes = c.list_indexes()?;
    Ok(doc! {
        "ns": format!("{db}.{name}"),
        "count": i64::try_from(count).unwrap_or(i64::MAX),
        "nindexes": i32::try_from(indexes.len()).unwrap_or(i32::MAX),
        "indexNames": indexes.iter().filter_map(|i| i.get_str("name").ok()).collect::<Vec<_>>(),
        "storageEngine": "nexuslite",
    })
}

fn db_stats(ctx: &Ctx, db: &str) -> CmdResult<BsonDocument> {
    let database = ctx.db_read(db)?;
    let names = database.list_collections()?;
    let (mut objects, mut indexes) = (0u64, 0usize);
    for n in &names {
        let c = database.collection(n);
        objects += c.count(&BsonDocument::new())?;
        indexes += c.list_indexes()?.len();
    }
    let size = i64::try_from(ctx.server.size_on_disk(db)).unwrap_or(i64::MAX);
    Ok(doc! {
        "db": db,
        "collections": i32::try_from(names.len()).unwrap_or(i32::MAX),
        "views": 0,
        "objects": i64::try_from(objects).unwrap_or(i64::MAX),
        "indexes": i32::try_from(indexes).unwrap_or(i32::MAX),
        "storageSize": size,
        "fsUsedSize": size,
        "ok": 1.0,
    })
}

/// The `payload` of a SASL command (binary, or a string from older shells).
fn sasl_payload(body: &BsonDocument) -> CmdResult<Vec<u8>> {
    match body.get("payload") {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        Some(Bson::String(s)) => Ok(s.as_bytes().to_vec()),
        _ => Err(CmdError::bad_value("SASL payload must be binary data")),
    }
}

fn auth_failed(why: &str) -> CmdError {
    log::warn!("authentication failed: {why}");
    CmdError::new(18, "AuthenticationFailed", "Authentication failed.")
}

fn sasl_reply(done: bool, payload: &str) -> Reply {
    Reply::Doc(doc! {
        "conversationId": 1,
        "done": done,
        "payload": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: payload.as_bytes().to_vec() },
        "ok": 1.0,
    })
}

fn sasl_start(server: &Server, state: &mut ConnState, body: &BsonDocument) -> CmdResult<Reply> {
    let Some(users) = &server.users else {
        return Err(CmdError::new(
            334,
            "MechanismUnavailable",
            "this server runs without --auth: no authentication needed",
        ));
    };
    match body.get("mechanism") {
        Some(Bson::String(m)) if m == "SCRAM-SHA-256" => {}
        m => {
            return Err(CmdError::new(
                334,
                "MechanismUnavailable",
                format!("unsupported mechanism {m:?}: this server offers SCRAM-SHA-256"),
            ))
        }
    }
    let payload = sasl_payload(body)?;
    let (conv, first) = Conversation::start(&payload, users).map_err(|e| auth_failed(&e))?;
    state.scram = Some(conv);
    Ok(sasl_reply(false, &first))
}

fn sasl_continue(conn: u64, state: &mut ConnState, body: &BsonDocument) -> CmdResult<Reply> {
    let payload = sasl_payload(body)?;
    let Some(conv) = state.scram.take() else {
        // The empty last step of a client that does not skip it.
        if state.user.is_some() && payload.is_empty() {
            return Ok(sasl_reply(true, ""));
        }
        return Err(auth_failed("saslContinue without saslStart"));
    };
    let (user, last) = conv.finish(&payload).map_err(|e| auth_failed(&e))?;
    log::info!("connection {conn}: authenticated as {user}");
    state.user = Some(user);
    Ok(sasl_reply(true, &last))
}

fn end_sessions(ctx: &Ctx, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let Some(Bson::Array(ids)) = body.get("endSessions") else {
        return Err(CmdError::bad_value("endSessions: an array of session ids"));
    };
    let ids: Vec<Vec<u8>> = ids
        .iter()
        .filter_map(|v| match v {
            Bson::Document(d) => match d.get("id") {
                Some(Bson::Binary(b)) => Some(b.bytes.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    ctx.server.sessions.end(&ids);
    Ok(doc! {"ok": 1.0})
}

fn get_more(ctx: &Ctx, db: &str, body: &BsonDocument) -> CmdResult<Reply> {
    let id = match body.get("getMore") {
        Some(Bson::Int64(id)) => *id,
        Some(Bson::Int32(id)) => i64::from(*id),
        _ => {
            return Err(CmdError::new(
                14,
                "TypeMismatch",
                "getMore: the cursor id must be a long",
            ))
        }
    };
    let coll = args::string(body, "collection")?;
    let batch = args::count(body, "batchSize")?
        .filter(|&n| n > 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let cursor = ctx
        .server
        .cursor(id)
        .ok_or_else(|| CmdError::new(43, "CursorNotFound", format!("cursor id {id} not found")))?;
    let mut c = cursor.lock();
    let expected = format!("{db}.{coll}");
    if c.ns != expected
        && !c.ns.starts_with(&format!("{expected}.$cmd"))
        && !c.ns.starts_with(&format!("{db}.$cmd"))
    {
        return Err(CmdError::unauthorized(format!(
            "cursor {id} belongs to {}, not {expected}",
            c.ns
        )));
    }
    let result = c.batch(batch);
    let ns = c.ns.clone();
    drop(c);
    let (docs, done) = match result {
        Ok(r) => r,
        Err(e) => {
            ctx.server.remove_cursor(id);
            return Err(e);
        }
    };
    if done {
        ctx.server.remove_cursor(id);
    }
    Ok(reply::cursor(
        "nextBatch",
        &docs,
        if done { 0 } else { id },
        &ns,
    ))
}

fn kill_cursors(ctx: &Ctx, _db: &str, body: &BsonDocument) -> CmdResult<BsonDocument> {
    let _coll = args::string(body, "killCursors")?;
    let Some(Bson::Array(ids)) = body.get("cursors") else {
        return Err(CmdError::parse(
            "killCursors: 'cursors' must be an array of ids",
        ));
    };
    let (mut killed, mut missing) = (Vec::new(), Vec::new());
    for v in ids {
        let id = match v {
            Bson::Int64(id) => *id,
            Bson::Int32(id) => i64::from(*id),
            _ => return Err(CmdError::bad_value("killCursors: cursor ids must be longs")),
        };
        if ctx.server.remove_cursor(id) {
            killed.push(id);
        } else {
            missing.push(id);
        }
    }
    Ok(doc! {
        "cursorsKilled": killed,
        "cursorsNotFound": missing,
        "cursorsAlive": [],
        "cursorsUnknown": [],
        "ok": 1.0,
    })
}
