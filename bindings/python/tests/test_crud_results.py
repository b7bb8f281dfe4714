"""MongoDB-style writes from Python: update_one / update_many / replace_one results,
arrayFilters, insert_many ordered and unordered, bulk_write."""
import pytest

import nexuslite


@pytest.fixture
def db():
    with nexuslite.open(":memory:") as d:
        yield d


def test_update_results_and_array_filters(db):
    c = db.collection("s")
    assert c.insert_many([{"_id": 1, "grades": [95, 102, 90]}, {"_id": 2, "grades": [98, 100]}])["insertedCount"] == 2
    r = c.update_many({}, {"$set": {"grades.$[g]": 100}}, array_filters=[{"g": {"$gte": 100}}])
    assert r == {"matchedCount": 2, "modifiedCount": 1, "upsertedCount": 0}
    assert c.count({"grades": [95, 100, 90]}) == 1
    r = c.update_one({"_id": "k"}, {"$inc": {"n": 1}}, upsert=True)
    assert r == {"matchedCount": 0, "modifiedCount": 0, "upsertedCount": 1, "upsertedId": "k"}
    r = c.replace_one({"_id": {"$type": "number"}}, {"top": True}, sort={"_id": -1})
    assert r["matchedCount"] == 1 and c.count({"_id": 2, "top": True}) == 1
    with pytest.raises(nexuslite.NexusError) as e:
        c.update_one({"_id": 1}, {"x": 22})
    assert e.value.code == 3 and "update document requires atomic operators" in e.value.message
    with pytest.raises(nexuslite.NexusError) as e:
        c.replace_one({"_id": 1}, {"$set": {"x": 1}})
    assert "replacement document must not contain atomic operators" in e.value.message
    with pytest.raises(nexuslite.NexusError) as e:
        c.update_one({}, {"$set": {"grades.$[g]": 0}}, array_filters=[{"g": 1}, {"h": 2}])
    assert "The array filter for identifier 'h' was not used in the update" in e.value.message


def test_insert_many_unordered_and_bulk_write(db):
    c = db.collection("b")
    c.insert_many([{"_id": 1}])
    with pytest.raises(nexuslite.BulkWriteError) as e:
        c.insert_many([{"_id": 2}, {"_id": 1}, {"_id": 3}], ordered=False)
    assert e.value.code == 5
    assert e.value.result["insertedIds"] == {"0": 2, "2": 3}
    assert [(w["index"], w["code"]) for w in e.value.result["writeErrors"]] == [(1, 11000)]
    with pytest.raises(nexuslite.BulkWriteError) as e:
        c.insert_many([{"_id": 4}, {"_id": 1}, {"_id": 5}])
    assert e.value.result["insertedCount"] == 1
    assert c.count() == 4  # 1, 2, 3, and 4 from the ordered batch before its failure
    r = c.bulk_write([
        {"insertOne": {"document": {"_id": 9}}},
        {"updateOne": {"filter": {"_id": 9}, "update": {"$set": {"x": 1}}}},
        {"updateOne": {"filter": {"_id": 10}, "update": {"$set": {"x": 2}}, "upsert": True}},
        {"deleteMany": {"filter": {"_id": {"$lt": 3}}}},
    ])
    assert r["insertedCount"] == 1 and r["matchedCount"] == 1 and r["modifiedCount"] == 1
    assert r["deletedCount"] == 2 and r["upsertedIds"] == {"2": 10} and r["writeErrors"] == []
    assert c.count() == 4
