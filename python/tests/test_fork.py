"""A forked child must not use its parent's handles (issue 13, finding 2): before the fix, child
and parent both "acknowledged" upserts numbered from the same log position, and on reopen one
side's frames were cut as a torn tail (400 acknowledged upserts came back as 2). Now every call
in the child raises `ForkedProcessError` and writes nothing; the parent's writes all survive.

Each scenario runs in its own interpreter with a timeout, so a hang (a lock the child inherited
held) fails the test instead of stalling the suite."""

import json
import subprocess
import sys
import textwrap

import pytest

import cairndb

TIMEOUT = 120

COMMON = """
import json, os, sys, threading, time, warnings
import numpy as np
import cairndb
warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process

path = sys.argv[1]
vec = [[0.1, 0.2, 0.3, 0.4]]

def child_attempts(col, db, base):
    # 200 upserts and one of every other call: each must raise ForkedProcessError.
    out = {}
    for i in range(200):
        try:
            col.upsert([base + i], vec)
            r = "acknowledged"
        except cairndb.ForkedProcessError as e:
            r = "ForkedProcessError"
            out["message"] = str(e)
        except BaseException as e:
            r = repr(e)
        out[r] = out.get(r, 0) + 1
    calls = {
        "search": lambda: col.search(vector=vec[0], k=3),
        "get": lambda: col.get(1),
        "delete": lambda: col.delete([1]),
        "len": lambda: len(col),
        "flush": lambda: col.flush(),
        "collections": lambda: db.collections(),
        "create_collection": lambda: db.create_collection("x", dim=4),
        "sync": lambda: db.sync(),
    }
    for name, f in calls.items():
        try:
            f()
            out[name] = "worked"
        except cairndb.ForkedProcessError:
            out[name] = "ForkedProcessError"
        except BaseException as e:
            out[name] = repr(e)
    db.close()  # does nothing in a child: the handles are the parent's
    return out

def parent_writes(col):
    for i in range(200):
        col.upsert([i], vec)

def check_reopen():
    db = cairndb.open(path)
    col = db.collection("c")
    ids = sorted(i for i in list(range(200)) + list(range(10_000, 10_200)) if col.get(i) is not None)
    n = len(col)
    db.close()
    return {"len": n, "ids_ok": ids == list(range(200))}
"""

FORK = COMMON + """
db = cairndb.open(path)
col = db.create_collection("c", dim=4)
result_file = path + ".child.json"
pid = os.fork()
if pid == 0:
    out = child_attempts(col, db, 10_000)
    with open(result_file, "w") as f:
        json.dump(out, f)
    if sys.argv[2] == "os_exit":
        os._exit(0)
    # A normal exit: the child's copies of the handles are dropped by the interpreter.
    del col, db
    sys.exit(0)
parent_writes(col)
_, status = os.waitpid(pid, 0)
db.close()
child = json.load(open(result_file))
print(json.dumps({"status": status, "child": child, "parent": os.getpid(), "child_pid": pid,
                  "reopen": check_reopen()}))
"""

MULTIPROCESSING = COMMON + """
import multiprocessing

def child(col, db, q):
    q.put(child_attempts(col, db, 10_000))

if __name__ == "__main__":
    db = cairndb.open(path)
    col = db.create_collection("c", dim=4)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(col, db, q))
    p.start()
    parent_writes(col)
    out = q.get(timeout=60)
    p.join(60)
    db.close()
    print(json.dumps({"status": p.exitcode, "child": out, "parent": os.getpid(),
                      "child_pid": p.pid, "reopen": check_reopen()}))
"""


def run(script, *args):
    try:
        r = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
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


def check(out):
    assert out["status"] == 0, out
    child = out["child"]
    # Every upsert of the child failed with the clear error; nothing else happened.
    assert child.get("ForkedProcessError") == 200, child
    assert "acknowledged" not in child, child
    msg = child["message"]
    assert f"opened by process {out['parent']}" in msg, msg
    assert f"process {out['child_pid']} is a fork" in msg, msg
    for name in ["search", "get", "delete", "len", "flush", "collections", "create_collection", "sync"]:
        assert child[name] == "ForkedProcessError", (name, child[name])
    # After reopen: exactly the parent's 200 records.
    assert out["reopen"] == {"len": 200, "ids_ok": True}, out["reopen"]


@pytest.mark.parametrize("exit_mode", ["os_exit", "normal"])
def test_forked_child_fails_and_the_parent_keeps_its_writes(tmp_path, exit_mode):
    check(run(FORK, tmp_path / "db", exit_mode))


def test_multiprocessing_fork_worker_fails_and_the_parent_keeps_its_writes(tmp_path):
    check(run(MULTIPROCESSING, tmp_path / "db"))


def test_forked_process_error_is_a_cairn_error():
    assert issubclass(cairndb.ForkedProcessError, cairndb.CairnError)
    assert issubclass(cairndb.ForkedProcessError, RuntimeError)
