package nexus

// This file is the only one that talks to the C ABI (include/nexus.h).
//
// nexus_errmsg() is thread-local, and a goroutine may move to another OS
// thread between two cgo calls. Every C function is therefore called through
// a small static helper below that, on failure, copies nexus_errmsg() into a
// malloc'd string in the same C call; the Go side frees it with C.free.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "nexus.h"

// Copies the calling thread's last error message into malloc'd memory.
static char *nx_errdup(void) {
	const char *m = nexus_errmsg();
	if (m == NULL) m = "";
	size_t n = strlen(m);
	char *p = (char *)malloc(n + 1);
	if (p != NULL) memcpy(p, m, n + 1);
	return p;
}

#define NX_RET(expr) do { int rc_ = (expr); if (rc_ != 0) *err = nx_errdup(); return rc_; } while (0)

static int nx_open(const char *path, const char *opts, nexus_db **out, char **err) { NX_RET(nexus_open(path, opts, out)); }
static int nx_close(nexus_db *db, char **err) { NX_RET(nexus_close(db)); }

static int nx_create_collection(nexus_db *db, const char *name, const char *opts, char **err) { NX_RET(nexus_create_collection(db, name, opts)); }
static int nx_drop_collection(nexus_db *db, const char *name, char **err) { NX_RET(nexus_drop_collection(db, name)); }
static int nx_rename_collection(nexus_db *db, const char *from, const char *to, char **err) { NX_RET(nexus_rename_collection(db, from, to)); }
static int nx_list_collections(nexus_db *db, char **out, char **err) { NX_RET(nexus_list_collections(db, out)); }

static int nx_insert(nexus_db *db, const char *coll, const char *json, char **out_id, char **err) { NX_RET(nexus_insert(db, coll, json, out_id)); }
static int nx_insert_bson(nexus_db *db, const char *coll, const uint8_t *bson, size_t len, char **out_id, char **err) { NX_RET(nexus_insert_bson(db, coll, bson, len, out_id)); }
static int nx_insert_many(nexus_db *db, const char *coll, const char *json, uint64_t *out, char **err) { NX_RET(nexus_insert_many(db, coll, json, out)); }
static int nx_insert_ttl(nexus_db *db, const char *coll, const char *json, uint64_t ttl_ms, char **out_id, char **err) { NX_RET(nexus_insert_ttl(db, coll, json, ttl_ms, out_id)); }
static int nx_get(nexus_db *db, const char *coll, const char *id, char **out, char **err) { NX_RET(nexus_get(db, coll, id, out)); }
static int nx_get_meta(nexus_db *db, const char *coll, const char *id, char **out, char **err) { NX_RET(nexus_get_meta(db, coll, id, out)); }
static int nx_replace(nexus_db *db, const char *coll, const char *id, const char *json, char **err) { NX_RET(nexus_replace(db, coll, id, json)); }
static int nx_set_ttl(nexus_db *db, const char *coll, const char *id, int64_t ttl_ms, char **err) { NX_RET(nexus_set_ttl(db, coll, id, ttl_ms)); }

static int nx_find(nexus_db *db, const char *coll, const char *filter, const char *opts, nexus_cursor **out, char **err) { NX_RET(nexus_find(db, coll, filter, opts, out)); }
static int nx_aggregate(nexus_db *db, const char *coll, const char *pipeline, const char *opts, nexus_cursor **out, char **err) { NX_RET(nexus_aggregate(db, coll, pipeline, opts, out)); }
static int nx_vector_search(nexus_db *db, const char *coll, const char *spec, nexus_cursor **out, char **err) { NX_RET(nexus_vector_search(db, coll, spec, out)); }
static int nx_cursor_next(nexus_cursor *c, const char **out, char **err) {
	int rc = nexus_cursor_next(c, out);
	if (rc != 100 && rc != 101) *err = nx_errdup();
	return rc;
}
static int nx_cursor_close(nexus_cursor *c, char **err) { NX_RET(nexus_cursor_close(c)); }
static int nx_find_one(nexus_db *db, const char *coll, const char *filter, char **out, char **err) { NX_RET(nexus_find_one(db, coll, filter, out)); }
static int nx_count(nexus_db *db, const char *coll, const char *filter, uint64_t *out, char **err) { NX_RET(nexus_count(db, coll, filter, out)); }
static int nx_update(nexus_db *db, const char *coll, const char *filter, const char *update, int flags, uint64_t *matched, uint64_t *modified, char **err) { NX_RET(nexus_update(db, coll, filter, update, flags, matched, modified)); }
static int nx_delete(nexus_db *db, const char *coll, const char *filter, int flags, uint64_t *out, char **err) { NX_RET(nexus_delete(db, coll, filter, flags, out)); }
static int nx_distinct(nexus_db *db, const char *coll, const char *field, const char *filter, char **out, char **err) { NX_RET(nexus_distinct(db, coll, field, filter, out)); }
static int nx_find_one_and_update(nexus_db *db, const char *coll, const char *filter, const char *update, const char *opts, char **out, char **err) { NX_RET(nexus_find_one_and_update(db, coll, filter, update, opts, out)); }
// The write calls that report a JSON result; a batch that failed part-way
// writes its result and returns the first error's status.
static int nx_write(int kind, nexus_db *db, const char *coll, const char *a, const char *b, const char *opts, char **out, char **err) {
	switch (kind) {
	case 0: NX_RET(nexus_update_one(db, coll, a, b, opts, out));
	case 1: NX_RET(nexus_update_many(db, coll, a, b, opts, out));
	case 2: NX_RET(nexus_replace_one(db, coll, a, b, opts, out));
	case 3: NX_RET(nexus_insert_many_with(db, coll, a, opts, out));
	default: NX_RET(nexus_bulk_write(db, coll, a, opts, out));
	}
}
static int nx_find_one_and_delete(nexus_db *db, const char *coll, const char *filter, const char *opts, char **out, char **err) { NX_RET(nexus_find_one_and_delete(db, coll, filter, opts, out)); }

