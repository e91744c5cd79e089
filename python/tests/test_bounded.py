"""Bounded inputs and resources (issue 13, findings 3, 9 and 10), through the binding.

The deep-filter cases run in a child process: if the binding overflowed its stack the child
would die of a signal, and the test fails instead of killing pytest."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cairndb

MAX_DEPTH = 64


def run_child(code, tmp_path, timeout=300):
    """Runs `code` in a fresh interpreter (with `db_path` defined); returns its stdout."""
    script = f"db_path = {str(tmp_path / 'db')!r}\n" + textwrap.dedent(code)
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"child exited with {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


DEEP_FILTERS = """
import cairndb, numpy as np

def nested_and(n):
    f = {"a": 1}
    for _ in range(n):
        f = {"$and": [f]}
    return f

def nested_not(n):
    f = {"a": 1}
    for _ in range(n):
        f = {"$not": f}
    return f

db = cairndb.open(db_path)
col = db.create_collection("c", dim=2)
col.upsert([1, 2], np.array([[1, 0], [0, 1]], dtype=np.float32), payloads=[{"a": 1}, {"a": 2}])
"""


@pytest.mark.parametrize(
    "build, n",
    [("nested_and", 5_000), ("nested_not", 30_000), ("nested_and", 65), ("nested_not", 65)],
)
@pytest.mark.parametrize("call", ["search", "search_batch"])
def test_deep_dict_filters_raise_a_clear_error(tmp_path, build, n, call):
    out = run_child(
        DEEP_FILTERS
        + f"""
f = {build}({n})
try:
    if {call!r} == "search":
        col.search(vector=[1, 0], filter=f, k=2)
    else:
        col.search_batch(np.eye(2, dtype=np.float32), k=2, filter=f, threads=2)
    print("NO ERROR")
except ValueError as e:
    print(type(e).__name__, e)
""",
        tmp_path,
    )
    assert out.startswith("InvalidInputError filter nested too deeply"), out
    assert f"the limit is {MAX_DEPTH}" in out, out


def test_filters_at_the_limit_work(tmp_path):
    out = run_child(
        DEEP_FILTERS
        + f"""
print([h.id for h in col.search(vector=[1, 0], filter=nested_and({MAX_DEPTH}), k=2)])
print([h.id for h in col.search(vector=[1, 0], filter=nested_not({MAX_DEPTH}), k=2)])
print([h.id for h in col.search(vector=[1, 0], filter="NOT " * {MAX_DEPTH} + "a = 1", k=2)])
try:
    col.search(vector=[1, 0], filter="NOT " * {MAX_DEPTH + 1} + "a = 1", k=2)
except cairndb.InvalidInputError as e:
    print(e)
""",
        tmp_path,
    )
    lines = out.splitlines()
    assert lines[0] == "[1]"
    assert lines[1] == "[1]"  # an even number of NOTs
    assert lines[2] == "[1]"
    assert lines[3].startswith("filter nested too deeply"), out


def test_search_batch_threads_are_capped_at_the_cores(tmp_path):
    """threads=10000 used to start 10,000 OS threads: now at most the available cores,
    with the same results as one thread."""
    out = run_child(
        """
import os, threading, time
import numpy as np
import cairndb

rng = np.random.default_rng(0)
x = rng.standard_normal((2000, 32)).astype(np.float32)
q = rng.standard_normal((3000, 32)).astype(np.float32)
db = cairndb.open(db_path)
col = db.create_collection("c", dim=32)
col.upsert(list(range(len(x))), x)

def count():
    return len(os.listdir("/proc/self/task"))

base = count()
peak = [base]
done = threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], count())
        time.sleep(0.001)
w = threading.Thread(target=watch)
w.start()
ids, scores = col.search_batch(q, k=10, exact=True, threads=10_000)
done.set()
w.join()
one_ids, one_scores = col.search_batch(q, k=10, exact=True, threads=1)
assert (ids == one_ids).all()
assert np.array_equal(scores, one_scores)
print(base, peak[0], len(os.sched_getaffinity(0)))
""",
        tmp_path,
        timeout=600,
    )
    base, peak, cores = map(int, out.split())
    # The watcher itself, the pool's threads (at most the cores) and a little slack.
    assert peak - base <= 1 + cores + 2, out


def test_search_batch_threads_zero_is_refused(tmp_path):
    db = cairndb.open(tmp_path / "db")
    col = db.create_collection("c", dim=2)
    col.upsert([1], np.array([[1, 0]], dtype=np.float32))
    with pytest.raises(cairndb.InvalidInputError, match="threads must be at least 1"):
        col.search_batch(np.eye(2, dtype=np.float32), threads=0)
    db.close()


def test_huge_and_tiny_vectors(tmp_path):
    db = cairndb.open(tmp_path / "db")
    dot = db.create_collection("dot", dim=2, metric="dot")
    with pytest.raises(cairndb.InvalidInputError, match="above 1e18"):
        dot.upsert([1], np.array([[3e38, -3e38]], dtype=np.float32))
    with pytest.raises(ValueError, match="query vector has norm"):
        dot.search(vector=[3e38, 3e38])
    cos = db.create_collection("cos", dim=2)
    cos.upsert([1, 2], np.array([[1e-40, 0], [0, 1e-30]], dtype=np.float32))
    assert [h.id for h in cos.search(vector=[1e-38, 0], k=1)] == [1]
    with pytest.raises(cairndb.InvalidInputError, match="zero vector"):
        cos.upsert([3], np.zeros((1, 2), dtype=np.float32))
    db.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_proc_is_readable():
    assert len(os.listdir("/proc/self/task")) >= 1
