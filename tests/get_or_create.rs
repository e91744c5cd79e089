//! `Database::get_or_create_collection`: the existing collection when its dimension and metric
//! match, a clear error naming the setting when they do not, a new collection otherwise — one
//! collection even when threads ask for it at once. And a collection's configuration is
//! readable after a reopen.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cairndb::{CollectionConfig, Database, Error, IdType, Metric, Options, Record, TextConfig};

fn options() -> Options {
    Options::default().background_compaction(false)
}

fn config(dim: usize, metric: Metric) -> CollectionConfig {
    CollectionConfig::new(dim, metric)
}

#[test]
fn creates_once_then_returns_the_existing_collection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(3, Metric::Dot).with_text(TextConfig::default().stem(true));
    cfg.m = 24;
    cfg.ef_construction = 150;
    {
        let db = Database::open_with(dir.path(), options()).unwrap();
        let c = db.get_or_create_collection("docs", cfg.clone()).unwrap();
        c.upsert(Record::new(1, vec![1.0, 0.0, 0.0])).unwrap();
        // A second call in the same process: the same collection, with its record.
        let again = db.get_or_create_collection("docs", cfg.clone()).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(db.collections(), vec!["docs".to_owned()]);
    }
    // A second run of the same program.
    let db = Database::open_with(dir.path(), options()).unwrap();
    let c = db.get_or_create_collection("docs", cfg.clone()).unwrap();
    assert_eq!(c.len(), 1);
    assert!(c.get(1).unwrap().is_some());
    // The configuration it was created with, read back after the reopen.
    let got = c.config();
    assert_eq!(got.dim, 3);
    assert_eq!(got.metric, Metric::Dot);
    assert_eq!(got.m, 24);
    assert_eq!(got.ef_construction, 150);
    assert!(got.text.stem);
    assert!(!got.text.stop_words);
    assert_eq!(got, &cfg);
}

#[test]
fn a_different_dim_or_metric_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    db.create_collection("docs", config(384, Metric::Cosine))
        .unwrap();

    let e = db
        .get_or_create_collection("docs", config(768, Metric::Cosine))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "collection `docs` exists with dim 384, asked for 768"
    );
    match e {
        Error::CollectionConfigMismatch {
            name,
            setting,
            existing,
            requested,
        } => {
            assert_eq!(
                (name.as_str(), setting.as_str()),
                ("docs", "dim"),
                "{existing} {requested}"
            );
            assert_eq!((existing.as_str(), requested.as_str()), ("384", "768"));
        }
        other => panic!("expected CollectionConfigMismatch, got {other:?}"),
    }

    let e = db
        .get_or_create_collection("docs", config(384, Metric::L2))
        .unwrap_err();
    assert!(
        matches!(&e, Error::CollectionConfigMismatch { setting, .. } if setting == "metric"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "collection `docs` exists with metric cosine, asked for l2"
    );
    // Nothing changed.
    assert_eq!(db.collection("docs").unwrap().config().dim, 384);
    assert_eq!(db.collections().len(), 1);
}

#[test]
fn creation_only_settings_do_not_have_to_match() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let created = db
        .create_collection("docs", config(4, Metric::Cosine))
        .unwrap();
    let mut other = config(4, Metric::Cosine).with_text(TextConfig::default().stop_words(true));
    other.m = 32;
    other.ef_construction = 400;
    let c = db.get_or_create_collection("docs", other).unwrap();
    // The collection keeps what it was created with.
    assert_eq!(c.config(), created.config());
    assert_eq!(c.config().m, 16);
    assert!(!c.config().text.stop_words);
}

#[test]
fn bad_arguments_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    assert!(matches!(
        db.get_or_create_collection("docs", config(0, Metric::Cosine)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.get_or_create_collection("a/b", config(4, Metric::Cosine)),
        Err(Error::InvalidName { .. })
    ));
    assert!(db.collections().is_empty());
}

