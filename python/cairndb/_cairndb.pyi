"""Type stubs for the Rust extension `cairndb._cairndb`."""

from os import PathLike
from typing import Any, Callable, Literal, Optional, Sequence, Union, final, overload

import numpy as np
import numpy.typing as npt

from ._frames import SearchResult

__all__ = ["Collection", "Database", "Hit", "Record", "Scan", "fuse_hits", "merge_hits", "open"]

# Any JSON value (nested at most 64 levels).
_PayloadValue = Union[
    None, str, int, float, bool, list["_PayloadValue"], tuple["_PayloadValue", ...], dict[str, "_PayloadValue"]
]
_Payload = dict[str, _PayloadValue]
_FilterSpec = Union[str, dict[str, Any]]
_Vector = Union[npt.NDArray[np.float32], npt.NDArray[np.float64], Sequence[float]]
_Matrix = Union[npt.NDArray[np.float32], npt.NDArray[np.float64], Sequence[Sequence[float]]]
# An id is an int (0 to 2**64 - 1) in a collection created with id_type="int" (the default),
# a str (1 to 1024 bytes of UTF-8) in one created with id_type="str".
_Id = Union[int, str]
_Ids = Union[int, str, Sequence[_Id], npt.NDArray[np.integer], npt.NDArray[np.str_]]
_Metric = Literal["cosine", "dot", "l2"]
_IdType = Literal["int", "str"]
# An embedding function: a callable list[str] -> (n, dim) floats, or an object with
# embed_documents(list[str]) and embed_query(str) (a LangChain `Embeddings`).
_Embedding = Any
# A data frame `Collection.upsert` reads: pandas or polars DataFrame, pyarrow Table or RecordBatch.
_Frame = Any
_Mode = Literal["vector", "text", "hybrid"]
# BM25 statistics of one query (Collection.text_stats): {"documents": int, "total_len": int,
# "df": {term: int}}.
_TextStats = dict[str, Any]

