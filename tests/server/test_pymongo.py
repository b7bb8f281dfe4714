"""pymongo against `nexus serve`: the handshake, CRUD, server-side cursors, indexes and
duplicate keys, counts, aggregation, find-and-modify, bulk writes, MongoDB's error codes,
and what survives a restart."""
import json
import os
import signal
import socket
import struct
import subprocess

import bson
import pymongo
import pytest
from pymongo import monitoring
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from conftest import NEXUS_BIN, Server


def test_hello_reports_the_limits_drivers_read(client):
    hello = client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["maxBsonObjectSize"] == 16 * 1024 * 1024
    assert hello["maxMessageSizeBytes"] == 48_000_000
    assert hello["maxWriteBatchSize"] == 100_000
    assert hello["maxWireVersion"] >= 17
    assert hello["logicalSessionTimeoutMinutes"] == 30
    assert client.admin.command("ping")["ok"] == 1.0
    info = client.admin.command("buildInfo")
    assert info["versionArray"][0] >= 6
    assert client.admin.command("isMaster")["ismaster"] is True
    assert "system" in client.admin.command("hostInfo")
    assert client.admin.command("connectionStatus")["ok"] == 1.0


def test_crud_round_trip(db):
    c = db.people
    r = c.insert_one({"name": "ada", "age": 36, "tags": ["x", "y"], "when": bson.datetime.datetime(2020, 1, 2)})
    assert isinstance(r.inserted_id, bson.ObjectId)
    c.insert_many([{"name": "alan", "age": 41}, {"name": "grace", "age": 85}, {"_id": 7, "name": "linus", "age": 54}])
    got = c.find_one({"name": "ada"})
    assert got["_id"] == r.inserted_id and got["tags"] == ["x", "y"]
    assert got["when"] == bson.datetime.datetime(2020, 1, 2)
    assert c.find_one({"_id": 7})["name"] == "linus"
    names = [d["name"] for d in c.find({"age": {"$gt": 40}}, {"name": 1, "_id": 0}).sort("age", -1)]
    assert names == ["grace", "linus", "alan"]
    assert [d["name"] for d in c.find().sort("age", 1).skip(1).limit(2)] == ["alan", "linus"]
    assert list(c.find({}, {"_id": 0, "name": 1}).sort("name", 1).limit(1)) == [{"name": "ada"}]

    u = c.update_one({"name": "ada"}, {"$set": {"age": 37}, "$push": {"tags": "z"}})
    assert (u.matched_count, u.modified_count) == (1, 1)
    assert c.find_one({"name": "ada"})["tags"] == ["x", "y", "z"]
    m = c.update_many({"age": {"$gt": 40}}, {"$inc": {"age": 1}})
    assert (m.matched_count, m.modified_count) == (3, 3)
    none = c.update_one({"name": "nobody"}, {"$set": {"x": 1}})
    assert (none.matched_count, none.modified_count, none.upserted_id) == (0, 0, None)
    up = c.update_one({"name": "new"}, {"$set": {"age": 1}}, upsert=True)
    assert up.upserted_id is not None and up.matched_count == 0
    assert c.find_one({"_id": up.upserted_id})["name"] == "new"
    rep = c.replace_one({"_id": 7}, {"name": "torvalds"})
    assert rep.modified_count == 1
    assert c.find_one({"_id": 7}) == {"_id": 7, "name": "torvalds"}
    # Array filters.
    c.insert_one({"_id": "s", "scores": [50, 90, 120]})
    c.update_one({"_id": "s"}, {"$set": {"scores.$[big]": 100}}, array_filters=[{"big": {"$gt": 95}}])
    assert c.find_one({"_id": "s"})["scores"] == [50, 90, 100]
    # Pipeline-style update.
    c.update_one({"_id": "s"}, [{"$set": {"n": {"$size": "$scores"}}}])
    assert c.find_one({"_id": "s"})["n"] == 3

    assert c.delete_one({"name": "alan"}).deleted_count == 1
    assert c.delete_many({"age": {"$gte": 50}}).deleted_count == 1
    assert c.delete_many({"nothing": 1}).deleted_count == 0
    assert c.count_documents({}) == 4


