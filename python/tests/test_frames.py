"""Data frames in and out (issue 16 point 4): `upsert(frame)` with pandas, pyarrow and polars
frames and every vector column type, search results and scans as Arrow/pandas, a round trip
scan -> Arrow -> upsert, hostile frames, and the `embedding=` function path."""

import json
import math

import numpy as np
import pytest

import cairndb

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
pq = pytest.importorskip("pyarrow.parquet")

DIM = 4
N = 7


@pytest.fixture
def db(tmp_path):
    d = cairndb.open(str(tmp_path / "db"))
    yield d
    d.close()


def matrix(n=N, dim=DIM, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def ids_of(kind, n=N):
    return list(range(10, 10 + n)) if kind == "int" else [f"doc-{i}" for i in range(n)]


def vector_column(kind, x):
    """The vectors `x` as an Arrow array of the given column type."""
    n, dim = x.shape
    if kind == "fixed32":
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
    if kind == "fixed64":
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1).astype(np.float64)), dim)
    if kind == "list32":
        return pa.array(list(x), type=pa.list_(pa.float32()))
    if kind == "list64":
        return pa.array([r.astype(np.float64) for r in x], type=pa.list_(pa.float64()))
    if kind == "large32":
        return pa.array(list(x), type=pa.large_list(pa.float32()))
    raise AssertionError(kind)


VECTOR_KINDS = ["fixed32", "fixed64", "list32", "list64", "large32"]


def arrow_table(id_kind, vkind, x):
    return pa.table(
        {
            "id": pa.array(ids_of(id_kind, len(x)),
                           type=pa.int64() if id_kind == "int" else pa.string()),
            "vector": vector_column(vkind, x),
            "text": [f"text {i}" if i % 3 else None for i in range(len(x))],
            "lang": ["en" if i % 2 else "de" for i in range(len(x))],
            "year": pa.array([2000 + i if i != 2 else None for i in range(len(x))], type=pa.int64()),
            "score": [i / 4 for i in range(len(x))],
        }
    )


def as_frame(frame_kind, table):
    if frame_kind == "pyarrow":
        return table
    if frame_kind == "recordbatch":
        return table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)
    if frame_kind == "pandas":
        return table.to_pandas()
    if frame_kind == "polars":
        return pl.from_arrow(table)
    raise AssertionError(frame_kind)


def expected_payload(i):
    p = {"lang": "en" if i % 2 else "de", "score": i / 4}
    if i != 2:
        p["year"] = 2000 + i  # the null in row 2 leaves the key out
    return p


@pytest.mark.parametrize("id_kind", ["int", "str"])
@pytest.mark.parametrize("vkind", VECTOR_KINDS)
@pytest.mark.parametrize("frame_kind", ["pyarrow", "recordbatch", "pandas", "polars"])
def test_upsert_every_frame_and_vector_type(db, frame_kind, vkind, id_kind):
    x = matrix()
    col = db.create_collection("c", dim=DIM, metric="dot", id_type=id_kind)
    col.upsert(as_frame(frame_kind, arrow_table(id_kind, vkind, x)))
    assert len(col) == N
    for i, id_ in enumerate(ids_of(id_kind)):
        r = col.get(id_)
        assert r is not None, id_
        # float32 bit-exact (float64 input is rounded to the same float32)
        assert np.array_equal(r.vector, x[i]), (i, r.vector, x[i])
        assert r.text == (f"text {i}" if i % 3 else None)
        assert r.payload == expected_payload(i)
        assert type(r.payload["lang"]) is str and type(r.payload["score"]) is float


def test_fixed_size_list_is_read_in_place(db):
    """The FixedSizeList<float32> path hands the extension a numpy view of the Arrow buffer."""
    from cairndb import _frames

    x = matrix()
    t = arrow_table("int", "fixed32", x)
    _, vecs, _, _ = _frames.frame_columns(t, "pyarrow", None, "int", DIM, None)
    buf = t.column("vector").chunk(0).values.buffers()[1]
    assert vecs.__array_interface__["data"][0] == buf.address
    assert vecs.dtype == np.float32 and vecs.shape == (N, DIM)


