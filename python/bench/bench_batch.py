"""`Collection.search_batch` against a loop of `Collection.search`, on an existing database.

    python python/bench/bench_batch.py --dataset ~/.cache/cairn-bench/data/glove-6b-50-angular \
        --db DIR --collection bench --ef 64

`DIR` is a database kept by `cairn bench --dir DIR` (collection `bench`). Per round (3 by
default): a loop of `search` over the first `--n-query` queries (text and payload not
returned), `search_batch(threads=1)` and `search_batch()` on every core. Reported: the
minimum over rounds of the process CPU µs per query for the first two, and of the wall-clock
µs per query for the last (its CPU time is spread over the pool's threads). The ids of the
batch calls are checked equal to each other and to the loop's.
"""

import argparse
import time

import numpy as np

import cairndb


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].view(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--collection", default="bench")
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n-query", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    q = np.ascontiguousarray(read_fvecs(a.dataset + "/query.fvecs")[: a.n_query])
    db = cairndb.open(a.db)
    col = db.collection(a.collection)
    col.warm_up()
    col.search_batch(q, k=a.k, ef=a.ef, threads=1)  # warm the caches
    loop, one, every = [], [], []
    for _ in range(a.rounds):
        c = time.process_time()
        looped = [
            [h.id for h in col.search(vector=v, k=a.k, ef=a.ef, include_text=False,
                                      include_payload=False)]
            for v in q
        ]
        loop.append((time.process_time() - c) / len(q) * 1e6)
        c = time.process_time()
        ids1, _ = col.search_batch(q, k=a.k, ef=a.ef, threads=1)
        one.append((time.process_time() - c) / len(q) * 1e6)
        t = time.perf_counter()
        ids2, _ = col.search_batch(q, k=a.k, ef=a.ef)
        every.append((time.perf_counter() - t) / len(q) * 1e6)
        assert (ids1 == ids2).all()
        assert all(list(ids1[i][: len(r)]) == r for i, r in enumerate(looped))
    print(f"{len(q)} queries, ef {a.ef}, k {a.k}: search loop {min(loop):.1f} µs CPU/query, "
          f"search_batch(threads=1) {min(one):.1f} µs CPU/query, "
          f"search_batch() {min(every):.1f} µs wall/query")
    db.close()


if __name__ == "__main__":
    main()
