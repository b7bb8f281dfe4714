"""NexusLite for Python: a small ctypes binding over libnexus (the C ABI in include/nexus.h).

    import nexuslite
    with nexuslite.open("app.db") as db:
        people = db.collection("people")
        people.insert_many([{"name": "ada", "age": 36}])
        older = list(people.find({"age": {"$gt": 30}}))
        people.update_many({}, {"$inc": {"visits": 1}})  # {"matchedCount": ..., ...}
        people.insert_dataframe(df)                      # pandas (pip install nexuslite[pandas])

The library is, in this order: the file named by the NEXUS_LIB environment variable, the one
bundled in the installed package (nexuslite/_lib/), target/release/ of the NexusLite checkout
this package lives in. Documents cross the boundary as MongoDB Extended JSON: dates become
datetime.datetime (UTC, tz-naive), $numberLong ints, $numberDecimal Decimals; find_dataframe
gives datetime64 columns.
"""

from __future__ import annotations

import ctypes
import datetime
import decimal
import json
import math
import os
import sys
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)

if TYPE_CHECKING:
    import pandas

try:
    from ._version import VERSION as __version__  # type: ignore  # written into the wheel from Cargo.toml
except ImportError:  # a checkout, not an installed package
    __version__ = "0+checkout"

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
    "library_path",
]

# A filter, update, pipeline or options: a dict / list, or its JSON text.
Json = Union[Mapping[str, Any], Sequence[Any], str, bytes]
PathLike = Union[str, "os.PathLike[str]"]

NEXUS_OK, NEXUS_ROW, NEXUS_DONE = 0, 100, 101
NEXUS_INVALID_ARGUMENT, NEXUS_CRYPTO, NEXUS_UNSUPPORTED = 3, 12, 13


class NexusError(Exception):
    """A NEXUS_* status code other than success, with the library's message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


class BulkWriteError(NexusError):
    """Some documents or operations of insert_many / bulk_write failed. ``result`` is the
    call's result (MongoDB's names, with ``writeErrors``); what succeeded stays written."""

    def __init__(self, code: int, message: str, result: Dict[str, Any]) -> None:
        super().__init__(code, message)
        self.result = result


_LIB_NAME = {"darwin": "libnexus.dylib", "win32": "nexus.dll"}.get(sys.platform, "libnexus.so")
_HERE = os.path.dirname(os.path.abspath(__file__))
_BUNDLED = os.path.join(_HERE, "_lib", _LIB_NAME)
_CHECKOUT = os.path.normpath(os.path.join(_HERE, "..", "..", "..", "target", "release", _LIB_NAME))

def _find_library() -> str:
    env = os.environ.get("NEXUS_LIB")
    if env:
        # An explicit choice is not second-guessed: a wrong path is an error, not a fallback.
        if not os.path.isfile(env):
            raise ImportError(f"nexuslite: NEXUS_LIB={env} is not a file")
        return os.path.abspath(env)
    for path in (_BUNDLED, _CHECKOUT):
        if os.path.isfile(path):
            return path
    raise ImportError(
        f"nexuslite: {_LIB_NAME} not found. Looked for the library bundled with the package "
        f"({_BUNDLED}) and a NexusLite checkout's build ({_CHECKOUT}). Install the package with "
        "`pip install ./bindings/python` from a NexusLite checkout, run `make lib` in the checkout, "
        "or set NEXUS_LIB to the library's path."
    )


def _load(path: str) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"nexuslite: cannot load {path}: {e}") from e
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
        "nexus_vector_search": ([vp, cp, cp, p(vp)], i),
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
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise ImportError(f"nexuslite: {path} has no {name}: a library older than this package") from None
        f.argtypes, f.restype = args, res
    return lib


# Loaded at import, so a missing or unloadable library is an ImportError saying where it looked.
_lib_path = _find_library()
_lib = _load(_lib_path)


def _api() -> ctypes.CDLL:
    return _lib


def library_path() -> str:
    """The absolute path of the libnexus this module loaded."""
    return _lib_path


def _check(rc: int, ok: Tuple[int, ...] = (NEXUS_OK,)) -> int:
    if rc not in ok:
        raise NexusError(rc, (_api().nexus_errmsg() or b"").decode("utf-8", "replace"))
    return rc


def _b(s: Any) -> Optional[bytes]:
    return None if s is None else (s if isinstance(s, bytes) else str(s).encode("utf-8"))


def _ext_default(v: Any) -> Any:
    """json.dumps's fallback: datetimes and Decimals as Extended JSON (what find returns)."""
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        ms = (v - _EPOCH) // datetime.timedelta(milliseconds=1)
        return {"$date": {"$numberLong": str(ms)}}
    if isinstance(v, decimal.Decimal):
        return {"$numberDecimal": str(v)}
    if type(v).__module__ == "numpy" and hasattr(v, "tolist"):
        # numpy arrays (vectors) and scalars: their Python lists and numbers.
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not a JSON / Extended JSON value")


