//! Payloads are JSON: arbitrary JSON payloads round-trip exactly through upsert → get, across
//! a seal and a reopen; filters on nested paths, arrays, null and existence select exactly the
//! records a reference matcher (written here, on `serde_json::Value`) accepts, in the memtable
//! and in sealed segments; hostile payloads (NaN, infinity, 100,000 levels deep) are refused
//! with a clear error and no crash.

use std::collections::BTreeSet;

use cairndb::{
    CollectionConfig, Database, Error, Filter, Metric, Options, Payload, Record, SearchRequest,
    Value, filter::Bounds,
};
use proptest::prelude::*;
use serde_json::Value as J;

const DIM: usize = 4;

fn vector(id: u64) -> Vec<f32> {
    vec![1.0, id as f32, 0.5, -(id as f32) / 3.0]
}

// ---------------------------------------------------------------------------------------------
// Round trip

fn any_json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<u64>().prop_map(J::from),
        Just(J::from(u64::MAX)),
        Just(J::from(i64::MIN)),
        Just(J::from(i64::MAX)),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(J::from),
        prop_oneof![Just(0.1), Just(-0.0), Just(2.0), Just(5e-324), Just(1e300)].prop_map(J::from),
        "\\PC{0,6}".prop_map(J::String),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::btree_map("\\PC{0,4}", inner, 0..4)
                .prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

fn json_payload() -> impl Strategy<Value = serde_json::Map<String, J>> {
    prop::collection::btree_map("\\PC{0,5}", any_json(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// The exact JSON text of a payload (keys ordered, floats in shortest round-trip form, `-0.0`
/// and `1.0` kept apart from `0` and `1`).
fn text(p: &Payload) -> String {
    serde_json::to_string(p).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Any JSON payload comes back exactly: from the memtable, from a sealed segment and after
    /// a reopen; its JSON text is the input's (integers stay integers, u64 beyond i64 too).
    #[test]
    fn json_payloads_round_trip(payloads in prop::collection::vec(json_payload(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Record> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // Through the JSON form of a record, as the CLI reads it.
                let j = serde_json::json!({"id": i, "vector": vector(i as u64), "payload": p});
                let r: Record = serde_json::from_str(&j.to_string()).unwrap();
                r
            })
            .collect();
        for (r, p) in records.iter().zip(&payloads) {
            // The plain JSON form is the input itself.
            prop_assert_eq!(serde_json::to_value(&r.payload).unwrap(), J::Object(p.clone()));
            let via_try: Payload = p
                .iter()
                .map(|(k, v)| (k.clone(), Value::try_from(v).unwrap()))
                .collect();
            prop_assert_eq!(text(&via_try), text(&r.payload));
        }
        let check = |c: &cairndb::Collection, when: &str| -> Result<(), TestCaseError> {
            for r in &records {
                let got = c.get(r.id.as_u64().unwrap()).unwrap().unwrap();
                prop_assert_eq!(&got.payload, &r.payload, "{}", when);
                prop_assert_eq!(text(&got.payload), text(&r.payload), "{}", when);
            }
            Ok(())
        };
        {
            let db = Database::open(dir.path()).unwrap();
            let c = db.create_collection("j", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
            c.upsert(records.clone()).unwrap();
            check(&c, "memtable")?;
            c.flush().unwrap();
            check(&c, "segment")?;
        }
        let db = Database::open(dir.path()).unwrap();
        check(&db.collection("j").unwrap(), "reopened")?;
    }
}

// ---------------------------------------------------------------------------------------------
// Filters against a reference matcher

/// Small values, so that filters hit: a few keys, numbers and strings, nulls, nesting.
fn small_json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        (-1i64..3).prop_map(J::from),
        Just(J::from(u64::MAX)),
        prop_oneof![Just(0.5), Just(1.0), Just(2.0)].prop_map(J::from),
        prop_oneof![Just("x"), Just("y")].prop_map(J::from),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(J::Array),
            prop::collection::btree_map(key(), inner, 0..3)
                .prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just("a"), 4 => Just("b"), 2 => Just("c"), 1 => Just("a.b")]
        .prop_map(str::to_owned)
}

fn small_payload() -> impl Strategy<Value = serde_json::Map<String, J>> {
    prop::collection::btree_map(key(), small_json(), 0..3).prop_map(|m| m.into_iter().collect())
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1i64..3).prop_map(Value::Int),
        Just(Value::UInt(u64::MAX)),
        prop_oneof![Just(0.5), Just(1.0), Just(2.0)].prop_map(Value::Float),
        prop_oneof![Just("x"), Just("y")].prop_map(Value::from),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("a.b"),
        Just("a.c"),
        Just("b.a"),
        Just("a.b.c"),
        Just("a.a.b")
    ]
    .prop_map(str::to_owned)
}

