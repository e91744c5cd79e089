"""`cairndb.llama_index.CairnVectorStore` (issue 16 point 5) against llama-index-core's vector
store interface: add, query with every `MetadataFilters` operator and condition (the
expectations llama-index-core's own tests set for its SimpleVectorStore), delete by ref doc id
and by node id/filter, get_nodes, clear, default/sparse/hybrid query modes, persistence across
reopen, and a `VectorStoreIndex` on top of it."""

import pytest

li = pytest.importorskip("llama_index.core")

from llama_index.core import Document, MockEmbedding, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

import cairndb  # noqa: E402
from cairndb.llama_index import CairnVectorStore, to_cairn_filter  # noqa: E402

A = "node-a"
B = "node-b"
C = "node-c"


def nodes():
    """Three nodes in two dimensions: A along x, B along y, C between them."""
    spec = [
        (A, [1.0, 0.0], "doc-0", "granite cairns mark the trail",
         {"weight": 1.0, "rank": "a", "quality": ["medium", "high"], "tag": "x1"}),
        (B, [0.0, 1.0], "doc-1", "the river crossing is shallow",
         {"weight": 2.0, "rank": "c", "quality": ["medium"], "tag": "x2"}),
        (C, [1.0, 1.0], "doc-2", "summit cairn near the river",
         {"weight": 3.0, "rank": "c", "quality": ["low", "medium", "high"], "tag": None}),
    ]
    return [
        TextNode(
            id_=i,
            text=text,
            embedding=emb,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
            metadata=meta,
        )
        for i, emb, doc, text, meta in spec
    ]


@pytest.fixture
def store(tmp_path):
    s = CairnVectorStore(path=str(tmp_path / "db"), collection_name="li")
    s.add(nodes())
    yield s
    s.close()


def q(store, *, filters=None, k=3, **kw):
    query = VectorStoreQuery(query_embedding=[1.0, 1.0], similarity_top_k=k, filters=filters, **kw)
    return store.query(query).ids


def one(key, op, value):
    return MetadataFilters(filters=[MetadataFilter(key=key, operator=op, value=value)])


def test_is_a_pydantic_vector_store(store):
    assert isinstance(store, BasePydanticVectorStore)
    assert store.stores_text and store.class_name() == "CairnVectorStore"
    assert isinstance(store.client, cairndb.Collection) and store.client.id_type == "str"
    assert store.dim == 2


def test_add_returns_ids_and_query_orders_by_similarity(store):
    res = store.query(VectorStoreQuery(query_embedding=[1.0, 1.0], similarity_top_k=3))
    assert res.ids[0] == C and sorted(res.ids) == [A, B, C]
    assert res.similarities[0] == pytest.approx(1.0, abs=1e-5)
    n = res.nodes[0]
    assert n.node_id == C and n.get_content() == "summit cairn near the river"
    assert n.metadata["rank"] == "c" and n.metadata["quality"] == ["low", "medium", "high"]
    assert n.ref_doc_id == "doc-2"
    assert q(store, k=1) == [C]


