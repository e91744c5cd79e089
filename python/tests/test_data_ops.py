"""update / delete(filter=) / count / scan / get(filter=, limit=, after=) (issue 15), checked
against a dict model over random operation sequences, and their edge cases."""

import random
import threading

import numpy as np
import pytest

import cairndb

DIM = 4
COLORS = ["red", "green", "blue"]


def vec(rng):
    return [rng.choice([-1.0, -0.5, 0.5, 1.0, 1.5]) for _ in range(DIM)]


def payload(rng):
    p = {}
    if rng.random() < 0.8:
        p["color"] = rng.choice(COLORS)
    if rng.random() < 0.7:
        p["n"] = rng.randrange(-3, 4)
    return p


FILTERS = [
    ({"color": "red"}, lambda p: p.get("color") == "red"),
    ('color = "blue"', lambda p: p.get("color") == "blue"),
    ({"n": {"$gte": 1}}, lambda p: "n" in p and p["n"] >= 1),
    ({"$or": [{"color": "green"}, {"n": {"$lt": 0}}]},
     lambda p: p.get("color") == "green" or ("n" in p and p["n"] < 0)),
]


def check(col, model):
    assert len(col) == len(model)
    assert col.count() == len(model)
    recs = list(col.scan(batch_size=3))
    assert [r.id for r in recs] == sorted(model)
    for r in recs:
        v, t, p = model[r.id]
        np.testing.assert_array_equal(r.vector, np.asarray(v, dtype=np.float32))
        assert r.text == t
        assert r.payload == p
    for f, pred in FILTERS:
        want = sorted(i for i, (_, _, p) in model.items() if pred(p))
        assert col.count(filter=f) == len(want), f
        assert [r.id for r in col.scan(filter=f, batch_size=2)] == want, f
        # Paged through get(filter=, limit=, after=).
        got, after = [], None
        for _ in range(len(want) + 1):
            page = col.get(filter=f, limit=2, after=after)
            if not page:
                break
            got += [r.id for r in page]
            after = page[-1].id
        assert got == want, f


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_operations_agree_with_a_model(tmp_path, seed):
    rng = random.Random(seed)
    db = cairndb.open(str(tmp_path / "db"))
    col = db.create_collection("c", dim=DIM, metric="dot")
    model = {}
    for step in range(60):
        op = rng.choice(["upsert", "upsert", "update", "delete", "delete_where", "flush"])
        if op == "upsert":
            ids = rng.sample(range(30), rng.randrange(1, 6))
            vs = [vec(rng) for _ in ids]
            ts = [rng.choice([None, "alpha", "beta gamma"]) for _ in ids]
            ps = [payload(rng) for _ in ids]
            col.upsert(ids, np.asarray(vs, dtype=np.float32), texts=ts, payloads=ps)
            for i, v, t, p in zip(ids, vs, ts, ps):
                model[i] = (v, t, p)
        elif op == "update":
            ids = rng.sample(range(30), rng.randrange(1, 5))
            merge = rng.random() < 0.5
            kw = {"merge": merge}
            vs = ts = ps = None
            if rng.random() < 0.4:
                vs = [vec(rng) for _ in ids]
                kw["vectors"] = np.asarray(vs, dtype=np.float32)
            if rng.random() < 0.5:
                ts = [rng.choice([None, "delta", "epsilon"]) for _ in ids]
                kw["texts"] = ts
            if rng.random() < 0.7:
                ps = [rng.choice([None, payload(rng)]) for _ in ids]
                kw["payloads"] = ps
            n = col.update(ids, **kw)
            want = 0
            for j, i in enumerate(ids):
                if i not in model:
                    continue
                want += 1
                v, t, p = model[i]
                if vs is not None:
                    v = vs[j]
                if ts is not None and ts[j] is not None:
                    t = ts[j]
                if ps is not None and ps[j] is not None:
                    p = {**p, **ps[j]} if merge else dict(ps[j])
                model[i] = (v, t, p)
            assert n == want, step
        elif op == "delete":
            ids = rng.sample(range(30), rng.randrange(1, 4))
            n = col.delete(ids)
            assert n == sum(1 for i in ids if model.pop(i, None) is not None)
        elif op == "delete_where":
            f, pred = rng.choice(FILTERS)
            n = col.delete(filter=f)
            gone = [i for i, (_, _, p) in model.items() if pred(p)]
            for i in gone:
                del model[i]
            assert n == len(gone), (step, f)
        else:
            col.flush()
        check(col, model)
    db.close()
    db = cairndb.open(str(tmp_path / "db"))
    check(db.collection("c"), model)
    db.close()


def filled(tmp_path, n=50):
    db = cairndb.open(str(tmp_path / "db"))
    col = db.create_collection("c", dim=DIM)
    ids = list(range(n))
    vs = np.ones((n, DIM), dtype=np.float32) + np.arange(n, dtype=np.float32)[:, None] * 0.01
    col.upsert(ids, vs, texts=[f"t{i}" for i in ids], payloads=[{"i": i} for i in ids])
    return db, col


