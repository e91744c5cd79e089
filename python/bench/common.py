"""Shared helpers for the Python benchmarks: .fvecs/.ivecs reading, exact top-k, timing stats."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np


def read_vecs(path: Path | str, dtype=np.float32, limit: int | None = None) -> np.ndarray:
    """Rows of an .fvecs (float32) or .ivecs (int32) file: each row is an int32 dim, then dim values."""
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        return np.zeros((0, 0), dtype=dtype)
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    if limit is not None:
        rows = rows[:limit]
    if not (rows[:, 0] == dim).all():
        raise ValueError(f"{path}: rows of different dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def exact_topk_cosine(base: np.ndarray, queries: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    """Exact top-k ids by cosine (best first, ties to the lower id), with numpy matrix products."""
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), chunk):
        sims = q[s : s + chunk] @ b.T
        part = np.argpartition(-sims, k, axis=1)[:, : k + 1]
        for i, row in enumerate(part):
            order = sorted(row, key=lambda j: (-sims[i, j], j))[:k]
            out[s + i] = order
    return out


def recall_at_k(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    hits = sum(len(set(f[:k]) & set(t[:k].tolist())) for f, t in zip(found, truth))
    return hits / (k * len(found))


def pct(sorted_vals: list[float], q: float) -> float:
    """Nearest-rank quantile of an already sorted list (same rule as the Rust example)."""
    return sorted_vals[round((len(sorted_vals) - 1) * q)]


def median(vals):
    return statistics.median(vals)


def loadavg() -> float:
    return os.getloadavg()[0]
