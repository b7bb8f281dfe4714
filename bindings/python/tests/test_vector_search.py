"""Vector search through the Python binding: an HNSW index, NumPy vectors in (documents and
query) and out, filter, projection and scoreField, and a bad vector refused."""
import numpy as np
import pytest

import nexuslite


def test_vector_search_with_numpy(tmp_path):
    db = nexuslite.open(str(tmp_path / "v.db"))
    try:
        c = db.collection("docs")
        c.create_index({"emb": "hnsw"}, numDimensions=8, similarity="cosine")
        rng = np.random.default_rng(3)
        vecs = rng.standard_normal((200, 8)).astype(np.float32)
        c.insert_many({"_id": i, "emb": v, "even": i % 2 == 0} for i, v in enumerate(vecs))
        rows = list(c.vector_search({"path": "emb", "queryVector": vecs[17], "limit": 3}, numpy=True))
        assert rows[0]["_id"] == 17
        assert rows[0]["_score"] == pytest.approx(1.0, abs=1e-6)
        assert isinstance(rows[0]["emb"], np.ndarray) and rows[0]["emb"].dtype == np.float32
        np.testing.assert_allclose(rows[0]["emb"], vecs[17], rtol=1e-6)
        assert [r["_score"] for r in rows] == sorted((r["_score"] for r in rows), reverse=True)
        # Brute force agrees with exact search under a filter.
        unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        q = unit[5]
        want = [int(i) for i in np.argsort(-(unit @ q)) if i % 2 == 0][:5]
        got = c.vector_search(
            {"path": "emb", "queryVector": vecs[5], "limit": 5, "exact": True, "filter": {"even": True},
             "projection": {"emb": 0}, "scoreField": "s"}
        )
        got = list(got)
        assert [r["_id"] for r in got] == want
        assert all("emb" not in r and "s" in r for r in got)
        with pytest.raises(nexuslite.NexusError) as e:
            c.insert_many([{"emb": [1.0, 2.0]}])
        assert "2 dimensions" in str(e.value)
    finally:
        db.close()