@pytest.mark.parametrize(
    "filters, expected",
    [
        (one("rank", FilterOperator.EQ, "c"), [C, B]),
        (MetadataFilters(filters=[MetadataFilter(key="rank", value="c"),
                                  MetadataFilter(key="weight", value=2.0)]), [B]),
        (MetadataFilters(filters=[MetadataFilter(key="weight", value=2),
                                  MetadataFilter(key="weight", value=3)]), []),
        (one("unknown_field", FilterOperator.EQ, "c"), []),
        (MetadataFilters(filters=[MetadataFilter(key="rank", value="c"),
                                  MetadataFilter(key="weight", value=1.0)],
                         condition=FilterCondition.OR), [C, A, B]),
        (MetadataFilters(filters=[MetadataFilter(key="rank", value="a")],
                         condition=FilterCondition.NOT), [C, B]),
        (one("weight", FilterOperator.NE, 1.0), [C, B]),
        (one("weight", FilterOperator.GT, 1.5), [C, B]),
        (one("weight", FilterOperator.GTE, 1.0), [C, A, B]),
        (one("weight", FilterOperator.LT, 1.1), [A]),
        (one("weight", FilterOperator.LTE, 2.0), [A, B]),
        (one("rank", FilterOperator.IN, ["a", "c"]), [C, A, B]),
        (one("rank", FilterOperator.NIN, ["c"]), [A]),
        (one("quality", FilterOperator.CONTAINS, "high"), [C, A]),
        (one("quality", FilterOperator.ANY, ["high", "low"]), [C, A]),
        (one("quality", FilterOperator.ALL, ["medium", "high"]), [C, A]),
        (one("tag", FilterOperator.IS_EMPTY, None), [C]),
        (one("missing", FilterOperator.IS_EMPTY, None), [C, A, B]),
        # nested: rank = c AND (weight < 2.5 OR tag is empty) -> B and C
        (MetadataFilters(filters=[
            MetadataFilter(key="rank", value="c"),
            MetadataFilters(filters=[MetadataFilter(key="weight", operator=FilterOperator.LT, value=2.5),
                                     MetadataFilter(key="tag", operator=FilterOperator.IS_EMPTY, value=None)],
                            condition=FilterCondition.OR),
        ]), [C, B]),
    ],
)
def test_metadata_filters(store, filters, expected):
    ids = q(store, filters=filters)
    # A and B tie on similarity to (1, 1): compare them as a set, C (the best) by place
    assert len(ids) == len(expected)
    if C in expected:
        assert ids[0] == C
    assert sorted(ids) == sorted(expected)


def test_filter_applies_top_k_and_node_and_doc_ids(store):
    assert q(store, filters=one("rank", FilterOperator.EQ, "c"), k=1) == [C]
    assert q(store, filters=one("rank", FilterOperator.EQ, "c"), node_ids=[B]) == [B]
    assert q(store, node_ids=[A, B]) in ([A, B], [B, A])
    assert q(store, doc_ids=["doc-0"]) == [A]


def test_text_match_is_refused(store):
    with pytest.raises(ValueError, match="text_match"):
        q(store, filters=one("tag", FilterOperator.TEXT_MATCH, "x"))


def test_to_cairn_filter_shapes():
    assert to_cairn_filter(None) is None
    assert to_cairn_filter(MetadataFilters(filters=[])) is None
    assert to_cairn_filter(one("year", FilterOperator.GTE, 2020)) == {"year": {"$gte": 2020}}


def test_delete_by_ref_doc_id(store):
    store.delete("doc-1")
    assert q(store, k=3) == [C, A]
    store.delete("no-such-doc")
    assert len(store.client) == 2


def test_delete_nodes_get_nodes_and_clear(store):
    got = store.get_nodes(node_ids=[B, "nope", A])
    assert [n.node_id for n in got] == [B, A]
    assert got[0].embedding == [0.0, 1.0]
    assert [n.node_id for n in store.get_nodes(filters=one("rank", FilterOperator.EQ, "a"))] == [A]
    assert [n.node_id for n in store.get_nodes(node_ids=[A, B],
                                               filters=one("rank", FilterOperator.EQ, "c"))] == [B]
    store.delete_nodes(node_ids=[A, C], filters=one("rank", FilterOperator.EQ, "c"))
    assert sorted(q(store)) == [A, B]
    store.delete_nodes(filters=one("rank", FilterOperator.EQ, "a"))
    assert q(store) == [B]
    store.delete_nodes(node_ids=[B])
    assert q(store) == []
    store.add(nodes())
    store.clear()
    assert len(store.client) == 0


