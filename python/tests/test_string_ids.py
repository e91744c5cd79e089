"""String ids (issue 15): a collection created with `id_type="str"` takes str ids everywhere
(upsert, get, delete, update, scan/get `after`, Scan.cursor, hits, Record/Hit), they come back
exactly as given — through close/reopen, flush and compact — and ids of the wrong kind or shape
are refused with a clear error before anything is written."""

import pickle
import random

import numpy as np
import pytest

import cairndb

DIM = 3

# Ids a RAG pipeline uses, and awkward ones: unicode, spaces, a numeric-looking string, the
# longest (1024 bytes of 2-byte characters), NUL and newline.
ODD_IDS = [
    "doc-1#0",
    "docs/a.md#12",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "5",
    " ",
    "naïve — ☃ 🌍",
    "é" * 512,
    "a\x00b",
    "line\nbreak",
]


def unit(i):
    rng = np.random.default_rng(i)
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "db")


@pytest.fixture
def db(path):
    d = cairndb.open(path)
    yield d
    d.close()


@pytest.fixture
def col(db):
    return db.create_collection("s", dim=DIM, id_type="str")


def fill(col, ids):
    col.upsert(
        ids,
        np.stack([unit(i) for i in range(len(ids))]),
        texts=[f"text of {i}" for i in ids],
        payloads=[{"n": n, "id": i} for n, i in enumerate(ids)],
    )


def all_ids(col):
    return [r.id for r in col.scan()]


# -- the setting ----------------------------------------------------------------------------


def test_id_type_is_chosen_at_creation_and_readable(db):
    ints = db.create_collection("i", dim=DIM)
    strs = db.create_collection("s", dim=DIM, id_type="str")
    explicit = db.create_collection("e", DIM, "cosine", "int")
    assert (ints.id_type, strs.id_type, explicit.id_type) == ("int", "str", "int")
    assert strs.stats()["id_type"] == "str" and ints.stats()["id_type"] == "int"
    assert repr(strs) == 'cairndb.Collection("s", dim=3, metric="cosine", id_type="str")'
    assert repr(ints) == 'cairndb.Collection("i", dim=3, metric="cosine")'
    assert db.collection("s").id_type == "str"


@pytest.mark.parametrize("bad", ["string", "INT", "", "uuid"])
def test_a_bad_id_type_names_the_choices(db, bad):
    for create in (db.create_collection, db.get_or_create_collection):
        with pytest.raises(cairndb.InvalidInputError, match=r'id_type must be "int" or "str"'):
            create("c", dim=DIM, id_type=bad)
    assert db.collections() == []


def test_id_type_must_be_a_string(db):
    with pytest.raises(TypeError):
        db.create_collection("c", dim=DIM, id_type=str)
    assert db.collections() == []


def test_get_or_create_refuses_the_other_id_type(db):
    db.create_collection("i", dim=DIM)
    db.create_collection("s", dim=DIM, id_type="str")
    with pytest.raises(cairndb.InvalidInputError, match="exists with id_type int, asked for str"):
        db.get_or_create_collection("i", dim=DIM, id_type="str")
    # The default is "int": a str collection is not returned for it.
    with pytest.raises(cairndb.InvalidInputError, match="exists with id_type str, asked for int"):
        db.get_or_create_collection("s", dim=DIM)
    assert db.get_or_create_collection("s", dim=DIM, id_type="str").id_type == "str"
    assert db.get_or_create_collection("i", dim=DIM, id_type="int").id_type == "int"


def test_id_type_survives_a_reopen(path):
    with cairndb.open(path) as db:
        db.create_collection("s", dim=DIM, id_type="str").upsert(["a"], [unit(0)])
    with cairndb.open(path) as db:
        col = db.collection("s")
        assert col.id_type == "str"
        assert col.get("a").id == "a"


# -- round trips ----------------------------------------------------------------------------


