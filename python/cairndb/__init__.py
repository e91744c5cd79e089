"""Cairn: an embedded vector database.

>>> import cairndb, numpy as np
>>> db = cairndb.open("my-db")                      # doctest: +SKIP
>>> docs = db.get_or_create_collection("docs", dim=384)  # doctest: +SKIP
>>> docs.upsert([1, 2], np.random.rand(2, 384).astype("float32"),
...             texts=["first", "second"], payloads=[{"lang": "en"}, {"lang": "de"}])  # doctest: +SKIP
>>> docs.search(vector=q, text="first", filter={"lang": "en"}, k=5)  # doctest: +SKIP

Everything lives in the Rust extension `cairndb._cairndb`; this module re-exports it. The
LangChain vector store is in `cairndb.langchain` (needs `langchain-core`), the LlamaIndex one in
`cairndb.llama_index` (needs `llama-index-core`). Data frames (pandas, pyarrow, polars) go
into `Collection.upsert` and come out of `search(...).to_arrow()`/`to_pandas()` and
`Collection.to_arrow()`; those need `pyarrow`, imported only when used. `cairndb.ray` shards a
collection over a Ray cluster (needs `ray[data]`); `merge_hits`, `fuse_hits` and
`Collection.text_stats` are the scatter-gather API it uses.
"""

from ._errors import (
    CairnError,
    ClosedError,
    CollectionExistsError,
    CollectionNotFoundError,
    CorruptionError,
    ForkedProcessError,
    IdCollisionError,
    InvalidInputError,
    LockedError,
    ReadOnlyError,
    StorageError,
)
from ._cairndb import Collection, Database, Hit, Record, Scan, fuse_hits, merge_hits, open
from ._frames import SearchResult

__all__ = [
    "CairnError",
    "ClosedError",
    "Collection",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "CorruptionError",
    "Database",
    "ForkedProcessError",
    "Hit",
    "IdCollisionError",
    "InvalidInputError",
    "LockedError",
    "ReadOnlyError",
    "Record",
    "Scan",
    "SearchResult",
    "StorageError",
    "fuse_hits",
    "merge_hits",
    "open",
]
__version__ = "0.1.0"
