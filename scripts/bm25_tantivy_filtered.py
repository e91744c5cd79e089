#!/usr/bin/env python3
"""tantivy's BM25 top-k on pypi-text-100k with the filters and deletes of
`examples/bm25_corpus.rs --ab-passes` (issue 18: does MaxScore's speed-up hold with filters and
deletes?), one query per call as `../shared/bench/bm25_peers.py` times it.

    PY=~/.cache/cairn-bench/venv/bin/python      # numpy and tantivy (0.27.0, as the harness)
    $PY scripts/bm25_tantivy_filtered.py --data ~/.cache/cairn-bench/data/pypi-text-100k \\
        --filter-percent 50,5 --delete-percent 10 --passes 1

The same analysis and queries as the harness: lower-cased runs of `[^\\W_]+`, tokens of 40+
characters dropped, a query is its first 32 distinct tokens OR-ed, top-10; tantivy's default
tokenizer, one writer thread, one segment. Every document carries `bucket` = the same hash of
its id mod 100 as the Rust example, indexed as a fast integer field; a filter `bucket < P` is a
fast-field range query ANDed with the text query at a constant score of 0, so the scores are
the text query's. Deleted: the documents whose id hashes below `--delete-percent` (the same
hash as the example), removed by term on the indexed `id` field after the one-segment build
and committed (tantivy then skips them through its delete bitset, as Cairn through its dead
rows; no merge runs).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

MASK = (1 << 64) - 1
_tok = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    return [t for t in _tok.findall(text.lower()) if len(t) < 40]


def mix(x: int) -> int:
    """splitmix64's finalizer, as `mix` in examples/bm25_corpus.rs."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def bucket(i: int) -> int:
    return mix(i) % 100


def deleted(i: int, p: int) -> bool:
    return mix(i ^ 0x5555555555555555) % 100 < p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True,
                    help="folder with corpus.jsonl and queries.jsonl")
    ap.add_argument("--filter-percent", default="50,5")
    ap.add_argument("--delete-percent", type=int, default=0)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--n-query", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    import tantivy as t
    from importlib.metadata import version

    docs = [json.loads(l) for l in open(args.data / "corpus.jsonl", encoding="utf-8")]
    queries = [json.loads(l) for l in open(args.data / "queries.jsonl", encoding="utf-8")]
    queries = queries[: args.n_query]
    sb = t.SchemaBuilder()
    sb.add_integer_field("id", stored=True, indexed=True, fast=True)
    sb.add_integer_field("bucket", stored=False, indexed=True, fast=True)
    sb.add_text_field("text", stored=False, tokenizer_name="default")
    schema = sb.build()
    tmp = tempfile.TemporaryDirectory(prefix="tantivy-filtered-")
    index = t.Index(schema, path=tmp.name)
    w = index.writer(heap_size=512 * 2**20, num_threads=1)
    for d in docs:
        w.add_document(t.Document(id=d["id"], bucket=bucket(d["id"]), text=d["text"]))
    w.commit()
    w.wait_merging_threads()
    gone = 0
    if args.delete_percent:
        w = index.writer(heap_size=512 * 2**20, num_threads=1)  # the first was consumed
        for d in docs:
            if deleted(d["id"], args.delete_percent):
                w.delete_documents_by_term("id", d["id"])
                gone += 1
        w.commit()
        w.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    print(f"tantivy {version('tantivy')}: {searcher.num_docs} live docs, {searcher.num_segments} "
          f"segment(s), {gone} deleted")
    qtexts = [" ".join(list(dict.fromkeys(tokens(q["text"])))[:32]) for q in queries]
    filters = [None] + [int(p) for p in args.filter_percent.split(",") if p]
    rows = []
    for p in range(1, args.passes + 1):
        for fp in filters:
            def query(text):
                q = index.parse_query(text, ["text"])
                if fp is None:
                    return q
                r = t.Query.range_query(schema, "bucket", t.FieldType.Integer, 0, fp,
                                        include_upper=False)
                return t.Query.boolean_query([(t.Occur.Must, q),
                                              (t.Occur.Must, t.Query.const_score_query(r, 0.0))])
            for text in qtexts[: args.warmup]:
                if text:
                    searcher.search(query(text), args.k)
            lat, hits = [], 0
            for text in qtexts:
                t0 = time.perf_counter()
                if text:  # as the harness: an empty query returns nothing
                    hits += len(searcher.search(query(text), args.k).hits)
                lat.append((time.perf_counter() - t0) * 1e6)
            lat.sort()
            qps = len(lat) / (sum(lat) / 1e6)
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            label = "none" if fp is None else f"bucket < {fp}"
            print(f"== tantivy filter {label} deleted {args.delete_percent} % pass {p}: "
                  f"QPS {qps:.0f}, p50 {p50:.1f} µs, p99 {p99:.1f} µs, "
                  f"{hits / len(lat):.2f} hits per query", flush=True)
            rows.append({"filter_percent": fp, "delete_percent": args.delete_percent, "pass": p,
                         "qps": qps, "p50_us": p50, "p99_us": p99})
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
