#!/usr/bin/env python3
"""Interleaved search timing: Cairn against hnswlib on the same data, pass after pass.

On a shared, noisy machine a single timed pass per engine (what `cairn bench` and
`../shared/bench/peers.py` do) can land in a burst of neighbour load and move a ratio by 30 %.
This script builds (or loads) both indexes once, then alternates short timed passes of the two
engines, `--rounds` times per ef, so both see the same conditions, and reports the median and
the minimum CPU time per query of each, and their ratio.

Cairn's side is `examples/search_latency.rs` on a database kept by `cairn bench --dir DIR`
(collection `bench`, built with the same m and ef_construction). hnswlib's side calls
`knn_query` on the whole query block with one thread (peers.py's `--batch` mode), timed with the
process CPU clock; its index is built with peers.py's parameters and saved next to the data.

    cargo build --release --example search_latency
    cairn bench --base $G/base.fvecs --queries $G/query.fvecs --gt $G/groundtruth.ivecs \
        --threads 2 --dir target/bench-384
    ~/.cache/cairn-bench/venv/bin/python scripts/interleaved_vs_hnswlib.py \
        --data $G --db target/bench-384 --ef 40,120 --rounds 5

`--db` may name several databases as `LABEL=DIR,LABEL=DIR` (e.g. one per `--quantization`):
each round then times hnswlib and every database in turn, and the table has a column pair per
database. `--bin LABEL=PATH` times that label's database with another `search_latency` binary
(an A/B of two builds on the same database: `--db old=DIR,new=DIR --bin old=OLD_BINARY`).
"""

import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].view(np.float32)


def read_ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="directory with base/query/groundtruth files")
    ap.add_argument("--db", required=True,
                    help="Cairn database kept by `cairn bench --dir`, or LABEL=DIR,LABEL=DIR")
    ap.add_argument("--ef", default="40,120")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n-query", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument(
        "--latency-bin",
        default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "examples",
                             "search_latency"),
    )
    ap.add_argument("--bin", action="append", default=[],
                    help="LABEL=PATH: search_latency binary for that label (repeatable)")
    a = ap.parse_args()
    bins = dict(x.split("=", 1) for x in a.bin)
    import hnswlib

    base = read_fvecs(os.path.join(a.data, "base.fvecs"))
    queries = np.ascontiguousarray(read_fvecs(os.path.join(a.data, "query.fvecs"))[: a.n_query])
    gt = read_ivecs(os.path.join(a.data, "groundtruth.ivecs"))[: a.n_query, : a.k]
    # Cosine as inner product over unit vectors, as peers.py does.
    base = base / np.linalg.norm(base, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    index_path = os.path.join(a.data, f"hnswlib-m{a.m}-efc{a.ef_construction}.bin")
    idx = hnswlib.Index(space="ip", dim=base.shape[1])
    if os.path.exists(index_path):
        idx.load_index(index_path, max_elements=base.shape[0])
    else:
        idx.init_index(max_elements=base.shape[0], ef_construction=a.ef_construction, M=a.m,
                       random_seed=100)
        idx.add_items(base, np.arange(base.shape[0]), num_threads=2)
        idx.save_index(index_path)
    idx.set_num_threads(1)

    def hnswlib_pass(ef):
        idx.set_ef(ef)
        t = time.process_time()
        labels, _ = idx.knn_query(queries, k=a.k, num_threads=1)
        us = (time.process_time() - t) / len(queries) * 1e6
        recall = np.mean([len(set(l) & set(g)) / a.k for l, g in zip(labels, gt)])
        return us, recall

    dbs = [(x.split("=", 1) if "=" in x else ("Cairn", x)) for x in a.db.split(",")]

    def cairn_pass(ef, label, db):
        out = subprocess.run(
            [bins.get(label, a.latency_bin), "--db", db, "--collection", "bench", "--queries",
             os.path.join(a.data, "query.fvecs"), "--n-query", str(a.n_query), "--k",
             str(a.k), "--ef", str(ef), "--include", "off", "--passes", "1"],
            check=True, capture_output=True, text=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])["cpu_us"]

    print(f"{len(base)} × {base.shape[1]}, {len(queries)} queries, k {a.k}, {a.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.2f}")
    head = "| ef | hnswlib recall@10 | hnswlib µs median (min) |"
    for label, _ in dbs:
        head += f" {label} µs median (min) | {label} QPS ratio by median (by min) |"
    print(head)
    print("|---:" * (3 + 2 * len(dbs)) + "|")
    for ef in [int(x) for x in a.ef.split(",")]:
        hs, cs, rec = [], [[] for _ in dbs], 0.0
        for r in range(a.rounds):
            # Alternate which engine goes first; the databases rotate.
            order = list(range(len(dbs)))
            order = order[r % len(dbs):] + order[: r % len(dbs)]
            if r % 2 == 0:
                us, rec = hnswlib_pass(ef)
                hs.append(us)
            for i in order:
                cs[i].append(cairn_pass(ef, *dbs[i]))
            if r % 2 == 1:
                us, rec = hnswlib_pass(ef)
                hs.append(us)
        hm = statistics.median(hs)
        row = f"| {ef} | {rec:.4f} | {hm:.1f} ({min(hs):.1f}) |"
        for c in cs:
            cm = statistics.median(c)
            row += f" {cm:.1f} ({min(c):.1f}) | {hm / cm:.2f} ({min(hs) / min(c):.2f}) |"
        print(row, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