static int nx_create_index(nexus_db *db, const char *coll, const char *keys, const char *opts, char **out, char **err) { NX_RET(nexus_create_index(db, coll, keys, opts, out)); }
static int nx_drop_index(nexus_db *db, const char *coll, const char *name, char **err) { NX_RET(nexus_drop_index(db, coll, name)); }
static int nx_list_indexes(nexus_db *db, const char *coll, char **out, char **err) { NX_RET(nexus_list_indexes(db, coll, out)); }
static int nx_explain(nexus_db *db, const char *coll, const char *filter, const char *opts, char **out, char **err) { NX_RET(nexus_explain(db, coll, filter, opts, out)); }

static int nx_begin(nexus_db *db, char **err) { NX_RET(nexus_begin(db)); }
static int nx_begin_read(nexus_db *db, char **err) { NX_RET(nexus_begin_read(db)); }
static int nx_commit(nexus_db *db, char **err) { NX_RET(nexus_commit(db)); }
static int nx_rollback(nexus_db *db, char **err) { NX_RET(nexus_rollback(db)); }

static int nx_checkpoint(nexus_db *db, char **err) { NX_RET(nexus_checkpoint(db)); }
static int nx_compact(nexus_db *db, char **err) { NX_RET(nexus_compact(db)); }
static int nx_purge_expired(nexus_db *db, uint64_t *out, char **err) { NX_RET(nexus_purge_expired(db, out)); }
static int nx_backup(nexus_db *db, const char *dest, char **err) { NX_RET(nexus_backup(db, dest)); }
static int nx_backup_with(nexus_db *db, const char *dest, const char *opts, char **err) { NX_RET(nexus_backup_with(db, dest, opts)); }
static int nx_check(nexus_db *db, char **out, char **err) { NX_RET(nexus_check(db, out)); }
static int nx_stats(nexus_db *db, char **out, char **err) { NX_RET(nexus_stats(db, out)); }
static int nx_configure(nexus_db *db, const char *opts, char **err) { NX_RET(nexus_configure(db, opts)); }
static int nx_import(nexus_db *db, const char *coll, const char *path, const char *opts, char **out, char **err) { NX_RET(nexus_import(db, coll, path, opts, out)); }
static int nx_export(nexus_db *db, const char *coll, const char *path, const char *opts, char **out, char **err) { NX_RET(nexus_export(db, coll, path, opts, out)); }

// Implemented in Go (log.go, //export goNexusLog).
static int nx_keygen(const char *alg, char **priv, char **pub, char **err) { NX_RET(nexus_keygen(alg, priv, pub)); }
static int nx_public_key(const char *priv, char **pub, char **err) { NX_RET(nexus_public_key(priv, pub)); }
static int nx_sign(const char *priv, const uint8_t *data, size_t len, char **sig, char **err) { NX_RET(nexus_sign(priv, data, len, sig)); }
static int nx_verify(const char *pub, const uint8_t *data, size_t len, const char *sig, char **err) { NX_RET(nexus_verify(pub, data, len, sig)); }
static int nx_sign_file(const char *path, const char *priv, char **err) { NX_RET(nexus_sign_file(path, priv)); }
static int nx_verify_file(const char *path, const char *pub, char **err) { NX_RET(nexus_verify_file(path, pub)); }
static int nx_add_key(nexus_db *db, const char *pub, char **err) { NX_RET(nexus_add_key(db, pub)); }
static int nx_remove_key(nexus_db *db, const char *pub, char **err) { NX_RET(nexus_remove_key(db, pub)); }
static int nx_rekey(nexus_db *db, char **err) { NX_RET(nexus_rekey(db)); }

