//! A model-based concurrency test (issue 13): writers, readers with slow and re-entrant
//! rerankers, seals and compactions, and the database dropped at a random moment.
//!
//! Each writer owns a group of ids and rewrites the whole group in one batch (every record
//! carries the batch's version) or deletes the whole group. Batches are atomic and commits are
//! ordered, so in every version a reader can see, a group is either absent or present whole at
//! one version, and that version is not older than one the writer had acknowledged before the
//! read began, nor newer than one it had started. Readers check exactly that, with exact,
//! graph, filtered and hybrid searches and with `get`. Every thread runs under a watchdog: a
//! hang fails the test. After the drop, the reopened database holds each group's last
//! acknowledged state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

mod common;
use common::Rng;

use cairndb::{
    Collection, CollectionConfig, Database, Filter, Hit, Metric, Options, Record, RerankQuery,
    Reranker, Result, SearchRequest, Value,
};

const DIM: usize = 8;
const WRITERS: u64 = 3;
const GROUP: u64 = 40;
const WATCHDOG: Duration = Duration::from_secs(120);

fn vector(id: u64, version: i64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|i| ((id * 131 + i * 71 + version as u64 * 13) % 97) as f32 / 97.0 + 0.01)
        .collect()
}

fn group_of(id: u64) -> Option<u64> {
    (id < WRITERS * 1000 && id % 1000 < GROUP).then_some(id / 1000)
}

/// What each writer has acknowledged and started: version (negative: the group deleted at
/// that step).
struct Progress {
    acked: Vec<AtomicI64>,
    started: Vec<AtomicI64>,
}

fn version_of(h: &Hit) -> i64 {
    match h.payload.as_ref().and_then(|p| p.get("v")) {
        Some(Value::Int(v)) => *v,
        other => panic!("hit {} without a version: {other:?}", h.id),
    }
}

/// Checks one read against the progress observed before it (`before`) and after it.
fn check_groups(hits: &[Hit], before: &[i64], after: &[i64], complete: Option<u64>, what: &str) {
    let mut seen: HashMap<u64, (i64, u64)> = HashMap::new();
    for h in hits {
        let Some(g) = group_of(h.id.as_u64().unwrap()) else {
            continue;
        };
        let v = version_of(h);
        let e = seen.entry(g).or_insert((v, 0));
        assert_eq!(e.0, v, "{what}: group {g} mixes versions {} and {v}", e.0);
        e.1 += 1;
    }
    for g in 0..WRITERS as usize {
        let lo = before[g].abs();
        let hi = after[g].abs();
        match seen.get(&(g as u64)) {
            Some(&(v, n)) => {
                let complete = complete.is_some_and(|c| c == u64::MAX || c == g as u64);
                assert!(
                    v >= lo && v <= hi,
                    "{what}: group {g} at version {v}, acknowledged {lo} before, {hi} started after"
                );
                if complete {
                    assert_eq!(n, GROUP, "{what}: group {g} at version {v} is partial");
                }
            }
            None if complete.is_some_and(|c| c == u64::MAX || c == g as u64) => {
                // Absent: deleted at some version in [lo, hi] — or never written yet.
                let deleted_possible = before[g] <= 0 || after[g] != before[g];
                assert!(
                    deleted_possible,
                    "{what}: group {g} absent, but acknowledged at version {} and unchanged",
                    before[g]
                );
            }
            None => {}
        }
    }
}

fn snapshot(p: &[AtomicI64]) -> Vec<i64> {
    p.iter().map(|a| a.load(Ordering::SeqCst)).collect()
}

/// A reranker that calls back into the collection (get, len, a nested search), sometimes
/// sleeps, and scores by id.
struct Reentrant {
    col: Collection,
    slow: bool,
    calls: AtomicU64,
}

impl Reranker for Reentrant {
    fn rerank(&self, _q: &RerankQuery<'_>, candidates: &[Hit]) -> Result<Vec<f32>> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let _ = self.col.get(n % 3000)?;
        let _ = self.col.len();
        if n.is_multiple_of(3) {
            self.col.search(&SearchRequest::new(vector(n, 0)).k(3))?;
        }
        if self.slow {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(candidates
            .iter()
            .map(|h| -(h.id.as_u64().unwrap() as f32))
            .collect())
    }
}

fn spawn_watched<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> mpsc::Receiver<std::thread::Result<T>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .unwrap();
    rx
}

fn join<T>(name: &str, rx: mpsc::Receiver<std::thread::Result<T>>) -> T {
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{name} did not finish within {WATCHDOG:?}: a hang"),
    }
}

