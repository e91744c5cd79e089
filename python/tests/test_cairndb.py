"""Tests of the Python binding: every method, errors, numpy input, persistence."""

import random
import threading

import numpy as np
import pytest

import cairndb


@pytest.fixture()
def db(tmp_path):
    d = cairndb.open(tmp_path / "db")
    yield d
    d.close()


def unit_rows(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x, q, k):
    return list(np.argsort(-(x @ q), kind="stable")[:k])


# --- database ---------------------------------------------------------------------------------


def test_collections_lifecycle(db):
    assert db.collections() == []
    a = db.create_collection("a", dim=3)
    b = db.create_collection("b", dim=5, metric="l2", m=8, ef_construction=50)
    assert db.collections() == ["a", "b"]
    assert (a.name, a.dim, a.metric) == ("a", 3, "cosine")
    assert (b.name, b.dim, b.metric) == ("b", 5, "l2")
    assert db.collection("a").dim == 3
    with pytest.raises(cairndb.CollectionExistsError, match="already exists"):
        db.create_collection("a", dim=3)
    db.drop_collection("a")
    assert db.collections() == ["b"]
    with pytest.raises(cairndb.CollectionNotFoundError, match="`a` does not exist"):
        db.collection("a")
    with pytest.raises(cairndb.ClosedError, match="dropped"):
        a.search(vector=[1, 0, 0])
    assert "cairndb.Database(" in repr(db)
    assert repr(b) == 'cairndb.Collection("b", dim=5, metric="l2")'


def test_get_or_create_collection(db):
    c = db.get_or_create_collection("c", 4, "dot", stem=True)
    c.upsert([1], [[1, 2, 3, 4]])
    again = db.get_or_create_collection("c", 4, "dot")
    assert len(again) == 1
    with pytest.raises(cairndb.InvalidInputError, match="exists with dim 4"):
        db.get_or_create_collection("c", 8, "dot")
    with pytest.raises(TypeError, match="unexpected keyword"):
        db.get_or_create_collection("d", 4, bogus=1)
    with pytest.raises(cairndb.InvalidInputError, match="exists with metric dot, asked for l2"):
        db.get_or_create_collection("c", 4, "l2")
    # Settings used only at creation do not have to match; the collection keeps its own.
    assert len(db.get_or_create_collection("c", 4, "dot", m=32, stop_words=True)) == 1


def test_get_or_create_collection_from_threads_creates_one(db):
    import threading

    results, errors = [], []
    barrier = threading.Barrier(8)

    def worker(i):
        try:
            barrier.wait()
            col = db.get_or_create_collection("shared", 2, "l2")
            col.upsert([i], [[float(i), 1.0]])
            results.append(col)
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a get_or_create_collection call hung"
    assert errors == []
    assert db.collections() == ["shared"]
    assert len(db.collection("shared")) == 8


def test_bad_names_and_arguments(db):
    for name in ["", "a/b", "..", "x" * 65, "a b"]:
        with pytest.raises(cairndb.InvalidInputError, match="invalid collection name"):
            db.create_collection(name, dim=3)
    with pytest.raises(cairndb.InvalidInputError, match="metric"):
        db.create_collection("m", dim=3, metric="hamming")
    with pytest.raises(cairndb.InvalidInputError):
        db.create_collection("z", dim=0)
    with pytest.raises(cairndb.InvalidInputError, match="durability"):
        cairndb.open(db.path + "-2", durability="sometimes")
    # Errors derive from the built-ins they behave like.
    assert issubclass(cairndb.InvalidInputError, ValueError)
    assert issubclass(cairndb.CollectionNotFoundError, LookupError)
    assert issubclass(cairndb.LockedError, OSError)
    assert issubclass(cairndb.LockedError, cairndb.CairnError)


def test_second_open_is_refused_and_close_releases_lock(tmp_path):
    path = tmp_path / "db"
    db = cairndb.open(path)
    col = db.create_collection("c", dim=2)
    col.upsert([1], [[1.0, 0.0]])
    with pytest.raises(cairndb.LockedError, match="already open"):
        cairndb.open(path)
    db.close()
    assert db.closed
    db.close()  # twice is harmless
    with pytest.raises(cairndb.ClosedError):
        db.collections()
    with pytest.raises(cairndb.ClosedError):
        col.search(vector=[1.0, 0.0])
    # `col` is still referenced, yet close() released the lock.
    with cairndb.open(path) as again:
        assert len(again.collection("c")) == 1
    with pytest.raises(cairndb.StorageError, match="does not exist"):
        cairndb.open(tmp_path / "missing", create=False)


# --- writes and reads ---------------------------------------------------------------------------


