"""`close()` while other threads are mid-call, and re-rankers that re-enter the collection
(issue 13, findings 4 and 5). Before the fix, `close()` deadlocked for good when one thread was
in a search (its handle's lock held, the GIL released), `close` waited for the lock, and a third
thread waited for the lock holding the GIL; a re-ranker that closed the database hung on its
own lock.

Every scenario runs in its own interpreter with a timeout, and joins its threads with a
timeout: a hang fails the test."""

import json
import subprocess
import sys
import textwrap

import pytest

TIMEOUT = 120

COMMON = """
import json, os, signal, sys, threading, time
import numpy as np
import cairndb

path = sys.argv[1]
JOIN = 30  # seconds a thread may take to end before the scenario counts as hung

def join_all(threads):
    for t in threads:
        t.join(JOIN)
        assert not t.is_alive(), f"thread {t.name} did not end: hung"

def open_collection():
    db = cairndb.open(path)
    col = db.create_collection("c", dim=4, metric="l2")
    rng = np.random.default_rng(0)
    col.upsert(list(range(100)), rng.random((100, 4), dtype=np.float32))
    return db, col
"""

CLOSE_WHILE_BUSY = COMMON + """
db, col = open_collection()
acked = set(range(100))
acked_lock = threading.Lock()
errors = []
in_rerank = threading.Event()

def slow_rerank(text, hits):
    in_rerank.set()
    time.sleep(0.02)
    return [h.score for h in hits]

def loop(name, step):
    def run():
        i = 0
        while True:
            try:
                step(i)
            except cairndb.ClosedError:
                return
            except BaseException as e:
                errors.append(f"{name}: {e!r}")
                return
            i += 1
    return threading.Thread(target=run, name=name)

def write(base):
    def step(i):
        col.upsert([base + i], [[1.0, 2.0, 3.0, 4.0]])
        with acked_lock:
            acked.add(base + i)
    return step

threads = [
    loop("search-1", lambda i: col.search(vector=[0.5] * 4, k=5, rerank=slow_rerank)),
    loop("search-2", lambda i: col.search(vector=[0.2] * 4, k=5, rerank=slow_rerank)),
    loop("reader-1", lambda i: (len(col), col.get(i % 100), db.collections())),
    loop("reader-2", lambda i: (col.get(i % 100), len(col))),
    loop("writer-1", write(1000)),
    loop("writer-2", write(100_000)),
]
for t in threads:
    t.start()
assert in_rerank.wait(JOIN)
db.close()
join_all(threads)
assert not errors, errors
assert db.closed
# Later calls fail the same way.
for call in [
    lambda: len(col),
    lambda: col.get(1),
    lambda: col.upsert([7], [[1.0, 1.0, 1.0, 1.0]]),
    lambda: col.search(vector=[0.0] * 4),
    lambda: db.collections(),
    lambda: db.create_collection("d", dim=4),
]:
    try:
        call()
    except cairndb.ClosedError:
        continue
    raise AssertionError("a call after close() worked")
# close() released the lock at once, and every acknowledged write is there.
db2 = cairndb.open(path)
c2 = db2.collection("c")
missing = [i for i in sorted(acked) if c2.get(i) is None]
assert not missing, missing[:10]
print(json.dumps({"acked": len(acked), "len": len(c2)}))
"""

RERANKER_READS = COMMON + """
db, col = open_collection()
stop = threading.Event()
errors = []

def writer():
    i = 0
    while not stop.is_set():
        try:
            col.upsert([1000 + i], [[1.0, 2.0, 3.0, 4.0]])
            col.delete([1000 + i - 5])
        except BaseException as e:
            errors.append(repr(e))
            return
        i += 1

seen = []
def rerank(text, hits):
    n = len(col)
    r = col.get(hits[0].id)
    inner = col.search(vector=[0.3] * 4, k=3)
    seen.append((n, r is not None, len(inner)))
    return [h.score for h in hits]

w = threading.Thread(target=writer)
w.start()
searchers = [
    threading.Thread(target=lambda: [col.search(vector=[0.5] * 4, k=5, rerank=rerank) for _ in range(20)])
    for _ in range(3)
]
for t in searchers:
    t.start()
join_all(searchers)
stop.set()
join_all([w])
assert not errors, errors
assert len(seen) == 60 and all(ok and k == 3 for _, ok, k in seen), seen
db.close()
print(json.dumps({"searches": len(seen)}))
"""

