"""LlamaIndex integration: `CairnVectorStore`, a `BasePydanticVectorStore` (needs
`llama-index-core`).

```python
from llama_index.core import StorageContext, VectorStoreIndex
from cairndb.llama_index import CairnVectorStore

store = CairnVectorStore(path="my-db", collection_name="docs")
index = VectorStoreIndex.from_documents(
    documents, storage_context=StorageContext.from_defaults(vector_store=store)
)
index.as_retriever(similarity_top_k=4, vector_store_query_mode="hybrid", alpha=0.7)
```

Node ids are strings: the store's collection is created with `id_type="str"` and each node's
id is its record's id. The node's text is the record's text (so BM25 and hybrid search see
it); the node itself (relationships, metadata, everything but the embedding and the text) is
kept as JSON in the payload field `_node_content`, as LlamaIndex's other stores do, next to
`ref_doc_id`/`doc_id`/`document_id`, `_node_id` and every top-level metadata key, which
filters use.
Metadata must be JSON Cairn stores (finite floats).

Query modes: `default` is vector search (`query_embedding`); `sparse` and `text_search` are
BM25 over the node text (`query_str`); `hybrid` and `semantic_hybrid` fuse the two,
weighted by `alpha` (1 = vector only, 0 = BM25 only) when given, else by Cairn's default
fusion (weighted min-max with alpha 0.6). `MetadataFilters` become Cairn filters: `==, !=, >, >=, <, <=, in, nin` as the
operators of the same name, `any` (an array field holding any of the values) as `$in`,
`all` as one equality per value, `contains` as equality (a list field matches when one
element does), `is_empty` as "missing or null" (an empty list is not matched), conditions
`and`/`or`/`not` as `$and`/`$or`/`$not`; `text_match` is refused (Cairn has no substring
filter). Scores are Cairn's: cosine similarity for `default`, BM25 for `sparse`, the fused
score for `hybrid`.

The data is in the Cairn database at `path`: a store opened again on the same path and
collection sees every node added before (`persist` has nothing to do).
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import (
        metadata_dict_to_node,
        node_to_metadata_dict,
    )
except ImportError as e:  # pragma: no cover - exercised only without llama-index-core
    raise ImportError(
        "cairndb.llama_index needs llama-index-core: pip install llama-index-core"
    ) from e

import cairndb

__all__ = ["CairnVectorStore", "to_cairn_filter"]

_OPS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$in",
}

# The node id again in the payload, so that `query(node_ids=...)` is a filter.
_NODE_ID = "_node_id"

_TEXT_MODES = (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH)
_HYBRID_MODES = (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.SEMANTIC_HYBRID)


def _one(f: MetadataFilter) -> dict[str, Any]:
    op = f.operator
    if op in _OPS:
        return {f.key: {_OPS[op]: f.value}}
    if op == FilterOperator.ALL:
        values = f.value if isinstance(f.value, list) else [f.value]
        return {"$and": [{f.key: {"$eq": v}} for v in values]}
    if op == FilterOperator.CONTAINS:
        return {f.key: {"$eq": f.value}}
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{f.key: {"$exists": False}}, {f.key: {"$eq": None}}]}
    raise ValueError(f"CairnVectorStore: filter operator {op.value!r} is not supported")


def to_cairn_filter(filters: Optional[MetadataFilters]) -> Optional[dict[str, Any]]:
    """A LlamaIndex `MetadataFilters` as a Cairn filter dict (None when there is none)."""
    if filters is None or not filters.filters:
        return None
    parts = [
        to_cairn_filter(f) or {} if isinstance(f, MetadataFilters) else _one(f)
        for f in filters.filters
    ]
    cond = filters.condition or FilterCondition.AND
    if cond == FilterCondition.OR:
        return {"$or": parts}
    if cond == FilterCondition.NOT:
        return {"$not": {"$and": parts}}
    return parts[0] if len(parts) == 1 else {"$and": parts}


class CairnVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store in a Cairn collection of str ids.

    `path`: the database directory (opened, created if missing) — or pass an open
    `cairndb.Database` as `db` (the store does not close it). `dim`: the embedding dimension;
    when None the collection is created at the first `add`, with the dimension of its
    embeddings. `metric`: "cosine" (default), "dot" or "l2".
    """

    stores_text: bool = True
    flat_metadata: bool = False

    path: Optional[str] = None
    collection_name: str = "llama_index"
    dim: Optional[int] = None
    metric: str = "cosine"

    _db: Any = PrivateAttr(default=None)
    _owns_db: bool = PrivateAttr(default=True)
    _col: Any = PrivateAttr(default=None)

    def __init__(
        self,
        path: Optional[str] = None,
        collection_name: str = "llama_index",
        dim: Optional[int] = None,
        metric: str = "cosine",
        *,
        db: Optional[cairndb.Database] = None,
        **kwargs: Any,
    ) -> None:
        if (path is None) == (db is None):
            raise ValueError("CairnVectorStore needs a path or an open database (db=), not both")
        super().__init__(
            path=path if path is not None else db.path,  # type: ignore[union-attr]
            collection_name=collection_name,
            dim=dim,
            metric=metric,
            **kwargs,
        )
        self._owns_db = db is None
        self._db = db if db is not None else cairndb.open(path)  # type: ignore[arg-type]
        if collection_name in self._db.collections():
            self._col = self._db.collection(collection_name)
            if self._col.id_type != "str":
                raise cairndb.InvalidInputError(
                    f"collection {collection_name!r} has int ids; LlamaIndex node ids are str"
                )
            self.dim = self._col.dim
        elif dim is not None:
            self._collection(dim)

    @classmethod
    def class_name(cls) -> str:
        return "CairnVectorStore"

    def _collection(self, dim: int) -> cairndb.Collection:
        if self._col is None:
            self._col = self._db.get_or_create_collection(
                self.collection_name, dim=dim, metric=self.metric, id_type="str"
            )
            self.dim = dim
        return self._col

    @property
    def client(self) -> Any:
        """The Cairn collection (None until the first `add` when `dim` was not given)."""
        return self._col

    def close(self) -> None:
        """Closes the database, when the store opened it."""
        if self._owns_db and self._db is not None:
            self._db.close()

    # -- writes ------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Stores the nodes (each with its embedding) as one atomic batch; returns their ids."""
        if not nodes:
            return []
        embeddings = [n.get_embedding() for n in nodes]
        col = self._collection(len(embeddings[0]))
        ids = [n.node_id for n in nodes]
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        payloads = [
            {
                **node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata),
                _NODE_ID: n.node_id,
            }
            for n in nodes
        ]
        col.upsert(ids, embeddings, texts=texts, payloads=payloads)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the document `ref_doc_id`."""
        if self._col is not None:
            self._col.delete(filter={"ref_doc_id": ref_doc_id})

    def delete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Deletes the nodes with these ids, those `filters` match, or (both given) those of
        these ids that `filters` match."""
        if self._col is None:
            return
        f = to_cairn_filter(filters)
        if node_ids is not None and f is not None:
            wanted = set(node_ids)
            node_ids = [r.id for r in self._col.scan(filter=f, include=[]) if r.id in wanted]
            f = None
        if node_ids is not None:
            if node_ids:
                self._col.delete(list(node_ids))
        elif f is not None:
            self._col.delete(filter=f)

    def clear(self) -> None:
        """Deletes every node."""
        if self._col is not None:
            self._col.delete(filter={})

    # -- reads -------------------------------------------------------------------------------

    def _node(self, text: Optional[str], payload: dict[str, Any]) -> BaseNode:
        return metadata_dict_to_node(payload, text=text)

    def get_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
    ) -> List[BaseNode]:
        """The nodes with these ids (those that exist, in that order) and/or matching
        `filters`, with their embeddings."""
        if self._col is None:
            return []
        f = to_cairn_filter(filters)
        if node_ids is not None:
            records: Iterable[Any] = [r for r in self._col.get(list(node_ids)) if r is not None]
            if f is not None:
                keep = {r.id for r in self._col.scan(filter=f, include=[])}
                records = [r for r in records if r.id in keep]
        else:
            records = self._col.scan(filter=f)
        out = []
        for r in records:
            node = self._node(r.text, r.payload)
            node.embedding = r.vector.tolist()
            out.append(node)
        return out

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Searches by `query.mode` (see the module's doc), best first."""
        if self._col is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        f = to_cairn_filter(query.filters)
        if query.doc_ids:  # an empty list (what VectorStoreIndex passes) restricts nothing
            by_doc = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            f = by_doc if f is None else {"$and": [f, by_doc]}
        if query.node_ids:
            by_id = {_NODE_ID: {"$in": list(query.node_ids)}}
            f = by_id if f is None else {"$and": [f, by_id]}
        mode = query.mode
        k = query.similarity_top_k
        if mode in _TEXT_MODES:
            if not query.query_str:
                raise ValueError(f"CairnVectorStore: mode {mode.value!r} needs query_str")
            hits = self._col.search(text=query.query_str, k=query.sparse_top_k or k, filter=f,
                                    mode="text")
        elif mode in _HYBRID_MODES:
            if query.query_embedding is None or not query.query_str:
                raise ValueError(
                    f"CairnVectorStore: mode {mode.value!r} needs query_embedding and query_str"
                )
            fusion = {"fusion": "weighted", "alpha": query.alpha} if query.alpha is not None \
                else {}
            hits = self._col.search(query.query_embedding, text=query.query_str,
                                    k=query.hybrid_top_k or k, filter=f, **fusion)
        elif mode == VectorStoreQueryMode.DEFAULT:
            if query.query_embedding is None:
                raise ValueError("CairnVectorStore: the default mode needs query_embedding")
            hits = self._col.search(query.query_embedding, k=k, filter=f)
        else:
            raise ValueError(f"CairnVectorStore: query mode {mode.value!r} is not supported")
        return VectorStoreQueryResult(
            nodes=[self._node(h.text, h.payload) for h in hits],
            similarities=[float(h.score) for h in hits],
            ids=[h.id for h in hits],
        )