def test_upsert_get_delete_len(db):
    col = db.create_collection("c", dim=4, metric="dot")
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    col.upsert(
        [10, 20, 30],
        vecs,
        texts=["alpha", None, "gamma"],
        payloads=[{"n": 1, "f": 0.5, "b": True, "s": "x", "l": ["p", "q"]}, None, {}],
    )
    assert len(col) == 3
    r = col.get(10)
    assert r.id == 10 and r.text == "alpha"
    assert r.vector.dtype == np.float32
    np.testing.assert_array_equal(r.vector, vecs[0])
    assert r.payload == {"n": 1, "f": 0.5, "b": True, "s": "x", "l": ["p", "q"]}
    assert type(r.payload["b"]) is bool and type(r.payload["n"]) is int
    got = col.get([30, 99, 20])
    assert [g.id if g else None for g in got] == [30, None, 20]
    assert got[2].text is None and got[2].payload == {}
    assert col.get(99) is None
    # Replace by id.
    col.upsert([10], [[1, 1, 1, 1]], texts=["new"])
    assert col.get(10).text == "new" and col.get(10).payload == {}
    assert len(col) == 3
    assert col.delete([10, 10, 77]) == 1
    assert col.delete(20) == 1
    assert len(col) == 1 and col.get(10) is None


def test_numpy_inputs(db):
    col = db.create_collection("c", dim=3, metric="dot")
    col.upsert(np.array([1, 2], dtype=np.uint64), np.ones((2, 3), dtype=np.float64))
    col.upsert(np.array([3], dtype=np.int64), np.ones((1, 3), dtype=np.float32) * 2)
    # A non-contiguous (strided) array is read correctly.
    big = np.arange(12, dtype=np.float32).reshape(2, 6)
    col.upsert([4, 5], big[:, ::2])
    np.testing.assert_array_equal(col.get(5).vector, [6, 8, 10])
    hits = col.search(vector=np.array([0, 0, 1], dtype=np.float64), k=1)
    assert hits[0].id == 5
    assert col.search(vector=big[1, ::2], k=1)[0].id == 5
    assert len(col) == 5


@pytest.mark.parametrize(
    "vectors, exc, msg",
    [
        (np.zeros((2, 4), dtype=np.float32), cairndb.InvalidInputError, "4 columns"),
        (np.zeros((3, 3), dtype=np.float32), cairndb.InvalidInputError, "2 ids but 3 vectors"),
        (np.zeros((2, 3), dtype=np.int32), TypeError, "dtype float32 or float64, got int32"),
        (np.array([["a", "b", "c"]] * 2), TypeError, "dtype"),
        (np.zeros(6, dtype=np.float32), cairndb.InvalidInputError, "2-D"),
        (np.zeros((2, 3, 1), dtype=np.float32), cairndb.InvalidInputError, "2-D"),
        ([[1, 2, 3]], cairndb.InvalidInputError, "2 ids but 1 vectors"),
        ([[1, 2], [3, 4]], cairndb.InvalidInputError, "dimension mismatch"),
        ([[1, 2, "x"], [1, 2, 3]], TypeError, "numbers"),
        ("abc", TypeError, "not str"),
        (5, TypeError, "list of lists"),
        ([[1, 2, float("nan")], [1, 2, 3]], cairndb.InvalidInputError, "non-finite"),
        ([[0, 0, 0], [1, 2, 3]], cairndb.InvalidInputError, "zero length"),
    ],
)
def test_bad_vectors_are_rejected_and_nothing_is_written(db, vectors, exc, msg):
    col = db.create_collection("c", dim=3)
    with pytest.raises(exc, match=msg):
        col.upsert([1, 2], vectors)
    assert len(col) == 0


@pytest.mark.parametrize(
    "ids, exc, msg",
    [
        # A collection of int ids: a str id is the other kind (see test_string_ids.py).
        (["a", "b"], cairndb.InvalidInputError, "has integer ids; got the string id \"a\""),
        ([1.5, 2], TypeError, "int or str, found float"),
        ([True, 2], TypeError, "int or str, found bool"),
        ([None, 2], TypeError, "int or str, found NoneType"),
        ([-1, 2], cairndb.InvalidInputError, "outside"),
        ([2**64, 2], cairndb.InvalidInputError, "outside"),
        (np.array([-1, 2]), cairndb.InvalidInputError, "negative"),
        # One str is one id (and two vectors were given).
        ("ab", cairndb.InvalidInputError, "got 1 ids but 2 vectors"),
        (b"ab", TypeError, "not bytes"),
    ],
)
def test_bad_ids(db, ids, exc, msg):
    col = db.create_collection("c", dim=2)
    with pytest.raises(exc, match=msg):
        col.upsert(ids, [[1, 0], [0, 1]])
    assert len(col) == 0


