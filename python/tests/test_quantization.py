"""quantization=: int8 codes stored in each segment (the default) or none; both search exactly
the same rows' exact scores, the setting survives a reopen, and a bad value names the choices."""

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


@pytest.mark.parametrize("quantization", ["int8", "none"])
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
        if quantization == "int8":
            assert seg["codes_bytes"] > N * 64
        else:
            assert seg["codes_bytes"] == 0
        names = os.listdir(os.path.join(path, "collections", "c"))
        seg_dir = os.path.join(path, "collections", "c", [n for n in names if "." not in n][0])
        assert os.path.exists(os.path.join(seg_dir, "codes")) == (quantization == "int8")
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


@pytest.mark.parametrize("bad", ["rabitq4", "int4", ""])
def test_a_bad_quantization_names_the_choices(tmp_path, bad):
    with cairndb.open(str(tmp_path / "db")) as db:
        with pytest.raises(cairndb.InvalidInputError, match="int8"):
            db.create_collection("c", dim=DIM, quantization=bad)
        assert db.collections() == []
