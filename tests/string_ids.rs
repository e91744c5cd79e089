//! Collections of string ids: every API takes and returns the ids exactly, through the
//! memtable, a seal, a compaction and a reopen; ids of the wrong kind are refused clearly;
//! the manifest version says when a database needs a build that knows string ids.

use std::collections::BTreeSet;

use cairndb::{
    CollectionConfig, Database, Error, Filter, Id, IdType, MAX_ID_BYTES, Metric, Options, Record,
    ScanOptions, SearchRequest, Update,
};

const DIM: usize = 4;

fn cfg() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::Cosine).with_id_type(IdType::Str)
}

fn ids() -> Vec<String> {
    let mut v: Vec<String> = [
        "docs/intro.md#0",
        "docs/intro.md#1",
        "42",
        "é中文🦀",
        "with \"quotes\" and \\",
        "tab\there",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("z".repeat(MAX_ID_BYTES));
    v.extend((0..40).map(|i| format!("chunk-{i:03}")));
    v
}

fn vector(i: usize) -> Vec<f32> {
    vec![1.0 + i as f32, (i % 3) as f32, (i % 5) as f32, 0.5]
}

fn records() -> Vec<Record> {
    ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            Record::new(id.as_str(), vector(i))
                .with_text(format!("text of {id}"))
                .with_field("i", i as i64)
        })
        .collect()
}

/// Every way to read the collection gives back exactly the ids written.
fn check_all(c: &cairndb::Collection, want: &BTreeSet<String>) {
    for id in want {
        let r = c.get(id.as_str()).unwrap().expect("a stored id is found");
        assert_eq!(r.id, *id);
        assert_eq!(r.text.as_deref(), Some(format!("text of {id}").as_str()));
    }
    assert_eq!(c.get("absent").unwrap(), None);
    // Scan: every id once, in key order.
    let scanned: Vec<Id> = c
        .scan(ScanOptions::new())
        .unwrap()
        .map(|r| r.unwrap().id)
        .collect();
    let keys: Vec<u64> = scanned.iter().map(Id::key).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "scan in key order");
    let got: BTreeSet<String> = scanned
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&got, want);
    // Exact and graph search, text search: hits carry the string ids.
    for exact in [true, false] {
        let hits = c
            .search(
                &SearchRequest::new(vector(3))
                    .k(want.len())
                    .exact(exact)
                    .ef(200),
            )
            .unwrap();
        if exact {
            assert_eq!(hits.len(), want.len());
        }
        for h in &hits {
            assert!(want.contains(h.id.as_str().unwrap()), "{}", h.id);
        }
    }
    let hits = c.search(&SearchRequest::by_text("chunk 007").k(3)).unwrap();
    if want.contains("chunk-007") {
        assert_eq!(hits[0].id, "chunk-007");
    }
}

#[test]
fn string_ids_round_trip_through_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(16)).unwrap();
    let c = db.create_collection("c", cfg()).unwrap();
    assert_eq!(c.config().id_type, IdType::Str);
    let mut want: BTreeSet<String> = ids().into_iter().collect();
    c.upsert(records()).unwrap();
    check_all(&c, &want);
    c.flush().unwrap();
    check_all(&c, &want);
    // Deletes by id across segments and memtables; a missing id counts nothing.
    assert_eq!(
        c.delete(&["docs/intro.md#1", "absent", "chunk-010", "chunk-010"])
            .unwrap(),
        2
    );
    want.remove("docs/intro.md#1");
    want.remove("chunk-010");
    check_all(&c, &want);
    // Update by string id.
    assert_eq!(
        c.update(vec![
            Update::new("42").set_field("tag", "answer"),
            Update::new("nope").set_field("tag", "x"),
        ])
        .unwrap(),
        1
    );
    assert_eq!(c.count(Some(&Filter::eq("tag", "answer"))).unwrap(), 1);
    c.compact().unwrap();
    check_all(&c, &want);
    // Delete by filter returns the string ids' records to nothing.
    assert_eq!(c.delete_where(&Filter::eq("i", 4)).unwrap(), 1);
    want.remove("with \"quotes\" and \\");
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    check_all(&c, &want);
    assert_eq!(
        c.get("42").unwrap().unwrap().payload["tag"],
        "answer".into()
    );
    let report = db.verify().unwrap();
    assert_eq!(report.collections, 1);
    // A read-only handle reads the same ids.
    let ro = Database::open_read_only(dir.path()).unwrap();
    check_all(&ro.collection("c").unwrap(), &want);
}