def test_scan_is_a_snapshot_and_resumes_from_its_cursor(tmp_path):
    db, col = filled(tmp_path)
    s = col.scan(batch_size=7)
    first = [next(s).id for _ in range(10)]
    assert first == list(range(10))
    assert s.cursor == 9
    # Written after the scan started: not seen by it.
    col.delete(list(range(20, 30)))
    col.upsert([100], np.ones((1, DIM), dtype=np.float32))
    rest = [r.id for r in s]
    assert rest == list(range(10, 50))
    # A new scan from the cursor sees the new state.
    again = [r.id for r in col.scan(after=first[-1])]
    assert again == list(range(10, 20)) + list(range(30, 50)) + [100]
    db.close()


def test_scan_include_reads_only_what_is_asked(tmp_path):
    db, col = filled(tmp_path, 5)
    r = next(col.scan(include=["payload"]))
    assert r.payload == {"i": 0} and r.text is None and len(r.vector) == 0
    r = next(col.scan(include=["text", "vector"]))
    assert r.text == "t0" and r.payload == {} and len(r.vector) == DIM
    with pytest.raises(cairndb.InvalidInputError, match="unknown part"):
        col.scan(include=["vectorz"])
    with pytest.raises(cairndb.InvalidInputError, match="batch_size"):
        col.scan(batch_size=0)
    db.close()


def test_misuse_gets_clear_errors(tmp_path):
    db, col = filled(tmp_path, 5)
    with pytest.raises(cairndb.InvalidInputError, match="ids or filter"):
        col.delete()
    with pytest.raises(cairndb.InvalidInputError, match="not both"):
        col.delete([1], filter={"i": 1})
    with pytest.raises(cairndb.InvalidInputError, match="not both"):
        col.get([1], filter={"i": 1})
    with pytest.raises(cairndb.InvalidInputError):
        col.update([1, 2], vectors=np.ones((1, DIM), dtype=np.float32))
    with pytest.raises(cairndb.InvalidInputError):
        col.update([1], vectors=np.full((1, DIM), np.nan, dtype=np.float32))
    # Nothing was written by the failed calls.
    assert col.count() == 5 and col.get(1).payload == {"i": 1}
    assert col.update([99], payloads=[{"x": 1}]) == 0
    assert col.delete(filter={"i": {"$gte": 3}}) == 2
    assert col.count() == 3
    assert col.delete(filter={}) == 3
    assert col.count() == 0
    db.close()


def test_scan_after_close_raises_and_threads_do_not_deadlock(tmp_path):
    db, col = filled(tmp_path, 200)
    s = col.scan(batch_size=1)
    seen, errors = [], []

    def pull():
        try:
            for r in s:
                seen.append(r.id)
        except RuntimeError as e:
            errors.append(e)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a scan iterated from several threads hung"
    # Every record was handed out once (some threads may have been refused).
    assert sorted(seen) == list(range(200))
    s2 = col.scan(batch_size=2)
    next(s2)
    db.close()
    with pytest.raises(cairndb.ClosedError):
        list(s2)


def test_update_keeps_what_it_is_not_given(tmp_path):
    db, col = filled(tmp_path, 3)
    before = col.get(1)
    assert col.update([1], payloads=[{"extra": "x"}]) == 1
    r = col.get(1)
    assert r.payload == {"i": 1, "extra": "x"}
    assert r.text == before.text
    np.testing.assert_array_equal(r.vector, before.vector)
    assert col.update([1], payloads=[{"only": True}], merge=False) == 1
    assert col.get(1).payload == {"only": True}
    assert col.update([1], texts=["new text"]) == 1
    assert col.get(1).text == "new text"
    hits = col.search(text="new text", k=1)
    assert hits[0].id == 1
    db.close()


def test_hits_and_records_pickle_and_convert_to_dicts(tmp_path):
    import pickle

    db, col = filled(tmp_path, 5)
    col.upsert([7], np.ones((1, DIM), dtype=np.float32), texts=["hello world"],
               payloads=[{"s": "x", "n": 3, "f": 0.5, "b": True, "l": ["a"]}])
    hits = col.search(vector=[1.0] * DIM, text="hello", k=3)
    assert hits and hits[0].legs is not None
    for h in hits:
        back = pickle.loads(pickle.dumps(h))
        assert back == h and hash(back) == hash(h)
        assert back.to_dict() == h.to_dict()
        assert set(h.to_dict()) == {"id", "score", "text", "payload", "legs"}
    rec = col.get(7)
    back = pickle.loads(pickle.dumps(rec))
    assert back == rec and back.payload == rec.payload
    d = rec.to_dict()
    assert d["id"] == 7 and d["text"] == "hello world" and len(d["vector"]) == DIM
    assert d["payload"] == {"s": "x", "n": 3, "f": 0.5, "b": True, "l": ["a"]}
    assert rec != col.get(1)
    with pytest.raises(cairndb.InvalidInputError, match="legs"):
        cairndb.Hit(1, 0.5, legs={"fused": "no"})
    db.close()