def _json(v: Any) -> Optional[bytes]:
    if v is None or isinstance(v, bytes):
        return v
    return _b(v if isinstance(v, str) else json.dumps(v, default=_ext_default))


def _take_string(ptr: ctypes.c_void_p) -> str:
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        _api().nexus_free(ptr)


def keygen(algorithm: Optional[str] = None) -> Tuple[str, str]:
    """A new key pair: (private key PEM, public key PEM).

    `algorithm` None or "p256": P-256, PKCS#8 / SPKI as OpenSSL reads them. A library built with
    the cargo feature `pqc` also makes "ml-dsa-65", "slh-dsa-sha2-128s", "slh-dsa-sha2-192s",
    "slh-dsa-sha2-256s" (signature keys) and "ml-kem-512", "ml-kem-768", "ml-kem-1024" (hybrid
    P-256 + ML-KEM encryption keys); without it they raise NEXUS_UNSUPPORTED.
    """
    priv, pub = ctypes.c_void_p(), ctypes.c_void_p()
    _check(_api().nexus_keygen(_b(algorithm), ctypes.byref(priv), ctypes.byref(pub)))
    return _take_string(priv), _take_string(pub)


def public_key(private_pem: str) -> str:
    """The public key (SPKI PEM) of a private key."""
    out = ctypes.c_void_p()
    _check(_api().nexus_public_key(_b(private_pem), ctypes.byref(out)))
    return _take_string(out)


def sign(private_pem: str, data: bytes) -> str:
    """The ECDSA-SHA256 signature of bytes `data`, DER in base64."""
    out = ctypes.c_void_p()
    _check(_api().nexus_sign(_b(private_pem), bytes(data), len(data), ctypes.byref(out)))
    return _take_string(out)


