"""Encryption at rest through the binding: the encryption_key open option, add_key, remove_key."""
import pytest

import nexuslite

MARKER = "py7MARKERqz"


def _code(fn):
    with pytest.raises(nexuslite.NexusError) as e:
        fn()
    return e.value.code


def test_encryption_at_rest(tmp_path):
    priv_a, pub_a = nexuslite.keygen()
    priv_b, pub_b = nexuslite.keygen()
    path = tmp_path / "enc.db"
    with nexuslite.open(str(path), {"storage": "wasp"}, encryption_key=priv_a) as db:
        coll = db.collection("c_" + MARKER)
        coll.insert_many([{"_id": i, "note": "secret " + MARKER, MARKER: i} for i in range(100)])
        assert coll.count() == 100
        # Every connection of the process shows a key of its own.
        assert _code(lambda: nexuslite.open(str(path))) == nexuslite.NEXUS_CRYPTO
    for f in (path, tmp_path / "enc.wasp"):
        if f.exists():
            assert MARKER.encode() not in f.read_bytes(), f
    assert path.stat().st_size > 4096

    with pytest.raises(nexuslite.NexusError) as e:
        nexuslite.open(str(path))
    assert e.value.code == nexuslite.NEXUS_CRYPTO and "encrypted" in str(e.value)
    assert _code(lambda: nexuslite.open(str(path), encryption_key=priv_b)) == nexuslite.NEXUS_CRYPTO
    assert _code(lambda: nexuslite.open(str(path), encryption_key=pub_a)) == nexuslite.NEXUS_INVALID_ARGUMENT

    db = nexuslite.open(str(path), '{"sync": "full"}', encryption_key=priv_a)
    coll = db.collection("c_" + MARKER)
    assert coll.count() == 100
    assert coll.count({MARKER: {"$gte": 90}}) == 10
    with pytest.raises(nexuslite.NexusError) as e:
        db.remove_key(pub_a)
    assert e.value.code == nexuslite.NEXUS_INVALID_ARGUMENT and "last key" in str(e.value)
    assert _code(lambda: db.remove_key(pub_b)) == nexuslite.NEXUS_INVALID_ARGUMENT
    assert _code(lambda: db.add_key("not a key")) == nexuslite.NEXUS_INVALID_ARGUMENT
    db.add_key(pub_b)
    db.add_key(pub_b)  # again: nothing changes
    with nexuslite.open(str(path), encryption_key=priv_b) as with_b:
        assert with_b.collection("c_" + MARKER).count() == 100
    db.remove_key(pub_a)
    db.rekey()  # a new data key; B still opens it
    assert coll.count() == 100
    db.backup_with(str(tmp_path / "plain-copy.db"), decrypt=True)
    db.backup_with(str(tmp_path / "a-copy.db"), encrypt_to=[pub_a])
    assert _code(lambda: db.backup_with(str(tmp_path / "x.db"), encrypt_to=[pub_a], decrypt=True)) \
        == nexuslite.NEXUS_INVALID_ARGUMENT
    db.close()
    with nexuslite.open(str(tmp_path / "plain-copy.db")) as c:
        assert c.collection("c_" + MARKER).count() == 100
    with nexuslite.open(str(tmp_path / "a-copy.db"), encryption_key=priv_a) as c:
        assert c.collection("c_" + MARKER).count() == 100
    assert _code(lambda: db.add_key(pub_a)) == nexuslite.NEXUS_INVALID_ARGUMENT  # closed
    assert _code(lambda: nexuslite.open(str(path), encryption_key=priv_a)) == nexuslite.NEXUS_CRYPTO
    with nexuslite.open(str(path), encryption_key=priv_b) as db:
        assert db.collection("c_" + MARKER).count() == 100


def test_plain_and_memory_databases_refuse_keys(tmp_path):
    priv, pub = nexuslite.keygen()
    plain = str(tmp_path / "plain.db")
    with nexuslite.open(plain) as db:
        assert _code(lambda: db.add_key(pub)) == nexuslite.NEXUS_INVALID_ARGUMENT
        assert _code(lambda: db.remove_key(pub)) == nexuslite.NEXUS_INVALID_ARGUMENT
        assert _code(lambda: db.rekey()) == nexuslite.NEXUS_INVALID_ARGUMENT
    assert _code(lambda: nexuslite.open(plain, encryption_key=priv)) == nexuslite.NEXUS_INVALID_ARGUMENT
    assert _code(lambda: nexuslite.open(":memory:", encryption_key=priv)) == nexuslite.NEXUS_UNSUPPORTED
    memlog = str(tmp_path / "m.db")
    assert (
        _code(lambda: nexuslite.open(memlog, {"storage": "memlog"}, encryption_key=priv))
        == nexuslite.NEXUS_UNSUPPORTED
    )
