//! Read-only handles following a writer, in one process (the protocol is the same across
//! processes: the reader takes no lock and learns everything from the files). Every step
//! compares the reader's whole state with the writer's.

mod common;

use std::collections::BTreeMap;

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Error, Filter, Metric, Options, Record,
    SearchRequest,
};
use common::Rng as Lcg;

const DIM: usize = 8;

fn writer_opts() -> Options {
    Options::default()
        .durability(Durability::Sync)
        .memtable_max_rows(50)
        .wal_file_bytes(16 << 10)
        .max_wal_bytes(64 << 10)
}

fn rec(rng: &mut Lcg, id: u64) -> Record {
    let v: Vec<f32> = (0..DIM).map(|_| rng.f32_in(-1.0, 1.0)).collect();
    Record::new(id, v).with_text(format!("record {id} word{}", id % 7))
}

/// Every live record of a collection, by id: (vector, text), from one exact search.
fn contents(c: &Collection) -> BTreeMap<u64, (Vec<f32>, Option<String>)> {
    let n = c.len().max(1);
    let hits = c
        .query(
            &SearchRequest::new(vec![0.5; DIM])
                .k(n + 10)
                .exact(true)
                .with_text(true),
        )
        .unwrap()
        .hits;
    let mut out = BTreeMap::new();
    for h in hits {
        let r = c.get(&h.id).unwrap().expect("a hit can be fetched");
        out.insert(h.id.as_u64().unwrap(), (r.vector, r.text));
    }
    out
}

fn same(writer: &Collection, reader: &Collection, what: &str) {
    let w = contents(writer);
    let r = contents(reader);
    assert_eq!(
        w.len(),
        r.len(),
        "{what}: writer has {}, reader {}",
        w.len(),
        r.len()
    );
    assert!(w == r, "{what}: contents differ");
    assert_eq!(writer.len(), reader.len(), "{what}: len");
    // Graph searches on the reader (whose newest rows may not be linked yet: they are scored
    // exactly) find what exact search finds.
    let q = vec![0.25; DIM];
    let ids = |exact: bool| -> Vec<u64> {
        let req = SearchRequest::new(q.clone()).k(10).ef(200).exact(exact);
        reader
            .search(&req)
            .unwrap()
            .iter()
            .map(|h| h.id.as_u64().unwrap())
            .collect()
    };
    let (got, exact) = (ids(false), ids(true));
    let found = got.iter().filter(|id| exact.contains(id)).count();
    assert!(
        found * 10 >= exact.len() * 8,
        "{what}: {got:?} vs {exact:?}"
    );
}

#[test]
fn a_reader_sees_every_acknowledged_batch_through_seals_compactions_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg::new(7);
    let w = Database::open_with(dir.path(), writer_opts()).unwrap();
    let wc = w
        .create_collection("docs", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    let r = Database::open_read_only(dir.path()).unwrap();
    assert!(r.is_read_only());
    let rc = r.collection("docs").unwrap();
    same(&wc, &rc, "empty");

    let mut next_id = 0u64;
    for step in 0..120 {
        match step % 10 {
            // A batch of new records and replacements.
            0..=5 => {
                let mut batch = Vec::new();
                for _ in 0..7 {
                    batch.push(rec(&mut rng, next_id));
                    next_id += 1;
                }
                for _ in 0..3 {
                    let id = rng.below(next_id);
                    batch.push(rec(&mut rng, id));
                }
                wc.upsert(batch).unwrap();
            }
            6 | 7 => {
                let ids: Vec<u64> = (0..4).map(|_| rng.below(next_id.max(1))).collect();
                wc.delete(&ids).unwrap();
            }
            8 => wc.flush().unwrap(),
            _ => {
                wc.compact().unwrap();
            }
        }
        same(&wc, &rc, &format!("step {step}"));
    }

    // The writer closes and a new one opens (a new epoch): the reader follows it.
    drop(wc);
    drop(w);
    same_after_reopen(dir.path(), &rc, &mut rng, next_id);
}

fn same_after_reopen(path: &std::path::Path, rc: &Collection, rng: &mut Lcg, next_id: u64) {
    let w = Database::open_with(path, writer_opts()).unwrap();
    let wc = w.collection("docs").unwrap();
    same(&wc, rc, "after the writer reopened");
    wc.upsert(vec![rec(rng, next_id), rec(rng, 0)]).unwrap();
    same(&wc, rc, "a batch of the new writer");
}