extern void goNexusLog(int level, char *target, char *message, void *user);
static void nx_log_trampoline(int level, const char *target, const char *message, void *user) {
	goNexusLog(level, (char *)target, (char *)message, user);
}
static int nx_set_log_callback(int enable, int max_level, char **err) {
	NX_RET(nexus_set_log_callback(enable ? nx_log_trampoline : NULL, max_level, NULL));
}

// The code constants as the header defines them; compared with the Go
// constants by the tests.
static int nx_header_code(int i) {
	switch (i) {
	case 0: return NEXUS_OK;
	case 1: return NEXUS_ERROR;
	case 2: return NEXUS_NOT_FOUND;
	case 3: return NEXUS_INVALID_ARGUMENT;
	case 4: return NEXUS_PARSE;
	case 5: return NEXUS_DUPLICATE_KEY;
	case 6: return NEXUS_NO_COLLECTION;
	case 7: return NEXUS_IO;
	case 8: return NEXUS_CORRUPT;
	case 9: return NEXUS_BUSY;
	case 10: return NEXUS_READONLY;
	case 11: return NEXUS_TXN;
	case 12: return NEXUS_CRYPTO;
	case 13: return NEXUS_UNSUPPORTED;
	case 99: return NEXUS_INTERNAL;
	case 100: return NEXUS_ROW;
	case 101: return NEXUS_DONE;
	case 1001: return NEXUS_MULTI;
	case 1002: return NEXUS_UPSERT;
	case 2001: return NEXUS_VERSION_MAJOR;
	case 2002: return NEXUS_VERSION_MINOR;
	case 2003: return NEXUS_VERSION_PATCH;
	}
	return -1;
}
*/
import "C"

import (
	"strings"
	"unsafe"
)

type (
	cDB     = C.nexus_db
	cCursor = C.nexus_cursor
)

// cargs owns the C strings allocated for one call and frees them together.
type cargs struct {
	ptrs []unsafe.Pointer
	err  error
}

// str converts s to a C string; it records an error if s contains a NUL byte,
// which C would silently truncate at.
func (a *cargs) str(what, s string) *C.char {
	if a.err == nil && strings.IndexByte(s, 0) >= 0 {
		a.err = &Error{Code: CodeInvalidArgument, Message: what + " contains a NUL byte"}
	}
	p := C.CString(s)
	a.ptrs = append(a.ptrs, unsafe.Pointer(p))
	return p
}

// optStr is str, with "" meaning NULL (defaults / match all).
func (a *cargs) optStr(what, s string) *C.char {
	if s == "" {
		return nil
	}
	return a.str(what, s)
}

func (a *cargs) free() {
	for _, p := range a.ptrs {
		C.free(p)
	}
	a.ptrs = nil
}

// mkerr builds an *Error from a status code and the message copied by a helper.
func mkerr(op string, rc C.int, msg *C.char) error {
	m := ""
	if msg != nil {
		m = C.GoString(msg)
		C.free(unsafe.Pointer(msg))
	}
	return &Error{Code: int(rc), Message: m, Op: op}
}

// takeBytes copies a library-owned string and releases it with nexus_free.
func takeBytes(p *C.char) []byte {
	if p == nil {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(p), C.int(C.strlen(p)))
	C.nexus_free(unsafe.Pointer(p))
	return b
}

func takeString(p *C.char) string {
	if p == nil {
		return ""
	}
	s := C.GoString(p)
	C.nexus_free(unsafe.Pointer(p))
	return s
}

func capiVersion() string    { return C.GoString(C.nexus_version()) }
func capiVersionNumber() int { return int(C.nexus_version_number()) }
func capiErrstr(code int) string {
	p := C.nexus_errstr(C.int(code))
	if p == nil {
		return ""
	}
	return C.GoString(p)
}
func capiHeaderCode(i int) int { return int(C.nx_header_code(C.int(i))) }

func capiOpen(path, opts string, memory bool) (*cDB, error) {
	var a cargs
	defer a.free()
	var cpath *C.char
	if !memory {
		cpath = a.str("path", path)
	}
	copts := a.optStr("options", opts)
	if a.err != nil {
		return nil, withOp(a.err, "open")
	}
	var out *C.nexus_db
	var cerr *C.char
	if rc := C.nx_open(cpath, copts, &out, &cerr); rc != 0 {
		return nil, mkerr("open", rc, cerr)
	}
	return out, nil
}

