"""cairndb.ray on a local Ray cluster (ray.init(num_cpus=2), 4 shards): ingest through Ray Data,
exact and hybrid results equal to one database holding the same records, filters, HNSW recall,
batch queries, a shard actor killed during ingest, a search during a restart, reopening after
ray.shutdown(), drop."""

import os
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import cairndb  # noqa: E402
from cairndb.ray import ShardedCollection, ShardUnavailableError, shard_of  # noqa: E402

N = 1200
DIM = 16
SHARDS = 4
WORDS = (
    "vector search graph index crash recovery disk filter fast text database shard ray "
    "cluster node replica merge score rank query"
).split()


def corpus(seed=7):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    texts = [
        " ".join(rng.choice(WORDS, size=int(rng.integers(1, 9)))) if i % 10 else None
        for i in range(N)
    ]
    payloads = [{"g": int(i % 3), "lang": "en" if i % 4 else "de"} for i in range(N)]
    return np.arange(N, dtype=np.uint64), vectors, texts, payloads


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ray-root"))


@pytest.fixture(scope="module")
def data():
    return corpus()


@pytest.fixture(scope="module")
def single(tmp_path_factory, data):
    ids, vectors, texts, payloads = data
    db = cairndb.open(str(tmp_path_factory.mktemp("single")))
    col = db.create_collection("docs", DIM, "cosine")
    col.upsert(ids, vectors, texts, payloads)
    yield col
    db.close()


@pytest.fixture(scope="module")
def sc(cluster, root, data):
    ids, vectors, texts, payloads = data
    sc = ShardedCollection.create(root, "docs", dim=DIM, metric="cosine", num_shards=SHARDS)
    rows = [
        {"id": int(i), "text": t, "g": p["g"], "lang": p["lang"]}
        for i, t, p in zip(ids, texts, payloads)
    ]

    def embed(batch):
        # Stands for an embedding model: looks the vectors up by id.
        batch["vector"] = vectors[batch["id"].astype(np.int64)]
        batch["payload"] = np.array(
            [{"g": int(g), "lang": str(lang)} for g, lang in zip(batch["g"], batch["lang"])],
            dtype=object,
        )
        return batch

    ds = ray.data.from_items(rows, override_num_blocks=4).map_batches(embed, batch_format="numpy")
    written = sc.write_dataset(ds, batch_size=200)
    assert written == N
    return sc


def pairs(hits):
    return [(h.id, round(float(h.score), 5)) for h in hits]


def test_ingest_through_ray_data_routes_every_row_to_its_shard(sc, data):
    ids, vectors, texts, payloads = data
    assert len(sc) == N
    sizes = sc.shard_sizes()
    assert sum(sizes) == N and all(s > N // SHARDS // 2 for s in sizes)
    # Each record is on the shard its id hashes to, with its vector, text and payload.
    where = shard_of(ids, SHARDS)
    assert [int((where == s).sum()) for s in range(SHARDS)] == sizes
    for i in (0, 1, 17, N - 1):
        r = sc.get(i)
        assert r.id == i
        assert r.text == texts[i]
        assert r.payload == payloads[i]
        np.testing.assert_allclose(r.vector, vectors[i] / np.linalg.norm(vectors[i]), rtol=1e-6)


def test_exact_vector_search_equals_one_database(sc, single):
    rng = np.random.default_rng(1)
    for _ in range(10):
        q = rng.standard_normal(DIM).astype(np.float32)
        for k in (1, 10, 37):
            want = single.search(vector=q, k=k, exact=True)
            got = sc.search(vector=q, k=k, exact=True)
            assert pairs(got) == pairs(want)
            assert [h.score for h in got] == [h.score for h in want]


def test_text_search_scores_with_global_statistics(sc, single):
    for q in ("vector search", "crash recovery disk", "shard", "replica rank query ray", "nothing"):
        want = single.search(text=q, k=15)
        got = sc.search(text=q, k=15)
        assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in want], q
    # A shard alone would score differently: the statistics are what makes them equal.
    local = sc.actors[0].search.remote(None, "vector search", 5, None, False, None, None, False, False)
    local = ray.get(local)
    assert local[0].score != next(
        h.score for h in single.search(text="vector search", k=N) if h.id == local[0].id
    )


@pytest.mark.parametrize("fusion", [None, "rrf", "weighted", "dbsf"])
def test_exact_hybrid_search_equals_one_database(sc, single, fusion):
    rng = np.random.default_rng(2)
    for q_text in ("vector search", "node cluster merge", "crash"):
        q = rng.standard_normal(DIM).astype(np.float32)
        for k in (5, 30):
            want = single.search(vector=q, text=q_text, k=k, exact=True, fusion=fusion)
            got = sc.search(vector=q, text=q_text, k=k, exact=True, fusion=fusion)
            assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in want]
            assert [h.legs for h in got] == [h.legs for h in want]
            assert [(h.text, h.payload) for h in got] == [(h.text, h.payload) for h in want]


