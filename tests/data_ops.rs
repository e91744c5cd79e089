//! Model-based property test of the data operations: random sequences of upserts, partial
//! updates, deletes by id and by filter, seals, compactions and reopens are applied to a
//! database and to a `BTreeMap` model; after every step `get`, `count(filter)`,
//! `scan(filter)` (whole and paged through its cursor) and exact search must agree with the
//! model. It runs on collections of both id kinds: integer ids, and string ids (unicode,
//! spaces, quotes, a 1,024-byte one, digits) — the model then orders records by
//! [`Id::key`], the order scans promise.

use std::collections::BTreeMap;
use std::path::Path;

use cairndb::{
    Collection, CollectionConfig, Database, Filter, Id, IdType, Metric, Options, Payload, Record,
    ScanOptions, SearchRequest, Update, Value,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

const DIM: usize = 3;
const ID_RANGE: u64 = 24;
const COLORS: [&str; 3] = ["red", "green", "blue"];

/// The id of record number `i` (`0..ID_RANGE`) in a collection of ids of kind `t`.
fn id_of(t: IdType, i: u64) -> Id {
    match t {
        IdType::Int => Id::Int(i),
        IdType::Str => Id::Str(match i {
            0 => "0".to_owned(),
            1 => "7".to_owned(),
            2 => "doc-1#3".to_owned(),
            3 => "doc-1#30".to_owned(),
            4 => "with space".to_owned(),
            5 => "\"quoted\" \\ back".to_owned(),
            6 => "é中文🦀".to_owned(),
            7 => "x".repeat(cairndb::MAX_ID_BYTES),
            8 => "\u{0}nul".to_owned(),
            9 => "line\nbreak".to_owned(),
            i => format!("path/to/file-{i}.md#chunk-{}", i * 7),
        }),
    }
}

/// The filters the test uses, with the model's own reading of them.
#[derive(Debug, Clone)]
enum F {
    Color(usize),
    NAtLeast(i64),
    HasN,
    NotColor(usize),
    ColorOrSmall(usize, i64),
}

impl F {
    fn filter(&self) -> Filter {
        match *self {
            F::Color(c) => Filter::eq("color", COLORS[c]),
            F::NAtLeast(n) => Filter::range("n").gte(n as f64),
            F::HasN => Filter::exists("n"),
            F::NotColor(c) => Filter::eq("color", COLORS[c]).not(),
            F::ColorOrSmall(c, n) => {
                Filter::eq("color", COLORS[c]).or(Filter::range("n").lt(n as f64))
            }
        }
    }

    fn accepts(&self, p: &Payload) -> bool {
        let color = |c: usize| p.get("color") == Some(&Value::from(COLORS[c]));
        let n = || match p.get("n") {
            Some(v) => serde_json::to_value(v).ok().and_then(|j| j.as_i64()),
            None => None,
        };
        match *self {
            F::Color(c) => color(c),
            F::NAtLeast(x) => n().is_some_and(|v| v >= x),
            F::HasN => p.contains_key("n"),
            F::NotColor(c) => !color(c),
            F::ColorOrSmall(c, x) => color(c) || n().is_some_and(|v| v < x),
        }
    }
}

#[derive(Debug, Clone)]
enum Change {
    Vector(Vec<f32>),
    Text(Option<String>),
    Merge(Payload),
    Replace(Payload),
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<Record>),
    Update(Vec<(u64, Vec<Change>)>),
    Delete(Vec<u64>),
    DeleteWhere(F),
    Flush,
    Compact,
    Reopen,
}

fn vector() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec((-4i32..=4).prop_map(|x| x as f32 * 0.5), DIM)
}

fn payload() -> impl Strategy<Value = Payload> {
    (
        proptest::option::of(0..COLORS.len()),
        proptest::option::of(-3i64..4),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(c, n, b)| {
            let mut p = Payload::new();
            if let Some(c) = c {
                p.insert("color".into(), Value::from(COLORS[c]));
            }
            if let Some(n) = n {
                p.insert("n".into(), Value::from(n));
            }
            if let Some(b) = b {
                p.insert("flag".into(), Value::from(b));
            }
            p
        })
}