def test_sparse_and_hybrid_modes(store):
    def run(mode, **kw):
        return store.query(VectorStoreQuery(mode=mode, similarity_top_k=3, **kw))

    sparse = run(VectorStoreQueryMode.SPARSE, query_str="cairns")
    assert sparse.ids[0] in (A, C) and B not in sparse.ids  # BM25: B lacks the term
    assert run(VectorStoreQueryMode.TEXT_SEARCH, query_str="river").ids[0] in (B, C)
    # alpha = 1: the vector ranking; alpha = 0: the BM25 ranking
    vec = run(VectorStoreQueryMode.HYBRID, query_embedding=[0.0, 1.0], query_str="granite", alpha=1.0)
    assert vec.ids[0] == B
    txt = run(VectorStoreQueryMode.HYBRID, query_embedding=[0.0, 1.0], query_str="granite", alpha=0.0)
    assert txt.ids[0] == A
    # No alpha: Cairn's default fusion; C is first in both legs, so first fused.
    fused = run(VectorStoreQueryMode.HYBRID, query_embedding=[1.0, 1.0], query_str="river summit")
    assert fused.ids[0] == C
    filtered = run(VectorStoreQueryMode.HYBRID, query_embedding=[1.0, 1.0], query_str="river",
                   filters=one("rank", FilterOperator.EQ, "c"), alpha=0.5)
    assert set(filtered.ids) <= {B, C}
    with pytest.raises(ValueError, match="needs query_str"):
        run(VectorStoreQueryMode.SPARSE)
    with pytest.raises(ValueError, match="not supported"):
        run(VectorStoreQueryMode.MMR, query_embedding=[1.0, 0.0])


def test_persistence_across_reopen(tmp_path):
    path = str(tmp_path / "db")
    s = CairnVectorStore(path=path, collection_name="li")
    assert s.client is None  # created with the first add's dimension
    s.add(nodes())
    s.close()
    again = CairnVectorStore(path=path, collection_name="li")
    try:
        assert again.dim == 2
        res = again.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=1))
        assert res.ids == [A] and res.nodes[0].metadata["tag"] == "x1"
        assert again.query(VectorStoreQuery(mode=VectorStoreQueryMode.SPARSE, query_str="shallow",
                                            similarity_top_k=1)).ids == [B]
    finally:
        again.close()
    db = cairndb.open(path)
    try:
        db.create_collection("ints", dim=2)
        with pytest.raises(cairndb.InvalidInputError, match="int ids"):
            CairnVectorStore(db=db, collection_name="ints")
        shared = CairnVectorStore(db=db, collection_name="li")
        shared.close()  # does not close a database it did not open
        assert len(db.collection("li")) == 3
    finally:
        db.close()


def test_vector_store_index_end_to_end(tmp_path):
    store = CairnVectorStore(path=str(tmp_path / "db"))
    try:
        ctx = StorageContext.from_defaults(vector_store=store)
        docs = [Document(text=f"document number {i} about cairns", id_=f"d{i}",
                         metadata={"n": i}) for i in range(5)]
        index = VectorStoreIndex.from_documents(docs, storage_context=ctx,
                                                embed_model=MockEmbedding(embed_dim=8))
        assert len(store.client) == 5
        hits = index.as_retriever(similarity_top_k=2).retrieve("cairns")
        assert len(hits) == 2
        f = MetadataFilters(filters=[MetadataFilter(key="n", operator=FilterOperator.GTE, value=3)])
        hits = index.as_retriever(similarity_top_k=5, filters=f).retrieve("cairns")
        assert sorted(h.node.metadata["n"] for h in hits) == [3, 4]
        hy = index.as_retriever(similarity_top_k=5, vector_store_query_mode="hybrid",
                                alpha=0.5).retrieve("number 2")
        assert hy and all(h.node.ref_doc_id.startswith("d") for h in hy)
        index.delete_ref_doc("d1")
        assert len(store.client) == 4
    finally:
        store.close()


async def test_async_methods(store):
    await store.async_add([TextNode(id_="node-d", text="async", embedding=[0.5, 0.5])])
    res = await store.aquery(VectorStoreQuery(query_embedding=[0.5, 0.5], similarity_top_k=4))
    assert "node-d" in res.ids
    await store.adelete_nodes(node_ids=["node-d"])
    assert len(store.client) == 3