def test_every_api_takes_and_returns_str_ids(col):
    fill(col, ODD_IDS)
    assert len(col) == len(ODD_IDS)
    for n, i in enumerate(ODD_IDS):
        r = col.get(i)
        assert r is not None and r.id == i and type(r.id) is str
        assert r.text == f"text of {i}" and r.payload == {"n": n, "id": i}
    got = col.get([ODD_IDS[1], "missing", ODD_IDS[0]])
    assert [r.id if r else None for r in got] == [ODD_IDS[1], None, ODD_IDS[0]]
    assert col.get("missing") is None
    assert sorted(all_ids(col)) == sorted(ODD_IDS)
    # Search: every hit's id is one of the strings, and the best hit of a stored vector is it.
    for n, i in enumerate(ODD_IDS):
        hits = col.search(vector=unit(n), k=3, exact=True)
        assert hits[0].id == i
    assert col.search(text="text", k=len(ODD_IDS))[0].id in ODD_IDS
    hybrid = col.search(vector=unit(0), text="text", k=2)
    assert hybrid[0].id in ODD_IDS and hybrid[0].legs is not None
    # Filtered search and explain carry str ids too.
    hits = col.search(vector=unit(0), k=5, filter={"id": ODD_IDS[0]})
    assert [h.id for h in hits] == [ODD_IDS[0]]
    ex = col.explain(vector=unit(0), k=1, exact=True)
    assert ex["hits"][0]["id"] == ODD_IDS[0]


def test_search_batch_returns_an_object_array_of_str_padded_with_none(col):
    fill(col, ODD_IDS[:3])
    ids, scores = col.search_batch(np.stack([unit(0), unit(1)]), k=5, exact=True)
    assert ids.shape == (2, 5) and scores.shape == (2, 5)
    assert ids.dtype == object
    assert ids[0, 0] == ODD_IDS[0] and ids[1, 0] == ODD_IDS[1]
    assert set(ids[0, :3]) == set(ODD_IDS[:3])
    assert list(ids[:, 3:].ravel()) == [None] * 4
    assert np.isnan(scores[:, 3:]).all()
    empty_ids, empty_scores = col.search_batch(np.zeros((0, DIM), dtype=np.float32), k=2)
    assert empty_ids.shape == (0, 2) and empty_scores.shape == (0, 2)


def test_int_collections_keep_their_uint64_search_batch(db):
    col = db.create_collection("i", dim=DIM)
    col.upsert(np.array([7, 9], dtype=np.uint64), np.stack([unit(0), unit(1)]))
    ids, _ = col.search_batch([unit(0)], k=3, exact=True)
    assert ids.dtype == np.uint64 and list(ids[0]) == [7, 9, 2**64 - 1]


def test_delete_and_update_by_str_id(col):
    fill(col, ODD_IDS)
    assert col.delete([ODD_IDS[0], "missing", ODD_IDS[0]]) == 1
    assert col.delete(ODD_IDS[1]) == 1
    assert col.get(ODD_IDS[0]) is None and col.get(ODD_IDS[1]) is None
    assert len(col) == len(ODD_IDS) - 2
    assert col.update([ODD_IDS[2], "missing"], payloads=[{"x": 1}, {"x": 2}]) == 1
    r = col.get(ODD_IDS[2])
    assert r.payload == {"n": 2, "id": ODD_IDS[2], "x": 1}
    assert col.update(ODD_IDS[3], texts=["new"], merge=False) == 1
    assert col.get(ODD_IDS[3]).text == "new"
    assert col.delete(filter={"n": {"$gte": 5}}) == len(ODD_IDS) - 5
    assert sorted(all_ids(col)) == sorted(ODD_IDS[2:5])


def test_upsert_replaces_by_str_id_and_a_repeated_id_keeps_the_last(col):
    col.upsert(["a", "b", "a"], [unit(0), unit(1), unit(2)], texts=["1", "2", "3"])
    assert len(col) == 2
    assert col.get("a").text == "3"
    col.upsert("a", [unit(3)], texts=["4"])
    assert col.get("a").text == "4" and len(col) == 2


def test_str_ids_round_trip_through_flush_compact_and_reopen(path):
    ids = ODD_IDS + [f"chunk-{i}" for i in range(300)]
    with cairndb.open(path, background_compaction=False) as db:
        col = db.create_collection("s", dim=DIM, id_type="str")
        fill(col, ids[:100])
        col.flush()  # a segment
        fill(col, ids)  # replaces the first 100, in the memtable
        col.delete(["chunk-0", "chunk-1"])
        before = [(r.id, r.text, r.payload) for r in col.scan()]
        assert sorted(i for i, _, _ in before) == sorted(set(ids) - {"chunk-0", "chunk-1"})
        col.flush()
        assert [(r.id, r.text, r.payload) for r in col.scan()] == before
        report = col.compact()
        assert report["rows_out"] == len(before)
        assert [(r.id, r.text, r.payload) for r in col.scan()] == before
    with cairndb.open(path) as db:
        col = db.collection("s")
        assert [(r.id, r.text, r.payload) for r in col.scan()] == before
        for i in ODD_IDS:
            assert col.get(i).id == i
        assert col.get("chunk-0") is None
        assert col.search(vector=unit(0), k=1, exact=True)[0].id == ids[0]


