"""NDJSON that pandas reads (pd.read_json(lines=True)) and writes
(df.to_json(orient="records", lines=True)), through nexus_export / nexus_import."""
import pandas as pd

import nexuslite


def test_pandas_reads_our_ndjson(tmp_path):
    with nexuslite.open(str(tmp_path / "a.db")) as db:
        c = db.collection("c")
        c.insert_dataframe(pd.DataFrame({"_id": [1, 2, 3], "name": ["ada", "Zoë", "x,y"], "v": [1.5, None, -3.0], "ok": [True, False, True]}))
        out = tmp_path / "out.ndjson"
        report = c.export_file(str(out))
        assert report["exported"] == 3
        df = pd.read_json(out, lines=True)
        assert df["_id"].tolist() == [1, 2, 3]
        assert df["name"].tolist() == ["ada", "Zoë", "x,y"]
        assert df["v"].tolist()[0] == 1.5 and pd.isna(df["v"].tolist()[1])
        assert df["ok"].tolist() == [True, False, True]


def test_we_import_what_pandas_writes(tmp_path):
    df = pd.DataFrame(
        {"id": range(500), "label": [f"row {i} ü" for i in range(500)], "x": [i / 7 for i in range(500)], "flag": [i % 2 == 0 for i in range(500)]}
    )
    src = tmp_path / "pandas.ndjson"
    df.to_json(src, orient="records", lines=True)
    with nexuslite.open(str(tmp_path / "b.db")) as db:
        c = db.collection("p")
        report = c.import_file(str(src), batch_size=64)
        assert (report["read"], report["imported"], report["failed"], report["format"]) == (500, 500, 0, "ndjson")
        back = c.find_dataframe(sort={"id": 1}).drop(columns=["_id"])
        pd.testing.assert_frame_equal(back, df, check_dtype=False)
        # And the round trip through our export reads back equal in pandas.
        out = tmp_path / "again.ndjson"
        c.export_file(str(out), filter={"flag": True})
        again = pd.read_json(out, lines=True).drop(columns=["_id"]).sort_values("id").reset_index(drop=True)
        pd.testing.assert_frame_equal(again, df[df["flag"]].reset_index(drop=True), check_dtype=False)
