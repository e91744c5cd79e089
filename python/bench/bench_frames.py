"""Ingest from NumPy against pyarrow, pandas and polars frames, in one run.

    python python/bench/bench_frames.py --n 100000 --dim 384 --rounds 1

The same `n × dim` float32 vectors (seeded normal) and uint64 ids go into a new collection
(cosine, `durability="sync"`, HNSW `--m`/`--ef-construction`, default 16/200) of a new
database in a temporary directory, once per input, in one `upsert` call each:

- `numpy`: `upsert(ids, matrix)`;
- `pyarrow`: `upsert(table)`, the vectors a `FixedSizeList<float32>` column (read in place);
- `pandas`: `upsert(df)`, the vector column holding one numpy array per row (it becomes a
  `List<float32>` on the way through pyarrow);
- `polars`: `upsert(df)`, the vector column `Array(Float32, dim)`.

Building the frames is not timed (the user has them already). Reported per input: the time
`cairndb._frames.frame_columns` takes to turn the frame into the arrays the engine gets
(`convert`, process CPU, minimum over rounds; 0 for NumPy), and the whole `upsert` (wall
clock and process CPU, minimum over rounds), with the ratio of the wall clock to NumPy's.
The inputs run interleaved in each round so that load on the machine hits them alike.
"""

import argparse
import shutil
import tempfile
import time

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

import cairndb
from cairndb import _frames


def frames(ids, x):
    dim = x.shape[1]
    return {
        "numpy": None,
        "pyarrow": pa.table(
            {"id": pa.array(ids), "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)}
        ),
        "pandas": pd.DataFrame({"id": ids, "vector": list(x)}),
        "polars": pl.DataFrame({"id": ids, "vector": pl.Series("vector", x)}),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--m", type=int, default=16, help="HNSW m of the collections")
    ap.add_argument("--ef-construction", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.n, a.dim)).astype(np.float32)
    ids = np.arange(a.n, dtype=np.uint64)
    fs = frames(ids, x)
    assert fs["polars"].schema["vector"] == pl.Array(pl.Float32, a.dim)
    best = {k: [float("inf")] * 3 for k in fs}
    for r in range(a.rounds):
        for name, frame in fs.items():
            if frame is not None:
                kind = _frames.frame_kind(frame)
                c0 = time.process_time()
                _frames.frame_columns(frame, kind, None, "int", a.dim, None)
                conv = time.process_time() - c0
            else:
                conv = 0.0
            d = tempfile.mkdtemp(prefix="cairn-bench-frames-")
            try:
                db = cairndb.open(d + "/db")
                col = db.create_collection("c", dim=a.dim, m=a.m,
                                           ef_construction=a.ef_construction)
                w0, c0 = time.perf_counter(), time.process_time()
                if frame is None:
                    col.upsert(ids, x)
                else:
                    col.upsert(frame)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                assert len(col) == a.n
                db.close()
            finally:
                shutil.rmtree(d)
            b = best[name]
            best[name] = [min(b[0], conv), min(b[1], wall), min(b[2], cpu)]
            print(f"round {r} {name:8} convert {conv:7.3f} s  upsert {wall:7.2f} s wall "
                  f"{cpu:7.2f} s CPU", flush=True)
    base = best["numpy"][1]
    print(f"\n{a.n} x {a.dim}, m {a.m}, ef_construction {a.ef_construction}, "
          f"min over {a.rounds} round(s)")
    print("| input | convert (CPU s) | upsert wall (s) | upsert CPU (s) | wall / NumPy |")
    print("|---|---:|---:|---:|---:|")
    for name, (conv, wall, cpu) in best.items():
        print(f"| {name} | {conv:.3f} | {wall:.2f} | {cpu:.2f} | {wall / base:.2f} |")


if __name__ == "__main__":
    main()
