"""The scatter-gather API in the binding: Collection.text_stats, search(text_stats=...),
cairndb.merge_hits and cairndb.fuse_hits — two databases holding halves of the records answer
as one holding all of them."""

import numpy as np
import pytest

import cairndb

WORDS = "vector search graph index crash recovery disk filter fast text".split()


@pytest.fixture
def split(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 6)))) for _ in range(n)]
    payloads = [{"g": i % 2} for i in range(n)]
    dbs = [cairndb.open(str(tmp_path / name)) for name in ("one", "a", "b")]
    one, a, b = (db.create_collection("c", 8) for db in dbs)
    one.upsert(list(range(n)), vectors, texts, payloads)
    half = [i for i in range(n) if i % 3 == 0]
    rest = [i for i in range(n) if i % 3 != 0]
    a.upsert(half, vectors[half], [texts[i] for i in half], [payloads[i] for i in half])
    b.upsert(rest, vectors[rest], [texts[i] for i in rest], [payloads[i] for i in rest])
    a.delete([0, 3])
    one.delete([0, 3])
    yield one, [a, b], vectors
    for db in dbs:
        db.close()


def summed(shards, q):
    total = {"documents": 0, "total_len": 0, "df": {}}
    for s in shards:
        st = s.text_stats(q)
        total["documents"] += st["documents"]
        total["total_len"] += st["total_len"]
        for t, n in st["df"].items():
            total["df"][t] = total["df"].get(t, 0) + n
    return total


def test_text_and_hybrid_over_two_databases_equal_one(split):
    one, shards, vectors = split
    for q in ("vector search", "crash disk crash", "nothing here"):
        stats = summed(shards, q)
        assert stats == one.text_stats(q)
        got = cairndb.merge_hits([s.search(text=q, k=12, text_stats=stats) for s in shards], 12)
        assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in one.search(text=q, k=12)]
        v = vectors[5]
        for fusion in (None, "rrf", "weighted", "dbsf"):
            legs_v = cairndb.merge_hits([s.search(vector=v, k=50, exact=True) for s in shards], 50)
            legs_t = cairndb.merge_hits([s.search(text=q, k=50, text_stats=stats) for s in shards], 50)
            got = cairndb.fuse_hits(legs_v, legs_t, fusion)[:10]
            want = one.search(vector=v, text=q, k=10, exact=True, fusion=fusion)
            assert [(h.id, h.score, h.legs) for h in got] == [(h.id, h.score, h.legs) for h in want]


def test_bad_text_stats_and_fusion_are_clear_errors(split):
    one, _, _ = split
    st = one.text_stats("vector")
    assert set(st) == {"documents", "total_len", "df"} and set(st["df"]) == {"vector"}
    for bad in ("x", {"documents": 1}, {"documents": -1, "total_len": 1, "df": {}},
                {"documents": 1, "total_len": 1, "df": {"vector": "many"}},
                {"documents": 1, "total_len": 1, "df": []}):
        with pytest.raises(cairndb.InvalidInputError, match="text_stats"):
            one.search(text="vector", text_stats=bad)
    with pytest.raises(cairndb.InvalidInputError, match="graph"):
        one.search(text="vector graph", text_stats=st)
    with pytest.raises(cairndb.InvalidInputError):
        one.search(text="vector", text_stats={**st, "total_len": 0})
    with pytest.raises(cairndb.InvalidInputError):
        cairndb.fuse_hits([], [], "weighted", alpha=3.0)
    with pytest.raises(cairndb.InvalidInputError):
        cairndb.fuse_hits([], [], "nope")
    with pytest.raises(TypeError):
        cairndb.merge_hits([[1, 2]], 3)
    assert cairndb.merge_hits([], 5) == []
