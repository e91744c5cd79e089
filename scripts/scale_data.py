#!/usr/bin/env python3
"""The scale data set of issue 17: N x D clustered float32 vectors (default 2,000,000 x 768,
6.1 GB), held-out queries drawn the same way, and their exact top-100 by cosine, cached.

    python3 scripts/scale_data.py --out ~/.cache/cairn-bench/scale [--n 2000000] [--dim 768]

Writes, under --out/NxD/:
  base.npy      N x D float32, written in chunks (never the whole array in memory)
  queries.npy   Q x D float32 (default 1,000), not in the base set
  gt.ivecs      per query, the ids (row numbers) of its exact top 100 by cosine, best first
  meta.json     the parameters and the seconds each step took
Each file is skipped when it exists (the ground truth takes minutes on 2 cores: it is
computed once). The data: C centres (default 2,000) drawn from N(0, 1), each point a
centre plus N(0, sigma^2) noise (sigma 0.5 by default, relative to the unit-variance
centres), centres picked with a Zipf-like skew so that clusters differ in size, as topics
in a document archive do. Needs numpy.

`cairn bench --base base.npy --queries queries.npy --gt gt.ivecs --metric cosine` reads them
directly; `cairn import DB COL base.npy` builds a database through the real write path.
"""

import argparse
import json
import os
import time

import numpy as np


def write_npy_header(f, shape):
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    h = repr(header).encode()
    # Magic, version 1.0, header padded so that the data starts on a 64-byte boundary.
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + b" " * pad + b"\n"
    f.write(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h)


def points(rng, centres, probs, n, sigma, bases=None, spread=0.0):
    """n points: a centre each (by probs), plus, with `bases`, N(0, spread^2) noise in the
    centre's own low-rank subspace, plus isotropic N(0, sigma^2) noise."""
    which = rng.choice(len(centres), size=n, p=probs)
    noise = rng.standard_normal((n, centres.shape[1]), dtype=np.float32) * np.float32(sigma)
    x = centres[which] + noise
    if bases is not None:
        rank = bases.shape[2]
        z = rng.standard_normal((n, rank), dtype=np.float32) * np.float32(spread)
        for c in np.unique(which):
            idx = np.nonzero(which == c)[0]
            x[idx] += z[idx] @ bases[c].T
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/cairn-bench/scale"))
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--centres", type=int, default=2000)
    ap.add_argument("--sigma", type=float, default=0.5)
    ap.add_argument("--rank", type=int, default=0,
                    help="0: isotropic noise only (the first run's set, which has almost no contrast "
                    "inside a cluster at 768-d); R > 0: each cluster also spreads along its own "
                    "random R-dimensional subspace with --spread (pilot at 100k x 768: --rank 16 "
                    "--spread 5 --sigma 0.1 gave hnswlib recall@10 0.964 at ef 32)")
    ap.add_argument("--spread", type=float, default=5.0)
    ap.add_argument("--gt-k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--chunk", type=int, default=50_000)
    a = ap.parse_args()
    if a.n < 1 or a.dim < 1 or a.queries < 1 or a.gt_k < 1 or a.gt_k > a.n:
        ap.error("--n, --dim, --queries and --gt-k must be positive, --gt-k at most --n")

    if a.rank < 0 or a.rank > a.dim:
        ap.error("--rank must be between 0 and --dim")
    out = os.path.join(a.out, f"{a.n}x{a.dim}" + (f"-r{a.rank}s{a.spread:g}n{a.sigma:g}" if a.rank else ""))
    os.makedirs(out, exist_ok=True)
    meta_path = os.path.join(out, "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    meta.update({k: getattr(a, k) for k in ("n", "dim", "queries", "centres", "sigma", "rank", "spread", "gt_k", "seed")})

    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.centres, a.dim), dtype=np.float32)
    weights = 1.0 / np.arange(1, a.centres + 1) ** 0.5
    probs = weights / weights.sum()
    bases = None
    if a.rank:
        # An orthonormal basis of a random subspace per centre (after the centres: the
        # isotropic set's draws are unchanged).
        g = rng.standard_normal((a.centres, a.dim, a.rank), dtype=np.float32)
        bases = np.stack([np.linalg.qr(m)[0] for m in g]).astype(np.float32)

    base = os.path.join(out, "base.npy")
    if not os.path.exists(base):
        t = time.time()
        tmp = base + ".part"
        with open(tmp, "wb") as f:
            write_npy_header(f, (a.n, a.dim))
            brng = np.random.default_rng(a.seed + 1)
            for s in range(0, a.n, a.chunk):
                f.write(points(brng, centres, probs, min(a.chunk, a.n - s), a.sigma, bases, a.spread).tobytes())
        os.replace(tmp, base)
        meta["base_s"] = round(time.time() - t, 1)
        print(f"base: {a.n} x {a.dim} in {meta['base_s']} s")

    qpath = os.path.join(out, "queries.npy")
    if not os.path.exists(qpath):
        q = points(np.random.default_rng(a.seed + 2), centres, probs, a.queries, a.sigma, bases, a.spread)
        np.save(qpath, q)

    gt = os.path.join(out, "gt.ivecs")
    if not os.path.exists(gt):
        t = time.time()
        q = np.load(qpath)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = np.load(base, mmap_mode="r")
        k = a.gt_k
        best = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.zeros((len(q), k), dtype=np.int64)
        for s in range(0, a.n, a.chunk):
            b = np.asarray(x[s : s + a.chunk])
            b = b / np.linalg.norm(b, axis=1, keepdims=True)
            sc = qn @ b.T
            kk = min(k, sc.shape[1])
            top = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
            allsc = np.concatenate([best, np.take_along_axis(sc, top, 1)], 1)
            allid = np.concatenate([ids, top + s], 1)
            order = np.argsort(-allsc, axis=1, kind="stable")[:, :k]
            best = np.take_along_axis(allsc, order, 1)
            ids = np.take_along_axis(allid, order, 1)
            print(f"\rground truth: {min(s + a.chunk, a.n):,} / {a.n:,} rows", end="", flush=True)
        print()
        tmp = gt + ".part"
        with open(tmp, "wb") as f:
            for row in ids.astype(np.int32):
                f.write(np.int32(k).tobytes())
                f.write(row.tobytes())
        os.replace(tmp, gt)
        meta["gt_s"] = round(time.time() - t, 1)
        print(f"ground truth: top {k} of {len(q)} queries in {meta['gt_s']} s")

    json.dump(meta, open(meta_path, "w"), indent=1)


if __name__ == "__main__":
    main()