def test_sliced_and_chunked_tables(db):
    x = matrix(20)
    t = arrow_table("int", "fixed32", x)
    col = db.create_collection("c", dim=DIM, metric="dot")
    col.upsert(t.slice(5, 6))  # an offset into the buffers
    assert sorted(r.id for r in col.scan()) == list(range(15, 21))
    assert np.array_equal(col.get(15).vector, x[5])
    chunked = pa.concat_tables([t.slice(0, 3), t.slice(3, 17)])
    assert chunked.column("vector").num_chunks == 2
    col.upsert(chunked)
    assert len(col) == 20
    assert all(np.array_equal(col.get(10 + i).vector, x[i]) for i in range(20))


def test_column_mapping(db):
    x = matrix()
    df = pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(N)],
            "embedding": list(x),
            "body": [f"body {i}" for i in range(N)],
            "keep": list(range(N)),
            "drop_me": ["x"] * N,
        }
    )
    col = db.create_collection("c", dim=DIM, metric="dot", id_type="str")
    col.upsert(df, columns={"id": "doc_id", "vector": "embedding", "text": "body", "fields": ["keep"]})
    r = col.get("d3")
    assert r.text == "body 3" and r.payload == {"keep": 3}
    assert np.array_equal(r.vector, x[3])


def test_payload_column_json_and_struct(db):
    x = matrix(3)
    col = db.create_collection("c", dim=DIM, metric="dot")
    t = pa.table(
        {
            "id": [1, 2, 3],
            "vector": vector_column("fixed32", x),
            "payload": ['{"a": 1, "n": {"b": [1, 2.5, "x"]}}', None, '{"z": null}'],
            "extra": ["e1", "e2", None],
        }
    )
    col.upsert(t)
    assert col.get(1).payload == {"a": 1, "n": {"b": [1, 2.5, "x"]}, "extra": "e1"}
    assert col.get(2).payload == {"extra": "e2"}
    assert col.get(3).payload == {"z": None}
    s = pa.table({"id": [4], "vector": vector_column("fixed32", x[:1]),
                  "payload": pa.array([{"k": "v", "i": 7}])})
    col.upsert(s)
    assert col.get(4).payload == {"k": "v", "i": 7}


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_round_trip_scan_to_arrow_upsert(db, id_kind):
    """scan -> to_arrow -> upsert into a new collection gives equal records (vectors
    bit-exact, JSON payloads with nesting, null and float/int kept apart)."""
    rng = np.random.default_rng(3)
    n = 2500
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    src = db.create_collection("src", dim=DIM, metric="dot", id_type=id_kind)
    ids = ids_of(id_kind, n)
    payloads = [
        {"i": i, "f": i + 0.5, "one": 1.0, "s": f"s{i}", "l": [i, "x", None], "o": {"k": [True]}}
        if i % 5 else {}
        for i in range(n)
    ]
    texts = [f"text {i}" if i % 7 else None for i in range(n)]
    src.upsert(ids, x, texts=texts, payloads=payloads)
    src.flush()
    reader = src.scan(batch_size=1000).to_arrow()
    assert isinstance(reader, pa.RecordBatchReader)
    sizes = [b.num_rows for b in reader]
    assert sizes == [1000, 1000, 500]  # memory bounded by the batch size
    table = src.to_arrow()
    assert table.schema.field("vector").type == pa.list_(pa.float32(), DIM)
    assert table.schema.field("id").type == (pa.uint64() if id_kind == "int" else pa.string())
    assert table.num_rows == n
    dst = db.create_collection("dst", dim=DIM, metric="dot", id_type=id_kind)
    dst.upsert(table)
    a = sorted((r.to_dict() for r in src.scan()), key=lambda d: str(d["id"]))
    b = sorted((r.to_dict() for r in dst.scan()), key=lambda d: str(d["id"]))
    assert len(a) == len(b) == n
    for ra, rb in zip(a, b):
        assert json.dumps(ra, sort_keys=True) == json.dumps(rb, sort_keys=True)
    # through Parquet too
    path = str(db.path) + "-export.parquet"
    pq.write_table(table, path)
    dst2 = db.create_collection("dst2", dim=DIM, metric="dot", id_type=id_kind)
    dst2.upsert(pq.read_table(path))
    assert sorted((json.dumps(r.to_dict(), sort_keys=True) for r in dst2.scan())) == sorted(
        json.dumps(r.to_dict(), sort_keys=True) for r in src.scan()
    )


