//! [`Database`]: a connection. It opens (or joins) the engine of a file, runs each call in
//! a transaction of its own or of the connection's explicit one, and offers the database-wide
//! operations: collections, transactions, checkpoint, compact, backup, check, stats,
//! configure, expiry.
//!
//! A connection serializes its own calls. Outside an explicit transaction every call is its
//! own transaction; between [`Database::begin`] and [`Database::commit`] every call on the
//! connection is part of one atomic, isolated unit. Each write call validates and computes
//! all its changes before applying any, so a failing call changes nothing, also inside a
//! transaction.

use crate::engine::txn::TrackedTxn;
use crate::engine::{open_engine, CollOptions, Engine, EngineConfig};
use crate::error::{Error, Result};
use crate::options::OptionReader;

use super::collection::{check_collection_name, Collection};
use super::options::{positive, OpenOptions};
#[cfg(any(test, feature = "fault-injection"))]
use crate::storage::fault::FaultPlan;
use crate::storage::identity::{holds_database, FileId};
use crate::storage::{database_files, ReadView, StorageEngine, SyncMode, WriteTxn};
use parking_lot::Mutex;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A connection to a database.
///
/// `Database` is `Send + Sync`; calls on one connection are serialized. Open several
/// connections to the same path for parallel work: connections of one process share one
/// engine. Dropping a connection closes it (and rolls back an open transaction).
///
/// ```
/// use nexus::{Database, Document, FindOptions};
/// let db = Database::open_in_memory().unwrap();
/// let users = db.collection("users");
/// users.insert(Document::builder().field("name", "ada").field("age", 36).build()).unwrap();
/// users.insert(Document::from_json(r#"{"name": "alan", "age": 41}"#).unwrap()).unwrap();
/// let older: Vec<Document> = users
///     .find_json(r#"{"age": {"$gt": 40}}"#, FindOptions::default())
///     .unwrap()
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(older.len(), 1);
/// assert_eq!(older[0].get("name").and_then(|v| v.as_str()), Some("alan"));
/// ```
pub struct Database {
    engine: Arc<Engine>,
    txn: Mutex<Option<Txn>>,
    closed: Arc<AtomicBool>,
    sync: Mutex<SyncMode>,
    busy_timeout_ms: AtomicU64,
    read_only: bool,
}