fn leaf_filter() -> impl Strategy<Value = Filter> {
    let bound = prop_oneof![
        Just(-1.0),
        Just(0.0),
        Just(0.5),
        Just(1.0),
        Just(2.0),
        Just(u64::MAX as f64)
    ];
    prop_oneof![
        (path(), scalar()).prop_map(|(p, v)| Filter::eq(p, v)),
        (path(), prop::collection::vec(scalar(), 1..3)).prop_map(|(p, v)| Filter::any_of(p, v)),
        (
            path(),
            proptest::option::of(bound.clone()),
            proptest::option::of(bound),
            any::<bool>()
        )
            .prop_filter("a bound", |(_, lo, hi, _)| lo.is_some() || hi.is_some())
            .prop_map(|(p, lo, hi, inclusive)| {
                let mut b = Bounds::default();
                if inclusive {
                    b.gte = lo;
                    b.lte = hi;
                } else {
                    b.gt = lo;
                    b.lt = hi;
                }
                Filter::Range {
                    field: p,
                    bounds: b,
                }
            }),
        path().prop_map(Filter::exists),
    ]
}

fn any_filter() -> impl Strategy<Value = Filter> {
    leaf_filter().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::Or),
            inner.prop_map(Filter::not),
        ]
    })
}

/// The reference: the values `path` reaches in `v` (keys joined with dots; a list on the way
/// stands for its elements), written independently of the engine's lookup.
fn reached<'a>(v: &'a J, path: &str, out: &mut Vec<&'a J>) {
    match v {
        J::Object(o) => {
            for (k, c) in o {
                if path == k {
                    out.push(c);
                } else if let Some(rest) = path
                    .strip_prefix(k.as_str())
                    .and_then(|r| r.strip_prefix('.'))
                {
                    reached(c, rest, out);
                }
            }
        }
        J::Array(l) => l.iter().for_each(|c| reached(c, path, out)),
        _ => {}
    }
}

/// The non-list values at the path, lists flattened.
fn leaves<'a>(v: &'a J, out: &mut Vec<&'a J>) {
    match v {
        J::Array(l) => l.iter().for_each(|c| leaves(c, out)),
        v => out.push(v),
    }
}

fn leaf_values<'a>(p: &'a J, path: &str) -> Vec<&'a J> {
    let mut at = Vec::new();
    reached(p, path, &mut at);
    let mut out = Vec::new();
    for v in at {
        leaves(v, &mut out);
    }
    out
}

fn scalar_eq(x: &J, v: &Value) -> bool {
    match (x, v) {
        (J::Null, Value::Null) => true,
        (J::Bool(a), Value::Bool(b)) => a == b,
        (J::String(a), Value::Str(b)) => a == b,
        (J::Number(n), v) => v.as_f64().is_some_and(|y| n.as_f64() == Some(y)),
        _ => false,
    }
}

fn reference(f: &Filter, p: &J) -> bool {
    match f {
        Filter::And(v) => v.iter().all(|g| reference(g, p)),
        Filter::Or(v) => v.iter().any(|g| reference(g, p)),
        Filter::Not(g) => !reference(g, p),
        Filter::Eq { field, value } => leaf_values(p, field).iter().any(|x| scalar_eq(x, value)),
        Filter::In { field, values } => leaf_values(p, field)
            .iter()
            .any(|x| values.iter().any(|v| scalar_eq(x, v))),
        Filter::Range { field, bounds } => leaf_values(p, field)
            .iter()
            .any(|x| x.as_f64().is_some_and(|x| bounds.contains(x))),
        Filter::Exists { field } => {
            let mut at = Vec::new();
            reached(p, field, &mut at);
            !at.is_empty()
        }
        Filter::HasTerm { .. } => false,
        #[allow(unreachable_patterns)]
        _ => unreachable!("no other filter is generated"),
    }
}

