"""LangChain integration: `CairnVectorStore` and a hybrid (vector + BM25) retriever.

```python
from cairndb.langchain import CairnVectorStore

store = CairnVectorStore(embeddings, path="my-db", collection_name="notes")
store.add_texts(["Cairn fsyncs every batch"], metadatas=[{"source": "a.md", "year": 2024}])
store.similarity_search("durability", k=4, filter={"year": {"$gte": 2020}})
store.as_hybrid_retriever(k=4).invoke("fsync batch")

# in another process, while the first one writes: a store that follows it and cannot write
reader = CairnVectorStore(embeddings, path="my-db", collection_name="notes", read_only=True)
```

LangChain ids are strings: the store creates its collection with `id_type="str"`, so each
document's id is its record's id in Cairn, exactly as given (1 to 1024 bytes of UTF-8; an
empty or longer id is refused by `add_texts` with `cairndb.InvalidInputError`). A collection
made by an earlier version of this store holds integer ids: it still opens and works as it
did, each string id mapped to an integer by a 64-bit BLAKE2b hash and the string kept in the
record's payload (`_lc_id`), which is checked on read. The whole metadata dict is stored as JSON (`_lc_metadata`), so it
comes back exactly as given; its top-level values that are JSON Cairn stores as they are (None,
str, bool, ints that fit 64 bits, finite floats, and lists and dicts of those) are also stored
as payload fields of the same name, so filters can use them, nested keys by dotted path:
`{"source": "a.md"}`, `{"year": {"$gte": 2020}}`, `{"meta.author": "x"}`, `{"$or": [...]}`,
or the text syntax `'source = "a.md" AND year >= 2020'`.

`similarity_search_with_score` returns the raw similarity (cosine similarity under the default
metric; higher is more similar).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import uuid
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as e:  # pragma: no cover - exercised only without langchain-core
    raise ImportError(
        "cairndb.langchain needs langchain-core: pip install langchain-core"
    ) from e

import cairndb

__all__ = ["CairnVectorStore", "CairnHybridRetriever"]

# Collections of int ids (made by earlier versions of the store) keep the LangChain id here.
_ID = "_lc_id"
_META = "_lc_metadata"
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1
# Records per upsert call: one atomic, durable batch each.
_BATCH = 512
# The longest string id Cairn stores, in bytes of UTF-8.
_MAX_ID_BYTES = 1024

Filter = Union[str, dict, None]


def _key(doc_id: str) -> int:
    """The 64-bit Cairn id of a LangChain string id, in a collection of int ids."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")


def _native(col: cairndb.Collection) -> bool:
    """Whether the collection stores LangChain's ids as they are (a collection of str ids)."""
    return col.id_type == "str"


def _storable(doc_id: str) -> bool:
    """Whether `doc_id` can be a str id: 1 to 1024 bytes of UTF-8. An id that cannot is not
    stored, so looking it up or deleting it finds nothing."""
    try:
        n = len(doc_id.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 0 < n <= _MAX_ID_BYTES


def _indexable(value: Any, depth: int = 0) -> bool:
    """Whether Cairn stores `value` as a payload field as it is: any JSON (None, bool, str,
    an int from -2**63 to 2**64 - 1, a finite float, lists and str-keyed dicts of those),
    nested at most 32 deep."""
    if depth > 32:
        return False
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, int):
        return _INT64[0] <= value <= _UINT64_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_indexable(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _indexable(v, depth + 1) for k, v in value.items())
    return False


def _payload(doc_id: Optional[str], metadata: Optional[dict]) -> dict:
    """The record's payload: the filterable metadata fields, the metadata as JSON, and (in a
    collection of int ids) the LangChain id."""
    metadata = metadata or {}
    payload = {
        k: v
        for k, v in metadata.items()
        if isinstance(k, str) and not k.startswith("_lc_") and _indexable(v)
    }
    if doc_id is not None:
        payload[_ID] = doc_id
    payload[_META] = json.dumps(metadata, default=str)
    return payload


