#!/usr/bin/env python3
"""Labelled retrieval sets for `cairn eval`, built from what this machine has, embedded with
all-MiniLM-L6-v2, and scored with Cairn (text, vector, hybrid with any fusion) next to a
reference BM25 (bm25s) and exact vector search in numpy.

    python scripts/eval/evalsets.py build SET      # documents, queries, qrels, embeddings
    python scripts/eval/evalsets.py bench SET      # Cairn database + `cairn eval` + references
    python scripts/eval/evalsets.py table SET      # the Markdown table of the last bench

Sets (each a known-item set: one relevant document per query):

- manpages: the manual pages of /usr/share/man/man1; query = the description of the NAME line
  ("ls - list directory contents" → "list directory contents"), document = the rest of the page
  (NAME section removed).
- docstrings: the docstrings of functions and classes in the packages installed next to this
  Python (numpy, torch, transformers, ...); query = the summary line, document = the rest of
  the docstring.
- debian: the Debian package descriptions (Translation-en, fetched by `apt-get update -o
  Acquire::Languages=en`); query = a
  package's one-line description, document = its long description.
- ragdocs: this repository's docs/*.md and README.md cut by Markdown headings as the RAG
  example cuts them; query = a section's own heading, document = the section's text without
  its heading line (a long section cut into windows: every window is relevant).

Every document is cut to its first MAX_WORDS words (as a chunker would). Queries or documents
that occur twice are dropped, so that each query has exactly one answer. Data goes to
~/.cache/cairn-bench/eval/SET/: docs.jsonl, queries.jsonl (with vectors, as `cairn eval`
reads them), qrels.txt, docs.npy, and the database db/ that `bench` builds.
"""

from __future__ import annotations

import argparse
import ast
import collections
import gzip
import hashlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CAIRN_EVAL_CACHE", Path.home() / ".cache" / "cairn-bench" / "eval"))
MAX_WORDS = 400
N_DOCS, N_QUERIES = int(os.environ.get("EVAL_DOCS", 1500)), 1000
_WORD = re.compile(r"\S+")


def cut(text: str, n: int = MAX_WORDS) -> str:
    words = _WORD.findall(text)
    return " ".join(words[:n])


def rank_key(name: str) -> str:
    """A fixed pseudo-random order (samples that do not depend on file order)."""
    return hashlib.sha1(name.encode()).hexdigest()


def _norm(text: str) -> str:
    """Lower case, letters only: near-copies that differ in a version number collide."""
    return " ".join(re.sub(r"[^a-z]+", " ", text.lower()).split())


def unique(pairs):
    """(key, query, doc) triples whose query and doc each occur once (up to case, digits and
    punctuation)."""
    pairs = list(pairs)
    qc = collections.Counter(_norm(q) for _, q, _ in pairs)
    dc = collections.Counter(_norm(d) for _, _, d in pairs)
    return [(k, q, d) for k, q, d in pairs if qc[_norm(q)] == 1 and dc[_norm(d)] == 1]


def sample(triples, n_docs=N_DOCS, n_queries=N_QUERIES):
    """The first n_docs triples in the fixed order as the corpus; the first n_queries of those
    as the queries. Returns (docs [(docid, text)], queries [(qid, text, [docids])])."""
    triples = sorted(triples, key=lambda t: rank_key(t[0]))[:n_docs]
    docs = [(str(i), d) for i, (_, _, d) in enumerate(triples)]
    queries = [(f"q{i}", q, [str(i)]) for i, (_, q, _) in enumerate(triples[:n_queries])]
    return docs, queries


# ---------------------------------------------------------------------------------------------
# Sources


def render_man(path: Path) -> str:
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    p = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou"], input=raw,
                       capture_output=True, timeout=30)
    return p.stdout.decode("utf-8", "replace")


_SECTION = re.compile(r"^[A-Z][A-Z0-9 ,/&()-]*$")


