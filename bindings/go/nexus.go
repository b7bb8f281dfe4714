package nexus

import (
	"encoding/json"
	"runtime"
	"sync"
	"time"
)

// Memory is the path that opens a private in-memory database (as does "").
const Memory = ":memory:"

// Sync modes for WithSync.
const (
	// SyncFull puts every commit on stable storage before it returns (the default).
	SyncFull = "full"
	// SyncNormal flushes at checkpoints.
	SyncNormal = "normal"
	// SyncOff never syncs explicitly.
	SyncOff = "off"
)

// Version returns the version of the linked library, e.g. "0.1.0".
func Version() string { return capiVersion() }

// VersionNumber returns the linked library's version as
// 1000000*major + 1000*minor + patch.
func VersionNumber() int { return capiVersionNumber() }

// Option configures Open. Options become the library's JSON options object;
// an option the library does not know makes Open fail with
// CodeInvalidArgument.
type Option func(opts map[string]any)

// WithOption sets any library option by its JSON key, for options that have
// no dedicated helper (e.g. encryption keys).
func WithOption(key string, value any) Option {
	return func(o map[string]any) { o[key] = value }
}

// WithCreate sets whether a missing database file is created (default true).
func WithCreate(create bool) Option { return WithOption("create", create) }

// ReadOnly opens the database read-only: writes fail with CodeReadOnly.
func ReadOnly() Option { return WithOption("read_only", true) }

// WithSync sets the durability mode: SyncFull, SyncNormal or SyncOff.
func WithSync(mode string) Option { return WithOption("sync", mode) }

// WithCacheCapacity sets the document cache capacity, in documents.
func WithCacheCapacity(documents int) Option { return WithOption("cache_capacity", documents) }

// WithPageCacheBytes sets the page cache budget in bytes.
func WithPageCacheBytes(n int64) Option { return WithOption("page_cache_bytes", n) }

// WithMmap sets whether readers search pages through a memory map of the
// file (default false: every page is read with pread). The map is faster on
// files larger than the page cache, but if another process shortens the file
// or a mapped page cannot be read, the process dies of SIGBUS instead of
// getting CodeCorrupt or CodeIO.
func WithMmap(on bool) Option { return WithOption("mmap", on) }

// WithBusyTimeout sets how long a writer waits for the write lock before
// failing with CodeBusy (millisecond resolution; a positive duration below
// one millisecond counts as one).
func WithBusyTimeout(d time.Duration) Option {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1
	}
	return WithOption("busy_timeout_ms", ms)
}

// WithEncryptionKey opens with the open option "encryption_key": a P-256
// private key as PKCS#8 PEM (Keygen makes one). A new file is created
// encrypted to that key; an encrypted file opens only with the key of one of
// its recipients (see AddKey). Open fails with ErrCrypto for an encrypted file
// opened without a key or with a key that is not a recipient, with
// ErrInvalidArgument for a plain file opened with a key (or a malformed key),
// and with ErrUnsupported for an in-memory database or the memlog storage.
func WithEncryptionKey(privatePEM string) Option { return WithOption("encryption_key", privatePEM) }

// WithStorage selects the storage engine by name ("wasp", the default, or "memlog").
func WithStorage(engine string) Option { return WithOption("storage", engine) }

// DB is a connection to a NexusLite database.
//
// A DB is safe for concurrent use by multiple goroutines: the library
// serializes the calls of one connection. For parallel work open several DBs
// on the same path; the connections of one process share one engine and its
// caches. Transactions (Begin/Commit/Rollback, Tx) belong to the connection,
// so while one is open every call made through this DB, from any goroutine,
// is part of it.
//
// Close the DB when done; a DB that becomes unreachable without Close is
// closed by a finalizer as a safety net.
type DB struct {
	mu   sync.RWMutex // guards h: R for calls, W for Close
	h    *cDB
	path string
	txMu sync.Mutex // serializes Tx helpers
}

