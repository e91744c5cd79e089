//! Fault injection through the I/O seam (`cairndb::faults`): a write, create, rename
//! or fsync failure at every file operation of a seal and of a compaction, in turn. The
//! operation fails with an error; after a failed seal the database refuses writes until it is
//! reopened; reopened, it holds every acknowledged write and passes `verify`.
//!
//! The hook is process-wide, so everything runs in one test in this binary.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cairndb::faults;
use cairndb::{CollectionConfig, Database, Durability, Metric, Options, Record, SearchRequest};

use common::copy_dir;

const DIM: usize = 8;

fn record(id: u64) -> Record {
    Record::new(
        id,
        (0..DIM as u64)
            .map(|i| ((id * 37 + i * 11) % 101) as f32 / 101.0 + 0.01)
            .collect::<Vec<_>>(),
    )
    .with_text(format!("record {id}"))
    .with_field("odd", id % 2 == 1)
}

fn options() -> Options {
    Options::default()
        .memtable_max_rows(1_000_000)
        .background_compaction(false)
}

/// The model: live ids.
type Model = BTreeMap<u64, ()>;

fn check(path: &Path, model: &Model, ctx: &str) {
    let db = Database::open_with(path, options())
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    db.verify()
        .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), model.len(), "{ctx}");
    for id in 0..700u64 {
        let got = c.get(id).unwrap();
        assert_eq!(got.is_some(), model.contains_key(&id), "{ctx}: id {id}");
        if let Some(r) = got {
            assert_eq!(r.text, record(id).text, "{ctx}: id {id}");
        }
    }
    let hits = c
        .search(&SearchRequest::new(record(3).vector).k(1000).exact(true))
        .unwrap();
    assert_eq!(hits.len(), model.len(), "{ctx}");
    // Writes work again after the reopen.
    c.upsert(record(10_000)).unwrap();
}

#[test]
fn a_failure_at_every_io_call_of_a_seal_and_a_compaction() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();

    // Template: one segment with deletes not yet persisted, and a memtable.
    let template = tmp.path().join("template");
    let mut model = Model::new();
    {
        let db = Database::open_with(&template, options()).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::new(DIM, Metric::Cosine))
            .unwrap();
        c.upsert((0..300).map(record).collect::<Vec<_>>()).unwrap();
        c.flush().unwrap();
        c.upsert((300..500).map(record).collect::<Vec<_>>())
            .unwrap();
        let dels: Vec<u64> = (0..300).filter(|i| i % 6 == 0).collect();
        c.delete(&dels).unwrap();
        model.extend((0..500).map(|i| (i, ())));
        for d in dels {
            model.remove(&d);
        }
    }

    // a. Seal.
    let work = tmp.path().join("work");
    let run_seal = |fail_at: Option<u64>| -> (cairndb::Result<()>, Database) {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&template, &work);
        let db = Database::open_with(&work, options()).unwrap();
        let c = db.collection("c").unwrap();
        match fail_at {
            Some(n) => faults::arm(n),
            None => faults::count(),
        }
        let r = c.flush();
        (r, db)
    };
    let (r, db) = run_seal(None);
    let seal_ops = faults::disarm();
    r.unwrap();
    drop(db);
    assert!(
        seal_ops >= 10,
        "a seal made only {seal_ops} file operations"
    );
    check(&work, &model, "seal without faults");
    let mut kinds = std::collections::HashSet::new();
    for n in 0..seal_ops {
        let (r, db) = run_seal(Some(n));
        faults::disarm();
        let (op, path) = faults::failed().expect("the armed operation was reached");
        kinds.insert(format!("{op:?}"));
        let ctx = format!("seal, failure {n} of {seal_ops} ({op:?} on {path})");
        let c = db.collection("c").unwrap();
        if r.is_ok() {
            // Only the clean-up after publishing is best effort: the fsync of the log
            // directory after old log files are removed.
            assert_eq!(n, seal_ops - 1, "{ctx}: a failure went unreported");
        } else {
            // Until reopened, the database refuses writes.
            assert!(
                c.upsert(record(9_999)).is_err(),
                "{ctx}: a write was accepted"
            );
        }
        drop(c);
        drop(db);
        check(&work, &model, &ctx);
    }
    assert!(kinds.len() >= 3, "only {kinds:?} were failed");

    // b. Compaction of two segments with deletes.
    let template2 = tmp.path().join("template2");
    copy_dir(&template, &template2);
    {
        let db = Database::open_with(&template2, options()).unwrap();
        db.collection("c").unwrap().flush().unwrap();
    }
    let run_compact = |fail_at: Option<u64>| -> (cairndb::Result<()>, Database) {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&template2, &work);
        let db = Database::open_with(&work, options()).unwrap();
        let c = db.collection("c").unwrap();
        match fail_at {
            Some(n) => faults::arm(n),
            None => faults::count(),
        }
        let r = c
            .compact()
            .map(|rep| assert!(rep.segments_in >= 2, "{rep:?}"));
        (r, db)
    };
    let (r, db) = run_compact(None);
    let compact_ops = faults::disarm();
    r.unwrap();
    drop(db);
    assert!(
        compact_ops >= 10,
        "a compaction made only {compact_ops} file operations"
    );
    check(&work, &model, "compaction without faults");
    // c. Power loss at every operation of a seal and of a compaction: what the disk holds
    // (only fsynced bytes, only entries whose directory was fsynced) reopens with everything.
    let snap = tmp.path().join("snap");
    for (what, template, ops) in [
        ("seal", &template, seal_ops),
        ("compaction", &template2, compact_ops),
    ] {
        for n in 0..ops {
            let _ = std::fs::remove_dir_all(&work);
            let _ = std::fs::remove_dir_all(&snap);
            copy_dir(template, &work);
            let db = Database::open_with(&work, options()).unwrap();
            let c = db.collection("c").unwrap();
            faults::power_loss_at(n, &work, &snap);
            let r = if what == "seal" {
                c.flush()
            } else {
                c.compact().map(drop)
            };
            faults::disarm();
            r.unwrap();
            assert!(
                faults::power_loss_taken(),
                "{what}: operation {n} not reached"
            );
            drop(c);
            drop(db);
            check(
                &snap,
                &model,
                &format!("{what}: power loss before operation {n} of {ops}"),
            );
        }
    }

    for n in 0..compact_ops {
        let (r, db) = run_compact(Some(n));
        faults::disarm();
        let (op, path) = faults::failed().expect("the armed operation was reached");
        let ctx = format!("compaction, failure {n} of {compact_ops} ({op:?} on {path})");
        // The last directory fsync (after the old files are removed) is best effort.
        if r.is_ok() {
            assert_eq!(n, compact_ops - 1, "{ctx}: a failure went unreported");
        } else if op == faults::Op::Sync {
            // After a failed fsync, writes are refused until the database is reopened.
            let c = db.collection("c").unwrap();
            assert!(
                c.upsert(record(9_999)).is_err(),
                "{ctx}: a write was accepted"
            );
        }
        drop(db);
        check(&work, &model, &ctx);
    }
}