def test_unflushed_str_ids_are_recovered_from_the_log(path):
    with cairndb.open(path, background_compaction=False) as db:
        col = db.create_collection("s", dim=DIM, id_type="str")
        fill(col, ODD_IDS)
        col.delete([ODD_IDS[-1]])
    with cairndb.open(path) as db:
        assert sorted(all_ids(db.collection("s"))) == sorted(ODD_IDS[:-1])


def test_a_read_only_handle_reads_str_ids(path):
    writer = cairndb.open(path)
    col = writer.create_collection("s", dim=DIM, id_type="str")
    fill(col, ODD_IDS[:4])
    reader = cairndb.open(path, read_only=True)
    ro = reader.collection("s")
    assert ro.id_type == "str"
    assert sorted(all_ids(ro)) == sorted(ODD_IDS[:4])
    col.delete([ODD_IDS[0]])
    fill(col, ["late"])
    assert ro.get([ODD_IDS[0], "late"])[0] is None and ro.get("late").id == "late"
    with pytest.raises(cairndb.ReadOnlyError):
        ro.delete(["late"])
    with pytest.raises(cairndb.InvalidInputError, match="has string ids"):
        ro.get(1)
    reader.close()
    writer.close()


# -- scans and cursors ----------------------------------------------------------------------


def test_a_scan_resumed_after_its_str_cursor_returns_the_rest(col):
    ids = [f"k{i}" for i in range(50)]
    fill(col, ids)
    full = all_ids(col)
    assert sorted(full) == sorted(ids)
    # The order is fixed (a hash of the ids), the same in every scan.
    assert all_ids(col) == full
    scan = col.scan(batch_size=7)
    first = [next(scan).id for _ in range(20)]
    cursor = scan.cursor
    assert isinstance(cursor, str) and cursor == first[-1]
    # A write after the first scan started shows in the resumed one (a newer snapshot).
    col.delete([full[30]])
    rest = [r.id for r in col.scan(after=cursor)]
    assert first + rest == [i for i in full if i != full[30]]
    # Pages of get(limit=, after=) walk the same order.
    pages, after = [], None
    while True:
        page = col.get(limit=6, after=after)
        if not page:
            break
        pages += [r.id for r in page]
        after = page[-1].id
    assert pages == [i for i in full if i != full[30]]


def test_scan_after_an_id_that_is_not_stored(col):
    fill(col, [f"k{i}" for i in range(10)])
    # Resuming after a deleted (or never stored) id is fine: the order is by its hash.
    got = [r.id for r in col.scan(after="never stored")]
    assert set(got) <= {f"k{i}" for i in range(10)}
    assert col.scan(after="never stored").cursor == "never stored"
    assert col.scan().cursor is None


def test_scan_with_a_filter_and_include(col):
    fill(col, ODD_IDS)
    recs = list(col.scan(filter={"n": {"$lt": 3}}, include=["payload"]))
    assert sorted(r.id for r in recs) == sorted(ODD_IDS[:3])
    assert all(r.text is None for r in recs)


# -- Hit and Record -------------------------------------------------------------------------


def test_hits_and_records_with_str_ids_pickle_compare_and_hash(col):
    fill(col, ODD_IDS)
    hits = col.search(vector=unit(5), text="text", k=4)
    assert hits and all(isinstance(h.id, str) for h in hits)
    again = pickle.loads(pickle.dumps(hits))
    assert again == hits and [h.id for h in again] == [h.id for h in hits]
    assert {*hits, *again} == set(hits)
    assert hits[0].to_dict()["id"] == hits[0].id
    rec = col.get(ODD_IDS[6])
    back = pickle.loads(pickle.dumps(rec))
    assert back == rec and back.id == "é" * 512 and hash(back) == hash(rec)
    assert rec.to_dict()["id"] == "é" * 512
    assert repr(cairndb.Hit("a#1", 0.5)) == 'Hit(id="a#1", score=0.500000)'
    assert repr(cairndb.Record("a", [1.0])) == 'Record(id="a", dim=1)'
    # A str id is not the int it spells.
    assert cairndb.Hit("5", 1.0) != cairndb.Hit(5, 1.0)
    assert cairndb.Record("5", [1.0]) != cairndb.Record(5, [1.0])
    assert cairndb.Hit(5, 1.0) == pickle.loads(pickle.dumps(cairndb.Hit(5, 1.0)))
    with pytest.raises(TypeError, match="int or str, found bool"):
        cairndb.Hit(True, 1.0)
    with pytest.raises(TypeError, match="int or str, found float"):
        cairndb.Record(1.5, [1.0])