// Open opens (by default creating) the database at path. "" or Memory opens
// a private in-memory database.
//
//	db, err := nexus.Open("app.db", nexus.WithSync(nexus.SyncNormal))
func Open(path string, opts ...Option) (*DB, error) {
	var optJSON string
	if len(opts) > 0 {
		m := map[string]any{}
		for _, o := range opts {
			if o != nil {
				o(m)
			}
		}
		if len(m) > 0 {
			b, err := json.Marshal(m)
			if err != nil {
				return nil, &Error{Code: CodeInvalidArgument, Message: "cannot encode options: " + err.Error(), Op: "open"}
			}
			optJSON = string(b)
		}
	}
	h, err := capiOpen(path, optJSON, path == "")
	if err != nil {
		return nil, err
	}
	db := &DB{h: h, path: path}
	runtime.SetFinalizer(db, (*DB).Close)
	return db, nil
}

// Path returns the path the database was opened with.
func (db *DB) Path() string { return db.path }

// Close closes the connection. It is idempotent: later calls return nil.
// Any method called after Close returns ErrClosed. Cursors still open keep
// working only as far as to report an error and be closed.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.h == nil {
		return nil
	}
	h := db.h
	db.h = nil
	runtime.SetFinalizer(db, nil)
	return capiClose(h)
}

// do runs fn with the live handle, or returns ErrClosed.
func (db *DB) do(fn func(h *cDB) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.h == nil {
		return ErrClosed
	}
	return fn(db.h)
}

// Collection returns a handle for the named collection. It does not touch
// the database: inserting creates a missing collection, other operations on
// it fail with CodeNoCollection (finds and counts see it as empty).
func (db *DB) Collection(name string) *Collection {
	return &Collection{db: db, name: name}
}

// CreateCollection creates a collection. options is nil for defaults or a
// JSON object (string, []byte, map, struct), e.g. nexus.M{"max_documents": 1000}.
// Creating an existing collection fails with CodeDuplicateKey; names starting
// with "_" are reserved.
func (db *DB) CreateCollection(name string, options any) error {
	opts, err := jsonArg("options", options)
	if err != nil {
		return withOp(err, "create_collection")
	}
	return db.do(func(h *cDB) error { return capiCreateCollection(h, name, opts) })
}

// DropCollection deletes a collection and all its documents.
func (db *DB) DropCollection(name string) error {
	return db.do(func(h *cDB) error { return capiDropCollection(h, name) })
}

// RenameCollection renames a collection.
func (db *DB) RenameCollection(from, to string) error {
	return db.do(func(h *cDB) error { return capiRenameCollection(h, from, to) })
}

// ListCollections returns the names of the collections.
func (db *DB) ListCollections() ([]string, error) {
	var names []string
	err := db.do(func(h *cDB) error {
		raw, err := capiListCollections(h)
		if err != nil {
			return err
		}
		return decodeInto(raw, &names)
	})
	return names, err
}

// Begin starts a transaction on this connection: until Commit or Rollback
// every call made through this DB is one atomic, isolated unit. Beginning
// twice fails with CodeTxn.
func (db *DB) Begin() error {
	return db.do(func(h *cDB) error { return capiSimple(h, "begin") })
}

// BeginRead starts a read transaction: every read through this DB sees the
// snapshot taken now until Commit or Rollback ends it. It takes no lock, so
// writers on other connections keep committing; writes through this DB
// meanwhile fail with CodeReadOnly.
func (db *DB) BeginRead() error {
	return db.do(func(h *cDB) error { return capiSimple(h, "begin_read") })
}

// Commit commits the open transaction (CodeTxn if there is none).
func (db *DB) Commit() error {
	return db.do(func(h *cDB) error { return capiSimple(h, "commit") })
}

// Rollback discards the open transaction (CodeTxn if there is none).
func (db *DB) Rollback() error {
	return db.do(func(h *cDB) error { return capiSimple(h, "rollback") })
}

// Tx runs fn in a transaction: it begins one, commits it when fn returns
// nil, and rolls it back when fn returns an error (which Tx returns) or
// panics (the panic continues after the rollback). Concurrent Tx calls on
// one DB wait for each other; other goroutines' calls on this DB during fn
// still become part of the transaction, so use a separate DB for them.
func (db *DB) Tx(fn func() error) (err error) {
	db.txMu.Lock()
	defer db.txMu.Unlock()
	if err := db.Begin(); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = db.Rollback()
		}
	}()
	if err := fn(); err != nil {
		return err
	}
	committed = true
	if err := db.Commit(); err != nil {
		// A failed commit leaves no transaction open; make sure of it.
		_ = db.Rollback()
		return err
	}
	return nil
}