#[test]
fn paging_with_a_string_cursor_visits_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(8)).unwrap();
    let c = db.create_collection("c", cfg()).unwrap();
    c.upsert(records()).unwrap();
    let mut seen = Vec::new();
    let mut after: Option<Id> = None;
    loop {
        let mut o = ScanOptions::new().vectors(false);
        if let Some(a) = &after {
            o = o.after(a);
        }
        let mut s = c.scan(o).unwrap();
        let page = s.next_batch(5).unwrap();
        if page.is_empty() {
            break;
        }
        after = s.cursor().cloned();
        // A record deleted behind the cursor does not disturb the paging.
        c.delete(&[page[0].id.clone()]).unwrap();
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen.len(), ids().len());
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        ids().len(),
        "no id twice"
    );
    // The cursor can name an id that never existed: the scan goes on after its key.
    let s: Vec<Id> = c
        .scan(ScanOptions::new().after("never-stored"))
        .unwrap()
        .map(|r| r.unwrap().id)
        .collect();
    let k = Id::from("never-stored").key();
    assert!(s.iter().all(|id| id.key() > k));
}

#[test]
fn ids_of_the_wrong_kind_or_size_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let s = db.create_collection("s", cfg()).unwrap();
    let n = db
        .create_collection("n", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    s.upsert(Record::new("a", vector(0))).unwrap();
    n.upsert(Record::new(1, vector(0))).unwrap();
    let invalid = |e: Error, want: &str| {
        let m = e.to_string();
        assert!(
            matches!(e, Error::InvalidArgument(_)) && m.contains(want),
            "{m}"
        );
    };
    // A batch with one bad id writes nothing.
    invalid(
        s.upsert(vec![Record::new("b", vector(1)), Record::new(7, vector(1))])
            .unwrap_err(),
        "string ids; got the integer id 7",
    );
    invalid(
        n.upsert(vec![Record::new(2, vector(1)), Record::new("x", vector(1))])
            .unwrap_err(),
        "integer ids; got the string id \"x\"",
    );
    invalid(
        s.upsert(Record::new("", vector(1))).unwrap_err(),
        "cannot be empty",
    );
    invalid(
        s.upsert(Record::new("y".repeat(MAX_ID_BYTES + 1), vector(1)))
            .unwrap_err(),
        "1025 bytes",
    );
    assert_eq!((s.len(), n.len()), (1, 1));
    invalid(s.get(1).unwrap_err(), "string ids");
    invalid(n.get("1").unwrap_err(), "integer ids");
    invalid(s.delete(&[1]).unwrap_err(), "string ids");
    invalid(n.delete(&["a"]).unwrap_err(), "integer ids");
    invalid(
        s.update(Update::new(1).set_field("k", 1)).unwrap_err(),
        "string ids",
    );
    invalid(
        s.scan(ScanOptions::new().after(3)).err().unwrap(),
        "string ids",
    );
    assert_eq!((s.len(), n.len()), (1, 1));
    // get_or_create_collection with the other id type: a mismatch, naming it.
    let e = db
        .get_or_create_collection("s", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap_err();
    assert!(
        matches!(&e, Error::CollectionConfigMismatch { setting, .. } if setting == "id_type"),
        "{e}"
    );
    assert!(e.to_string().contains("id_type str, asked for int"), "{e}");
}

/// The manifest is format version 2 exactly while a collection of string ids exists, so a
/// build that predates them refuses the database ("format version 2 is not supported")
/// instead of misreading its documents; without one it stays version 1.
#[test]
fn the_manifest_version_marks_string_id_databases() {
    let dir = tempfile::tempdir().unwrap();
    let version = || {
        let b = std::fs::read(dir.path().join("MANIFEST")).unwrap();
        u16::from_le_bytes([b[8], b[9]])
    };
    let db = Database::open(dir.path()).unwrap();
    db.create_collection("n", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    assert_eq!(version(), 1);
    db.create_collection("s", cfg()).unwrap();
    assert_eq!(version(), 2);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.collection("s").unwrap().config().id_type, IdType::Str);
    db.drop_collection("s").unwrap();
    assert_eq!(version(), 1);
}

/// Many threads upserting distinct string ids at once (group commit stays on): every id is
/// stored once, none lost.
#[test]
fn concurrent_string_upserts_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(50)).unwrap();
    let c = db.create_collection("c", cfg()).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let c = c.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let recs: Vec<Record> = (0..3)
                        .map(|j| Record::new(format!("t{t}/{i}/{j}"), vector(i + j)))
                        .collect();
                    c.upsert(recs).unwrap();
                }
            });
        }
    });
    assert_eq!(c.len(), 8 * 50 * 3);
    for t in 0..8 {
        assert_eq!(
            c.get(format!("t{t}/49/2")).unwrap().unwrap().id,
            format!("t{t}/49/2")
        );
    }
}

