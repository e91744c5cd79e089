//! One quiet collection must not keep a busy one's log from being trimmed.

mod common;

use cairndb::{CollectionConfig, Database, Durability, Metric, Options, Record};

#[test]
fn quiet_collection_is_sealed_when_the_log_passes_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .durability(Durability::buffered())
        .wal_file_bytes(64 << 10)
        .max_wal_bytes(256 << 10)
        .memtable_max_rows(1_000_000);
    let db = Database::open_with(dir.path(), opts.clone()).unwrap();
    let quiet = db
        .create_collection("quiet", CollectionConfig::new(4, Metric::L2))
        .unwrap();
    let busy = db
        .create_collection("busy", CollectionConfig::new(64, Metric::L2))
        .unwrap();
    quiet
        .upsert(Record::new(1, vec![1.0, 2.0, 3.0, 4.0]))
        .unwrap();
    let mut max_log = 0;
    for b in 0..200u64 {
        let batch: Vec<Record> = (0..10)
            .map(|i| Record::new(b * 10 + i, vec![(b * 10 + i) as f32; 64]))
            .collect();
        busy.upsert(batch).unwrap();
        max_log = max_log.max(db.stats().wal_bytes);
    }
    // 2,000 × 64 floats is ~0.5 MiB of log; the budget keeps it near 256 KiB: seals run in
    // the background, and past 1.5 × the budget a writer seals itself (plus the file in use
    // and the one a rotation may have started).
    assert!(
        max_log < 256 * 1024 * 3 / 2 + 2 * 64 * 1024,
        "log grew to {max_log} bytes"
    );
    // Its seal runs in the background: wait (bounded) until no frozen memtable is left.
    let q = common::settled_stats(&quiet);
    assert_eq!(q.segments.len(), 1, "the quiet collection was sealed");
    drop((quiet, busy, db));
    let db = Database::open_with(dir.path(), opts).unwrap();
    assert_eq!(db.collection("busy").unwrap().len(), 2_000);
    let rec = db.collection("quiet").unwrap().get(1).unwrap().unwrap();
    assert_eq!(rec.vector, vec![1.0, 2.0, 3.0, 4.0]);
}
