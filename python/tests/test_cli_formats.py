"""Parquet files as pyarrow and polars write them, imported with the real `cairn import`, and
`cairn export --format parquet` read back by polars and DuckDB (issue 16, "What must be
shown").

Each file holds one vector column type: Arrow `FixedSizeList<float32>`, `List<float32>`,
`List<float64>`, `LargeList<float32>` (pyarrow), polars `Array(Float32, dim)` and
`List(Float64)`; each is imported into a fresh database with integer ids and with string
ids, and every record is checked by opening the database from Python: ids, vectors bit for
bit (float32 inputs) or equal to the float32 conversion (float64 inputs), text and payload.

The tests run the `cairn` binary at `$CAIRN_BIN` (scripts/test.sh builds it and sets it).
Without the variable they build it with `cargo build -p cairn-cli`; a `$CAIRN_BIN` that does
not exist, or a build that fails, fails the tests (they are never skipped).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cairndb

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pl = pytest.importorskip("polars")
duckdb = pytest.importorskip("duckdb")

REPO = Path(__file__).resolve().parents[2]
DIM = 5
N = 9


@pytest.fixture(scope="module")
def cairn_bin() -> str:
    path = os.environ.get("CAIRN_BIN")
    if path:
        if not os.access(path, os.X_OK):
            pytest.fail(f"CAIRN_BIN={path} is not an executable file")
        return path
    # Not set (pytest run by hand): build the binary the way scripts/test.sh does.
    try:
        out = subprocess.run(
            ["cargo", "build", "-p", "cairn-cli", "--message-format=json-render-diagnostics"],
            cwd=REPO, capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        pytest.fail("CAIRN_BIN is not set and cargo is not on PATH to build the cairn binary")
    if out.returncode != 0:
        pytest.fail(f"cargo build -p cairn-cli failed:\n{out.stderr[-4000:]}")
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "cairn":
            return msg["executable"]
    pytest.fail("cargo build -p cairn-cli built no `cairn` executable")


def cairn(bin_: str, *args: str) -> str:
    r = subprocess.run([bin_, *args], capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"cairn {' '.join(args)}: {r.stderr}"
    assert "panicked" not in r.stderr
    return r.stdout


# The data: ids of both kinds, vectors with values a decimal round trip or a float64 detour
# would not keep, text with gaps, and payload columns of every JSON kind.


def ids_of(kind: str) -> list:
    if kind == "int":
        # 0, the largest u64 and values above 2**63 (a signed column could not hold them).
        return [0, 2**64 - 1, 2**63 + 5, 7, 1_000_000_007, 3, 42, 2**40, 11][:N]
    return [f"doc/{i} \"é\" 🦀 #{N - i}" for i in range(N)]


def vectors32() -> np.ndarray:
    x = np.random.default_rng(16).standard_normal((N, DIM)).astype(np.float32)
    x[0] = [1e-45, -0.0, 3.3e17, -1.1754944e-38, 1.0 / 3.0]  # subnormal, -0, large, min normal
    x[1] *= 1e-30
    return x


def vectors64() -> np.ndarray:
    # Float64 values with more precision than float32, so that the conversion rounds.
    x = np.random.default_rng(17).standard_normal((N, DIM))
    x[0] = [0.1, -1e-40, 1e17 / 3, 1.0 + 2.0**-30, -(2.0**-149)]
    return x


def texts() -> list:
    return [None if i % 3 == 1 else f"text {i} ünïcode 🦀" for i in range(N)]


def payload_columns() -> dict:
    return {
        "lang": ["en" if i % 2 else "de" for i in range(N)],
        "year": [None if i == 4 else 1990 + i for i in range(N)],
        "score": [i / 4 - 1 for i in range(N)],
        "flag": [i % 2 == 0 for i in range(N)],
        "tags": [[f"t{j}" for j in range(i % 3)] for i in range(N)],
        "meta": [{"a": i, "b": f"x{i}"} for i in range(N)],
    }


def expected_payload(i: int) -> dict:
    p = {k: v[i] for k, v in payload_columns().items()}
    if p["year"] is None:
        del p["year"]  # a null cell leaves the key out
    return p


def pyarrow_vectors(kind: str, x: np.ndarray):
    n, dim = x.shape
    if kind == "fixed_f32":
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
    if kind == "list_f32":
        return pa.array(list(x), type=pa.list_(pa.float32()))
    if kind == "list_f64":
        return pa.array(list(x), type=pa.list_(pa.float64()))
    if kind == "large_f32":
        return pa.array(list(x), type=pa.large_list(pa.float32()))
    raise AssertionError(kind)


def write_pyarrow(path: Path, id_kind: str, vkind: str, x: np.ndarray) -> None:
    ids = pa.array(ids_of(id_kind), type=pa.uint64() if id_kind == "int" else pa.string())
    cols = {"id": ids, "vector": pyarrow_vectors(vkind, x), "text": pa.array(texts(), pa.string())}
    cols.update(payload_columns())
    cols["year"] = pa.array(cols["year"], pa.int64())
    table = pa.table(cols)
    assert table.schema.field("vector").type == pyarrow_vectors(vkind, x).type
    pq.write_table(table, path)


def write_polars(path: Path, id_kind: str, vkind: str, x: np.ndarray) -> None:
    id_dtype = pl.UInt64 if id_kind == "int" else pl.String
    if vkind == "polars_array_f32":
        vec = pl.Series("vector", x, dtype=pl.Array(pl.Float32, DIM))
    elif vkind == "polars_list_f64":
        vec = pl.Series("vector", [list(r) for r in x], dtype=pl.List(pl.Float64))
    else:
        raise AssertionError(vkind)
    df = pl.DataFrame(
        [
            pl.Series("id", ids_of(id_kind), dtype=id_dtype),
            vec,
            pl.Series("text", texts(), dtype=pl.String),
            *(pl.Series(k, v) for k, v in payload_columns().items()),
        ]
    )
    assert df.schema["vector"] == vec.dtype
    df.write_parquet(path)


# (writer, vector column type, float64 input)
CASES = [
    ("pyarrow", "fixed_f32", False),
    ("pyarrow", "list_f32", False),
    ("pyarrow", "list_f64", True),
    ("pyarrow", "large_f32", False),
    ("polars", "polars_array_f32", False),
    ("polars", "polars_list_f64", True),
]


@pytest.mark.parametrize("id_kind", ["int", "str"])
@pytest.mark.parametrize("writer,vkind,is_f64", CASES, ids=[c[1] for c in CASES])
def test_parquet_from_pyarrow_and_polars_imports_every_record(
    cairn_bin, tmp_path, id_kind, writer, vkind, is_f64
):
    x = vectors64() if is_f64 else vectors32()
    f = tmp_path / f"{vkind}.parquet"
    (write_pyarrow if writer == "pyarrow" else write_polars)(f, id_kind, vkind, x)
    db_path = str(tmp_path / "db")
    cairn(cairn_bin, "create", db_path, "c", "--dim", str(DIM), "--metric", "l2",
          "--id-type", id_kind)
    out = cairn(cairn_bin, "import", db_path, "c", str(f))
    assert out.split() == ["committed", str(N)]

    want = x.astype(np.float32)  # the float32 conversion (a no-op for float32 inputs)
    with cairndb.open(db_path, read_only=True) as db:
        col = db.collection("c")
        assert col.id_type == id_kind
        assert len(col) == N
        got = col.get(ids_of(id_kind))
        for i, (id_, r) in enumerate(zip(ids_of(id_kind), got)):
            assert r is not None, id_
            assert r.id == id_
            assert r.vector.dtype == np.float32
            assert r.vector.view(np.uint32).tolist() == want[i].view(np.uint32).tolist(), (vkind, i)
            assert r.text == texts()[i]
            assert r.payload == expected_payload(i), (vkind, i)
        # Nothing else is there.
        assert sorted(map(str, (r.id for r in col.scan()))) == sorted(map(str, ids_of(id_kind)))
    if is_f64:
        # The conversion rounded something: these files are not float32 data in disguise.
        assert not np.array_equal(want.astype(np.float64), x)


def test_pyarrow_parquet_without_the_arrow_schema(cairn_bin, tmp_path):
    """A FixedSizeList column written without the Arrow schema in the Parquet metadata (as
    non-Arrow writers do) reads back as a plain list, and imports the same."""
    x = vectors32()
    table = pa.table({"id": pa.array(ids_of("int"), pa.uint64()),
                      "vector": pyarrow_vectors("fixed_f32", x)})
    f = tmp_path / "plain.parquet"
    pq.write_table(table, f, store_schema=False)
    assert pq.read_schema(f).field("vector").type == pa.list_(pa.field("element", pa.float32()))
    db_path = str(tmp_path / "db")
    cairn(cairn_bin, "create", db_path, "c", "--dim", str(DIM), "--metric", "l2")
    cairn(cairn_bin, "import", db_path, "c", str(f))
    with cairndb.open(db_path, read_only=True) as db:
        got = db.collection("c").get(ids_of("int"))
        for i, r in enumerate(got):
            assert r.vector.view(np.uint32).tolist() == x[i].view(np.uint32).tolist()


@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_parquet_export_reads_back_in_polars_and_duckdb(cairn_bin, tmp_path, id_kind):
    """`cairn export --format parquet`: columns id, vector (FixedSizeList<Float32>), text,
    payload (JSON text); polars and DuckDB read it directly, every value as written."""
    x = vectors32()
    ids = ids_of(id_kind)
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i, id_ in enumerate(ids):
            rec = {"id": id_, "vector": [float(v) for v in x[i]]}
            if texts()[i] is not None:
                rec["text"] = texts()[i]
            if i != 5:
                rec["payload"] = expected_payload(i)
            f.write(json.dumps(rec) + "\n")
    db_path = str(tmp_path / "db")
    # l2: the vectors are stored as given (cosine would store them normalized).
    cairn(cairn_bin, "create", db_path, "c", "--dim", str(DIM), "--metric", "l2",
          "--id-type", id_kind)
    cairn(cairn_bin, "import", db_path, "c", str(src))
    out = tmp_path / "out.parquet"
    cairn(cairn_bin, "export", db_path, "c", "--format", "parquet", "--output", str(out))

    def check_rows(rows):
        """rows: (id, vector as a list of floats, text, payload JSON text) in any order."""
        by_id = {r[0]: r for r in rows}
        assert len(rows) == N and sorted(by_id, key=str) == sorted(ids, key=str)
        for i, id_ in enumerate(ids):
            _, vec, text, payload = by_id[id_]
            assert np.array(vec, dtype=np.float32).view(np.uint32).tolist() == \
                x[i].view(np.uint32).tolist()
            assert text == texts()[i]
            assert (None if payload is None else json.loads(payload)) == \
                (None if i == 5 else expected_payload(i))

    # polars
    df = pl.read_parquet(out)
    assert df.columns == ["id", "vector", "text", "payload"]
    assert df.schema["id"] == (pl.UInt64 if id_kind == "int" else pl.String)
    assert df.schema["vector"] == pl.Array(pl.Float32, DIM)
    assert df.schema["text"] == pl.String and df.schema["payload"] == pl.String
    check_rows(list(df.iter_rows()))
    # The vectors come out as a float32 matrix in one call.
    m = df["vector"].to_numpy()
    assert m.dtype == np.float32 and m.shape == (N, DIM)
    # And the payload with `pl.col("payload").str.json_decode()`, as README.md says.
    years = df.select("id", pl.col("payload").str.json_decode(
        pl.Struct({"year": pl.Int64})).struct.field("year")).rows()
    assert sorted(years, key=lambda r: str(r[0])) == sorted(
        [(ids[i], expected_payload(i).get("year") if i != 5 else None) for i in range(N)],
        key=lambda r: str(r[0]))

    # DuckDB
    con = duckdb.connect()
    rel = con.sql(f"SELECT * FROM read_parquet('{out}')")
    assert rel.columns == ["id", "vector", "text", "payload"]
    types = [str(t) for t in rel.types]
    # DuckDB reads the vector as a FLOAT list: Parquet has no fixed-size list type, and DuckDB
    # does not take it from the Arrow schema stored in the file (polars and pyarrow do).
    assert types == [("UBIGINT" if id_kind == "int" else "VARCHAR"), "FLOAT[]",
                     "VARCHAR", "VARCHAR"], types
    check_rows(rel.fetchall())
    # Every list has the dimension, so the cast to DuckDB's fixed-size array holds.
    sims = con.sql(
        f"SELECT id, array_inner_product(vector::FLOAT[{DIM}], vector::FLOAT[{DIM}]) "
        f"FROM read_parquet('{out}')").fetchall()
    assert len(sims) == N
    # The payload is JSON text that DuckDB reads as README.md says: `payload->>'lang'`.
    langs = con.sql(f"SELECT id, payload->>'lang' FROM read_parquet('{out}')").fetchall()
    assert sorted(langs, key=lambda r: str(r[0])) == sorted(
        [(ids[i], None if i == 5 else expected_payload(i)["lang"]) for i in range(N)],
        key=lambda r: str(r[0]))
    con.close()


def run_on_a_terminal(args: list, timeout: float = 300.0) -> tuple[int, str, str]:
    """Runs a command with its standard error on a pseudo-terminal of 120 columns (as a
    user at a shell has it): exit code, standard output, and what the terminal showed."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                         env=env)
    os.close(slave)
    shown = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            shown += chunk
        elif p.poll() is not None:
            break
    else:
        p.kill()
        pytest.fail(f"{args} did not finish in {timeout} s")
    out = p.stdout.read().decode()
    p.wait()
    os.close(master)
    return p.returncode, out, shown.decode(errors="replace")


