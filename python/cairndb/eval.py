"""Retrieval evaluation: the metrics of `cairn eval`, from Python.

>>> from cairndb.eval import evaluate
>>> report = evaluate(col, "queries.jsonl", "qrels.txt", k=10,
...                   modes=["text", "vector", "hybrid"], fusions=["default", "rrf:20"])  # doctest: +SKIP
>>> for s in report["systems"]: print(s["system"], s["mrr"], s["ndcg"])  # doctest: +SKIP

`queries` is a JSONL file or a list of dicts, one per query: `qid` (a string or a number;
default: the line number, from 1), `text` and/or `vector`, optionally `filter` (the text syntax
or the dict form). `qrels` is a file in TREC qrels format (`qid iteration docid grade` a line)
or a dict `{qid: {docid: grade}}`; a grade above 0 is relevant, docids are record ids as
strings (`str(hit.id)`).

Per query, then the mean over the queries with at least one relevant document (trec_eval's
convention), with the same definitions as `cairn eval`:

- hit@k: 1 if a relevant document is in the top k;
- MRR@k: 1 / the rank of the first relevant document in the top k (0 if none);
- recall@k: relevant documents in the top k / relevant documents judged;
- nDCG@k: DCG / ideal DCG, DCG = sum of grade / log2(rank + 1) over ranks 1..k (trec_eval's
  `ndcg_cut`); unjudged documents and negative grades count as 0.

The report is the dict `cairn eval --json` prints: `{"k", "queries", "judged_queries",
"systems": [{"system", "queries", "mrr", "ndcg", "recall", "hit"}]}`; system names are `text`,
`vector` and `hybrid-<fusion>` (`hybrid-default`, `hybrid-rrf20`, `hybrid-weighted0.3`, ...).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

__all__ = ["evaluate", "score_query", "read_queries", "read_qrels", "parse_fusion"]

_PathLike = Union[str, "os.PathLike[str]"]


def score_query(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> tuple:
    """(MRR@k, nDCG@k, recall@k, hit@k) of one ranked list of docids against one query's
    judgments."""
    grade = lambda d: max(judged.get(d, 0), 0)  # noqa: E731
    top = list(ranked[:k])
    relevant = sum(1 for g in judged.values() if g > 0)
    first = next((i for i, d in enumerate(top) if grade(d) > 0), None)
    hit = 0.0 if first is None else 1.0
    mrr = 0.0 if first is None else 1.0 / (first + 1)
    found = sum(1 for d in top if grade(d) > 0)
    recall = found / relevant if relevant else 0.0
    dcg = sum(grade(d) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted((max(g, 0) for g in judged.values()), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    ndcg = dcg / best if best > 0 else 0.0
    return mrr, ndcg, recall, hit


def read_queries(queries: Union[_PathLike, Iterable[Mapping[str, Any]]]) -> list[dict]:
    """The queries as dicts with a string `qid`, checked as `cairn eval` checks them."""
    if isinstance(queries, (str, os.PathLike)):
        with open(queries, encoding="utf-8") as f:
            lines = [(i + 1, line) for i, line in enumerate(f)]
        items = [(n, json.loads(line)) for n, line in lines if line.strip()]
    else:
        items = list(enumerate(queries, 1))
    out, seen = [], set()
    for n, q in items:
        if not isinstance(q, Mapping):
            raise ValueError(f"query {n}: expected an object, got {type(q).__name__}")
        unknown = set(q) - {"qid", "text", "vector", "filter"}
        if unknown:
            raise ValueError(f"query {n}: unknown field(s) {sorted(unknown)}")
        qid = q.get("qid", n)
        if isinstance(qid, bool) or not isinstance(qid, (str, int, float)):
            raise ValueError(f"query {n}: \"qid\" is a string or a number")
        qid = str(qid)
        if not qid or any(c.isspace() for c in qid):
            raise ValueError(f"query {n}: qid {qid!r} cannot be written in a TREC file")
        if qid in seen:
            raise ValueError(f"query {n}: qid {qid} appears twice")
        seen.add(qid)
        if q.get("text") is None and q.get("vector") is None:
            raise ValueError(f"query {n}: a query needs \"text\", \"vector\", or both")
        out.append({"qid": qid, "text": q.get("text"), "vector": q.get("vector"),
                    "filter": q.get("filter")})
    if not out:
        raise ValueError("no query given")
    return out


def read_qrels(qrels: Union[_PathLike, Mapping[Any, Mapping[Any, int]]]) -> dict:
    """Judgments as `{qid: {docid: grade}}`, all keys strings."""
    if not isinstance(qrels, (str, os.PathLike)):
        return {str(q): {str(d): int(g) for d, g in j.items()} for q, j in qrels.items()}
    out: dict = {}
    with open(qrels, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise ValueError(
                    f"{qrels} line {n}: a qrels line is `qid iteration docid grade`, "
                    f"got {len(parts)} fields")
            qid, _, doc, g = parts
            try:
                grade = int(g)
            except ValueError:
                raise ValueError(f"{qrels} line {n}: grade {g!r} is not a whole number") from None
            out.setdefault(qid, {})[doc] = grade
    return out


def parse_fusion(spec: str) -> tuple[dict, str]:
    """A fusion spec as `cairn eval --fusion` takes it (`default`, `rrf[:K]`,
    `weighted[:ALPHA]`, `dbsf`) → (the keyword arguments of `search`, the system label)."""
    name, _, arg = spec.partition(":")
    has_arg = ":" in spec

    def num(default: float) -> float:
        if not has_arg:
            return default
        try:
            x = float(arg)
        except ValueError:
            x = math.nan
        if not math.isfinite(x):
            raise ValueError(f"fusion {spec}: {arg!r} is not a number")
        return x

    if name == "default" and not has_arg:
        return {}, "default"
    if name == "rrf":
        k = num(60.0)
        return {"fusion": "rrf", "rrf_k": k}, f"rrf{_fmt(k)}"
    if name == "weighted":
        a = num(0.5)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"fusion {spec}: alpha must be in [0, 1]")
        return {"fusion": "weighted", "alpha": a}, f"weighted{_fmt(a)}"
    if name == "dbsf" and not has_arg:
        return {"fusion": "dbsf"}, "dbsf"
    raise ValueError(f"fusion {spec}: expected default, rrf[:K], weighted[:ALPHA] or dbsf")


def _fmt(x: float) -> str:
    """A number as Rust's `{}` prints an f32 (`60`, `0.5`): the CLI's labels."""
    import struct

    x = struct.unpack("f", struct.pack("f", x))[0]
    if x == int(x):
        return str(int(x))
    # The shortest decimal that reads back as the same f32.
    for digits in range(1, 10):
        s = f"{x:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(s)))[0] == x:
            return s
    return repr(x)


def evaluate(
    col,
    queries: Union[_PathLike, Iterable[Mapping[str, Any]]],
    qrels: Union[_PathLike, Mapping[Any, Mapping[Any, int]]],
    k: int = 10,
    modes: Optional[Sequence[str]] = None,
    fusions: Optional[Sequence[str]] = None,
    *,
    candidates: Optional[int] = None,
    ef: Optional[int] = None,
    exact: bool = False,
    run: Optional[_PathLike] = None,
) -> dict:
    """Runs every query in every mode (`text`, `vector`, `hybrid`; default: each mode every
    query supports) and fusion (`fusions`, default `["default"]`, specs as in
    `parse_fusion`) and scores the top `k` against `qrels`. Returns the report `cairn eval
    --json` prints. `run`: a path prefix; writes a TREC run file `<run>.<system>.run` per
    system."""
    if k < 1:
        raise ValueError("k must be at least 1")
    qs = read_queries(queries)
    judgments = read_qrels(qrels)
    all_text = all(q["text"] is not None for q in qs)
    all_vec = all(q["vector"] is not None for q in qs)
    if modes is None:
        modes = [m for m, ok in (("text", all_text), ("vector", all_vec),
                                 ("hybrid", all_text and all_vec)) if ok]
        if not modes:
            raise ValueError("no mode fits every query: give each query a \"text\" or each "
                             "a \"vector\"")
    fusion_specs = [parse_fusion(f) for f in (fusions or ["default"])]
    systems = []
    for m in modes:
        need = {"text": ["text"], "vector": ["vector"], "hybrid": ["text", "vector"]}.get(m)
        if need is None:
            raise ValueError(f"mode {m}: expected text, vector or hybrid")
        for field in need:
            if not (all_text if field == "text" else all_vec):
                bad = next(q["qid"] for q in qs if q[field] is None)
                raise ValueError(f"mode {m}: every query needs a \"{field}\" "
                                 f"(the first without one: qid {bad})")
        if m == "hybrid":
            systems += [("hybrid", kw, f"hybrid-{label}") for kw, label in fusion_specs]
        else:
            systems.append((m, {}, m))
    judged = [q for q in qs if any(g > 0 for g in judgments.get(q["qid"], {}).values())]
    if not judged:
        raise ValueError("no query has a relevant document in the qrels (qids must match)")
    common: dict = {"k": k, "exact": exact, "include_text": False, "include_payload": False}
    if ef is not None:
        common["ef"] = ef
    if candidates is not None:
        common["candidates"] = candidates
    out = []
    for mode, kw, label in systems:
        sums = [0.0, 0.0, 0.0, 0.0]
        lines = []
        for q in judged:
            args = dict(common, filter=q["filter"], **kw)
            if mode == "text":
                hits = col.search(text=q["text"], mode="text", **args)
            elif mode == "vector":
                hits = col.search(vector=q["vector"], mode="vector", **args)
            else:
                hits = col.search(vector=q["vector"], text=q["text"], mode="hybrid", **args)
            ranked = [str(h.id) for h in hits]
            for i, x in enumerate(score_query(ranked, judgments[q["qid"]], k)):
                sums[i] += x
            if run is not None:
                for r, h in enumerate(hits, 1):
                    doc = "".join("_" if c.isspace() else c for c in str(h.id))
                    lines.append(f"{q['qid']} Q0 {doc} {r} {h.score} cairn-{label}\n")
        n = len(judged)
        out.append({"system": label, "queries": n, "mrr": sums[0] / n, "ndcg": sums[1] / n,
                    "recall": sums[2] / n, "hit": sums[3] / n})
        if run is not None:
            with open(f"{os.fspath(run)}.{label}.run", "w", encoding="utf-8") as f:
                f.writelines(lines)
    return {"k": k, "queries": len(qs), "judged_queries": len(judged), "systems": out}


def format_report(report: dict) -> str:
    """The report as the table `cairn eval` prints."""
    k = report["k"]
    heads = ["system", f"MRR@{k}", f"nDCG@{k}", f"recall@{k}", f"hit@{k}"]
    rows = [[s["system"]] + [f"{s[m]:.4f}" for m in ("mrr", "ndcg", "recall", "hit")]
            for s in report["systems"]]
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    fmt = lambda r: "  ".join(  # noqa: E731
        v.ljust(w[i]) if i == 0 else v.rjust(w[i]) for i, v in enumerate(r))
    return "\n".join([f"{report['judged_queries']} judged queries of {report['queries']} "
                      f"(k = {k})", fmt(heads)] + [fmt(r) for r in rows])