def test_scan_to_arrow_include_and_filter(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    col.upsert(list(range(10)), matrix(10), payloads=[{"even": i % 2 == 0} for i in range(10)])
    t = col.to_arrow(filter={"even": True}, include=["payload"])
    assert t.column_names == ["id", "payload"]
    assert t.column("id").to_pylist() == [0, 2, 4, 6, 8]
    assert [json.loads(p) for p in t.column("payload").to_pylist()] == [{"even": True}] * 5
    empty = col.to_arrow(filter={"even": "nope"})
    assert empty.num_rows == 0 and "vector" in empty.column_names


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_search_result_to_arrow_and_pandas(db, id_kind):
    x = matrix()
    col = db.create_collection("c", dim=DIM, id_type=id_kind)
    col.upsert(arrow_table(id_kind, "fixed32", x))
    hits = col.search(x[0], k=3)
    assert isinstance(hits, list) and isinstance(hits, cairndb.SearchResult)
    assert len(hits) == 3 and hits[0].id == ids_of(id_kind)[0]
    assert hits == list(hits)  # still equal to the plain list of Hits
    t = hits.to_arrow()
    assert t.column_names == ["id", "score", "text", "payload"]
    assert t.column("id").to_pylist() == [h.id for h in hits]
    assert t.column("score").to_pylist() == [h.score for h in hits]
    assert [json.loads(p) for p in t.column("payload").to_pylist()] == [h.payload for h in hits]
    df = hits.to_pandas()
    assert list(df.columns) == ["id", "score", "text", "payload"]
    assert df["id"].tolist() == [h.id for h in hits]
    assert df["payload"].tolist() == [h.payload for h in hits]
    lean = col.search(x[0], k=2, include_text=False, include_payload=False)
    assert lean.to_arrow().column_names == ["id", "score"]
    none = col.search(x[0], k=2, filter={"lang": "none"})
    assert none.to_arrow().num_rows == 0 and none.to_pandas().shape == (0, 4)


# -- hostile frames --------------------------------------------------------------------------


def test_wrong_dim_in_one_row_names_the_row(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    rows = [np.ones(DIM, np.float32)] * 5
    rows[3] = np.ones(DIM + 1, np.float32)
    t = pa.table({"id": range(5), "vector": pa.array(rows, type=pa.list_(pa.float32()))})
    with pytest.raises(cairndb.InvalidInputError, match=r"row 3, column 'vector'.*length 5"):
        col.upsert(t)
    df = pd.DataFrame({"id": range(5), "vector": rows})
    with pytest.raises(cairndb.InvalidInputError, match=r"row 3"):
        col.upsert(df)
    fixed = pa.table({"id": [1], "vector": vector_column("fixed32", matrix(1, DIM + 2))})
    with pytest.raises(cairndb.InvalidInputError, match="length 6.*dimension is 4"):
        col.upsert(fixed)
    assert len(col) == 0


def test_missing_id_or_vector_column(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    with pytest.raises(cairndb.InvalidInputError, match="no id column 'id'"):
        col.upsert(pa.table({"key": [1], "vector": vector_column("fixed32", matrix(1))}))
    with pytest.raises(cairndb.InvalidInputError, match="no vector column"):
        col.upsert(pa.table({"id": [1], "text": ["t"]}))
    with pytest.raises(cairndb.InvalidInputError, match="no vector column 'emb'"):
        col.upsert(pa.table({"id": [1], "vector": vector_column("fixed32", matrix(1))}),
                   columns={"vector": "emb"})
    assert len(col) == 0


def test_nan_in_payload_names_row_and_column(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    t = pa.table({"id": range(4), "vector": vector_column("fixed32", matrix(4)),
                  "price": [1.0, 2.0, float("nan"), 3.0]})
    with pytest.raises(cairndb.InvalidInputError, match=r"row 2, column 'price': nan"):
        col.upsert(t)
    with pytest.raises(cairndb.InvalidInputError, match=r"row 1, column 'price': inf"):
        col.upsert(pl.DataFrame({"id": [0, 1], "vector": [[0.0] * DIM] * 2,
                                 "price": [1.0, math.inf]}))
    assert len(col) == 0
    # In pandas NaN is the missing value of a float column: it becomes null, so no key.
    col.upsert(pd.DataFrame({"id": [0, 1], "vector": list(matrix(2)), "price": [1.5, np.nan]}))
    assert col.get(0).payload == {"price": 1.5} and col.get(1).payload == {}
    with pytest.raises(cairndb.InvalidInputError, match=r"row 0, column 'price': -inf"):
        col.upsert(pd.DataFrame({"id": [2], "vector": list(matrix(1)), "price": [-np.inf]}))


def test_nulls_in_ids_and_vectors(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    with pytest.raises(cairndb.InvalidInputError, match=r"row 1, column 'id'"):
        col.upsert(pa.table({"id": [1, None], "vector": vector_column("fixed32", matrix(2))}))
    v = pa.array([[0.0] * DIM, None], type=pa.list_(pa.float32()))
    with pytest.raises(cairndb.InvalidInputError, match=r"row 1, column 'vector'"):
        col.upsert(pa.table({"id": [1, 2], "vector": v}))
    v = pa.array([[0.0] * DIM, [0.0, None, 0.0, 0.0]], type=pa.list_(pa.float32()))
    with pytest.raises(cairndb.InvalidInputError, match=r"row 1, column 'vector'.*null"):
        col.upsert(pa.table({"id": [1, 2], "vector": v}))
    with pytest.raises(cairndb.InvalidInputError, match=r"row 0, column 'id': id -1"):
        col.upsert(pa.table({"id": [-1], "vector": vector_column("fixed32", matrix(1))}))
    assert len(col) == 0


def test_id_kind_mismatch(db):
    ints = db.create_collection("i", dim=DIM, metric="dot")
    strs = db.create_collection("s", dim=DIM, metric="dot", id_type="str")
    with pytest.raises(cairndb.InvalidInputError, match="ids are int"):
        ints.upsert(pa.table({"id": ["a"], "vector": vector_column("fixed32", matrix(1))}))
    with pytest.raises(cairndb.InvalidInputError, match="ids are str"):
        strs.upsert(pa.table({"id": [1], "vector": vector_column("fixed32", matrix(1))}))


def test_empty_frame(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    t = arrow_table("int", "fixed32", matrix())
    for frame_kind in ["pyarrow", "recordbatch", "pandas", "polars"]:
        col.upsert(as_frame(frame_kind, t.slice(0, 0)))
    assert len(col) == 0


def test_reserved_column_names(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    x = matrix(2)
    # `id` mapped to another column while a column `id` is there: refused, not a payload field
    t = pa.table({"id": [1, 2], "key": [5, 6], "vector": vector_column("fixed32", x)})
    with pytest.raises(cairndb.InvalidInputError, match="'id' is a reserved name"):
        col.upsert(t, columns={"id": "key"})
    # a `payload` column that is not a JSON object
    t = pa.table({"id": [1, 2], "vector": vector_column("fixed32", x), "payload": [1, 2]})
    with pytest.raises(cairndb.InvalidInputError, match="row 0, column 'payload'.*JSON object"):
        col.upsert(t)
    t = pa.table({"id": [1, 2], "vector": vector_column("fixed32", x), "payload": ["{", "{}"]})
    with pytest.raises(cairndb.InvalidInputError, match="row 0, column 'payload': not JSON"):
        col.upsert(t)
    # a `text` column that is not text
    t = pa.table({"id": [1, 2], "vector": vector_column("fixed32", x), "text": [1, 2]})
    with pytest.raises(cairndb.InvalidInputError, match="column 'text' must hold str"):
        col.upsert(t)
    # an unknown role, extra positional arguments
    with pytest.raises(cairndb.InvalidInputError, match="unknown role 'ids'"):
        col.upsert(pa.table({"id": [1], "vector": vector_column("fixed32", x[:1])}), columns={"ids": "id"})
    with pytest.raises(TypeError, match="only argument"):
        col.upsert(pa.table({"id": [1], "vector": vector_column("fixed32", x[:1])}), x[:1])
    with pytest.raises(TypeError, match="columns= applies only"):
        col.upsert([1], x[:1], columns={"id": "id"})
    # a duplicated column name (pandas allows it)
    df = pd.DataFrame([[1, list(x[0]), 1]], columns=["id", "vector", "id"])
    with pytest.raises(cairndb.InvalidInputError, match="duplicate column names"):
        col.upsert(df)
    assert len(col) == 0


def test_pandas_index_is_not_a_column(db):
    col = db.create_collection("c", dim=DIM, metric="dot")
    df = pd.DataFrame({"id": [1, 2], "vector": list(matrix(2))}, index=["a", "b"])
    col.upsert(df)
    assert col.get(1).payload == {}


def test_parquet_written_by_pyarrow_and_polars(db, tmp_path):
    x = matrix()
    col = db.create_collection("c", dim=DIM, metric="dot", id_type="str")
    pq.write_table(arrow_table("str", "fixed32", x), tmp_path / "a.parquet")
    pl.from_arrow(arrow_table("str", "list64", x)).write_parquet(tmp_path / "b.parquet")
    for f in ["a.parquet", "b.parquet"]:
        col.delete(filter={"lang": {"$in": ["en", "de"]}})
        assert len(col) == 0
        col.upsert(pq.read_table(tmp_path / f))
        assert len(col) == N
        assert np.array_equal(col.get("doc-4").vector, x[4])
        assert col.get("doc-2").payload == expected_payload(2)


# -- embedding functions ---------------------------------------------------------------------


def toy_embed(texts):
    """A deterministic bag-of-letters embedding of dimension DIM."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        for ch in t:
            out[i, ord(ch) % DIM] += 1.0
        out[i, 0] += 0.01
    return out


def unit(v):
    return v / np.linalg.norm(v)


class LangChainLike:
    def __init__(self):
        self.docs = 0
        self.queries = 0

    def embed_documents(self, texts):
        self.docs += len(texts)
        return toy_embed(texts).tolist()

    def embed_query(self, text):
        self.queries += 1
        return toy_embed([text])[0].tolist()


@pytest.mark.parametrize("style", ["callable", "object"])
def test_embedding_function_upsert_and_search_by_text(db, style):
    emb = toy_embed if style == "callable" else LangChainLike()
    col = db.create_collection("c", dim=DIM, id_type="str", embedding=emb)
    assert col.embedding is emb
    texts = ["aaaa", "bbbb", "cccc", "dddd aaaa"]
    col.upsert(["a", "b", "c", "d"], texts=texts, payloads=[{"n": i} for i in range(4)])
    assert np.allclose(col.get("b").vector, unit(toy_embed(["bbbb"])[0]))
    hits = col.search(text="aaaa", k=2, exact=True)  # vector search of the embedded text
    assert hits[0].id == "a" and hits[0].legs is None
    assert col.search(text="dddd", k=1, mode="text")[0].id == "d"  # BM25
    hy = col.search(text="aaaa", k=2, mode="hybrid", exact=True)
    assert hy[0].id in ("a", "d") and hy[0].legs is not None
    # a frame with a text column and no vector column
    col.upsert(pa.table({"id": ["e"], "text": ["eeee"], "tag": ["x"]}))
    assert np.allclose(col.get("e").vector, unit(toy_embed(["eeee"])[0]))
    assert col.get("e").payload == {"tag": "x"}
    if style == "object":
        assert emb.docs == 5 and emb.queries == 2
    # the function is not stored: a new handle without one cannot embed
    plain = db.collection("c")
    assert plain.embedding is None
    with pytest.raises(cairndb.InvalidInputError, match="embedding function"):
        plain.upsert(["f"], texts=["ffff"])
    assert plain.search(text="dddd", k=1)[0].id == "d"  # BM25 as before
    with pytest.raises(cairndb.InvalidInputError, match="needs an embedding function"):
        plain.search(text="aaaa", mode="vector")
    again = db.collection("c", embedding=emb)
    assert again.search(text="bbbb", k=1, exact=True)[0].id == "b"


def test_embedding_function_errors(db):
    with pytest.raises(TypeError, match="embedding must be a callable"):
        db.create_collection("x", dim=DIM, embedding=42)
    assert "x" not in db.collections() or True
    col = db.create_collection("c", dim=DIM, embedding=lambda texts: np.zeros((len(texts), DIM + 1)))
    with pytest.raises(cairndb.InvalidInputError, match=r"returned shape \(1, 5\), expected \(1, 4\)"):
        col.upsert([1], texts=["a"])
    col2 = db.create_collection("c2", dim=DIM, embedding=toy_embed)
    with pytest.raises(cairndb.InvalidInputError, match=r"texts\[1\] is NoneType"):
        col2.upsert([1, 2], texts=["a", None])
    with pytest.raises(cairndb.InvalidInputError, match="needs texts"):
        col2.upsert([1, 2])
    with pytest.raises(cairndb.InvalidInputError, match="unknown mode"):
        col2.search(text="a", mode="semantic")
    with pytest.raises(cairndb.InvalidInputError, match='mode "text" takes a text, not a vector'):
        col2.search(vector=np.ones(DIM, np.float32), text="a", mode="text")

    def boom(texts):
        raise RuntimeError("model down")

    col3 = db.create_collection("c3", dim=DIM, embedding=boom)
    with pytest.raises(RuntimeError, match="model down"):
        col3.upsert([1], texts=["a"])
    assert len(col3) == 0
    # vectors given explicitly are used as they are
    col3.upsert([1], np.ones((1, DIM), np.float32), texts=["a"])
    assert len(col3) == 1


def test_arrow_arrays_and_series_as_ids_and_vectors(db):
    """`upsert(ids, vectors)` with pyarrow arrays or pandas/polars Series (the issue: a
    pyarrow array was read row by row)."""
    x = matrix()
    col = db.create_collection("c", dim=DIM, metric="dot")
    col.upsert(pa.array(range(N), type=pa.int32()), vector_column("fixed32", x))
    col.upsert(pd.Series(range(N, 2 * N)), pd.Series(list(x)))
    col.upsert(pl.Series(range(2 * N, 3 * N)), pl.Series("v", x))
    col.upsert(pa.chunked_array([[3 * N]]), pa.chunked_array([vector_column("list64", x[:1])]))
    assert len(col) == 3 * N + 1
    for i in range(N):
        for base in (0, N, 2 * N):
            assert np.array_equal(col.get(base + i).vector, x[i])
    assert np.array_equal(col.get(3 * N).vector, x[0])
    with pytest.raises(cairndb.InvalidInputError, match=r"row 1, column 'vectors'"):
        col.upsert([1, 2], pa.array([[0.0] * DIM, [0.0]], type=pa.list_(pa.float32())))
