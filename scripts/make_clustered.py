#!/usr/bin/env python3
"""Builds the clustered-D data sets of docs/benchmarks.md ("HNSW vs hnswlib on 384-d and 768-d
clustered data"): unit vectors around 1,000 Gaussian centres, queries drawn the same way, exact
cosine top-100 ground truth, written with `../shared/bench/common.py` to
`~/.cache/cairn-bench/data/clustered-D/`.

    python scripts/make_clustered.py --dim 384 --n 200000 --sigma 1.7
    python scripts/make_clustered.py --dim 768 --n 100000 --sigma 2.0
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--n-query", type=int, default=5_000)
    ap.add_argument("--sigma", type=float, default=1.7)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    d = a.dim
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.centres, d), dtype=np.float32) / np.sqrt(d)

    def draw(n):
        out = []
        for s in range(0, n, 50_000):
            m = min(50_000, n - s)
            c = rng.integers(0, a.centres, size=m)
            x = centres[c] + (a.sigma / np.sqrt(d)) * rng.standard_normal((m, d), dtype=np.float32)
            out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        return np.concatenate(out).astype(np.float32)

    base = draw(a.n)
    queries = draw(a.n_query)
    out = a.out or os.path.expanduser(f"~/.cache/cairn-bench/data/clustered-{d}")
    meta = dict(name=f"clustered-{d}", centres=a.centres, sigma=a.sigma, seed=a.seed)
    common.write_dataset(out, base, queries, "cosine", meta)
    print(f"wrote {out}: {base.shape} base, {queries.shape} queries")


if __name__ == "__main__":
    main()
