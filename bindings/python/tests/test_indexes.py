"""Secondary indexes from Python: create, list, explain, unique violations, drop."""
import pytest

import nexuslite


@pytest.fixture
def db(tmp_path):
    with nexuslite.open(str(tmp_path / "ix.db")) as d:
        yield d


def test_indexes_round_trip(db):
    c = db.collection("users")
    import pandas as pd

    c.insert_dataframe(pd.DataFrame({"email": ["a@x", "b@x", "c@x"], "age": [30, 40, 50]}))
    assert c.create_index({"email": 1}, unique=True) == "email_1"
    assert c.create_index({"age": -1}, name="by_age") == "by_age"
    names = [i["name"] for i in c.list_indexes()]
    assert names == ["_id_", "email_1", "by_age"]
    plan = c.explain({"email": "b@x"})
    stage = plan["queryPlanner"]["winningPlan"]["inputStage"]
    assert stage["stage"] == "IXSCAN" and stage["indexName"] == "email_1"
    assert plan["executionStats"]["nReturned"] == 1
    assert [d["age"] for d in c.find({"age": {"$gte": 40}}, sort={"age": 1})] == [40, 50]
    with pytest.raises(nexuslite.NexusError) as e:
        c.insert_dataframe(pd.DataFrame({"email": ["a@x"], "age": [1]}))
    assert "email_1" in str(e.value)
    assert c.count() == 3
    c.drop_index("by_age")
    assert [i["name"] for i in c.list_indexes()] == ["_id_", "email_1"]
    with pytest.raises(nexuslite.NexusError):
        c.drop_index("by_age")