def man_name_and_body(text: str):
    lines = text.splitlines()
    try:
        i = next(j for j, l in enumerate(lines) if l.strip() == "NAME" and not l.startswith(" "))
    except StopIteration:
        return None
    j = i + 1
    while j < len(lines) and not (lines[j] and not lines[j][0].isspace()
                                  and _SECTION.match(lines[j].strip())):
        j += 1
    name = " ".join(" ".join(lines[i + 1:j]).split())
    m = re.match(r"^(.+?)\s+[-\u2010\u2013\u2014\u2212]+\s+(.+)$", name)
    if not m:
        return None
    # Drop the running header and footer lines (they repeat the page's name).
    body_lines = [l for l in lines[j:-1] if l.strip()]
    return m.group(2), "\n".join(body_lines)


def source_manpages():
    pages = sorted(Path("/usr/share/man/man1").glob("*.1*"))
    # Render a fixed pseudo-random part (rendering all ~18k pages takes long).
    pages = sorted(pages, key=lambda p: rank_key(p.name))[: int(N_DOCS * 1.6)]
    with ThreadPoolExecutor(2) as ex:
        texts = list(ex.map(render_man, pages))
    out = []
    for p, t in zip(pages, texts):
        r = man_name_and_body(t)
        if r is None:
            continue
        desc, body = r
        if len(desc.split()) >= 2 and len(body.split()) >= 30:
            out.append((p.name, desc, cut(body)))
    return unique(out)


def docstrings_of(path: Path, pkg_root: Path):
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return
    mod = ".".join(path.relative_to(pkg_root).with_suffix("").parts)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node)
            if not doc:
                continue
            parts = inspect.cleandoc(doc).split("\n\n", 1)
            if len(parts) < 2:
                continue
            summary = " ".join(parts[0].split())
            body = parts[1].strip()
            if 3 <= len(summary.split()) <= 30 and len(body.split()) >= 20:
                yield f"{mod}.{node.name}", summary, cut(body)


def source_docstrings():
    site = Path(sysconfig.get_paths()["purelib"])
    out = []
    for top in sorted(site.iterdir()):
        if not top.is_dir() or top.name.endswith((".dist-info", ".data")) or top.name.startswith("_"):
            continue
        for f in sorted(top.rglob("*.py")):
            if "test" in f.parts or "tests" in f.parts:
                continue
            out.extend(docstrings_of(f, site))
    return unique(out)


def source_debian():
    lists = sorted(Path("/var/lib/apt/lists").glob("*_main_i18n_Translation-en*"))
    if not lists:
        sys.exit("no Translation-en in /var/lib/apt/lists: apt-get update -o Acquire::Languages=en")
    txt = "\n\n".join(
        subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(f)], capture_output=True,
                       text=True, check=True).stdout.strip() for f in lists)
    out = []
    for stanza in txt.split("\n\n"):
        pkg = re.search(r"^Package: (.+)$", stanza, re.M)
        d = re.search(r"^Description(?:-en)?: (.*)\n((?: .*\n?)*)", stanza, re.M)
        if not pkg or not d:
            continue
        long = "\n".join(" . " if l.strip() == "." else l.strip()
                         for l in d.group(2).splitlines()).replace(" . ", "")
        if len(d.group(1).split()) >= 2 and len(long.split()) >= 20:
            out.append((pkg.group(1), d.group(1).strip(), cut(long)))
    # A source package's binaries often share a long description: `unique` drops them.
    return unique(out)


def load_rag():
    spec = importlib.util.spec_from_file_location("rag_example", REPO / "examples/rag/rag.py")
    rag = importlib.util.module_from_spec(spec)
    sys.modules["rag_example"] = rag  # dataclasses look their module up there
    spec.loader.exec_module(rag)
    return rag


def source_ragdocs():
    rag = load_rag()
    docs = rag.load_corpus(None)
    chunks = rag.chunk_corpus(docs, "headings")
    by_section = collections.defaultdict(list)
    for c in chunks:
        by_section[(c.source, c.section)].append(c)
    heads = collections.Counter(s.split(" > ")[-1].lower() for _, s in by_section if s)
    corpus, queries = [], []
    for (src, section), cs in by_section.items():
        for c in cs:
            text = c.text
            if section and c.text.lstrip().startswith("#"):
                text = text.split("\n", 1)[1] if "\n" in text else ""
            corpus.append((f"{src}#{c.section}#{c.index}", text, (src, section)))
    ids = {}
    docs = []
    for i, (key, text, sec) in enumerate(corpus):
        docs.append((str(i), text))
        ids.setdefault(sec, []).append(str(i))
    for n, ((src, section), rel) in enumerate(sorted(ids.items(), key=lambda t: rank_key(str(t[0])))):
        title = section.split(" > ")[-1] if section else ""
        if not title or heads[title.lower()] != 1:
            continue
        if all(not docs[int(r)][1].strip() for r in rel):
            continue
        queries.append((f"q{n}", title.replace("`", ""), rel))
    return docs, queries


