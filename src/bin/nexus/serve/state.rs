//! [`Server`]: what every connection shares. The databases of the data directory (each
//! MongoDB database `NAME` is the NexusLite file `DIR/NAME.db`, opened on first use and kept
//! open, one [`nexus::Database`] shared by every connection) and the server-side cursors
//! ([`ServerCursor`], found by id from any connection, killed when idle for
//! [`Limits::cursor_idle`] or when the connection that opened them closes).

use super::error::{CmdError, CmdResult};
use super::sessions::Sessions;
use super::users::User;
use bson::Document as BsonDocument;
use nexus::{Database, OpenOptions};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The per-server and per-connection limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest message accepted (`maxMessageSizeBytes`); a larger one closes the
    /// connection.
    pub max_message: usize,
    /// Open cursors one connection may hold.
    pub max_cursors_per_connection: usize,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// A cursor not used for this long is killed.
    pub cursor_idle: Duration,
}

/// `maxBsonObjectSize`: 16 MiB.
pub const MAX_BSON: usize = 16 * 1024 * 1024;
/// `maxMessageSizeBytes`: 48 MB.
pub const MAX_MESSAGE: usize = 48_000_000;
/// `maxWriteBatchSize`.
pub const MAX_WRITE_BATCH: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: MAX_MESSAGE,
            max_cursors_per_connection: 1000,
            max_connections: 1000,
            cursor_idle: Duration::from_secs(600),
        }
    }
}

/// The documents a cursor hands out.
pub enum Source {
    /// A NexusLite cursor (find, aggregate): documents read as batches are asked for.
    Nexus(Box<nexus::Cursor>),
    /// Documents computed up front (listCollections, listIndexes).
    Docs(VecDeque<BsonDocument>),
}

impl Source {
    fn next(&mut self) -> CmdResult<Option<BsonDocument>> {
        match self {
            Source::Nexus(c) => Ok(c.next_document()?.map(nexus::Document::into_bson)),
            Source::Docs(d) => Ok(d.pop_front()),
        }
    }
}

/// A server-side cursor.
pub struct ServerCursor {
    source: Source,
    /// One document read ahead: tells whether the cursor is exhausted after a batch.
    ahead: Option<Vec<u8>>,
    /// `db.collection`, checked by getMore.
    pub ns: String,
    /// The connection that opened it.
    pub conn: u64,
    last_used: Instant,
}

impl ServerCursor {
    pub fn new(source: Source, ns: String, conn: u64) -> Self {
        Self {
            source,
            ahead: None,
            ns,
            conn,
            last_used: Instant::now(),
        }
    }

    /// The next batch as encoded documents: at most `max_docs` (None: no count limit), and no
    /// more than [`MAX_BSON`] bytes in all (at least one document). The flag: exhausted.
    pub fn batch(&mut self, max_docs: Option<usize>) -> CmdResult<(Vec<Vec<u8>>, bool)> {
        self.last_used = Instant::now();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        loop {
            if max_docs.is_some_and(|m| out.len() >= m) {
                break;
            }
            let next = match self.ahead.take() {
                Some(d) => d,
                None => match self.source.next()? {
                    Some(d) => d
                        .to_vec()
                        .map_err(|e| CmdError::bad_value(format!("cannot encode a result: {e}")))?,
                    None => return Ok((out, true)),
                },
            };
            if !out.is_empty() && bytes + next.len() > MAX_BSON {
                self.ahead = Some(next);
                return Ok((out, false));
            }
            bytes += next.len();
            out.push(next);
        }
        // Read one ahead so an exhausted cursor reports id 0 at once.
        if self.ahead.is_none() {
            match self.source.next()? {
                Some(d) => {
                    self.ahead =
                        Some(d.to_vec().map_err(|e| {
                            CmdError::bad_value(format!("cannot encode a result: {e}"))
                        })?)
                }
                None => return Ok((out, true)),
            }
        }
        Ok((out, false))
    }
}

/// A cursor as the map holds it: a getMore locks it while it reads a batch.
pub type SharedCursor = Arc<Mutex<ServerCursor>>;

