"""The gRPC front end of `nexus serve --grpc` (NEXUS_BIN) driven by a grpcio client whose code
is generated here, at test time, from the committed proto/nexus/v1/nexus.proto (grpc_tools):
every method, server streaming, transactions, the error statuses, API keys, the message
size limit, grpc.health.v1 and server reflection. Documents are BSON (pymongo's bson)."""
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import bson
import grpc
import pytest
from grpc_tools import protoc

from conftest import NEXUS_BIN, free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GENERATED = tempfile.mkdtemp(prefix="nexus-grpc-gen-")


def setup_module():
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT}/proto", f"-I{include}", f"--python_out={GENERATED}",
                      f"--grpc_python_out={GENERATED}", f"{ROOT}/proto/nexus/v1/nexus.proto"])
    assert rc == 0, "grpc_tools.protoc failed on proto/nexus/v1/nexus.proto"
    sys.path.insert(0, GENERATED)
    global pb, rpc
    pb = importlib.import_module("nexus.v1.nexus_pb2")
    rpc = importlib.import_module("nexus.v1.nexus_pb2_grpc")


def teardown_module():
    shutil.rmtree(GENERATED, ignore_errors=True)


class GrpcServer:
    def __init__(self, data_dir, extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [NEXUS_BIN, "serve", "--data-dir", data_dir, "--grpc", f"127.0.0.1:{self.port}", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # One line per front end on start; the gRPC one comes last.
        self.banner = ""
        for _ in range(3):
            self.banner += self.proc.stdout.readline()
            if f"gRPC on 127.0.0.1:{self.port}" in self.banner:
                break
        assert f"gRPC on 127.0.0.1:{self.port}" in self.banner, self.banner + self.proc.stderr.read()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = rpc.NexusStub(self.channel)

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="nexus-grpc-")
    s = GrpcServer(d, ["--http-max-body", "100000"])
    yield s
    assert s.stop() == 0
    shutil.rmtree(d, ignore_errors=True)


def ns(coll, db="shop"):
    return pb.Namespace(database=db, collection=coll)


def code_of(call):
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


def docs(batches):
    return [bson.decode(d) for b in batches for d in b.documents]


def test_insert_find_count(srv):
    s = srv.stub
    r = s.InsertOne(pb.InsertOneRequest(ns=ns("a"), document=bson.encode({"item": "tea", "qty": 2})))
    oid = bson.decode(r.inserted_id)["_id"]
    assert isinstance(oid, bson.ObjectId)
    r = s.InsertMany(pb.InsertManyRequest(ns=ns("a"), documents=[bson.encode({"_id": i, "qty": i}) for i in range(1, 6)]))
    assert bson.decode(r.inserted_ids) == {"ids": [1, 2, 3, 4, 5]} and not r.write_errors
    r = s.FindOne(pb.FindRequest(ns=ns("a"), filter=bson.encode({"_id": oid}), projection=bson.encode({"_id": 0})))
    assert r.HasField("document") and bson.decode(r.document) == {"item": "tea", "qty": 2}
    r = s.FindOne(pb.FindRequest(ns=ns("a"), filter=bson.encode({"qty": 99})))
    assert not r.HasField("document")
    assert s.Count(pb.CountRequest(ns=ns("a"), filter=bson.encode({"qty": {"$gte": 2}}))).count == 5
    assert s.Count(pb.CountRequest(ns=ns("nothing"))).count == 0
    found = docs(s.Find(pb.FindRequest(ns=ns("a"), filter=bson.encode({"_id": {"$type": "int"}}),
                                       sort=bson.encode({"_id": -1}), skip=1, limit=3)))
    assert [d["_id"] for d in found] == [4, 3, 2]
    assert docs(s.Find(pb.FindRequest(ns=ns("nothing")))) == []


def test_find_streams_batches(srv):
    s = srv.stub
    s.InsertMany(pb.InsertManyRequest(ns=ns("big"), documents=[bson.encode({"_id": i}) for i in range(2500)]))
    batches = list(s.Find(pb.FindRequest(ns=ns("big"), sort=bson.encode({"_id": 1}), batch_size=1000)))
    assert [len(b.documents) for b in batches] == [1000, 1000, 500]
    assert [d["_id"] for d in docs(batches)] == list(range(2500))


def test_aggregate(srv):
    s = srv.stub
    s.InsertMany(pb.InsertManyRequest(ns=ns("g"), documents=[bson.encode(d) for d in
                 [{"c": "x", "n": 1}, {"c": "x", "n": 2}, {"c": "y", "n": 5}]]))
    out = docs(s.Aggregate(pb.AggregateRequest(ns=ns("g"), pipeline=[
        bson.encode({"$group": {"_id": "$c", "t": {"$sum": "$n"}}}), bson.encode({"$sort": {"_id": 1}})])))
    assert out == [{"_id": "x", "t": 3}, {"_id": "y", "t": 5}]
    code, _ = code_of(lambda: list(s.Aggregate(pb.AggregateRequest(ns=ns("g"), pipeline=[bson.encode({"$out": "z"})]))))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_update_replace_delete(srv):
    s = srv.stub
    s.InsertMany(pb.InsertManyRequest(ns=ns("u"), documents=[bson.encode({"k": 1, "v": 0}) for _ in range(3)]))
    r = s.UpdateOne(pb.UpdateRequest(ns=ns("u"), filter=bson.encode({"k": 1}), update=bson.encode({"$inc": {"v": 1}})))
    assert (r.matched_count, r.modified_count, r.HasField("upserted_id")) == (1, 1, False)
    r = s.UpdateMany(pb.UpdateRequest(ns=ns("u"), filter=bson.encode({"k": 1}),
                                      update_pipeline=[bson.encode({"$set": {"w": {"$add": ["$v", 10]}}})]))
    assert (r.matched_count, r.modified_count) == (3, 3)
    r = s.UpdateOne(pb.UpdateRequest(ns=ns("u"), filter=bson.encode({"k": 2}), update=bson.encode({"$set": {"v": 7}}), upsert=True))
    assert r.matched_count == 0 and "_id" in bson.decode(r.upserted_id)
    r = s.ReplaceOne(pb.ReplaceRequest(ns=ns("u"), filter=bson.encode({"k": 2}), replacement=bson.encode({"k": 3})))
    assert (r.matched_count, r.modified_count) == (1, 1)
    assert s.DeleteOne(pb.DeleteRequest(ns=ns("u"), filter=bson.encode({"k": 1}))).deleted_count == 1
    assert s.DeleteMany(pb.DeleteRequest(ns=ns("u"))).deleted_count == 3
    code, msg = code_of(lambda: s.UpdateOne(pb.UpdateRequest(ns=ns("u"), filter=bson.encode({}))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "update" in msg


def test_indexes_and_collections(srv):
    s = srv.stub
    s.InsertOne(pb.InsertOneRequest(ns=ns("ix", "other"), document=bson.encode({"e": "a@x"})))
    name = s.CreateIndex(pb.CreateIndexRequest(ns=ns("ix", "other"), keys=bson.encode({"e": 1}),
                                               options=bson.encode({"unique": True}))).name
    names = [bson.decode(i)["name"] for i in s.ListIndexes(ns("ix", "other")).indexes]
    assert names == ["_id_", name]
    code, _ = code_of(lambda: s.InsertOne(pb.InsertOneRequest(ns=ns("ix", "other"), document=bson.encode({"e": "a@x"}))))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    r = s.InsertMany(pb.InsertManyRequest(ns=ns("ix", "other"), unordered=True,
                                          documents=[bson.encode({"e": "a@x"}), bson.encode({"e": "b@x"})]))
    assert [(w.index, w.code) for w in r.write_errors] == [(0, 11000)]
    assert len(bson.decode(r.inserted_ids)["ids"]) == 1
    s.DropIndex(pb.DropIndexRequest(ns=ns("ix", "other"), name=name))
    code, _ = code_of(lambda: s.DropIndex(pb.DropIndexRequest(ns=ns("ix", "other"), name=name)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert list(s.ListCollections(pb.ListCollectionsRequest(database="other")).names) == ["ix"]
    s.DropCollection(ns("ix", "other"))
    assert list(s.ListCollections(pb.ListCollectionsRequest(database="other")).names) == []
    code, _ = code_of(lambda: s.DropCollection(ns("ix", "other")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_transactions(srv):
    s = srv.stub
    sid = s.BeginTransaction(pb.BeginTransactionRequest(database="bank")).session_id
    assert len(sid) == 32
    s.InsertOne(pb.InsertOneRequest(ns=ns("acct", "bank"), document=bson.encode({"_id": 1, "v": 10}), session_id=sid))
    s.UpdateOne(pb.UpdateRequest(ns=ns("acct", "bank"), filter=bson.encode({"_id": 1}),
                                 update=bson.encode({"$inc": {"v": 5}}), session_id=sid))
    inside = s.FindOne(pb.FindRequest(ns=ns("acct", "bank"), filter=bson.encode({"_id": 1}), session_id=sid))
    assert bson.decode(inside.document)["v"] == 15
    # Not visible outside before the commit.
    assert s.Count(pb.CountRequest(ns=ns("acct", "bank"))).count == 0
    code, _ = code_of(lambda: s.Count(pb.CountRequest(ns=ns("acct", "shop"), session_id=sid)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    s.CommitTransaction(pb.TransactionRequest(session_id=sid))
    assert s.Count(pb.CountRequest(ns=ns("acct", "bank"))).count == 1
    code, _ = code_of(lambda: s.CommitTransaction(pb.TransactionRequest(session_id=sid)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # Aborted: nothing stays.
    sid = s.BeginTransaction(pb.BeginTransactionRequest(database="bank")).session_id
    s.InsertOne(pb.InsertOneRequest(ns=ns("acct", "bank"), document=bson.encode({"_id": 2}), session_id=sid))
    s.AbortTransaction(pb.TransactionRequest(session_id=sid))
    assert s.Count(pb.CountRequest(ns=ns("acct", "bank"))).count == 1
    code, _ = code_of(lambda: s.InsertOne(pb.InsertOneRequest(ns=ns("acct", "bank"), document=bson.encode({"_id": 3}), session_id=sid)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def deep_bson(levels):
    """{a: {a: ... {}}} nested `levels` deep, as BSON bytes (built flat, not recursively)."""
    import struct
    out = []
    for k in range(levels, 0, -1):
        out.append(struct.pack("<i", 5 + 8 * k) + b"\x03a\x00")
    return b"".join(out) + b"\x05\x00\x00\x00\x00" + b"\x00" * levels


def test_bad_input(srv):
    s = srv.stub
    code, msg = code_of(lambda: s.Count(pb.CountRequest(ns=ns("a"), filter=b"\x05\x00\x00")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "BSON" in msg
    code, _ = code_of(lambda: s.Count(pb.CountRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: s.Count(pb.CountRequest(ns=ns("a", "bad/name"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: s.InsertOne(pb.InsertOneRequest(ns=ns("a"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: list(s.Find(pb.FindRequest(ns=ns("a"), filter=bson.encode({"$bogus": 1})))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # Nesting far past the limit (a stack-exhaustion attempt): refused, the server stays up.
    code, msg = code_of(lambda: s.Count(pb.CountRequest(ns=ns("a"), filter=deep_bson(10000))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, msg
    # Larger than --http-max-body: refused, and the server stays up.
    code, _ = code_of(lambda: s.InsertOne(pb.InsertOneRequest(ns=ns("a"), document=bson.encode({"s": "x" * 200000}))))
    assert code == grpc.StatusCode.OUT_OF_RANGE
    assert s.Count(pb.CountRequest(ns=ns("a"))).count >= 1


def test_health_and_reflection(srv):
    check = srv.channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
    # HealthCheckResponse{status: SERVING (1)}, for the server and for nexus.v1.Nexus.
    assert check(b"") == b"\x08\x01"
    assert check(b"\x0a\x0enexus.v1.Nexus") == b"\x08\x01"
    reflect = srv.channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    # ServerReflectionRequest{list_services: ""} (field 7).
    answer = b"".join(reflect(iter([b"\x3a\x00"])))
    for name in (b"nexus.v1.Nexus", b"grpc.health.v1.Health", b"grpc.reflection.v1.ServerReflection"):
        assert name in answer


def test_api_keys():
    d = tempfile.mkdtemp(prefix="nexus-grpc-auth-")
    try:
        def key(*args):
            return subprocess.run([NEXUS_BIN, "apikey", "add", d, *args], check=True,
                                  capture_output=True, text=True).stdout.strip()
        rw, ro = key("writer"), key("reader", "--read-only")
        s = GrpcServer(d, ["--auth"])
        try:
            req = pb.InsertOneRequest(ns=ns("k"), document=bson.encode({"a": 1}))
            code, _ = code_of(lambda: s.stub.InsertOne(req))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            code, _ = code_of(lambda: s.stub.InsertOne(req, metadata=[("api-key", "nxk_nope")]))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            s.stub.InsertOne(req, metadata=[("api-key", rw)])
            s.stub.InsertOne(req, metadata=[("authorization", f"Bearer {rw}")])
            code, _ = code_of(lambda: s.stub.InsertOne(req, metadata=[("api-key", ro)]))
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert s.stub.Count(pb.CountRequest(ns=ns("k")), metadata=[("api-key", ro)]).count == 2
            # Health needs no key.
            check = s.channel.unary_unary("/grpc.health.v1.Health/Check",
                                          request_serializer=lambda b: b, response_deserializer=lambda b: b)
            assert check(b"") == b"\x08\x01"
        finally:
            assert s.stop() == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_concurrency_limit_counts_open_streams(tmp_path):
    s = GrpcServer(str(tmp_path), ["--http-max-concurrent", "1"])
    try:
        for start in range(0, 20000, 5000):
            s.stub.InsertMany(pb.InsertManyRequest(ns=ns("many"), documents=[
                bson.encode({"_id": i, "pad": "p" * 200}) for i in range(start, start + 5000)]))
        # A stream the client does not read holds the one slot...
        slow = s.stub.Find(pb.FindRequest(ns=ns("many"), batch_size=100))
        first = next(slow)
        assert len(first.documents) == 100
        code, _ = code_of(lambda: s.stub.Count(pb.CountRequest(ns=ns("many"))))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # ...until it is read to its end.
        assert 100 + sum(len(b.documents) for b in slow) == 20000
        for _ in range(50):
            try:
                assert s.stub.Count(pb.CountRequest(ns=ns("many"))).count == 20000
                break
            except grpc.RpcError:
                time.sleep(0.1)
        else:
            pytest.fail("the slot was not freed after the stream ended")
    finally:
        assert s.stop() == 0


def test_calls_counted_in_the_http_metrics(tmp_path):
    import urllib.request
    http_port = free_port()
    s = GrpcServer(str(tmp_path), ["--http", f"127.0.0.1:{http_port}"])
    try:
        s.stub.InsertOne(pb.InsertOneRequest(ns=ns("m"), document=bson.encode({"a": 1})))
        assert len(docs(s.stub.Find(pb.FindRequest(ns=ns("m"))))) == 1
        code_of(lambda: s.stub.DropCollection(ns("missing")))
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10).read().decode()
        assert 'nexus_grpc_calls_total{method="InsertOne",code="Ok"} 1' in text
        assert 'nexus_grpc_calls_total{method="Find",code="Ok"} 1' in text
        assert 'nexus_grpc_calls_total{method="DropCollection",code="NotFound"} 1' in text
        assert 'nexus_grpc_call_duration_seconds_count{method="InsertOne"} 1' in text
    finally:
        assert s.stop() == 0


def test_tls(tmp_path):
    # A self-signed certificate for 127.0.0.1 (openssl); gRPC clients require ALPN h2.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    s = GrpcServer(str(tmp_path / "data"), ["--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        assert "TLS" in s.banner
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{s.port}", creds) as ch:
            stub = rpc.NexusStub(ch)
            stub.InsertOne(pb.InsertOneRequest(ns=ns("t"), document=bson.encode({"a": 1})), timeout=10)
            assert stub.Count(pb.CountRequest(ns=ns("t")), timeout=10).count == 1
        # Plaintext against the TLS port fails, and the server stays up.
        code, _ = code_of(lambda: s.stub.Count(pb.CountRequest(ns=ns("t")), timeout=5))
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        assert s.stop() == 0
