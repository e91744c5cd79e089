"""Data frames in and out: pandas, pyarrow and polars for `Collection.upsert`, Arrow and pandas
for search results and scans, and the embedding functions of `embedding=`.

Nothing here imports pyarrow, pandas or polars at module level: a frame is recognised by the
module its type comes from, and pyarrow is imported only when a frame is given or an Arrow
result is asked for.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ._errors import InvalidInputError

# The column roles a frame's columns are mapped to; every other column is a payload field.
ROLES = ("id", "vector", "text", "payload")


def _pa() -> Any:
    try:
        import pyarrow as pa
    except ImportError as e:  # pragma: no cover - the tests install it
        raise ImportError(
            "reading or writing data frames needs pyarrow (pip install pyarrow)"
        ) from e
    return pa


def frame_kind(obj: Any) -> Optional[str]:
    """"pandas", "pyarrow" or "polars" when `obj` is a frame `upsert` reads, else None."""
    t = type(obj)
    mod = t.__module__ or ""
    root = mod.split(".", 1)[0]
    name = t.__name__
    if root == "pandas" and name == "DataFrame":
        return "pandas"
    if root == "pyarrow" and name in ("Table", "RecordBatch"):
        return "pyarrow"
    if root == "polars" and name == "DataFrame":
        return "polars"
    return None


def _to_table(frame: Any, kind: str) -> Any:
    pa = _pa()
    if kind == "pandas":
        _no_duplicates([str(c) for c in frame.columns])
        return pa.Table.from_pandas(frame, preserve_index=False)
    if kind == "polars":
        return frame.to_arrow()
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    return frame


def _no_duplicates(names: list[str]) -> None:
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise InvalidInputError(f"the frame has duplicate column names: {dup}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _one_array(col: Any) -> Any:
    """A ChunkedArray as one Array (no copy when it has one chunk)."""
    pa = _pa()
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        return col.combine_chunks()
    return col


def _check_no_nulls(arr: Any, column: str, what: str) -> None:
    if arr.null_count:
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
        raise InvalidInputError(f"row {_first(mask)}, column {column!r}: {what} is null")


def _vectors(col: Any, column: str, dim: int) -> np.ndarray:
    """The (n, dim) float32 matrix of a vector column: FixedSizeList<float32> is viewed in
    place; List/LargeList and float64 are converted. No per-row Python loop."""
    pa = _pa()
    import pyarrow.compute as pc

    arr = _one_array(col)
    t = arr.type
    n = len(arr)
    _check_no_nulls(arr, column, "the vector")
    if pa.types.is_fixed_size_list(t):
        if t.list_size != dim:
            raise InvalidInputError(
                f"column {column!r}: vectors of length {t.list_size}, the collection's "
                f"dimension is {dim}"
            )
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        bad = lengths != dim
        if bad.any():
            i = _first(bad)
            raise InvalidInputError(
                f"row {i}, column {column!r}: vector of length {int(lengths[i])}, the "
                f"collection's dimension is {dim}"
            )
    else:
        raise InvalidInputError(
            f"column {column!r} must hold vectors (FixedSizeList or List of float32 or "
            f"float64), not {t}"
        )
    values = arr.flatten()  # honours the array's offset; no copy
    vt = values.type
    if not (pa.types.is_float32(vt) or pa.types.is_float64(vt) or pa.types.is_float16(vt)):
        raise InvalidInputError(
            f"column {column!r}: vector elements must be float32 or float64, not {vt}"
        )
    if values.null_count:
        mask = np.asarray(values.is_null().to_numpy(zero_copy_only=False))
        raise InvalidInputError(
            f"row {_first(mask) // dim}, column {column!r}: the vector holds a null"
        )
    if pa.types.is_float32(vt):
        flat = values.to_numpy(zero_copy_only=True)
    else:
        flat = values.to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(n, dim)


def _ids(col: Any, column: str, id_type: str) -> Any:
    pa = _pa()
    arr = _one_array(col)
    t = arr.type
    _check_no_nulls(arr, column, "the id")
    if id_type == "int":
        if not pa.types.is_integer(t):
            raise InvalidInputError(
                f"column {column!r} holds {t}, the collection's ids are int"
            )
        a = arr.to_numpy(zero_copy_only=False)
        if pa.types.is_signed_integer(t) and len(a) and (a < 0).any():
            i = _first(a < 0)
            raise InvalidInputError(f"row {i}, column {column!r}: id {int(a[i])} is negative")
        return a.astype(np.uint64, copy=False)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or
            getattr(pa.types, "is_string_view", lambda _t: False)(t)):
        raise InvalidInputError(f"column {column!r} holds {t}, the collection's ids are str")
    return arr.to_pylist()


def _texts(col: Any, column: str) -> list[Optional[str]]:
    pa = _pa()
    t = col.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t) or
            getattr(pa.types, "is_string_view", lambda _t: False)(t)):
        raise InvalidInputError(f"column {column!r} must hold str (the text), not {t}")
    return col.to_pylist()


def _check_finite(col: Any, column: str) -> None:
    """A float payload column with NaN or ±inf: an error naming the first such row."""
    pa = _pa()
    import pyarrow.compute as pc

    t = col.type
    if not pa.types.is_floating(t):
        return
    bad = pc.fill_null(pc.invert(pc.is_finite(col)), False)
    if pc.any(bad).as_py():
        mask = np.asarray(bad.to_numpy(zero_copy_only=False))
        i = _first(mask)
        raise InvalidInputError(
            f"row {i}, column {column!r}: {col[i].as_py()} is not a finite number "
            f"(payload numbers must be finite)"
        )


def _payload_base(col: Any, column: str) -> list[dict[str, Any]]:
    """The `payload` column: JSON object text (as `to_arrow` writes it) or a struct/map."""
    out: list[dict[str, Any]] = []
    for i, v in enumerate(col.to_pylist()):
        if v is None:
            out.append({})
            continue
        if isinstance(v, (str, bytes)):
            try:
                v = json.loads(v)
            except ValueError as e:
                raise InvalidInputError(
                    f"row {i}, column {column!r}: not JSON ({e})"
                ) from None
        if isinstance(v, list) and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            v = dict(v)  # a map column
        if not isinstance(v, dict):
            raise InvalidInputError(
                f"row {i}, column {column!r}: the payload must be a JSON object, "
                f"not {type(v).__name__}"
            )
        out.append(v)
    return out


def _check_float(v: Any, i: int, column: str) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise InvalidInputError(
            f"row {i}, column {column!r}: {v} is not a finite number "
            f"(payload numbers must be finite)"
        )


def frame_columns(
    frame: Any,
    kind: str,
    columns: Optional[Mapping[str, Any]],
    id_type: str,
    dim: int,
    embedding: Any,
) -> tuple[Any, np.ndarray, Optional[list[Optional[str]]], Optional[list[dict[str, Any]]]]:
    """(ids, vectors, texts, payloads) of a frame, as `upsert` takes them."""
    table = _to_table(frame, kind)
    names = list(table.column_names)
    _no_duplicates(names)
    mapping: dict[str, Any] = {}
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise TypeError(f"columns must be a dict such as {{'id': 'doc_id'}}, not {type(columns).__name__}")
        for role, c in columns.items():
            if role not in ROLES and role != "fields":
                raise InvalidInputError(
                    f"columns: unknown role {role!r} (use 'id', 'vector', 'text', 'payload', 'fields')"
                )
            mapping[role] = c
    role_col: dict[str, Optional[str]] = {}
    for role in ROLES:
        c = mapping.get(role, role)
        if c is not None and c not in names:
            if role in mapping or role == "id":
                raise InvalidInputError(
                    f"the frame has no {role} column {c!r} (its columns: {names}); name it "
                    f"with columns={{{role!r}: ...}}"
                )
            c = None
        role_col[role] = c
    used = {c for c in role_col.values() if c is not None}
    # A column named like a role but mapped elsewhere would silently become a payload field
    # that looks like the role: refuse it.
    for role in ROLES:
        if role in names and role not in used:
            raise InvalidInputError(
                f"column {role!r} is a reserved name but columns= takes the {role} from "
                f"{role_col[role]!r}; drop or rename it"
            )
    if "fields" in mapping and mapping["fields"] is not None:
        fields = list(mapping["fields"])
        for f in fields:
            if f not in names:
                raise InvalidInputError(f"columns: no payload column {f!r} in the frame")
            if f in used:
                raise InvalidInputError(f"columns: {f!r} is both a payload field and the {[r for r in ROLES if role_col[r] == f][0]}")
    else:
        fields = [c for c in names if c not in used]

    n = table.num_rows
    if n == 0:
        # Nothing to read (pandas types an empty vector column as null).
        return [], np.zeros((0, dim), dtype=np.float32), None, None
    ids = _ids(table.column(role_col["id"]), role_col["id"], id_type)
    texts = None
    if role_col["text"] is not None:
        texts = _texts(table.column(role_col["text"]), role_col["text"])
    if role_col["vector"] is not None:
        vectors = _vectors(table.column(role_col["vector"]), role_col["vector"], dim)
    elif embedding is not None:
        if texts is None or any(t is None for t in texts):
            raise InvalidInputError(
                "the frame has no vector column: the embedding function needs a text column "
                "with a str in every row"
            )
        vectors = embed_documents(embedding, texts, dim)
    else:
        raise InvalidInputError(
            f"the frame has no vector column {mapping.get('vector', 'vector')!r} (its columns: "
            f"{names}) and the collection has no embedding function"
        )

    payloads: Optional[list[dict[str, Any]]] = None
    if role_col["payload"] is not None:
        payloads = _payload_base(table.column(role_col["payload"]), role_col["payload"])
    if fields:
        for f in fields:
            _check_finite(table.column(f), f)
        if payloads is None:
            payloads = [{} for _ in range(n)]
        for f in fields:
            for i, v in enumerate(table.column(f).to_pylist()):
                if v is not None:
                    _check_float(v, i, f)
                    payloads[i][f] = v
    return ids, vectors, texts, payloads


def _root(obj: Any) -> str:
    return (type(obj).__module__ or "").split(".", 1)[0]


_FRAME_LIBS = ("pyarrow", "pandas", "polars")


def plain_columns(ids: Any, vectors: Any, id_type: str, dim: int) -> tuple[Any, Any]:
    """`upsert(ids, vectors)` given as pyarrow arrays or pandas/polars Series: the ids and
    vectors as the extension reads them fastest (a FixedSizeList<float32> array viewed in
    place). Anything else is returned as it is."""
    if _root(vectors) in _FRAME_LIBS:
        pa = _pa()
        col = vectors
        if _root(col) != "pyarrow":
            col = pa.array(col.to_arrow() if _root(col) == "polars" else col)
        if isinstance(col, (pa.Array, pa.ChunkedArray)):
            vectors = _vectors(col, "vectors", dim)
    if _root(ids) in _FRAME_LIBS:
        pa = _pa()
        col = ids
        if _root(col) != "pyarrow":
            col = col.to_arrow() if _root(col) == "polars" else pa.array(col)
        if isinstance(col, (pa.Array, pa.ChunkedArray)):
            ids = _ids(col, "ids", id_type)
    return ids, vectors


# -- embedding functions ---------------------------------------------------------------------


def _as_matrix(v: Any, n: int, dim: int, what: str) -> np.ndarray:
    try:
        m = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{what} returned something that is not a matrix of floats: {e}") from None
    if m.ndim != 2 or m.shape != (n, dim):
        raise InvalidInputError(
            f"{what} returned shape {m.shape}, expected ({n}, {dim}) for {n} texts"
        )
    return np.ascontiguousarray(m)


def check_embedding(embedding: Any) -> None:
    if embedding is None:
        return
    if callable(embedding) or hasattr(embedding, "embed_documents"):
        return
    raise TypeError(
        "embedding must be a callable list[str] -> vectors or an object with "
        f"embed_documents/embed_query (a LangChain Embeddings), not {type(embedding).__name__}"
    )


def embed_documents(embedding: Any, texts: Sequence[str], dim: int) -> np.ndarray:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of str, not one str")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInputError(
                f"texts[{i}] is {type(t).__name__}: the embedding function needs a str for "
                "every record given without a vector"
            )
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    if hasattr(embedding, "embed_documents"):
        v = embedding.embed_documents(texts)
    else:
        v = embedding(texts)
    return _as_matrix(v, len(texts), dim, "the embedding function")


def embed_query(embedding: Any, text: str, dim: int) -> np.ndarray:
    if hasattr(embedding, "embed_query"):
        v = [embedding.embed_query(text)]
    elif hasattr(embedding, "embed_documents"):
        v = embedding.embed_documents([text])
    else:
        v = embedding([text])
    return _as_matrix(v, 1, dim, "the embedding function")[0]


# -- results out -----------------------------------------------------------------------------


def _id_type(pa: Any, id_type: str) -> Any:
    return pa.uint64() if id_type == "int" else pa.string()


def _payload_json(p: Optional[dict[str, Any]]) -> Optional[str]:
    if p is None:
        return None
    return json.dumps(p, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class SearchResult(list):  # type: ignore[type-arg]
    """The hits of `Collection.search`, best first: a `list` of `Hit` (so indexing,
    iteration and `len` work as before) that also converts to a table.

    `to_arrow()`: a `pyarrow.Table` with columns `id` (uint64, or string for str ids),
    `score` (float32), and, when the search included them, `text` (string) and `payload`
    (string: the payload as JSON text, as `Collection.to_arrow` and `cairn export` write it).
    `to_pandas()`: a `pandas.DataFrame` with the same columns, the payload as dicts.
    """

    __slots__ = ("id_type", "include_text", "include_payload")

    def __init__(
        self,
        hits: Sequence[Any] = (),
        id_type: str = "int",
        include_text: bool = True,
        include_payload: bool = True,
    ) -> None:
        super().__init__(hits)
        self.id_type = id_type
        self.include_text = include_text
        self.include_payload = include_payload

    def __reduce__(self) -> Any:
        return (SearchResult, (list(self), self.id_type, self.include_text, self.include_payload))

    def to_arrow(self) -> Any:
        pa = _pa()
        cols = {
            "id": pa.array([h.id for h in self], type=_id_type(pa, self.id_type)),
            "score": pa.array([h.score for h in self], type=pa.float32()),
        }
        if self.include_text:
            cols["text"] = pa.array([h.text for h in self], type=pa.string())
        if self.include_payload:
            cols["payload"] = pa.array([_payload_json(h.payload) for h in self], type=pa.string())
        return pa.table(cols)

    def to_pandas(self) -> Any:
        import pandas as pd

        data: dict[str, Any] = {
            "id": pd.Series([h.id for h in self],
                            dtype="uint64" if self.id_type == "int" else object),
            "score": pd.Series([h.score for h in self], dtype="float32"),
        }
        if self.include_text:
            data["text"] = pd.Series([h.text for h in self], dtype=object)
        if self.include_payload:
            data["payload"] = pd.Series([h.payload for h in self], dtype=object)
        return pd.DataFrame(data)

    def __repr__(self) -> str:
        return f"SearchResult({list.__repr__(self)})"


def scan_schema(id_type: str, dim: int, parts: tuple[bool, bool, bool]) -> Any:
    pa = _pa()
    fields = [pa.field("id", _id_type(pa, id_type), nullable=False)]
    vectors, text, payload = parts
    if vectors:
        fields.append(pa.field("vector", pa.list_(pa.float32(), dim)))
    if text:
        fields.append(pa.field("text", pa.string()))
    if payload:
        fields.append(pa.field("payload", pa.string()))
    return pa.schema(fields)


def scan_reader(scan: Any, id_type: str, dim: int, parts: tuple[bool, bool, bool]) -> Any:
    """A `pyarrow.RecordBatchReader` over the rest of `scan`, one record batch per scan
    batch (memory bounded by the batch size)."""
    pa = _pa()
    schema = scan_schema(id_type, dim, parts)

    def batches() -> Any:
        while True:
            cols = scan._next_columns()
            if cols is None:
                return
            ids, vectors, texts, payloads = cols
            arrays = [pa.array(ids, type=schema.field("id").type)]
            if parts[0]:
                flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, dim))
            if parts[1]:
                arrays.append(pa.array(texts, type=pa.string()))
            if parts[2]:
                arrays.append(pa.array(payloads, type=pa.string()))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


EmbeddingFunction = Callable[[list[str]], Any]