/// State shared by all connections.
pub struct Server {
    /// The data directory: `NAME.db` per database.
    pub dir: PathBuf,
    pub limits: Limits,
    dbs: Mutex<HashMap<String, Arc<Database>>>,
    /// Reads of a database that has no file yet see this empty one.
    empty: Arc<Database>,
    /// Each cursor with its connection's id (read without locking the cursor, which a
    /// getMore may hold for a while).
    cursors: Mutex<HashMap<i64, (u64, SharedCursor)>>,
    next_cursor: AtomicI64,
    /// The drivers' transactions.
    pub sessions: Sessions,
    /// With `--auth`: the users who may connect (read at start).
    pub users: Option<Vec<User>>,
    /// Idle NexusLite connections per database for the HTTP and gRPC front ends, whose
    /// requests are not tied to a connection: a request takes one ([`Server::handle`]) and
    /// gives it back when done, so concurrent auto-commit writes commit as separate
    /// connections do (their fsyncs shared by group commit), as the wire connections' own
    /// handles do.
    idle: Mutex<HashMap<String, Vec<Database>>>,
}

/// The most idle connections [`Server::handle`] keeps per database.
const MAX_IDLE_HANDLES: usize = 64;

/// A NexusLite connection lent to one HTTP or gRPC request by [`Server::handle`]; back to
/// the pool on drop (unless inside a transaction, which a lent handle never is).
pub struct Lent<'a> {
    server: &'a Server,
    name: String,
    db: Option<Database>,
    /// The empty stand-in of a database without a file (a read never creates one).
    empty: Option<Arc<Database>>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Database;
    fn deref(&self) -> &Database {
        match (&self.db, &self.empty) {
            (Some(db), _) => db,
            (None, Some(e)) => e,
            (None, None) => unreachable!("a lent handle holds a database until dropped"),
        }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            if db.in_transaction() {
                let _ = db.rollback();
            }
            let mut idle = self.server.idle.lock();
            let list = idle.entry(std::mem::take(&mut self.name)).or_default();
            if list.len() < MAX_IDLE_HANDLES {
                list.push(db);
            }
        }
    }
}

/// Whether `name` can be a database file name: MongoDB's rules (no `/\. "$*<>:|?`, at most
/// 63 bytes) narrowed to letters, digits, `_` and `-`.
pub fn check_db_name(name: &str) -> CmdResult<()> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(CmdError::invalid_ns(format!(
            "invalid database name '{name}': use 1 to 63 letters, digits, '_' or '-'"
        )));
    }
    Ok(())
}

