#!/usr/bin/env python3
"""A fresh process opens a database and answers queries: with the segment's int8 codes in a
mapped `codes` file (this build), against the same segment without one (as written before
codes files existed: the int8 copy is built on the heap after the first search).

    python3 scripts/codes_open.py --cairn target/release/cairn --n 300000 --dim 128 --rounds 5

Builds (once, under --work) a collection of `n × dim` clustered float32 vectors with
`cairn import` of a .npy file and one `cairn compact`, copies the database, and in the copy
removes the segment's `codes` file and its manifest entry (rewriting the manifest's checksums)
— exactly a database from before codes files. Then, per round and interleaved, each database
is opened by a fresh `cairn search --queries` over `q` queries (ef 64), timed as a whole process,
with its peak anonymous and file-backed resident memory (`/proc/PID/status`, sampled every
millisecond). Needs numpy.
"""

import argparse
import json
import os
import shutil
import subprocess
import time

import numpy as np


def crc32c(data: bytes) -> int:
    table = crc32c.table
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


crc32c.table = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    crc32c.table.append(c)


def strip_codes(db):
    """Makes `db` look as written before codes files: no codes entries, no codes files."""
    path = os.path.join(db, "MANIFEST")
    raw = open(path, "rb").read()
    head, body = bytearray(raw[:64]), raw[64:]
    m = json.loads(body)
    for c in m["collections"]:
        for s in c["segments"]:
            if s.pop("codes", None):
                os.remove(os.path.join(db, "collections", c["name"], f"seg-{s['id']:08}", "codes"))
    body = json.dumps(m, indent=2).encode()
    head[24:32] = len(body).to_bytes(8, "little")
    head[32:36] = crc32c(body).to_bytes(4, "little")
    head[60:64] = crc32c(bytes(head[:60])).to_bytes(4, "little")
    open(path, "wb").write(bytes(head) + body)


def status_kib(pid, fields):
    try:
        out = {}
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in fields:
                out[k] = int(v.split()[0])
        return out
    except (OSError, ValueError):
        return {}


def run(cmd):
    """Wall time, and the peak anonymous and file-backed resident KiB (sampled every ms)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    anon = file = 0
    while p.poll() is None:
        st = status_kib(p.pid, ("RssAnon", "RssFile"))
        anon = max(anon, st.get("RssAnon", 0))
        file = max(file, st.get("RssFile", 0))
        time.sleep(0.001)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed: {p.stderr.read()[-2000:]}")
    return wall, anon, file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", default="target/release/cairn")
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--q", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/cairn-bench/codes-open"))
    a = ap.parse_args()
    work = os.path.join(a.work, f"{a.n}x{a.dim}")
    dbs = {"codes file": os.path.join(work, "codes"), "heap copy": os.path.join(work, "heap")}
    queries = os.path.join(work, "q.fvecs")
    if not os.path.exists(os.path.join(work, "done")):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        rng = np.random.default_rng(1)
        centers = rng.normal(size=(256, a.dim)).astype(np.float32)
        x = centers[rng.integers(0, 256, a.n)] + 0.5 * rng.normal(size=(a.n, a.dim)).astype(np.float32)
        np.save(os.path.join(work, "x.npy"), x.astype(np.float32))
        q = centers[rng.integers(0, 256, a.q)] + 0.5 * rng.normal(size=(a.q, a.dim)).astype(np.float32)
        with open(queries, "wb") as f:
            for v in q.astype(np.float32):
                f.write(np.int32(a.dim).tobytes() + v.tobytes())
        db = dbs["codes file"]
        subprocess.run([a.cairn, "-q", "create", db, "c", "--dim", str(a.dim)], check=True)
        subprocess.run([a.cairn, "-q", "import", db, "c", os.path.join(work, "x.npy")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([a.cairn, "-q", "compact", db, "c"], check=True, stdout=subprocess.DEVNULL)
        shutil.copytree(db, dbs["heap copy"])
        strip_codes(dbs["heap copy"])
        open(os.path.join(work, "done"), "w").close()
    res = {k: [] for k in dbs}
    for _ in range(a.rounds):
        for name, db in dbs.items():
            res[name].append(run([a.cairn, "-q", "search", db, "c", "--queries", queries,
                                  "--k", "10", "--ef", "64"]))
    print(f"{a.n} x {a.dim}, {a.q} queries per process, {a.rounds} rounds; load {os.getloadavg()}")
    print("| segment | wall min (s) | wall median (s) | peak anon RSS (MiB) | peak file RSS (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in res.items():
        w = sorted(x[0] for x in r)
        an = sorted(x[1] for x in r)
        fi = sorted(x[2] for x in r)
        mid = len(r) // 2
        print(f"| {name} | {w[0]:.3f} | {w[mid]:.3f} | {an[mid] / 1024:.1f} | {fi[mid] / 1024:.1f} |")


if __name__ == "__main__":
    main()