fn record() -> impl Strategy<Value = Record> {
    (
        0..ID_RANGE,
        vector(),
        proptest::option::of("[a-c]{1,3}"),
        payload(),
    )
        .prop_map(|(id, v, t, p)| {
            let mut r = Record::new(id, v);
            r.text = t;
            r.payload = p;
            r
        })
}

fn filter() -> impl Strategy<Value = F> {
    prop_oneof![
        (0..COLORS.len()).prop_map(F::Color),
        (-3i64..4).prop_map(F::NAtLeast),
        Just(F::HasN),
        (0..COLORS.len()).prop_map(F::NotColor),
        (0..COLORS.len(), -3i64..4).prop_map(|(c, n)| F::ColorOrSmall(c, n)),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        vector().prop_map(Change::Vector),
        proptest::option::of("[a-c]{1,3}").prop_map(Change::Text),
        payload().prop_map(Change::Merge),
        payload().prop_map(Change::Replace),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(record(), 1..6).prop_map(Op::Upsert),
        4 => prop::collection::vec(
            (0..ID_RANGE, prop::collection::vec(change(), 1..3)),
            1..4
        )
        .prop_map(Op::Update),
        2 => prop::collection::vec(0..ID_RANGE, 1..4).prop_map(Op::Delete),
        2 => filter().prop_map(Op::DeleteWhere),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn open(path: &Path, t: IdType) -> Result<(Database, Collection), TestCaseError> {
    let db = Database::open_with(path, Options::default().memtable_max_rows(5)).map_err(fail)?;
    let cfg = CollectionConfig::new(DIM, Metric::Dot).with_id_type(t);
    let c = db.get_or_create_collection("c", cfg).map_err(fail)?;
    Ok((db, c))
}

fn to_update(id: Id, changes: &[Change]) -> Update {
    let mut u = Update::new(id);
    for ch in changes {
        u = match ch {
            Change::Vector(v) => u.vector(v.clone()),
            Change::Text(Some(t)) => u.text(t.clone()),
            Change::Text(None) => u.clear_text(),
            Change::Merge(p) => {
                // Merges accumulate onto what the update already sets.
                let mut u = u;
                for (k, v) in p {
                    u = u.set_field(k.clone(), v.clone());
                }
                u
            }
            Change::Replace(p) => u.replace_payload(p.clone()),
        };
    }
    u
}

/// The model's reading of an update: the same fields, applied in the same order.
fn apply(model: &mut BTreeMap<u64, Record>, u: &Update) -> bool {
    let Some(r) = model.get_mut(&u.id.key()) else {
        return false;
    };
    if let Some(v) = &u.vector {
        r.vector = v.clone();
    }
    if let Some(t) = &u.text {
        r.text = t.clone();
    }
    match &u.payload {
        Some(cairndb::PayloadChange::Merge(p)) => {
            for (k, v) in p {
                r.payload.insert(k.clone(), v.clone());
            }
        }
        Some(cairndb::PayloadChange::Replace(p)) => r.payload = p.clone(),
        None => {}
    }
    true
}

fn check(
    c: &Collection,
    t: IdType,
    model: &BTreeMap<u64, Record>,
    filters: &[F],
    step: usize,
) -> Result<(), TestCaseError> {
    for i in 0..ID_RANGE {
        let id = id_of(t, i);
        let got = c.get(&id).map_err(fail)?;
        prop_assert_eq!(
            got.as_ref(),
            model.get(&id.key()),
            "step {}: get {}",
            step,
            id
        );
    }
    prop_assert_eq!(c.count(None).map_err(fail)?, model.len(), "step {}", step);
    let all: Vec<Record> = c
        .scan(ScanOptions::new())
        .map_err(fail)?
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let want: Vec<Record> = model.values().cloned().collect();
    prop_assert_eq!(&all, &want, "step {}: scan", step);
    for f in filters {
        let want: Vec<&Record> = model.values().filter(|r| f.accepts(&r.payload)).collect();
        let n = c.count(Some(&f.filter())).map_err(fail)?;
        prop_assert_eq!(n, want.len(), "step {}: count {:?}", step, f);
        // Paged: two records a page, each page a new scan from the last cursor.
        let mut paged = Vec::new();
        let mut after = None;
        for page_no in 0.. {
            // Each page but the last returns records: a scan that pages forever fails.
            prop_assert!(page_no <= want.len(), "step {}: paging does not end", step);
            let mut o = ScanOptions::new().filter(f.filter());
            if let Some(a) = after {
                o = o.after(a);
            }
            let mut s = c.scan(o).map_err(fail)?;
            let page = s.next_batch(2).map_err(fail)?;
            if page.is_empty() {
                break;
            }
            after = s.cursor().cloned();
            paged.extend(page);
        }
        let want: Vec<Record> = want.into_iter().cloned().collect();
        prop_assert_eq!(&paged, &want, "step {}: paged scan {:?}", step, f);
        let hits = c
            .search(
                &SearchRequest::new(vec![0.5; DIM])
                    .k(ID_RANGE as usize + 1)
                    .exact(true)
                    .filter(f.filter()),
            )
            .map_err(fail)?;
        let mut ids: Vec<u64> = hits.iter().map(|h| h.id.key()).collect();
        ids.sort_unstable();
        let want_ids: Vec<u64> = want.iter().map(|r| r.id.key()).collect();
        prop_assert_eq!(ids, want_ids, "step {}: exact search {:?}", step, f);
        for h in &hits {
            prop_assert!(
                model.get(&h.id.key()).is_some_and(|r| r.id == h.id),
                "step {}: hit {}",
                step,
                h.id
            );
        }
    }
    Ok(())
}

fn run(t: IdType, ops: &[Op], filters: &[F]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let (mut db, mut c) = open(dir.path(), t)?;
    let mut model: BTreeMap<u64, Record> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Upsert(recs) => {
                let recs: Vec<Record> = recs
                    .iter()
                    .map(|r| Record {
                        id: id_of(t, r.id.as_u64().unwrap()),
                        ..r.clone()
                    })
                    .collect();
                c.upsert(recs.clone()).map_err(fail)?;
                for r in recs {
                    model.insert(r.id.key(), r);
                }
            }
            Op::Update(list) => {
                let ups: Vec<Update> = list
                    .iter()
                    .map(|(i, ch)| to_update(id_of(t, *i), ch))
                    .collect();
                let n = c.update(ups.clone()).map_err(fail)?;
                let want = ups.iter().filter(|u| apply(&mut model, u)).count();
                prop_assert_eq!(n, want, "step {}: updates applied", step);
            }
            Op::Delete(ids) => {
                let ids: Vec<Id> = ids.iter().map(|&i| id_of(t, i)).collect();
                let n = c.delete(&ids).map_err(fail)?;
                let mut want = 0;
                for id in &ids {
                    want += usize::from(model.remove(&id.key()).is_some());
                }
                prop_assert_eq!(n, want, "step {}: deleted", step);
            }
            Op::DeleteWhere(f) => {
                let n = c.delete_where(&f.filter()).map_err(fail)?;
                let before = model.len();
                model.retain(|_, r| !f.accepts(&r.payload));
                prop_assert_eq!(n, before - model.len(), "step {}: deleted by {:?}", step, f);
            }
            Op::Flush => c.flush().map_err(fail)?,
            Op::Compact => {
                c.compact().map_err(fail)?;
            }
            Op::Reopen => {
                drop(c);
                drop(db);
                (db, c) = open(dir.path(), t)?;
            }
        }
        check(&c, t, &model, filters, step)?;
    }
    drop(c);
    drop(db);
    let (db, c) = open(dir.path(), t)?;
    check(&c, t, &model, filters, ops.len())?;
    let report = db.verify().map_err(fail)?;
    prop_assert_eq!(report.collections, 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/data_ops.txt"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn data_operations_agree_with_a_model(
        str_ids in any::<bool>(),
        ops in prop::collection::vec(op(), 1..24),
        filters in prop::collection::vec(filter(), 1..3),
    ) {
        run(if str_ids { IdType::Str } else { IdType::Int }, &ops, &filters)?;
    }
}