impl Server {
    pub fn new(dir: PathBuf, limits: Limits, users: Option<Vec<User>>) -> CmdResult<Self> {
        Ok(Self {
            users,
            dir,
            limits,
            dbs: Mutex::new(HashMap::new()),
            empty: Arc::new(Database::open_in_memory()?),
            cursors: Mutex::new(HashMap::new()),
            next_cursor: AtomicI64::new(i64::from(fastrand_seed())),
            sessions: Sessions::default(),
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// A connection to the database `name` for one request: an idle one, or a new one
    /// joining the engine the server holds open. `write`: create the file when missing;
    /// otherwise a missing database reads as an empty one and creates nothing.
    pub fn handle(&self, name: &str, write: bool) -> CmdResult<Lent<'_>> {
        check_db_name(name)?;
        let lent = |db, empty| Lent {
            server: self,
            name: name.to_owned(),
            db,
            empty,
        };
        if let Some(db) = self.idle.lock().get_mut(name).and_then(Vec::pop) {
            return Ok(lent(Some(db), None));
        }
        if !write {
            let shared = self.db_for_read(name)?;
            if self.is_empty_db(&shared) {
                return Ok(lent(None, Some(shared)));
            }
        }
        Ok(lent(Some(self.session_connection(name)?), None))
    }

    /// The databases open now, by name (for the metrics).
    pub fn open_databases(&self) -> Vec<(String, Arc<Database>)> {
        let mut v: Vec<_> = self
            .dbs
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.db"))
    }

    /// The database for a read: the open one, the file opened, or an empty one when the
    /// file does not exist (a read never creates a file).
    pub fn db_for_read(&self, name: &str) -> CmdResult<Arc<Database>> {
        check_db_name(name)?;
        if let Some(db) = self.dbs.lock().get(name) {
            return Ok(Arc::clone(db));
        }
        if !self.path_of(name).exists() {
            return Ok(Arc::clone(&self.empty));
        }
        self.db_for_write(name)
    }

    /// Whether `db` is the empty stand-in [`Server::db_for_read`] hands out for a database
    /// without a file.
    pub fn is_empty_db(&self, db: &Arc<Database>) -> bool {
        Arc::ptr_eq(db, &self.empty)
    }

    /// The database for a write: opened, created when missing.
    pub fn db_for_write(&self, name: &str) -> CmdResult<Arc<Database>> {
        check_db_name(name)?;
        let mut dbs = self.dbs.lock();
        if let Some(db) = dbs.get(name) {
            return Ok(Arc::clone(db));
        }
        let db = Arc::new(Database::open(self.path_of(name), OpenOptions::default())?);
        log::info!("opened database {name} ({})", self.path_of(name).display());
        dbs.insert(name.to_owned(), Arc::clone(&db));
        Ok(db)
    }

    /// A connection of its own to the database `name` (created when missing), for a
    /// transaction: it joins the engine the server holds open.
    pub fn session_connection(&self, name: &str) -> CmdResult<Database> {
        self.db_for_write(name)?;
        Ok(Database::open(self.path_of(name), OpenOptions::default())?)
    }

    /// The names of the databases in the data directory, sorted.
    pub fn database_names(&self) -> CmdResult<Vec<String>> {
        let mut names = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            CmdError::new(1, "InternalError", format!("{}: {e}", self.dir.display()))
        })?;
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".db")) else {
                continue;
            };
            if check_db_name(stem).is_ok() && e.path().is_file() {
                names.push(stem.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The size of `NAME.db` and its log on disk.
    pub fn size_on_disk(&self, name: &str) -> u64 {
        let db = self.path_of(name);
        let log = db.with_extension("wasp");
        [db, log]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Registers a cursor; its id (never 0). Refused past the connection's limit.
    pub fn add_cursor(&self, cursor: ServerCursor) -> CmdResult<i64> {
        let mut cursors = self.cursors.lock();
        let conn = cursor.conn;
        let held = cursors.values().filter(|(c, _)| *c == conn).count();
        if held >= self.limits.max_cursors_per_connection {
            return Err(CmdError::new(
                2,
                "BadValue",
                format!("this connection holds {held} open cursors, the limit: close some first"),
            ));
        }
        let id = loop {
            let id = self.next_cursor.fetch_add(1, Ordering::Relaxed) & i64::MAX;
            if id != 0 && !cursors.contains_key(&id) {
                break id;
            }
        };
        cursors.insert(id, (conn, Arc::new(Mutex::new(cursor))));
        Ok(id)
    }

    pub fn cursor(&self, id: i64) -> Option<SharedCursor> {
        self.cursors.lock().get(&id).map(|(_, c)| Arc::clone(c))
    }

    pub fn remove_cursor(&self, id: i64) -> bool {
        self.cursors.lock().remove(&id).is_some()
    }

    /// Kills the cursors of a connection that closed; how many.
    pub fn close_connection_cursors(&self, conn: u64) -> usize {
        let mut cursors = self.cursors.lock();
        let before = cursors.len();
        cursors.retain(|_, (c, _)| *c != conn);
        before - cursors.len()
    }

    /// Kills the cursors idle longer than the limit; how many.
    pub fn expire_cursors(&self) -> usize {
        let idle = self.limits.cursor_idle;
        let mut cursors = self.cursors.lock();
        let before = cursors.len();
        // A cursor in use (locked) is not idle.
        cursors.retain(|_, (_, c)| c.try_lock().is_none_or(|c| c.last_used.elapsed() < idle));
        before - cursors.len()
    }

    /// Checkpoints and closes every open database (shutdown); the errors, as text.
    pub fn close_all(&self) -> Vec<String> {
        self.cursors.lock().clear();
        self.sessions.abort_all();
        self.idle.lock().clear();
        let dbs: Vec<(String, Arc<Database>)> = self.dbs.lock().drain().collect();
        let mut errors = Vec::new();
        for (name, db) in dbs {
            if let Err(e) = db.checkpoint() {
                errors.push(format!("checkpoint of {name}: {e}"));
            }
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    if let Err(e) = db.close() {
                        errors.push(format!("close of {name}: {e}"));
                    }
                }
                // Still held by a request that outlived the grace period: dropped with it.
                Err(_) => errors.push(format!("{name} still in use at shutdown")),
            }
        }
        errors
    }
}

/// A start for cursor ids that differs between runs (ids of a previous run are not valid).
fn fastrand_seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ (std::process::id() << 8)
}