/// Threads asking for the same new collection at once all get it, and it is created once:
/// none fails with `CollectionExists` (as a check followed by a separate create would, for
/// every thread that lost the race).
#[test]
fn concurrent_calls_create_one_collection() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    for round in 0..ROUNDS {
        let name = format!("c{round}");
        let barrier = Arc::new(Barrier::new(THREADS));
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for t in 0..THREADS {
            let (db, name, barrier, tx) = (db.clone(), name.clone(), barrier.clone(), tx.clone());
            threads.push(std::thread::spawn(move || {
                barrier.wait();
                let r = db
                    .get_or_create_collection(&name, config(2, Metric::L2))
                    .and_then(|c| {
                        c.upsert(Record::new(t as u64, vec![t as f32, 1.0]))?;
                        Ok(c)
                    });
                let _ = tx.send(r);
            }));
        }
        drop(tx);
        let mut handles = Vec::new();
        for _ in 0..THREADS {
            // A watchdog: a thread that hangs fails the test instead of hanging it.
            let r = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a get_or_create_collection call did not return");
            handles.push(r.unwrap_or_else(|e| panic!("round {round}: {e}")));
        }
        // One collection, holding every thread's record, seen alike through every handle.
        for h in &handles {
            assert_eq!(h.len(), THREADS, "round {round}");
        }
        assert_eq!(db.collections().len(), round + 1);
        // Every thread has sent its result: they end at once, letting go of the database.
        for t in threads {
            t.join().unwrap();
        }
    }
    drop(db);
    let db = Database::open_with(dir.path(), options()).unwrap();
    assert_eq!(db.collections().len(), ROUNDS);
    for round in 0..ROUNDS {
        assert_eq!(db.collection(&format!("c{round}")).unwrap().len(), THREADS);
    }
}

#[test]
fn read_only_handles_get_but_do_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    db.create_collection("docs", config(2, Metric::Cosine))
        .unwrap()
        .upsert(Record::new(7, vec![1.0, 0.0]))
        .unwrap();
    let ro = Database::open_read_only(dir.path()).unwrap();
    let c = ro
        .get_or_create_collection("docs", config(2, Metric::Cosine))
        .unwrap();
    assert_eq!(c.len(), 1);
    assert!(matches!(
        ro.get_or_create_collection("docs", config(3, Metric::Cosine)),
        Err(Error::CollectionConfigMismatch { .. })
    ));
    assert!(matches!(
        ro.get_or_create_collection("other", config(2, Metric::Cosine)),
        Err(Error::ReadOnly { .. })
    ));
    // A collection the writer creates later is found by the reader.
    db.create_collection("later", config(5, Metric::Dot))
        .unwrap();
    let later = ro
        .get_or_create_collection("later", config(5, Metric::Dot))
        .unwrap();
    assert_eq!(later.config().metric, Metric::Dot);
    assert_eq!(
        db.collections(),
        vec!["docs".to_owned(), "later".to_owned()]
    );
}

/// The id type decides what the collection's ids are: asking for string ids gets no integer
/// collection (before, the existing collection came back whatever `id_type` was asked for).
#[test]
fn a_different_id_type_is_an_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    db.create_collection("ints", config(3, Metric::Cosine))
        .unwrap();
    db.create_collection("strs", config(3, Metric::Cosine).with_id_type(IdType::Str))
        .unwrap();

    let e = db
        .get_or_create_collection("ints", config(3, Metric::Cosine).with_id_type(IdType::Str))
        .unwrap_err();
    assert!(
        matches!(&e, Error::CollectionConfigMismatch { setting, .. } if setting == "id_type"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "collection `ints` exists with id_type int, asked for str"
    );
    let e = db
        .get_or_create_collection("strs", config(3, Metric::Cosine))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "collection `strs` exists with id_type str, asked for int"
    );
    // The matching requests still get the collections.
    let c = db
        .get_or_create_collection("strs", config(3, Metric::Cosine).with_id_type(IdType::Str))
        .unwrap();
    assert_eq!(c.config().id_type, IdType::Str);
    assert_eq!(
        db.get_or_create_collection("ints", config(3, Metric::Cosine))
            .unwrap()
            .config()
            .id_type,
        IdType::Int
    );
}
