//! Snapshot reads under writes: one writer upserts whole versions of a record set, deletes,
//! seals and compacts (and the background compactor runs) while eight readers search. Every
//! result must come from one committed version: all hits carry the same version, an exact
//! search returns every live record, a graph search returns k hits, and versions seen by a
//! reader never go back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use cairndb::{CollectionConfig, Database, Metric, Options, Record, SearchRequest, Value};

const N: u64 = 300;
const DIM: usize = 8;

fn vector(id: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|i| ((id * 131 + i * 71) % 97) as f32 / 97.0 + 0.01)
        .collect()
}

fn version_of(h: &cairndb::Hit) -> i64 {
    match h.payload.as_ref().and_then(|p| p.get("version")) {
        Some(Value::Int(v)) => *v,
        other => panic!("hit {} without a version: {other:?}", h.id),
    }
}

#[test]
fn readers_see_one_committed_version() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .memtable_max_rows(700)
        .compaction_policy(3, 0.2);
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db
        .create_collection("v", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    let batch = |v: i64, ids: std::ops::Range<u64>| -> Vec<Record> {
        ids.map(|id| Record::new(id, vector(id)).with_field("version", v))
            .collect()
    };
    c.upsert(batch(0, 0..N)).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            let done = Arc::clone(&done);
            let checks = Arc::clone(&checks);
            std::thread::spawn(move || {
                let mut last = 0i64;
                let mut i = t as u64;
                while !done.load(Ordering::Acquire) {
                    i += 1;
                    let q = vector(i * 7 + 3);
                    let exact = c
                        .search(
                            &SearchRequest::new(q.clone())
                                .k(1000)
                                .exact(true)
                                .with_payload(true),
                        )
                        .unwrap();
                    let v = version_of(&exact[0]);
                    assert!(
                        exact.iter().all(|h| version_of(h) == v),
                        "mixed versions in an exact result"
                    );
                    // Committed states: all N records of a version, or — around a version v with
                    // v % 10 == 5 — the 50 top ids deleted (after the delete batch, still at
                    // version v - 1, then at version v).
                    let ok = exact.len() == N as usize
                        || (exact.len() == N as usize - 50 && matches!(v % 10, 4 | 5));
                    assert!(ok, "{} records at version {v}", exact.len());
                    assert!(v >= last, "version went back from {last} to {v}");
                    let graph = c
                        .search(&SearchRequest::new(q).k(10).with_payload(true))
                        .unwrap();
                    assert_eq!(graph.len(), 10, "graph search at version ≥ {v}");
                    let gv = version_of(&graph[0]);
                    assert!(
                        graph.iter().all(|h| version_of(h) == gv),
                        "mixed versions in a graph result"
                    );
                    assert!(gv >= v, "graph search saw version {gv} after {v}");
                    last = gv;
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    for v in 1..=60i64 {
        if v % 10 == 5 {
            // Two batches: the delete (readers may see version v - 1 without the top 50),
            // then the upsert of the rest at version v.
            c.delete(&(N - 50..N).collect::<Vec<_>>()).unwrap();
            c.upsert(batch(v, 0..N - 50)).unwrap();
        } else {
            c.upsert(batch(v, 0..N)).unwrap();
        }
        if v % 7 == 0 {
            c.flush().unwrap();
        }
        if v % 13 == 0 {
            c.compact().unwrap();
        }
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    assert!(checks.load(Ordering::Relaxed) > 0);
    db.verify().unwrap();
}