fn run(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let options = Options::default()
        .memtable_max_rows(150)
        .compaction_policy(3, 0.2);
    let db = Database::open_with(&path, options.clone()).unwrap();
    let col = db
        .create_collection("m", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    let progress = Arc::new(Progress {
        acked: (0..WRITERS).map(|_| AtomicI64::new(0)).collect(),
        started: (0..WRITERS).map(|_| AtomicI64::new(0)).collect(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut rng = Rng::new(seed);
    // The moment everything stops: after this many writer steps in all.
    let steps_total = 150 + rng.below(150) as i64;
    let steps = Arc::new(AtomicI64::new(0));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (col, progress, stop, steps) =
            (col.clone(), progress.clone(), stop.clone(), steps.clone());
        let mut rng = Rng::new(seed ^ ((w + 1) * 0x9E37));
        writers.push(spawn_watched("writer", move || {
            let mut v = 0i64;
            while !stop.load(Ordering::Acquire)
                && steps.fetch_add(1, Ordering::SeqCst) < steps_total
            {
                v += 1;
                let delete = v > 1 && rng.below(8) == 0;
                let ids: Vec<u64> = (w * 1000..w * 1000 + GROUP).collect();
                if delete {
                    progress.started[w as usize].store(-v, Ordering::SeqCst);
                    col.delete(&ids).unwrap();
                    progress.acked[w as usize].store(-v, Ordering::SeqCst);
                } else {
                    progress.started[w as usize].store(v, Ordering::SeqCst);
                    let batch: Vec<Record> = ids
                        .iter()
                        .map(|&id| {
                            Record::new(id, vector(id, v))
                                .with_text(format!("group{w} word{}", id % 7))
                                .with_field("v", v)
                                .with_field("g", w as i64)
                        })
                        .collect();
                    col.upsert(batch).unwrap();
                    progress.acked[w as usize].store(v, Ordering::SeqCst);
                }
                // Read your writes.
                let mine = col.get(w * 1000 + v as u64 % GROUP).unwrap();
                assert_eq!(
                    mine.is_none(),
                    delete,
                    "writer {w} at {v}: read-your-writes"
                );
            }
        }));
    }

    let mut readers = Vec::new();
    for r in 0..3u64 {
        let (col, progress, stop) = (col.clone(), progress.clone(), stop.clone());
        let reranker = Arc::new(Reentrant {
            col: col.clone(),
            slow: r == 0,
            calls: AtomicU64::new(0),
        });
        readers.push(spawn_watched("reader", move || {
            let mut i = r;
            let mut reads = 0u64;
            while !stop.load(Ordering::Acquire) {
                i += 3;
                let q = vector(i, 0);
                let before = snapshot(&progress.acked);
                let (what, hits, complete) = match i % 5 {
                    0 => {
                        let req = SearchRequest::new(q).k(1000).exact(true).with_payload(true);
                        ("exact", col.search(&req).unwrap(), Some(u64::MAX))
                    }
                    1 => {
                        let req = SearchRequest::new(q).k(10).with_payload(true);
                        ("graph", col.search(&req).unwrap(), None)
                    }
                    2 => {
                        let g = (i / 5) % WRITERS;
                        let req = SearchRequest::new(q)
                            .k(1000)
                            .exact(true)
                            .filter(Filter::eq("g", g as i64))
                            .with_payload(true);
                        ("filtered", col.search(&req).unwrap(), Some(g))
                    }
                    3 => {
                        let req = SearchRequest::new(q)
                            .text(format!("group{} word3", i % WRITERS))
                            .k(20)
                            .with_payload(true)
                            .rerank(reranker.clone(), 30);
                        ("hybrid+rerank", col.search(&req).unwrap(), None)
                    }
                    _ => {
                        let g = i % WRITERS;
                        let mut hits = Vec::new();
                        for id in g * 1000..g * 1000 + GROUP {
                            if let Some(rec) = col.get(id).unwrap() {
                                hits.push(Hit {
                                    id: cairndb::Id::Int(id),
                                    score: 0.0,
                                    text: None,
                                    payload: Some(rec.payload),
                                    legs: None,
                                });
                            }
                        }
                        // `get`s are separate reads: no cross-record check.
                        ("get", hits, None)
                    }
                };
                let after = snapshot(&progress.started);
                if what != "get" {
                    check_groups(&hits, &before, &after, complete, what);
                }
                reads += 1;
            }
            reads
        }));
    }

    let upkeep = {
        let (col, stop) = (col.clone(), stop.clone());
        let mut rng = Rng::new(seed ^ 0xABCD);
        spawn_watched("upkeep", move || {
            while !stop.load(Ordering::Acquire) {
                match rng.below(3) {
                    0 => col.flush().unwrap(),
                    1 => {
                        col.compact().unwrap();
                    }
                    _ => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };

    for w in writers {
        join("writer", w);
    }
    stop.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| join("reader", r)).sum();
    join("upkeep", upkeep);
    assert!(reads > 0);
    let acked = snapshot(&progress.acked);
    // The random moment: the database goes while the background threads may be busy.
    drop(col);
    drop(db);

    let db = Database::open_with(&path, options).unwrap();
    db.verify().unwrap();
    let col = db.collection("m").unwrap();
    for w in 0..WRITERS {
        let v = acked[w as usize];
        for id in w * 1000..w * 1000 + GROUP {
            let got = col.get(id).unwrap();
            if v > 0 {
                let rec = got.unwrap_or_else(|| panic!("seed {seed}: {id} lost (version {v})"));
                assert_eq!(
                    rec.payload.get("v"),
                    Some(&Value::Int(v)),
                    "seed {seed}: {id}"
                );
            } else {
                assert!(got.is_none(), "seed {seed}: deleted {id} came back");
            }
        }
    }
    let live = acked.iter().filter(|&&v| v > 0).count() as u64;
    assert_eq!(col.len() as u64, live * GROUP, "seed {seed}");
}

#[test]
fn concurrent_model() {
    let seeds: u64 = std::env::var("CAIRN_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    for seed in 0..seeds {
        run(seed);
    }
}
