"""Read-only handles (issue 14): `cairndb.open(path, read_only=True)` reads a database while one
other process writes to it, follows that writer, and refuses every write with `ReadOnlyError`;
`lock_timeout=` lets a second writer wait for the first to close.

The multi-process tests run `multiprocessing` pools (spawn and forkserver) of read-only workers
while this process holds the writer handle and keeps writing; every wait has a timeout, so a
hang fails the test instead of stalling the suite."""

import hashlib
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cairndb

TIMEOUT = 120  # seconds, for every wait on another process
DIM = 8
WORKERS = 3


def vectors(ids):
    """A distinct vector per id, the same in every process."""
    return np.stack(
        [np.random.default_rng(i).standard_normal(DIM).astype(np.float32) for i in ids]
    )


def files_state(path):
    """Every file under `path` with its size, mtime and content hash."""
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            p = os.path.join(root, n)
            st = os.stat(p)
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns, digest)
    return out


def write_calls(db, col):
    """Every write on a database and a collection handle, by name."""
    return {
        "upsert": lambda: col.upsert([10_000], vectors([10_000])),
        "delete": lambda: col.delete([1]),
        "flush": lambda: col.flush(),
        "compact": lambda: col.compact(),
        "create_collection": lambda: db.create_collection("other", dim=DIM),
        "get_or_create_collection (new)": lambda: db.get_or_create_collection("other", dim=DIM),
        "drop_collection": lambda: db.drop_collection("docs"),
        "sync": lambda: db.sync(),
    }


def attempt_writes(db, col):
    """Runs each write call; the name of what each raised ("ok" if it returned)."""
    out = {}
    for name, call in write_calls(db, col).items():
        try:
            call()
            out[name] = "ok"
        except cairndb.ReadOnlyError as e:
            out[name] = "ReadOnlyError"
            assert "read-only" in str(e), str(e)
        except BaseException as e:  # noqa: BLE001 - reported, not hidden
            out[name] = repr(e)
    return out


# -- in one process -------------------------------------------------------------------------


def test_read_only_handle_follows_the_writer_and_refuses_writes(tmp_path):
    path = str(tmp_path / "db")
    with cairndb.open(path) as db:
        col = db.create_collection("docs", dim=DIM)
        col.upsert([1, 2, 3], vectors([1, 2, 3]), texts=["a", "b", "c"])
        ro = cairndb.open(path, read_only=True)
        assert ro.read_only and not db.read_only
        rcol = ro.collection("docs")
        assert len(rcol) == 3
        # A batch acknowledged before a call starts is seen by that call.
        col.upsert([4], vectors([4]), payloads=[{"k": 4}])
        assert rcol.get(4).payload == {"k": 4}
        assert rcol.search(vector=vectors([4])[0], k=1)[0].id == 4
        col.delete([1])
        assert rcol.get(1) is None and len(rcol) == 3
        # A seal and a compaction (the writer stores a new manifest) are followed too.
        col.flush()
        col.compact()
        col.upsert([5], vectors([5]))
        assert sorted(r.id for r in rcol.get([1, 2, 3, 4, 5]) if r) == [2, 3, 4, 5]
        # A collection the writer creates later appears.
        db.create_collection("late", dim=2).upsert([7], [[1.0, 0.0]])
        assert ro.collections() == ["docs", "late"]
        assert ro.collection("late").get(7) is not None

        tried = attempt_writes(ro, rcol)
        assert tried == {name: "ReadOnlyError" for name in tried}, tried
        # Nothing the read-only handle refused reached the database.
        assert db.collections() == ["docs", "late"]
        assert col.get(10_000) is None and col.get(2) is not None
        ro.close()
        assert ro.closed


def test_read_only_error_is_a_cairn_error():
    assert issubclass(cairndb.ReadOnlyError, cairndb.CairnError)
    assert issubclass(cairndb.ReadOnlyError, PermissionError)
    assert "ReadOnlyError" in cairndb.__all__


