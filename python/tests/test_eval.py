"""cairndb.eval: the metrics worked out by hand on a tiny collection, hostile inputs, and the
same numbers as `cairn eval` on one set."""

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cairndb
from cairndb.eval import evaluate, format_report, parse_fusion, score_query

REPO = Path(__file__).resolve().parents[2]


def unit(deg):
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


@pytest.fixture
def col(tmp_path):
    """Six records on the unit circle at 0°, 30°, ..., 150° (ids 1..6), text `wordI`."""
    db = cairndb.open(str(tmp_path / "db"))
    c = db.create_collection("c", 2, "cosine")
    ids = list(range(1, 7))
    c.upsert(ids, np.array([unit(30 * (i - 1)) for i in ids], dtype=np.float32),
             texts=[f"word{i}" for i in ids])
    yield c
    db.close()


# q1 at 0°: vector ranking 1 2 3 4 5 6; q2 at 150°: 6 5 4 3 2 1; q3 at 80°: 4 3 5 2 6 1.
QUERIES = [
    {"qid": "q1", "vector": unit(0), "text": "word3"},
    {"qid": "q2", "vector": unit(150), "text": "word6"},
    {"qid": "q3", "vector": unit(80), "text": "word2"},
    {"qid": "q4", "vector": unit(0), "text": "word1"},  # only a grade 0: not counted
]
QRELS = {
    "q1": {"3": 1},
    "q2": {"5": 2, "1": 1},
    "q3": {"2": 1, "x": 0},
    "q4": {"1": 0},
}


