"""CairnVectorStore beyond LangChain's standard suite: filters, MMR, hybrid, persistence; a
new store's collection of str ids, and a collection of int ids made by an earlier version of
the store (the `store` fixture runs each test on both)."""

import hashlib
import json

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

import cairndb
from cairndb.langchain import CairnHybridRetriever, CairnVectorStore


class BagOfWords(Embeddings):
    """A deterministic embedding where texts sharing words are similar: each word adds a
    fixed random direction."""

    dim = 64

    def _vec(self, text):
        v = np.zeros(self.dim)
        for w in text.lower().split():
            seed = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
            v += np.random.default_rng(seed).standard_normal(self.dim)
        if not v.any():
            v[0] = 1.0
        return (v / np.linalg.norm(v)).tolist()

    def embed_documents(self, texts):
        return [self._vec(t) for t in texts]

    def embed_query(self, text):
        return self._vec(text)


TEXTS = [
    "cairn stores vectors on disk",
    "hnsw graphs make search fast",
    "bm25 ranks keyword matches",
    "filters narrow the search",
    "fsync makes writes durable",
    "zebras graze on the savanna",
]
METAS = [
    {"source": "a.md", "year": 2021, "tags": ["db"], "extra": {"nested": [1, 2]}},
    {"source": "a.md", "year": 2022, "tags": ["ann", "db"], "extra": None},
    {"source": "b.md", "year": 2023, "tags": ["text"]},
    {"source": "b.md", "year": 2024},
    {"source": "c.md", "year": 2020, "big": 2**70},
    {},
]


def legacy_collection(path, name="notes"):
    """The collection an earlier version of the store created: int ids (the store's settings
    otherwise)."""
    with cairndb.open(path) as db:
        db.create_collection(name, BagOfWords.dim, stem=True, stop_words=True)