/// The transaction open on a connection.
enum Txn {
    /// [`Database::begin`]: holds the write lock; reads see its own changes.
    Write(TrackedTxn),
    /// [`Database::begin_read`]: one snapshot for every read, writes refused; takes no lock.
    Read(Arc<dyn ReadView>),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.engine.path)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if needed) the database file at `path`; its side log is the same
    /// name with the extension `.wasp`.
    ///
    /// Errors: [`Error::Corrupt`] for a file that is not a NexusLite database (the file is not
    /// modified), [`Error::Unsupported`] for a newer format, [`Error::Busy`] when another
    /// process holds the database, [`Error::Io`] for OS failures.
    pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        if path.as_os_str() == ":memory:" {
            return Self::with_engine(None, options);
        }
        Self::with_engine(Some(path), options)
    }

    /// Opens a private in-memory database; nothing survives closing it.
    pub fn open_in_memory() -> Result<Self> {
        Self::with_engine(None, OpenOptions::default())
    }

    fn with_engine(path: Option<&Path>, options: OpenOptions) -> Result<Self> {
        // A key that is not a P-256 private key is refused before a file is created or opened.
        if let Some(key) = &options.encryption_key {
            crate::crypto::public_key(key.as_str())?;
        } else if options.encryption_cipher.is_some() {
            return Err(Error::invalid(
                "open option 'encryption_cipher' chooses the cipher of a new encrypted file: it needs 'encryption_key'",
            ));
        }
        let cfg = EngineConfig {
            create: options.create,
            read_only: options.read_only,
            busy_timeout: Duration::from_millis(options.busy_timeout_ms),
            cache: options.cache.clone().unwrap_or_default(),
            sweeper: options.sweeper.unwrap_or_default(),
            storage: options.storage.unwrap_or(StorageEngine::DEFAULT),
            wasp: {
                let d = crate::storage::wasp::WaspConfig::default();
                crate::storage::wasp::WaspConfig {
                    page_size: options.page_size.unwrap_or(d.page_size),
                    cache_bytes: options.page_cache_bytes.unwrap_or(d.cache_bytes),
                    checkpoint_log_bytes: options
                        .checkpoint_log_bytes
                        .unwrap_or(d.checkpoint_log_bytes),
                    checkpoint_interval: options
                        .checkpoint_interval_ms
                        .map_or(d.checkpoint_interval, Duration::from_millis),
                    mmap: options.mmap.unwrap_or(d.mmap),
                    compact_on_close: options.compact_on_close.unwrap_or(d.compact_on_close),
                    recover: options.recover,
                    encryption: options
                        .encryption_key
                        .clone()
                        .map(crate::storage::wasp::keyslots::Unlock::Key),
                    cipher: options.encryption_cipher,
                }
            },
            recover: options.recover,
        };
        let engine = open_engine(path, &cfg)?;
        engine.attach();
        // A database already open in this process keeps its engine; explicit settings of
        // this connection still apply to it.
        if let Some(c) = options
            .cache
            .as_ref()
            .filter(|c| **c != engine.cache.config())
        {
            engine
                .cache
                .configure(c.clone(), crate::document::now_millis());
        }
        if let Some(s) = options.sweeper.filter(|s| *s != engine.sweeper_config()) {
            engine.set_sweeper_config(s);
        }
        ::log::debug!("opened {:?}", engine.path);
        Ok(Self {
            engine,
            txn: Mutex::new(None),
            closed: Arc::new(AtomicBool::new(false)),
            sync: Mutex::new(options.sync),
            busy_timeout_ms: AtomicU64::new(options.busy_timeout_ms),
            read_only: options.read_only,
        })
    }

    /// Closes the connection: rolls back an open transaction; the last connection of the
    /// engine checkpoints and syncs. Cursors opened from it fail from now on.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        match self.txn.lock().take() {
            Some(Txn::Write(t)) if self.engine.inherited() => {
                // The parent's transaction: its log and pages are the parent's to finish.
                std::mem::forget(t);
            }
            Some(Txn::Write(t)) => self.engine.abandon(t),
            Some(Txn::Read(_)) | None => {}
        }
        self.engine.release()
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed("the database connection is closed".into()));
        }
        if self.engine.inherited() {
            return Err(self.engine.inherited_error());
        }
        self.engine.refresh(self.busy_timeout())
    }

    fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn closed_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.closed)
    }

    /// A handle on the collection `name` (it need not exist yet: inserting creates it).
    pub fn collection(&self, name: &str) -> Collection<'_> {
        Collection {
            db: self,
            name: name.to_owned(),
        }
    }

    /// Runs `f` inside the connection's transaction, or in a new single-call transaction.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut dyn WriteTxn) -> Result<R>) -> Result<R> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::ReadOnly(
                "this connection was opened with read_only: true".into(),
            ));
        }
        let mut slot = self.txn.lock();
        match slot.as_mut() {
            Some(Txn::Write(t)) => {
                let r = f(t);
                if let Some(e) = t.fault() {
                    return Err(e);
                }
                r
            }
            Some(Txn::Read(_)) => Err(Error::ReadOnly(
                "a read transaction is open on this connection (begin_read): writes wait for \
                 its commit or rollback"
                    .into(),
            )),
            None => {
                drop(slot);
                self.engine.write(self.busy_timeout(), *self.sync.lock(), f)
            }
        }
    }

    /// Runs `f` against the transaction's view, or the latest committed snapshot.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&dyn ReadView) -> Result<R>) -> Result<R> {
        self.check_open()?;
        let slot = self.txn.lock();
        let snap = match slot.as_ref() {
            Some(Txn::Write(t)) => {
                let r = f(t);
                if let Some(e) = t.fault() {
                    return Err(e);
                }
                return r;
            }
            Some(Txn::Read(snap)) => Arc::clone(snap),
            None => self.engine.storage.read(),
        };
        drop(slot);
        let r = f(&*snap);
        if let Some(e) = snap.fault() {
            return Err(e);
        }
        r
    }

    /// The engine (cache, expiry, bounded collections) shared by this connection.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a transaction is open (reads then bypass the cache).
    pub(crate) fn txn_open(&self) -> bool {
        self.txn.lock().is_some()
    }

    /// A snapshot for a cursor: the transaction's current view, or the latest commit.
    pub(crate) fn snapshot(&self) -> Result<Arc<dyn ReadView>> {
        self.check_open()?;
        let slot = self.txn.lock();
        Ok(match slot.as_ref() {
            Some(Txn::Write(t)) => t.snapshot(),
            Some(Txn::Read(snap)) => Arc::clone(snap),
            None => self.engine.storage.read(),
        })
    }

    /// Creates a collection. `options` (JSON object, `None`: none): `max_documents` /
    /// `max_bytes` make it a bounded collection (inserting past the bound deletes the least
    /// recently used documents, durably); `cache_capacity` / `cache_bytes` give it its own
    /// share of the document cache.
    ///
    /// Errors: [`Error::DuplicateKey`] when it exists, [`Error::InvalidArgument`] for a
    /// reserved (`_`-prefixed) or malformed name.
    pub fn create_collection(&self, name: &str, options: Option<&str>) -> Result<()> {
        check_collection_name(name)?;
        let mut r = OptionReader::parse(options, "collection options")?;
        let opts = CollOptions {
            bound: crate::engine::bounded::Bound {
                max_documents: positive(r.u64("max_documents")?, "max_documents")?,
                max_bytes: positive(r.u64("max_bytes")?, "max_bytes")?,
            },
            cache: crate::cache::CollLimits {
                capacity: r.u64("cache_capacity")?,
                bytes: r.u64("cache_bytes")?,
            },
        };
        r.finish()?;
        self.write(|t| {
            if t.has_table(name) {
                return Err(Error::DuplicateKey(format!(
                    "collection '{name}' already exists"
                )));
            }
            t.create_clustered(name, &opts.to_json())
        })
    }

    /// Drops a collection and its documents.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        check_collection_name(name)?;
        self.write(|t| {
            if !t.has_table(name) {
                return Err(Error::NoCollection(name.to_owned()));
            }
            crate::index::expiry::forget_collection(t, name)?;
            crate::index::forget_collection(t, name)?;
            t.drop_table(name)
        })
    }

    /// Renames a collection; fails with [`Error::DuplicateKey`] when `to` exists.
    pub fn rename_collection(&self, from: &str, to: &str) -> Result<()> {
        check_collection_name(from)?;
        check_collection_name(to)?;
        self.write(|t| {
            if !t.has_table(from) {
                return Err(Error::NoCollection(from.to_owned()));
            }
            if t.has_table(to) {
                return Err(Error::DuplicateKey(format!(
                    "collection '{to}' already exists"
                )));
            }
            crate::index::expiry::rename_collection(t, from, to)?;
            crate::index::rename_collection(t, from, to)?;
            t.rename_table(from, to)
        })
    }

    /// Names of the collections, sorted (hidden `_` collections are not listed).
    pub fn list_collections(&self) -> Result<Vec<String>> {
        self.read(|v| {
            Ok(v.tables()
                .into_iter()
                .map(|t| t.name)
                .filter(|n| !n.starts_with('_'))
                .collect())
        })
    }

    /// Starts a transaction on this connection: until [`Database::commit`] or
    /// [`Database::rollback`], every call is part of it, and this connection holds the
    /// database's write lock (other writers wait up to `busy_timeout_ms`). On a `read_only`
    /// connection it starts a read transaction ([`Database::begin_read`]) instead.
    pub fn begin(&self) -> Result<()> {
        if self.read_only {
            return self.begin_read();
        }
        self.start(|| Ok(Txn::Write(self.engine.begin(self.busy_timeout())?)))
    }

    /// Starts a read transaction: every read of this connection sees the snapshot taken now,
    /// until [`Database::commit`] or [`Database::rollback`] ends it (either just lets it go).
    /// It takes no lock: writers on other connections go on committing, and it never waits
    /// for them. Writes on this connection meanwhile are [`Error::ReadOnly`].
    ///
    /// ```
    /// use nexus::{Database, Document};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("app.db");
    /// let (reader, writer) = (Database::open(&path, Default::default()).unwrap(),
    ///                         Database::open(&path, Default::default()).unwrap());
    /// reader.begin_read().unwrap();
    /// writer.collection("c").insert(Document::builder().field("x", 1).build()).unwrap();
    /// assert_eq!(reader.collection("c").count_json("{}").unwrap(), 0); // the snapshot of before
    /// reader.commit().unwrap();
    /// assert_eq!(reader.collection("c").count_json("{}").unwrap(), 1);
    /// ```
    pub fn begin_read(&self) -> Result<()> {
        self.start(|| Ok(Txn::Read(self.engine.storage.read())))
    }

    /// Opens the transaction `make` starts, unless one is open already.
    fn start(&self, make: impl FnOnce() -> Result<Txn>) -> Result<()> {
        self.check_open()?;
        let mut slot = self.txn.lock();
        if slot.is_some() {
            return Err(Error::Txn(
                "a transaction is already open on this connection".into(),
            ));
        }
        *slot = Some(make()?);
        Ok(())
    }

    /// Commits the open transaction.
    pub fn commit(&self) -> Result<()> {
        self.check_open()?;
        let t = self
            .txn
            .lock()
            .take()
            .ok_or_else(|| Error::Txn("commit without an open transaction".into()))?;
        match t {
            Txn::Write(t) => self.engine.finish(t, *self.sync.lock()),
            Txn::Read(_) => Ok(()),
        }
    }

    /// Discards the open transaction.
    pub fn rollback(&self) -> Result<()> {
        self.check_open()?;
        let t = self
            .txn
            .lock()
            .take()
            .ok_or_else(|| Error::Txn("rollback without an open transaction".into()))?;
        if let Txn::Write(t) = t {
            self.engine.abandon(t);
        }
        Ok(())
    }

    /// Whether a transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        self.txn.lock().is_some()
    }

    /// Runs `f` in a transaction: commits when it returns `Ok`, rolls back on `Err`.
    ///
    /// ```
    /// use nexus::{Database, Document};
    /// let db = Database::open_in_memory().unwrap();
    /// let r: nexus::Result<()> = db.transaction(|db| {
    ///     db.collection("a").insert(Document::builder().field("x", 1).build())?;
    ///     Err(nexus::Error::InvalidArgument("changed my mind".into()))
    /// });
    /// assert!(r.is_err());
    /// assert_eq!(db.collection("a").count_json("{}").unwrap(), 0);
    /// ```
    pub fn transaction<R>(&self, f: impl FnOnce(&Database) -> Result<R>) -> Result<R> {
        self.begin()?;
        match f(self) {
            Ok(r) => {
                self.commit()?;
                Ok(r)
            }
            Err(e) => {
                let _ = self.rollback();
                Err(e)
            }
        }
    }

    /// Folds the log into the main image and shortens it.
    pub fn checkpoint(&self) -> Result<()> {
        self.check_open()?;
        if self.in_transaction() {
            return Err(Error::Txn(
                "cannot checkpoint inside a transaction on the same connection".into(),
            ));
        }
        if self.read_only {
            return Err(Error::ReadOnly(
                "this connection was opened with read_only: true".into(),
            ));
        }
        self.engine.storage.checkpoint(self.busy_timeout())
    }

    /// Rewrites the database smaller. With `wasp`, pages near the end of the file are moved
    /// into free pages further down and the file is truncated; with `memlog` this is a
    /// checkpoint (the log is rewritten to hold only live documents).
    pub fn compact(&self) -> Result<()> {
        self.check_open()?;
        if self.in_transaction() {
            return Err(Error::Txn(
                "cannot compact inside a transaction on the same connection".into(),
            ));
        }
        if self.read_only {
            return Err(Error::ReadOnly(
                "this connection was opened with read_only: true".into(),
            ));
        }
        self.engine.storage.compact(self.busy_timeout())
    }

    /// Writes a consistent copy of the database to `dest` (a new file; its log `dest` with
    /// the extension `.wasp` is written too) while other connections keep writing; the copy
    /// opens as a normal database. Writers are held off only for a checkpoint at the start.
    ///
    /// Errors: [`Error::InvalidArgument`] when `dest` exists, or when `dest` or the log or
    /// log temporary it would get is (through links or another spelling too) a file of a
    /// database open in this process, checked before anything is written;
    /// [`Error::Unsupported`] for an in-memory database, [`Error::Io`] for OS failures.
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref();
        self.check_backup(dest)?;
        self.engine.storage.backup(dest, self.busy_timeout())
    }

    /// A copy of the database at `dest`, as [`Database::backup`] makes, encrypted under a
    /// fresh data key to the holders of the private keys of `public_pems` (SPKI PEM, P-256;
    /// at least one): an encrypted copy of a plain database, or of an encrypted one for other
    /// recipients. `nexus_backup_with`'s `encrypt_to`.
    ///
    /// The copy is made entry by entry from one snapshot (writers are not held off); it is
    /// complete or absent at `dest`. Errors: those of [`Database::backup`];
    /// [`Error::InvalidArgument`] for no key or a malformed one (nothing written).
    pub fn backup_encrypted(&self, dest: impl AsRef<Path>, public_pems: &[String]) -> Result<()> {
        let dest = dest.as_ref();
        if public_pems.is_empty() {
            return Err(Error::invalid(
                "encrypt_to: give at least one recipient's public key",
            ));
        }
        for p in public_pems {
            crate::crypto::seal::public_key_id(p)?;
        }
        self.check_backup(dest)?;
        self.engine
            .storage
            .backup_transcoded(dest, self.busy_timeout(), Some(public_pems.to_vec()))
    }

    /// A plain (unencrypted) copy of the database at `dest`, as [`Database::backup`] makes:
    /// the way out of encryption (`nexus_backup_with`'s `decrypt`). Of a plain database, a
    /// plain copy. Errors: those of [`Database::backup`].
    pub fn backup_decrypted(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref();
        self.check_backup(dest)?;
        self.engine
            .storage
            .backup_transcoded(dest, self.busy_timeout(), None)
    }

    /// What every kind of backup refuses before anything is written.
    fn check_backup(&self, dest: &Path) -> Result<()> {
        self.check_open()?;
        if self.in_transaction() {
            return Err(Error::Txn(
                "cannot back up inside a transaction on the same connection".into(),
            ));
        }
        // The copy is a database of its own: none of its files may be one of an open one.
        for (i, file) in database_files(dest).iter().enumerate() {
            let subject = match i {
                0 => format!("backup destination {}", dest.display()),
                _ => format!(
                    "{} (written by a backup to {})",
                    file.display(),
                    dest.display()
                ),
            };
            refuse_open_database_file(file, &subject)?;
        }
        Ok(())
    }

    /// Adds a recipient to this encrypted database: the holder of the private key of
    /// `public_pem` (SPKI PEM, P-256) can open it from now on. Only the key slots in the
    /// file's first page are rewritten (crash-safely: the previous copy stays in force until
    /// the new one is synced); adding a key it already has changes nothing.
    ///
    /// Errors: [`Error::InvalidArgument`] for a plain database, a malformed key or no room
    /// for another slot (30 at 8 KiB pages, 62 at 16 KiB); [`Error::Busy`] when another writer
    /// holds the database past the busy timeout; [`Error::ReadOnly`] on a `read_only`
    /// connection; [`Error::Txn`] inside a transaction of this connection.
    pub fn add_key(&self, public_pem: &str) -> Result<()> {
        self.check_key_change("add a key")?;
        self.engine
            .storage
            .change_key(public_pem, true, self.busy_timeout())
    }

    /// Removes a recipient of this encrypted database (refused for its last key). Its holder
    /// can no longer open the file; the data key is unchanged, so a holder who kept it (or an
    /// old copy of the file) can still read what was written under it.
    ///
    /// Errors: [`Error::InvalidArgument`] for a plain database, a key that is not a
    /// recipient, or the last key; [`Error::Busy`], [`Error::ReadOnly`], [`Error::Txn`] as for
    /// [`Database::add_key`].
    pub fn remove_key(&self, public_pem: &str) -> Result<()> {
        self.check_key_change("remove a key")?;
        self.engine
            .storage
            .change_key(public_pem, false, self.busy_timeout())
    }

    /// Changes the data key of this encrypted database: a new random key seals every page,
    /// and every recipient's key slot is rewrapped (the recipients stay the same). Old copies
    /// of the file and a leaked old data key no longer read what is written from now on, nor
    /// the file as it now is. Crash-safe: an interrupted rekey is rolled back at the next
    /// open (the file is then as before, under its old key). It needs the database to this
    /// process alone; other connections of this process read on while it runs.
    ///
    /// Errors: [`Error::InvalidArgument`] for a plain database; [`Error::Busy`] when other
    /// processes keep it open past `busy_timeout_ms`; [`Error::ReadOnly`], [`Error::Txn`] as
    /// for [`Database::add_key`]; [`Error::Corrupt`] when a page in use fails its check (the
    /// key is then unchanged).
    pub fn rekey(&self) -> Result<()> {
        self.check_key_change("change the data key")?;
        self.engine.storage.rekey(self.busy_timeout())
    }

    /// What [`Database::add_key`], [`Database::remove_key`] and [`Database::rekey`] refuse before the storage is
    /// asked: a closed connection, a transaction open on it (its write lock would keep the key
    /// change waiting on itself), a `read_only` connection.
    fn check_key_change(&self, what: &str) -> Result<()> {
        self.check_open()?;
        if self.in_transaction() {
            return Err(Error::Txn(format!(
                "cannot {what} inside a transaction on the same connection"
            )));
        }
        if self.read_only {
            return Err(Error::ReadOnly(format!(
                "cannot {what}: this connection was opened with read_only: true"
            )));
        }
        Ok(())
    }

    /// Checks `path` as somewhere to write a file for the user (an export, an error sidecar,
    /// a log) before anything is written there: refuses, with [`Error::InvalidArgument`], a
    /// path that is, or reaches through symbolic or hard links or another spelling, a file
    /// of a database open in this process (`NAME.db`, its log `NAME.wasp`, the log's
    /// temporary `NAME.wasp.tmp`), whether that file exists yet or not; and an existing file
    /// that holds a NexusLite database or log, open or not (another process may be using
    /// it). `what` names the path in the message (`"export destination"`). Creates nothing.
    ///
    /// Export and import (for the sidecar) run this themselves; [`Database::backup`] checks
    /// every file of the copy against the open databases.
    pub fn check_output_path(path: impl AsRef<Path>, what: &str) -> Result<()> {
        let path = path.as_ref();
        let subject = format!("{what} {}", path.display());
        refuse_open_database_file(path, &subject)?;
        if holds_database(path) {
            return Err(Error::invalid(format!(
                "{subject} holds a NexusLite database or log (not open in this process, but \
                 another process may be using it); refusing to overwrite it"
            )));
        }
        Ok(())
    }

    /// Whether `path` names one of the files of the database at `database`, open or not
    /// (`NAME.db`, its log `NAME.wasp`, the log's temporary `NAME.wasp.tmp`), through
    /// symbolic or hard links or another spelling, whether that file exists yet or not. For
    /// tools that write files of their own beside a database before opening it (a log
    /// file); once it is open, [`Database::check_output_path`] covers it.
    pub fn is_database_file(database: impl AsRef<Path>, path: impl AsRef<Path>) -> bool {
        let Some(id) = FileId::of(path.as_ref()) else {
            return false;
        };
        database_files(database.as_ref())
            .iter()
            .any(|f| FileId::of(f).as_ref() == Some(&id))
    }

    /// Integrity check (fsck): with `wasp`, every page's checksum, key order and fences of
    /// every tree, overflow chains, document counts, and free-space accounting (no page lost
    /// or used twice); with `memlog`, every log record's checksum. Returns the JSON report.
    ///
    /// Errors: [`Error::Corrupt`] (message: the first problem) when the database is damaged;
    /// [`Database::check_report`] returns the full report instead.
    pub fn check(&self) -> Result<serde_json::Value> {
        let report = self.check_report()?;
        if report["ok"] == serde_json::Value::Bool(true) {
            return Ok(report);
        }
        let first = report["errors"][0].as_str().unwrap_or("damaged").to_owned();
        Err(Error::Corrupt(format!("integrity check failed: {first}")))
    }

    /// The integrity check's report whether or not the database is damaged (`"ok"` says).
    pub fn check_report(&self) -> Result<serde_json::Value> {
        self.check_open()?;
        if self.in_transaction() {
            return Err(Error::Txn(
                "cannot check inside a transaction on the same connection".into(),
            ));
        }
        let mut report = self.engine.storage.check(self.busy_timeout())?;
        if report["ok"] == serde_json::Value::Bool(true) {
            let snap = self.engine.storage.read();
            let (indexes, errors) = crate::index::check::check_all(&*snap)?;
            report["indexes"] = indexes;
            if !errors.is_empty() {
                report["ok"] = serde_json::Value::Bool(false);
                match report["errors"].as_array_mut() {
                    Some(list) => list.extend(errors.into_iter().map(serde_json::Value::String)),
                    None => report["errors"] = serde_json::json!(errors),
                }
            }
        }
        Ok(report)
    }

    /// Statistics as a JSON object: storage counters, connections, options.
    pub fn stats(&self) -> Result<serde_json::Value> {
        self.check_open()?;
        Ok(serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "path": self.engine.path.as_ref().map(|p| p.display().to_string()),
            "connections": self.engine.connections(),
            "in_transaction": self.in_transaction(),
            "sync": self.sync.lock().as_str(),
            "busy_timeout_ms": self.busy_timeout_ms.load(Ordering::Relaxed),
            "storage": self.engine.storage.stats(),
            "cache": self.engine.cache.stats(),
            "expiry": self.engine.expiry_stats(),
        }))
    }

    /// Changes settings at run time. Per connection: `sync`, `busy_timeout_ms`. Engine-wide
    /// (every connection of this database in the process): the cache keys `cache_capacity`
    /// (0 turns the cache off), `cache_bytes`, `eviction` (`"ttl-first"`, `"lru-only"`,
    /// `"ttl-only"`), `max_samples`, `batch_size`, and the sweeper keys
    /// `sweeper_interval_ms` (0 pauses it), `sweeper_sample`, `sweeper_threshold_pct`,
    /// `sweeper_budget_ms`. Shrinking the cache evicts at once. Unknown keys are
    /// [`Error::InvalidArgument`]; nothing changes unless every key is valid.
    pub fn configure(&self, options: &str) -> Result<()> {
        self.check_open()?;
        let mut r = OptionReader::parse(Some(options), "configure options")?;
        let mut cache = self.engine.cache.config();
        let cache_set = cache.read(&mut r)?;
        let mut sweeper = self.engine.sweeper_config();
        let sweeper_set = sweeper.read(&mut r)?;
        let sync = r.string("sync")?.map(|s| SyncMode::parse(&s)).transpose()?;
        let busy = r.u64("busy_timeout_ms")?;
        r.finish()?;
        if let Some(s) = sync {
            *self.sync.lock() = s;
        }
        if let Some(b) = busy {
            self.busy_timeout_ms.store(b, Ordering::Relaxed);
        }
        if cache_set {
            self.engine
                .cache
                .configure(cache, crate::document::now_millis());
        }
        if sweeper_set {
            self.engine.set_sweeper_config(sweeper);
        }
        Ok(())
    }

    /// Deletes every expired ephemeral document now (durably) and returns how many; the
    /// deterministic counterpart of the background sweeper.
    pub fn purge_expired(&self) -> Result<u64> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::ReadOnly(
                "this connection was opened with read_only: true".into(),
            ));
        }
        if self.in_transaction() {
            return Err(Error::Txn(
                "purge_expired runs its own transactions; commit or roll back first".into(),
            ));
        }
        self.engine
            .purge_expired(self.busy_timeout(), *self.sync.lock())
    }

    /// Runs one cycle of the background sweeper now and returns how many documents it
    /// deleted (tests and benchmarks; the sweeper thread runs the same code).
    #[doc(hidden)]
    pub fn run_sweeper_cycle(&self) -> Result<u64> {
        self.check_open()?;
        self.engine.sweep_cycle()
    }

    /// Injects faults into the file layer of this database's engine. Only in builds with the
    /// `fault-injection` feature (durability tests); not part of the API.
    #[cfg(any(test, feature = "fault-injection"))]
    #[doc(hidden)]
    pub fn inject_faults(&self, plan: FaultPlan) {
        self.engine.set_faults(plan);
    }

    /// The current fault plan of the file layer, including the journal of unsynced writes
    /// (tests: take it after a simulated crash, drop the database, then call
    /// [`FaultPlan::simulate_power_loss`]). Only with the `fault-injection` feature.
    #[cfg(any(test, feature = "fault-injection"))]
    #[doc(hidden)]
    pub fn fault_plan(&self) -> FaultPlan {
        self.engine.fault_plan()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            ::log::warn!("closing database: {e}");
        }
    }
}

/// Refuses `path` when it names (see [`FileId`]) a file of a database open in this process;
/// `subject` starts the message.
fn refuse_open_database_file(path: &Path, subject: &str) -> Result<()> {
    let Some(id) = FileId::of(path) else {
        return Ok(());
    };
    for db in crate::engine::open_database_paths() {
        for file in database_files(&db) {
            if FileId::of(&file).as_ref() != Some(&id) {
                continue;
            }
            let via = if file == path {
                String::new()
            } else {
                format!(" (it is {})", file.display())
            };
            return Err(Error::invalid(format!(
                "{subject} is a file of the open database {}{via}; refusing to overwrite it",
                db.display()
            )));
        }
    }
    Ok(())
}

/// Whether `a` and `b` name the same file, through links and spellings (see [`FileId`]).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    FileId::of(a).is_some_and(|id| FileId::of(b).as_ref() == Some(&id))
}