@pytest.mark.parametrize(
    "texts, payloads, exc, msg",
    [
        (["a"], None, cairndb.InvalidInputError, "2 ids but 1 texts"),
        ("ab", None, TypeError, "not one str"),
        ([1, 2], None, TypeError, "str or None"),
        (None, [{"a": 1}], cairndb.InvalidInputError, "2 ids but 1 payloads"),
        (None, [{"a": object()}, {}], cairndb.InvalidInputError, "unsupported value"),
        (None, [{"a": {"b": [1, {2: "x"}]}}, {}], TypeError, "keys must be str"),
        (None, [{1: "x"}, {}], TypeError, "keys must be str"),
        (None, ["x", {}], TypeError, "must be a dict"),
        (None, [{"a": 2**70}, {}], cairndb.InvalidInputError, "out of range"),
        (None, [{"a": -(2**63) - 1}, {}], cairndb.InvalidInputError, "out of range"),
        (None, [{"a": float("nan")}, {}], cairndb.InvalidInputError, '"a".*not a finite'),
        (None, [{"m": {"s": [1.0, float("inf")]}}, {}], ValueError, r"m\.s\[1\].*not a finite"),
        (None, [{"a": np.float64("nan")}, {}], ValueError, "not a finite"),
    ],
)
def test_bad_texts_and_payloads(db, texts, payloads, exc, msg):
    col = db.create_collection("c", dim=2)
    with pytest.raises(exc, match=msg):
        col.upsert([1, 2], [[1, 0], [0, 1]], texts=texts, payloads=payloads)
    assert len(col) == 0


def test_numpy_scalars_in_payloads(db):
    col = db.create_collection("c", dim=2)
    col.upsert([1], [[1, 0]], payloads=[{"i": np.int64(7), "f": np.float32(0.5), "g": np.float64(2)}])
    assert col.get(1).payload == {"i": 7, "f": 0.5, "g": 2.0}


# --- search ---------------------------------------------------------------------------------------


def test_vector_search_matches_brute_force(db):
    n, dim = 2000, 16
    x = unit_rows(n, dim)
    col = db.create_collection("c", dim=dim)
    col.upsert(list(range(n)), x)
    rng = np.random.default_rng(1)
    recall = []
    for _ in range(50):
        q = rng.standard_normal(dim).astype(np.float32)
        qn = q / np.linalg.norm(q)
        want = brute_force(x, qn, 10)
        exact = col.search(vector=q, k=10, exact=True)
        assert [h.id for h in exact] == want
        np.testing.assert_allclose([h.score for h in exact], (x @ qn)[want], rtol=1e-4, atol=1e-5)
        approx = col.search(vector=q, k=10, ef=100)
        recall.append(len({h.id for h in approx} & set(want)) / 10)
    assert np.mean(recall) >= 0.95
    # Scores come best first.
    scores = [h.score for h in col.search(vector=x[0], k=20)]
    assert scores == sorted(scores, reverse=True)


def test_search_batch_matches_search(db):
    n, dim = 3000, 16
    x = unit_rows(n, dim)
    col = db.create_collection("c", dim=dim)
    col.upsert(list(range(2000)), x[:2000], payloads=[{"even": i % 2 == 0} for i in range(2000)])
    col.flush()  # one segment and a memtable
    col.upsert(list(range(2000, n)), x[2000:], payloads=[{"even": i % 2 == 0} for i in range(2000, n)])
    q = unit_rows(40, dim, seed=5)
    for kwargs in [{}, {"ef": 100}, {"exact": True}, {"filter": {"even": True}}, {"filter": "even = false", "exact": True}]:
        for threads in [None, 1, 2]:
            ids, scores = col.search_batch(q, k=10, threads=threads, **kwargs)
            assert ids.shape == (40, 10) and ids.dtype == np.uint64
            assert scores.shape == (40, 10) and scores.dtype == np.float32
            for i in range(40):
                hits = col.search(vector=q[i], k=10, **kwargs)
                assert list(ids[i]) == [h.id for h in hits], (kwargs, threads, i)
                np.testing.assert_array_equal(scores[i], np.array([h.score for h in hits], dtype=np.float32))
    # Exact results equal brute force, and lists of lists and float64 are accepted.
    ids, scores = col.search_batch(q.astype(np.float64).tolist(), k=5, exact=True)
    for i in range(40):
        want = brute_force(x, q[i], 5)
        assert list(ids[i]) == want
        np.testing.assert_allclose(scores[i], (x @ q[i])[want], rtol=1e-4, atol=1e-5)
    # Fewer hits than k: padded with 2**64 - 1 and NaN.
    small = db.create_collection("small", dim=dim)
    small.upsert([7, 8, 9], x[:3])
    ids, scores = small.search_batch(q[:4], k=5)
    assert ids.shape == (4, 5)
    for i in range(4):
        assert sorted(ids[i][:3].tolist()) == [7, 8, 9]
        assert ids[i][3:].tolist() == [2**64 - 1] * 2
        assert not np.isnan(scores[i][:3]).any() and np.isnan(scores[i][3:]).all()
    # No queries: empty arrays of the right shape.
    ids, scores = col.search_batch(np.zeros((0, dim), dtype=np.float32), k=3)
    assert ids.shape == (0, 3) and scores.shape == (0, 3)