def test_metrics_by_hand(col):
    r = evaluate(col, QUERIES, QRELS, k=3, modes=["vector", "text"], exact=True)
    assert (r["k"], r["queries"], r["judged_queries"]) == (3, 4, 3)
    vec, txt = r["systems"]
    assert vec["system"] == "vector" and txt["system"] == "text"
    # Vector, top 3. q1: 1 2 [3] → MRR 1/3, recall 1, nDCG 1/log2(4) = 0.5.
    # q2: 6 [5] 4 → MRR 1/2, recall 1/2, nDCG (2/log2 3) / (2/log2 2 + 1/log2 3).
    # q3: 4 3 5 → nothing.
    nd2 = (2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert vec["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 3, abs=1e-12)
    assert vec["recall"] == pytest.approx((1 + 1 / 2) / 3, abs=1e-12)
    assert vec["hit"] == pytest.approx(2 / 3, abs=1e-12)
    assert vec["ndcg"] == pytest.approx((0.5 + nd2) / 3, abs=1e-12)
    # Text: only the record with the query's word matches. q1 → [3]: all 1; q2 → [6]: all 0;
    # q3 → [2]: all 1.
    for m in ("mrr", "ndcg", "recall", "hit"):
        assert txt[m] == pytest.approx(2 / 3, abs=1e-12), m
    # k = 1: vector finds nothing relevant at rank 1 (1, 6, 4).
    r = evaluate(col, QUERIES, QRELS, k=1, modes=["vector"], exact=True)
    assert [r["systems"][0][m] for m in ("mrr", "ndcg", "recall", "hit")] == [0, 0, 0, 0]


def test_score_query_matches_the_cli_unit_test():
    # The hand-worked case of cli/src/eval.rs `metrics_by_hand`.
    j = {"b": 1, "d": 2, "x": 0}
    mrr, ndcg, recall, hit = score_query(["a", "b", "c", "d"], j, 10)
    assert (mrr, recall, hit) == (0.5, 1.0, 1.0)
    want = (1 / math.log2(3) + 2 / math.log2(5)) / (2 + 1 / math.log2(3))
    assert ndcg == pytest.approx(want, abs=1e-12)
    assert score_query(["a", "b"], j, 1) == (0.0, 0.0, 0.0, 0.0)
    assert score_query(["a", "b"], {"a": -1, "b": 1}, 10)[0] == 0.5


def test_files_modes_fusions_and_run_files(col, tmp_path):
    qf = tmp_path / "q.jsonl"
    qf.write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    rf = tmp_path / "qrels"
    rf.write_text("".join(f"{q} 0 {d} {g}\n" for q, j in QRELS.items() for d, g in j.items()))
    r = evaluate(col, qf, rf, k=3, fusions=["default", "rrf:20", "weighted:0.3", "dbsf"],
                 exact=True, run=tmp_path / "run")
    names = [s["system"] for s in r["systems"]]
    assert names == ["text", "vector", "hybrid-default", "hybrid-rrf20",
                     "hybrid-weighted0.3", "hybrid-dbsf"]
    run = (tmp_path / "run.vector.run").read_text().splitlines()
    assert run[0].split()[:4] == ["q1", "Q0", "1", "1"] and len(run) == 9
    assert "hybrid-default" in format_report(r)


@pytest.mark.parametrize("bad, msg", [
    ([{"qid": "a"}], "needs"),
    ([{"qid": "a b", "text": "x"}], "TREC"),
    ([{"qid": 1, "text": "x"}, {"qid": "1", "text": "y"}], "twice"),
    ([{"text": "x", "vectr": [1, 0]}], "unknown"),
    ([], "no query"),
])
def test_bad_queries(col, bad, msg):
    with pytest.raises(ValueError, match=msg):
        evaluate(col, bad, QRELS)


def test_bad_arguments(col, tmp_path):
    with pytest.raises(ValueError, match="k must be"):
        evaluate(col, QUERIES, QRELS, k=0)
    with pytest.raises(ValueError, match="no query has a relevant"):
        evaluate(col, QUERIES, {"zz": {"1": 1}})
    with pytest.raises(ValueError, match="mode"):
        evaluate(col, QUERIES, QRELS, modes=["bm25"])
    with pytest.raises(ValueError, match="needs a \"vector\""):
        evaluate(col, [{"qid": "q1", "text": "word3"}], QRELS, modes=["hybrid"])
    for spec in ["rrf:x", "weighted:2", "dbsf:1", "nope", "rrf:nan"]:
        with pytest.raises(ValueError):
            parse_fusion(spec)
    bad = tmp_path / "qrels"
    bad.write_text("q1 0 3\n")
    with pytest.raises(ValueError, match="fields"):
        evaluate(col, QUERIES, bad)
    bad.write_text("q1 0 3 high\n")
    with pytest.raises(ValueError, match="whole number"):
        evaluate(col, QUERIES, bad)


def cairn_binary():
    """The `cairn` CLI: $CAIRN_BIN, else the workspace's target/{release,debug}/cairn, else
    on PATH."""
    if os.environ.get("CAIRN_BIN"):
        return os.environ["CAIRN_BIN"]
    for sub in ("release", "debug"):
        p = REPO / "target" / sub / "cairn"
        if p.exists():
            return str(p)
    return shutil.which("cairn")


def test_same_numbers_as_the_cli(tmp_path):
    exe = cairn_binary()
    if exe is None:
        pytest.fail("no cairn binary: build it with `cargo build -p cairn-cli` or set CAIRN_BIN")
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(40)]
    n, dim = 300, 8
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    texts = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(n)]
    queries, qrels = [], []
    for q in range(60):
        rel = rng.choice(n, size=rng.integers(1, 4), replace=False)
        v = vecs[rel[0]] + rng.normal(scale=0.8, size=dim).astype(np.float32)
        t = " ".join(texts[rel[0]].split()[:2] + list(rng.choice(words, size=2)))
        queries.append({"qid": f"q{q}", "vector": v.tolist(), "text": t})
        qrels += [f"q{q} 0 {d} {rng.integers(1, 3)}" for d in rel]
    qf, rf = tmp_path / "q.jsonl", tmp_path / "qrels"
    qf.write_text("".join(json.dumps(q) + "\n" for q in queries))
    rf.write_text("\n".join(qrels) + "\n")
    path = str(tmp_path / "db")
    db = cairndb.open(path)
    db.create_collection("c", dim, "cosine").upsert(list(range(n)), vecs, texts=texts)
    db.close()
    fusions = "default,rrf:20,weighted:0.3,dbsf"
    p = subprocess.run([exe, "eval", path, "c", "--queries", str(qf), "--qrels", str(rf),
                        "--k", "10", "--fusion", fusions, "--exact", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    cli = json.loads(p.stdout)
    db = cairndb.open(path, read_only=True)
    try:
        py = evaluate(db.collection("c"), qf, rf, k=10, fusions=fusions.split(","), exact=True)
    finally:
        db.close()
    assert (py["k"], py["queries"], py["judged_queries"]) == (
        cli["k"], cli["queries"], cli["judged_queries"])
    assert [s["system"] for s in py["systems"]] == [s["system"] for s in cli["systems"]]
    for a, b in zip(py["systems"], cli["systems"]):
        for m in ("mrr", "ndcg", "recall", "hit"):
            assert a[m] == pytest.approx(b[m], abs=1e-12), (a["system"], m)
        assert a["queries"] == b["queries"]
    # Not a vacuous comparison: the systems differ and find something.
    assert len({round(s["mrr"], 9) for s in py["systems"]}) > 2
    assert min(s["hit"] for s in py["systems"]) > 0