func capiClose(h *cDB) error {
	var cerr *C.char
	if rc := C.nx_close(h, &cerr); rc != 0 {
		return mkerr("close", rc, cerr)
	}
	return nil
}

func capiCreateCollection(h *cDB, name, opts string) error {
	var a cargs
	defer a.free()
	cn, co := a.str("collection name", name), a.optStr("options", opts)
	if a.err != nil {
		return withOp(a.err, "create_collection")
	}
	var cerr *C.char
	if rc := C.nx_create_collection(h, cn, co, &cerr); rc != 0 {
		return mkerr("create_collection", rc, cerr)
	}
	return nil
}

func capiDropCollection(h *cDB, name string) error {
	var a cargs
	defer a.free()
	cn := a.str("collection name", name)
	if a.err != nil {
		return withOp(a.err, "drop_collection")
	}
	var cerr *C.char
	if rc := C.nx_drop_collection(h, cn, &cerr); rc != 0 {
		return mkerr("drop_collection", rc, cerr)
	}
	return nil
}

func capiRenameCollection(h *cDB, from, to string) error {
	var a cargs
	defer a.free()
	cf, ct := a.str("collection name", from), a.str("collection name", to)
	if a.err != nil {
		return withOp(a.err, "rename_collection")
	}
	var cerr *C.char
	if rc := C.nx_rename_collection(h, cf, ct, &cerr); rc != 0 {
		return mkerr("rename_collection", rc, cerr)
	}
	return nil
}

func capiListCollections(h *cDB) ([]byte, error) {
	var out, cerr *C.char
	if rc := C.nx_list_collections(h, &out, &cerr); rc != 0 {
		return nil, mkerr("list_collections", rc, cerr)
	}
	return takeBytes(out), nil
}

func capiInsert(h *cDB, coll, doc string) (string, error) {
	var a cargs
	defer a.free()
	cc, cd := a.str("collection name", coll), a.str("document", doc)
	if a.err != nil {
		return "", withOp(a.err, "insert")
	}
	var out, cerr *C.char
	if rc := C.nx_insert(h, cc, cd, &out, &cerr); rc != 0 {
		return "", mkerr("insert", rc, cerr)
	}
	return takeString(out), nil
}

func capiInsertBSON(h *cDB, coll string, doc []byte) (string, error) {
	var a cargs
	defer a.free()
	cc := a.str("collection name", coll)
	if a.err != nil {
		return "", withOp(a.err, "insert_bson")
	}
	var cb *C.uint8_t
	if len(doc) > 0 {
		p := C.CBytes(doc)
		a.ptrs = append(a.ptrs, p)
		cb = (*C.uint8_t)(p)
	}
	var out, cerr *C.char
	if rc := C.nx_insert_bson(h, cc, cb, C.size_t(len(doc)), &out, &cerr); rc != 0 {
		return "", mkerr("insert_bson", rc, cerr)
	}
	return takeString(out), nil
}

func capiInsertMany(h *cDB, coll, docs string) (uint64, error) {
	var a cargs
	defer a.free()
	cc, cd := a.str("collection name", coll), a.str("documents", docs)
	if a.err != nil {
		return 0, withOp(a.err, "insert_many")
	}
	var n C.uint64_t
	var cerr *C.char
	if rc := C.nx_insert_many(h, cc, cd, &n, &cerr); rc != 0 {
		return 0, mkerr("insert_many", rc, cerr)
	}
	return uint64(n), nil
}

func capiInsertTTL(h *cDB, coll, doc string, ttlMS uint64) (string, error) {
	var a cargs
	defer a.free()
	cc, cd := a.str("collection name", coll), a.str("document", doc)
	if a.err != nil {
		return "", withOp(a.err, "insert_ttl")
	}
	var out, cerr *C.char
	if rc := C.nx_insert_ttl(h, cc, cd, C.uint64_t(ttlMS), &out, &cerr); rc != 0 {
		return "", mkerr("insert_ttl", rc, cerr)
	}
	return takeString(out), nil
}

func capiGet(h *cDB, coll, id string, meta bool) ([]byte, error) {
	op := "get"
	if meta {
		op = "get_meta"
	}
	var a cargs
	defer a.free()
	cc, ci := a.str("collection name", coll), a.str("id", id)
	if a.err != nil {
		return nil, withOp(a.err, op)
	}
	var out, cerr *C.char
	var rc C.int
	if meta {
		rc = C.nx_get_meta(h, cc, ci, &out, &cerr)
	} else {
		rc = C.nx_get(h, cc, ci, &out, &cerr)
	}
	if rc != 0 {
		return nil, mkerr(op, rc, cerr)
	}
	return takeBytes(out), nil
}