// Checkpoint writes logged changes into the main database file now.
func (db *DB) Checkpoint() error {
	return db.do(func(h *cDB) error { return capiSimple(h, "checkpoint") })
}

// Compact rewrites the database file smaller.
func (db *DB) Compact() error {
	return db.do(func(h *cDB) error { return capiSimple(h, "compact") })
}

// PurgeExpired runs TTL expiry now and returns how many documents it removed.
func (db *DB) PurgeExpired() (uint64, error) {
	var n uint64
	err := db.do(func(h *cDB) (err error) { n, err = capiPurgeExpired(h); return })
	return n, err
}

// Backup writes a consistent online copy of the database to dest.
func (db *DB) Backup(dest string) error {
	return db.do(func(h *cDB) error { return capiBackup(h, dest) })
}

// BackupOptions are the options of BackupWith (nexus_backup_with).
type BackupOptions struct {
	// EncryptTo: public key PEMs; the copy is encrypted to them under a fresh
	// data key (of a plain database too).
	EncryptTo []string `json:"encrypt_to,omitempty"`
	// Decrypt: the copy is plain.
	Decrypt bool `json:"decrypt,omitempty"`
	// SignKey: a private key PEM; DEST.sig is written once the copy is complete.
	SignKey string `json:"sign_key,omitempty"`
}

// BackupWith writes a consistent online copy of the database to dest with
// options: encrypted to other keys, plain, signed.
func (db *DB) BackupWith(dest string, opts BackupOptions) error {
	raw, err := json.Marshal(opts)
	if err != nil {
		return err
	}
	return db.do(func(h *cDB) error { return capiBackupWith(h, dest, string(raw)) })
}

// AddKey adds a recipient to an encrypted database: the holder of the private
// key of publicPEM (SPKI PEM, P-256) can open it from now on. Adding a key the
// database already has changes nothing. ErrInvalidArgument on a plain database
// or for a malformed key.
func (db *DB) AddKey(publicPEM string) error {
	return db.do(func(h *cDB) error { return capiChangeKey(h, publicPEM, true) })
}

// RemoveKey removes a recipient of an encrypted database; its holder can no
// longer open the file (the data key is unchanged). ErrInvalidArgument for
// the database's last key, a key that is not a recipient, or a plain database.
func (db *DB) RemoveKey(publicPEM string) error {
	return db.do(func(h *cDB) error { return capiChangeKey(h, publicPEM, false) })
}

// Rekey changes the data key of an encrypted database: every page is
// rewritten under a new random key, and the recipients stay the same. It
// needs the database to this process alone (ErrBusy otherwise);
// ErrInvalidArgument on a plain database.
func (db *DB) Rekey() error {
	return db.do(capiRekey)
}

// Check verifies the database file and returns the library's report. A
// damaged database fails with CodeCorrupt.
func (db *DB) Check() (map[string]any, error) {
	var m map[string]any
	err := db.do(func(h *cDB) error {
		raw, err := capiCheck(h)
		if err != nil {
			return err
		}
		m, err = decodeObject(raw)
		return err
	})
	return m, err
}

// Stats returns the library's statistics (cache hits, misses and evictions,
// pages, log size, ...) as decoded JSON.
func (db *DB) Stats() (map[string]any, error) {
	var m map[string]any
	err := db.do(func(h *cDB) error {
		raw, err := capiStats(h)
		if err != nil {
			return err
		}
		m, err = decodeObject(raw)
		return err
	})
	return m, err
}

// Configure changes runtime settings (cache and TTL tuning); options is a
// JSON object (string, []byte, map or struct).
func (db *DB) Configure(options any) error {
	opts, err := requiredJSON("options", options)
	if err != nil {
		return withOp(err, "configure")
	}
	return db.do(func(h *cDB) error { return capiConfigure(h, opts) })
}