def test_read_only_session_writes_no_byte(tmp_path):
    path = str(tmp_path / "db")
    with cairndb.open(path) as db:
        col = db.create_collection("docs", dim=DIM)
        col.upsert(list(range(50)), vectors(range(50)), texts=[f"t{i}" for i in range(50)])
        col.flush()
        col.upsert([100], vectors([100]))
    before = files_state(path)
    with cairndb.open(path, read_only=True) as ro:
        rcol = ro.collection("docs")
        assert len(rcol) == 51
        rcol.search(vector=vectors([3])[0], text="t3", k=5)
        ro.verify()
        attempt_writes(ro, rcol)
    assert files_state(path) == before


def test_read_only_open_of_a_missing_database_creates_nothing(tmp_path):
    path = tmp_path / "nothing"
    with pytest.raises(cairndb.StorageError, match="no Cairn database"):
        cairndb.open(str(path), read_only=True)
    assert not path.exists()
    path.mkdir()
    with pytest.raises(cairndb.StorageError, match="no Cairn database"):
        cairndb.open(str(path), read_only=True)
    assert list(path.iterdir()) == []


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_lock_timeout_is_invalid_input(tmp_path, bad):
    with pytest.raises(cairndb.InvalidInputError, match="lock_timeout"):
        cairndb.open(str(tmp_path / "db"), lock_timeout=bad)
    assert not (tmp_path / "db").exists()


def test_huge_lock_timeout_opens(tmp_path):
    # 1e19 s is beyond the clock's range: before the fix the deadline (now + timeout)
    # overflowed and the open panicked.
    with cairndb.open(str(tmp_path / "db"), lock_timeout=1e19) as db:
        assert not db.read_only


# -- another process as the writer ------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, cairndb
    db = cairndb.open(sys.argv[1])
    db.get_or_create_collection("docs", dim=2).upsert([1], [[1.0, 0.0]])
    print("holding", flush=True)
    sys.stdin.readline()          # until the test says so
    db.collection("docs").upsert([2], [[0.0, 1.0]])
    db.close()
    print("closed", flush=True)
    """
)


def read_line(proc):
    """The next line of `proc`'s stdout, or a failure after TIMEOUT."""
    import queue
    import threading

    q = queue.Queue()
    threading.Thread(target=lambda: q.put(proc.stdout.readline()), daemon=True).start()
    try:
        return q.get(timeout=TIMEOUT).strip()
    except queue.Empty:
        proc.kill()
        pytest.fail(f"no line from the subprocess in {TIMEOUT} s")


def test_second_writer_process_is_locked_out_with_pid_and_hint(tmp_path):
    path = str(tmp_path / "db")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc) == "holding"
        with pytest.raises(cairndb.LockedError) as e:
            cairndb.open(path)
        msg = str(e.value)
        assert f"process {proc.pid}" in msg, msg
        assert "read_only=True" in msg, msg
        # The hint works: a read-only open succeeds while the writer holds it.
        with cairndb.open(path, read_only=True) as ro:
            assert ro.collection("docs").get(1) is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert read_line(proc) == "closed"
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)


WAITER = textwrap.dedent(
    """
    import logging, sys, cairndb
    # The engine logs (INFO) when it starts waiting for the lock: the test closes the first
    # writer only after that line, so the wait is exercised every time.
    logging.basicConfig(stream=sys.stdout, format="%(message)s")
    logging.getLogger("cairndb").setLevel(logging.INFO)
    try:
        cairndb.open(sys.argv[1])
    except cairndb.LockedError:
        print("locked", flush=True)
    db = cairndb.open(sys.argv[1], lock_timeout=float(sys.argv[2]))
    col = db.collection("docs")
    col.upsert([3], [[0.5, 0.5]])
    print("took over", sorted(r.id for r in col.get([1, 2, 3]) if r), flush=True)
    db.close()
    """
)