def test_reads_and_writes_of_missing_collections(server, db):
    assert db.nothing.find_one({}) is None
    assert db.nothing.count_documents({}) == 0
    assert db.nothing.delete_many({}).deleted_count == 0
    assert db.nothing.update_many({}, {"$set": {"a": 1}}).matched_count == 0
    assert db.nothing.distinct("a") == []
    assert "nothing" not in db.list_collection_names()
    # Neither reads nor deletes create a database file.
    assert db.client["never_written"].c.delete_many({}).deleted_count == 0
    assert db.client["never_written"].c.find_one() is None
    assert "never_written" not in db.client.list_database_names()
    assert not os.path.exists(os.path.join(server.data_dir, "never_written.db"))


class Commands(monitoring.CommandListener):
    def __init__(self):
        self.names = []

    def started(self, event):
        self.names.append(event.command_name)

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_cursor_over_ten_thousand_documents_in_batches(server, db):
    db.big.insert_many([{"i": i, "pad": "x" * 50} for i in range(10_000)])
    listener = Commands()
    c = server.client(event_listeners=[listener])
    try:
        seen = [d["i"] for d in c[db.name].big.find({}, batch_size=700).sort("i", 1)]
        assert seen == list(range(10_000))
        # 1 find + ceil((10000 - 700) / 700) getMores.
        assert listener.names.count("find") == 1
        assert listener.names.count("getMore") == 14
        # The default batch sizes (101 first, then by bytes) give the same documents.
        assert sum(1 for _ in c[db.name].big.find({"i": {"$lt": 5000}})) == 5000
        # A cursor closed early is killed on the server: its id no longer answers.
        cur = c[db.name].big.find({}, batch_size=10)
        next(cur)
        cursor_id = cur.cursor_id
        assert cursor_id
        cur.close()
        assert "killCursors" in listener.names
        with pytest.raises(OperationFailure) as e:
            c[db.name].command("getMore", bson.Int64(cursor_id), collection="big")
        assert e.value.code == 43
        # limit and singleBatch: no cursor left open.
        assert len(list(c[db.name].big.find({}).limit(150))) == 150
        r = c[db.name].command("find", "big", batchSize=5, singleBatch=True)
        assert r["cursor"]["id"] == 0 and len(r["cursor"]["firstBatch"]) == 5
    finally:
        c.close()


def test_indexes_and_duplicate_keys(db):
    c = db.users
    c.insert_many([{"email": "a@x"}, {"email": "b@x"}])
    assert c.create_index("email", unique=True) == "email_1"
    assert c.create_index([("age", pymongo.DESCENDING), ("name", 1)]) == "age_-1_name_1"
    names = [i["name"] for i in c.list_indexes()]
    assert names == ["_id_", "email_1", "age_-1_name_1"]
    assert c.index_information()["email_1"]["unique"] is True
    with pytest.raises(DuplicateKeyError) as e:
        c.insert_one({"email": "a@x"})
    assert e.value.code == 11000
    with pytest.raises(DuplicateKeyError):
        c.insert_one({"_id": c.find_one({"email": "b@x"})["_id"]})
    # Ordered: stops at the first duplicate; unordered: reports each, inserts the rest.
    with pytest.raises(BulkWriteError) as e:
        c.insert_many([{"email": "c@x"}, {"email": "a@x"}, {"email": "d@x"}])
    assert e.value.details["nInserted"] == 1
    assert [w["code"] for w in e.value.details["writeErrors"]] == [11000]
    assert e.value.details["writeErrors"][0]["index"] == 1
    with pytest.raises(BulkWriteError) as e:
        c.insert_many([{"email": "a@x"}, {"email": "e@x"}, {"email": "b@x"}], ordered=False)
    assert e.value.details["nInserted"] == 1
    assert [w["index"] for w in e.value.details["writeErrors"]] == [0, 2]
    assert c.count_documents({}) == 4
    # The index serves the query (explain names it).
    plan = c.find({"email": "a@x"}).explain()
    assert "email_1" in str(plan["queryPlanner"]["winningPlan"])
    c.drop_index("age_-1_name_1")
    c.drop_index([("email", 1)])
    assert [i["name"] for i in c.list_indexes()] == ["_id_"]
    with pytest.raises(OperationFailure) as e:
        c.drop_index("nope_1")
    assert e.value.code == 27
    with pytest.raises(OperationFailure) as e:
        db.command("listIndexes", "missing")
    assert e.value.code == 26