def test_a_reranker_sees_str_ids(col):
    fill(col, ODD_IDS)
    seen = []

    def rerank(text, hits):
        seen.extend(h.id for h in hits)
        return [1.0 if h.id == ODD_IDS[4] else 0.0 for h in hits]

    hits = col.search(text="text", k=3, rerank=rerank, rerank_top_n=len(ODD_IDS))
    assert hits[0].id == ODD_IDS[4]
    assert set(seen) == set(ODD_IDS)


# -- hostile ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, msg",
    [
        ("", "cannot be empty"),
        ("x" * 1025, "1025 bytes long; ids are at most 1024 bytes"),
        ("é" * 512 + "x", "1025 bytes long"),
        ("\ud800", "not valid UTF-8"),
        ("ok\udfffok", "not valid UTF-8"),
        (5, "has string ids; got the integer id 5"),
        (np.uint64(5), "has string ids; got the integer id 5"),
    ],
)
def test_bad_str_ids_are_refused_and_nothing_is_written(col, bad, msg):
    fill(col, ["keep"])
    with pytest.raises(cairndb.InvalidInputError, match=msg):
        col.upsert(["fine", bad], [unit(1), unit(2)])
    assert all_ids(col) == ["keep"]
    with pytest.raises(cairndb.InvalidInputError, match=msg):
        col.get(bad)
    with pytest.raises(cairndb.InvalidInputError, match=msg):
        col.get(["keep", bad])
    with pytest.raises(cairndb.InvalidInputError, match=msg):
        col.delete(["keep", bad])
    with pytest.raises(cairndb.InvalidInputError, match=msg):
        col.update(["keep", bad], texts=["changed", "x"])
    with pytest.raises(cairndb.InvalidInputError, match=msg):
        col.scan(after=bad)
    with pytest.raises(cairndb.InvalidInputError, match=msg):
        col.get(after=bad)
    assert col.get("keep").text == "text of keep"


def test_the_longest_id_is_accepted(col):
    longest = "x" * 1024
    col.upsert([longest], [unit(0)])
    assert col.get(longest).id == longest
    assert [r.id for r in col.scan(after=None)] == [longest]


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        ("5", cairndb.InvalidInputError, 'has integer ids; got the string id "5"'),
        ("doc-1", cairndb.InvalidInputError, 'got the string id "doc-1"'),
        (True, TypeError, "int or str, found bool"),
        (np.bool_(True), TypeError, "int or str, found bool"),
        (1.0, TypeError, "int or str, found float"),
        (b"a", TypeError, "int or str, found bytes"),
        (-1, cairndb.InvalidInputError, "outside 0..2\\*\\*64"),
    ],
)
def test_the_wrong_kind_of_id_in_an_int_collection(db, bad, exc, msg):
    col = db.create_collection("i", dim=DIM)
    col.upsert([1], [unit(0)])
    with pytest.raises(exc, match=msg):
        col.upsert([2, bad], [unit(1), unit(2)])
    with pytest.raises(exc, match=msg):
        col.get([1, bad])
    with pytest.raises(exc, match=msg):
        col.delete([1, bad])
    with pytest.raises(exc, match=msg):
        col.update([1, bad], texts=["a", "b"])
    with pytest.raises(exc, match=msg):
        col.scan(after=bad)
    assert [r.id for r in col.scan()] == [1]


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        (True, TypeError, "int or str, found bool"),
        (None, TypeError, "int or str, found NoneType"),
        (["a"], TypeError, "int or str, found list"),
        (np.array([1, 2]), cairndb.InvalidInputError, "got the integer id 1"),
    ],
)
def test_other_things_are_not_str_ids(col, bad, exc, msg):
    ids = bad if isinstance(bad, np.ndarray) else ["a", bad]
    with pytest.raises(exc, match=msg):
        col.upsert(ids, [unit(0), unit(1)])
    assert len(col) == 0


def test_a_bool_is_not_one_id(col, db):
    with pytest.raises(TypeError, match="found bool"):
        col.get(True)
    ints = db.create_collection("i", dim=DIM)
    with pytest.raises(TypeError, match="found bool"):
        ints.get(False)
    with pytest.raises(TypeError, match="found bool"):
        ints.delete(True)


