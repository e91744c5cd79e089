//! Compaction through the public API: after any sequence of upserts, deletes, seals and
//! compactions (and reopens), the collection equals a `HashMap` model; search, filters, BM25
//! and `verify` keep working; deleted rows stop taking disk space; writes that race with a
//! compaction are neither lost nor resurrected.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cairndb::{CollectionConfig, Database, Filter, Metric, Options, Record, SearchRequest};
use proptest::prelude::*;

const DIM: usize = 4;

fn vector(id: u64, salt: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|i| (((id * 31 + salt * 7 + i * 13) % 17) as f32) - 8.0 + 0.5)
        .collect()
}

fn record(id: u64, salt: u64) -> Record {
    Record::new(id, vector(id, salt))
        .with_text(format!("item {id} salt{salt}"))
        .with_field("salt", salt as i64)
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<(u64, u64)>),
    Delete(Vec<u64>),
    Flush,
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u64..80, 0u64..5), 1..20).prop_map(Op::Upsert),
        3 => prop::collection::vec(0u64..80, 1..12).prop_map(Op::Delete),
        2 => Just(Op::Flush),
        2 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn check(c: &cairndb::Collection, model: &HashMap<u64, u64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.len(), model.len());
    for id in 0..80u64 {
        let got = c.get(id).unwrap();
        match model.get(&id) {
            Some(&salt) => {
                let r = got.expect("a live record is found");
                prop_assert_eq!(r.text, Some(format!("item {id} salt{salt}")));
            }
            None => prop_assert!(got.is_none(), "deleted id {} found", id),
        }
    }
    // Exact search returns exactly the live records; a filter and BM25 see the same set.
    let all = c
        .search(&SearchRequest::new(vec![1.0; DIM]).k(1000).exact(true))
        .unwrap();
    prop_assert_eq!(all.len(), model.len());
    let salt3 = c
        .search(
            &SearchRequest::new(vec![1.0; DIM])
                .k(1000)
                .filter(Filter::eq("salt", 3)),
        )
        .unwrap();
    prop_assert_eq!(salt3.len(), model.values().filter(|&&s| s == 3).count());
    let text = c.search(&SearchRequest::by_text("salt2").k(1000)).unwrap();
    prop_assert_eq!(text.len(), model.values().filter(|&&s| s == 2).count());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn compaction_keeps_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default().memtable_max_rows(30).background_compaction(false);
        let cfg = CollectionConfig::new(DIM, Metric::L2);
        let mut db = Database::open_with(dir.path(), opts.clone()).unwrap();
        let mut c = db.create_collection("c", cfg).unwrap();
        let mut model: HashMap<u64, u64> = HashMap::new();
        for op in &ops {
            match op {
                Op::Upsert(rows) => {
                    c.upsert(rows.iter().map(|&(id, s)| record(id, s)).collect::<Vec<_>>()).unwrap();
                    for &(id, s) in rows { model.insert(id, s); }
                }
                Op::Delete(ids) => {
                    c.delete(ids).unwrap();
                    for id in ids { model.remove(id); }
                }
                Op::Flush => c.flush().unwrap(),
                Op::Compact => {
                    let before: Vec<u64> = c.stats().segments.iter().map(|s| s.id).collect();
                    let r = c.compact().unwrap();
                    let after = c.stats();
                    // Memtables frozen before the compaction may be sealed while it runs: their
                    // segments are new. Of the segments that were there, at most one is left
                    // (none was compacted only if there was nothing to do), and the output has
                    // no deleted rows.
                    let old: Vec<_> = after.segments.iter().filter(|s| before.contains(&s.id)).collect();
                    prop_assert!(old.len() <= 1);
                    if r.segments_in > 0 {
                        prop_assert!(old.is_empty());
                        prop_assert!(after
                            .segments
                            .iter()
                            .filter(|s| Some(s.id) == r.segment)
                            .all(|s| s.deleted == 0));
                    }
                }
                Op::Reopen => {
                    drop(c);
                    drop(db);
                    db = Database::open_with(dir.path(), opts.clone()).unwrap();
                    c = db.collection("c").unwrap();
                }
            }
            check(&c, &model)?;
        }
        db.verify().unwrap();
        drop(c);
        drop(db);
        let db = Database::open_with(dir.path(), opts).unwrap();
        let c = db.collection("c").unwrap();
        check(&c, &model)?;
        db.verify().unwrap();
    }
}

