"""The engine's log records reach Python's `logging` (loggers under `cairndb`)."""

import logging

import numpy as np

import cairndb


def test_engine_logs_reach_python_logging(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="cairndb")
    db = cairndb.open(str(tmp_path / "db"))
    col = db.create_collection("logged", dim=4, metric="l2")
    rng = np.random.default_rng(0)
    for b in range(3):
        col.upsert(ids=list(range(b * 50, b * 50 + 50)), vectors=rng.random((50, 4), dtype=np.float32))
        col.flush()
    col.compact()
    db.close()
    records = [r for r in caplog.records if r.name.startswith("cairndb")]
    messages = [r.getMessage() for r in records]
    assert any("opened" in m for m in messages), messages
    assert any(
        r.levelno == logging.INFO and "logged: compacted 3 segments" in r.getMessage() for r in records
    ), messages
    assert any(r.levelno == logging.DEBUG and "sealed a memtable" in r.getMessage() for r in records), messages
