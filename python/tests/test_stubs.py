"""The type stubs (`cairndb/_cairndb.pyi`) match the compiled module: mypy's stubtest compares
every class, method and signature in the stub with the extension at run time."""

import subprocess
import sys


def test_stubs_match_the_extension():
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "cairndb._cairndb"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_package_type_checks_with_its_stubs(tmp_path):
    use = tmp_path / "use.py"
    use.write_text(
        "import numpy as np\n"
        "import cairndb\n"
        "db = cairndb.open('x')\n"
        "col = db.create_collection('c', dim=3, metric='dot')\n"
        "col.upsert([1], np.zeros((1, 3), dtype=np.float32), texts=['a'], payloads=[{'k': 1}])\n"
        "hits: list[cairndb.Hit] = col.search(vector=[1.0, 0.0, 0.0], filter={'k': 1}, k=3)\n"
        "rec = col.get(1)\n"
        "hit_id = hits[0].id\n"
        "assert isinstance(hit_id, int)\n"
        "n: int = len(col) + hit_id\n"
        "strs = db.get_or_create_collection('s', dim=3, id_type='str')\n"
        "strs.upsert(['doc-1#0'], [[1.0, 0.0, 0.0]])\n"
        "one = strs.get('doc-1#0')\n"
        "some = strs.get(['doc-1#0', 'x'])\n"
        "page = strs.get(limit=10, after='doc-1#0')\n"
        "gone: int = strs.delete(['doc-1#0'])\n"
        "kind: str = strs.id_type\n"
        "res = col.search(vector=[1.0, 0.0, 0.0], k=3, mode='vector')\n"
        "first: cairndb.Hit = res[0]\n"
        "frame = res.to_pandas()\n"
        "table = res.to_arrow()\n"
        "col.upsert(table)\n"
        "col.upsert(table, columns={'id': 'id', 'fields': ['a']})\n"
        "emb = db.collection('c', embedding=lambda texts: np.zeros((len(texts), 3)))\n"
        "emb.upsert([2], texts=['b'])\n"
        "reader = col.scan(batch_size=10).to_arrow()\n"
        "everything = col.to_arrow(filter={'k': 1})\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(use)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
