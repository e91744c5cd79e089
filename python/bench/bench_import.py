"""Import throughput from Parquet against NumPy: in Python and through `cairn import`.

    python python/bench/bench_import.py --n 1000000 --dim 384 --rounds 1 \
        --cairn target/release/cairn

The data (written once, kept under ~/.cache/cairn-bench/import-N-DIM/): `n × dim` float32
vectors (seeded normal) as `vectors.npy`, and the same rows with ids 0..n-1 as
`vectors.parquet` (columns `id` uint64 and `vector` FixedSizeList<float32>, pyarrow's default
snappy compression, row groups of 65,536 rows), as a Hugging Face embeddings file has them.

Variants, interleaved in each round, each into a new database (removed afterwards) with one
collection created with the same settings (`--metric`, `--m`, `--ef-construction`):

- `py-numpy`:   `x = np.load(path)`, then `col.upsert(ids[s:e], x[s:e])` for slices of
  `--py-batch` rows (100,000: one atomic write holds at most 1 GiB), durability sync;
- `py-parquet`: `t = pq.read_table(path)`, then `col.upsert(t.slice(s, n))`, the same slices;
- `cli-npy`:    `cairn import DB c vectors.npy` (batches of 1,000, each durable, then sealed);
- `cli-parquet`: `cairn import DB c vectors.parquet` (the same).

Times are wall clock and CPU time (all threads; for the CLI the child's user + system time)
from the start of the read to the end of the flush (Python), or of the whole process (CLI,
which includes opening, sealing the imported rows into a segment and closing); the best
round is the one of least CPU time. Python also reports the read alone and the upsert alone, and calls `flush()` after
the upsert (timed separately, so that the Python rows are sealed as the CLI's are). The page
cache is warm for both files (each is read once before the first round).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import cairndb


def make_data(d: Path, n: int, dim: int) -> tuple[Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    npy, par = d / "vectors.npy", d / "vectors.parquet"
    if npy.exists() and par.exists():
        return npy, par
    rng = np.random.default_rng(0)
    chunk = 65_536
    x = np.lib.format.open_memmap(str(npy) + ".tmp", mode="w+", dtype=np.float32, shape=(n, dim))
    schema = pa.schema([("id", pa.uint64()), ("vector", pa.list_(pa.float32(), dim))])
    with pq.ParquetWriter(str(par) + ".tmp", schema) as w:
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            part = rng.standard_normal((e - s, dim), dtype=np.float32)
            x[s:e] = part
            w.write_table(pa.table({
                "id": pa.array(np.arange(s, e, dtype=np.uint64)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), dim),
            }, schema=schema), row_group_size=chunk)
    x.flush()
    del x
    os.replace(str(npy) + ".tmp", npy)
    os.replace(str(par) + ".tmp", par)
    return npy, par


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def run_python(kind: str, path: Path, work: Path, a) -> dict:
    db = cairndb.open(str(work / "db"))
    col = db.create_collection("c", dim=a.dim, metric=a.metric, m=a.m,
                               ef_construction=a.ef_construction)
    t0, c0 = time.perf_counter(), time.process_time()
    # In slices of --py-batch rows: one atomic write is at most 1 GiB (1M x 384 is 1.5 GB).
    b = a.py_batch
    if kind == "py-numpy":
        x = np.load(path)
        t1 = time.perf_counter()
        ids = np.arange(len(x), dtype=np.uint64)
        for s in range(0, len(x), b):
            col.upsert(ids[s:s + b], x[s:s + b])
    else:
        t = pq.read_table(path)
        t1 = time.perf_counter()
        for s in range(0, t.num_rows, b):
            col.upsert(t.slice(s, b))
    t2 = time.perf_counter()
    col.flush()
    t3, c3 = time.perf_counter(), time.process_time()
    assert len(col) == a.n, len(col)
    db.close()
    return {"read": t1 - t0, "upsert": t2 - t1, "flush": t3 - t2, "total": t3 - t0,
            "cpu": c3 - c0}


def run_cli(kind: str, path: Path, work: Path, a) -> dict:
    db = str(work / "db")
    subprocess.run([a.cairn, "create", db, "c", "--dim", str(a.dim), "--metric", a.metric,
                    "--m", str(a.m), "--ef-construction", str(a.ef_construction)],
                   check=True, capture_output=True)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([a.cairn, "import", db, "c", str(path)], check=True,
                       capture_output=True, text=True)
    total = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    assert r.stdout.split()[-1] == str(a.n), r.stdout[-200:]
    return {"total": total, "cpu": cpu, "summary": r.stderr.strip().splitlines()[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--metric", default="cosine")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--py-batch", type=int, default=100_000,
                    help="rows per upsert call in Python (views: no copy)")
    ap.add_argument("--cairn", help="the cairn binary (release build); without it the CLI "
                    "variants are left out")
    ap.add_argument("--variants", default="py-numpy,py-parquet,cli-npy,cli-parquet")
    ap.add_argument("--data", default=str(Path.home() / ".cache" / "cairn-bench"))
    a = ap.parse_args()
    variants = [v for v in a.variants.split(",") if a.cairn or not v.startswith("cli-")]
    npy, par = make_data(Path(a.data) / f"import-{a.n}-{a.dim}", a.n, a.dim)
    print(f"data: {npy} ({npy.stat().st_size / 2**20:.0f} MiB), "
          f"{par} ({par.stat().st_size / 2**20:.0f} MiB)", flush=True)
    warm(npy)
    warm(par)
    best: dict[str, dict] = {}
    for r in range(a.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            path = npy if v.endswith(("numpy", "npy")) else par
            work = Path(tempfile.mkdtemp(prefix="cairn-bench-import-", dir=a.data))
            try:
                load = os.getloadavg()[0]
                res = (run_python if v.startswith("py-") else run_cli)(v, path, work, a)
            finally:
                shutil.rmtree(work)
            res["load"] = load
            extra = "  ".join(f"{k} {x:.1f} s" for k, x in res.items()
                              if k not in ("total", "load", "summary", "cpu"))
            print(f"round {r} {v:12} total {res['total']:7.1f} s "
                  f"({a.n / res['total']:,.0f} rows/s), CPU {res['cpu']:.1f} s  {extra}  "
                  f"load {load:.1f}"
                  + (f"\n    {res['summary']}" if "summary" in res else ""), flush=True)
            if v not in best or res["cpu"] < best[v]["cpu"]:
                best[v] = res
    print(f"\n{a.n} x {a.dim}, m {a.m}, ef_construction {a.ef_construction}, "
          f"best of {a.rounds} round(s)")
    print("| variant | read (s) | upsert (s) | flush (s) | total wall (s) | rows/s (wall) | "
          "CPU (s) | rows per CPU s | CPU vs NumPy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v, res in best.items():
        base = best.get("py-numpy" if v.startswith("py-") else "cli-npy", res)["cpu"]
        f = lambda k: f"{res[k]:.1f}" if k in res else "—"  # noqa: E731
        print(f"| {v} | {f('read')} | {f('upsert')} | {f('flush')} | {res['total']:.1f} | "
              f"{a.n / res['total']:,.0f} | {res['cpu']:.1f} | {a.n / res['cpu']:,.0f} | "
              f"{res['cpu'] / base:.2f} |")


if __name__ == "__main__":
    main()