/// Read-modify-write is atomic: threads merging different keys into the same records at
/// once lose none of them (each update reads what every earlier one wrote), while deletes by
/// filter and scans run beside them.
#[test]
fn concurrent_merges_lose_no_key() {
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(64)).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    let keep: Vec<Record> = (0..4).map(|i| Record::new(i, vec![1.0; DIM])).collect();
    c.upsert(keep).unwrap();
    const THREADS: u64 = 6;
    const EACH: u64 = 40;
    let (done, finished) = mpsc::channel();
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let (c, done) = (c.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            for i in 0..EACH {
                let id = i % 4;
                let u = Update::new(id).set_field(format!("t{t}_{i}"), i as i64);
                assert_eq!(c.update(u).unwrap(), 1);
                // Records that come and go beside the updates.
                let tmp = 1000 + t * EACH + i;
                c.upsert(Record::new(tmp, vec![0.5; DIM]).with_field("tmp", true))
                    .unwrap();
                if i % 5 == 0 {
                    c.delete_where(&Filter::eq("tmp", true)).unwrap();
                    let n = c.scan(ScanOptions::new().vectors(false)).unwrap().count();
                    assert!(n >= 4);
                }
            }
            // Close this handle before saying so: the reopen below needs every one closed.
            drop(c);
            done.send(()).unwrap();
        }));
    }
    for _ in 0..THREADS {
        finished
            .recv_timeout(Duration::from_secs(300))
            .expect("an updating thread hung or panicked");
    }
    // Each has sent its last message: joining only waits for its handle to drop (the
    // reopen below needs every handle closed).
    for t in threads {
        t.join().unwrap();
    }
    for id in 0..4u64 {
        let p = c.get(id).unwrap().unwrap().payload;
        let want = (0..THREADS)
            .flat_map(|t| {
                (0..EACH)
                    .filter(move |i| i % 4 == id)
                    .map(move |i| format!("t{t}_{i}"))
            })
            .count();
        assert_eq!(p.len(), want, "record {id}: a merged key was lost");
    }
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    let total: usize = (0..4u64)
        .map(|id| c.get(id).unwrap().unwrap().payload.len())
        .sum();
    assert_eq!(total, (THREADS * EACH) as usize);
}

