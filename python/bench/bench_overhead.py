"""Per-query overhead of the Python binding: `col.search` from Python vs `Collection::search`
from Rust (examples/search_latency.rs), on the same database, the same queries and the same ef,
one thread, warm cache, repeats interleaved (Rust first in even repeats, Python first in odd).

    cargo build --release --example search_latency
    python python/bench/bench_overhead.py --dataset ~/.cache/cairn-bench/data/clustered-384 \
        --rust-bin $CARGO_TARGET_DIR/release/examples/search_latency --db /some/scratch/dir

Collections built once (reused if --db already holds them):
  * "main": the first --n base rows, each with a text of ~400 characters and a 3-field payload
    (a RAG-like record), m=16, ef_construction=200, cosine, flushed to a segment;
  * "tiny": the first 16 base rows, same text/payload: the search itself is trivial, so the
    difference Python - Rust there is the per-call cost of the binding.

Per repeat and side, for each collection and include mode (text+payload on / off): --warmup
untimed passes, --passes timed passes without per-call timers (mean µs/query = pass time /
queries, by the wall clock and by the process's CPU time, which leaves out time spent waiting
for a CPU; median pass kept), then one pass with a timer around every call (p50, p99). The Python
side also times `[h.id for h in col.search(...)]` (reading the result) and a `len(col)` loop (the
cost of calling any native method from a Python loop). Reported: the medians over repeats, and
the median over repeats of the paired differences Python - Rust, of the mean and of the p50
(the p50 is the robust one on a shared machine: a preempted call moves the mean, not the p50).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import loadavg, median, pct, read_vecs  # noqa: E402

import cairndb  # noqa: E402

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her all she there would their we him been has when who "
    "will more no if out so said what up its about into than them can only other new some "
    "could time these two may then do first any my now such like our over man me even most"
).split()


def texts_and_payloads(ids: range):
    rng = np.random.default_rng(7)
    texts, payloads = [], []
    for i in ids:
        words = rng.choice(WORDS, size=80)
        texts.append(f"chunk {i}: " + " ".join(words))
        payloads.append({"doc": i // 10, "source": f"file{i % 100}.md", "page": i % 50})
    return texts, payloads


def build(db_path: Path, base: np.ndarray, n: int, batch: int = 5000) -> None:
    db = cairndb.open(str(db_path), durability="buffered")
    have = set(db.collections())
    dim = base.shape[1]
    for name, rows in (("main", n), ("tiny", 16)):
        if name in have:
            continue
        t = time.perf_counter()
        col = db.create_collection(name, dim, metric="cosine", m=16, ef_construction=200)
        for s in range(0, rows, batch):
            ids = range(s, min(s + batch, rows))
            texts, payloads = texts_and_payloads(ids)
            col.upsert(list(ids), base[s : s + len(ids)], texts=texts, payloads=payloads)
        col.flush()
        print(f"built {name}: {len(col)} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    db.close()


def py_side(db_path: Path, qs: list[np.ndarray], args) -> list[dict]:
    out = []
    db = cairndb.open(str(db_path))
    k, ef = args.k, args.ef
    for name in ("main", "tiny"):
        col = db.collection(name)
        search = col.search
        cycles = args.tiny_cycles if name == "tiny" else 1
        qs_pass = qs * cycles
        for inc in (True, False):

            def plain():
                for q in qs_pass:
                    search(vector=q, k=k, ef=ef, include_text=inc, include_payload=inc)

            def read_ids():
                for q in qs_pass:
                    [h.id for h in search(vector=q, k=k, ef=ef, include_text=inc, include_payload=inc)]

            row = {"side": "python", "collection": name, "include": inc, "n_query": len(qs), "k": k, "ef": ef}
            for label, fn in (("", plain), ("ids_", read_ids)):
                for _ in range(args.warmup):
                    fn()
                means, cpus = [], []
                for _ in range(args.passes):
                    c = time.process_time_ns()
                    t = time.perf_counter_ns()
                    fn()
                    means.append((time.perf_counter_ns() - t) / 1e3 / len(qs_pass))
                    cpus.append((time.process_time_ns() - c) / 1e3 / len(qs_pass))
                row[f"{label}passes_mean_us"] = means
                row[f"{label}mean_us"] = median(means)
                row[f"{label}passes_cpu_us"] = cpus
                row[f"{label}cpu_us"] = median(cpus)
            lat = []
            pc = time.perf_counter_ns
            for q in qs:
                t = pc()
                search(vector=q, k=k, ef=ef, include_text=inc, include_payload=inc)
                lat.append((pc() - t) / 1e3)
            lat.sort()
            row["p50_us"], row["p99_us"] = pct(lat, 0.5), pct(lat, 0.99)
            row["checksum"] = sum(
                h.id for q in qs for h in search(vector=q, k=k, ef=ef, include_text=inc, include_payload=inc)
            )
            out.append(row)
        # The floor of any native call from a Python loop: len(col), no arguments, no result objects.
        n_calls = len(qs) * 10
        t = time.perf_counter_ns()
        for _ in range(n_calls):
            len(col)
        out.append({"side": "python", "collection": name, "what": "len(col)",
                    "mean_us": (time.perf_counter_ns() - t) / 1e3 / n_calls})
    db.close()
    return out


def rust_side(db_path: Path, args) -> list[dict]:
    out = []
    for name in ("main", "tiny"):
        cmd = [args.rust_bin, "--db", str(db_path), "--collection", name, "--queries",
               str(Path(args.dataset) / "query.fvecs"), "--n-query", str(args.n_query),
               "--k", str(args.k), "--ef", str(args.ef), "--include", "both",
               "--warmup", str(args.warmup), "--passes", str(args.passes),
               "--cycles", str(args.tiny_cycles if name == "tiny" else 1)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        out += [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="folder with base.fvecs and query.fvecs")
    ap.add_argument("--db", required=True, help="scratch database folder (built if missing)")
    ap.add_argument("--rust-bin", required=True, help="the built search_latency example")
    ap.add_argument("--n", type=int, default=50_000, help="rows in the 'main' collection")
    ap.add_argument("--n-query", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tiny-cycles", type=int, default=10,
                    help="timed passes on 'tiny' go over the queries this many times")
    ap.add_argument("--out", help="JSON results file")
    args = ap.parse_args()

    ds = Path(args.dataset).expanduser()
    args.dataset = str(ds)
    db_path = Path(args.db).expanduser()
    base = read_vecs(ds / "base.fvecs", limit=args.n)
    build(db_path, base, args.n)
    del base
    qmat = read_vecs(ds / "query.fvecs", limit=args.n_query)
    qs = [qmat[i] for i in range(len(qmat))]  # 1-D C-contiguous float32 views, as a caller holds them

    rows = []
    load = [loadavg()]
    for rep in range(args.repeats):
        order = ("rust", "python") if rep % 2 == 0 else ("python", "rust")
        for side in order:
            got = rust_side(db_path, args) if side == "rust" else py_side(db_path, qs, args)
            for r in got:
                r["repeat"] = rep
            rows += got
        load.append(loadavg())
        print(f"repeat {rep} done (load {load[-1]:.2f})", file=sys.stderr)

    # Results: medians over repeats, and the median of the paired per-repeat differences.
    def pick(side, col, inc, rep):
        return next(r for r in rows if r["side"] == side and r["collection"] == col
                    and r.get("include") == inc and r["repeat"] == rep and "what" not in r)

    summary = []
    for col in ("main", "tiny"):
        for inc in (True, False):
            py = [pick("python", col, inc, rep) for rep in range(args.repeats)]
            rs = [pick("rust", col, inc, rep) for rep in range(args.repeats)]
            bad = {(p["checksum"], r["checksum"]) for p, r in zip(py, rs) if p["checksum"] != r["checksum"]}
            s = {
                "collection": col, "include": inc,
                "rust_mean_us": median([r["mean_us"] for r in rs]),
                "py_mean_us": median([p["mean_us"] for p in py]),
                "py_ids_mean_us": median([p["ids_mean_us"] for p in py]),
                "diff_us": median([p["mean_us"] - r["mean_us"] for p, r in zip(py, rs)]),
                "diff_ids_us": median([p["ids_mean_us"] - r["mean_us"] for p, r in zip(py, rs)]),
                "diff_us_per_repeat": [p["mean_us"] - r["mean_us"] for p, r in zip(py, rs)],
                "rust_cpu_us": median([r["cpu_us"] for r in rs]),
                "py_cpu_us": median([p["cpu_us"] for p in py]),
                "diff_cpu_us": median([p["cpu_us"] - r["cpu_us"] for p, r in zip(py, rs)]),
                "diff_cpu_ids_us": median([p["ids_cpu_us"] - r["cpu_us"] for p, r in zip(py, rs)]),
                "diff_p50_us": median([p["p50_us"] - r["p50_us"] for p, r in zip(py, rs)]),
                "rust_p50_us": median([r["p50_us"] for r in rs]),
                "py_p50_us": median([p["p50_us"] for p in py]),
                "rust_p99_us": median([r["p99_us"] for r in rs]),
                "py_p99_us": median([p["p99_us"] for p in py]),
                "same_results": not bad,
            }
            summary.append(s)
    len_floor = {col: median([r["mean_us"] for r in rows if r.get("what") == "len(col)" and r["collection"] == col])
                 for col in ("main", "tiny")}

    print("µs per query; diff = median over repeats of (Python - Rust) in the same repeat")
    hdr = (f"{'collection':<10} {'text+payload':>12} | {'wall Rust':>9} {'Python':>8} {'diff':>7} | "
           f"{'CPU Rust':>9} {'Python':>8} {'diff':>7} {'+ids':>6} | "
           f"{'p50 Rust':>9} {'Python':>8} {'diff':>7} | {'p99 Rust':>9} {'Python':>8} | same")
    print(hdr)
    print("-" * len(hdr))
    for s in summary:
        print(f"{s['collection']:<10} {('on' if s['include'] else 'off'):>12} | {s['rust_mean_us']:>9.2f} "
              f"{s['py_mean_us']:>8.2f} {s['diff_us']:>7.2f} | {s['rust_cpu_us']:>9.2f} {s['py_cpu_us']:>8.2f} "
              f"{s['diff_cpu_us']:>7.2f} {s['diff_cpu_ids_us']:>6.2f} | "
              f"{s['rust_p50_us']:>9.2f} {s['py_p50_us']:>8.2f} {s['diff_p50_us']:>7.2f} | "
              f"{s['rust_p99_us']:>9.2f} {s['py_p99_us']:>8.2f} | {'yes' if s['same_results'] else 'NO'}")
    print(f"len(col) from a Python loop: {len_floor['main']:.3f} µs/call")
    print(f"load average (1 min) before/after each repeat: {', '.join(f'{x:.2f}' for x in load)}")

    if args.out:
        meta = {
            "dataset": args.dataset if not args.dataset.startswith(str(Path.home())) else "~" + args.dataset[len(str(Path.home())):],
            "n": args.n, "n_query": args.n_query, "k": args.k, "ef": args.ef,
            "repeats": args.repeats, "passes": args.passes, "warmup": args.warmup,
            "tiny_cycles": args.tiny_cycles,
            "python": platform.python_version(), "numpy": np.__version__,
            "loadavg": load, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        Path(args.out).write_text(json.dumps({"meta": meta, "summary": summary, "len_floor_us": len_floor,
                                             "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