fn search_ids(c: &cairndb::Collection, f: &Filter, n: usize) -> BTreeSet<u64> {
    c.search(
        &SearchRequest::new(vector(0))
            .k(n.max(1))
            .filter(f.clone())
            .exact(true),
    )
    .unwrap()
    .iter()
    .map(|h| h.id.as_u64().unwrap())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Exact search under random filters over nested paths, arrays, null and existence returns
    /// exactly the records the reference matcher accepts: all in the memtable, split between
    /// a segment and the memtable, all sealed, and after a reopen; `Filter::matches` agrees.
    #[test]
    fn nested_filters_equal_the_reference(
        payloads in prop::collection::vec(small_payload(), 1..30),
        filters in prop::collection::vec(any_filter(), 1..8),
    ) {
        let n = payloads.len();
        let json: Vec<J> = payloads.iter().cloned().map(J::Object).collect();
        let records: Vec<Record> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut r = Record::new(i as u64, vector(i as u64));
                for (k, v) in p {
                    r.payload.insert(k.clone(), Value::try_from(v).unwrap());
                }
                r
            })
            .collect();
        let want: Vec<BTreeSet<u64>> = filters
            .iter()
            .map(|f| (0..n as u64).filter(|&i| reference(f, &json[i as usize])).collect())
            .collect();
        for (f, w) in filters.iter().zip(&want) {
            let matched: BTreeSet<u64> = records
                .iter()
                .filter(|r| f.matches(&r.payload, &|_| false))
                .map(|r| r.id.as_u64().unwrap())
                .collect();
            prop_assert_eq!(&matched, w, "Filter::matches {:?}", f);
        }
        let check = |c: &cairndb::Collection, when: &str| -> Result<(), TestCaseError> {
            for (f, w) in filters.iter().zip(&want) {
                prop_assert_eq!(&search_ids(c, f, n), w, "{} {:?}", when, f);
            }
            Ok(())
        };
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open_with(dir.path(), Options::default()).unwrap();
            let c = db.create_collection("f", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
            c.upsert(records.clone()).unwrap();
            check(&c, "memtable")?;
            c.flush().unwrap();
            check(&c, "segment")?;
        }
        let dir2 = tempfile::tempdir().unwrap();
        {
            let db = Database::open_with(dir2.path(), Options::default()).unwrap();
            let c = db.create_collection("f", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
            let half = n / 2;
            c.upsert(records[..half].to_vec()).unwrap();
            c.flush().unwrap();
            c.upsert(records[half..].to_vec()).unwrap();
            check(&c, "segment + memtable")?;
        }
        let db = Database::open_with(dir2.path(), Options::default()).unwrap();
        check(&db.collection("f").unwrap(), "reopened")?;
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile payloads

fn invalid_message(r: cairndb::Result<()>) -> String {
    match r {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn non_finite_floats_are_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection("h", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    let nested: Value = Value::Object(
        [(
            "s".to_owned(),
            Value::List(vec![Value::Int(1), Value::Float(f64::INFINITY)]),
        )]
        .into_iter()
        .collect(),
    );
    for (value, path) in [
        (Value::Float(f64::NAN), "`x`"),
        (Value::Float(f64::NEG_INFINITY), "`x`"),
        (nested, "`x.s[1]`"),
    ] {
        let ok = Record::new(1, vector(1)).with_field("y", 1);
        let bad = Record::new(2, vector(2)).with_field("x", value);
        let m = invalid_message(c.upsert(vec![ok, bad]));
        assert!(
            m.contains("record 2") && m.contains(path) && m.contains("not a finite number"),
            "{m}"
        );
    }
    // The batch is refused whole.
    assert_eq!(c.get(1).unwrap(), None);
}

/// A payload nested 100,000 deep, built with the Rust builder, is an error at upsert; building,
/// cloning, comparing, filtering and dropping it never overflow (on a small stack).
#[test]
fn deep_payload_is_an_error_not_a_stack_overflow() {
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection("h", CollectionConfig::new(DIM, Metric::Dot))
            .unwrap();
        let mut deep = Value::Int(1);
        for i in 0..100_000 {
            deep = if i % 2 == 0 {
                Value::List(vec![deep])
            } else {
                Value::Object([("k".to_owned(), deep)].into_iter().collect())
            };
        }
        let r = Record::new(1, vector(1)).with_field("d", deep);
        let copy = r.clone();
        assert!(copy == r);
        let f = Filter::eq("d.k.k.k", 1).or(Filter::range("d").gt(0.0));
        assert!(!f.matches(&r.payload, &|_| false));
        assert!(Filter::exists("d.k").matches(&r.payload, &|_| false));
        assert!(serde_json::to_string(&r).is_err());
        let m = invalid_message(c.upsert(vec![r, copy]));
        assert!(
            m.contains("nested deeper than 64") && m.contains("`d"),
            "{m}"
        );
        assert_eq!(c.get(1).unwrap(), None);
        // 64 levels is accepted and comes back.
        let mut ok = Value::Null;
        for _ in 0..Value::MAX_DEPTH {
            ok = Value::List(vec![ok]);
        }
        let r = Record::new(1, vector(1)).with_field("d", ok);
        c.upsert(r.clone()).unwrap();
        c.flush().unwrap();
        assert_eq!(c.get(1).unwrap().unwrap().payload, r.payload);
    };
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn null_and_missing_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection("n", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    c.upsert(vec![
        Record::new(0, vector(0)).with_field("a", Value::Null),
        Record::new(1, vector(1)).with_field("a", 1),
        Record::new(2, vector(2)),
        Record::new(3, vector(3)).with_field("a", Value::List(vec![])),
    ])
    .unwrap();
    for sealed in [false, true] {
        if sealed {
            c.flush().unwrap();
        }
        let ids = |f: Filter| search_ids(&c, &f, 10).into_iter().collect::<Vec<_>>();
        assert_eq!(ids(Filter::eq("a", Value::Null)), [0]);
        assert_eq!(ids(Filter::exists("a")), [0, 1, 3]);
        assert_eq!(ids(Filter::exists("a").not()), [2]);
        assert_eq!(
            ids(Filter::eq("a", Value::Null).or(Filter::exists("a").not())),
            [0, 2]
        );
        assert_eq!(ids(Filter::eq("a", ()).not()), [1, 2, 3]);
    }
}

// ---------------------------------------------------------------------------------------------
// Files of the previous format version

/// Sets the format version in the 64-byte header of the file at `p` (and its checksum).
fn set_version(p: &std::path::Path, version: u16) {
    let mut b = std::fs::read(p).unwrap();
    b[8..10].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(p, b).unwrap();
}

fn version_of(p: &std::path::Path) -> u16 {
    let b = std::fs::read(p).unwrap();
    u16::from_le_bytes([b[8], b[9]])
}

fn files(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap().to_str().unwrap().ends_with(name) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A database whose WAL and payload files carry the previous version (1; its documents use
/// the old value tags only, byte for byte what scalars still encode to) opens and reads back;
/// new writes go to a new WAL file of version 2, so an older build refuses it clearly instead
/// of misreading new documents; a version from the future is refused with a clear message.
#[test]
fn version_1_files_still_open_and_new_ones_are_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let old = |i: u64| {
        Record::new(i, vector(i))
            .with_text("t")
            .with_field("lang", "en")
            .with_field("n", i as i64)
            .with_field("tags", vec!["a", "b"])
    };
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection("v", CollectionConfig::new(DIM, Metric::Dot))
            .unwrap();
        c.upsert((0..5).map(old).collect::<Vec<_>>()).unwrap();
        c.flush().unwrap();
        c.upsert((5..8).map(old).collect::<Vec<_>>()).unwrap();
    }
    let wal = files(dir.path(), ".wal");
    let payload = files(dir.path(), "payload");
    assert!(!wal.is_empty() && !payload.is_empty());
    for p in wal.iter().chain(&payload) {
        assert_eq!(version_of(p), 2, "{}", p.display());
        set_version(p, 1);
    }
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("v").unwrap();
        for i in 0..8 {
            assert_eq!(c.get(i).unwrap().unwrap(), old(i));
        }
        let f = Filter::eq("tags", "b").and(Filter::range("n").gte(3.0));
        assert_eq!(search_ids(&c, &f, 8), (3..8).collect());
        c.upsert(Record::new(9, vector(9)).with_field("j", Value::List(vec![Value::Null])))
            .unwrap();
    }
    let newest = files(dir.path(), ".wal").pop().unwrap();
    assert!(!wal.contains(&newest), "new frames went to a new log file");
    assert_eq!(version_of(&newest), 2);
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("v").unwrap();
        assert_eq!(c.get(3).unwrap().unwrap(), old(3));
        assert_eq!(
            c.get(9).unwrap().unwrap().payload["j"],
            Value::List(vec![Value::Null])
        );
    }
    set_version(&payload[0], 3);
    let e = match Database::open(dir.path()).and_then(|db| {
        let c = db.collection("v")?;
        c.get(0).map(|_| ())
    }) {
        Err(e) => e.to_string(),
        Ok(()) => panic!("a version 3 payload file was read"),
    };
    assert!(e.contains("format version 3 is not supported"), "{e}");
}