#[test]
fn writes_on_a_read_only_handle_fail_and_collections_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let w = Database::open_with(dir.path(), writer_opts()).unwrap();
    let r = Database::open_read_only(dir.path()).unwrap();
    assert!(r.collections().is_empty());
    let wc = w
        .create_collection("a", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    wc.upsert(Record::new(1, vec![1.0; DIM])).unwrap();
    // A collection the writer created after the reader opened.
    assert_eq!(r.collections(), vec!["a".to_string()]);
    let rc = r.collection("a").unwrap();
    assert_eq!(rc.len(), 1);
    assert_eq!(
        r.stats().wal_bytes,
        w.stats().wal_bytes,
        "the reader sizes the log on disk"
    );

    let read_only = |e: Error| assert!(matches!(e, Error::ReadOnly { .. }), "{e:?}");
    read_only(rc.upsert(Record::new(2, vec![1.0; DIM])).unwrap_err());
    read_only(rc.delete(&[1]).unwrap_err());
    read_only(rc.flush().unwrap_err());
    read_only(rc.compact().unwrap_err());
    read_only(
        r.create_collection("b", CollectionConfig::new(DIM, Metric::L2))
            .unwrap_err(),
    );
    read_only(r.drop_collection("a").unwrap_err());
    read_only(r.sync().unwrap_err());
    assert_eq!(wc.len(), 1);
    assert_eq!(rc.len(), 1);

    // Dropped by the writer: the reader's handle says so; a new one of that name is new.
    w.drop_collection("a").unwrap();
    assert!(matches!(
        rc.get(1).unwrap_err(),
        Error::CollectionDropped { .. }
    ));
    assert!(r.collections().is_empty());
    let wc = w
        .create_collection("a", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    wc.upsert(Record::new(5, vec![2.0; DIM])).unwrap();
    let rc = r.collection("a").unwrap();
    assert_eq!(rc.get(5).unwrap().unwrap().vector, vec![2.0; DIM]);
    assert_eq!(rc.get(1).unwrap(), None);
}

#[test]
fn buffered_batches_show_once_durable_and_a_dead_writer_leaves_its_durable_state() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().durability(Durability::buffered());
    let w = Database::open_with(dir.path(), opts).unwrap();
    let wc = w
        .create_collection("c", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    let r = Database::open_read_only(dir.path()).unwrap();
    let rc = r.collection("c").unwrap();
    wc.upsert(Record::new(1, vec![0.1; DIM])).unwrap();
    w.sync().unwrap();
    assert_eq!(rc.len(), 1, "durable after sync");
    // A reader never sees more than the writer made durable: a batch may wait for the
    // background sync, but it shows once the writer syncs.
    wc.upsert(Record::new(2, vec![0.2; DIM])).unwrap();
    assert!(rc.len() <= 2);
    w.sync().unwrap();
    assert_eq!(rc.len(), 2);
    drop(wc);
    drop(w);
    assert_eq!(rc.len(), 2, "the writer is gone; its durable state stays");
    assert_eq!(rc.get(2).unwrap().unwrap().vector, vec![0.2; DIM]);
}

#[test]
fn a_database_without_a_beacon_is_read_to_the_end_of_its_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let w = Database::open_with(dir.path(), writer_opts()).unwrap();
        let c = w
            .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
            .unwrap();
        c.upsert(
            (0..10)
                .map(|i| Record::new(i, vec![i as f32; DIM]))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    }
    // As a database last written by a version without BEACON.
    std::fs::remove_file(dir.path().join("BEACON")).unwrap();
    let r = Database::open_read_only(dir.path()).unwrap();
    assert_eq!(r.collection("c").unwrap().len(), 10);
    assert!(
        !dir.path().join("BEACON").exists(),
        "a reader creates nothing"
    );
}

#[test]
fn opening_read_only_where_there_is_no_database_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing");
    assert!(Database::open_read_only(&missing).is_err());
    assert!(!missing.exists());
    assert!(Database::open_read_only(dir.path()).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_waiting_writer_takes_over_when_the_holder_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = Database::open(dir.path()).unwrap();
    let e = Database::open(dir.path()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Locked { pid: Some(p), .. } if p == std::process::id()));
    assert!(
        text.contains("read-only") && text.contains("lock_timeout"),
        "{text}"
    );
    // A short wait fails the same way.
    let opts = Options::default().lock_timeout(std::time::Duration::from_millis(30));
    assert!(matches!(
        Database::open_with(dir.path(), opts).unwrap_err(),
        Error::Locked { .. }
    ));
    // A long one takes over once the holder closes.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.path().to_owned();
    let waiter = std::thread::spawn(move || {
        let opts = Options::default().lock_timeout(std::time::Duration::from_secs(60));
        tx.send(()).unwrap();
        Database::open_with(&path, opts).map(|_| ())
    });
    rx.recv().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(first);
    waiter.join().unwrap().unwrap();
}

