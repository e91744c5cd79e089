"""One writer process and a pool of reader processes on one Cairn database.

The pattern (issue 14; `docs/python.md`, "Processes"):

- One process opens the database for writing: `cairndb.open(path)`. It holds the lock; a
  second writer raises `LockedError` (or waits, with `lock_timeout=`).
- Each reader process opens it once, read-only, in the pool's *initializer*:
  `cairndb.open(path, read_only=True)`. A read-only handle takes no lock and writes nothing;
  before each call it catches up with the writer, so a search that starts after the writer's
  `upsert` (or `delete`) returned sees that batch, whole. Opening costs a manifest read and a
  log replay: do it once per worker, not per task. Handles are not passed between processes.
- Start the workers with "spawn" or "forkserver", never "fork" from a process that already has
  the database open: a forked child's inherited handles raise `ForkedProcessError`.
- Writes in a reader raise `ReadOnlyError`: send them to the writer (here, the parent).

Here the parent ingests batches of synthetic documents; after each batch it asks the readers
to find every document of the batch (by vector and by a word only that document has) and
checks that all of them do, and that deleted documents are gone. It exits with status 1 if a
reader missed anything.

    python readers_pool.py                        # a temporary database, 3 readers
    python readers_pool.py --db my-db --readers 4 --batches 20 --batch-size 500
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import tempfile
import time

import numpy as np

import cairndb

COLLECTION = "docs"
TIMEOUT = 300  # seconds: no wait on the pool lasts longer

# -- the reader side: runs in the pool's worker processes ------------------------------------

_db: cairndb.Database | None = None


def open_reader(path: str) -> None:
    """Pool initializer: each worker opens the database once, read-only."""
    global _db
    _db = cairndb.open(path, read_only=True)


def find(task: tuple[int, int]) -> tuple[int, int, int, int]:
    """Searches for document `doc_id` by its vector and by its own word: (worker pid, doc id,
    whether the vector search found it, whether the text search found it)."""
    doc_id, dim = task
    assert _db is not None
    col = _db.collection(COLLECTION)
    # Exact: this checks visibility, not the graph's recall.
    by_vector = col.search(vector=embed(doc_id, dim), k=5, exact=True)
    by_text = col.search(text=word(doc_id), k=5)
    return (
        os.getpid(),
        doc_id,
        int(any(h.id == doc_id for h in by_vector)),
        int(any(h.id == doc_id for h in by_text)),
    )


def try_to_write(_: int) -> str:
    """What a write in a reader does: raises `ReadOnlyError`."""
    assert _db is not None
    try:
        _db.collection(COLLECTION).delete([0])
        return "the write went through"
    except cairndb.ReadOnlyError as e:
        return f"ReadOnlyError: {e}"


# -- shared by both sides ------------------------------------------------------------------


def embed(doc_id: int, dim: int) -> np.ndarray:
    """A stand-in embedding: a fixed random unit vector per document."""
    v = np.random.default_rng(doc_id).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def word(doc_id: int) -> str:
    return f"w{doc_id:x}z"


# -- the writer side: the parent ------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", help="database directory (default: a temporary one)")
    ap.add_argument("--readers", type=int, default=3)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--checks", type=int, default=30, help="documents looked up per batch")
    ap.add_argument("--start-method", choices=["spawn", "forkserver"], default="spawn")
    args = ap.parse_args(argv)

    tmp = None
    path = args.db
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="cairn-readers-")
        path = tmp.name
    ctx = multiprocessing.get_context(args.start_method)
    rng = np.random.default_rng(7)
    misses = 0
    searches = 0
    try:
        with cairndb.open(path) as db:
            col = db.get_or_create_collection(COLLECTION, dim=args.dim)
            # The collection exists before the readers start; they would see it appear anyway.
            with ctx.Pool(args.readers, initializer=open_reader, initargs=(path,)) as pool:
                first = len(col)
                # A fresh range of ids for each run, so that a run on an existing database
                # adds documents rather than replacing those of an earlier run.
                next_id = secrets.randbits(40) << 20
                for b in range(args.batches):
                    ids = list(range(next_id, next_id + args.batch_size))
                    next_id += args.batch_size
                    t0 = time.perf_counter()
                    col.upsert(
                        ids,
                        np.stack([embed(i, args.dim) for i in ids]),
                        texts=[f"document {i} says {word(i)}" for i in ids],
                        payloads=[{"batch": b} for _ in ids],
                    )
                    ingest_ms = (time.perf_counter() - t0) * 1e3
                    # The upsert returned: every search the readers start from now on sees it.
                    picked = rng.choice(ids, size=min(args.checks, len(ids)), replace=False)
                    res = pool.map_async(
                        find, [(int(i), args.dim) for i in picked], chunksize=1
                    ).get(TIMEOUT)
                    found = sum(v and t for _, _, v, t in res)
                    misses += len(res) - found
                    searches += 2 * len(res)
                    # Delete a few: from now on no reader returns them.
                    gone = [int(i) for i in picked[:3]]
                    col.delete(gone)
                    back = pool.map_async(
                        find, [(i, args.dim) for i in gone], chunksize=1
                    ).get(TIMEOUT)
                    misses += sum(v + t for _, _, v, t in back)
                    searches += 2 * len(back)
                    print(
                        f"batch {b:3}: {len(ids)} docs upserted in {ingest_ms:6.1f} ms; "
                        f"{found}/{len(res)} found by {len({r[0] for r in res})} readers; "
                        f"{len(gone)} deleted, {sum(v + t for _, _, v, t in back)} still seen"
                    )
                    if b == args.batches // 2:
                        col.flush()  # a seal, which readers follow like any other write
                print(pool.map_async(try_to_write, [0]).get(TIMEOUT)[0])
            print(
                f"{args.readers} readers ({args.start_method}), {searches} searches, "
                f"{misses} missed; the collection holds {len(col)} docs (started with {first})"
            )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