class CairnVectorStore(VectorStore):
    """A LangChain `VectorStore` backed by a Cairn collection.

    Args:
        embedding: the embedding model.
        path: database directory; `None` makes a temporary one that lives as long as the store.
        collection_name: the collection (created on the first write, with the embedding's
            dimension and string ids; an existing collection of integer ids, made by an earlier
            version of the store, is used as it is).
        metric: "cosine" (default), "dot" or "l2".
        database: an open `cairndb.Database` to use instead of `path`.
        durability: "sync" (default) or "buffered", when the store opens the database.
        stem, stop_words: English stemming and stop-word removal for the BM25 leg.
        read_only: open the database at `path` read-only (`cairndb.open(path,
            read_only=True)`): the store reads while another process writes, sees every
            batch that process acknowledged before each search started, and its writes
            (`add_texts`, `add_documents`, `delete`, `delete_collection`) raise
            `cairndb.ReadOnlyError`. With `database=`, the store is read-only when that
            database is.
    """

    def __init__(
        self,
        embedding: Embeddings,
        path: Optional[str] = None,
        collection_name: str = "langchain",
        *,
        metric: str = "cosine",
        database: Optional[cairndb.Database] = None,
        durability: str = "sync",
        stem: bool = True,
        stop_words: bool = True,
        read_only: bool = False,
    ) -> None:
        self._embedding = embedding
        self._tmp = None
        if database is None:
            if path is None:
                if read_only:
                    raise ValueError("read_only=True needs the path of an existing database")
                self._tmp = tempfile.TemporaryDirectory(prefix="cairn-langchain-")
                path = self._tmp.name
            database = cairndb.open(path, durability=durability, read_only=read_only)
        elif read_only and not database.read_only:
            raise ValueError(
                "read_only=True with a database opened for writing: open it with "
                "cairndb.open(path, read_only=True)"
            )
        self._db = database
        self._name = collection_name
        self._metric = metric
        self._stem = stem
        self._stop_words = stop_words
        try:
            self._col: Optional[cairndb.Collection] = database.collection(collection_name)
        except cairndb.CollectionNotFoundError:
            self._col = None

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def database(self) -> cairndb.Database:
        """The underlying Cairn database."""
        return self._db

    @property
    def collection(self) -> Optional[cairndb.Collection]:
        """The underlying Cairn collection (`None` until the first write)."""
        return self._col

    @property
    def read_only(self) -> bool:
        """Whether the store's database is read-only (its writes raise `ReadOnlyError`)."""
        return self._db.read_only

    def _reading(self) -> Optional[cairndb.Collection]:
        """The collection to read, looked up again while it does not exist (another process,
        or another handle, may create it)."""
        if self._col is None:
            try:
                self._col = self._db.collection(self._name)
            except cairndb.CollectionNotFoundError:
                return None
        return self._col

    def _writable(self) -> None:
        """Raises `ReadOnlyError` on a read-only store, before any work (embedding) is done."""
        if self._db.read_only:
            raise cairndb.ReadOnlyError(
                f"database {self._db.path} is open read-only: writes go through the process "
                "that opened it for writing"
            )

    def _collection_for(self, dim: int) -> cairndb.Collection:
        if self._col is None:
            create = lambda id_type: self._db.get_or_create_collection(  # noqa: E731
                self._name,
                dim,
                self._metric,
                id_type,
                stem=self._stem,
                stop_words=self._stop_words,
            )
            try:
                self._col = create("str")
            except cairndb.InvalidInputError:
                # A collection of int ids made meanwhile by an earlier version of the store is
                # used as it is (if its dim or metric differ, that is the error raised).
                existing = self._reading()
                if existing is None or _native(existing):
                    raise
                self._col = create("int")
        return self._col

    def close(self) -> None:
        """Closes the database (if this store opened it) and removes a temporary directory."""
        self._col = None
        self._db.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def delete_collection(self) -> None:
        """Deletes the collection and everything in it."""
        self._writable()
        if self._col is not None or self._name in self._db.collections():
            self._db.drop_collection(self._name)
        self._col = None

    @staticmethod
    def _document(hit_or_record: Any) -> Optional[Document]:
        """The document of a hit or record: its id is the record's (a str id), or the one
        kept in the payload (int ids; `None` for a record the store did not write)."""
        payload = hit_or_record.payload or {}
        doc_id = hit_or_record.id if isinstance(hit_or_record.id, str) else payload.get(_ID)
        if doc_id is None:
            return None
        metadata = json.loads(payload.get(_META, "{}"))
        return Document(page_content=hit_or_record.text or "", metadata=metadata, id=doc_id)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self._metric == "cosine":
            return lambda s: (1.0 + s) / 2.0
        if self._metric == "dot":
            return self._max_inner_product_relevance_score_fn
        # L2 scores are -‖q - x‖²; LangChain's Euclidean relevance takes the distance.
        return lambda s: self._euclidean_relevance_score_fn(max(-s, 0.0) ** 0.5)

    # -- writes ------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[Optional[str]]] = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embeds and upserts the texts; an existing id is replaced. Returns the ids."""
        self._writable()
        texts = list(texts)
        if not texts:
            return []
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(metadatas)} metadatas")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(ids)} ids")
        str_ids = [
            str(i) if i is not None else str(uuid.uuid4())
            for i in (ids if ids is not None else [None] * len(texts))
        ]
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"the embedding returned shape {vectors.shape} for {len(texts)} texts")
        col = self._collection_for(vectors.shape[1])
        native = _native(col)
        metas = metadatas if metadatas is not None else [None] * len(texts)
        for start in range(0, len(texts), _BATCH):
            end = start + _BATCH
            batch = str_ids[start:end]
            col.upsert(
                batch if native else [_key(i) for i in batch],
                vectors[start:end],
                texts=texts[start:end],
                payloads=[
                    _payload(None if native else i, m) for i, m in zip(batch, metas[start:end])
                ],
            )
        return str_ids

    def delete(
        self, ids: Optional[list[str]] = None, filter: Filter = None, **kwargs: Any
    ) -> Optional[bool]:
        """Deletes by id (ids that do not exist are ignored), or every document whose metadata
        `filter` matches (a dict or the text syntax, as in the searches), atomically."""
        if ids is None and filter is None:
            raise ValueError(
                "delete needs ids or filter= (use delete_collection() to drop all)"
            )
        if ids is not None and filter is not None:
            raise ValueError("delete takes ids or filter=, not both")
        self._writable()
        col = self._reading()
        if col is None:
            return True
        if filter is not None:
            col.delete(filter=filter)
        elif ids:
            if _native(col):
                col.delete([i for i in map(str, ids) if _storable(i)])
            else:
                col.delete([_key(str(i)) for i in ids])
        return True

    # -- reads -------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order given; missing ids are skipped."""
        col = self._reading()
        if col is None or not ids:
            return []
        if _native(col):
            wanted = [i for i in map(str, ids) if _storable(i)]
            docs = (self._document(r) for r in col.get(wanted) if r is not None)
            return [d for d in docs if d is not None]
        out = []
        for want, rec in zip(ids, col.get([_key(str(i)) for i in ids])):
            if rec is None:
                continue
            doc = self._document(rec)
            if doc is not None and doc.id == str(want):
                out.append(doc)
        return out

    def _search(
        self,
        vector: Optional[Sequence[float]],
        text: Optional[str],
        k: int,
        filter: Filter,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        col = self._reading()
        if col is None or k <= 0:
            return []
        hits = col.search(vector=vector, text=text, k=k, filter=filter, **kwargs)
        out = []
        for h in hits:
            doc = self._document(h)
            if doc is not None:
                out.append((doc, h.score))
        return out

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The `k` documents most similar to `query`, with their similarity."""
        if self._reading() is None:
            return []
        return self.similarity_search_with_score_by_vector(
            self._embedding.embed_query(query), k=k, filter=filter, **kwargs
        )

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return self._search(embedding, None, k, filter, **kwargs)

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The `k` documents most similar to `query`. `filter`: a dict or the text syntax."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self._search(embedding, None, k, filter, **kwargs)]

    def hybrid_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Filter = None,
        fusion: Optional[str] = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Vector similarity and BM25 over the text, fused (`fusion`: None for the engine's
        default, weighted min-max with alpha 0.6; or "rrf", "weighted" with `alpha=`, or
        "dbsf"). The score is the fused score."""
        if self._reading() is None:
            return []
        return self._search(
            self._embedding.embed_query(query), query, k, filter, fusion=fusion, **kwargs
        )

    def hybrid_search(
        self, query: str, k: int = 4, filter: Filter = None, fusion: Optional[str] = None, **kwargs: Any
    ) -> list[Document]:
        """Like `hybrid_search_with_score`, without the scores."""
        return [d for d, _ in self.hybrid_search_with_score(query, k, filter, fusion, **kwargs)]

    def keyword_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """BM25 over the documents' text only."""
        return [d for d, _ in self._search(None, query, k, filter, **kwargs)]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Fetches `fetch_k` similar documents and picks `k` of them that are both relevant and
        diverse (`lambda_mult` 1: relevance only, 0: diversity only)."""
        if self._reading() is None:
            return []
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        col = self._reading()
        if col is None or k <= 0:
            return []
        hits = col.search(vector=embedding, k=max(fetch_k, k), filter=filter, **kwargs)
        if not hits:
            return []
        records = col.get([h.id for h in hits])
        kept = [(h, r) for h, r in zip(hits, records) if r is not None]
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32),
            [r.vector for _, r in kept],
            lambda_mult=lambda_mult,
            k=k,
        )
        docs = [self._document(kept[i][0]) for i in chosen]
        return [d for d in docs if d is not None]

    # -- constructors and retrievers ---------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: Optional[list[dict]] = None,
        *,
        ids: Optional[list[str]] = None,
        **kwargs: Any,
    ) -> "CairnVectorStore":
        """A store (see the constructor's arguments in `kwargs`) holding these texts."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def as_hybrid_retriever(
        self, k: int = 4, filter: Filter = None, fusion: Optional[str] = None, **search_kwargs: Any
    ) -> "CairnHybridRetriever":
        """A retriever that runs `hybrid_search` (vector + BM25, fused)."""
        return CairnHybridRetriever(
            store=self, k=k, filter=filter, fusion=fusion, search_kwargs=search_kwargs
        )


class CairnHybridRetriever(BaseRetriever):
    """Retrieves with vector similarity and BM25 fused in one Cairn query."""

    store: Any
    k: int = 4
    filter: Any = None
    fusion: Optional[str] = None
    search_kwargs: dict = {}

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.store.hybrid_search(
            query, k=self.k, filter=self.filter, fusion=self.fusion, **self.search_kwargs
        )
