"""Ingest from numpy and single-query search: Cairn (Python binding) beside LanceDB and Chroma,
the same vectors and queries, in one run, each engine in its own process, one after another.

    python python/bench/bench_peers.py --dataset ~/.cache/cairn-bench/data/clustered-384 \
        --n 100000 --engines cairn,cairn-buffered,lancedb,chroma --work-dir /some/scratch/dir

Engines and settings (all: cosine, ids 0..n-1, vectors only, ingest in batches of --batch rows
from a float32 numpy array; build threads = whatever the engine uses by default on this machine):
  cairn           cairndb.open(dir) (durability "sync": each upsert returns after its log
                  record is fdatasync'ed), create_collection(dim, "cosine", m=16,
                  ef_construction=200), upsert(ids, vectors) per batch, then flush() (seals the
                  memtable into a segment); the HNSW graph is built during upsert.
                  search(vector=q, k=10, ef=EF, include_text=False, include_payload=False).
  cairn-buffered  the same with durability="buffered" (log synced every second in the
                  background and by flush()).
  chroma          PersistentClient(dir), create_collection(embedding_function=None,
                  configuration={"hnsw": {"space": "cosine", "max_neighbors": 16,
                  "ef_construction": 200}}), add(ids=[str], embeddings=batch) (split further
                  at get_max_batch_size()); the HNSW index is built on add. Search:
                  modify(configuration={"hnsw": {"ef_search": EF}}), a fresh client (see
                  Chroma.searcher), then query(query_embeddings=q[None], n_results=10,
                  include=["distances"]).
  lancedb         lancedb.connect(dir), create_table(first batch as a pyarrow Table), add(batch);
                  then create_index(metric="cosine", index_type="IVF_HNSW_SQ", num_partitions=1,
                  m=16, ef_construction=200) (HNSW over 8-bit scalar-quantised vectors, one IVF
                  partition: the docs' advice for HNSW), timed separately. Search:
                  search(q).distance_type("cosine").limit(10).nprobes(1).ef(EF)
                  .select(["id"]).to_arrow().
  lancedb-ivfpq   the same table with LanceDB's default index, create_index(metric="cosine")
                  = IVF_PQ with the library's own choices (partitions; 24 sub-vectors of 8 bits
                  at d=384), searched at nprobes = --ivfpq-nprobes, refine_factor 10.

Queries: the first --n-query rows of query.fvecs, one call per query on one thread, after
--warmup untimed queries per setting. Recall@10 against the exact cosine top-10 over the n base
rows (numpy, computed here). QPS = queries / wall time of the loop; p50/p99 from a timer around
each call. fsync-family calls during ingest are counted with strace -f -c when --strace is given
(a separate, untimed ingest of the first --strace-n rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import exact_topk_cosine, loadavg, pct, read_vecs  # noqa: E402

ENGINES = ["cairn", "cairn-buffered", "lancedb", "lancedb-ivfpq", "chroma"]


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------------
# Engines: each returns (ingest(), index() or None, searcher(ef) -> fn(q) -> ids, version, notes)


class Cairn:
    def __init__(self, path, dim, durability):
        import cairndb

        self.version = "cairndb (this tree)"
        self.db = cairndb.open(str(path), durability=durability)
        self.col = self.db.create_collection("bench", dim, metric="cosine", m=16, ef_construction=200)

    def add(self, ids, vecs):
        self.col.upsert(ids, vecs)

    def finish_ingest(self):
        self.col.flush()

    def build_index(self):
        return None

    def searcher(self, ef):
        search = self.col.search

        def run(q):
            return [h.id for h in search(vector=q, k=10, ef=ef, include_text=False, include_payload=False)]

        return run

    def count(self):
        return len(self.col)


class Chroma:
    def __init__(self, path, dim, _):
        import chromadb
        from chromadb.config import Settings

        self.version = chromadb.__version__
        self.path = str(path)
        self.client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        self.col = self.client.create_collection(
            "bench",
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine", "max_neighbors": 16, "ef_construction": 200}},
        )
        self.max_batch = self.client.get_max_batch_size()

    def add(self, ids, vecs):
        for s in range(0, len(ids), self.max_batch):
            self.col.add(ids=[str(i) for i in ids[s : s + self.max_batch]], embeddings=vecs[s : s + self.max_batch])

    def finish_ingest(self):
        pass

    def build_index(self):
        return None

    def searcher(self, ef):
        # modify() persists ef_search, but this process keeps using the loaded index with the
        # old value (chromadb 1.5.9, checked: recall does not move); a fresh client after
        # clear_system_cache() loads the index with the new ef_search.
        import chromadb
        from chromadb.api.client import SharedSystemClient
        from chromadb.config import Settings

        self.col.modify(configuration={"hnsw": {"ef_search": ef}})
        SharedSystemClient.clear_system_cache()
        self.client = chromadb.PersistentClient(path=self.path, settings=Settings(anonymized_telemetry=False))
        self.col = self.client.get_collection("bench")
        assert self.col.configuration_json["hnsw"]["ef_search"] == ef
        query = self.col.query

        def run(q):
            r = query(query_embeddings=q[None], n_results=10, include=["distances"])
            return [int(i) for i in r["ids"][0]]

        return run

    def count(self):
        return self.col.count()


class Lance:
    def __init__(self, path, dim, index_type):
        import lancedb
        import pyarrow as pa

        self.pa = pa
        self.version = lancedb.__version__
        self.db = lancedb.connect(str(path))
        self.dim = dim
        self.tbl = None
        self.index_type = index_type

    def add(self, ids, vecs):
        pa = self.pa
        vec = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), type=pa.float32()), self.dim)
        batch = pa.table({"id": pa.array(ids, type=pa.int64()), "vector": vec})
        if self.tbl is None:
            self.tbl = self.db.create_table("bench", data=batch)
        else:
            self.tbl.add(batch)

    def finish_ingest(self):
        pass

    def build_index(self):
        if self.index_type == "IVF_HNSW_SQ":
            self.tbl.create_index(metric="cosine", index_type="IVF_HNSW_SQ", num_partitions=1, m=16, ef_construction=200)
        else:
            self.tbl.create_index(metric="cosine")
        return [
            {k: str(v) for k, v in (i.__dict__ if hasattr(i, "__dict__") else {"index": i}).items()}
            for i in self.tbl.list_indices()
        ]

    def searcher(self, ef):
        tbl = self.tbl

        if self.index_type == "IVF_HNSW_SQ":

            def run(q):
                t = tbl.search(q).distance_type("cosine").limit(10).nprobes(1).ef(ef).select(["id"]).to_arrow()
                return t.column("id").to_pylist()
        else:

            def run(q):
                t = (tbl.search(q).distance_type("cosine").limit(10).nprobes(ef).refine_factor(10)
                     .select(["id"]).to_arrow())
                return t.column("id").to_pylist()

        return run

    def count(self):
        return self.tbl.count_rows()


def make_engine(name, path, dim):
    if name == "cairn":
        return Cairn(path, dim, "sync")
    if name == "cairn-buffered":
        return Cairn(path, dim, "buffered")
    if name == "chroma":
        return Chroma(path, dim, None)
    if name == "lancedb":
        return Lance(path, dim, "IVF_HNSW_SQ")
    if name == "lancedb-ivfpq":
        return Lance(path, dim, "IVF_PQ")
    raise SystemExit(f"unknown engine {name}")


# ------------------------------------------------------------------------------------------


def ingest_only(args, path: Path):
    """Untimed ingest (for strace): the same calls as the worker's ingest, nothing else."""
    base = read_vecs(Path(args.dataset) / "base.fvecs", limit=args.n)
    eng = make_engine(args.engine, path, base.shape[1])
    for s in range(0, len(base), args.batch):
        e = min(s + args.batch, len(base))
        eng.add(np.arange(s, e, dtype=np.int64), base[s:e])
    eng.finish_ingest()


