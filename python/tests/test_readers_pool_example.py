"""examples/readers_pool/readers_pool.py runs: one writer process (the script) and a pool of
read-only reader processes, started with spawn and with forkserver. The script exits 1 if a
reader misses a batch the writer had acknowledged, or still finds a deleted document; it also
shows a write in a reader raising ReadOnlyError. Small sizes, and a timeout on the run."""

import multiprocessing
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "readers_pool" / "readers_pool.py"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_readers_pool_example_runs(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    db = tmp_path / "db"
    args = ["--readers", "2", "--batches", "3", "--batch-size", "40", "--checks", "5"]
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--db", str(db), "--start-method", method, *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert sum(bool(re.match(r"batch +\d+: 40 docs upserted", ln)) for ln in lines) == 3
    assert all("5/5 found" in ln and "0 still seen" in ln for ln in lines if ln.startswith("batch"))
    assert any(ln.startswith("ReadOnlyError: ") for ln in lines), p.stdout
    assert lines[-1] == (
        f"2 readers ({method}), 48 searches, 0 missed; the collection holds 111 docs "
        "(started with 0)"
    )
    # Run again on the same database: the writer carries on from what it holds.
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--db", str(db), "--start-method", method, *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1].endswith("holds 222 docs (started with 111)")