RERANKER_WRITES = COMMON + """
db, col = open_collection()
calls = []
def rerank(text, hits):
    k = len(calls)
    col.upsert([5000 + k], [[1.0, 1.0, 1.0, 1.0]])
    col.delete([k])
    calls.append(k)
    return [h.score for h in hits]

hits = col.search(vector=[0.5] * 4, k=5, rerank=rerank)
assert len(hits) == 5 and calls == [0]
assert col.get(5000) is not None and col.get(0) is None
# From several threads at once, with a writer outside too.
def many():
    for _ in range(10):
        col.search(vector=[0.5] * 4, k=5, rerank=rerank)
ts = [threading.Thread(target=many) for _ in range(3)]
ts.append(threading.Thread(target=lambda: col.upsert(list(range(200, 400)), np.ones((200, 4), dtype=np.float32))))
for t in ts:
    t.start()
join_all(ts)
assert len(calls) == 31
assert all(col.get(5000 + k) is not None for k in calls)
db.close()
print(json.dumps({"calls": len(calls)}))
"""

RERANKER_CLOSES = COMMON + """
db, col = open_collection()
raised = []
def rerank(text, hits):
    try:
        db.close()
    except RuntimeError as e:
        raised.append(str(e))
        raise
    return [h.score for h in hits]

try:
    col.search(vector=[0.5] * 4, k=5, rerank=rerank)
    raise AssertionError("the search succeeded")
except RuntimeError as e:
    assert "inside a call on this database" in str(e), e
assert raised and not db.closed
# The database still works, and closes normally afterwards.
col.upsert([777], [[1.0, 1.0, 1.0, 1.0]])
assert len(col.search(vector=[0.5] * 4, k=5)) == 5
db.close()
assert db.closed
cairndb.open(path).close()
print(json.dumps({"message": raised[0]}))
"""

CTRL_C_DURING_CLOSE = COMMON + """
db, col = open_collection()
go = threading.Event()
entered = threading.Event()
inner = []
outer = []

def rerank(text, hits):
    entered.set()
    assert go.wait(JOIN)
    try:
        col.get(1)
        inner.append("worked")
    except cairndb.ClosedError:
        inner.append("ClosedError")
    return [h.score for h in hits]

def search():
    try:
        col.search(vector=[0.5] * 4, k=5, rerank=rerank)
        outer.append("worked")
    except cairndb.ClosedError:
        outer.append("ClosedError")

class Interrupted(Exception):
    pass

def on_sigint(signum, frame):
    raise Interrupted()

signal.signal(signal.SIGINT, on_sigint)
t = threading.Thread(target=search)
t.start()
assert entered.wait(JOIN)
stop_kicking = threading.Event()
def kick():
    # Ctrl-C, repeatedly, once close() has begun, until the main thread has seen it.
    while not db.closed:
        time.sleep(0.01)
    while not stop_kicking.wait(0.05):
        os.kill(os.getpid(), signal.SIGINT)
k = threading.Thread(target=kick)
k.start()
interrupted = False
try:
    db.close()  # waits for the search in flight, whose re-ranker waits for `go`
except Interrupted:
    interrupted = True
signal.signal(signal.SIGINT, signal.SIG_IGN)
stop_kicking.set()
join_all([k])
assert interrupted, "close() returned while a call was in flight"
assert db.closed
go.set()
join_all([t])
db.close()  # returns once nothing is in flight
# The call in flight finished; what its re-ranker tried after close() was refused.
assert inner == ["ClosedError"] and outer == ["worked"], (inner, outer)
cairndb.open(path).close()
print(json.dumps({"inner": inner, "outer": outer}))
"""


def run(script, tmp_path):
    try:
        r = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), str(tmp_path / "db")],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        r = e
    if isinstance(r, subprocess.TimeoutExpired):
        pytest.fail(f"the scenario hung for {TIMEOUT} s:\n{r.stdout}\n{r.stderr}")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_close_while_threads_search_read_and_write(tmp_path):
    out = run(CLOSE_WHILE_BUSY, tmp_path)
    assert out["acked"] >= 100


def test_a_reranker_reads_the_collection_while_another_thread_writes(tmp_path):
    assert run(RERANKER_READS, tmp_path) == {"searches": 60}


def test_a_reranker_that_writes_works(tmp_path):
    assert run(RERANKER_WRITES, tmp_path) == {"calls": 31}


def test_a_reranker_that_closes_gets_a_clear_error(tmp_path):
    out = run(RERANKER_CLOSES, tmp_path)
    assert "close the database after it returns" in out["message"]


def test_ctrl_c_interrupts_a_close_waiting_for_a_call(tmp_path):
    assert run(CTRL_C_DURING_CLOSE, tmp_path) == {"inner": ["ClosedError"], "outer": ["worked"]}
