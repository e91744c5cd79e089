//! Reads never wait for writes, writes never wait for reads, and a reranker may call back
//! into the API (issue 13, findings 5 and 6). No test here measures time: a reranker blocks
//! on a channel until other threads have done their work, so a search that held a lock across
//! its reranker would deadlock — and the watchdog turns a deadlock into a failure.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairndb::{
    Collection, CollectionConfig, Database, Error, Hit, Metric, Options, Record, RerankQuery,
    Reranker, Result, SearchRequest,
};

const DIM: usize = 4;
/// Longer than any of these steps can take on a loaded machine, short enough to fail fast.
const WATCHDOG: Duration = Duration::from_secs(60);

fn vector(id: u64) -> Vec<f32> {
    vec![id as f32 + 1.0, 1.0, (id % 7) as f32, 0.5]
}

/// Runs `f` on its own thread and fails the test if it does not finish within the watchdog.
fn within_watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("{what}: no result within {WATCHDOG:?} (a hang)"))
}

fn setup(rows: u64) -> (tempfile::TempDir, Database, Collection) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(64)).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    c.upsert(
        (0..rows)
            .map(|id| Record::new(id, vector(id)))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    (dir, db, c)
}

/// A reranker that runs a closure once per call, then scores candidates by id.
struct Hook<F>(F);

impl<F: Fn() -> Result<()> + Send + Sync> Reranker for Hook<F> {
    fn rerank(&self, _q: &RerankQuery<'_>, candidates: &[Hit]) -> Result<Vec<f32>> {
        (self.0)()?;
        Ok(candidates
            .iter()
            .map(|h| h.id.as_u64().unwrap() as f32)
            .collect())
    }
}

fn reranked(
    c: &Collection,
    hook: impl Fn() -> Result<()> + Send + Sync + 'static,
) -> Result<Vec<Hit>> {
    c.search(
        &SearchRequest::new(vector(3))
            .k(5)
            .rerank(Arc::new(Hook(hook)), 10),
    )
}

/// While a search sits in its reranker, another thread upserts, deletes, flushes, compacts
/// and searches; only then does the reranker return. Before versions, the search held the
/// collection's lock across the reranker and the writer waited for it: a deadlock here.
#[test]
fn writes_and_reads_go_on_while_a_reranker_runs() {
    let (_dir, db, c) = setup(200);
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let searcher = {
        let c = c.clone();
        std::thread::spawn(move || {
            reranked(&c, move || {
                entered_tx.send(()).unwrap();
                release_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(WATCHDOG)
                    .expect("released");
                Ok(())
            })
        })
    };
    entered_rx.recv_timeout(WATCHDOG).expect("the reranker ran");
    let other = c.clone();
    let done = within_watchdog("writes during a reranker", move || {
        for round in 0..5u64 {
            let ids: Vec<u64> = (1000 + round * 100..1000 + round * 100 + 100).collect();
            other
                .upsert(
                    ids.iter()
                        .map(|&id| Record::new(id, vector(id)))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
            other.delete(&[round]).unwrap();
            other.flush().unwrap();
            let hits = other
                .search(&SearchRequest::new(vector(1000)).k(3))
                .unwrap();
            assert_eq!(hits.len(), 3);
        }
        other.compact().unwrap();
        other.len()
    });
    assert_eq!(done, 200 + 500 - 5);
    release_tx.send(()).unwrap();
    let hits = searcher.join().unwrap().unwrap();
    assert_eq!(hits.len(), 5);
    // The search read one version: the one taken when it started (ids below 200 only).
    assert!(
        hits.iter().all(|h| h.id.as_u64().unwrap() < 200),
        "{hits:?}"
    );
    drop(db);
}

/// A reranker may call every read method, and write, while other threads write.
#[test]
fn a_reranker_may_call_back_into_the_collection() {
    let (_dir, db, c) = setup(300);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let c = c.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut id = 10_000u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                c.upsert(Record::new(id, vector(id))).unwrap();
                id += 1;
            }
            id - 10_000
        })
    };
    let inner = c.clone();
    within_watchdog("re-entrant reranker", move || {
        let written = Arc::new(std::sync::atomic::AtomicU64::new(50_000));
        for i in 0..40u64 {
            let c2 = inner.clone();
            let w = Arc::clone(&written);
            let hits = reranked(&inner, move || {
                assert!(c2.get(i % 300)?.is_some());
                assert!(c2.len() >= 300);
                assert_eq!(c2.search(&SearchRequest::new(vector(i)).k(4))?.len(), 4);
                let _ = c2.stats();
                // A write from inside a reranker.
                let id = w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                c2.upsert(Record::new(id, vector(id)))?;
                if i % 10 == 0 {
                    c2.flush()?;
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(hits.len(), 5);
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Release);
    let from_writer = writer.join().unwrap();
    assert_eq!(c.len() as u64, 300 + 40 + from_writer);
    for id in 50_000..50_040u64 {
        assert!(
            c.get(id).unwrap().is_some(),
            "upsert from a reranker lost: {id}"
        );
    }
    drop(db);
}

/// Compaction, dropping the collection, and dropping the database from inside a reranker:
/// each works or fails with a clear error; nothing hangs.
#[test]
fn a_reranker_may_compact_drop_or_close() {
    let (dir, db, c) = setup(300);
    c.flush().unwrap();
    c.upsert(
        (300..400)
            .map(|id| Record::new(id, vector(id)))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    c.flush().unwrap();
    let c2 = c.clone();
    let hits = within_watchdog("compaction in a reranker", move || {
        let c3 = c2.clone();
        reranked(&c2, move || c3.compact().map(|_| ()))
    })
    .unwrap();
    assert_eq!(hits.len(), 5);

    // Dropping the collection from inside its own search: the search finishes on the version
    // it took; later calls fail with CollectionDropped.
    let db = Arc::new(Mutex::new(Some(db)));
    let (c2, db2) = (c.clone(), Arc::clone(&db));
    let hits = within_watchdog("drop_collection in a reranker", move || {
        reranked(&c2, move || {
            db2.lock().unwrap().as_ref().unwrap().drop_collection("c")
        })
    })
    .unwrap();
    assert_eq!(hits.len(), 5);
    assert!(matches!(c.get(1), Err(Error::CollectionDropped { .. })));
    assert!(matches!(
        c.upsert(Record::new(1, vector(1))),
        Err(Error::CollectionDropped { .. })
    ));

    // Dropping the last database handle ("close") from inside a reranker of a live
    // collection: the search holds its own reference and finishes; the database closes when
    // the collection handle goes too, and reopens.
    drop(c);
    let d = db.lock().unwrap().take().unwrap();
    let c = d
        .create_collection("e", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    c.upsert(
        (0..50)
            .map(|id| Record::new(id, vector(id)))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let holder = Arc::new(Mutex::new(Some(d)));
    let (c2, h2) = (c.clone(), Arc::clone(&holder));
    let hits = within_watchdog("closing in a reranker", move || {
        reranked(&c2, move || {
            drop(h2.lock().unwrap().take());
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(hits.len(), 5);
    c.upsert(Record::new(77, vector(77))).unwrap();
    drop(c);
    let d = within_watchdog("reopen", {
        let p = dir.path().to_path_buf();
        move || Database::open(p)
    })
    .unwrap();
    assert_eq!(d.collection("e").unwrap().len(), 51);
}