func capiReplace(h *cDB, coll, id, doc string) error {
	var a cargs
	defer a.free()
	cc, ci, cd := a.str("collection name", coll), a.str("id", id), a.str("document", doc)
	if a.err != nil {
		return withOp(a.err, "replace")
	}
	var cerr *C.char
	if rc := C.nx_replace(h, cc, ci, cd, &cerr); rc != 0 {
		return mkerr("replace", rc, cerr)
	}
	return nil
}

func capiSetTTL(h *cDB, coll, id string, ttlMS int64) error {
	var a cargs
	defer a.free()
	cc, ci := a.str("collection name", coll), a.str("id", id)
	if a.err != nil {
		return withOp(a.err, "set_ttl")
	}
	var cerr *C.char
	if rc := C.nx_set_ttl(h, cc, ci, C.int64_t(ttlMS), &cerr); rc != 0 {
		return mkerr("set_ttl", rc, cerr)
	}
	return nil
}

func capiFind(h *cDB, coll, filter, opts string) (*cCursor, error) {
	var a cargs
	defer a.free()
	cc, cf, co := a.str("collection name", coll), a.optStr("filter", filter), a.optStr("options", opts)
	if a.err != nil {
		return nil, withOp(a.err, "find")
	}
	var out *C.nexus_cursor
	var cerr *C.char
	if rc := C.nx_find(h, cc, cf, co, &out, &cerr); rc != 0 {
		return nil, mkerr("find", rc, cerr)
	}
	return out, nil
}

func capiAggregate(h *cDB, coll, pipeline, opts string) (*cCursor, error) {
	var a cargs
	defer a.free()
	cc, cp, co := a.str("collection name", coll), a.str("pipeline", pipeline), a.optStr("options", opts)
	if a.err != nil {
		return nil, withOp(a.err, "aggregate")
	}
	var out *C.nexus_cursor
	var cerr *C.char
	if rc := C.nx_aggregate(h, cc, cp, co, &out, &cerr); rc != 0 {
		return nil, mkerr("aggregate", rc, cerr)
	}
	return out, nil
}

func capiVectorSearch(h *cDB, coll, spec string) (*cCursor, error) {
	var a cargs
	defer a.free()
	cc, cs := a.str("collection name", coll), a.str("spec", spec)
	if a.err != nil {
		return nil, withOp(a.err, "vector_search")
	}
	var out *C.nexus_cursor
	var cerr *C.char
	if rc := C.nx_vector_search(h, cc, cs, &out, &cerr); rc != 0 {
		return nil, mkerr("vector_search", rc, cerr)
	}
	return out, nil
}

// capiCursorNext returns CodeRow with a copy of the document, CodeDone, or an error.
func capiCursorNext(c *cCursor) (int, []byte, error) {
	var out *C.char
	var cerr *C.char
	rc := C.nx_cursor_next(c, &out, &cerr)
	switch rc {
	case CodeRow:
		if out == nil {
			return CodeRow, []byte("null"), nil
		}
		// Borrowed until the next call on this cursor: copy now.
		return CodeRow, C.GoBytes(unsafe.Pointer(out), C.int(C.strlen(out))), nil
	case CodeDone:
		return CodeDone, nil, nil
	}
	return int(rc), nil, mkerr("cursor_next", rc, cerr)
}

func capiCursorClose(c *cCursor) error {
	var cerr *C.char
	if rc := C.nx_cursor_close(c, &cerr); rc != 0 {
		return mkerr("cursor_close", rc, cerr)
	}
	return nil
}

func capiFindOne(h *cDB, coll, filter string) ([]byte, error) {
	var a cargs
	defer a.free()
	cc, cf := a.str("collection name", coll), a.optStr("filter", filter)
	if a.err != nil {
		return nil, withOp(a.err, "find_one")
	}
	var out, cerr *C.char
	if rc := C.nx_find_one(h, cc, cf, &out, &cerr); rc != 0 {
		return nil, mkerr("find_one", rc, cerr)
	}
	return takeBytes(out), nil
}

func capiCount(h *cDB, coll, filter string) (uint64, error) {
	var a cargs
	defer a.free()
	cc, cf := a.str("collection name", coll), a.optStr("filter", filter)
	if a.err != nil {
		return 0, withOp(a.err, "count")
	}
	var n C.uint64_t
	var cerr *C.char
	if rc := C.nx_count(h, cc, cf, &n, &cerr); rc != 0 {
		return 0, mkerr("count", rc, cerr)
	}
	return uint64(n), nil
}