def merge_hits(lists: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """Merges ranked hit lists of shards holding disjoint records into the best `k`, ranked as
    one collection ranks: higher score first, ties to the lower id key."""

def fuse_hits(
    vector_hits: Sequence[Hit],
    text_hits: Sequence[Hit],
    fusion: Optional[Literal["rrf", "weighted", "dbsf"]] = None,
    *,
    alpha: Optional[float] = None,
    rrf_k: Optional[float] = None,
) -> list[Hit]:
    """Fuses a hybrid query's two ranked legs exactly as a hybrid `search` of one collection
    does: every record of either list, best first, with its fused score and `legs`."""

def open(
    path: Union[str, PathLike[str]],
    *,
    durability: Literal["sync", "buffered"] = "sync",
    background_compaction: bool = True,
    create: bool = True,
    read_only: bool = False,
    lock_timeout: float = 0.0,
    memory_budget: Optional[int] = None,
    lock_memory: bool = False,
) -> Database:
    """Opens (creating if missing) the database in directory `path`.

    `durability`: "sync" (default: a write is on stable storage when it returns) or
    "buffered" (synced by a background thread once a second; `Database.sync()` forces it).
    Raises `LockedError` if another process or handle has it open, after waiting up to
    `lock_timeout` seconds for it to close.

    `memory_budget`: bytes the segments' codes and graphs (what graph walks touch) should stay
    within; they are read in at open and kept resident (locked with `lock_memory=True`), and a
    warning is logged when they do not fit. See `Database.memory()`.

    `read_only=True`: opens an existing database to read while another process writes; it
    takes no lock, writes nothing, sees every batch the writer acknowledged before each call
    started, and raises `ReadOnlyError` on every write.
    """

@final
class Database:
    """An open Cairn database: a directory holding collections. Closed by `close()`, by
    leaving a `with` block, or when it and all its collections are garbage."""

    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def read_only(self) -> bool:
        """Whether it was opened with `read_only=True` (writes raise `ReadOnlyError`)."""
    def create_collection(
        self,
        name: str,
        dim: int,
        metric: _Metric = "cosine",
        id_type: _IdType = "int",
        *,
        m: int = 16,
        ef_construction: int = 200,
        stem: bool = False,
        stop_words: bool = False,
        embedding: Optional[_Embedding] = None,
        quantization: Literal["int8", "none"] = "int8",
    ) -> Collection:
        """Creates a collection; `CollectionExistsError` if the name is taken.

        `id_type`: "int" (ids are ints from 0 to 2**64 - 1) or "str" (ids are strings of 1 to
        1024 bytes of UTF-8), fixed for the collection's life.

        `embedding`: an embedding function for this handle (see `Collection.embedding`).

        `quantization`: what graph walks score — "int8" codes (a quarter of the vector bytes,
        stored in each segment) or "none" (the f32 vectors); hits are re-scored exactly either
        way.
        """
    def collection(self, name: str, *, embedding: Optional[_Embedding] = None) -> Collection:
        """An existing collection; `CollectionNotFoundError` if there is none. `embedding`:
        the embedding function this handle uses (it is not stored in the database)."""
    def get_or_create_collection(
        self,
        name: str,
        dim: int,
        metric: _Metric = "cosine",
        id_type: _IdType = "int",
        *,
        m: int = 16,
        ef_construction: int = 200,
        stem: bool = False,
        stop_words: bool = False,
        embedding: Optional[_Embedding] = None,
        quantization: Literal["int8", "none"] = "int8",
    ) -> Collection:
        """The collection, created if missing; an existing one must match `dim`, `metric` and
        `id_type` (`InvalidInputError` naming the setting otherwise)."""
    def collections(self) -> list[str]: ...
    def drop_collection(self, name: str) -> None: ...
    def sync(self) -> None:
        """Makes every acknowledged write durable."""
    def verify(self) -> dict[str, int]:
        """Checks every file and graph; raises `CorruptionError` on the first problem."""
    def memory(self) -> dict[str, Any]:
        """Memory figures: `budget`, `pinned_bytes` (codes and graphs), `fits`, `resident`
        (bytes in memory now per part: codes, graph, vectors, ids, payload, indexes, from the
        page tables) and `memtable_bytes`."""
    def close(self) -> None:
        """Closes the database and its collection handles, waits for calls in flight on other
        threads to end, and releases the lock; later calls raise `ClosedError`. Raises
        `RuntimeError` when called from inside a call on this database (a re-ranker)."""
    def __enter__(self) -> Database: ...
    def __exit__(self, *args: Any) -> bool: ...

@final
class Collection:
    """Records of one dimension and metric, with optional text and payload."""

    @property
    def name(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> _Metric: ...
    @property
    def id_type(self) -> _IdType:
        """"int" or "str": the kind of ids, chosen at creation."""
    @property
    def quantization(self) -> Literal["int8", "none"]:
        """What graph walks score, chosen at creation: "int8" codes or "none" (f32)."""
    def __len__(self) -> int: ...
    @property
    def embedding(self) -> Optional[_Embedding]:
        """The embedding function given to this handle (`embedding=`), or None. It computes
        the vectors of records upserted with texts and no vectors, and the query vector of a
        search by text (`mode="vector"`/`"hybrid"`, the default with a text and no vector).
        Not stored in the database: give it to every handle."""
    @overload
    def upsert(self, ids: _Frame, *, columns: Optional[dict[str, Any]] = None) -> None: ...
    @overload
    def upsert(
        self,
        ids: _Ids,
        vectors: Optional[_Matrix] = None,
        texts: Optional[Sequence[Optional[str]]] = None,
        payloads: Optional[Sequence[Optional[_Payload]]] = None,
        *,
        columns: None = None,
    ) -> None:
        """Inserts or replaces records as one atomic batch (all or none).

        `upsert(frame)`: a pandas/polars DataFrame or pyarrow Table/RecordBatch with columns
        `id`, `vector`, optional `text` and `payload`, the rest payload fields (a null leaves
        the field out); `columns={"id": ..., "vector": ..., "text": ..., "payload": ...,
        "fields": [...]}` names them. Without vectors the embedding function computes them
        from `texts`.

        An id of the other kind than the collection's, an empty or over-long str id: an
        `InvalidInputError`. A str id whose 64-bit hash is another stored str id's:
        `IdCollisionError` (the batch is refused).
        """
    def search(
        self,
        vector: Optional[_Vector] = None,
        text: Optional[str] = None,
        k: int = 10,
        filter: Optional[_FilterSpec] = None,
        fusion: Optional[Literal["rrf", "weighted", "dbsf"]] = None,
        *,
        alpha: Optional[float] = None,
        rrf_k: Optional[float] = None,
        ef: Optional[int] = None,
        exact: bool = False,
        candidates: Optional[int] = None,
        include_text: bool = True,
        include_payload: bool = True,
        rerank: Optional[Callable[[Optional[str], list[Hit]], Union[Sequence[float], npt.NDArray[np.floating]]]] = None,
        rerank_top_n: Optional[int] = None,
        mode: Optional[_Mode] = None,
        text_stats: Optional[_TextStats] = None,
    ) -> SearchResult:
        """_Vector, text (BM25) or hybrid search, best first.

        Hybrid `fusion`: None (the engine's default: weighted min-max, alpha 0.6), "rrf"
        (`rrf_k`, default 60), "weighted" (`alpha`, default 0.5) or "dbsf".

        `text_stats`: BM25 statistics to score the text leg with instead of the collection's
        own (scatter-gather: the sum of every shard's `text_stats(text)`).

        `rerank(text, hits)` re-scores the best `rerank_top_n` (default `max(2k, 50)`)
        candidates, given with text and payload; the hits come back ordered by its scores.
        """
    def explain(
        self,
        vector: Optional[_Vector] = None,
        text: Optional[str] = None,
        k: int = 10,
        filter: Optional[_FilterSpec] = None,
        fusion: Optional[Literal["rrf", "weighted", "dbsf"]] = None,
        *,
        alpha: Optional[float] = None,
        rrf_k: Optional[float] = None,
        ef: Optional[int] = None,
        exact: bool = False,
        candidates: Optional[int] = None,
    ) -> dict[str, Any]:
        """How `search` with these arguments runs: `{"hits": [...], "explain": {...}}`."""
    def text_stats(self, text: str) -> _TextStats:
        """The statistics BM25 scores `text` with here: live records with text, their total
        length in analyzed terms, and the df of each distinct analyzed term of `text`. Shards'
        statistics add up (counts and each df) to those of one collection holding them all."""
    def search_batch(
        self,
        queries: _Matrix,
        k: int = 10,
        filter: Optional[_FilterSpec] = None,
        *,
        ef: Optional[int] = None,
        exact: bool = False,
        threads: Optional[int] = None,
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32]]:
        """Vector search for many queries on `threads` threads (default: every core; more
        than the machine's available parallelism are capped to it; 0 is an error).

        Returns `(ids, scores)`, both of shape `(len(queries), k)`, best first; rows with
        fewer than `k` hits are padded with id `2**64 - 1` and score NaN. `ids` is uint64,
        or in a collection of str ids an object array of str padded with `None`.
        """
    # A str is one id (though it is also a sequence of str).
    @overload
    def get(self, ids: _Id) -> Optional[Record]: ...  # type: ignore[overload-overlap]
    @overload
    def get(self, ids: Union[Sequence[_Id], npt.NDArray[np.integer], npt.NDArray[np.str_]]) -> list[Optional[Record]]: ...
    @overload
    def get(
        self,
        ids: None = None,
        *,
        filter: Optional[_FilterSpec] = None,
        limit: Optional[int] = None,
        after: Optional[_Id] = None,
    ) -> list[Record]:
        """Without ids: the records matching `filter`, in scan order, at most `limit`, after
        id `after` (a page of `scan`)."""
    def delete(self, ids: Optional[_Ids] = None, *, filter: Optional[_FilterSpec] = None) -> int:
        """Deletes records by id, or every record `filter` matches; returns how many."""
    def update(
        self,
        ids: _Ids,
        vectors: Optional[_Matrix] = None,
        texts: Optional[Sequence[Optional[str]]] = None,
        payloads: Optional[Sequence[Optional[_Payload]]] = None,
        merge: bool = True,
    ) -> int:
        """Changes records in place (what is not given stays); returns how many existed."""
    def count(self, filter: Optional[_FilterSpec] = None) -> int: ...
    def to_arrow(
        self,
        filter: Optional[_FilterSpec] = None,
        batch_size: int = 10000,
        *,
        include: Optional[Sequence[str]] = None,
    ) -> Any:
        """The matching records as one `pyarrow.Table`: `id` (uint64 or string), `vector`
        (FixedSizeList<float32>), `text`, `payload` (JSON object text). For bounded memory
        iterate `scan(...).to_arrow()` instead."""
    def scan(
        self,
        filter: Optional[_FilterSpec] = None,
        batch_size: int = 1000,
        *,
        include: Optional[Sequence[str]] = None,
        after: Optional[_Id] = None,
    ) -> Scan:
        """Every matching record in scan order, over a snapshot taken now: ascending ids for
        int ids; for str ids the order of their 64-bit hashes (fixed, not alphabetical)."""
    def flush(self) -> None: ...
    def warm_up(self) -> None:
        """Builds the int8 copies graph searches use now rather than after the first search."""
    def compact(self) -> dict[str, int]: ...
    def stats(self) -> dict[str, Any]: ...

@final
class Hit:
    """One search result."""

    def __new__(
        cls,
        id: _Id,
        score: float,
        text: Optional[str] = None,
        payload: Optional[_Payload] = None,
        legs: Optional[dict[str, Any]] = None,
    ) -> Hit: ...
    def to_dict(self) -> dict[str, Any]:
        """{"id", "score", "text", "payload", "legs"}."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

    @property
    def id(self) -> _Id:
        """An int, or a str in a collection of str ids."""
    @property
    def score(self) -> float: ...
    @property
    def text(self) -> Optional[str]: ...
    @property
    def payload(self) -> Optional[_Payload]: ...
    @property
    def legs(self) -> Optional[dict[str, Any]]:
        """Hybrid only: {"vector": {"rank", "score"} | None, "text": … | None, "fused": float}."""

@final
class Scan:
    """The records of `Collection.scan`, in scan order."""

    def __iter__(self) -> Scan: ...
    def __next__(self) -> Record: ...
    def _next_columns(self) -> Optional[tuple[Any, Any, list[Optional[str]], list[str]]]: ...
    def to_arrow(self) -> Any:
        """The rest of the scan as a `pyarrow.RecordBatchReader` of `batch_size` rows per
        batch: `id`, `vector` (FixedSizeList<float32>), `text`, `payload` (JSON object text),
        those not in `include` left out."""
    @property
    def cursor(self) -> Optional[_Id]:
        """The id of the last record returned (or the scan's `after`)."""

@final
class Record:
    """A stored record."""

    def __new__(
        cls,
        id: _Id,
        vector: Sequence[float],
        text: Optional[str] = None,
        payload: Optional[_Payload] = None,
    ) -> Record: ...
    def to_dict(self) -> dict[str, Any]:
        """{"id", "vector" (a list of floats), "text", "payload"}."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

    @property
    def id(self) -> _Id:
        """An int, or a str in a collection of str ids."""
    @property
    def text(self) -> Optional[str]: ...
    @property
    def vector(self) -> npt.NDArray[np.float32]: ...
    @property
    def payload(self) -> _Payload: ...