/// Deleting half of the records and compacting returns their disk space and removes the old
/// segment directories.
#[test]
fn compaction_returns_disk_space() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .memtable_max_rows(2_000)
        .background_compaction(false);
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(32, Metric::Cosine))
        .unwrap();
    let rec = |id: u64| {
        // Distinct pseudo-random vectors (a hash of id and dimension).
        Record::new(
            id,
            (0..32u64)
                .map(|i| {
                    let h = (id * 32 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                    (h % 1000) as f32 / 1000.0 + 0.001
                })
                .collect::<Vec<_>>(),
        )
    };
    for chunk in (0..8_000u64).collect::<Vec<_>>().chunks(1_000) {
        c.upsert(chunk.iter().map(|&id| rec(id)).collect::<Vec<_>>())
            .unwrap();
    }
    c.flush().unwrap();
    let full: u64 = c.stats().segments.iter().map(|s| s.bytes).sum();
    assert_eq!(c.stats().segments.len(), 4);
    let odd: Vec<u64> = (0..8_000).filter(|i| i % 2 == 1).collect();
    c.delete(&odd).unwrap();
    let r = c.compact().unwrap();
    assert_eq!((r.segments_in, r.rows_in, r.rows_out), (4, 8_000, 4_000));
    let stats = c.stats();
    assert_eq!(stats.segments.len(), 1);
    let half: u64 = stats.segments.iter().map(|s| s.bytes).sum();
    assert!(
        half * 10 < full * 6,
        "{half} of {full} bytes after compaction"
    );
    let seg_dirs = std::fs::read_dir(dir.path().join("collections").join("c"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("seg-")
        })
        .count();
    assert_eq!(seg_dirs, 1, "old segment directories are removed");
    // HNSW still finds records after the rebuild.
    for id in [0u64, 2, 4000, 7998] {
        let hits = c.search(&SearchRequest::new(rec(id).vector).k(10)).unwrap();
        assert!(hits.iter().any(|h| h.id == id), "{id} not found: {hits:?}");
    }
    db.verify().unwrap();
}

/// A writer upserts and deletes while compactions run: afterwards the collection equals what
/// the writer did.
#[test]
fn writes_racing_with_compaction_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(500)).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    for chunk in (0..3_000u64).collect::<Vec<_>>().chunks(500) {
        c.upsert(chunk.iter().map(|&id| record(id, 0)).collect::<Vec<_>>())
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = {
        let c = c.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                c.compact().unwrap();
                n += 1;
            }
            n
        })
    };
    let mut model: HashMap<u64, u64> = (0..3_000).map(|id| (id, 0)).collect();
    for round in 1..=30u64 {
        let ids: Vec<u64> = (0..100).map(|i| (round * 97 + i * 31) % 3_000).collect();
        c.upsert(
            ids.iter()
                .map(|&id| record(id, round % 5))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for &id in &ids {
            model.insert(id, round % 5);
        }
        let del: Vec<u64> = (0..40).map(|i| (round * 53 + i * 71) % 3_000).collect();
        c.delete(&del).unwrap();
        for id in &del {
            model.remove(id);
        }
        if round % 7 == 0 {
            c.flush().unwrap();
        }
    }
    stop.store(true, Ordering::Release);
    let runs = compactor.join().unwrap();
    assert!(runs > 0);
    c.compact().unwrap();
    assert_eq!(c.len(), model.len());
    for (&id, &salt) in &model {
        let r = c.get(id).unwrap().unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(r.text, Some(format!("item {id} salt{salt}")));
    }
    for id in 0..3_000u64 {
        if !model.contains_key(&id) {
            assert!(c.get(id).unwrap().is_none(), "{id} resurrected");
        }
    }
    db.verify().unwrap();
}