/// A database written before string ids existed: a version 1 manifest whose collection
/// configs have no `id_type` (the body below is such a manifest, as the previous release
/// wrote it). It opens as integer ids, takes writes, and its manifest stays version 1 with
/// no `id_type`, so the previous release can still open it.
#[test]
fn a_database_from_before_string_ids_opens_and_stays_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let body = br#"{
  "last_lsn": 0,
  "log_file": 0,
  "next_collection_id": 2,
  "next_segment_id": 1,
  "collections": [
    {
      "id": 1,
      "name": "old",
      "config": {
        "dim": 4,
        "metric": "cosine",
        "m": 16,
        "ef_construction": 200,
        "text": {
          "stem": false,
          "stop_words": false
        }
      },
      "flushed_lsn": 0,
      "segments": []
    }
  ]
}"#;
    let mut h = [0u8; 64];
    h[..8].copy_from_slice(b"\x89CAIRN\r\n");
    h[8..10].copy_from_slice(&1u16.to_le_bytes());
    h[10] = 2; // FileKind::Manifest
    h[11] = 1; // crc32c
    h[16..24].copy_from_slice(&1u64.to_le_bytes());
    h[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[32..36].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let hc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&hc.to_le_bytes());
    std::fs::write(dir.path().join("MANIFEST"), [&h[..], &body[..]].concat()).unwrap();
    let manifest = || {
        let b = std::fs::read(dir.path().join("MANIFEST")).unwrap();
        let text = String::from_utf8(b[64..].to_vec()).unwrap();
        (u16::from_le_bytes([b[8], b[9]]), text)
    };
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("old").unwrap();
        assert_eq!(c.config().id_type, IdType::Int);
        c.upsert(
            (0..20u64)
                .map(|i| Record::new(i, vector(i as usize)))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        c.flush().unwrap();
        assert_eq!(c.delete(&[3u64]).unwrap(), 1);
        assert!(matches!(c.get("3"), Err(Error::InvalidArgument(_))));
        db.create_collection("new", CollectionConfig::new(DIM, Metric::Dot))
            .unwrap();
    }
    let (version, text) = manifest();
    assert_eq!(version, 1, "{text}");
    assert!(!text.contains("id_type"), "{text}");
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("old").unwrap();
    assert_eq!(c.len(), 19);
    assert_eq!(c.get(7u64).unwrap().unwrap().id, 7u64);
    db.verify().unwrap();
}