/// A read-only handle counts and scans, and refuses update and delete by filter.
#[test]
fn read_only_handles_count_and_scan_but_do_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    c.upsert(
        (0..10)
            .map(|i| Record::new(i, vec![1.0; DIM]).with_field("even", i % 2 == 0))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let r = Database::open_read_only(dir.path()).unwrap();
    let rc = r.collection("c").unwrap();
    assert_eq!(rc.count(Some(&Filter::eq("even", true))).unwrap(), 5);
    let ids: Vec<u64> = rc
        .scan(ScanOptions::new())
        .unwrap()
        .map(|x| x.unwrap().id.as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    let ro = |e: cairndb::Error| matches!(e, cairndb::Error::ReadOnly { .. });
    assert!(ro(rc.update(Update::new(1).set_field("x", 1)).unwrap_err()));
    assert!(ro(rc.delete_where(&Filter::eq("even", true)).unwrap_err()));
    // The writer's later batch is seen by the reader's next scan.
    c.delete_where(&Filter::eq("even", false)).unwrap();
    assert_eq!(rc.count(None).unwrap(), 5);
}

/// Bad input to update: nothing is written.
#[test]
fn a_bad_vector_in_an_update_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    c.upsert(Record::new(1, vec![1.0; DIM]).with_field("a", 1))
        .unwrap();
    let before = c.get(1).unwrap();
    for bad in [vec![f32::NAN; DIM], vec![0.0; DIM], vec![1.0; DIM + 1]] {
        let batch = vec![Update::new(1).set_field("a", 2), Update::new(1).vector(bad)];
        assert!(c.update(batch).is_err());
        assert_eq!(c.get(1).unwrap(), before);
    }
    // A payload-only update keeps the stored (normalized) vector bit for bit.
    c.update(Update::new(1).set_field("b", true)).unwrap();
    assert_eq!(c.get(1).unwrap().unwrap().vector, before.unwrap().vector);
}