/// With the background policy on, many small seals and heavy deletes are compacted without
/// being asked: the segment count comes back under the limit and deleted rows are dropped,
/// and the data stays equal to the model.
#[test]
fn background_compaction_follows_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .memtable_max_rows(100)
        .compaction_policy(4, 0.2);
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    let mut model: HashMap<u64, u64> = HashMap::new();
    for chunk in (0..2_000u64).collect::<Vec<_>>().chunks(100) {
        c.upsert(chunk.iter().map(|&id| record(id, 1)).collect::<Vec<_>>())
            .unwrap();
        for &id in chunk {
            model.insert(id, 1);
        }
    }
    let del: Vec<u64> = (0..2_000).filter(|i| i % 3 == 0).collect();
    c.delete(&del).unwrap();
    for id in &del {
        model.remove(id);
    }
    c.flush().unwrap();
    // Wait (bounded) for the background thread; no timing is asserted, only the outcome.
    let settled = |s: &cairndb::CollectionStats| {
        s.segments.len() <= 4
            && s.segments
                .iter()
                .all(|g| g.deleted as f64 <= 0.2 * g.rows as f64)
    };
    let start = std::time::Instant::now();
    while !settled(&c.stats()) && start.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stats = c.stats();
    assert!(settled(&stats), "{stats:?}");
    assert_eq!(c.len(), model.len());
    for (&id, &salt) in &model {
        let r = c.get(id).unwrap().unwrap();
        assert_eq!(r.text, Some(format!("item {id} salt{salt}")));
    }
    db.verify().unwrap();
    // Closing releases the directory (once a check the thread may be running ends).
    drop(c);
    drop(db);
    let db = common::open_retrying(
        dir.path(),
        Options::default(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(db.collection("c").unwrap().len(), model.len());
}

/// `stats` accounts for memory: the memtable's heap bytes grow with its rows and its byte
/// budget seals it; segments report mapped bytes, and index heap bytes once a filtered or
/// text search has decoded their indexes.
#[test]
fn stats_account_for_memory() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .memtable_max_bytes(64 << 10)
        .background_compaction(false);
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    c.upsert(record(0, 0)).unwrap();
    let one = c.stats().memtable_bytes;
    c.upsert((1..100).map(|id| record(id, 0)).collect::<Vec<_>>())
        .unwrap();
    let hundred = c.stats().memtable_bytes;
    assert!(one > 0 && hundred >= 50 * one, "{one} → {hundred}");
    assert_eq!(c.stats().segments.len(), 0);
    // 64 KiB of memtable: a few hundred records of this size seal it without being asked.
    for chunk in (100..3_000u64).collect::<Vec<_>>().chunks(100) {
        c.upsert(chunk.iter().map(|&id| record(id, 1)).collect::<Vec<_>>())
            .unwrap();
    }
    // Seals run in the background: wait (bounded) until no frozen memtable is left.
    let s = common::settled_stats(&c);
    assert!(s.segments.len() >= 2, "{s:?}");
    assert!(s.memtable_bytes <= 2 * (64 << 10), "{s:?}");
    for seg in &s.segments {
        assert!(
            seg.mapped_bytes > 0 && seg.mapped_bytes <= seg.bytes,
            "{seg:?}"
        );
        assert_eq!(
            seg.index_heap_bytes, 0,
            "indexes are decoded lazily: {seg:?}"
        );
    }
    c.search(&SearchRequest::by_text("salt1").k(3)).unwrap();
    c.search(
        &SearchRequest::new(vec![1.0; DIM])
            .filter(Filter::eq("salt", 1))
            .k(3),
    )
    .unwrap();
    assert!(c.stats().segments.iter().all(|s| s.index_heap_bytes > 0));
}