def test_counts_distinct_and_aggregate(db):
    c = db.sales
    c.insert_many([{"item": it, "qty": q, "city": city} for it, q, city in [
        ("a", 5, "paris"), ("b", 2, "rome"), ("a", 7, "rome"), ("c", 1, "paris"), ("a", 3, "oslo")]])
    assert c.count_documents({}) == 5
    assert c.count_documents({"item": "a"}) == 3
    assert c.count_documents({}, skip=1, limit=2) == 2
    assert c.estimated_document_count() == 5
    assert sorted(c.distinct("city")) == ["oslo", "paris", "rome"]
    assert sorted(c.distinct("item", {"qty": {"$gt": 2}})) == ["a"]
    out = list(c.aggregate([
        {"$match": {"qty": {"$gte": 2}}},
        {"$group": {"_id": "$item", "total": {"$sum": "$qty"}, "n": {"$sum": 1}}},
        {"$sort": {"total": -1}},
    ]))
    assert out == [{"_id": "a", "total": 15, "n": 3}, {"_id": "b", "total": 2, "n": 1}]
    # A pipeline result larger than one batch comes through getMore.
    c.insert_many([{"item": "z", "qty": i} for i in range(500)])
    assert len(list(c.aggregate([{"$match": {"item": "z"}}], batchSize=50))) == 500
    # $out writes a collection.
    c.aggregate([{"$match": {"city": "rome"}}, {"$out": "rome_sales"}])
    assert db.rome_sales.count_documents({}) == 2


def test_find_one_and_modify(db):
    c = db.counters
    c.insert_many([{"_id": "a", "n": 1}, {"_id": "b", "n": 5}])
    before = c.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}})
    assert before == {"_id": "a", "n": 1}
    after = c.find_one_and_update({"_id": "a"}, {"$inc": {"n": 1}}, return_document=pymongo.ReturnDocument.AFTER)
    assert after == {"_id": "a", "n": 3}
    assert c.find_one_and_update({"_id": "zz"}, {"$set": {"n": 0}}) is None
    up = c.find_one_and_update({"_id": "c"}, {"$set": {"n": 9}}, upsert=True, return_document=pymongo.ReturnDocument.AFTER)
    assert up == {"_id": "c", "n": 9}
    top = c.find_one_and_update({}, {"$set": {"top": True}}, sort=[("n", -1)], projection={"_id": 1},
                                return_document=pymongo.ReturnDocument.AFTER)
    assert top == {"_id": "c"}
    rep = c.find_one_and_replace({"_id": "b"}, {"n": 50}, return_document=pymongo.ReturnDocument.AFTER)
    assert rep == {"_id": "b", "n": 50}
    gone = c.find_one_and_delete({"n": {"$gt": 10}})
    assert gone == {"_id": "b", "n": 50}
    assert c.find_one_and_delete({"_id": "b"}) is None
    assert sorted(d["_id"] for d in c.find()) == ["a", "c"]