def test_lock_timeout_takes_over_when_the_writer_closes(tmp_path):
    path = str(tmp_path / "db")
    db = cairndb.open(path)
    db.create_collection("docs", dim=2).upsert([1], [[1.0, 0.0]])
    proc = subprocess.Popen(
        [sys.executable, "-c", WAITER, path, str(TIMEOUT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc) == "locked"
        while True:
            line = read_line(proc)
            if "waiting up to" in line:
                break
            assert "took over" not in line, line  # must not open while we hold the lock
        assert f"pid {os.getpid()}" in line, line
        db.collection("docs").upsert([2], [[0.0, 1.0]])
        db.close()
        while "took over" not in (line := read_line(proc)):
            pass
        assert line == "took over [1, 2, 3]"
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        db.close()
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    with cairndb.open(path) as db:
        assert len(db.collection("docs")) == 3


def test_lock_timeout_expires_with_locked_error(tmp_path):
    path = str(tmp_path / "db")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc) == "holding"
        with pytest.raises(cairndb.LockedError, match=f"process {proc.pid}"):
            cairndb.open(path, lock_timeout=0.2)
    finally:
        proc.stdin.close()
        proc.wait(timeout=TIMEOUT)


KILLED_WRITER = textwrap.dedent(
    """
    import sys, numpy as np, cairndb
    db = cairndb.open(sys.argv[1])
    col = db.get_or_create_collection("docs", dim=4)
    b = 0
    while True:  # until killed
        ids = list(range(b * 5, b * 5 + 5))
        col.upsert(ids, np.ones((5, 4), dtype=np.float32), payloads=[{"b": b}] * 5)
        print("acked", b, flush=True)
        b += 1
        if b % 7 == 0:
            col.delete([ids[0]])
            print("deleted", ids[0], flush=True)
    """
)


def test_readers_survive_a_killed_writer_and_follow_the_next_one(tmp_path):
    path = str(tmp_path / "db")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, path], stdout=subprocess.PIPE, text=True
    )
    acked, deleted, ro = set(), set(), None
    try:
        while len(acked) < 20:
            word, n = read_line(proc).split()
            (acked if word == "acked" else deleted).add(int(n))
            if ro is None:
                ro = cairndb.open(path, read_only=True)  # opened while the writer runs
        proc.kill()  # SIGKILL, in the middle of its writing
        assert proc.wait(timeout=TIMEOUT) != 0
        # What it reported before it died (still in the pipe) was acknowledged too.
        for line in proc.stdout.read().splitlines():
            word, n = line.split()
            (acked if word == "acked" else deleted).add(int(n))
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)

    def check(col):
        rows = {r.id: r.payload["b"] for r in col.get(list(range(5 * (max(acked) + 2)))) if r}
        batches = {}
        for i, b in rows.items():
            batches.setdefault(b, set()).add(i)
        for b, ids in batches.items():  # whole batches only (less what was deleted)
            assert ids | {i for i in range(b * 5, b * 5 + 5) if i in deleted} == set(
                range(b * 5, b * 5 + 5)
            ) or ids == set(range(b * 5 + 1, b * 5 + 5)), (b, ids)
        assert acked <= set(batches), acked - set(batches)  # every acknowledged batch
        assert not deleted & set(rows), deleted & set(rows)
        return rows

    rcol = ro.collection("docs")
    seen = check(rcol)  # the dead writer's durable state
    # A new writer recovers while the reader is live; the reader follows it.
    with cairndb.open(path, lock_timeout=TIMEOUT) as db:
        col = db.collection("docs")
        # The recovered state is the reader's or a later one: a delete the dead writer made
        # durable but had not reported (killed between its fsync and its BEACON rewrite, or
        # before printing) may remove one id the reader still showed — only the first id of a
        # batch b with (b + 1) % 7 == 0, the ids the writer deletes.
        missing = set(seen) - {r.id for r in col.get(list(seen)) if r}
        deletable = {i for i in seen if i % 5 == 0 and (i // 5 + 1) % 7 == 0}
        assert len(missing) <= 1 and missing <= deletable, missing
        col.upsert([10**9], np.ones((1, 4), dtype=np.float32), payloads=[{"b": -1}])
        assert rcol.get(10**9) is not None
        after = check(rcol)
        # The recovered log may hold a little more than the reader had shown: frames the dead
        # writer wrote but had not yet made durable (and so never reported) survive a kill.
        probe = list(range(5 * (max(acked) + 2)))
        assert {r.id for r in col.get(probe) if r} == set(after)
        assert len(rcol) == len(col) == len(after) + 1
    ro.close()


def test_reader_sees_a_dropped_collection_go(tmp_path):
    path = str(tmp_path / "db")
    with cairndb.open(path) as db:
        db.create_collection("gone", dim=2).upsert([1], [[1.0, 0.0]])
        ro = cairndb.open(path, read_only=True)
        rcol = ro.collection("gone")
        assert len(rcol) == 1
        db.drop_collection("gone")
        assert ro.collections() == []
        with pytest.raises(cairndb.ClosedError):
            rcol.search(vector=[1.0, 0.0])
        with pytest.raises(cairndb.CollectionNotFoundError):
            ro.collection("gone")
        ro.close()


def test_buffered_writer_is_seen_once_synced(tmp_path):
    path = str(tmp_path / "db")
    with cairndb.open(path, durability="buffered") as db:
        col = db.create_collection("docs", dim=2)
        db.sync()
        ro = cairndb.open(path, read_only=True)
        col.upsert([1, 2], [[1.0, 0.0], [0.0, 1.0]])
        db.sync()  # durable now: a read-only call that starts after it sees the batch
        assert sorted(r.id for r in ro.collection("docs").get([1, 2]) if r) == [1, 2]
        ro.close()


# -- multiprocessing pools of read-only workers ----------------------------------------------

_DB = None
_BARRIER = None


def _worker_init(path, barrier):
    global _DB, _BARRIER
    _DB = cairndb.open(path, read_only=True)
    _BARRIER = barrier


def _worker_view(query):
    """What this worker sees, once every worker holds a task (so each answers one): for each
    id, whether `get` finds it and whether a search for its vector returns it first."""
    _BARRIER.wait(timeout=TIMEOUT)
    col = _DB.collection("docs")
    ids = list(query)
    found = [r is not None for r in col.get(ids)]
    top = [
        bool((h := col.search(vector=v, k=1)) and h[0].id == i)
        for i, v in zip(ids, vectors(ids))
    ]
    return os.getpid(), len(col), dict(zip(ids, zip(found, top)))


def _worker_writes(_):
    _BARRIER.wait(timeout=TIMEOUT)
    out = attempt_writes(_DB, _DB.collection("docs"))
    # A writer open in a worker is refused too: the parent holds the lock.
    try:
        cairndb.open(_DB.path)
        out["open as writer"] = "ok"
    except cairndb.LockedError as e:
        out["open as writer"] = "LockedError"
        out["locked message"] = str(e)
    return out


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pool_of_read_only_workers_follows_the_parent_writer(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    ctx = multiprocessing.get_context(method)
    path = str(tmp_path / "db")
    db = cairndb.open(path)
    col = db.create_collection("docs", dim=DIM)
    col.upsert([0], vectors([0]))
    barrier = ctx.Barrier(WORKERS)
    pool = ctx.Pool(WORKERS, initializer=_worker_init, initargs=(path, barrier))

    def ask(query):
        # One task per worker: each waits at the barrier until all three hold one.
        res = pool.map_async(_worker_view, [query] * WORKERS, chunksize=1).get(timeout=TIMEOUT)
        assert len({pid for pid, _, _ in res}) == WORKERS
        return [(n, seen) for _, n, seen in res]

    try:
        live = {0}
        next_id = 1
        for round_ in range(6):
            batch = list(range(next_id, next_id + 20))
            next_id += 20
            col.upsert(batch, vectors(batch), texts=[f"r{round_}"] * len(batch))
            live |= set(batch)
            # Acknowledged before the tasks started, so every worker sees the whole batch.
            for n, seen in ask(batch):
                assert n == len(live)
                assert all(seen[i] == (True, True) for i in batch), seen
            gone = batch[::3]
            assert col.delete(gone) == len(gone)
            live -= set(gone)
            for n, seen in ask(gone + batch[1:3]):
                assert n == len(live)
                assert all(seen[i] == (False, False) for i in gone), seen
                assert all(seen[i] == (True, True) for i in batch[1:3]), seen
            if round_ == 2:
                col.flush()  # a seal: the workers reload from the new manifest
            if round_ == 4:
                col.compact()
        # Writes in the workers are refused, and change nothing.
        for out in pool.map_async(_worker_writes, range(WORKERS), chunksize=1).get(TIMEOUT):
            msg = out.pop("locked message")
            assert out == {name: "ReadOnlyError" for name in write_calls(None, None)} | {
                "open as writer": "LockedError"
            }, out
            assert f"process {os.getpid()}" in msg and "read_only=True" in msg, msg
        assert len(col) == len(live) and db.collections() == ["docs"]
    finally:
        pool.terminate()
        pool.join()
        db.close()
