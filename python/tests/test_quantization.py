"""quantization=: int8 codes stored in each segment (the default), RaBitQ codes of 4 or 1 bits,
or none; every setting returns exact scores, the setting survives a reopen, and a bad value names
the choices."""

import os

import numpy as np
import pytest

import cairndb

DIM = 24
N = 3000


def data():
    rng = np.random.default_rng(5)
    return rng.normal(size=(N, DIM)).astype(np.float32)


def exact_top(x, q, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ (q / np.linalg.norm(q))
    return set(np.argsort(-s)[:k].tolist())


@pytest.mark.parametrize("quantization", ["int8", "rabitq4", "rabitq1", "none"])
def test_both_settings_search_and_survive_a_reopen(tmp_path, quantization):
    path = str(tmp_path / "db")
    x = data()
    with cairndb.open(path) as db:
        col = db.create_collection("c", dim=DIM, quantization=quantization)
        assert col.quantization == quantization
        col.upsert(list(range(N)), x)
        col.flush()
    with cairndb.open(path) as db:
        col = db.collection("c")
        assert col.quantization == quantization
        seg = col.stats()["segments"][0]
        # Bytes per row: int8 24 + 4 → 64; RaBitQ 12 factor bytes + codes → 16 or 32.
        per_row = {"int8": 64, "rabitq4": 32, "rabitq1": 16, "none": 0}[quantization]
        assert seg["codes_bytes"] >= N * per_row
        assert seg["codes_bytes"] < N * per_row + 4096 or per_row == 0
        if quantization == "none":
            assert seg["codes_bytes"] == 0
        names = os.listdir(os.path.join(path, "collections", "c"))
        seg_dir = os.path.join(path, "collections", "c", [n for n in names if "." not in n][0])
        assert os.path.exists(os.path.join(seg_dir, "codes")) == (quantization != "none")
        rng = np.random.default_rng(9)
        found = 0
        for _ in range(20):
            q = rng.normal(size=DIM).astype(np.float32)
            hits = col.search(q, k=10, ef=64)
            exact = {h.id: h.score for h in col.search(q, k=N, exact=True)}
            for h in hits:
                # Scores are exact whatever the walk scored.
                assert h.score == pytest.approx(exact[h.id], abs=1e-6)
            found += len({h.id for h in hits} & exact_top(x, q, 10))
        assert found / 200 >= 0.9


@pytest.mark.parametrize("bad", ["rabitq2", "int4", ""])
def test_a_bad_quantization_names_the_choices(tmp_path, bad):
    with cairndb.open(str(tmp_path / "db")) as db:
        with pytest.raises(cairndb.InvalidInputError, match="int8.*rabitq4.*rabitq1"):
            db.create_collection("c", dim=DIM, quantization=bad)
        assert db.collections() == []


@pytest.mark.parametrize("quantization", ["rabitq4", "rabitq1"])
@pytest.mark.parametrize("metric", ["dot", "l2"])
def test_rabitq_serves_every_metric_with_exact_scores(tmp_path, quantization, metric):
    x = data()
    with cairndb.open(str(tmp_path / "db")) as db:
        col = db.create_collection("c", dim=DIM, metric=metric, quantization=quantization)
        col.upsert(list(range(N)), x)
        col.flush()
        rng = np.random.default_rng(3)
        found = 0
        for _ in range(10):
            q = rng.normal(size=DIM).astype(np.float32)
            exact = col.search(q, k=N, exact=True)
            scores = {h.id: h.score for h in exact}
            hits = col.search(q, k=10, ef=64)
            for h in hits:
                assert h.score == pytest.approx(scores[h.id], abs=1e-5)
            found += len({h.id for h in hits} & {h.id for h in exact[:10]})
        assert found / 100 >= 0.85
