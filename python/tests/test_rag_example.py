"""End-to-end test of examples/rag/rag.py with the hashing embedder (numpy only, no torch).

The default corpus (the repository's docs) is evaluated for the shape of its table only: its
figures move with every edit to the docs. Retrieval quality is asserted on a small fixed
corpus where each question has exactly one answering passage.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "rag" / "rag.py"
MODES = ["vector", "bm25", "hybrid", "hybrid + source filter"]


# Runs rag.py with torch and sentence-transformers made unimportable, to prove the hash
# embedder path needs neither.
BOOT = (
    "import runpy, sys; sys.modules['torch'] = None; sys.modules['sentence_transformers'] = None;"
    " sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run(*args, cwd):
    p = subprocess.run(
        [sys.executable, "-c", BOOT, str(SCRIPT), *args, "--embedder", "hash"],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, f"rag.py {args} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def rag():
    spec = importlib.util.spec_from_file_location("rag_example", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rag")
    out = run("eval", "--db", str(tmp / "db"), "--json", str(tmp / "eval.json"), cwd=tmp)
    return tmp, out, json.loads((tmp / "eval.json").read_text())


def test_eval_table_has_every_mode_for_both_chunkings(evaluated):
    _, stdout, res = evaluated
    rows = {(r["chunking"], r["mode"]): r for r in res["table"]}
    assert set(rows) == {(c, m) for c in ("fixed", "headings") for m in MODES}
    for r in rows.values():
        assert 0 <= r["hit@1"] <= r["hit@3"] <= r["hit@5"] <= 1
        assert 0 <= r["mrr@10"] <= 1
    # The aligned text table is printed too.
    for m in MODES:
        assert m in stdout
    assert "hit@5" in stdout and "MRR@10" in stdout
    assert res["embedder"] == "hash"
    assert len(res["questions"]) >= 15


def test_eval_through_cairndb_eval_agrees_with_the_table(evaluated):
    """rag.py also reports its questions through cairndb.eval (the metrics of `cairn eval`),
    for BM25, vector and every fusion; the engine's default fusion gives the table's hybrid
    row: same MRR@10 and hit@5."""
    _, stdout, res = evaluated
    assert "cairndb.eval" in stdout
    for chunking in ("fixed", "headings"):
        rep = res["cairndb_eval"][chunking]
        systems = {s["system"]: s for s in rep["systems"]}
        assert set(systems) == {"text", "vector", "hybrid-default", "hybrid-rrf60",
                                "hybrid-weighted0.5", "hybrid-dbsf"}
        rows = {r["mode"]: r for r in res["table"] if r["chunking"] == chunking}
        for mode, system in (("bm25", "text"), ("vector", "vector"), ("hybrid", "hybrid-default")):
            assert systems[system]["mrr"] == pytest.approx(rows[mode]["mrr@10"], abs=1e-9), mode
            assert systems[system]["hit@5"] == pytest.approx(rows[mode]["hit@5"], abs=1e-9), mode


# A small fixed corpus with one answer per question, so that retrieval quality can be asserted
# exactly (the default corpus is the repository's live docs, whose figures drift with every
# edit; they are recorded in docs/benchmarks.md instead).
FIXED_CORPUS = {
    "storage.md": """# Storage

## Write-ahead log
Every batch is appended to the write-ahead log and fdatasync'ed before the call returns.
Concurrent writers share one fsync, which is called group commit.

## Segments
A full memtable is sealed into an immutable segment file that is memory-mapped read-only.
Each block carries a crc32c checksum that is verified before use.
""",
    "search.md": """# Search

## Graph
The HNSW graph links each node to at most sixteen neighbours on upper levels and thirty-two
on level zero. The candidate list size ef trades recall for latency.

## Keywords
BM25 scores keyword matches with the parameters k1 and b; Lucene's defaults are used.
Reciprocal rank fusion merges the keyword list with the vector list.
""",
    "garden.md": """# Garden

## Tomatoes
Tomatoes need six hours of sun and deep watering twice a week in July.

## Compost
Compost heaps turn leaves and coffee grounds into humus within a season.
""",
    # Distractors: they share words with the questions but answer none of them.
    "operations.md": """# Operations

## Logs
The server log rotates daily and old log files are compressed before the call to archive them.

