"""`cairndb.ray`: ingest and query throughput with 1, 2 and 4 shards on a local Ray cluster,
and the per-query cost of the fan-out against a direct search of one database.

    python python/bench/bench_ray.py --n 50000 --dim 128 --queries 300 --out DIR

Data: `--n` random unit vectors (`--dim`, seed 1) with short texts of 1 to 8 words from a
40-word vocabulary. For each shard count: a sharded collection is created under `DIR`,
written through Ray Data (`write_dataset`, batches of `--batch` rows), timed to the return
(every batch durable); then `--queries` single queries, one at a time from the driver, in
three kinds — vector (HNSW, k 10), text (BM25, two phases) and hybrid (RRF) — and the same
queries as one `search_batch` call. The direct baseline is one Cairn database in the driver
process holding the same records, searched with the same calls; its queries are interleaved
with the sharded ones (query i direct, then query i sharded) so load changes hit both alike.
Reported per kind: p50 and mean latency, and the overhead = sharded p50 − direct p50; and the
p50 of an empty call to one shard actor (`ping`), what Ray alone costs per round trip.
"""

import argparse
import os
import shutil
import statistics
import time

import numpy as np
import ray

import cairndb
from cairndb.ray import ShardedCollection

WORDS = (
    "vector search graph index crash recovery disk filter fast text database shard ray cluster "
    "node replica merge score rank query error budget policy latency throughput memory cache "
    "segment memtable compaction seal log fsync durable snapshot version reader writer lock"
).split()


def data(n, dim, seed=1):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 9)))) for _ in range(n)]
    return np.arange(n, dtype=np.uint64), v, texts


def timed(f):
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    ids, vectors, texts = data(a.n, a.dim)
    rng = np.random.default_rng(2)
    qv = rng.standard_normal((a.queries, a.dim)).astype(np.float32)
    qt = [" ".join(rng.choice(WORDS, size=2)) for _ in range(a.queries)]

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"n={a.n} dim={a.dim} queries={a.queries} load: {os.getloadavg()}")

    # The direct baseline.
    db = cairndb.open(os.path.join(a.out, "direct"))
    col = db.create_collection("bench", a.dim, "cosine")
    secs, _ = timed(lambda: [col.upsert(ids[i:i + a.batch], vectors[i:i + a.batch], texts[i:i + a.batch])
                             for i in range(0, a.n, a.batch)])
    print(f"direct upsert (driver, batches of {a.batch}): {a.n / secs:,.0f} rows/s")

    kinds = {
        "vector": (lambda i: {"vector": qv[i], "k": 10}),
        "text": (lambda i: {"text": qt[i], "k": 10}),
        "hybrid": (lambda i: {"vector": qv[i], "text": qt[i], "k": 10}),
    }
    rows = []
    for n_shards in [int(s) for s in a.shards.split(",")]:
        sc = ShardedCollection.create(a.out, f"s{n_shards}", dim=a.dim, num_shards=n_shards)
        items = ray.data.from_items(
            [{"id": int(i), "text": t} for i, t in zip(ids, texts)], override_num_blocks=8
        )

        def embed(batch):
            batch["vector"] = vectors[batch["id"].astype(np.int64)]
            return batch

        ds = items.map_batches(embed, batch_format="numpy")
        ds = ds.materialize()  # the embedding step is not what is timed
        secs, written = timed(lambda: sc.write_dataset(ds, batch_size=a.batch))
        assert written == a.n
        ingest = a.n / secs
        secs_up, _ = timed(lambda: [sc.upsert(ids[i:i + a.batch] + np.uint64(a.n), vectors[i:i + a.batch],
                                              texts[i:i + a.batch]) for i in range(0, a.n // 4, a.batch)])
        upsert = (a.n // 4) / secs_up
        sc.delete(list(range(a.n, a.n + a.n // 4)))
        for kind, args in kinds.items():
            # Warm-up, then interleaved: direct i, sharded i.
            for i in range(min(20, a.queries)):
                col.search(**args(i), include_text=False, include_payload=False)
                sc.search(**args(i), include_text=False, include_payload=False)
            d, s = [], []
            for i in range(a.queries):
                t, _ = timed(lambda: col.search(**args(i), include_text=False, include_payload=False))
                d.append(t)
                t, _ = timed(lambda: sc.search(**args(i), include_text=False, include_payload=False))
                s.append(t)
            rows.append((n_shards, kind, statistics.median(d), statistics.fmean(d),
                         statistics.median(s), statistics.fmean(s)))
            print(f"shards={n_shards} {kind:6s} direct p50 {statistics.median(d)*1e6:8.0f} µs  "
                  f"sharded p50 {statistics.median(s)*1e6:8.0f} µs mean {statistics.fmean(s)*1e6:8.0f} µs "
                  f"-> {1 / statistics.fmean(s):7.0f} q/s; overhead p50 "
                  f"{(statistics.median(s) - statistics.median(d))*1e6:7.0f} µs")
        # One empty round trip to a shard actor (what Ray alone costs per call).
        a0 = sc.actors[0]
        ping = [timed(lambda: ray.get(a0.ping.remote()))[0] for _ in range(a.queries)]
        print(f"shards={n_shards} empty actor call p50 {statistics.median(ping)*1e6:.0f} µs")
        bd, _ = timed(lambda: col.search_batch(qv, k=10))
        bs, _ = timed(lambda: sc.search_batch(qv, k=10))
        print(f"shards={n_shards} ingest write_dataset {ingest:,.0f} rows/s, upsert from driver "
              f"{upsert:,.0f} rows/s; search_batch({a.queries}) direct {a.queries / bd:,.0f} q/s, "
              f"sharded {a.queries / bs:,.0f} q/s; load {os.getloadavg()[0]:.1f}")
        sc.drop()
    db.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