/// Power loss while a Buffered database appends: what survives is a prefix of whole batches
/// that holds at least every batch synced before the cut.
#[test]
fn power_loss_keeps_a_prefix_of_whole_batches() {
    // Runs after the other test only if the harness runs tests one at a time; the hook is
    // process-wide, so serialize with a lock.
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let db_path = tmp.path().join("db");
    let opts = options().durability(Durability::Buffered {
        interval: std::time::Duration::from_secs(3600),
    });
    {
        let db = Database::open_with(&db_path, opts.clone()).unwrap();
        db.create_collection("c", CollectionConfig::new(DIM, Metric::Cosine))
            .unwrap();
    }
    let template = tmp.path().join("template");
    copy_dir(&db_path, &template);
    // One pass to learn the operation counts: after batch b, `marks[b]` = (ops so far, synced).
    let run = |crash: Option<(u64, &Path)>| -> Vec<(u64, bool)> {
        let work = tmp.path().join("work");
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&template, &work);
        let db = Database::open_with(&work, opts.clone()).unwrap();
        let c = db.collection("c").unwrap();
        match crash {
            Some((n, dest)) => faults::power_loss_at(n, &work, dest),
            None => faults::count(),
        }
        let mut marks = Vec::new();
        for b in 0..12u64 {
            c.upsert((b * 10..b * 10 + 10).map(record).collect::<Vec<_>>())
                .unwrap();
            let synced = b % 4 == 3;
            if synced {
                db.sync().unwrap();
            }
            marks.push((faults::seen(), synced));
        }
        faults::disarm();
        marks
    };
    let marks = run(None);
    let total = marks.last().unwrap().0;
    assert!(total >= 6, "{marks:?}");
    let snap = tmp.path().join("snap");
    let mut lost_unsynced = 0;
    for n in 0..total {
        let _ = std::fs::remove_dir_all(&snap);
        run(Some((n, &snap)));
        assert!(faults::power_loss_taken());
        // Batches whose sync completed before operation n must survive; batches written
        // after it cannot.
        let must = marks
            .iter()
            .enumerate()
            .filter(|(_, m)| m.1 && m.0 <= n)
            .map(|(b, _)| b as u64 + 1)
            .max()
            .unwrap_or(0);
        let may = marks.iter().filter(|m| m.0 <= n).count() as u64 + 1;
        let db = Database::open_with(&snap, opts.clone())
            .unwrap_or_else(|e| panic!("power loss at {n}: reopen: {e}"));
        db.verify().unwrap();
        let c = db.collection("c").unwrap();
        let len = c.len() as u64;
        assert_eq!(
            len % 10,
            0,
            "power loss at {n}: {len} records is not whole batches"
        );
        let batches = len / 10;
        assert!(
            (must..=may).contains(&batches),
            "power loss at {n}: {batches} batches, expected {must}..={may}"
        );
        for id in 0..len {
            assert!(
                c.get(id).unwrap().is_some(),
                "power loss at {n}: {id} missing"
            );
        }
        lost_unsynced += usize::from(batches + 1 < may);
    }
    // The model does drop what was written but not synced.
    assert!(
        lost_unsynced > 0,
        "no power-loss point lost an unsynced batch"
    );
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
