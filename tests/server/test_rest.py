"""The HTTP front end of `nexus serve --http` (NEXUS_BIN) driven by `requests`: every Atlas
Data API v1 action, relaxed and canonical Extended JSON, the native endpoints (NDJSON find,
collections, indexes, stats), /healthz, /metrics, /openapi.json, API keys, and the error
paths (bad JSON, unknown action, missing parameters, auth failures, body too large)."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import NEXUS_BIN, free_port

ACTIONS = "/app/data-api/endpoint/data/v1/action/"
ROUTES = [
    # (method, OpenAPI path, a concrete path): every route of src/bin/nexus/serve/rest/mod.rs.
    ("post", "/app/{app}/endpoint/data/v1/action/{action}", None),
    ("get", "/healthz", "/healthz"),
    ("get", "/metrics", "/metrics"),
    ("get", "/openapi.json", "/openapi.json"),
    ("get", "/api/v1/databases", "/api/v1/databases"),
    ("get", "/api/v1/databases/{db}/stats", None),
    ("get", "/api/v1/databases/{db}/collections", None),
    ("put", "/api/v1/databases/{db}/collections/{coll}", None),
    ("delete", "/api/v1/databases/{db}/collections/{coll}", None),
    ("get", "/api/v1/databases/{db}/collections/{coll}/stats", None),
    ("post", "/api/v1/databases/{db}/collections/{coll}/find", None),
    ("get", "/api/v1/databases/{db}/collections/{coll}/indexes", None),
    ("post", "/api/v1/databases/{db}/collections/{coll}/indexes", None),
    ("delete", "/api/v1/databases/{db}/collections/{coll}/indexes/{name}", None),
]


class HttpServer:
    """One `nexus serve --http` process on a free loopback port."""

    def __init__(self, data_dir, extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [NEXUS_BIN, "serve", "--data-dir", data_dir, "--http", f"127.0.0.1:{self.port}", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # One line per front end on start; the HTTP one comes after the MongoDB one.
        self.banner = ""
        for _ in range(2):
            self.banner += self.proc.stdout.readline()
            if f"HTTP on 127.0.0.1:{self.port}" in self.banner:
                break
        assert f"HTTP on 127.0.0.1:{self.port}" in self.banner, self.banner + self.proc.stderr.read()
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()

    def action(self, name, body, **kw):
        return self.session.post(self.url + ACTIONS + name, json=body, timeout=30, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


@pytest.fixture(scope="module")
def http():
    d = tempfile.mkdtemp(prefix="nexus-rest-")
    s = HttpServer(d, ["--http-max-body", "65536"])
    yield s
    assert s.stop() == 0
    shutil.rmtree(d, ignore_errors=True)


def body(coll, **kw):
    return {"dataSource": "local", "database": "shop", "collection": coll, **kw}


def error_of(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    e = r.json()
    assert e["error_code"] == code, e
    assert isinstance(e["error"], str) and e["error"]
    return e["error"]


def test_insert_one_and_find_one(http):
    r = http.action("insertOne", body("a", document={"item": "tea", "qty": 2}))
    assert r.status_code == 201, r.text
    oid = r.json()["insertedId"]
    assert set(oid) == {"$oid"} and len(oid["$oid"]) == 24
    r = http.action("findOne", body("a", filter={"_id": oid}, projection={"_id": 0}))
    assert r.status_code == 200
    assert r.json() == {"document": {"item": "tea", "qty": 2}}
    r = http.action("findOne", body("a", filter={"item": "none"}))
    assert r.json() == {"document": None}


def test_insert_many_find_sort_skip_limit(http):
    docs = [{"_id": i, "n": i, "even": i % 2 == 0} for i in range(10)]
    r = http.action("insertMany", body("b", documents=docs))
    assert r.status_code == 201, r.text
    assert r.json() == {"insertedIds": list(range(10))}
    r = http.action("find", body("b", filter={"even": True}, sort={"n": -1}, skip=1, limit=2,
                                 projection={"even": 0}))
    assert r.json() == {"documents": [{"_id": 6, "n": 6}, {"_id": 4, "n": 4}]}
    # A missing collection reads as empty (MongoDB's behaviour).
    assert http.action("find", body("nothing_here")).json() == {"documents": []}


def test_insert_many_duplicate_is_conflict(http):
    http.action("insertOne", body("dup", document={"_id": 1}))
    r = http.action("insertMany", body("dup", documents=[{"_id": 2}, {"_id": 1}]))
    assert "document 1" in error_of(r, 409, "DuplicateKey")


def test_update_one_many_upsert(http):
    http.action("insertMany", body("u", documents=[{"k": 1, "v": 0}, {"k": 1, "v": 0}, {"k": 2, "v": 0}]))
    r = http.action("updateOne", body("u", filter={"k": 1}, update={"$inc": {"v": 1}}))
    assert r.json() == {"matchedCount": 1, "modifiedCount": 1}
    r = http.action("updateMany", body("u", filter={"k": 1}, update={"$set": {"w": True}}))
    assert r.json() == {"matchedCount": 2, "modifiedCount": 2}
    r = http.action("updateOne", body("u", filter={"k": 9}, update={"$set": {"v": 9}}, upsert=True))
    j = r.json()
    assert j["matchedCount"] == 0 and j["modifiedCount"] == 0 and j["upsertedId"]
    r = http.action("find", body("u", filter={"_id": j["upsertedId"]}, projection={"_id": 0}))
    assert r.json() == {"documents": [{"k": 9, "v": 9}]}
    # A pipeline update.
    r = http.action("updateMany", body("u", filter={"k": 2}, update=[{"$set": {"v": {"$add": ["$v", 5]}}}]))
    assert r.json()["modifiedCount"] == 1
    assert http.action("findOne", body("u", filter={"k": 2})).json()["document"]["v"] == 5
    # Operators are required.
    error_of(http.action("updateOne", body("u", filter={}, update={"v": 1})), 400, "InvalidParameter")
    error_of(http.action("updateOne", body("u", filter={})), 400, "InvalidParameter")


def test_replace_one(http):
    http.action("insertOne", body("r", document={"_id": "x", "a": 1}))
    r = http.action("replaceOne", body("r", filter={"_id": "x"}, replacement={"b": 2}))
    assert r.json() == {"matchedCount": 1, "modifiedCount": 1}
    assert http.action("findOne", body("r", filter={"_id": "x"})).json() == {"document": {"_id": "x", "b": 2}}
    r = http.action("replaceOne", body("r", filter={"_id": "y"}, replacement={"c": 3}, upsert=True))
    assert r.json()["upsertedId"] == "y"
    error_of(http.action("replaceOne", body("r", filter={}, replacement={"$set": {"a": 1}})), 400,
             "InvalidParameter")


def test_delete_one_many(http):
    http.action("insertMany", body("d", documents=[{"t": 1}, {"t": 1}, {"t": 1}, {"t": 2}]))
    assert http.action("deleteOne", body("d", filter={"t": 1})).json() == {"deletedCount": 1}
    assert http.action("deleteMany", body("d", filter={"t": 1})).json() == {"deletedCount": 2}
    assert http.action("deleteMany", body("d", filter={})).json() == {"deletedCount": 1}
    assert http.action("deleteMany", body("never_made", filter={})).json() == {"deletedCount": 0}


def test_aggregate(http):
    http.action("insertMany", body("g", documents=[{"c": "x", "n": 1}, {"c": "x", "n": 2}, {"c": "y", "n": 5}]))
    r = http.action("aggregate", body("g", pipeline=[
        {"$group": {"_id": "$c", "total": {"$sum": "$n"}}}, {"$sort": {"_id": 1}}]))
    assert r.json() == {"documents": [{"_id": "x", "total": 3}, {"_id": "y", "total": 5}]}
    error_of(http.action("aggregate", body("g", pipeline={"$match": {}})), 400, "InvalidParameter")
    error_of(http.action("aggregate", body("g", pipeline=[{"$nope": {}}])), 501, "NotImplemented")


def test_relaxed_and_canonical_extended_json(http):
    doc = {"_id": 7, "when": {"$date": "2024-05-01T12:00:00Z"}, "big": {"$numberLong": "9007199254740993"},
           "f": 1.5, "dec": {"$numberDecimal": "1.10"}}
    r = http.session.post(http.url + ACTIONS + "insertOne", data=json.dumps(body("e", document=doc)),
                          headers={"Content-Type": "application/ejson", "Accept": "application/ejson"})
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"] == "application/ejson"
    assert r.json() == {"insertedId": {"$numberInt": "7"}}
    relaxed = http.action("findOne", body("e", filter={"_id": 7})).json()["document"]
    assert relaxed["_id"] == 7 and relaxed["f"] == 1.5
    assert relaxed["when"] == {"$date": "2024-05-01T12:00:00Z"}
    assert relaxed["big"] == 9007199254740993
    assert relaxed["dec"] == {"$numberDecimal": "1.10"}
    r = http.action("findOne", body("e", filter={"_id": 7}), headers={"Accept": "application/ejson"})
    canonical = r.json()["document"]
    assert canonical["_id"] == {"$numberInt": "7"}
    assert canonical["f"] == {"$numberDouble": "1.5"}
    assert canonical["big"] == {"$numberLong": "9007199254740993"}
    assert canonical["when"] == {"$date": {"$numberLong": "1714564800000"}}


def test_bad_json(http):
    r = http.session.post(http.url + ACTIONS + "find", data="{not json",
                          headers={"Content-Type": "application/json"})
    assert "not valid JSON" in error_of(r, 400, "InvalidParameter")
    r = http.session.post(http.url + ACTIONS + "find", data="[1, 2]",
                          headers={"Content-Type": "application/json"})
    error_of(r, 400, "InvalidParameter")
    # Nesting far past the limit: refused (the JSON reader stops at 128 levels).
    deep = '{"database": "shop", "collection": "x", "document": ' + '{"a": ' * 5000 + '1' + '}' * 5001
    r = http.session.post(http.url + ACTIONS + "insertOne", data=deep, headers={"Content-Type": "application/json"})
    assert "recursion limit" in error_of(r, 400, "InvalidParameter")
    r = http.action("insertOne", body("x", document={"d": {"$date": "not a date"}}))
    assert "Extended JSON" in error_of(r, 400, "InvalidParameter")
    r = http.session.post(http.url + ACTIONS + "find", data="{}", headers={"Content-Type": "text/plain"})
    error_of(r, 415, "UnsupportedMediaType")


def test_errors_before_the_body_do_not_break_kept_alive_connections(http):
    # An answer given before the body is read closes the connection (Connection: close), so a
    # client's next request on its pool never meets a half-read connection.
    for _ in range(20):
        r = http.session.post(http.url + ACTIONS + "find", data="{}", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and r.headers["Connection"] == "close"
        error_of(http.action("nope", body("a")), 404, "ActionNotFound")
        assert http.action("find", body("a", limit=1)).status_code == 200


def test_unknown_action_route_method(http):
    assert "findOne" in error_of(http.action("findAll", body("a")), 404, "ActionNotFound")
    error_of(http.session.get(http.url + "/no/such/route"), 404, "NotFound")
    error_of(http.session.get(http.url + ACTIONS + "find"), 405, "MethodNotAllowed")


def test_missing_parameters(http):
    assert "'collection'" in error_of(http.action("find", {"database": "shop"}), 400, "InvalidParameter")
    assert "'database'" in error_of(http.action("find", {"collection": "a"}), 400, "InvalidParameter")
    error_of(http.action("insertOne", body("a")), 400, "InvalidParameter")
    error_of(http.action("insertMany", body("a", documents=[])), 400, "InvalidParameter")
    error_of(http.action("find", body("a", filter=5)), 400, "InvalidParameter")
    error_of(http.action("find", {"database": "bad/name", "collection": "a"}), 400, "InvalidParameter")
    error_of(http.action("find", body("a", limit=50001)), 400, "InvalidParameter")


def test_body_too_large(http):
    big = body("big", document={"s": "x" * 70000})
    assert "65536" in error_of(http.action("insertOne", big), 413, "PayloadTooLarge")
    # Without a Content-Length (chunked), the limit holds as the body is read.
    def chunks():
        data = json.dumps(big).encode()
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]
    r = http.session.post(http.url + ACTIONS + "insertOne", data=chunks(),
                          headers={"Content-Type": "application/json"})
    error_of(r, 413, "PayloadTooLarge")
    # The server is still up.
    assert http.session.get(http.url + "/healthz").json() == {"status": "ok"}


def test_native_collections_indexes_stats(http):
    base = http.url + "/api/v1/databases/native"
    assert http.session.put(base + "/collections/c1").status_code == 201
    error_of(http.session.put(base + "/collections/c1"), 409, "NamespaceExists")
    assert http.session.get(base + "/collections").json() == {"collections": ["c1"]}
    r = http.session.post(base + "/collections/c1/indexes", json={"keys": {"k": 1}, "options": {"unique": True}})
    assert r.status_code == 201, r.text
    name = r.json()["name"]
    idx = http.session.get(base + "/collections/c1/indexes").json()["indexes"]
    assert [i["name"] for i in idx] == ["_id_", name]
    error_of(http.session.post(base + "/collections/c1/indexes", json={}), 400, "InvalidParameter")
    http.action("insertMany", {"database": "native", "collection": "c1", "documents": [{"k": 1}, {"k": 2}]})
    error_of(http.action("insertOne", {"database": "native", "collection": "c1", "document": {"k": 1}}), 409,
             "DuplicateKey")
    stats = http.session.get(base + "/collections/c1/stats").json()
    assert stats["count"] == 2 and stats["nindexes"] == 2 and stats["ns"] == "native.c1"
    dbstats = http.session.get(base + "/stats").json()
    assert dbstats["collections"] == 1 and dbstats["objects"] == 2 and dbstats["sizeOnDisk"] > 0
    assert http.session.delete(base + f"/collections/c1/indexes/{name}").status_code == 200
    error_of(http.session.delete(base + f"/collections/c1/indexes/{name}"), 404, "IndexNotFound")
    error_of(http.session.get(base + "/collections/missing/stats"), 404, "NamespaceNotFound")
    error_of(http.session.get(base + "/collections/missing/indexes"), 404, "NamespaceNotFound")
    names = [d["name"] for d in http.session.get(http.url + "/api/v1/databases").json()["databases"]]
    assert "native" in names and "shop" in names
    assert http.session.delete(base + "/collections/c1").status_code == 200
    error_of(http.session.delete(base + "/collections/c1"), 404, "NamespaceNotFound")


def test_ndjson_find_streams_every_document(http):
    n = 5000
    for start in range(0, n, 1000):
        r = http.action("insertMany", body("stream", documents=[{"_id": i, "pad": "p" * 20} for i in range(start, start + 1000)]))
        assert r.status_code == 201
    url = http.url + "/api/v1/databases/shop/collections/stream/find"
    with http.session.post(url, json={"filter": {"_id": {"$gte": 10}}, "sort": {"_id": 1}}, stream=True) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/x-ndjson"
        ids = [json.loads(line)["_id"] for line in r.iter_lines() if line]
    assert ids == list(range(10, n))
    r = http.session.post(url, json={"filter": {}, "skip": 3, "limit": 2, "projection": {"pad": 0}})
    assert [json.loads(l) for l in r.text.splitlines()] == [{"_id": 3}, {"_id": 4}]
    error_of(http.session.post(url, json={"filter": {"$bogus": 1}}), 400, "InvalidParameter")
    r = http.session.post(http.url + "/api/v1/databases/shop/collections/none/find", json={})
    assert r.status_code == 200 and r.text == ""


def test_healthz_metrics_openapi(http):
    assert http.session.get(http.url + "/healthz").json() == {"status": "ok"}
    http.action("find", body("a"))
    text = http.session.get(http.url + "/metrics").text
    assert 'nexus_http_requests_total{route="data-api/find",status="200"}' in text
    assert 'nexus_http_request_duration_seconds_bucket{route="data-api/find",le="+Inf"}' in text
    assert 'nexus_http_requests_total{route="data-api/unknown",status="404"}' in text
    assert 'nexus_cache_hits{db="shop"}' in text
    assert any(l.startswith("nexus_storage_") and 'db="shop"' in l for l in text.splitlines())
    spec = http.session.get(http.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for method, path, _ in ROUTES:
        assert method in spec["paths"][path], (method, path)
    assert len(spec["paths"]) == len({p for _, p, _ in ROUTES})
    actions = spec["paths"]["/app/{app}/endpoint/data/v1/action/{action}"]["post"]["parameters"]
    assert {"findOne", "find", "insertOne", "insertMany", "updateOne", "updateMany", "replaceOne",
            "deleteOne", "deleteMany", "aggregate"} == set(
        next(p for p in actions if p["name"] == "action")["schema"]["enum"])


def apikey(data_dir, *args):
    out = subprocess.run([NEXUS_BIN, "apikey", "add", data_dir, *args], check=True, capture_output=True, text=True)
    key = out.stdout.strip()
    assert key.startswith("nxk_") and len(key) == 47
    return key


def test_api_keys():
    d = tempfile.mkdtemp(prefix="nexus-rest-auth-")
    try:
        # --auth without keys is refused.
        port = free_port()
        r = subprocess.run([NEXUS_BIN, "serve", "--data-dir", d, "--http", f"127.0.0.1:{port}", "--auth"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "nexus apikey add" in r.stderr
        rw = apikey(d, "writer")
        ro = apikey(d, "reader", "--read-only")
        only = apikey(d, "shop-only", "--database", "shop")
        listed = subprocess.run([NEXUS_BIN, "apikey", "list", d], check=True, capture_output=True, text=True).stdout
        assert listed.splitlines() == ["reader\tread\t*", "shop-only\treadWrite\tshop", "writer\treadWrite\t*"]
        assert rw not in open(os.path.join(d, "nexus-apikeys.json")).read()
        s = HttpServer(d, ["--auth"])
        try:
            b = body("k", document={"a": 1})
            error_of(s.action("insertOne", b), 401, "Unauthorized")
            error_of(s.action("insertOne", b, headers={"api-key": "nxk_wrong"}), 401, "Unauthorized")
            error_of(s.session.get(s.url + "/api/v1/databases"), 401, "Unauthorized")
            error_of(s.session.get(s.url + "/metrics"), 401, "Unauthorized")
            assert s.session.get(s.url + "/healthz").status_code == 200
            assert s.session.get(s.url + "/openapi.json").status_code == 200
            assert s.action("insertOne", b, headers={"api-key": rw}).status_code == 201
            assert s.action("insertOne", b, headers={"Authorization": f"Bearer {rw}"}).status_code == 201
            error_of(s.action("insertOne", b, headers={"api-key": ro}), 403, "Forbidden")
            r = s.action("find", body("k"), headers={"api-key": ro})
            assert len(r.json()["documents"]) == 2
            assert s.action("insertOne", b, headers={"api-key": only}).status_code == 201
            other = {"database": "other", "collection": "k"}
            error_of(s.action("find", other, headers={"api-key": only}), 403, "Forbidden")
            dbs = s.session.get(s.url + "/api/v1/databases", headers={"api-key": only}).json()
            assert [x["name"] for x in dbs["databases"]] == ["shop"]
        finally:
            assert s.stop() == 0
        # A removed key no longer works (keys are read at start).
        subprocess.run([NEXUS_BIN, "apikey", "remove", d, "writer"], check=True)
        s = HttpServer(d, ["--auth"])
        try:
            error_of(s.action("find", body("k"), headers={"api-key": rw}), 401, "Unauthorized")
            assert s.action("find", body("k"), headers={"api-key": ro}).status_code == 200
        finally:
            assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_mongo_and_http_share_the_data():
    d = tempfile.mkdtemp(prefix="nexus-rest-both-")
    mport = free_port()
    try:
        s = HttpServer(d, ["--mongo", f"127.0.0.1:{mport}"])
        try:
            import pymongo
            with pymongo.MongoClient(f"mongodb://127.0.0.1:{mport}/", serverSelectionTimeoutMS=5000) as c:
                c.shop.both.insert_one({"_id": 1, "via": "wire"})
                assert s.action("findOne", body("both", filter={"_id": 1})).json() == {
                    "document": {"_id": 1, "via": "wire"}}
                s.action("insertOne", body("both", document={"_id": 2, "via": "http"}))
                assert c.shop.both.find_one({"_id": 2}) == {"_id": 2, "via": "http"}
        finally:
            assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tls(tmp_path):
    # A self-signed certificate for 127.0.0.1, made by the openssl command line.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    s = HttpServer(str(tmp_path / "data"), ["--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        assert "https://" in s.banner
        url = s.url.replace("http://", "https://")
        r = requests.post(url + ACTIONS + "insertOne", json=body("t", document={"a": 1}), verify=str(cert), timeout=10)
        assert r.status_code == 201, r.text
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url + "/healthz", timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(s.url + "/healthz", timeout=10)
        # The server is still up after the refused handshakes.
        assert requests.get(url + "/healthz", verify=str(cert), timeout=10).status_code == 200
    finally:
        assert s.stop() == 0


def test_front_end_options(tmp_path):
    def serve(*args):
        return subprocess.run([NEXUS_BIN, "serve", "--data-dir", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=30)
    r = serve("--http", "0.0.0.0:1")
    assert r.returncode == 1 and "--http 0.0.0.0:1: listening beyond the loopback address needs --auth" in r.stderr
    r = serve("--http", "nowhere")
    assert r.returncode == 1 and "not an IP address and port" in r.stderr


def test_concurrency_limit_counts_open_streams(tmp_path):
    s = HttpServer(str(tmp_path), ["--http-max-concurrent", "1"])
    try:
        for start in range(0, 20000, 5000):
            s.action("insertMany", body("many", documents=[{"_id": i, "pad": "p" * 100} for i in range(start, start + 5000)]))
        url = s.url + "/api/v1/databases/shop/collections/many/find"
        # A stream the client does not read holds the one slot...
        slow = requests.post(url, json={}, stream=True, timeout=30)
        assert slow.status_code == 200
        error_of(requests.post(s.url + ACTIONS + "find", json=body("many", limit=1), timeout=30), 503, "TooManyRequests")
        # ...until it is read to its end.
        assert sum(1 for line in slow.iter_lines() if line) == 20000
        slow.close()
        for _ in range(50):
            r = requests.post(s.url + ACTIONS + "find", json=body("many", limit=1), timeout=30)
            if r.status_code == 200:
                break
            time.sleep(0.1)
        assert r.status_code == 200, r.text
    finally:
        assert s.stop() == 0