def test_import_shows_a_progress_bar_with_rows_per_second(cairn_bin, tmp_path):
    """On a terminal `cairn import` draws a progress bar: rows of the total and rows/s when
    the file says how many rows it holds (Parquet), bytes and records/s when not (JSONL)."""
    import re

    n, dim = 20_000, 8
    x = np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)
    f = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": pa.array(np.arange(n, dtype=np.uint64)),
                             "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)}),
                   f, row_group_size=1000)
    db_path = str(tmp_path / "db")
    code, out, shown = run_on_a_terminal(
        [cairn_bin, "import", db_path, "c", str(f), "--batch", "100"])
    assert code == 0, shown
    assert out.splitlines()[-1] == f"committed {n}"
    rates = [int(r) for r in re.findall(r"(\d+) rows/s", shown)]
    assert rates and max(rates) > 0, shown
    assert re.search(r"[\d,]+/20,000 rows", shown), shown
    assert "imported 20,000 records" in shown

    j = tmp_path / "rows.jsonl"
    with open(j, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": i, "vector": [float(v) for v in x[i]]}) + "\n")
    code, out, shown = run_on_a_terminal(
        [cairn_bin, "import", db_path, "j", str(j), "--batch", "100"])
    assert code == 0, shown
    assert re.search(r"[\d,]+ records \([\d,]+ records/s\)", shown), shown

    # Not on a terminal: no bar, only the lines a script reads.
    r = subprocess.run([cairn_bin, "import", db_path, "c", str(f), "--batch", "10000"],
                       capture_output=True, text=True, check=True)
    assert "rows/s" not in r.stderr and r.stdout.split() == ["committed", "10000", "committed",
                                                             "20000"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_written_by_numpy_imports(cairn_bin, tmp_path, dtype):
    """`np.save` output (the hand-written .npy reader against numpy's own writer): rows
    numbered from 0, float32 bit for bit, float64 as its float32 conversion; a Fortran-order
    or integer array is refused by name."""
    x = (vectors64() if dtype == np.float64 else vectors32()).astype(dtype)
    f = tmp_path / "x.npy"
    np.save(f, x)
    db_path = str(tmp_path / "db")
    cairn(cairn_bin, "create", db_path, "c", "--dim", str(DIM), "--metric", "l2")
    cairn(cairn_bin, "import", db_path, "c", str(f))
    want = x.astype(np.float32)
    with cairndb.open(db_path, read_only=True) as db:
        got = db.collection("c").get(list(range(N)))
        for i, r in enumerate(got):
            assert r.vector.view(np.uint32).tolist() == want[i].view(np.uint32).tolist(), i
    cairn(cairn_bin, "create", db_path, "d", "--dim", str(DIM))
    for bad, why in [(np.asfortranarray(x), "Fortran order"), (np.ones((N, DIM), np.int32), "'<i4'")]:
        np.save(f, bad)
        r = subprocess.run([cairn_bin, "import", db_path, "d", str(f)],
                           capture_output=True, text=True)
        assert r.returncode != 0 and why in r.stderr and "panicked" not in r.stderr, r.stderr
