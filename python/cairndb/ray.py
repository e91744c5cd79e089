"""Cairn collections sharded over a Ray cluster (`pip install "./python[ray]"`).

>>> import ray, numpy as np
>>> from cairndb.ray import ShardedCollection
>>> ray.init()                                                            # doctest: +SKIP
>>> sc = ShardedCollection.create("/data/cairn", "docs", dim=384, num_shards=4)  # doctest: +SKIP
>>> sc.upsert([1, 2], np.random.rand(2, 384), texts=["a", "b"])          # doctest: +SKIP
>>> sc.write_dataset(ray.data.read_parquet("s3://bucket/embedded/"))     # doctest: +SKIP
>>> sc.search(vector=q, text="error budget", k=10, filter={"lang": "en"})  # doctest: +SKIP

A sharded collection is `num_shards` Ray actors, each owning one Cairn database in
`<root>/<name>/shard-<i>` on the local disk of its node. A record goes to the shard
`stable_hash(id) % num_shards` (`shard_of`; never Python's `hash()`, which changes between
processes). `<root>/<name>/cairn-sharded.json` (written by the driver) holds the number of
shards, the collection's configuration and the node each shard lives on, so `open` finds the
collection again in a later session; every shard directory holds its own copy of the shard's
identity (`cairn-shard.json`), checked when the shard opens.

Search fans out to every shard and merges the top k (`cairndb.merge_hits`: ties to the lower
id key, as one collection ranks). Filters run on each shard. A text or hybrid query runs in
two phases: every shard's BM25 statistics for the query (`Collection.text_stats`) are added
up, then each shard scores with the sum — so BM25 scores, and exact and hybrid results, equal
those of one database holding every record. A hybrid query runs each leg on every shard, merges
each leg, and fuses them with `cairndb.fuse_hits`, exactly as one database fuses.

Faults: the actors are started with `max_restarts` (default: unlimited) and pinned to their
node; a restarted actor reopens its shard (the log replays every acknowledged batch). A call
to a shard that is restarting is retried until `timeout` seconds have passed, then
`ShardUnavailableError` (retryable) names the shard. `upsert` is idempotent, so a batch whose
acknowledgement was lost with the actor is simply written again.

See docs/scale-out.md for running it on a real cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

try:
    import ray
    import ray.exceptions
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        'cairndb.ray needs Ray: pip install "cairndb[ray]" (or pip install "ray[data]")'
    ) from e

import cairndb
from ._errors import CairnError, CollectionExistsError, CollectionNotFoundError, InvalidInputError

__all__ = ["ShardedCollection", "ShardUnavailableError", "shard_of"]

META_FILE = "cairn-sharded.json"
SHARD_META_FILE = "cairn-shard.json"
FORMAT = 1
ROUTER = "splitmix64-blake2b8-v1"
_MASK = (1 << 64) - 1
_log = logging.getLogger("cairndb.ray")


class ShardUnavailableError(CairnError, ConnectionError):
    """A shard's actor did not answer in time: it is restarting (after a crash, or its node
    was lost) or overloaded. Retryable: the same call succeeds once the shard is back. The
    message names the shard and its directory."""

    def __init__(self, message: str, shard: int):
        super().__init__(message)
        self.shard = shard


# --------------------------------------------------------------------------------------------
# Routing


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer over uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _str_hash(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def shard_of(ids: Union[Sequence[Any], np.ndarray], num_shards: int) -> np.ndarray:
    """The shard of each id: `splitmix64(id) % num_shards` for int ids, the first 8 bytes
    (little-endian) of BLAKE2b of the UTF-8 id `% num_shards` for str ids. Stable across
    processes, machines and versions (it decides where records live: it never changes)."""
    if num_shards < 1:
        raise InvalidInputError("num_shards must be at least 1")
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        if ids.dtype.kind == "i" and ids.size and ids.min() < 0:
            raise InvalidInputError("int ids must be from 0 to 2**64 - 1")
        return (_splitmix64(ids.astype(np.uint64)) % np.uint64(num_shards)).astype(np.int64)
    out = np.empty(len(ids), dtype=np.int64)
    for i, x in enumerate(ids):
        if isinstance(x, (bool, np.bool_)):
            raise InvalidInputError(f"an id must be an int or a str, not {type(x).__name__}")
        if isinstance(x, (int, np.integer)):
            x = int(x)
            if not 0 <= x <= _MASK:
                raise InvalidInputError(f"int id {x} is not from 0 to 2**64 - 1")
            out[i] = int(_splitmix64(np.array([x], dtype=np.uint64))[0] % np.uint64(num_shards))
        elif isinstance(x, str):
            out[i] = _str_hash(x) % num_shards
        else:
            raise InvalidInputError(f"an id must be an int or a str, not {type(x).__name__}")
    return out


# --------------------------------------------------------------------------------------------
# The shard actor


class _Shard:
    """One shard: a Cairn database in `path` holding the collection `name`. Runs as a Ray
    actor; `__init__` runs again when Ray restarts it, and reopens the database (replaying its
    log)."""

    def __init__(self, path: str, name: str, index: int, num_shards: int, config: dict, create: bool,
                 durability: str, read_only: bool = False):
        if read_only:
            # A read replica: a live read-only handle beside the shard's writer, on its node.
            self.db = cairndb.open(path, read_only=True, create=False)
            self.col = self.db.collection(name)
            self.path = path
            return
        meta_path = os.path.join(path, SHARD_META_FILE)
        me = {"format": FORMAT, "name": name, "shard": index, "num_shards": num_shards}
        if os.path.exists(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                found = json.load(f)
            if {k: found.get(k) for k in me} != me:
                raise CairnError(
                    f"{path} holds shard {found.get('shard')} of {found.get('num_shards')} of "
                    f"{found.get('name')!r}, not shard {index} of {num_shards} of {name!r}"
                )
        elif not create:
            raise CollectionNotFoundError(
                f"shard {index} of {name!r} is missing: no {path} on node "
                f"{ray.get_runtime_context().get_node_id()} (restore it from an export, "
                "see docs/scale-out.md)"
            )
        os.makedirs(path, exist_ok=True)
        # A restarted actor may race the dying process for the lock: wait for it.
        self.db = cairndb.open(path, durability=durability, lock_timeout=60.0)
        if name in self.db.collections():
            self.col = self.db.collection(name)
        else:
            if not create:
                raise CollectionNotFoundError(f"shard {index} of {name!r} in {path} has no collection")
            self.col = self.db.create_collection(
                name,
                config["dim"],
                config["metric"],
                config["id_type"],
                m=config["m"],
                ef_construction=config["ef_construction"],
                stem=config["stem"],
                stop_words=config["stop_words"],
            )
        if not os.path.exists(meta_path):
            tmp = meta_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, meta_path)
        self.path = path

    def ping(self) -> tuple:
        """`(node id, process id)`: where the shard runs."""
        return ray.get_runtime_context().get_node_id(), os.getpid()

    def upsert(self, ids, vectors, texts, payloads) -> int:
        self.col.upsert(ids, vectors, texts, payloads)
        return len(ids)

    def delete(self, ids) -> int:
        return self.col.delete(ids)

    def count(self) -> int:
        return len(self.col)

    def text_stats(self, text: str) -> dict:
        return self.col.text_stats(text)

    def search(self, vector, text, k, filter, exact, ef, text_stats, include_text, include_payload):
        return list(
            self.col.search(
                vector=vector,
                text=text,
                k=k,
                filter=filter,
                exact=exact,
                ef=ef,
                text_stats=text_stats,
                include_text=include_text,
                include_payload=include_payload,
            )
        )

    def legs(self, vector, text, depth, filter, exact, ef, text_stats, include_text, include_payload):
        """Both legs of a hybrid query, each alone, `depth` deep."""
        v = self.search(vector, None, depth, filter, exact, ef, None, include_text, include_payload)
        t = self.search(None, text, depth, filter, exact, ef, text_stats, include_text, include_payload)
        return v, t

    def search_batch(self, queries, k, filter, exact, ef):
        return self.col.search_batch(queries, k, filter, exact=exact, ef=ef)

    def get(self, ids):
        return self.col.get(ids)

    def flush(self) -> None:
        self.col.flush()

    def close(self) -> None:
        self.db.close()

    def drop(self) -> None:
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)


_READS = frozenset({"search", "legs", "text_stats", "search_batch", "count", "get"})

_RETRYABLE = tuple(
    getattr(ray.exceptions, n)
    for n in ("RayActorError", "ActorDiedError", "ActorUnavailableError", "GetTimeoutError")
    if hasattr(ray.exceptions, n)
)


# --------------------------------------------------------------------------------------------
# The handle: what the driver and Ray Data tasks use to reach the shards (picklable)


@dataclass
class _Shards:
    name: str
    root: str
    num_shards: int
    config: dict
    actors: list
    timeout: float = 60.0
    write_timeout: float = 600.0
    # Read replicas of each shard (read-only handles on the shard's node); reads go round
    # robin over the writer and its replicas.
    replicas: list = field(default_factory=list)
    _turn: int = 0

    def reader(self, i: int, method: str):
        if method not in _READS or not self.replicas or not self.replicas[i]:
            return self.actors[i]
        group = [self.actors[i]] + self.replicas[i]
        self._turn += 1
        return group[self._turn % len(group)]

    def shard_dir(self, i: int) -> str:
        return os.path.join(self.root, self.name, f"shard-{i}")

    def call(self, method: str, args_of: dict, timeout: Optional[float] = None) -> dict:
        """Calls `method(*args_of[i])` on each shard `i` given, in parallel, and returns
        `{i: result}`. A shard whose actor died or is restarting is called again until
        `timeout` seconds have passed; then `ShardUnavailableError` names it."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pending = {i: getattr(self.reader(i, method), method).remote(*a) for i, a in args_of.items()}
        out: dict = {}
        last_error: dict = {}
        delay = 0.05
        while pending:
            left = deadline - time.monotonic()
            refs = list(pending.values())
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=max(left, 0.0))
            retry = []
            for i, ref in list(pending.items()):
                if ref not in ready:
                    continue
                try:
                    out[i] = ray.get(ref)
                    del pending[i]
                except _RETRYABLE as e:
                    last_error[i] = e
                    retry.append(i)
                    _log.warning("shard %d of %r: %s failed (%s); calling it again",
                                 i, self.name, method, type(e).__name__)
            if time.monotonic() >= deadline and pending:
                i = min(pending)
                why = last_error.get(i)
                raise ShardUnavailableError(
                    f"shard {i} of {self.name!r} ({self.shard_dir(i)}) did not answer "
                    f"{method} within {timeout:g} s"
                    + (f" (its actor failed: {type(why).__name__})" if why else "")
                    + "; it may be restarting: retry the call",
                    shard=i,
                )
            if retry:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                for i in retry:
                    pending[i] = getattr(self.reader(i, method), method).remote(*args_of[i])
        return out

    # -- writes

    def upsert(self, ids, vectors, texts=None, payloads=None) -> int:
        if isinstance(ids, (int, str)):
            ids, vectors = [ids], [vectors]
            texts = None if texts is None else [texts]
            payloads = None if payloads is None else [payloads]
        if self.config["id_type"] == "int":
            ids = np.asarray(ids)
            if ids.dtype.kind not in "iu":
                raise InvalidInputError(
                    f"{self.name!r} has int ids: ids must be ints, not {ids.dtype}"
                )
            if ids.dtype.kind == "i" and ids.size and ids.min() < 0:
                raise InvalidInputError("int ids must be from 0 to 2**64 - 1")
            ids = ids.astype(np.uint64)
        else:
            ids = list(ids)
        n = len(ids)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise InvalidInputError(
                f"vectors must be a ({n}, {self.config['dim']}) array, not shape {vectors.shape}"
            )
        for what, xs in (("texts", texts), ("payloads", payloads)):
            if xs is not None and len(xs) != n:
                raise InvalidInputError(f"{len(xs)} {what} for {n} ids")
        if n == 0:
            return 0
        where = shard_of(ids, self.num_shards)
        args = {}
        for s in np.unique(where):
            rows = np.flatnonzero(where == s)
            args[int(s)] = (
                ids[rows] if isinstance(ids, np.ndarray) else [ids[r] for r in rows],
                vectors[rows],
                None if texts is None else [texts[r] for r in rows],
                None if payloads is None else [payloads[r] for r in rows],
            )
        self.call("upsert", args, timeout=self.write_timeout)
        return n

    # -- reads

    def text_stats(self, text: str, shards: Iterable[int]) -> dict:
        total = {"documents": 0, "total_len": 0, "df": {}}
        for s in self.call("text_stats", {i: (text,) for i in shards}).values():
            total["documents"] += s["documents"]
            total["total_len"] += s["total_len"]
            for t, n in s["df"].items():
                total["df"][t] = total["df"].get(t, 0) + n
        return total

    def search(self, vector=None, text=None, k=10, filter=None, exact=False, *, ef=None,
               candidates=None, fusion=None, alpha=None, rrf_k=None, include_text=True,
               include_payload=True) -> list:
        if vector is None and text is None:
            raise InvalidInputError("search needs a vector, a text, or both")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise InvalidInputError(f"k must be an int ≥ 0, not {k!r}")
        if vector is not None:
            vector = np.asarray(vector, dtype=np.float32)
        everyone = range(self.num_shards)
        stats = self.text_stats(text, everyone) if text is not None else None
        if vector is None or text is None:
            lists = self.call(
                "search",
                {i: (vector, text, k, filter, exact, ef, stats, include_text, include_payload)
                 for i in everyone},
            )
            return cairndb.merge_hits([lists[i] for i in everyone], k)
        depth = max(candidates if candidates is not None else max(2 * k, 50), k)
        legs = self.call(
            "legs",
            {i: (vector, text, depth, filter, exact, ef, stats, include_text, include_payload)
             for i in everyone},
        )
        v = cairndb.merge_hits([legs[i][0] for i in everyone], depth)
        t = cairndb.merge_hits([legs[i][1] for i in everyone], depth)
        return cairndb.fuse_hits(v, t, fusion, alpha=alpha, rrf_k=rrf_k)[:k]

    def search_batch(self, queries, k=10, filter=None, exact=False, ef=None):
        queries = np.asarray(queries, dtype=np.float32)
        if k < 1:
            raise InvalidInputError("k must be at least 1")
        everyone = range(self.num_shards)
        res = self.call("search_batch", {i: (queries, k, filter, exact, ef) for i in everyone})
        ids = np.concatenate([res[i][0] for i in everyone], axis=1)
        scores = np.concatenate([res[i][1] for i in everyone], axis=1)
        # Best score first (padding, NaN, last), ties to the lower id.
        key = np.where(np.isnan(scores), -np.inf, scores)
        if ids.dtype.kind == "u":
            order = np.lexsort((ids, -key), axis=1)
        else:
            order = np.argsort(-key, axis=1, kind="stable")
        order = order[:, :k]
        return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


