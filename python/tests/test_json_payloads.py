"""Payloads are JSON: any JSON value round-trips exactly; non-finite floats and values nested too
deep are refused with a clear error (never a crash); filters address nested keys and arrays."""

import json
import math
import random

import pytest

import cairndb


@pytest.fixture
def db(tmp_path):
    d = cairndb.open(tmp_path / "db")
    yield d
    d.close()


PAYLOADS = [
    {},
    {"n": None, "t": True, "f": False},
    {"big": 2**64 - 1, "small": -(2**63), "max": 2**63 - 1, "zero": 0},
    {"x": 0.1 + 0.2, "tiny": 5e-324, "huge": 1.7976931348623157e308, "neg0": -0.0, "two": 2.0},
    {"l": [1, "a", None, [], {}, [[2.5]], {"k": [True]}]},
    {"meta": {"author": "x", "tags": ["a", "b"], "deep": {"e": {}}}},
    {"ünï": {"ключ": "値", "🙂": [None]}, "": ""},
]


def random_json(rng, depth=0):
    kind = rng.randrange(9 if depth < 5 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64 - 1, rng.randrange(-(2**63), 2**64)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e-300, rng.uniform(-1e9, 1e9)])
    if kind in (4, 5):
        return "".join(rng.choice("aé🙂 \"\\") for _ in range(rng.randrange(4)))
    if kind in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        "".join(rng.choice("abé.") for _ in range(rng.randrange(3))): random_json(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def same(a, b):
    """Exact equality: types too (1 is not 1.0, True is not 1), floats bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_json_payloads_round_trip_exactly(db, tmp_path):
    rng = random.Random(7)
    payloads = PAYLOADS + [
        {f"k{i}": random_json(rng) for i in range(rng.randrange(4))} for _ in range(200)
    ]
    col = db.create_collection("c", dim=2)
    ids = list(range(len(payloads)))
    col.upsert(ids, [[1.0, float(i)] for i in ids], payloads=payloads)

    def check(col):
        for i, p in zip(ids, payloads):
            got = col.get(i).payload
            assert same(got, p), (i, got, p)
        hits = col.search(vector=[1.0, 0.0], k=len(ids), exact=True, include_payload=True)
        assert all(same(h.payload, payloads[h.id]) for h in hits)

    check(col)
    col.flush()
    check(col)
    db.close()
    db2 = cairndb.open(tmp_path / "db")
    check(db2.collection("c"))
    db2.close()


def test_non_finite_floats_are_refused(db):
    col = db.create_collection("c", dim=2)
    for bad in [float("nan"), float("inf"), -float("inf"), [1.0, float("nan")], {"a": {"b": float("inf")}}]:
        with pytest.raises(ValueError, match="not a finite number"):
            col.upsert([1], [[1, 0]], payloads=[{"x": bad}])
        with pytest.raises(cairndb.CairnError):
            col.upsert([1], [[1, 0]], payloads=[{"x": bad}])
    assert len(col) == 0


@pytest.mark.parametrize("container", ["dict", "list"])
def test_deep_payload_is_an_error_not_a_crash(db, container):
    col = db.create_collection("c", dim=2)
    deep = 1
    for _ in range(100_000):
        deep = {"k": deep} if container == "dict" else [deep]
    with pytest.raises(cairndb.InvalidInputError, match="nested deeper than 64"):
        col.upsert([1], [[1, 0]], payloads=[{"x": deep}])
    assert len(col) == 0
    # 64 levels is the limit and is accepted.
    ok = 1
    for _ in range(64):
        ok = [ok]
    col.upsert([1], [[1, 0]], payloads=[{"x": ok}])
    assert col.get(1).payload == {"x": ok}


def test_filters_on_nested_paths_arrays_and_null(db):
    col = db.create_collection("c", dim=2)
    payloads = [
        {"meta": {"author": "x", "year": 2020}, "tags": ["a", "b"]},
        {"meta": {"author": "y"}, "authors": [{"name": "x"}, {"name": "z"}]},
        {"meta": None, "tags": []},
        {"n": [1, 2**64 - 1]},
        {},
    ]
    col.upsert(list(range(len(payloads))), [[1.0, float(i)] for i in range(len(payloads))], payloads=payloads)
    for flush in (False, True):
        if flush:
            col.flush()

        def ids(f):
            return sorted(h.id for h in col.search(vector=[1.0, 0.0], k=10, exact=True, filter=f))

        assert ids({"meta.author": "x"}) == [0]
        assert ids({"meta.year": {"$gte": 2020}}) == [0]
        assert ids({"tags": "b"}) == [0]
        assert ids({"authors.name": "x"}) == [1]
        assert ids({"meta": None}) == [2]
        assert ids({"meta": {"$exists": False}}) == [3, 4]
        assert ids({"meta": {"$exists": True}}) == [0, 1, 2]
        assert ids({"n": 2**64 - 1}) == [3]
        assert ids({"n": {"$gt": 1.5}}) == [3]