def test_bulk_write(db):
    c = db.bulk
    c.insert_one({"_id": 1, "v": 1})
    r = c.bulk_write([
        pymongo.InsertOne({"_id": 2, "v": 2}),
        pymongo.UpdateOne({"_id": 1}, {"$set": {"v": 10}}),
        pymongo.UpdateMany({}, {"$inc": {"w": 1}}),
        pymongo.ReplaceOne({"_id": 2}, {"v": 20}),
        pymongo.UpdateOne({"_id": 3}, {"$set": {"v": 3}}, upsert=True),
        pymongo.DeleteOne({"_id": 1}),
    ])
    assert r.inserted_count == 1
    assert r.matched_count == 4 and r.modified_count == 4
    assert r.upserted_count == 1 and r.upserted_ids == {4: 3}
    assert r.deleted_count == 1
    assert sorted((d["_id"], d["v"]) for d in c.find()) == [(2, 20), (3, 3)]
    with pytest.raises(BulkWriteError) as e:
        c.bulk_write([pymongo.InsertOne({"_id": 2}), pymongo.InsertOne({"_id": 9})], ordered=False)
    assert e.value.details["nInserted"] == 1
    assert e.value.details["writeErrors"][0]["code"] == 11000


def test_collections_and_databases(client, db):
    db.create_collection("one")
    with pytest.raises(OperationFailure) as e:
        db.command("create", "one")
    assert e.value.code == 48
    db.two.insert_one({"a": 1})
    assert db.list_collection_names() == ["one", "two"]
    assert db.list_collection_names(filter={"name": "two"}) == ["two"]
    assert db.name in client.list_database_names()
    db.two.rename("three")
    assert sorted(db.list_collection_names()) == ["one", "three"]
    assert db.three.find_one({}, {"_id": 0}) == {"a": 1}
    stats = db.command("collStats", "three")
    assert stats["count"] == 1 and stats["nindexes"] == 1
    assert db.command("dbStats")["collections"] == 2
    cs = list(db.three.aggregate([{"$collStats": {"count": {}, "storageStats": {}}}]))
    assert cs[0]["count"] == 1 and cs[0]["storageStats"]["nindexes"] == 1
    assert cs[0]["ns"] == f"{db.name}.three"
    assert list(db.three.aggregate([{"$collStats": {"count": {}}}, {"$project": {"n": "$count", "_id": 0}}])) == [{"n": 1}]
    db.drop_collection("one")
    db.drop_collection("never-existed")
    assert db.list_collection_names() == ["three"]
    client.drop_database(db.name)
    assert db.name not in client.list_database_names()
    assert db.list_collection_names() == []


def test_mongodb_error_codes(client, db):
    with pytest.raises(OperationFailure) as e:
        db.command("noSuchCommand")
    assert (e.value.code, e.value.details["codeName"]) == (59, "CommandNotFound")
    with pytest.raises(OperationFailure) as e:
        db.c.find_one({"a": {"$bogus": 1}})
    assert e.value.code in (2, 9)
    with pytest.raises(OperationFailure) as e:
        client["x" * 70].c.insert_one({})
    assert e.value.code == 73
    with pytest.raises(OperationFailure) as e:
        db.command("renameCollection", f"{db.name}.nope", to=f"{db.name}.other")
    # renameCollection runs on admin in MongoDB; here on any database.
    assert e.value.code == 26


def raw_message(op, body):
    header = struct.pack("<iiii", 16 + len(body), 1, 0, op)
    return header + body