func capiUpdate(h *cDB, coll, filter, update string, flags int) (uint64, uint64, error) {
	var a cargs
	defer a.free()
	cc, cf, cu := a.str("collection name", coll), a.optStr("filter", filter), a.str("update", update)
	if a.err != nil {
		return 0, 0, withOp(a.err, "update")
	}
	var matched, modified C.uint64_t
	var cerr *C.char
	if rc := C.nx_update(h, cc, cf, cu, C.int(flags), &matched, &modified, &cerr); rc != 0 {
		return 0, 0, mkerr("update", rc, cerr)
	}
	return uint64(matched), uint64(modified), nil
}

func capiDelete(h *cDB, coll, filter string, flags int) (uint64, error) {
	var a cargs
	defer a.free()
	cc, cf := a.str("collection name", coll), a.optStr("filter", filter)
	if a.err != nil {
		return 0, withOp(a.err, "delete")
	}
	var n C.uint64_t
	var cerr *C.char
	if rc := C.nx_delete(h, cc, cf, C.int(flags), &n, &cerr); rc != 0 {
		return 0, mkerr("delete", rc, cerr)
	}
	return uint64(n), nil
}

func capiDistinct(h *cDB, coll, field, filter string) ([]byte, error) {
	var a cargs
	defer a.free()
	cc, cfield, cf := a.str("collection name", coll), a.str("field", field), a.optStr("filter", filter)
	if a.err != nil {
		return nil, withOp(a.err, "distinct")
	}
	var out, cerr *C.char
	if rc := C.nx_distinct(h, cc, cfield, cf, &out, &cerr); rc != 0 {
		return nil, mkerr("distinct", rc, cerr)
	}
	return takeBytes(out), nil
}

func capiFindOneAndUpdate(h *cDB, coll, filter, update, opts string) ([]byte, error) {
	var a cargs
	defer a.free()
	cc, cf, cu, co := a.str("collection name", coll), a.optStr("filter", filter), a.str("update", update), a.optStr("options", opts)
	if a.err != nil {
		return nil, withOp(a.err, "find_one_and_update")
	}
	var out, cerr *C.char
	if rc := C.nx_find_one_and_update(h, cc, cf, cu, co, &out, &cerr); rc != 0 {
		return nil, mkerr("find_one_and_update", rc, cerr)
	}
	return takeBytes(out), nil
}

// The write calls of capiWrite, in nx_write's numbering.
const (
	writeUpdateOne = iota
	writeUpdateMany
	writeReplaceOne
	writeInsertMany
	writeBulk
)

var writeOps = [...]string{"update_one", "update_many", "replace_one", "insert_many_with", "bulk_write"}

// capiWrite runs one of the write calls that return a JSON result. For the
// batch calls the result may come back together with an error (some writes
// failed).
func capiWrite(h *cDB, kind int, coll, a, b, opts string) ([]byte, error) {
	op := writeOps[kind]
	var args cargs
	defer args.free()
	cc := args.str("collection name", coll)
	var ca, cb *C.char
	switch kind {
	case writeInsertMany:
		ca = args.str("documents", a)
	case writeBulk:
		ca = args.str("operations", a)
	default:
		ca, cb = args.optStr("filter", a), args.str("update", b)
	}
	co := args.optStr("options", opts)
	if args.err != nil {
		return nil, withOp(args.err, op)
	}
	var out, cerr *C.char
	rc := C.nx_write(C.int(kind), h, cc, ca, cb, co, &out, &cerr)
	res := takeBytes(out)
	if rc != 0 {
		return res, mkerr(op, rc, cerr)
	}
	return res, nil
}

func capiFindOneAndDelete(h *cDB, coll, filter, opts string) ([]byte, error) {
	var a cargs
	defer a.free()
	cc, cf, co := a.str("collection name", coll), a.optStr("filter", filter), a.optStr("options", opts)
	if a.err != nil {
		return nil, withOp(a.err, "find_one_and_delete")
	}
	var out, cerr *C.char
	if rc := C.nx_find_one_and_delete(h, cc, cf, co, &out, &cerr); rc != 0 {
		return nil, mkerr("find_one_and_delete", rc, cerr)
	}
	return takeBytes(out), nil
}

func capiCreateIndex(h *cDB, coll, keys, opts string) (string, error) {
	var a cargs
	defer a.free()
	cc, ck, co := a.str("collection name", coll), a.str("keys", keys), a.optStr("options", opts)
	if a.err != nil {
		return "", withOp(a.err, "create_index")
	}
	var out, cerr *C.char
	if rc := C.nx_create_index(h, cc, ck, co, &out, &cerr); rc != 0 {
		return "", mkerr("create_index", rc, cerr)
	}
	return takeString(out), nil
}