def test_search_batch_errors(db):
    col = db.create_collection("c", dim=4)
    col.upsert([1, 2], unit_rows(2, 4))
    with pytest.raises(cairndb.InvalidInputError, match="columns but the collection's dimension is 4"):
        col.search_batch(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(cairndb.InvalidInputError, match="query 1 has 3 values"):
        col.search_batch([[1.0, 0, 0, 0], [1.0, 0, 0]])
    with pytest.raises(TypeError, match="dtype float32 or float64"):
        col.search_batch(np.zeros((2, 4), dtype=np.int32))
    with pytest.raises(cairndb.InvalidInputError, match="2-D"):
        col.search_batch(np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError, match="list of vectors"):
        col.search_batch(42)
    with pytest.raises(cairndb.InvalidInputError, match="k must be"):
        col.search_batch(unit_rows(2, 4), k=0)
    with pytest.raises(cairndb.InvalidInputError, match="threads must be"):
        col.search_batch(unit_rows(2, 4), threads=0)
    # A bad query among good ones fails the whole call with that query's error.
    q = unit_rows(3, 4)
    q[2, 1] = np.nan
    with pytest.raises(cairndb.InvalidInputError, match="non-finite"):
        col.search_batch(q)
    with pytest.raises(cairndb.InvalidInputError, match="column 7"):
        col.search_batch(unit_rows(2, 4), filter="year >")


def test_explain(db):
    n, dim = 3000, 8
    x = unit_rows(n, dim, seed=21)
    col = db.create_collection("c", dim=dim)
    col.upsert(list(range(n)), x, texts=[f"alpha {'beta' if i % 3 == 0 else 'gamma'}" for i in range(n)],
               payloads=[{"y": i % 10} for i in range(n)])
    col.flush()
    col.upsert([n], unit_rows(1, dim, seed=22), texts=["beta beta"], payloads=[{"y": 3}])
    ys = [i % 10 for i in range(n)] + [3]
    q = unit_rows(1, dim, seed=23)[0]
    cases = [
        ({"vector": q}, None),
        ({"vector": q, "filter": {"y": 3}}, lambda y: y == 3),
        ({"vector": q, "filter": "y = 3", "exact": True}, lambda y: y == 3),
        ({"text": "beta"}, None),
        ({"vector": q, "text": "beta", "filter": {"y": {"$lt": 5}}}, lambda y: y < 5),
    ]
    for kwargs, pred in cases:
        r = col.explain(k=5, **kwargs)
        hits = col.search(k=5, **kwargs)
        assert [h["id"] for h in r["hits"]] == [h.id for h in hits], kwargs
        np.testing.assert_allclose([h["score"] for h in r["hits"]], [h.score for h in hits], rtol=1e-6)
        e = r["explain"]
        assert e["complete"] is True
        if "vector" in kwargs:
            assert [p["source"] for p in e["vector"]] == ["segment 1", "memtable"]
            assert [p["rows"] for p in e["vector"]] == [n, 1]
            assert all(p["plan"] in ("graph", "exact", "skip") for p in e["vector"])
        else:
            assert "vector" not in e
        if pred is not None:
            assert sum(p["matched"] for p in e["vector"]) == sum(map(pred, ys)), kwargs
            assert "y" in e["filter"]
        if "text" in kwargs:
            assert e["text"]["terms"] == ["beta"]
            assert e["text"]["df"] == [len(range(0, n, 3)) + 1]
            assert e["text"]["documents"] == n + 1
    # Unfiltered, the segment is walked; under a 10 % filter on 3,000 rows it is scanned.
    assert col.explain(vector=q, k=5)["explain"]["vector"][0]["plan"] == "graph"
    assert col.explain(vector=q, k=5, filter="y = 3")["explain"]["vector"][0]["plan"] == "exact"
    with pytest.raises(cairndb.InvalidInputError, match="needs a vector, a text, or both"):
        col.explain(k=3)
    with pytest.raises(cairndb.InvalidInputError, match="dimension"):
        col.explain(vector=[1.0, 2.0])


def test_rerank_hook(db):
    n, dim = 500, 8
    x = unit_rows(n, dim, seed=11)
    col = db.create_collection("c", dim=dim)
    col.upsert(list(range(n)), x, texts=[f"doc {i}" for i in range(n)],
               payloads=[{"rank": (i * 37) % 101} for i in range(n)])
    col.flush()
    q = unit_rows(1, dim, seed=12)[0]
    top20 = col.search(vector=q, k=20, exact=True)
    # Negated scores: the 5 worst of the best 20, worst first, with the re-ranker's scores.
    hits = col.search(vector=q, k=5, exact=True, rerank_top_n=20,
                      rerank=lambda text, hits: [-h.score for h in hits])
    assert [h.id for h in hits] == [h.id for h in reversed(top20)][:5]
    np.testing.assert_allclose([h.score for h in hits], [-h.score for h in reversed(top20)][:5])
    # The re-ranker sees text, payload and the query text; a numpy result works; the hits
    # come back without text/payload when not asked for.
    seen = []

    def by_rank(text, hits):
        seen.append((text, [(h.text, h.payload) for h in hits]))
        return np.array([h.payload["rank"] for h in hits], dtype=np.float64)

    hits = col.search(vector=q, text="doc", k=4, rerank=by_rank, rerank_top_n=30,
                      include_text=False, include_payload=False)
    text, cands = seen[-1]
    assert text == "doc" and len(cands) == 30
    assert all(t.startswith("doc ") and "rank" in p for t, p in cands)
    ranks = sorted((p["rank"] for _, p in cands), reverse=True)[:4]
    assert [h.score for h in hits] == ranks
    assert all(h.text is None and h.payload is None for h in hits)
    col.search(vector=q, k=3, rerank=by_rank)
    assert seen[-1][0] is None and len(seen[-1][1]) == 50  # default top_n: max(2k, 50)
    # Its exception comes out unchanged; bad results are InvalidInputError.

    class Boom(Exception):
        pass

    def boom(text, hits):
        raise Boom("model down")

    with pytest.raises(Boom, match="model down"):
        col.search(vector=q, k=3, rerank=boom)
    with pytest.raises(cairndb.InvalidInputError, match="returned 2 scores for 50"):
        col.search(vector=q, k=3, rerank=lambda t, h: [1.0, 2.0])
    with pytest.raises(cairndb.InvalidInputError, match="NaN"):
        col.search(vector=q, k=3, rerank=lambda t, h: [float("nan")] * len(h))
    with pytest.raises(TypeError, match="rerank must return numbers"):
        col.search(vector=q, k=3, rerank=lambda t, h: ["x"] * len(h))
    with pytest.raises(TypeError, match="rerank must be a callable"):
        col.search(vector=q, k=3, rerank=42)
    # The collection still works after all that.
    assert len(col.search(vector=q, k=3)) == 3


def test_search_results_include_text_and_payload_on_request(db):
    col = db.create_collection("c", dim=2)
    col.upsert([1], [[1, 0]], texts=["hello"], payloads=[{"a": "b"}])
    h = col.search(vector=[1, 0], k=1)[0]
    assert (h.id, h.text, h.payload, h.legs) == (1, "hello", {"a": "b"}, None)
    assert h.score == pytest.approx(1.0)
    h = col.search(vector=[1, 0], k=1, include_text=False, include_payload=False)[0]
    assert h.text is None and h.payload is None
    assert repr(h).startswith("Hit(id=1, score=")


def test_text_and_hybrid_search(db):
    col = db.create_collection("c", dim=2, stem=True, stop_words=True)
    col.upsert(
        [1, 2, 3],
        [[1, 0], [0, 1], [0.7, 0.7]],
        texts=["the running of the bulls", "quiet reading", "run, run, run fast"],
    )
    text_hits = col.search(text="run", k=5)
    assert [h.id for h in text_hits] == [3, 1]  # stemming: running → run
    assert all(h.legs is None for h in text_hits)
    hybrid = col.search(vector=[0, 1], text="run", k=3)
    assert len(hybrid) == 3
    legs = {h.id: h.legs for h in hybrid}
    assert legs[2]["text"] is None and legs[2]["vector"]["rank"] == 1
    assert legs[3]["text"] is not None and legs[3]["vector"] is not None
    for h in hybrid:
        assert h.legs["fused"] == pytest.approx(h.score)
    # The default, weighted min-max with alpha 0.6: vector scores 1, 0.707, 0 (ids 2, 3, 1)
    # normalize to 1, 0.707, 0; BM25 ranks 3 over 1 (1, 0). 3: 0.6·0.707 + 0.4 = 0.824 beats
    # 2: 0.6.
    assert [h.id for h in hybrid] == [3, 2, 1]
    assert hybrid[0].score == pytest.approx(0.6 * 0.5**0.5 + 0.4, abs=1e-5)
    assert hybrid[1].score == pytest.approx(0.6, abs=1e-6)
    # RRF: a record found by both legs outranks one found by a single leg at the same rank.
    rrf = col.search(vector=[0, 1], text="run", k=3, fusion="rrf")
    assert rrf[0].id == 3
    assert rrf[0].score == pytest.approx(1 / 61 + 1 / 62, abs=1e-6)
    weighted = col.search(vector=[0, 1], text="run", k=3, fusion="weighted", alpha=1.0)
    assert weighted[0].id == 2  # alpha 1: the vector leg alone decides
    assert len(col.search(vector=[0, 1], text="run", k=3, fusion="dbsf")) == 3
    with pytest.raises(cairndb.InvalidInputError, match="unknown fusion"):
        col.search(vector=[0, 1], text="run", fusion="max")
    with pytest.raises(cairndb.InvalidInputError, match="alpha"):
        col.search(vector=[0, 1], text="run", fusion="weighted", alpha=2.0)
    with pytest.raises(cairndb.InvalidInputError, match="needs a vector, a text"):
        col.search(k=3)


def test_search_errors(db):
    col = db.create_collection("c", dim=3)
    col.upsert([1], [[1, 0, 0]])
    with pytest.raises(cairndb.InvalidInputError, match="dimension mismatch"):
        col.search(vector=[1, 0])
    with pytest.raises(cairndb.InvalidInputError, match="non-finite"):
        col.search(vector=[1, float("inf"), 0])
    with pytest.raises(cairndb.InvalidInputError, match="zero length"):
        col.search(vector=[0, 0, 0])
    with pytest.raises(TypeError, match="dtype float32 or float64"):
        col.search(vector=np.array([1, 0, 0], dtype=np.int8))
    with pytest.raises(cairndb.InvalidInputError, match="1-D"):
        col.search(vector=np.ones((1, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="not str"):
        col.search(vector="abc")
    assert col.search(vector=[1, 0, 0], k=0) == []
    with pytest.raises(TypeError, match="filter must be a str"):
        col.search(vector=[1, 0, 0], filter=5)
    assert col.search(vector=[1, 0, 0], filter=None)[0].id == 1


# --- filters ------------------------------------------------------------------------------------


def matches(payload, f):
    """Reference semantics of the dict filter syntax."""
    out = True
    for key, v in f.items():
        if key == "$and":
            ok = all(matches(payload, s) for s in v)
        elif key == "$or":
            ok = any(matches(payload, s) for s in v)
        elif key == "$not":
            ok = not matches(payload, v)
        elif isinstance(v, dict):
            ok = True
            x = payload.get(key)
            for op, arg in v.items():
                num = isinstance(x, (int, float)) and not isinstance(x, bool)
                if op == "$eq":
                    ok &= eq(x, arg)
                elif op == "$ne":
                    ok &= not eq(x, arg)
                elif op == "$in":
                    ok &= any(eq(x, a) for a in arg)
                elif op == "$nin":
                    ok &= not any(eq(x, a) for a in arg)
                elif op == "$gt":
                    ok &= num and x > arg
                elif op == "$gte":
                    ok &= num and x >= arg
                elif op == "$lt":
                    ok &= num and x < arg
                elif op == "$lte":
                    ok &= num and x <= arg
                elif op == "$exists":
                    ok &= (key in payload) == arg
        else:
            ok = eq(payload.get(key), v)
        out = out and ok
    return out


def eq(x, v):
    if isinstance(x, list):
        return isinstance(v, str) and v in x
    if isinstance(v, bool) or isinstance(x, bool):
        return isinstance(v, bool) and isinstance(x, bool) and x == v
    if isinstance(v, str) or isinstance(x, str):
        return x == v
    return x is not None and float(x) == float(v)


def random_filter(rng, depth=0):
    field = rng.choice(["year", "lang", "tags", "score", "ok"])
    leaf = {
        "year": lambda: rng.choice(
            [
                {"year": rng.randint(2000, 2005)},
                {"year": {"$gte": rng.randint(2000, 2005)}},
                {"year": {"$gt": 2001, "$lte": rng.randint(2001, 2005)}},
                {"year": {"$in": [2000, rng.randint(2001, 2005)]}},
                {"year": {"$ne": 2002}},
            ]
        ),
        "lang": lambda: rng.choice(
            [{"lang": "en"}, {"lang": {"$nin": ["de", "fr"]}}, {"lang": {"$exists": False}}]
        ),
        "tags": lambda: rng.choice([{"tags": "a"}, {"tags": {"$in": ["b", "c"]}}]),
        "score": lambda: {"score": {"$lt": rng.random()}},
        "ok": lambda: rng.choice([{"ok": True}, {"ok": {"$eq": False}}]),
    }[field]
    if depth < 2 and rng.random() < 0.4:
        op = rng.choice(["$and", "$or", "$not"])
        if op == "$not":
            return {"$not": random_filter(rng, depth + 1)}
        return {op: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    return leaf()


def test_dict_filters_match_reference(db):
    rng = random.Random(7)
    n = 300
    col = db.create_collection("c", dim=4)
    payloads = []
    for _ in range(n):
        p = {"year": rng.randint(2000, 2005), "score": rng.random(), "ok": rng.random() < 0.5}
        if rng.random() < 0.8:
            p["lang"] = rng.choice(["en", "de", "fr"])
        p["tags"] = rng.sample(["a", "b", "c", "d"], rng.randint(0, 2))
        payloads.append(p)
    col.upsert(list(range(n)), unit_rows(n, 4, seed=3), payloads=payloads)
    col.flush()  # half the checks on a segment
    q = unit_rows(1, 4, seed=4)[0]
    for i in range(200):
        f = random_filter(rng)
        want = {j for j, p in enumerate(payloads) if matches(p, f)}
        got = {h.id for h in col.search(vector=q, k=n, filter=f, exact=True)}
        assert got == want, f
        if i % 20 == 0:  # the graph walk returns the same set when k covers every match
            got = {h.id for h in col.search(vector=q, k=n, filter=f)}
            assert got == want, f


def test_text_filter_syntax_and_errors(db):
    col = db.create_collection("c", dim=2)
    col.upsert(
        [1, 2, 3],
        [[1, 0], [0, 1], [1, 1]],
        payloads=[{"lang": "en", "year": 2020}, {"lang": "de", "year": 2021}, {"year": 2019}],
    )
    got = {h.id for h in col.search(vector=[1, 0], k=5, filter='lang = "en" OR year >= 2021')}
    assert got == {1, 2}
    with pytest.raises(cairndb.InvalidInputError, match="column 7"):
        col.search(vector=[1, 0], filter="year >")
    for bad, msg in [
        ({"$xor": []}, "unknown filter operator"),
        ({"year": {"$near": 1}}, "unknown operator"),
        ({"year": {"$gt": "x"}}, "takes a number"),
        ({"year": {"$in": 3}}, "takes a list"),
        ({"$or": {"a": 1}}, "list of filters"),
        ({"$and": [1]}, r"list of filters \(objects\), found the number 1"),
        ({"year": {}}, "no operator"),
        ({"year": {"$exists": "yes"}}, "true or false"),
    ]:
        with pytest.raises(cairndb.InvalidInputError, match=msg):
            col.search(vector=[1, 0], filter=bad)


def test_dict_and_text_filters_select_the_same_records(db):
    """One filter language: a dict is read by the same reader as JSON in Rust and the CLI,
    and selects what the equivalent text filter does."""
    col = db.create_collection("c", dim=2)
    n = 60
    payloads = []
    for i in range(n):
        p = {"year": 2015 + i % 9, "score": (i % 10) / 10, "tags": [["a", "b", "c"][i % 3]]}
        if i % 5:
            p["lang"] = ["en", "de", "fr"][i % 3]
        if i % 6 == 0:
            p["meta.author"] = "ann"
        payloads.append(p)
    texts = ["durable storage" if i % 2 else "vector search" for i in range(n)]
    col.upsert(list(range(n)), unit_rows(n, 2, seed=5), texts=texts, payloads=payloads)
    col.flush()
    q = [1.0, 0.0]
    pairs = [
        ({"lang": "en", "year": {"$gte": 2020}}, 'lang = "en" AND year >= 2020'),
        ({"$or": [{"year": {"$gt": 2019, "$lte": 2021}}, {"tags": {"$in": ["b"]}}]},
         '2019 < year <= 2021 OR tags IN ("b")'),
        ({"lang": {"$ne": "en"}, "tags": {"$nin": ["a"]}}, 'lang != "en" AND tags NOT IN ("a")'),
        ({"$not": {"lang": {"$exists": True}}}, "NOT EXISTS(lang)"),
        ({"$contains": "storage", "score": {"$lt": 0.5}}, 'HAS_TERM("storage") AND score < 0.5'),
        ({"meta.author": "ann"}, '`meta.author` = "ann"'),
        # The old tree form is an alias in dicts too.
        ({"and": [{"eq": {"field": "lang", "value": "de"}}, {"range": {"field": "year", "lt": 2019}}]},
         'lang = "de" AND year < 2019'),
    ]
    for d, text in pairs:
        by_dict = {h.id for h in col.search(vector=q, k=n, filter=d, exact=True)}
        by_text = {h.id for h in col.search(vector=q, k=n, filter=text, exact=True)}
        assert by_dict == by_text, (d, text)
        assert 0 < len(by_dict) < n, (d, by_dict)
        # The explain output prints the dict as the text syntax, in the dict's key order.
        e = col.explain(vector=q, k=3, filter=d)["explain"]
        assert e["filter"] == col.explain(vector=q, k=3, filter=text)["explain"]["filter"]
    for bad, msg in [
        ({"year": {"$gtx": 1}}, r'unknown operator "\$gtx" on field "year" \(use \$eq'),
        ({"$and": 5}, r"\$and takes a list of filters, not the number 5"),
        ({"year": {"$in": []}, 1: 2}, "filter keys must be str, found int"),
        ({"year": {"$gt": float("nan")}}, "not a finite number"),
        ({"year": {"$eq": object()}}, "unsupported value of type object"),
    ]:
        with pytest.raises(cairndb.InvalidInputError, match=msg):
            col.search(vector=q, filter=bad)
    assert col.search(vector=q, k=n, filter={"year": {"$in": []}}) == []


def test_has_term_filter(db):
    col = db.create_collection("c", dim=2)
    col.upsert([1, 2], [[1, 0], [0, 1]], texts=["Rust storage", "Python bindings"])
    assert [h.id for h in col.search(vector=[1, 0], filter={"$contains": "python"})] == [2]


# --- persistence, maintenance, concurrency -------------------------------------------------------


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "db"
    x = unit_rows(500, 8)
    with cairndb.open(path) as db:
        col = db.create_collection("c", dim=8, stem=True)
        col.upsert(list(range(300)), x[:300], texts=[f"doc {i}" for i in range(300)])
        col.flush()
        col.upsert(list(range(300, 500)), x[300:], payloads=[{"i": i} for i in range(300, 500)])
        col.delete([0, 499])
        before = [h.id for h in col.search(vector=x[5], k=10, exact=True)]
    with cairndb.open(path) as db:
        col = db.collection("c")
        assert len(col) == 498
        assert col.get(0) is None and col.get(499) is None
        assert col.get(1).text == "doc 1"
        assert col.get(400).payload == {"i": 400}
        assert [h.id for h in col.search(vector=x[5], k=10, exact=True)] == before
        assert db.verify()["collections"] == 1


def test_buffered_durability_sync_and_stats_and_compact(tmp_path):
    with cairndb.open(tmp_path / "db", durability="buffered", background_compaction=False) as db:
        col = db.create_collection("c", dim=4)
        for batch in range(3):
            ids = list(range(batch * 100, batch * 100 + 100))
            col.upsert(ids, unit_rows(100, 4, seed=batch))
            col.flush()
        col.delete(list(range(0, 300, 2)))
        db.sync()
        s = col.stats()
        assert s["records"] == 150 and len(s["segments"]) == 3
        col.warm_up()
        segs = col.stats()["segments"]
        # The int8 codes are each segment's mapped codes file: one 64-byte row per vector
        # (and its block table), nothing on the heap.
        assert sum(seg["codes_bytes"] for seg in segs) >= 300 * 64
        assert sum(seg["index_heap_bytes"] for seg in segs) == 0
        report = col.compact()
        assert report["segments_in"] == 3 and report["rows_out"] == 150
        assert len(col.stats()["segments"]) == 1
        assert len(col) == 150
        assert db.verify()["segments"] == 1


def test_concurrent_searches_from_threads(db):
    x = unit_rows(3000, 32)
    col = db.create_collection("c", dim=32)
    col.upsert(list(range(3000)), x)
    queries = unit_rows(40, 32, seed=9)
    want = [[h.id for h in col.search(vector=q, k=10)] for q in queries]
    errors = []

    def worker():
        try:
            for _ in range(5):
                for q, w in zip(queries, want):
                    assert [h.id for h in col.search(vector=q, k=10)] == w
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    writer_done = threading.Event()

    def writer():
        # Writes into another collection while the readers run: both sides release the GIL.
        other = db.create_collection("w", dim=32)
        for i in range(20):
            other.upsert(list(range(i * 50, i * 50 + 50)), unit_rows(50, 32, seed=100 + i))
        writer_done.set()

    threads = [threading.Thread(target=worker) for _ in range(4)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert writer_done.is_set() and len(db.collection("w")) == 1000