def test_malformed_messages_close_only_their_connection(server, client):
    cases = [
        b"\xff\xff\xff\x7f" + b"\x00" * 12,  # a length past the limit
        b"\x03\x00\x00\x00",  # shorter than a header
        raw_message(2013, b"\x00\x00\x00\x00\x00" + b"\x50\x00\x00\x00\x00"),  # BSON length past the end
        raw_message(9999, b""),  # unknown opcode
        raw_message(2013, b"\x00\x00\x00\x00\x07"),  # unknown section kind
    ]
    # A document nested 5,000 levels deep.
    deep = b"\x00"
    for _ in range(5000):
        inner = deep if deep != b"\x00" else b"\x05\x00\x00\x00\x00"
        deep = struct.pack("<i", 4 + 3 + len(inner) + 1) + b"\x03a\x00" + inner + b"\x00"
    cases.append(raw_message(2013, b"\x00\x00\x00\x00\x00" + deep))
    for payload in cases:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            # The server may close before all is sent or read: each is the expected end.
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                got = s.recv(1024)
            except OSError:
                got = b""
            assert got == b"", payload[:20]  # closed, no reply
    # A truncated message: the peer hangs up halfway.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(struct.pack("<i", 1000) + b"\x00" * 100)
    assert client.admin.command("ping")["ok"] == 1.0


def test_unacknowledged_writes(client, db):
    c = db.get_collection("fire", write_concern=pymongo.WriteConcern(w=0))
    c.insert_one({"_id": 1})
    c.insert_one({"_id": 2})
    # The server answers nothing to moreToCome; the next acknowledged command sees them.
    assert db.fire.count_documents({}) == 2


def test_transactions_with_sessions(server, client, db):
    coll = db.accounts
    coll.insert_many([{"_id": "a", "bal": 100}, {"_id": "b", "bal": 0}])
    other = server.client()
    seen_outside = []

    def transfer(s):
        coll.update_one({"_id": "a"}, {"$inc": {"bal": -30}}, session=s)
        coll.update_one({"_id": "b"}, {"$inc": {"bal": 30}}, session=s)
        # The transaction sees its own writes; another client sees the last commit.
        assert coll.find_one({"_id": "b"}, session=s)["bal"] == 30
        seen_outside.append(other[db.name].accounts.find_one({"_id": "b"})["bal"])
        return "done"

    with client.start_session() as s:
        assert s.with_transaction(transfer) == "done"
    assert seen_outside == [0]
    assert {d["_id"]: d["bal"] for d in coll.find()} == {"a": 70, "b": 30}

    # Aborted explicitly, or by an exception in the callback: nothing stays.
    with client.start_session() as s:
        s.start_transaction()
        coll.insert_one({"_id": "c"}, session=s)
        assert coll.count_documents({}, session=s) == 3
        s.abort_transaction()
    with client.start_session() as s:
        with pytest.raises(ZeroDivisionError):
            s.with_transaction(lambda s: (coll.insert_one({"_id": "d"}, session=s), 1 / 0))
    assert sorted(d["_id"] for d in coll.find()) == ["a", "b"]

    # A duplicate inside a transaction fails that write; the transaction can still abort.
    with client.start_session() as s:
        s.start_transaction()
        with pytest.raises(DuplicateKeyError):
            coll.insert_one({"_id": "a"}, session=s)
        s.abort_transaction()

    # A commit of a transaction the server no longer has: NoSuchTransaction, labelled
    # transient so with_transaction would retry it.
    with client.start_session() as s:
        with pytest.raises(OperationFailure) as e:
            client.admin.command("commitTransaction", session=s, autocommit=False, txnNumber=bson.Int64(99))
        assert e.value.code == 251
        assert "TransientTransactionError" in e.value.details.get("errorLabels", [])
    # Writes outside transactions go on.
    coll.insert_one({"_id": "e"})
    assert coll.count_documents({}) == 3
    other.close()


def test_data_survives_a_restart(tmp_path):
    s = Server(str(tmp_path))
    c = s.client()
    c.app.things.insert_many([{"_id": i} for i in range(100)])
    c.app.things.create_index("x")
    c.close()
    assert s.stop(signal.SIGTERM) == 0
    assert (tmp_path / "app.db").exists()
    s = Server(str(tmp_path))
    c = s.client()
    try:
        assert c.app.things.count_documents({}) == 100
        assert "x_1" in c.app.things.index_information()
    finally:
        c.close()
        assert s.stop(signal.SIGINT) == 0


