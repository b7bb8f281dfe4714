"""insert_dataframe / find_dataframe keep values and types: ints (64-bit too), floats,
unicode strings, booleans, datetimes, missing values; filters and options apply."""
import decimal

import pandas as pd
import pytest

import nexuslite


@pytest.fixture
def db(tmp_path):
    with nexuslite.open(str(tmp_path / "df.db")) as d:
        yield d


def frame():
    return pd.DataFrame(
        {
            "name": ["ada", "Zoë", "日本", "🚀 rocket"],
            "age": [36, 41, 85, 7],
            "big": [2**62, -(2**53) - 1, 5, 0],
            "score": [1.5, 0.1, -2.25, 1e300],
            "active": [True, False, True, False],
            "when": pd.to_datetime(
                ["2024-01-02T03:04:05.123", "1999-12-31T00:00:00.000", "1970-01-01T00:00:00.000", "2100-06-30T12:00:00.000"]
            ),
        }
    )


def test_round_trip_keeps_values_and_types(db):
    df = frame()
    people = db.collection("people")
    assert people.insert_dataframe(df, batch_size=3) == 4
    assert people.count() == 4
    back = people.find_dataframe(sort={"age": 1}).drop(columns=["_id"])
    want = df.sort_values("age").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, want)
    assert str(back["when"].dtype) == "datetime64[ns]"


def test_filters_missing_values_and_decimals(db):
    df = pd.DataFrame({"k": [1, 2, 3], "x": [1.0, float("nan"), 3.0], "d": [decimal.Decimal("1.10"), None, None]})
    c = db.collection("c")
    c.insert_dataframe(df)
    assert c.count({"x": None}) == 1
    got = c.find_dataframe({"k": {"$gte": 2}}, sort={"k": -1}, projection={"_id": 0, "k": 1})
    assert list(got.columns) == ["k"]
    assert got["k"].tolist() == [3, 2]
    first = next(c.find({"k": 1}))
    assert first["d"] == decimal.Decimal("1.10")


def test_errors_raise_with_the_message(db):
    with pytest.raises(nexuslite.NexusError) as e:
        db.collection("c").find_dataframe({"a": {"$bogus": 1}})
    assert e.value.code == 4 and "bogus" in e.value.message