SOURCES = {"manpages": source_manpages, "docstrings": source_docstrings,
           "debian": source_debian, "ragdocs": source_ragdocs}


# ---------------------------------------------------------------------------------------------
# Build: documents, queries, qrels, embeddings


def build(name: str):
    out = CACHE / name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    got = SOURCES[name]()
    docs, queries = got if isinstance(got, tuple) else sample(got)
    print(f"[{name}] {len(docs)} documents, {len(queries)} queries "
          f"({time.time() - t0:.0f} s to collect)")
    emb = load_rag().MiniLMEmbedder()
    t0 = time.time()
    dv = emb.encode([d for _, d in docs])
    qv = emb.encode([q for _, q, _ in queries])
    print(f"[{name}] embedded in {time.time() - t0:.0f} s")
    np.save(out / "docs.npy", dv)
    with open(out / "docs.jsonl", "w") as f:
        for (i, d) in docs:
            f.write(json.dumps({"id": int(i), "text": d}) + "\n")
    with open(out / "queries.jsonl", "w") as f:
        for (qid, q, _), v in zip(queries, qv):
            f.write(json.dumps({"qid": qid, "text": q,
                                "vector": [round(float(x), 7) for x in v]}) + "\n")
    with open(out / "qrels.txt", "w") as f:
        for qid, _, rel in queries:
            for d in rel:
                f.write(f"{qid} 0 {d} 1\n")
    meta = {"set": name, "documents": len(docs), "queries": len(queries),
            "max_words": MAX_WORDS, "model": "all-MiniLM-L6-v2"}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------
# Bench: the Cairn database, `cairn eval`, and the references


def read_set(name: str):
    d = CACHE / name
    docs = [json.loads(l) for l in open(d / "docs.jsonl")]
    queries = [json.loads(l) for l in open(d / "queries.jsonl")]
    qrels = collections.defaultdict(dict)
    for l in open(d / "qrels.txt"):
        q, _, doc, g = l.split()
        qrels[q][doc] = int(g)
    return docs, queries, qrels, np.load(d / "docs.npy")


def ensure_db(name: str, docs, vecs):
    import cairndb

    path = CACHE / name / "db"
    db = cairndb.open(str(path))
    try:
        if "docs" in db.collections() and len(db.collection("docs")) == len(docs):
            return path
        if "docs" in db.collections():
            db.drop_collection("docs")
        col = db.create_collection("docs", vecs.shape[1], "cosine")
        for s in range(0, len(docs), 500):
            part = docs[s:s + 500]
            col.upsert([d["id"] for d in part], vecs[s:s + len(part)],
                       texts=[d["text"] for d in part])
        col.flush()
    finally:
        db.close()
    return path


def references(docs, queries, qrels, vecs, k=10):
    """bm25s (method lucene, k1 1.2, b 0.75, tokens: lower-cased runs of [^\\W_]+, no stemming
    or stop words) and exact cosine search in numpy."""
    import bm25s

    from cairndb.eval import score_query

    pat = r"(?u)[^\W_]+"
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index(bm25s.tokenize([d["text"] for d in docs], stopwords=None,
                                   token_pattern=pat, show_progress=False),
                    show_progress=False)
    ids = [str(d["id"]) for d in docs]
    qtok = bm25s.tokenize([q["text"] for q in queries], stopwords=None, token_pattern=pat,
                          show_progress=False)
    res, sc = retriever.retrieve(qtok, k=k, show_progress=False, n_threads=1)
    qv = np.array([q["vector"] for q in queries], dtype=np.float32)
    sims = qv @ vecs.T
    out = {}
    for label, ranked in (
        ("bm25s", [[ids[j] for j, s in zip(r, srow) if s > 0] for r, srow in zip(res, sc)]),
        ("numpy exact", [[ids[j] for j in np.argsort(-row, kind="stable")[:k]] for row in sims]),
    ):
        m = np.array([score_query(r, qrels[q["qid"]], k) for r, q in zip(ranked, queries)])
        out[label] = dict(zip(("mrr", "ndcg", "recall", "hit"), m.mean(axis=0).tolist()))
    return out