def test_numpy_ids(db, col):
    ints = db.create_collection("i", dim=DIM)
    ints.upsert(np.array([3, 4], dtype=np.int32), [unit(0), unit(1)])
    ints.upsert([np.int64(5), np.uint8(6)], [unit(2), unit(3)])
    assert [r.id for r in ints.scan()] == [3, 4, 5, 6]
    assert all(type(r.id) is int for r in ints.scan())
    # A numpy integer scalar is one id.
    assert ints.get(np.uint64(5)).id == 5
    with pytest.raises(TypeError, match="not bool"):
        ints.get(np.bool_(True))
    assert [r.id for r in ints.get(np.array([6, 3], dtype=np.uint64))] == [6, 3]
    assert ints.delete(np.array([3], dtype=np.int64)) == 1
    # A numpy array of str (and numpy str scalars) in a str collection.
    col.upsert(np.array(["a", "bb"]), [unit(0), unit(1)])
    assert sorted(all_ids(col)) == ["a", "bb"]
    assert all(type(i) is str for i in all_ids(col))
    assert col.get(np.str_("bb")).id == "bb"
    assert [r.id for r in col.get(np.array(["bb", "a"]))] == ["bb", "a"]


def test_id_collision_error_is_a_bad_input_error():
    assert issubclass(cairndb.IdCollisionError, cairndb.InvalidInputError)
    assert issubclass(cairndb.IdCollisionError, cairndb.CairnError)
    assert issubclass(cairndb.IdCollisionError, ValueError)


# -- against a model ------------------------------------------------------------------------


def id_pool(rng):
    """Ids of every shape: short, long, unicode, numeric-looking."""
    pool = set()
    while len(pool) < 60:
        kind = rng.randrange(5)
        if kind == 0:
            pool.add(f"doc-{rng.randrange(40)}#{rng.randrange(5)}")
        elif kind == 1:
            pool.add(str(rng.randrange(100)))
        elif kind == 2:
            pool.add("".join(rng.choice("aé☃🌍 #/") for _ in range(rng.randrange(1, 12))))
        elif kind == 3:
            pool.add("z" * rng.randrange(1000, 1025))
        else:
            pool.add(f"{rng.getrandbits(128):032x}")
    return sorted(pool)


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_against_a_dict_model(tmp_path, seed):
    rng = random.Random(seed)
    pool = id_pool(rng)
    path = str(tmp_path / "db")
    db = cairndb.open(path, background_compaction=False)
    col = db.create_collection("s", dim=DIM, id_type="str")
    model = {}  # id -> (vector index, text, payload)

    def check():
        assert len(col) == len(model)
        recs = list(col.scan(batch_size=rng.randrange(1, 20)))
        assert sorted(r.id for r in recs) == sorted(model)
        for r in recs:
            v, t, p = model[r.id]
            np.testing.assert_allclose(r.vector, unit(v), rtol=1e-6)
            assert (r.text, r.payload) == (t, p)
        probe = rng.sample(pool, 10)
        for want, got in zip(probe, col.get(probe)):
            assert (got.id if got else None) == (want if want in model else None)
        if model:
            i = rng.choice(sorted(model))
            assert col.search(vector=unit(model[i][0]), k=1, exact=True)[0].score > 0.999

    for _ in range(40):
        op = rng.randrange(8)
        if op <= 2:
            ids = rng.sample(pool, rng.randrange(1, 8))
            vs = [rng.randrange(1000) for _ in ids]
            texts = [rng.choice([None, "t", f"text {rng.randrange(9)}"]) for _ in ids]
            payloads = [{"n": rng.randrange(5)} for _ in ids]
            col.upsert(ids, np.stack([unit(v) for v in vs]), texts=texts, payloads=payloads)
            for i, v, t, p in zip(ids, vs, texts, payloads):
                model[i] = (v, t, p)
        elif op == 3:
            ids = rng.sample(pool, rng.randrange(1, 6))
            assert col.delete(ids) == len(set(ids) & set(model))
            for i in ids:
                model.pop(i, None)
        elif op == 4:
            ids = rng.sample(pool, rng.randrange(1, 6))
            extra = [{"m": rng.randrange(3)} for _ in ids]
            assert col.update(ids, payloads=extra) == len(set(ids) & set(model))
            for i, e in zip(ids, extra):
                if i in model:
                    v, t, p = model[i]
                    model[i] = (v, t, {**p, **e})
        elif op == 5:
            n = rng.randrange(5)
            assert col.delete(filter={"n": n}) == sum(1 for _, _, p in model.values() if p["n"] == n)
            model = {i: r for i, r in model.items() if r[2]["n"] != n}
        elif op == 6:
            rng.choice([col.flush, col.compact])()
        else:
            db.close()
            db = cairndb.open(path, background_compaction=False)
            col = db.collection("s")
        check()
    db.close()