@pytest.mark.parametrize(
    "flt", [{"g": 1}, 'lang = "de"', {"$and": [{"g": {"$gte": 1}}, {"lang": "en"}]}]
)
def test_filters_are_pushed_down_to_every_shard(sc, single, flt):
    rng = np.random.default_rng(3)
    q = rng.standard_normal(DIM).astype(np.float32)
    for kw in ({"vector": q}, {"text": "vector graph"}, {"vector": q, "text": "disk"}):
        want = single.search(k=20, filter=flt, exact=True, **kw)
        got = sc.search(k=20, filter=flt, exact=True, **kw)
        assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in want]
        assert got, kw


@pytest.mark.parametrize("ef", [None, 10])
def test_hnsw_recall_is_within_a_hundredth_of_one_database(sc, single, ef):
    # At the default ef both find every true neighbour of this small corpus; at ef = k = 10
    # (the smallest) one database found 0.922 of them and the four shards 0.975 when written.
    rng = np.random.default_rng(4)
    queries = rng.standard_normal((100, DIM)).astype(np.float32)
    k = 10
    hit_single = hit_sharded = 0
    for q in queries:
        truth = {h.id for h in single.search(vector=q, k=k, exact=True)}
        hit_single += len(truth & {h.id for h in single.search(vector=q, k=k, ef=ef)})
        hit_sharded += len(truth & {h.id for h in sc.search(vector=q, k=k, ef=ef)})
    total = k * len(queries)
    assert hit_sharded / total >= hit_single / total - 0.01


def test_batch_queries_through_ray_data(sc, single):
    rng = np.random.default_rng(5)
    queries = rng.standard_normal((40, DIM)).astype(np.float32)
    ds = ray.data.from_items([{"qid": i, "vector": q} for i, q in enumerate(queries)])
    out = sc.search_dataset(ds, k=7, exact=True, batch_size=16).take_all()
    assert len(out) == len(queries)
    for row in out:
        want = single.search(vector=queries[row["qid"]], k=7, exact=True)
        assert list(row["ids"]) == [h.id for h in want]
        np.testing.assert_array_equal(row["scores"], np.array([h.score for h in want], np.float32))
    # And the direct form, with a filter.
    ids, scores = sc.search_batch(queries[:5], k=4, filter={"g": 2}, exact=True)
    want_ids, want_scores = single.search_batch(queries[:5], k=4, filter={"g": 2}, exact=True)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(scores, want_scores)


def test_routing_is_stable():
    # Where records live must never change: these values are fixed.
    assert shard_of(np.arange(8, dtype=np.uint64), 4).tolist() == shard_of(list(range(8)), 4).tolist()
    assert shard_of(["a", "doc-1", "é"], 7).tolist() == shard_of(["a", "doc-1", "é"], 7).tolist()
    assert shard_of(np.arange(8, dtype=np.uint64), 4).tolist() == ROUTE_INT
    assert shard_of(["a", "doc-1", "é"], 7).tolist() == ROUTE_STR
    assert shard_of([2**64 - 1], 5).tolist() == [1]
    with pytest.raises(cairndb.InvalidInputError):
        shard_of([-1], 4)
    with pytest.raises(cairndb.InvalidInputError):
        shard_of([1.5], 4)


# SplitMix64 of the int id (checked against a pure-Python SplitMix64), BLAKE2b-8 of a str id.
ROUTE_INT = [3, 1, 2, 1, 2, 2, 0, 3]
ROUTE_STR = [4, 4, 5]


def test_create_and_open_errors(cluster, root, sc):
    with pytest.raises(cairndb.CollectionExistsError):
        ShardedCollection.create(root, "docs", dim=DIM, num_shards=2)
    with pytest.raises(cairndb.CollectionNotFoundError):
        ShardedCollection.open(root, "missing")
    with pytest.raises(cairndb.InvalidInputError):
        ShardedCollection.create(root, "bad/name", dim=DIM)
    with pytest.raises(cairndb.InvalidInputError):
        ShardedCollection.create(root, "x", dim=DIM, num_shards=0)
    with pytest.raises(cairndb.InvalidInputError):
        sc.upsert([1], np.zeros((1, DIM + 1), np.float32))
    with pytest.raises(cairndb.InvalidInputError):
        sc.search()
    # Opening again in the same session finds the running actors.
    again = ShardedCollection.open(root, "docs")
    assert len(again) == N


