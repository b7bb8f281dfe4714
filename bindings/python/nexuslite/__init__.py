"""NexusLite for Python: a small ctypes binding over libnexus (the C ABI in include/nexus.h).

    import nexuslite
    with nexuslite.open("app.db") as db:
        people = db.collection("people")
        people.insert_dataframe(df)                      # pandas DataFrame -> documents
        older = people.find_dataframe({"age": {"$gt": 30}})
        people.update_many({}, {"$inc": {"visits": 1}})  # {"matchedCount": ..., ...}

The library is found through the NEXUS_LIB environment variable, else target/release/libnexus.so
of the repository this package lives in. Documents cross the boundary as MongoDB Extended
JSON; dates become pandas Timestamps (UTC, tz-naive), $numberLong ints, $numberDecimal Decimals.
"""

import ctypes
import datetime
import decimal
import json
import math
import os

__all__ = [
    "open",
    "Database",
    "Collection",
    "NexusError",
    "BulkWriteError",
    "keygen",
    "public_key",
    "sign",
    "verify",
    "sign_file",
    "verify_file",
]

NEXUS_OK, NEXUS_ROW, NEXUS_DONE = 0, 100, 101
NEXUS_INVALID_ARGUMENT, NEXUS_CRYPTO, NEXUS_UNSUPPORTED = 3, 12, 13


class NexusError(Exception):
    """A NEXUS_* status code other than success, with the library's message."""

    def __init__(self, code, message):
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


class BulkWriteError(NexusError):
    """Some documents or operations of insert_many / bulk_write failed. ``result`` is the
    call's result (MongoDB's names, with ``writeErrors``); what succeeded stays written."""

    def __init__(self, code, message, result):
        super().__init__(code, message)
        self.result = result


