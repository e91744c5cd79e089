"""The memory budget from Python: `open(..., memory_budget=, lock_memory=)` and
`Database.memory()`, and the warning when the codes and graphs do not fit."""

import logging

import numpy as np
import pytest

import cairndb


def _fill(path, n=3000, dim=32):
    db = cairndb.open(str(path))
    col = db.create_collection("m", dim=dim, metric="cosine")
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, dim), dtype=np.float32)
    col.upsert(ids=list(range(n)), vectors=vecs)
    col.flush()
    db.close()
    return vecs


def test_memory_reports_the_budget_and_resident_parts(tmp_path):
    vecs = _fill(tmp_path / "db")
    db = cairndb.open(str(tmp_path / "db"), memory_budget=64 << 20, lock_memory=True)
    m = db.memory()
    assert m["budget"] == 64 << 20
    assert m["fits"] is True
    seg = db.collection("m").stats()["segments"][0]
    assert m["pinned_bytes"] == seg["codes_bytes"] + seg["graph_bytes"] > 0
    # Locked (or read in): the codes and the graph are in memory.
    assert m["resident"]["codes"] == seg["codes_bytes"]
    assert m["resident"]["graph"] == seg["graph_bytes"]
    assert set(m["resident"]) == {"codes", "graph", "vectors", "ids", "payload", "indexes"}
    hits = db.collection("m").search(vecs[5], k=1)
    assert hits[0].id == 5
    db.close()


def test_no_budget_is_none_and_fits(tmp_path):
    _fill(tmp_path / "db", n=500)
    with cairndb.open(str(tmp_path / "db")) as db:
        m = db.memory()
        assert m["budget"] is None and m["fits"] is True


def test_a_budget_too_small_warns_and_still_searches(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="cairndb")
    vecs = _fill(tmp_path / "db")
    db = cairndb.open(str(tmp_path / "db"), memory_budget=1000)
    assert db.memory()["fits"] is False
    assert any("memory budget of 1000 bytes" in r.getMessage() for r in caplog.records)
    assert db.collection("m").search(vecs[9], k=1)[0].id == 9
    db.close()


@pytest.mark.parametrize("bad", [-1, 2**64, "1G", 1.5])
def test_a_bad_budget_is_refused(tmp_path, bad):
    with pytest.raises((TypeError, OverflowError, ValueError)):
        cairndb.open(str(tmp_path / "db"), memory_budget=bad)
    # Nothing was created by the refused call.
    assert not (tmp_path / "db").exists()