def worker(args) -> dict:
    ds = Path(args.dataset)
    base = read_vecs(ds / "base.fvecs", limit=args.n)
    queries = read_vecs(ds / "query.fvecs", limit=args.n_query)
    gt = np.load(args.gt)
    path = Path(args.work_dir) / args.engine
    shutil.rmtree(path, ignore_errors=True)
    dim = base.shape[1]
    res = {"engine": args.engine, "n": len(base), "dim": dim, "batch": args.batch}
    eng = make_engine(args.engine, path, dim)
    res["version"] = eng.version

    t0 = time.perf_counter()
    c0 = time.process_time()
    for s in range(0, len(base), args.batch):
        e = min(s + args.batch, len(base))
        eng.add(np.arange(s, e, dtype=np.int64), base[s:e])
    t1 = time.perf_counter()
    eng.finish_ingest()
    t2 = time.perf_counter()
    idx = eng.build_index()
    t3 = time.perf_counter()
    res.update(
        ingest_s=t1 - t0, finish_s=t2 - t1, index_s=t3 - t2, total_s=t3 - t0,
        ingest_cpu_s=time.process_time() - c0,
        vectors_per_s_total=len(base) / (t3 - t0),
        vectors_per_s_ingest=len(base) / (t2 - t0),
        count=eng.count(), disk_bytes=dir_bytes(path), index_info=idx,
    )
    qs = [queries[i] for i in range(len(queries))]
    res["search"] = []
    for ef in args.ef_list[args.engine]:
        run = eng.searcher(ef)
        for q in qs[: args.warmup]:
            run(q)
        found, lat = [], []
        pc = time.perf_counter
        c0 = time.process_time()
        t0 = pc()
        for q in qs:
            a = pc()
            found.append(run(q))
            lat.append(pc() - a)
        wall = pc() - t0
        cpu = time.process_time() - c0
        lat_us = sorted(x * 1e6 for x in lat)
        res["search"].append({
            "ef": ef, "recall": float(sum(len(set(f) & set(t.tolist())) for f, t in zip(found, gt[:, :10])) / (10 * len(qs))),
            "qps": len(qs) / wall, "mean_us": wall / len(qs) * 1e6,
            "p50_us": pct(lat_us, 0.5), "p99_us": pct(lat_us, 0.99),
            "cpu_util": cpu / wall,
        })
        print(f"  {args.engine} ef={ef}: recall {res['search'][-1]['recall']:.4f} qps {res['search'][-1]['qps']:.0f}",
              file=sys.stderr)
    res["peak_rss_mib"] = rss_mib()
    return res