def verify(public_pem: str, data: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is public_pem's signature of `data` (a malformed key raises)."""
    rc = _api().nexus_verify(_b(public_pem), bytes(data), len(data), _b(signature_b64))
    return _check(rc, ok=(NEXUS_OK, NEXUS_CRYPTO)) == NEXUS_OK


def sign_file(path: PathLike, private_pem: str) -> None:
    """Signs the file at `path`, writing PATH.sig (what `openssl dgst -sha256 -sign` writes)."""
    _check(_api().nexus_sign_file(_b(os.fspath(path)), _b(private_pem)))


def verify_file(path: PathLike, public_pem: str) -> bool:
    """Whether PATH.sig exists and is public_pem's signature of the file at `path`."""
    rc = _api().nexus_verify_file(_b(os.fspath(path)), _b(public_pem))
    return _check(rc, ok=(NEXUS_OK, NEXUS_CRYPTO)) == NEXUS_OK


def _to_ext(v: Any) -> Any:
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


_EPOCH = datetime.datetime(1970, 1, 1)


def _from_ext(v: Any) -> Any:
    """Extended JSON wrappers back to Python values (dates as tz-naive UTC datetimes)."""
    if isinstance(v, list):
        return [_from_ext(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (k, x), = v.items()
            if k == "$date":
                if isinstance(x, dict):
                    return _EPOCH + datetime.timedelta(milliseconds=int(x["$numberLong"]))
                # Relaxed form, years 1970-9999: ISO 8601 with Z (fromisoformat takes Z from 3.11).
                ts = datetime.datetime.fromisoformat(x.replace("Z", "+00:00"))
                return ts.astimezone(datetime.timezone.utc).replace(tzinfo=None)
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


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as e:
        raise ImportError(
            "nexuslite: DataFrames need pandas: pip install nexuslite[pandas] "
            "(from a checkout: pip install './bindings/python[pandas]')"
        ) from e
    return pandas


class Collection:
    """A collection reached through a Database; cheap, holds no resources."""

    def __init__(self, db: Database, name: str) -> None:
        self._db, self.name = db, name

    def insert_dataframe(self, df: pandas.DataFrame, batch_size: int = 1000) -> int:
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

    def find(self, filter: Optional[Json] = None, **options: Any) -> Iterator[Dict[str, Any]]:
        """Yields matching documents as dicts (options: sort, projection, skip, limit)."""
        cur = ctypes.c_void_p()
        _check(_api().nexus_find(self._db._h, _b(self.name), _json(filter), _json(options or None), ctypes.byref(cur)))
        try:
            row = ctypes.c_char_p()
            while _check(_api().nexus_cursor_next(cur, ctypes.byref(row)), (NEXUS_ROW, NEXUS_DONE)) == NEXUS_ROW:
                yield _from_ext(json.loads(cast(bytes, row.value).decode("utf-8")))
        finally:
            _api().nexus_cursor_close(cur)

    def aggregate(self, pipeline: Optional[Json], **options: Any) -> Iterator[Dict[str, Any]]:
        """Yields the results of an aggregation pipeline (a list of stage dicts, or JSON text)
        as dicts. Options as MongoDB names them: let, allowDiskUse, batchSize, explain, and
        maxMemoryBytes (see docs/API.md)."""
        cur = ctypes.c_void_p()
        text = _json(pipeline if pipeline is not None else [])
        _check(_api().nexus_aggregate(self._db._h, _b(self.name), text, _json(options or None), ctypes.byref(cur)))
        try:
            row = ctypes.c_char_p()
            while _check(_api().nexus_cursor_next(cur, ctypes.byref(row)), (NEXUS_ROW, NEXUS_DONE)) == NEXUS_ROW:
                yield _from_ext(json.loads(cast(bytes, row.value).decode("utf-8")))
        finally:
            _api().nexus_cursor_close(cur)

    def vector_search(self, spec: Json, numpy: bool = False) -> Iterator[Dict[str, Any]]:
        """Yields the documents a vector search finds, best first, as dicts with their score
        in spec's scoreField (default "_score"). `spec` is MongoDB Atlas's $vectorSearch body
        (path, queryVector, limit, numCandidates, filter, exact, index) plus projection and
        scoreField; queryVector may be a NumPy array. With `numpy=True` the vector at `path`
        comes back as a NumPy float32 array."""
        cur = ctypes.c_void_p()
        path = spec.get("path") if isinstance(spec, dict) else json.loads(spec).get("path")
        _check(_api().nexus_vector_search(self._db._h, _b(self.name), _json(spec), ctypes.byref(cur)))
        try:
            row = ctypes.c_char_p()
            while _check(_api().nexus_cursor_next(cur, ctypes.byref(row)), (NEXUS_ROW, NEXUS_DONE)) == NEXUS_ROW:
                doc = _from_ext(json.loads(cast(bytes, row.value).decode("utf-8")))
                if numpy and isinstance(path, str):
                    import numpy as np

                    *parents, last = path.split(".")
                    holder: Any = doc
                    for part in parents:
                        holder = holder.get(part) if isinstance(holder, dict) else None
                    if isinstance(holder, dict) and isinstance(holder.get(last), list):
                        holder[last] = np.asarray(holder[last], dtype=np.float32)
                yield doc
        finally:
            _api().nexus_cursor_close(cur)

    def find_dataframe(self, filter: Optional[Json] = None, **options: Any) -> pandas.DataFrame:
        """The matching documents as a DataFrame, one column per top-level field (dates as
        datetime64 columns)."""
        pd = _pandas()
        return pd.DataFrame.from_records(list(self.find(filter, **options)))

    def _update(
        self,
        fn: Callable[..., int],
        filter: Optional[Json],
        update: Json,
        upsert: bool,
        array_filters: Optional[Sequence[Any]],
        sort: Optional[Json],
        hint: Optional[Union[str, Json]],
    ) -> Dict[str, Any]:
        opts: Dict[str, Any] = {}
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

    def update_one(
        self,
        filter: Optional[Json],
        update: Json,
        upsert: bool = False,
        array_filters: Optional[Sequence[Any]] = None,
        sort: Optional[Json] = None,
        hint: Optional[Union[str, Json]] = None,
    ) -> Dict[str, Any]:
        """nexus_update_one: update operators (not a replacement) on the first match (the
        first by ``sort``). Returns {"matchedCount", "modifiedCount", "upsertedCount"} and
        "upsertedId" when a document was upserted."""
        return self._update(_api().nexus_update_one, filter, update, upsert, array_filters, sort, hint)

    def update_many(
        self,
        filter: Optional[Json],
        update: Json,
        upsert: bool = False,
        array_filters: Optional[Sequence[Any]] = None,
        hint: Optional[Union[str, Json]] = None,
    ) -> Dict[str, Any]:
        """nexus_update_many: update operators on every match; result as update_one."""
        return self._update(_api().nexus_update_many, filter, update, upsert, array_filters, None, hint)

    def replace_one(
        self,
        filter: Optional[Json],
        replacement: Json,
        upsert: bool = False,
        sort: Optional[Json] = None,
        hint: Optional[Union[str, Json]] = None,
    ) -> Dict[str, Any]:
        """nexus_replace_one: a new body (no operators) for the first match; result as
        update_one."""
        return self._update(_api().nexus_replace_one, filter, replacement, upsert, None, sort, hint)

    def _batch(self, fn: Callable[..., int], items: List[Any], ordered: bool) -> Dict[str, Any]:
        out = ctypes.c_void_p()
        opts = None if ordered else {"ordered": False}
        rc = fn(self._db._h, _b(self.name), _json(items), _json(opts), ctypes.byref(out))
        if rc != NEXUS_OK and out.value:
            message = (_api().nexus_errmsg() or b"").decode("utf-8", "replace")
            raise BulkWriteError(rc, message, json.loads(_take_string(out)))
        _check(rc)
        return json.loads(_take_string(out))

    def insert_many(self, docs: Iterable[Mapping[str, Any]], ordered: bool = True) -> Dict[str, Any]:
        """nexus_insert_many_with: inserts in order; ``ordered=False`` tries every document.
        Returns {"insertedCount", "insertedIds", "writeErrors"}; raises BulkWriteError
        (with ``.result``) when some failed, the others staying inserted."""
        return self._batch(_api().nexus_insert_many_with, list(docs), ordered)

    def bulk_write(self, operations: Iterable[Mapping[str, Any]], ordered: bool = True) -> Dict[str, Any]:
        """nexus_bulk_write: write models as MongoDB's drivers write them
        ({"insertOne": {"document": ...}}, {"updateOne": {"filter", "update", ...}}, ...).
        Returns MongoDB's BulkWriteResult as a dict; raises BulkWriteError when some failed."""
        return self._batch(_api().nexus_bulk_write, list(operations), ordered)

    def count(self, filter: Optional[Json] = None) -> int:
        n = ctypes.c_uint64()
        _check(_api().nexus_count(self._db._h, _b(self.name), _json(filter), ctypes.byref(n)))
        return n.value

    def create_index(self, keys: Json, **options: Any) -> str:
        """nexus_create_index: keys as a dict ({"a": 1, "b": -1}); options unique, sparse,
        name, partialFilterExpression, expireAfterSeconds. Returns the index name."""
        out = ctypes.c_void_p()
        _check(_api().nexus_create_index(self._db._h, _b(self.name), _json(keys), _json(options or None), ctypes.byref(out)))
        return _take_string(out)

    def drop_index(self, name: str) -> None:
        _check(_api().nexus_drop_index(self._db._h, _b(self.name), _b(name)))

    def list_indexes(self) -> List[Dict[str, Any]]:
        """The indexes as MongoDB lists them (a list of dicts, the _id index first)."""
        out = ctypes.c_void_p()
        _check(_api().nexus_list_indexes(self._db._h, _b(self.name), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def explain(self, filter: Optional[Json] = None, **options: Any) -> Dict[str, Any]:
        """nexus_explain: the plan and what was examined, as a dict."""
        out = ctypes.c_void_p()
        _check(_api().nexus_explain(self._db._h, _b(self.name), _json(filter), _json(options or None), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def import_file(self, path: PathLike, **options: Any) -> Dict[str, Any]:
        """nexus_import: returns the report as a dict."""
        out = ctypes.c_void_p()
        _check(_api().nexus_import(self._db._h, _b(self.name), _b(path), _json(options or None), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def export_file(self, path: PathLike, **options: Any) -> Dict[str, Any]:
        """nexus_export: returns the report as a dict."""
        out = ctypes.c_void_p()
        _check(_api().nexus_export(self._db._h, _b(self.name), _b(path), _json(options or None), ctypes.byref(out)))
        return json.loads(_take_string(out))


class Database:
    """A connection (nexus_db). Not for concurrent use from several threads at once."""

    def __init__(
        self, path: PathLike = ":memory:", options: Optional[Json] = None, encryption_key: Optional[str] = None
    ) -> None:
        if encryption_key is not None:
            given: Any = json.loads(options) if isinstance(options, (str, bytes)) else options
            options = dict(given or {}, encryption_key=encryption_key)
        h = ctypes.c_void_p()
        _check(_api().nexus_open(_b(path), _json(options), ctypes.byref(h)))
        self._h: Optional[ctypes.c_void_p] = h

    def _handle(self) -> ctypes.c_void_p:
        if not self._h:
            raise NexusError(NEXUS_INVALID_ARGUMENT, "the database is closed")
        return self._h

    def add_key(self, public_pem: str) -> None:
        """Adds a recipient to this encrypted database: the holder of the private key of
        `public_pem` (SPKI PEM, P-256) can open it from now on; a key it already has changes
        nothing. NexusError NEXUS_INVALID_ARGUMENT on a plain database or for a malformed key."""
        _check(_api().nexus_add_key(self._handle(), _b(public_pem)))

    def remove_key(self, public_pem: str) -> None:
        """Removes a recipient of this encrypted database. NexusError NEXUS_INVALID_ARGUMENT for
        its last key, a key that is not a recipient, or a plain database."""
        _check(_api().nexus_remove_key(self._handle(), _b(public_pem)))

    def backup_with(
        self,
        dest: PathLike,
        encrypt_to: Optional[Iterable[str]] = None,
        decrypt: bool = False,
        sign_key: Optional[str] = None,
    ) -> None:
        """A consistent online copy of the database at `dest`: encrypted to the public key PEMs
        `encrypt_to` under a fresh data key, plain (`decrypt`), signed with `sign_key` (a
        private key PEM: writes DEST.sig)."""
        opts: Dict[str, Any] = {}
        if encrypt_to is not None:
            opts["encrypt_to"] = list(encrypt_to)
        if decrypt:
            opts["decrypt"] = True
        if sign_key is not None:
            opts["sign_key"] = sign_key
        _check(_api().nexus_backup_with(self._handle(), _b(dest), _b(json.dumps(opts))))

    def rekey(self) -> None:
        """Changes the data key of this encrypted database: every page rewritten under a new
        random key, the same recipients. NexusError NEXUS_BUSY while other processes have it
        open, NEXUS_INVALID_ARGUMENT on a plain database."""
        _check(_api().nexus_rekey(self._handle()))

    def collection(self, name: str) -> Collection:
        return Collection(self, name)

    def close(self) -> None:
        if self._h:
            h, self._h = self._h, None
            _check(_api().nexus_close(h))

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(  # noqa: A001 - mirrors nexus_open
    path: PathLike = ":memory:", options: Optional[Json] = None, encryption_key: Optional[str] = None
) -> Database:
    """Opens (creating) the database at path; ':memory:' for a private in-memory one.

    encryption_key: a P-256 private key, PKCS#8 PEM (see keygen()), passed as the open option
    "encryption_key": a new file is created encrypted to it. NexusError code NEXUS_CRYPTO for an
    encrypted file opened without a key or with a key that is not a recipient (add_key),
    NEXUS_INVALID_ARGUMENT for a plain file opened with a key, NEXUS_UNSUPPORTED for ':memory:'
    and the memlog storage."""
    return Database(path, options, encryption_key)