# --------------------------------------------------------------------------------------------
# The public class


def _meta_path(root: str, name: str) -> str:
    return os.path.join(root, name, META_FILE)


def _write_json(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive_nodes() -> dict:
    """Alive nodes: node id -> IP address."""
    return {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}


class ShardedCollection:
    """A Cairn collection split over `num_shards` Ray actors (see the module's docs).

    Make one with `create`, find it again with `open`. `ray.init()` must have been called.
    """

    def __init__(self, shards: _Shards, meta: dict):
        self._shards = shards
        self._meta = meta

    # -- lifecycle

    @classmethod
    def create(
        cls,
        root: Union[str, os.PathLike],
        name: str,
        *,
        dim: int,
        metric: str = "cosine",
        num_shards: int = 4,
        id_type: str = "int",
        m: int = 16,
        ef_construction: int = 200,
        stem: bool = False,
        stop_words: bool = False,
        durability: str = "sync",
        max_restarts: int = -1,
        actor_options: Optional[dict] = None,
        timeout: float = 60.0,
        replicas: int = 0,
    ) -> "ShardedCollection":
        """Creates the collection `name` under `root` (a path that exists on every node, on
        its local disk) with `num_shards` shards, spread over the cluster's alive nodes in
        turn. `dim`, `metric`, `id_type`, `m`, `ef_construction`, `stem` and `stop_words` as
        in `Database.create_collection`. `actor_options` go to each shard actor's
        `.options()` (e.g. `{"num_cpus": 4}`); `timeout`: how long a call waits for a shard
        that is restarting before `ShardUnavailableError`. `replicas`: read replicas per shard,
        actors on the shard's node holding a live read-only handle that follows the writer;
        searches go round robin over the writer and its replicas. Raises `CollectionExistsError`
        when `root/name` holds a sharded collection already."""
        root = os.fspath(root)
        cairndb_name_check(name)
        if not isinstance(num_shards, int) or isinstance(num_shards, bool) or not 1 <= num_shards <= 4096:
            raise InvalidInputError(f"num_shards must be an int from 1 to 4096, not {num_shards!r}")
        if metric not in ("cosine", "dot", "l2"):
            raise InvalidInputError(f"unknown metric {metric!r} (use \"cosine\", \"dot\" or \"l2\")")
        if id_type not in ("int", "str"):
            raise InvalidInputError(f"id type must be \"int\" or \"str\", not {id_type!r}")
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 65536:
            raise InvalidInputError(f"dim must be an int from 1 to 65536, not {dim!r}")
        path = _meta_path(root, name)
        if os.path.exists(path):
            raise CollectionExistsError(f"a sharded collection {name!r} exists already in {root}")
        nodes = sorted(_alive_nodes().items(), key=lambda kv: kv[1])
        if not nodes:
            raise CairnError("no alive Ray node: call ray.init() first")
        meta = {
            "format": FORMAT,
            "name": name,
            "num_shards": num_shards,
            "router": ROUTER,
            "config": {
                "dim": dim,
                "metric": metric,
                "id_type": id_type,
                "m": m,
                "ef_construction": ef_construction,
                "stem": stem,
                "stop_words": stop_words,
            },
            "durability": durability,
            # The node (by IP address) whose local disk holds each shard.
            "nodes": [nodes[i % len(nodes)][1] for i in range(num_shards)],
        }
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sc = cls._start(root, meta, create=True, max_restarts=max_restarts,
                        actor_options=actor_options, timeout=timeout, replicas=replicas)
        # The metadata is written once every shard exists: `open` never finds half a collection.
        _write_json(path, meta)
        return sc

    @classmethod
    def open(
        cls,
        root: Union[str, os.PathLike],
        name: str,
        *,
        max_restarts: int = -1,
        actor_options: Optional[dict] = None,
        timeout: float = 60.0,
        replicas: int = 0,
    ) -> "ShardedCollection":
        """Opens the sharded collection `name` under `root`: starts (or, in the same Ray
        session, finds) its shard actors, each on the node that holds its shard. Raises
        `CollectionNotFoundError` if there is none, or if a shard's node or directory is
        missing (restore the shard, see docs/scale-out.md)."""
        root = os.fspath(root)
        path = _meta_path(root, name)
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise CollectionNotFoundError(f"no sharded collection {name!r} in {root}") from None
        if meta.get("format") != FORMAT or meta.get("router") != ROUTER:
            raise CairnError(f"{path}: unknown format {meta.get('format')} / router {meta.get('router')}")
        return cls._start(root, meta, create=False, max_restarts=max_restarts,
                          actor_options=actor_options, timeout=timeout, replicas=replicas)

    @classmethod
    def _start(cls, root, meta, *, create, max_restarts, actor_options, timeout, replicas=0):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name, n = meta["name"], meta["num_shards"]
        by_ip = {ip: nid for nid, ip in _alive_nodes().items()}
        remote = ray.remote(_Shard)
        actors = []
        actor_opts = []
        for i in range(n):
            ip = meta["nodes"][i]
            node = by_ip.get(ip)
            if node is None:
                raise CollectionNotFoundError(
                    f"shard {i} of {name!r} lives on node {ip}, which is not in the cluster: "
                    "bring the node back, or restore the shard on another node and set its "
                    f"address in {_meta_path(root, name)} (see docs/scale-out.md)"
                )
            opts = {
                "num_cpus": 0,
                # Cairn is thread-safe and releases the GIL: searches run beside upserts.
                "max_concurrency": 8,
                "max_restarts": max_restarts,
                # One actor per shard per cluster: `open` in the same session finds it.
                "name": f"cairndb:{os.path.abspath(root)}:{name}:{i}",
                "namespace": "cairndb",
                "get_if_exists": True,
                "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False),
            }
            opts.update(actor_options or {})
            actor_opts.append(opts)
            path = os.path.join(root, name, f"shard-{i}")
            actors.append(
                remote.options(**opts).remote(
                    path, name, i, n, meta["config"], create, meta.get("durability", "sync")
                )
            )
        shards = _Shards(name=name, root=root, num_shards=n, config=meta["config"],
                         actors=actors, timeout=timeout)
        sc = cls(shards, meta)
        # Every shard opened (or the error of the first that could not).
        try:
            shards.call("ping", {i: () for i in range(n)}, timeout=max(timeout, 120.0))
            if replicas:
                # Replicas open the shards the writers made, on the same nodes.
                if not isinstance(replicas, int) or replicas < 0:
                    raise InvalidInputError(f"replicas must be an int ≥ 0, not {replicas!r}")
                for i in range(n):
                    group = []
                    for j in range(replicas):
                        opts = dict(actor_opts[i])
                        opts["name"] = f"{opts['name']}:r{j}"
                        group.append(
                            remote.options(**opts).remote(
                                os.path.join(root, name, f"shard-{i}"), name, i, n,
                                meta["config"], False, "sync", True,
                            )
                        )
                    shards.replicas.append(group)
                ray.get([r.ping.remote() for g in shards.replicas for r in g],
                        timeout=max(timeout, 120.0))
        except ray.exceptions.RayActorError as e:
            for a in actors + [r for g in shards.replicas for r in g]:
                ray.kill(a, no_restart=True)
            cause = getattr(e, "cause", None) or e
            if isinstance(cause, CairnError):
                raise cause from None
            raise CairnError(f"a shard of {name!r} failed to open: {e}") from e
        return sc

    def close(self) -> None:
        """Closes every shard's database and stops its actor (the data stays). The actors are
        shared by every handle to the collection in this Ray session (`open` finds them), so
        this closes those handles too."""
        try:
            self._shards.call("close", {i: () for i in range(self.num_shards)})
        finally:
            for a in self._shards.actors + [r for g in self._shards.replicas for r in g]:
                ray.kill(a, no_restart=True)

    def drop(self) -> None:
        """Deletes the collection: every shard's directory, on its node, and the metadata."""
        sh = self._shards
        for r in [r for g in sh.replicas for r in g]:
            ray.kill(r, no_restart=True)
        sh.call("drop", {i: () for i in range(sh.num_shards)})
        for a in sh.actors:
            ray.kill(a, no_restart=True)
        base = os.path.join(sh.root, sh.name)
        try:
            os.remove(_meta_path(sh.root, sh.name))
        except FileNotFoundError:
            pass
        shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> "ShardedCollection":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.close()
        return False

    # -- properties

    @property
    def name(self) -> str:
        return self._shards.name

    @property
    def num_shards(self) -> int:
        return self._shards.num_shards

    @property
    def dim(self) -> int:
        return int(self._shards.config["dim"])

    @property
    def metric(self) -> str:
        return str(self._shards.config["metric"])

    @property
    def actors(self) -> list:
        """The shard actors (the writers), shard i at index i."""
        return list(self._shards.actors)

    @property
    def replicas(self) -> list:
        """The read replica actors of each shard (empty lists without replicas)."""
        return [list(g) for g in self._shards.replicas] or [[] for _ in range(self.num_shards)]

    def __len__(self) -> int:
        counts = self._shards.call("count", {i: () for i in range(self.num_shards)})
        return int(sum(counts.values()))

    def shard_sizes(self) -> list:
        """Records per shard."""
        counts = self._shards.call("count", {i: () for i in range(self.num_shards)})
        return [counts[i] for i in range(self.num_shards)]

    def __repr__(self) -> str:
        return f"ShardedCollection({self.name!r}, num_shards={self.num_shards}, dim={self.dim})"

    # -- writes

    def upsert(self, ids, vectors, texts=None, payloads=None) -> None:
        """Inserts or replaces records, each on its shard; returns when every shard holding
        some of them has made its part durable. Each shard's part is one atomic batch; the
        batch as a whole is not atomic across shards (a failure may leave some shards'
        parts written: calling `upsert` again with the same records is safe)."""
        self._shards.upsert(ids, vectors, texts, payloads)

    def delete(self, ids) -> int:
        """Deletes records by id; returns how many existed."""
        ids = [ids] if isinstance(ids, (int, str)) else list(ids)
        where = shard_of(np.asarray(ids, dtype=np.uint64) if self._shards.config["id_type"] == "int" else ids,
                         self.num_shards)
        args = {int(s): ([ids[r] for r in np.flatnonzero(where == s)],) for s in np.unique(where)}
        return int(sum(self._shards.call("delete", args, timeout=self._shards.write_timeout).values()))

    def get(self, ids):
        """The records with these ids (`cairndb.Record` or None), in order."""
        one = isinstance(ids, (int, str))
        ids = [ids] if one else list(ids)
        where = shard_of(np.asarray(ids, dtype=np.uint64) if self._shards.config["id_type"] == "int" else ids,
                         self.num_shards)
        out: list = [None] * len(ids)
        args, rows_of = {}, {}
        for s in np.unique(where):
            rows = np.flatnonzero(where == s)
            args[int(s)] = ([ids[r] for r in rows],)
            rows_of[int(s)] = rows
        for s, recs in self._shards.call("get", args).items():
            for r, rec in zip(rows_of[s], recs):
                out[r] = rec
        return out[0] if one else out

    def flush(self) -> None:
        """Seals every shard's memtable into a segment (faster reopen after a bulk load)."""
        self._shards.call("flush", {i: () for i in range(self.num_shards)},
                          timeout=self._shards.write_timeout)

    def write_dataset(
        self,
        ds: Any,
        *,
        id_column: str = "id",
        vector_column: str = "vector",
        text_column: Optional[str] = "text",
        payload_column: Optional[str] = "payload",
        batch_size: int = 1024,
        concurrency: Optional[int] = None,
    ) -> int:
        """Writes a `ray.data.Dataset` with id/vector (and optional text/payload) columns —
        e.g. the output of an embedding `map_batches` step — in batches of `batch_size` rows,
        each batch routed to the shards by Ray Data tasks. Returns the number of rows written,
        once every batch is durable on its shards. A text or payload column that the dataset
        lacks is skipped; payloads are dicts (or None)."""
        shards = self._shards
        cols = (id_column, vector_column, text_column, payload_column)

        def write(batch: dict) -> dict:
            return {"rows": np.array([_write_batch(shards, batch, cols)], dtype=np.int64)}

        kw: dict = {"batch_format": "numpy", "batch_size": batch_size, "zero_copy_batch": True}
        if concurrency is not None:
            kw["concurrency"] = concurrency
        out = ds.map_batches(write, **kw)
        return int(sum(int(b["rows"].sum()) for b in out.iter_batches(batch_format="numpy")))

    # -- reads

    def search(
        self,
        vector: Any = None,
        text: Optional[str] = None,
        k: int = 10,
        filter: Any = None,
        exact: bool = False,
        *,
        ef: Optional[int] = None,
        candidates: Optional[int] = None,
        fusion: Optional[str] = None,
        alpha: Optional[float] = None,
        rrf_k: Optional[float] = None,
        include_text: bool = True,
        include_payload: bool = True,
    ) -> list:
        """Vector, text (BM25) or hybrid search over every shard: a list of `cairndb.Hit`
        (`.id`, `.score`, `.text`, `.payload`, `.legs`), best first. `filter` runs on each
        shard. Text and hybrid queries score BM25 with the whole collection's statistics;
        with `exact=True` results equal those of one database holding every record."""
        return self._shards.search(
            vector, text, k, filter, exact, ef=ef, candidates=candidates, fusion=fusion,
            alpha=alpha, rrf_k=rrf_k, include_text=include_text, include_payload=include_payload,
        )

    def search_batch(self, queries: Any, k: int = 10, filter: Any = None, *, exact: bool = False,
                     ef: Optional[int] = None):
        """Vector search for many queries: `(ids, scores)` arrays of shape `(len(queries), k)`
        as `Collection.search_batch` returns them (padding: id `2**64 - 1` / None, score NaN)."""
        return self._shards.search_batch(queries, k, filter, exact, ef)

    def search_dataset(
        self,
        ds: Any,
        k: int = 10,
        filter: Any = None,
        *,
        vector_column: str = "vector",
        exact: bool = False,
        ef: Optional[int] = None,
        batch_size: int = 256,
        concurrency: Optional[int] = None,
    ) -> Any:
        """Batch queries with Ray Data: maps a dataset of query vectors (`vector_column`) to
        the same rows plus `ids` and `scores` columns (k each, best first), in batches of
        `batch_size` queries, each fanned out to every shard."""
        shards = self._shards

        def run(batch: dict) -> dict:
            q = _stack(batch[vector_column])
            ids, scores = shards.search_batch(q, k, filter, exact, ef)
            out = dict(batch)
            out["ids"] = ids
            out["scores"] = scores
            return out

        kw: dict = {"batch_format": "numpy", "batch_size": batch_size}
        if concurrency is not None:
            kw["concurrency"] = concurrency
        return ds.map_batches(run, **kw)


def cairndb_name_check(name: str) -> None:
    import re

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise InvalidInputError(f"collection name must match [A-Za-z0-9_-]{{1,64}}, not {name!r}")


def _stack(col: Any) -> np.ndarray:
    """A numpy batch column of vectors as a 2-D float32 array."""
    a = np.asarray(col)
    if a.dtype == object:
        a = np.stack([np.asarray(v, dtype=np.float32) for v in col]) if len(col) else np.zeros((0, 0))
    return a.astype(np.float32, copy=False)


def _write_batch(shards: _Shards, batch: dict, cols: tuple) -> int:
    id_col, vec_col, text_col, payload_col = cols
    for c in (id_col, vec_col):
        if c not in batch:
            raise InvalidInputError(f"the dataset has no {c!r} column (columns: {sorted(batch)})")
    ids = batch[id_col]
    if shards.config["id_type"] == "str":
        ids = [str(x) for x in ids]
    vectors = _stack(batch[vec_col])
    texts = None
    if text_col and text_col in batch:
        texts = [None if t is None else str(t) for t in batch[text_col]]
    payloads = None
    if payload_col and payload_col in batch:
        payloads = [None if p is None else dict(p) for p in batch[payload_col]]
    return shards.upsert(ids, vectors, texts, payloads)