FUSIONS = ["default", "rrf:60", "rrf:20", "rrf:5", "dbsf", "weighted:0.2", "weighted:0.3",
           "weighted:0.4", "weighted:0.5", "weighted:0.6", "weighted:0.7", "weighted:0.8"]


def cairn_exe():
    exe = os.environ.get("CAIRN_BIN") or str(REPO / "target" / "release" / "cairn")
    if not Path(exe).exists():
        sys.exit(f"no {exe}: cargo build --release -p cairn-cli (or set CAIRN_BIN)")
    return exe


DEPTH_FUSIONS = ["rrf:60", "rrf:5", "dbsf", "weighted:0.6"]


def cairn_eval(path: Path, d: Path, fusions: list[str], candidates: int | None) -> dict:
    cmd = [cairn_exe(), "eval", str(path), "docs", "--queries", str(d / "queries.jsonl"),
           "--qrels", str(d / "qrels.txt"), "--exact", "--json", "--fusion", ",".join(fusions)]
    if candidates:
        cmd += ["--candidates", str(candidates)]
    print("$ " + " ".join(c.replace(str(Path.home()), "~") for c in cmd), file=sys.stderr)
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def bench(name: str, fusions: list[str]):
    """`cairn eval` with every fusion at the default depth (max(2k, 50) = 50 candidates a
    leg), then a few at 20 candidates a leg, then the references."""
    docs, queries, qrels, vecs = read_set(name)
    path = ensure_db(name, docs, vecs)
    d = CACHE / name
    t0 = time.time()
    rep = cairn_eval(path, d, fusions, None)
    shallow = cairn_eval(path, d, DEPTH_FUSIONS, 20)
    rep["systems"] += [dict(s, system=s["system"] + " (20 a leg)")
                       for s in shallow["systems"] if s["system"].startswith("hybrid")]
    print(f"[{name}] cairn eval: {time.time() - t0:.1f} s", file=sys.stderr)
    rep["references"] = references(docs, queries, qrels, vecs)
    rep["set"] = name
    rep["documents"] = len(docs)
    (d / "results.json").write_text(json.dumps(rep, indent=1) + "\n")
    print(markdown(rep))


def markdown(rep) -> str:
    rows = [(s["system"], s) for s in rep["systems"]]
    rows += [(f"reference: {k}", v) for k, v in rep["references"].items()]
    legs = [s for s in rep["systems"] if s["system"] in ("text", "vector")]
    best = {m: max(s[m] for s in legs) for m in ("mrr", "ndcg")}
    lines = [f"{rep['set']}: {rep['documents']} documents, {rep['judged_queries']} queries, "
             f"k = {rep['k']}",
             "", "| system | MRR@10 | nDCG@10 | recall@10 | MRR vs better leg "
             "| nDCG vs better leg |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, s in rows:
        rel = [f"{(s[m] / best[m] - 1) * 100:+.1f} %" for m in ("mrr", "ndcg")]
        if label == "hybrid-default":
            label = "**hybrid-default** (weighted 0.6)"
        lines.append(f"| {label} | {s['mrr']:.4f} | {s['ndcg']:.4f} | {s['recall']:.4f} | "
                     f"{rel[0]} | {rel[1]} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cmd", choices=["build", "bench", "table"])
    p.add_argument("sets", nargs="+", choices=sorted(SOURCES))
    p.add_argument("--fusion", default=",".join(FUSIONS))
    a = p.parse_args()
    for s in a.sets:
        if a.cmd == "build":
            build(s)
        elif a.cmd == "bench":
            bench(s, a.fusion.split(","))
        else:
            print(markdown(json.loads((CACHE / s / "results.json").read_text())))


if __name__ == "__main__":
    main()