def test_shard_killed_during_ingest_loses_no_acknowledged_batch(cluster, root):
    sc = ShardedCollection.create(root, "crash", dim=8, metric="dot", num_shards=SHARDS, timeout=120)
    rng = np.random.default_rng(6)
    victim = sc.actors[1]
    pid_before = ray.get(victim.ping.remote())[1]
    acked = {}
    kills = []

    def killer():
        time.sleep(0.3)
        ray.kill(victim, no_restart=False)
        kills.append(time.monotonic())

    t = threading.Thread(target=killer)
    t.start()
    for b in range(40):
        ids = np.arange(b * 50, (b + 1) * 50, dtype=np.uint64)
        vecs = rng.standard_normal((50, 8)).astype(np.float32)
        sc.upsert(ids, vecs, texts=[f"batch {b}"] * 50)
        acked.update(zip(ids.tolist(), vecs))
        time.sleep(0.02)
    done = time.monotonic()
    t.join()
    assert kills and kills[0] < done, "the shard actor was not killed during the ingest"
    # The actor came back as a new process and reopened its shard.
    pid_after = ray.get(victim.ping.remote())[1]
    assert pid_after != pid_before
    assert len(sc) == len(acked)
    got = sc.get(list(acked))
    for i, r in zip(acked, got):
        assert r is not None, i
        np.testing.assert_array_equal(r.vector, acked[i])
    sc.drop()


def test_search_during_a_restart_waits_or_names_the_shard(cluster, root):
    sc = ShardedCollection.create(root, "restart", dim=4, metric="l2", num_shards=2, timeout=30)
    sc.upsert(list(range(100)), np.random.default_rng(8).standard_normal((100, 4)))
    want = sc.search(vector=[0.1, 0.2, 0.3, 0.4], k=5, exact=True)
    # A restart: the search waits for the shard (bounded by `timeout`) and answers the same.
    ray.kill(sc.actors[0], no_restart=False)
    assert pairs(sc.search(vector=[0.1, 0.2, 0.3, 0.4], k=5, exact=True)) == pairs(want)
    # A shard that does not come back: a clear, retryable error naming it, after `timeout`.
    impatient = ShardedCollection.open(root, "restart", timeout=1.5)
    ray.kill(impatient.actors[1], no_restart=True)
    # ray.kill only asks: a call made before the actor is gone can still be answered (CI saw
    # the search below succeed once). Wait until it no longer answers.
    deadline = time.monotonic() + 60
    while True:
        try:
            ray.get(impatient.actors[1].ping.remote(), timeout=5)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            break
        assert time.monotonic() < deadline, "the killed shard still answers"
        time.sleep(0.05)
    start = time.monotonic()
    with pytest.raises(ShardUnavailableError, match="shard 1 of 'restart'") as e:
        impatient.search(vector=[0.1, 0.2, 0.3, 0.4], k=5)
    assert e.value.shard == 1
    assert isinstance(e.value, ConnectionError)
    assert time.monotonic() - start < 15
    for a in sc.actors:
        ray.kill(a, no_restart=True)


def test_read_replicas_follow_the_writer(cluster, root):
    sc = ShardedCollection.create(root, "replicated", dim=4, metric="l2", num_shards=2, replicas=1)
    assert [len(g) for g in sc.replicas] == [1, 1]
    pids = {ray.get(a.ping.remote())[1] for a in sc.actors + [r for g in sc.replicas for r in g]}
    assert len(pids) == 4
    rng = np.random.default_rng(10)
    for step in range(12):
        v = rng.standard_normal((1, 4)).astype(np.float32)
        sc.upsert([step], v, texts=[f"step {step}"])
        # Every read after the upsert returned sees it, whichever of writer or replica answers.
        hits = sc.search(vector=v[0], k=1, exact=True)
        assert hits[0].id == step and hits[0].score == 0.0
        assert len(sc) == step + 1
        assert sc.search(text=f"step {step}", k=1)[0].id == step
    # The replicas answered some of the reads.
    for g in sc.replicas:
        assert ray.get(g[0].count.remote()) > 0
    with pytest.raises(cairndb.ReadOnlyError):
        ray.get(sc.replicas[0][0].upsert.remote([99], np.ones((1, 4), np.float32), None, None))
    sc.drop()


def test_reopen_after_ray_shutdown_then_drop(cluster, root, sc, single):
    q = np.random.default_rng(9).standard_normal(DIM).astype(np.float32)
    want = pairs(sc.search(vector=q, text="disk graph", k=10, exact=True))
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    again = ShardedCollection.open(root, "docs")
    assert len(again) == N
    assert pairs(again.search(vector=q, text="disk graph", k=10, exact=True)) == want
    assert want == pairs(single.search(vector=q, text="disk graph", k=10, exact=True))
    again.drop()
    assert not os.path.exists(os.path.join(root, "docs"))
    with pytest.raises(cairndb.CollectionNotFoundError):
        ShardedCollection.open(root, "docs")