#[test]
fn many_reader_threads_see_every_batch_acknowledged_before_their_call() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let w = Database::open_with(dir.path(), writer_opts()).unwrap();
    let wc = w
        .create_collection("m", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    let r = Database::open_read_only(dir.path()).unwrap();
    let rc = r.collection("m").unwrap();
    // Batch i holds ids 10i..10i+10; `acked` is the number of batches acknowledged.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|t| {
            let (rc, acked, stop) = (rc.clone(), Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let a = acked.load(Ordering::Acquire);
                    if a == 0 {
                        continue;
                    }
                    let last = (a - 1) * 10 + t % 10;
                    assert!(
                        rc.get(last).unwrap().is_some(),
                        "thread {t}: id {last} of acknowledged batch {} missing",
                        a - 1
                    );
                    let n = rc.len() as u64;
                    assert!(n >= a * 10, "thread {t}: len {n} < {}", a * 10);
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for b in 0..60u64 {
        let batch: Vec<Record> = (0..10)
            .map(|i| Record::new(b * 10 + i, vec![(b * 10 + i) as f32; DIM]))
            .collect();
        wc.upsert(batch).unwrap();
        acked.store(b + 1, Ordering::Release);
        if b % 20 == 19 {
            wc.flush().unwrap();
        }
    }
    stop.store(true, Ordering::Release);
    let checks: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(checks > 0);
    assert_eq!(rc.len(), 600);
}

#[test]
fn a_database_caught_mid_creation_opens_read_only_empty() {
    // Creation writes MANIFEST first, then the log and collection directories.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    drop(Database::open(&src).unwrap());
    let half = dir.path().join("half");
    std::fs::create_dir(&half).unwrap();
    std::fs::copy(src.join("MANIFEST"), half.join("MANIFEST")).unwrap();
    let r = Database::open_read_only(&half).unwrap();
    assert!(r.collections().is_empty());
    let names: Vec<_> = std::fs::read_dir(&half)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("MANIFEST")],
        "nothing was created"
    );
}

#[test]
fn a_lock_timeout_too_long_for_the_clock_waits_instead_of_panicking() {
    // now + Duration::MAX overflows `Instant`: the open used to panic, free lock or not.
    let dir = tempfile::tempdir().unwrap();
    let forever = Options::default().lock_timeout(std::time::Duration::MAX);
    let first = Database::open_with(dir.path(), forever.clone()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.path().to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(Database::open_with(&path, forever).map(|_| ()));
    });
    drop(first);
    let taken = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the waiting open did not take over within 60 s");
    taken.unwrap();
}

#[test]
fn a_log_file_missing_before_later_ones_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let w = Database::open_with(
            dir.path(),
            writer_opts()
                .memtable_max_rows(100_000)
                .max_wal_bytes(1 << 30),
        )
        .unwrap();
        let c = w
            .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
            .unwrap();
        let mut rng = Lcg::new(3);
        for b in 0..60u64 {
            c.upsert(
                (0..10)
                    .map(|i| rec(&mut rng, b * 10 + i))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        }
    }
    let mut wals: Vec<_> = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    wals.sort();
    assert!(wals.len() >= 3, "{wals:?}");
    std::fs::remove_file(&wals[1]).unwrap();
    // With the last writer's beacon, and without one.
    for beacon in [true, false] {
        if !beacon {
            std::fs::remove_file(dir.path().join("BEACON")).unwrap();
        }
        match Database::open_read_only(dir.path()) {
            Err(Error::Corruption { what, .. }) => assert!(what.contains(".wal"), "{what}"),
            Err(e) => panic!("beacon {beacon}: {e}"),
            Ok(r) => panic!(
                "beacon {beacon}: opened with {} records",
                r.collection("c").unwrap().len()
            ),
        }
    }
}

/// A segment's field and text indexes are decoded on first use. A call that holds a segment
/// while the writer (in this process or another) removes its directory after a compaction
/// must still read them: they were opened with the segment. (The kill test's readers found
/// `verify` failing with "fields: No such file or directory".)
#[test]
fn a_segment_removed_under_a_reader_still_serves_its_lazy_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Lcg::new(11);
    let db = Database::open_with(dir.path(), writer_opts()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    let recs: Vec<Record> = (0..40)
        .map(|i| rec(&mut rng, i).with_field("even", i % 2 == 0))
        .collect();
    c.upsert(recs).unwrap();
    c.flush().unwrap();
    let reader = Database::open_read_only(dir.path()).unwrap();
    let rc = reader.collection("c").unwrap();
    assert_eq!(rc.len(), 40);
    // What a compaction's clean-up does, without telling the reader (the beacon is unchanged,
    // so the reader goes on with the segment it holds, as a call in flight would).
    let segs: Vec<_> = std::fs::read_dir(dir.path().join("collections/c"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(segs.len(), 1, "one segment: {segs:?}");
    std::fs::remove_dir_all(&segs[0]).unwrap();

    let even = rc
        .search(
            &SearchRequest::new(vec![0.5; DIM])
                .k(100)
                .exact(true)
                .filter(Filter::eq("even", true)),
        )
        .unwrap();
    assert_eq!(even.len(), 20, "the filter read the fields index");
    let text = rc.search(&SearchRequest::by_text("word3").k(100)).unwrap();
    let want = (0..40).filter(|i| i % 7 == 3).count();
    assert_eq!(text.len(), want, "the text index");
    reader.verify().unwrap();
    drop(db);
}