def legacy_key(doc_id):
    """How an earlier version of the store mapped a LangChain id to an int id."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")


@pytest.fixture(params=["str", "int"])
def store(tmp_path, request):
    if request.param == "int":
        legacy_collection(str(tmp_path / "db"))
    s = CairnVectorStore.from_texts(
        TEXTS,
        BagOfWords(),
        metadatas=METAS,
        ids=[f"d{i}" for i in range(len(TEXTS))],
        path=str(tmp_path / "db"),
        collection_name="notes",
    )
    assert s.collection.id_type == request.param
    yield s
    s.close()


def test_metadata_round_trips_exactly(store):
    docs = store.get_by_ids(["d0", "d1", "d4", "missing", "d5"])
    assert [d.id for d in docs] == ["d0", "d1", "d4", "d5"]
    assert docs[0].metadata == METAS[0]
    assert docs[1].metadata == METAS[1]
    assert docs[2].metadata == METAS[4]  # an int beyond i64 is kept (in the JSON copy)
    assert docs[3].metadata == {}


def test_similarity_search_ranks_by_embedding(store):
    docs = store.similarity_search("search fast", k=2)
    assert docs[0].page_content == "hnsw graphs make search fast"
    scored = store.similarity_search_with_score("fsync makes writes durable", k=3)
    assert scored[0][0].id == "d4"
    assert scored[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    rel = store.similarity_search_with_relevance_scores("fsync makes writes durable", k=1)
    assert rel[0][1] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "flt, want",
    [
        ({"source": "a.md"}, {"d0", "d1"}),
        ({"year": {"$gte": 2022}}, {"d1", "d2", "d3"}),
        ({"$or": [{"source": "c.md"}, {"tags": "text"}]}, {"d2", "d4"}),
        ({"tags": {"$in": ["ann", "text"]}}, {"d1", "d2"}),
        ({"source": {"$ne": "a.md"}, "year": {"$lt": 2024}}, {"d2", "d4"}),
        ('source = "b.md" AND year > 2023', {"d3"}),
        ({"year": {"$exists": False}}, {"d5"}),
    ],
)
def test_filters(store, flt, want):
    got = {d.id for d in store.similarity_search("anything at all", k=10, filter=flt)}
    assert got == want
    assert {d.id for d in store.hybrid_search("search", k=10, filter=flt)} <= want
    assert {d.id for d in store.max_marginal_relevance_search("search", k=10, filter=flt)} == want


def test_mmr_prefers_diverse_results(tmp_path):
    texts = ["apple pie recipe", "apple pie recipe easy", "apple pie recipe quick", "car engine"]
    s = CairnVectorStore.from_texts(texts, BagOfWords(), path=str(tmp_path / "db"))
    plain = [d.page_content for d in s.similarity_search("apple pie recipe", k=2)]
    assert plain[0] == "apple pie recipe" and "car engine" not in plain
    mmr = [
        d.page_content
        for d in s.max_marginal_relevance_search("apple pie recipe", k=2, fetch_k=4, lambda_mult=0.1)
    ]
    assert mmr[0] == "apple pie recipe" and mmr[1] == "car engine"
    s.close()


def test_hybrid_and_keyword_search(store):
    # The keyword leg finds the exact acronym; the fused list keeps it on top.
    kw = store.keyword_search("bm25", k=3)
    assert [d.id for d in kw] == ["d2"]
    hybrid = store.hybrid_search_with_score("bm25 keyword", k=3)
    assert hybrid[0][0].id == "d2"
    retriever = store.as_hybrid_retriever(k=2, filter={"source": "b.md"})
    assert isinstance(retriever, CairnHybridRetriever)
    docs = retriever.invoke("search filters")
    assert docs and all(d.metadata["source"] == "b.md" for d in docs)
    assert docs[0].id == "d3"
    weighted = store.hybrid_search("durable writes", k=1, fusion="weighted", alpha=0.3)
    assert weighted[0].id == "d4"


def test_as_retriever_and_threshold(store):
    r = store.as_retriever(search_kwargs={"k": 1, "filter": {"source": "c.md"}})
    assert [d.id for d in r.invoke("vectors")] == ["d4"]
    r = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99}
    )
    assert [d.id for d in r.invoke("zebras graze on the savanna")] == ["d5"]
    r = store.as_retriever(search_type="mmr", search_kwargs={"k": 2})
    assert len(r.invoke("search")) == 2


def test_persists_across_reopen(tmp_path):
    path = str(tmp_path / "db")
    s = CairnVectorStore(BagOfWords(), path=path, collection_name="kb")
    ids = s.add_documents([Document(page_content=t, metadata=m) for t, m in zip(TEXTS, METAS)])
    s.delete([ids[0]])
    s.close()
    again = CairnVectorStore(BagOfWords(), path=path, collection_name="kb")
    assert again.collection is not None and len(again.collection) == len(TEXTS) - 1
    assert again.get_by_ids([ids[0]]) == []
    assert again.get_by_ids([ids[1]])[0].metadata == METAS[1]
    assert again.similarity_search("search fast", k=1)[0].id == ids[1]
    again.delete_collection()
    assert again.similarity_search("search fast", k=1) == []
    again.close()


def test_bad_calls(store):
    with pytest.raises(ValueError, match="needs ids or filter"):
        store.delete()
    with pytest.raises(ValueError, match="metadatas"):
        store.add_texts(["a", "b"], metadatas=[{}])
    with pytest.raises(ValueError, match="ids"):
        store.add_texts(["a", "b"], ids=["x"])
    with pytest.raises(ValueError):
        store.similarity_search("x", filter={"year": {"$near": 3}})
    assert store.add_texts([]) == []
    assert store.similarity_search("x", k=0) == []


def test_temporary_store_without_path():
    s = CairnVectorStore(BagOfWords())
    s.add_texts(["hello world"], ids=["h"])
    assert s.similarity_search("hello", k=1)[0].id == "h"
    s.close()


def test_read_only_store_follows_the_writer_and_refuses_writes(tmp_path):
    import cairndb

    path = str(tmp_path / "db")
    writer = CairnVectorStore(BagOfWords(), path=path, collection_name="notes")
    # Opened before the collection exists: it appears once the writer creates it.
    reader = CairnVectorStore(BagOfWords(), path=path, collection_name="notes", read_only=True)
    assert reader.read_only and not writer.read_only and reader.database.read_only
    assert reader.similarity_search("cairn", k=2) == []
    assert reader.get_by_ids(["d0"]) == []

    writer.add_texts(TEXTS, metadatas=METAS, ids=[f"d{i}" for i in range(len(TEXTS))])
    # Acknowledged before the search started: the reader sees every document.
    assert reader.similarity_search("hnsw graphs make search fast", k=1)[0].id == "d1"
    assert reader.get_by_ids(["d0"])[0].metadata == METAS[0]
    assert [d.id for d in reader.keyword_search("bm25", k=3)] == ["d2"]
    assert reader.hybrid_search("fsync durable", k=1, filter={"source": "c.md"})[0].id == "d4"
    assert len(reader.max_marginal_relevance_search("search", k=2)) == 2
    writer.delete(["d1"])
    assert reader.get_by_ids(["d1"]) == []
    assert "d1" not in {d.id for d in reader.similarity_search("hnsw graphs", k=6)}

    for write in [
        lambda: reader.add_texts(["new text"], ids=["n"]),
        lambda: reader.add_documents([Document(page_content="new", id="n")]),
        lambda: reader.delete(["d0"]),
        lambda: reader.delete_collection(),
        lambda: CairnVectorStore.from_texts(
            ["x"], BagOfWords(), path=path, collection_name="notes", read_only=True
        ),
    ]:
        with pytest.raises(cairndb.ReadOnlyError, match="read-only"):
            write()
    # The writer's data is untouched by the refused writes.
    assert {d.id for d in writer.get_by_ids(["d0", "d2", "n"])} == {"d0", "d2"}
    assert writer.collection is not None and len(writer.collection) == len(TEXTS) - 1
    reader.close()
    writer.close()


def test_read_only_store_needs_an_existing_database(tmp_path):
    import cairndb

    with pytest.raises(ValueError, match="read_only=True needs the path"):
        CairnVectorStore(BagOfWords(), read_only=True)
    with pytest.raises(cairndb.StorageError, match="no Cairn database"):
        CairnVectorStore(BagOfWords(), path=str(tmp_path / "none"), read_only=True)
    db = cairndb.open(str(tmp_path / "db"))
    with pytest.raises(ValueError, match="opened for writing"):
        CairnVectorStore(BagOfWords(), database=db, read_only=True)
    ro = cairndb.open(str(tmp_path / "db"), read_only=True)
    store = CairnVectorStore(BagOfWords(), database=ro)  # read-only because its database is
    assert store.read_only
    with pytest.raises(cairndb.ReadOnlyError):
        store.add_texts(["a"])
    ro.close()
    db.close()


def test_delete_by_metadata_filter(store):
    before = {d.id for d in store.similarity_search("anything at all", k=10)}
    assert store.delete(filter={"source": "a.md"}) is True
    after = {d.id for d in store.similarity_search("anything at all", k=10)}
    assert after == before - {"d0", "d1"}
    assert store.get_by_ids(["d0", "d1"]) == []
    store.delete(filter='year > 2023')
    assert {d.id for d in store.similarity_search("anything", k=10)} == after - {"d3"}
    with pytest.raises(ValueError, match="ids or filter"):
        store.delete()
    with pytest.raises(ValueError, match="not both"):
        store.delete(["d2"], filter={"source": "c.md"})


def test_nested_metadata_is_filterable_by_path(store):
    # d0's metadata has "extra": {"nested": [1, 2]}; d1's "extra" is None.
    got = {d.id for d in store.similarity_search("anything", k=10, filter={"extra.nested": 2})}
    assert got == {"d0"}
    got = {d.id for d in store.similarity_search("anything", k=10, filter={"extra": None})}
    assert got == {"d1"}
    # An int beyond 64 bits is kept in the JSON copy only: not a field, so not matched.
    assert store.similarity_search("anything", k=10, filter={"big": {"$exists": True}}) == []
    assert store.get_by_ids(["d4"])[0].metadata["big"] == 2**70


# -- ids: str collections, and int collections of earlier versions -----------------------

ODD_IDS = ["doc-1#0", "5", "naïve ☃ 🌍", "x" * 1024, "a b\nc", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"]


def test_a_new_store_keeps_langchain_ids_as_cairn_ids(tmp_path):
    path = str(tmp_path / "db")
    s = CairnVectorStore(BagOfWords(), path=path, collection_name="kb")
    texts = [f"text number {i}" for i in range(len(ODD_IDS))]
    assert s.add_texts(texts, metadatas=[{"i": i} for i in range(len(texts))], ids=ODD_IDS) == ODD_IDS
    col = s.collection
    assert col.id_type == "str"
    # The records' ids are the documents' ids, with no id copy in the payload.
    recs = list(col.scan())
    assert sorted(r.id for r in recs) == sorted(ODD_IDS)
    assert all("_lc_id" not in r.payload for r in recs)
    assert [d.id for d in s.get_by_ids(ODD_IDS[::-1] + ["missing"])] == ODD_IDS[::-1]
    assert s.similarity_search("text number 3", k=1)[0].id == ODD_IDS[3]
    assert s.keyword_search("number", k=10)[0].id in ODD_IDS
    assert {d.id for d in s.max_marginal_relevance_search("text", k=6)} == set(ODD_IDS)
    # Ids that cannot be stored are simply not found (not an error) when read or deleted.
    assert s.get_by_ids(["", "x" * 1025, "\ud800"]) == []
    assert s.delete(["", "x" * 1025, "\ud800", ODD_IDS[0]]) is True
    assert s.get_by_ids([ODD_IDS[0]]) == [] and len(col) == len(ODD_IDS) - 1
    # ... and refused when written, with nothing written.
    for bad in ["", "y" * 1025]:
        with pytest.raises(cairndb.InvalidInputError):
            s.add_texts(["a", "b"], ids=["fine", bad])
    assert s.get_by_ids(["fine"]) == []
    # Re-adding an id replaces its document.
    s.add_texts(["replaced"], metadatas=[{"new": True}], ids=[ODD_IDS[1]])
    assert s.get_by_ids([ODD_IDS[1]])[0].metadata == {"new": True}
    assert len(col) == len(ODD_IDS) - 1
    s.close()
    again = CairnVectorStore(BagOfWords(), path=path, collection_name="kb")
    assert sorted(d.id for d in again.get_by_ids(ODD_IDS)) == sorted(ODD_IDS[1:])
    again.close()


def test_a_collection_of_int_ids_from_an_earlier_version_still_works(tmp_path):
    path = str(tmp_path / "db")
    # Records written by the earlier store: int ids (a hash of the LangChain id), the id and
    # the metadata in the payload.
    with cairndb.open(path) as db:
        col = db.create_collection("kb", BagOfWords.dim, stem=True, stop_words=True)
        col.upsert(
            [legacy_key("old-1"), legacy_key("old-2")],
            BagOfWords().embed_documents(["an old note", "another old note"]),
            texts=["an old note", "another old note"],
            payloads=[
                {"_lc_id": "old-1", "_lc_metadata": json.dumps({"year": 2020}), "year": 2020},
                {"_lc_id": "old-2", "_lc_metadata": "{}"},
            ],
        )
    s = CairnVectorStore(BagOfWords(), path=path, collection_name="kb")
    assert s.collection.id_type == "int"
    assert [d.id for d in s.get_by_ids(["old-2", "old-1"])] == ["old-2", "old-1"]
    assert s.get_by_ids(["old-1"])[0].metadata == {"year": 2020}
    # New documents go in the same way.
    s.add_texts(["a new note"], metadatas=[{"year": 2025}], ids=["new-1"])
    assert s.collection.get(legacy_key("new-1")).payload["_lc_id"] == "new-1"
    assert {d.id for d in s.similarity_search("note", k=5)} == {"old-1", "old-2", "new-1"}
    assert [d.id for d in s.similarity_search("note", k=5, filter={"year": {"$gte": 2020}})]
    assert s.delete(["old-1", "missing"]) is True
    assert s.get_by_ids(["old-1", "old-2", "new-1"])[0].id == "old-2"
    assert len(s.collection) == 2
    s.close()
    again = CairnVectorStore(BagOfWords(), path=path, collection_name="kb")
    assert again.collection.id_type == "int"
    assert sorted(d.id for d in again.get_by_ids(["old-1", "old-2", "new-1"])) == ["new-1", "old-2"]
    again.close()


def test_an_int_collection_created_after_the_store_opened_is_used_as_it_is(tmp_path):
    path = str(tmp_path / "db")
    db = cairndb.open(path)
    s = CairnVectorStore(BagOfWords(), database=db, collection_name="kb")
    assert s.collection is None
    # Another handle (an earlier version of the store, say) creates it first, with int ids.
    db.create_collection("kb", BagOfWords.dim)
    assert s.add_texts(["hello there"], ids=["h"]) == ["h"]
    assert s.collection.id_type == "int"
    assert s.get_by_ids(["h"])[0].page_content == "hello there"
    # A collection of another dimension made meanwhile is an error naming it, whatever its
    # id type.
    for id_type in ("int", "str"):
        late = CairnVectorStore(BagOfWords(), database=db, collection_name=f"small-{id_type}")
        db.create_collection(f"small-{id_type}", 2, id_type=id_type)
        with pytest.raises(cairndb.InvalidInputError, match="exists with dim 2, asked for 64"):
            late.add_texts(["x"])
    db.close()
