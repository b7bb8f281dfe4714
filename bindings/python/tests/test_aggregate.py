"""The aggregation pipeline from Python: results, options, $out, and typed errors."""
import pandas as pd
import pytest

import nexuslite


@pytest.fixture
def db(tmp_path):
    with nexuslite.open(str(tmp_path / "agg.db")) as d:
        yield d


def test_aggregate_groups_and_sorts(db):
    c = db.collection("sales")
    c.insert_dataframe(pd.DataFrame({"item": ["abc", "xyz", "abc"], "q": [2, 10, 5]}))
    got = list(c.aggregate([{"$group": {"_id": "$item", "total": {"$sum": "$q"}}}, {"$sort": {"total": -1}}]))
    assert got == [{"_id": "xyz", "total": 10}, {"_id": "abc", "total": 7}]
    got = list(c.aggregate([{"$match": {"$expr": {"$gt": ["$q", "$$min"]}}}, {"$count": "n"}], let={"min": 3}))
    assert got == [{"n": 2}]
    assert list(c.aggregate([{"$match": {"item": "abc"}}, {"$out": "abc_sales"}])) == []
    assert db.collection("abc_sales").count() == 2


def test_aggregate_errors(db):
    c = db.collection("sales")
    c.insert_dataframe(pd.DataFrame({"item": ["abc"], "q": [2]}))
    with pytest.raises(nexuslite.NexusError) as e:
        list(c.aggregate([{"$densify": {}}]))
    assert "$densify" in str(e.value)
    with pytest.raises(nexuslite.NexusError) as e:
        list(c.aggregate([{"$project": {"r": {"$divide": ["$q", 0]}}}]))
    assert "can't $divide by zero" in str(e.value)
    with pytest.raises(nexuslite.NexusError):
        list(c.aggregate([], bogus=1))