def strace_fsyncs(args, engine) -> dict:
    """Counts fsync-family syscalls during an (untimed) ingest of the same data."""
    path = Path(args.work_dir) / f"{engine}-strace"
    shutil.rmtree(path, ignore_errors=True)
    out = Path(args.work_dir) / f"{engine}.strace"
    cmd = ["strace", "-f", "-c", "-o", str(out), "-e", "trace=fsync,fdatasync,sync_file_range,msync,syncfs",
           sys.executable, __file__, "--ingest-only", "--engine", engine, "--dataset", args.dataset,
           "--n", str(args.strace_n), "--batch", str(args.batch), "--work-dir", str(path)]
    env = dict(os.environ, LANCE_LOG="error", RUST_LOG="error")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    counts = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] in ("fsync", "fdatasync", "sync_file_range", "msync", "syncfs"):
            counts[parts[-1]] = int(parts[3] if len(parts) >= 5 and parts[3].isdigit() else parts[-2])
    shutil.rmtree(path, ignore_errors=True)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--n", type=int, default=100_000, help="first N base rows")
    ap.add_argument("--n-query", type=int, default=2000, help="first N queries")
    ap.add_argument("--engines", default="cairn,cairn-buffered,lancedb,chroma")
    ap.add_argument("--batch", type=int, default=5000, help="rows per ingest call")
    ap.add_argument("--work-dir", required=True, help="scratch folder for the databases")
    ap.add_argument("--ef", default="10,20,40,64,100", help="ef (nprobes for lancedb-ivfpq) values")
    ap.add_argument("--ivfpq-nprobes", default="10,20,50,100")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--strace", action="store_true", help="also count fsync calls during a separate ingest")
    ap.add_argument("--strace-n", type=int, default=20_000, help="rows ingested under strace")
    ap.add_argument("--out", help="JSON results file")
    # internal
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ingest-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.dataset = str(Path(args.dataset).expanduser())
    efs = [int(x) for x in args.ef.split(",")]
    args.ef_list = {e: efs for e in ENGINES}
    args.ef_list["lancedb-ivfpq"] = [int(x) for x in args.ivfpq_nprobes.split(",")]

    if args.ingest_only:
        ingest_only(args, Path(args.work_dir))
        return
    if args.worker:
        print(json.dumps(worker(args)))
        return

    work = Path(args.work_dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    args.work_dir = str(work)
    gt_path = work / f"gt-{Path(args.dataset).name}-{args.n}-{args.n_query}.npy"
    if not gt_path.exists():
        t = time.perf_counter()
        base = read_vecs(Path(args.dataset) / "base.fvecs", limit=args.n)
        queries = read_vecs(Path(args.dataset) / "query.fvecs", limit=args.n_query)
        np.save(gt_path, exact_topk_cosine(base, queries, 10))
        print(f"ground truth: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        del base
    results = []
    for engine in args.engines.split(","):
        la = loadavg()
        cmd = [sys.executable, __file__, "--worker", "--engine", engine, "--dataset", args.dataset,
               "--n", str(args.n), "--n-query", str(args.n_query), "--batch", str(args.batch),
               "--work-dir", args.work_dir, "--gt", str(gt_path), "--ef", args.ef,
               "--ivfpq-nprobes", args.ivfpq_nprobes, "--warmup", str(args.warmup)]
        print(f"{engine}: running (load {la:.2f})", file=sys.stderr)
        env = dict(os.environ, LANCE_LOG="error", RUST_LOG="error")
        p = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        sys.stderr.write(p.stderr[-2000:])
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["loadavg_before"], r["loadavg_after"] = la, loadavg()
        if args.strace:
            r["ingest_fsync_calls"] = strace_fsyncs(args, engine)
            r["strace_n"] = args.strace_n
        shutil.rmtree(Path(args.work_dir) / engine, ignore_errors=True)
        results.append(r)

    print()
    print(f"{'engine':<15} {'version':<20} {'ingest s':>9} {'index s':>8} {'total s':>8} {'vec/s':>8} {'disk MiB':>9} {'RSS MiB':>8} fsync calls (first --strace-n rows)")
    for r in results:
        fs = r.get("ingest_fsync_calls")
        print(f"{r['engine']:<15} {r['version']:<20} {r['ingest_s'] + r['finish_s']:>9.1f} {r['index_s']:>8.1f} "
              f"{r['total_s']:>8.1f} {r['vectors_per_s_total']:>8.0f} {r['disk_bytes'] / 2**20:>9.1f} "
              f"{r['peak_rss_mib']:>8.0f} {'' if fs is None else sum(fs.values())}")
    print()
    print(f"{'engine':<15} {'ef':>5} {'recall@10':>9} {'QPS':>8} {'mean µs':>8} {'p50 µs':>8} {'p99 µs':>8} {'cpu':>5}")
    for r in results:
        for s in r["search"]:
            print(f"{r['engine']:<15} {s['ef']:>5} {s['recall']:>9.4f} {s['qps']:>8.0f} {s['mean_us']:>8.0f} "
                  f"{s['p50_us']:>8.0f} {s['p99_us']:>8.0f} {s['cpu_util']:>5.2f}")
    if args.out:
        meta = {"dataset": Path(args.dataset).name, "n": args.n, "n_query": args.n_query, "batch": args.batch,
                "python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