func capiDropIndex(h *cDB, coll, name string) error {
	var a cargs
	defer a.free()
	cc, cn := a.str("collection name", coll), a.str("index name", name)
	if a.err != nil {
		return withOp(a.err, "drop_index")
	}
	var cerr *C.char
	if rc := C.nx_drop_index(h, cc, cn, &cerr); rc != 0 {
		return mkerr("drop_index", rc, cerr)
	}
	return nil
}

func capiListIndexes(h *cDB, coll string) ([]byte, error) {
	var a cargs
	defer a.free()
	cc := a.str("collection name", coll)
	if a.err != nil {
		return nil, withOp(a.err, "list_indexes")
	}
	var out, cerr *C.char
	if rc := C.nx_list_indexes(h, cc, &out, &cerr); rc != 0 {
		return nil, mkerr("list_indexes", rc, cerr)
	}
	return takeBytes(out), nil
}

func capiExplain(h *cDB, coll, filter, opts string) ([]byte, error) {
	var a cargs
	defer a.free()
	cc, cf, co := a.str("collection name", coll), a.optStr("filter", filter), a.optStr("options", opts)
	if a.err != nil {
		return nil, withOp(a.err, "explain")
	}
	var out, cerr *C.char
	if rc := C.nx_explain(h, cc, cf, co, &out, &cerr); rc != 0 {
		return nil, mkerr("explain", rc, cerr)
	}
	return takeBytes(out), nil
}

// capiSimple runs one of the argument-less connection calls.
func capiSimple(h *cDB, op string) error {
	var cerr *C.char
	var rc C.int
	switch op {
	case "begin":
		rc = C.nx_begin(h, &cerr)
	case "begin_read":
		rc = C.nx_begin_read(h, &cerr)
	case "commit":
		rc = C.nx_commit(h, &cerr)
	case "rollback":
		rc = C.nx_rollback(h, &cerr)
	case "checkpoint":
		rc = C.nx_checkpoint(h, &cerr)
	case "compact":
		rc = C.nx_compact(h, &cerr)
	default:
		panic("nexus: unknown simple op " + op)
	}
	if rc != 0 {
		return mkerr(op, rc, cerr)
	}
	return nil
}

func capiPurgeExpired(h *cDB) (uint64, error) {
	var n C.uint64_t
	var cerr *C.char
	if rc := C.nx_purge_expired(h, &n, &cerr); rc != 0 {
		return 0, mkerr("purge_expired", rc, cerr)
	}
	return uint64(n), nil
}

func capiBackup(h *cDB, dest string) error {
	var a cargs
	defer a.free()
	cd := a.str("destination path", dest)
	if a.err != nil {
		return withOp(a.err, "backup")
	}
	var cerr *C.char
	if rc := C.nx_backup(h, cd, &cerr); rc != 0 {
		return mkerr("backup", rc, cerr)
	}
	return nil
}

func capiBackupWith(h *cDB, dest, opts string) error {
	var a cargs
	defer a.free()
	cd := a.str("destination path", dest)
	co := a.str("backup options", opts)
	if a.err != nil {
		return withOp(a.err, "backup")
	}
	var cerr *C.char
	if rc := C.nx_backup_with(h, cd, co, &cerr); rc != 0 {
		return mkerr("backup", rc, cerr)
	}
	return nil
}

func capiCheck(h *cDB) ([]byte, error) {
	var out, cerr *C.char
	if rc := C.nx_check(h, &out, &cerr); rc != 0 {
		return nil, mkerr("check", rc, cerr)
	}
	return takeBytes(out), nil
}

func capiKeygen(algorithm string) (string, string, error) {
	var a cargs
	defer a.free()
	ca := a.optStr("algorithm", algorithm)
	if a.err != nil {
		return "", "", withOp(a.err, "keygen")
	}
	var priv, pub, cerr *C.char
	if rc := C.nx_keygen(ca, &priv, &pub, &cerr); rc != 0 {
		return "", "", mkerr("keygen", rc, cerr)
	}
	return takeString(priv), takeString(pub), nil
}

func capiPublicKey(privatePEM string) (string, error) {
	var a cargs
	defer a.free()
	cp := a.str("private key", privatePEM)
	if a.err != nil {
		return "", withOp(a.err, "public key")
	}
	var pub, cerr *C.char
	if rc := C.nx_public_key(cp, &pub, &cerr); rc != 0 {
		return "", mkerr("public key", rc, cerr)
	}
	return takeString(pub), nil
}