def _load():
    path = os.environ.get("NEXUS_LIB") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "target", "release", "libnexus.so"
    )
    lib = ctypes.CDLL(os.path.abspath(path))
    p, vp, cp, i = ctypes.POINTER, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    sigs = {
        "nexus_open": ([cp, cp, p(vp)], i),
        "nexus_close": ([vp], i),
        "nexus_errmsg": ([], cp),
        "nexus_free": ([vp], None),
        "nexus_insert_many": ([vp, cp, cp, p(ctypes.c_uint64)], i),
        "nexus_update_one": ([vp, cp, cp, cp, cp, p(vp)], i),
        "nexus_update_many": ([vp, cp, cp, cp, cp, p(vp)], i),
        "nexus_replace_one": ([vp, cp, cp, cp, cp, p(vp)], i),
        "nexus_insert_many_with": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_bulk_write": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_find": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_aggregate": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_cursor_next": ([vp, p(cp)], i),
        "nexus_cursor_close": ([vp], i),
        "nexus_count": ([vp, cp, cp, p(ctypes.c_uint64)], i),
        "nexus_import": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_export": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_create_index": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_drop_index": ([vp, cp, cp], i),
        "nexus_list_indexes": ([vp, cp, p(vp)], i),
        "nexus_explain": ([vp, cp, cp, cp, p(vp)], i),
        "nexus_keygen": ([cp, p(vp), p(vp)], i),
        "nexus_public_key": ([cp, p(vp)], i),
        "nexus_sign": ([cp, cp, ctypes.c_size_t, p(vp)], i),
        "nexus_verify": ([cp, cp, ctypes.c_size_t, cp], i),
        "nexus_sign_file": ([cp, cp], i),
        "nexus_verify_file": ([cp, cp], i),
        "nexus_add_key": ([vp, cp], i),
        "nexus_backup_with": ([vp, cp, cp], i),
        "nexus_remove_key": ([vp, cp], i),
        "nexus_rekey": ([vp], i),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    return lib


_lib = None


def _api():
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _check(rc, ok=(NEXUS_OK,)):
    if rc not in ok:
        raise NexusError(rc, (_api().nexus_errmsg() or b"").decode("utf-8", "replace"))
    return rc


def _b(s):
    return None if s is None else (s if isinstance(s, bytes) else str(s).encode("utf-8"))


def _json(v):
    return None if v is None else _b(v if isinstance(v, str) else json.dumps(v))


def _take_string(ptr):
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        _api().nexus_free(ptr)


def keygen(algorithm=None):
    """A new key pair: (private key PEM, public key PEM).

    `algorithm` None or "p256": P-256, PKCS#8 / SPKI as OpenSSL reads them. A library built with
    the cargo feature `pqc` also makes "ml-dsa-65", "slh-dsa-sha2-128s", "slh-dsa-sha2-192s",
    "slh-dsa-sha2-256s" (signature keys) and "ml-kem-512", "ml-kem-768", "ml-kem-1024" (hybrid
    P-256 + ML-KEM encryption keys); without it they raise NEXUS_UNSUPPORTED.
    """
    priv, pub = ctypes.c_void_p(), ctypes.c_void_p()
    _check(_api().nexus_keygen(_b(algorithm), ctypes.byref(priv), ctypes.byref(pub)))
    return _take_string(priv), _take_string(pub)


def public_key(private_pem):
    """The public key (SPKI PEM) of a private key."""
    out = ctypes.c_void_p()
    _check(_api().nexus_public_key(_b(private_pem), ctypes.byref(out)))
    return _take_string(out)


def sign(private_pem, data):
    """The ECDSA-SHA256 signature of bytes `data`, DER in base64."""
    out = ctypes.c_void_p()
    _check(_api().nexus_sign(_b(private_pem), bytes(data), len(data), ctypes.byref(out)))
    return _take_string(out)


def verify(public_pem, data, signature_b64):
    """Whether `signature_b64` is public_pem's signature of `data` (a malformed key raises)."""
    rc = _api().nexus_verify(_b(public_pem), bytes(data), len(data), _b(signature_b64))
    return _check(rc, ok=(NEXUS_OK, NEXUS_CRYPTO)) == NEXUS_OK


def sign_file(path, private_pem):
    """Signs the file at `path`, writing PATH.sig (what `openssl dgst -sha256 -sign` writes)."""
    _check(_api().nexus_sign_file(_b(os.fspath(path)), _b(private_pem)))


def verify_file(path, public_pem):
    """Whether PATH.sig exists and is public_pem's signature of the file at `path`."""
    rc = _api().nexus_verify_file(_b(os.fspath(path)), _b(public_pem))
    return _check(rc, ok=(NEXUS_OK, NEXUS_CRYPTO)) == NEXUS_OK


def _to_ext(v):
    """A Python / numpy / pandas value as Extended JSON-ready data."""
    import numpy as np
    import pandas as pd

    if v is None:
        return None
    if isinstance(v, dict):
        return {str(k): _to_ext(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_to_ext(x) for x in v]
    if isinstance(v, (pd.Timestamp, datetime.datetime, np.datetime64)):
        ts = pd.Timestamp(v)
        if ts is pd.NaT:
            return None
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return {"$date": {"$numberLong": str(ts.value // 1_000_000)}}
    if isinstance(v, decimal.Decimal):
        return {"$numberDecimal": str(v)}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _from_ext(v):
    """Extended JSON wrappers back to Python values (dates as tz-naive UTC Timestamps)."""
    import pandas as pd

    if isinstance(v, list):
        return [_from_ext(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (k, x), = v.items()
            if k == "$date":
                if isinstance(x, dict):
                    return pd.Timestamp(int(x["$numberLong"]), unit="ms")
                return pd.Timestamp(x).tz_convert("UTC").tz_localize(None)
            if k in ("$numberLong", "$numberInt"):
                return int(x)
            if k == "$numberDouble":
                return float(x)
            if k == "$numberDecimal":
                return decimal.Decimal(x)
            if k == "$oid":
                return x
        return {k: _from_ext(x) for k, x in v.items()}
    return v


class Collection:
    """A collection reached through a Database; cheap, holds no resources."""

    def __init__(self, db, name):
        self._db, self.name = db, name

    def insert_dataframe(self, df, batch_size=1000):
        """Inserts every row of the DataFrame as a document (columns are fields; NaN/NaT
        become null; datetimes become dates). Each batch is one atomic insert_many.
        Returns the number of documents inserted."""
        total = 0
        records = df.to_dict(orient="records")
        for start in range(0, len(records), batch_size):
            chunk = [_to_ext(r) for r in records[start : start + batch_size]]
            n = ctypes.c_uint64()
            _check(_api().nexus_insert_many(self._db._h, _b(self.name), _json(chunk), ctypes.byref(n)))
            total += n.value
        return total

    def find(self, filter=None, **options):
        """Yields matching documents as dicts (options: sort, projection, skip, limit)."""
        cur = ctypes.c_void_p()
        _check(_api().nexus_find(self._db._h, _b(self.name), _json(filter), _json(options or None), ctypes.byref(cur)))
        try:
            row = ctypes.c_char_p()
            while _check(_api().nexus_cursor_next(cur, ctypes.byref(row)), (NEXUS_ROW, NEXUS_DONE)) == NEXUS_ROW:
                yield _from_ext(json.loads(row.value.decode("utf-8")))
        finally:
            _api().nexus_cursor_close(cur)

    def aggregate(self, pipeline, **options):
        """Yields the results of an aggregation pipeline (a list of stage dicts, or JSON text)
        as dicts. Options as MongoDB names them: let, allowDiskUse, batchSize, explain, and
        maxMemoryBytes (see docs/API.md)."""
        cur = ctypes.c_void_p()
        text = _json(pipeline if pipeline is not None else [])
        _check(_api().nexus_aggregate(self._db._h, _b(self.name), text, _json(options or None), ctypes.byref(cur)))
        try:
            row = ctypes.c_char_p()
            while _check(_api().nexus_cursor_next(cur, ctypes.byref(row)), (NEXUS_ROW, NEXUS_DONE)) == NEXUS_ROW:
                yield _from_ext(json.loads(row.value.decode("utf-8")))
        finally:
            _api().nexus_cursor_close(cur)

    def find_dataframe(self, filter=None, **options):
        """The matching documents as a DataFrame, one column per top-level field."""
        import pandas as pd

        return pd.DataFrame.from_records(list(self.find(filter, **options)))

    def _update(self, fn, filter, update, upsert, array_filters, sort, hint):
        opts = {}
        if upsert:
            opts["upsert"] = True
        if array_filters is not None:
            opts["arrayFilters"] = array_filters
        if sort is not None:
            opts["sort"] = sort
        if hint is not None:
            opts["hint"] = hint
        out = ctypes.c_void_p()
        _check(fn(self._db._h, _b(self.name), _json(filter), _json(update), _json(opts or None), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def update_one(self, filter, update, upsert=False, array_filters=None, sort=None, hint=None):
        """nexus_update_one: update operators (not a replacement) on the first match (the
        first by ``sort``). Returns {"matchedCount", "modifiedCount", "upsertedCount"} and
        "upsertedId" when a document was upserted."""
        return self._update(_api().nexus_update_one, filter, update, upsert, array_filters, sort, hint)

    def update_many(self, filter, update, upsert=False, array_filters=None, hint=None):
        """nexus_update_many: update operators on every match; result as update_one."""
        return self._update(_api().nexus_update_many, filter, update, upsert, array_filters, None, hint)

    def replace_one(self, filter, replacement, upsert=False, sort=None, hint=None):
        """nexus_replace_one: a new body (no operators) for the first match; result as
        update_one."""
        return self._update(_api().nexus_replace_one, filter, replacement, upsert, None, sort, hint)

    def _batch(self, fn, items, ordered):
        out = ctypes.c_void_p()
        opts = None if ordered else {"ordered": False}
        rc = fn(self._db._h, _b(self.name), _json(items), _json(opts), ctypes.byref(out))
        if rc != NEXUS_OK and out.value:
            message = (_api().nexus_errmsg() or b"").decode("utf-8", "replace")
            raise BulkWriteError(rc, message, json.loads(_take_string(out)))
        _check(rc)
        return json.loads(_take_string(out))

    def insert_many(self, docs, ordered=True):
        """nexus_insert_many_with: inserts in order; ``ordered=False`` tries every document.
        Returns {"insertedCount", "insertedIds", "writeErrors"}; raises BulkWriteError
        (with ``.result``) when some failed, the others staying inserted."""
        return self._batch(_api().nexus_insert_many_with, list(docs), ordered)

    def bulk_write(self, operations, ordered=True):
        """nexus_bulk_write: write models as MongoDB's drivers write them
        ({"insertOne": {"document": ...}}, {"updateOne": {"filter", "update", ...}}, ...).
        Returns MongoDB's BulkWriteResult as a dict; raises BulkWriteError when some failed."""
        return self._batch(_api().nexus_bulk_write, list(operations), ordered)

    def count(self, filter=None):
        n = ctypes.c_uint64()
        _check(_api().nexus_count(self._db._h, _b(self.name), _json(filter), ctypes.byref(n)))
        return n.value

    def create_index(self, keys, **options):
        """nexus_create_index: keys as a dict ({"a": 1, "b": -1}); options unique, sparse,
        name, partialFilterExpression, expireAfterSeconds. Returns the index name."""
        out = ctypes.c_void_p()
        _check(_api().nexus_create_index(self._db._h, _b(self.name), _json(keys), _json(options or None), ctypes.byref(out)))
        return _take_string(out)

    def drop_index(self, name):
        _check(_api().nexus_drop_index(self._db._h, _b(self.name), _b(name)))

    def list_indexes(self):
        """The indexes as MongoDB lists them (a list of dicts, the _id index first)."""
        out = ctypes.c_void_p()
        _check(_api().nexus_list_indexes(self._db._h, _b(self.name), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def explain(self, filter=None, **options):
        """nexus_explain: the plan and what was examined, as a dict."""
        out = ctypes.c_void_p()
        _check(_api().nexus_explain(self._db._h, _b(self.name), _json(filter), _json(options or None), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def import_file(self, path, **options):
        """nexus_import: returns the report as a dict."""
        out = ctypes.c_void_p()
        _check(_api().nexus_import(self._db._h, _b(self.name), _b(path), _json(options or None), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def export_file(self, path, **options):
        """nexus_export: returns the report as a dict."""
        out = ctypes.c_void_p()
        _check(_api().nexus_export(self._db._h, _b(self.name), _b(path), _json(options or None), ctypes.byref(out)))
        return json.loads(_take_string(out))


class Database:
    """A connection (nexus_db). Not for concurrent use from several threads at once."""

    def __init__(self, path=":memory:", options=None, encryption_key=None):
        if encryption_key is not None:
            if isinstance(options, (str, bytes)):
                options = json.loads(options)
            options = dict(options or {}, encryption_key=encryption_key)
        h = ctypes.c_void_p()
        _check(_api().nexus_open(_b(path), _json(options), ctypes.byref(h)))
        self._h = h

    def _handle(self):
        if not self._h:
            raise NexusError(NEXUS_INVALID_ARGUMENT, "the database is closed")
        return self._h

    def add_key(self, public_pem):
        """Adds a recipient to this encrypted database: the holder of the private key of
        `public_pem` (SPKI PEM, P-256) can open it from now on; a key it already has changes
        nothing. NexusError NEXUS_INVALID_ARGUMENT on a plain database or for a malformed key."""
        _check(_api().nexus_add_key(self._handle(), _b(public_pem)))

    def remove_key(self, public_pem):
        """Removes a recipient of this encrypted database. NexusError NEXUS_INVALID_ARGUMENT for
        its last key, a key that is not a recipient, or a plain database."""
        _check(_api().nexus_remove_key(self._handle(), _b(public_pem)))

    def backup_with(self, dest, encrypt_to=None, decrypt=False, sign_key=None):
        """A consistent online copy of the database at `dest`: encrypted to the public key PEMs
        `encrypt_to` under a fresh data key, plain (`decrypt`), signed with `sign_key` (a
        private key PEM: writes DEST.sig)."""
        opts = {}
        if encrypt_to is not None:
            opts["encrypt_to"] = list(encrypt_to)
        if decrypt:
            opts["decrypt"] = True
        if sign_key is not None:
            opts["sign_key"] = sign_key
        _check(_api().nexus_backup_with(self._handle(), _b(dest), _b(json.dumps(opts))))

    def rekey(self):
        """Changes the data key of this encrypted database: every page rewritten under a new
        random key, the same recipients. NexusError NEXUS_BUSY while other processes have it
        open, NEXUS_INVALID_ARGUMENT on a plain database."""
        _check(_api().nexus_rekey(self._handle()))

    def collection(self, name):
        return Collection(self, name)

    def close(self):
        if self._h:
            h, self._h = self._h, None
            _check(_api().nexus_close(h))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open(path=":memory:", options=None, encryption_key=None):  # noqa: A001 - mirrors nexus_open
    """Opens (creating) the database at path; ':memory:' for a private in-memory one.

    encryption_key: a P-256 private key, PKCS#8 PEM (see keygen()), passed as the open option
    "encryption_key": a new file is created encrypted to it. NexusError code NEXUS_CRYPTO for an
    encrypted file opened without a key or with a key that is not a recipient (add_key),
    NEXUS_INVALID_ARGUMENT for a plain file opened with a key, NEXUS_UNSUPPORTED for ':memory:'
    and the memlog storage."""
    return Database(path, options, encryption_key)