## Backups
Copy the database directory while no process holds it open, then verify the copy.
""",
    "kitchen.md": """# Kitchen

## Tomato soup
Roast the tomatoes with garlic for forty minutes in the sun-warm kitchen, then blend.

## Coffee
Grind the beans just before brewing; the used grounds go to the garden.
""",
    "graphs.md": """# Graph theory

## Degree
The degree of a node counts its neighbours; a regular graph gives every node the same degree
on every level of detail.
""",
}
FIXED_QUESTIONS = [
    ("How is the write-ahead log made durable before the call returns?", "fdatasync'ed before the call returns", "storage.md"),
    ("What checksum protects each segment block?", "crc32c checksum", "storage.md"),
    ("How many neighbours does a node get on level zero of the HNSW graph?", "thirty-two", "search.md"),
    ("Which parameters does BM25 use for keyword scoring?", "parameters k1 and b", "search.md"),
    ("How much sun do tomatoes need?", "six hours of sun", "garden.md"),
    ("What turns coffee grounds into humus?", "Compost heaps turn leaves", "garden.md"),
]


@pytest.fixture(scope="module")
def fixed_eval(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rag-fixed")
    corpus = tmp / "corpus"
    corpus.mkdir()
    for name, text in FIXED_CORPUS.items():
        (corpus / name).write_text(text)
    questions = [
        {"question": q, "answer_contains": a, "source": src, "kind": "keyword"}
        for q, a, src in FIXED_QUESTIONS
    ]
    (tmp / "questions.json").write_text(json.dumps(questions))
    run("eval", "--corpus", str(corpus), "--questions", str(tmp / "questions.json"),
        "--json", str(tmp / "eval.json"), cwd=tmp)
    return json.loads((tmp / "eval.json").read_text())


def test_eval_on_a_fixed_corpus_finds_every_answer(fixed_eval):
    rows = {(r["chunking"], r["mode"]): r for r in fixed_eval["table"]}
    for chunking in ("fixed", "headings"):
        # Each question shares its distinctive words with exactly one passage: BM25 ranks it
        # first; fusing in the (weaker) hash-vector leg keeps it in the top 3; restricting to
        # the right file keeps it too.
        assert rows[(chunking, "bm25")]["hit@1"] == 1.0, rows[(chunking, "bm25")]
        assert rows[(chunking, "bm25")]["mrr@10"] == 1.0
        assert rows[(chunking, "hybrid")]["hit@3"] == 1.0, rows[(chunking, "hybrid")]
        assert rows[(chunking, "hybrid + source filter")]["hit@3"] == 1.0
        assert rows[(chunking, "vector")]["hit@5"] >= 0.5, rows[(chunking, "vector")]


def test_default_corpus_leaves_out_the_examples_own_results(rag):
    text = "intro\n\n## RAG example (examples/rag)\n\nhit@5 table\n\n## Next\n\nkept\n"
    assert rag.without_own_results(text) == "intro\n\n## Next\n\nkept\n"
    assert rag.without_own_results("a\n## RAG example (examples/rag)\nb\n") == "a\n"
    bench = next(d for d in rag.load_corpus(None) if d.name == "benchmarks.md")
    assert rag.OWN_RESULTS not in bench.text and "## Machine and conditions" in bench.text


def test_every_answer_phrase_is_in_some_chunk(rag):
    docs = rag.load_corpus(None)
    questions = rag.load_questions(SCRIPT.parent / "questions.json")
    for q in questions:  # each phrase occurs once in the whole corpus, in its source
        counts = {d.name: rag.norm_ws(d.text).count(rag.norm_ws(q["answer_contains"])) for d in docs}
        assert {n: c for n, c in counts.items() if c} == {q["source"]: 1}, q["question"]
    for chunking in ("fixed", "headings"):
        chunks = rag.chunk_corpus(docs, chunking)
        for q in questions:
            holders = [c for c in chunks if rag.relevant(c.text, q["answer_contains"])]
            assert holders, (chunking, q["question"])
            assert {c.source for c in holders} == {q["source"]}, (chunking, q["question"])


@pytest.mark.parametrize("mode", ["hybrid", "vector", "bm25"])
def test_ask_with_filter_returns_only_that_source(evaluated, mode):
    tmp, _, _ = evaluated
    out = run(
        "ask", "How do I write a filter on a field with spaces in its name?",
        "--db", str(tmp / "db"), "--mode", mode, "--k", "8",
        "--filter", 'source = "filters.md"', "--json", "-", cwd=tmp,
    )
    res = json.loads(out)
    hits = res["hits"]
    assert len(hits) == 8
    assert {h["source"] for h in hits} == {"filters.md"}
    assert [h["rank"] for h in hits] == list(range(1, 9))
    for h in hits:
        assert isinstance(h["chunk"], int) and h["text"]
        if mode == "hybrid":
            assert h["vector_rank"] is not None or h["text_rank"] is not None
        else:
            assert h["vector_rank"] is None and h["text_rank"] is None


def test_ask_prints_ranked_chunks_and_reuses_the_database(evaluated):
    tmp, _, _ = evaluated
    out = run("ask", "What is the default ef_construction?", "--db", str(tmp / "db"), cwd=tmp)
    assert "reusing collection" in out
    assert " 1. " in out and "vector #" in out and "bm25 #" in out
    # Which chunk answers is BM25's to find here: the CI's hash embedder gives the vector leg
    # (0.6 of the default fusion) no meaning, so the hybrid top five depends on the docs' text.
    out = run("ask", "What is the default ef_construction?", "--db", str(tmp / "db"),
              "--mode", "bm25", cwd=tmp)
    assert "reusing collection" in out
    assert "defaults 16 and 200" in out  # the answering chunk is among the five shown


def test_ask_without_db_uses_a_temporary_one(tmp_path):
    out = run("ask", "crc32c checksum", "--mode", "bm25", "--chunking", "fixed", cwd=tmp_path)
    assert "bm25 search for 'crc32c checksum'" in out
    assert list(tmp_path.iterdir()) == []  # nothing left in the working directory


def test_chunkers(rag):
    text = (
        "intro words here\n"
        "# Title\n\nfirst section text\n\n"
        "```sh\n# not a heading\n```\n"
        "## Sub\n\n" + " ".join(f"w{i}" for i in range(250)) + "\n"
        "### Empty\n"
        "#### Deeper\n\nlast words\n"
    )
    doc = rag.Doc("t.md", text)
    chunks = rag.chunk_headings(doc)
    sections = [c.section for c in chunks]
    assert sections[0] == ""  # the text before the first heading
    assert "Title" in sections and "# not a heading" not in " ".join(sections)
    assert "Title > Sub > Empty" not in sections  # a heading line alone is not a chunk
    assert sections[-1] == "Title > Sub > Empty > Deeper"
    sub = [c for c in chunks if c.section == "Title > Sub"]
    size = rag.budget(doc, rag.headings(text), rag.approx_pieces)
    # The longest header, "t.md: Title > Sub > Empty > Deeper", counts 11 pieces ("t.md:" 4).
    assert size == rag.WINDOW_PIECES - 2 - 11
    assert len(sub) == 2  # 252 words of one piece each ("w17"; "##" counts 2) cut in two
    for c in sub:  # each window, with its header, fits the model's window
        assert sum(map(rag.approx_pieces, rag.embed_text(c).split())) <= rag.WINDOW_PIECES - 2
    assert rag.embed_text(sub[0]).startswith("t.md: Title > Sub\n## Sub")
    # Consecutive windows overlap by OVERLAP_FRACTION of a window's words.
    n = int(len(sub[0].text.split()) * rag.OVERLAP_FRACTION)
    assert sub[0].text.split()[-n:] == sub[1].text.split()[:n]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    fixed = rag.chunk_fixed(doc)
    words = text.split()
    assert fixed[0].text.split()[0] == words[0] and fixed[-1].text.split()[-1] == words[-1]
    assert all(sum(map(rag.approx_pieces, rag.embed_text(c).split())) <= rag.WINDOW_PIECES - 2
               for c in fixed)
    assert fixed[1].section == "Title > Sub"  # the heading in force where the chunk starts


def test_hash_embedder_is_deterministic_and_normalized(rag):
    e = rag.HashEmbedder()
    a = e.encode(["write-ahead log fsync", "", "write-ahead log fsync"])
    assert a.shape == (3, 384) and a.dtype.name == "float32"
    assert (a[0] == a[2]).all()
    assert abs(float((a * a).sum(axis=1)[0]) - 1) < 1e-5
    assert a[1].any()  # never a zero vector (cosine collections reject those)