// bytesArg pins nothing: the C call copies what it needs before returning.
func bytesArg(data []byte) (*C.uint8_t, C.size_t) {
	if len(data) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data))
}

func capiSign(privatePEM string, data []byte) (string, error) {
	var a cargs
	defer a.free()
	cp := a.str("private key", privatePEM)
	if a.err != nil {
		return "", withOp(a.err, "sign")
	}
	p, n := bytesArg(data)
	var sig, cerr *C.char
	if rc := C.nx_sign(cp, p, n, &sig, &cerr); rc != 0 {
		return "", mkerr("sign", rc, cerr)
	}
	return takeString(sig), nil
}

func capiVerify(publicPEM string, data []byte, signature string) error {
	var a cargs
	defer a.free()
	cp := a.str("public key", publicPEM)
	cs := a.str("signature", signature)
	if a.err != nil {
		return withOp(a.err, "verify")
	}
	p, n := bytesArg(data)
	var cerr *C.char
	if rc := C.nx_verify(cp, p, n, cs, &cerr); rc != 0 {
		return mkerr("verify", rc, cerr)
	}
	return nil
}

func capiSignFile(path, privatePEM string) error {
	var a cargs
	defer a.free()
	cf := a.str("path", path)
	cp := a.str("private key", privatePEM)
	if a.err != nil {
		return withOp(a.err, "sign file")
	}
	var cerr *C.char
	if rc := C.nx_sign_file(cf, cp, &cerr); rc != 0 {
		return mkerr("sign file", rc, cerr)
	}
	return nil
}

func capiVerifyFile(path, publicPEM string) error {
	var a cargs
	defer a.free()
	cf := a.str("path", path)
	cp := a.str("public key", publicPEM)
	if a.err != nil {
		return withOp(a.err, "verify file")
	}
	var cerr *C.char
	if rc := C.nx_verify_file(cf, cp, &cerr); rc != 0 {
		return mkerr("verify file", rc, cerr)
	}
	return nil
}

// capiChangeKey adds (add true) or removes a recipient of an encrypted database.
func capiChangeKey(h *cDB, publicPEM string, add bool) error {
	op := "remove key"
	if add {
		op = "add key"
	}
	var a cargs
	defer a.free()
	cp := a.str("public key", publicPEM)
	if a.err != nil {
		return withOp(a.err, op)
	}
	var cerr *C.char
	var rc C.int
	if add {
		rc = C.nx_add_key(h, cp, &cerr)
	} else {
		rc = C.nx_remove_key(h, cp, &cerr)
	}
	if rc != 0 {
		return mkerr(op, rc, cerr)
	}
	return nil
}

// capiRekey changes the data key of an encrypted database.
func capiRekey(h *cDB) error {
	var cerr *C.char
	if rc := C.nx_rekey(h, &cerr); rc != 0 {
		return mkerr("rekey", rc, cerr)
	}
	return nil
}

func capiStats(h *cDB) ([]byte, error) {
	var out, cerr *C.char
	if rc := C.nx_stats(h, &out, &cerr); rc != 0 {
		return nil, mkerr("stats", rc, cerr)
	}
	return takeBytes(out), nil
}

func capiConfigure(h *cDB, opts string) error {
	var a cargs
	defer a.free()
	co := a.str("options", opts)
	if a.err != nil {
		return withOp(a.err, "configure")
	}
	var cerr *C.char
	if rc := C.nx_configure(h, co, &cerr); rc != 0 {
		return mkerr("configure", rc, cerr)
	}
	return nil
}

func capiImportExport(h *cDB, export bool, coll, path, opts string) ([]byte, error) {
	op := "import"
	if export {
		op = "export"
	}
	var a cargs
	defer a.free()
	cc, cp, co := a.str("collection name", coll), a.str("path", path), a.optStr("options", opts)
	if a.err != nil {
		return nil, withOp(a.err, op)
	}
	var out, cerr *C.char
	var rc C.int
	if export {
		rc = C.nx_export(h, cc, cp, co, &out, &cerr)
	} else {
		rc = C.nx_import(h, cc, cp, co, &out, &cerr)
	}
	if rc != 0 {
		return nil, mkerr(op, rc, cerr)
	}
	return takeBytes(out), nil
}

func capiSetLogCallback(enable bool, maxLevel int) error {
	e := C.int(0)
	if enable {
		e = 1
	}
	var cerr *C.char
	if rc := C.nx_set_log_callback(e, C.int(maxLevel), &cerr); rc != 0 {
		return mkerr("set_log_callback", rc, cerr)
	}
	return nil
}