def nexus(*args, stdin=""):
    return subprocess.run([NEXUS_BIN, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_users_and_scram_sha_256_authentication(tmp_path):
    d = str(tmp_path)
    assert nexus("user", "add", d, "ada", stdin="s3cret\n").returncode == 0
    assert nexus("user", "add", d, "bob", stdin="pw-of-bob\n").returncode == 0
    assert nexus("user", "list", d).stdout.split() == ["ada", "bob"]
    # Credentials as MongoDB keeps them, never the password; the file is its owner's only.
    users = json.loads((tmp_path / "nexus-users.json").read_text())["users"]
    assert {u["mechanism"] for u in users} == {"SCRAM-SHA-256"}
    assert users[0]["iterationCount"] == 15000 and "s3cret" not in json.dumps(users)
    assert os.stat(tmp_path / "nexus-users.json").st_mode & 0o077 == 0
    assert nexus("user", "remove", d, "bob").returncode == 0
    assert nexus("user", "list", d).stdout.split() == ["ada"]
    assert nexus("user", "remove", d, "bob").returncode == 1

    s = Server(d, extra=["--auth"])
    try:
        good = s.client(username="ada", password="s3cret")
        good.app.c.insert_one({"_id": 1})
        assert good.app.c.find_one() == {"_id": 1}
        status = good.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [{"user": "ada", "db": "admin"}]
        good.close()
        for user, password in [("ada", "wrong"), ("nobody", "s3cret")]:
            bad = s.client(username=user, password=password)
            with pytest.raises(OperationFailure) as e:
                bad.app.c.find_one()
            assert e.value.code == 18
            bad.close()
        anonymous = s.client()
        assert anonymous.admin.command("ping")["ok"] == 1.0
        with pytest.raises(OperationFailure) as e:
            anonymous.app.c.find_one()
        assert (e.value.code, e.value.details["codeName"]) == (13, "Unauthorized")
        anonymous.close()
    finally:
        assert s.stop() == 0


def test_refused_configurations(tmp_path):
    # Beyond loopback without --auth; --auth without users.
    r = nexus("serve", "--data-dir", str(tmp_path), "--mongo", "0.0.0.0:0")
    assert r.returncode == 1 and "--auth" in r.stderr
    r = nexus("serve", "--data-dir", str(tmp_path), "--auth", "--mongo", "127.0.0.1:0")
    assert r.returncode == 1 and "nexus user add" in r.stderr
    r = nexus("user", "add", str(tmp_path), "x", stdin="\n")
    assert r.returncode == 1 and "empty" in r.stderr


def test_tls(tmp_path):
    # A self-signed certificate for 127.0.0.1, made by the openssl command line.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    d = str(tmp_path / "data")
    assert nexus("user", "add", d, "ada", stdin="s3cret\n").returncode == 0
    s = Server(d, extra=["--auth", "--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        assert "tls=true" in s.banner
        c = s.client(tls=True, tlsCAFile=str(cert), username="ada", password="s3cret")
        c.app.c.insert_many([{"i": i} for i in range(1000)])
        assert sum(1 for _ in c.app.c.find({}, batch_size=100)) == 1000
        c.close()
        # Without TLS, or trusting another CA: no connection.
        plain = s.client(serverSelectionTimeoutMS=1000)
        with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
            plain.admin.command("ping")
        plain.close()
        untrusted = s.client(tls=True, serverSelectionTimeoutMS=1000)
        with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
            untrusted.admin.command("ping")
        untrusted.close()
    finally:
        assert s.stop() == 0
    r = nexus("serve", "--data-dir", d, "--tls-cert", str(key), "--tls-key", str(key), "--mongo", "127.0.0.1:0")
    assert r.returncode == 1 and "--tls-cert" in r.stderr
