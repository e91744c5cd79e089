//! Model-based property test: random sequences of upserts, deletes, flushes, syncs, reopens
//! and searches are applied both to a database and to a `HashMap` model with brute-force
//! scoring; after every step the two must agree.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairndb::distance::scalar;
use cairndb::{
    Collection, CollectionConfig, Database, Durability, Error, Metric, Options, Payload, Record,
    SearchRequest, Value,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

use common::normalized;

const DIM: usize = 4;
/// Ids come from this small range so that replacements and deletes hit existing records.
const ID_RANGE: u64 = 16;
const NAME: &str = "model";
const MEMTABLE_ROWS: usize = 7;

/// How a deliberately broken record is broken.
#[derive(Debug, Clone, Copy)]
enum Bad {
    Nan,
    Inf,
    WrongDim(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<Record>),
    /// A batch with one broken record at the given position: nothing may be written.
    UpsertBad(Vec<Record>, usize, Bad),
    Delete(Vec<u64>),
    Flush,
    Sync,
    Reopen,
}

/// One step: an operation, then a check with this query and k.
#[derive(Debug, Clone)]
struct Step {
    op: Op,
    query: Vec<f32>,
    k: usize,
}

/// Vector components on a half-integer grid: dot products and squared distances of such
/// small vectors are exact in f32, so Dot and L2 scores can be compared exactly (and ties,
/// which are frequent, must be broken by lower id).
fn vector() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        12 => prop::collection::vec((-4i32..=4).prop_map(|x| x as f32 * 0.5), DIM),
        1 => Just(vec![0.0; DIM]),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        "[a-z]{0,5}".prop_map(Value::Str),
        any::<bool>().prop_map(Value::Bool),
        (-1e6f64..1e6).prop_map(Value::Float),
        prop::collection::vec("[a-z]{1,3}", 0..3).prop_map(Value::from),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        0..ID_RANGE,
        vector(),
        prop::option::of("[a-zé ]{0,8}"),
        prop::collection::btree_map(
            prop::sample::select(vec!["a", "lang", "year"]),
            value(),
            0..3,
        ),
    )
        .prop_map(|(id, v, text, fields)| {
            let mut r = Record::new(id, v);
            r.text = text;
            r.payload = fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Payload>();
            r
        })
}

fn op() -> impl Strategy<Value = Op> {
    let batch = || prop::collection::vec(record(), 1..=5);
    prop_oneof![
        12 => batch().prop_map(Op::Upsert),
        1 => (batch(), any::<prop::sample::Index>(), prop_oneof![
            Just(Bad::Nan),
            Just(Bad::Inf),
            (0usize..8).prop_filter("wrong dimension", |d| *d != DIM).prop_map(Bad::WrongDim),
        ])
            .prop_map(|(b, i, bad)| {
                let at = i.index(b.len() + 1);
                Op::UpsertBad(b, at, bad)
            }),
        5 => prop::collection::vec(0..ID_RANGE + 2, 1..=4).prop_map(Op::Delete),
        2 => Just(Op::Flush),
        1 => Just(Op::Sync),
        2 => Just(Op::Reopen),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (op(), vector(), 0usize..=20).prop_map(|(op, query, k)| Step { op, query, k }),
        1..=40,
    )
}

/// Database options that vary between cases.
#[derive(Debug, Clone)]
struct DbConfig {
    durability: Durability,
    /// Small values make the log move to a new file every frame or two, so replay spans
    /// many files and seals remove old ones.
    wal_file_bytes: u64,
}

fn db_config() -> impl Strategy<Value = DbConfig> {
    let durability = prop_oneof![
        Just(Durability::Sync),
        Just(Durability::buffered()),
        // A background sync every millisecond: races with drop and reopen.
        Just(Durability::Buffered {
            interval: Duration::from_millis(1)
        }),
    ];
    let wal_file_bytes = prop_oneof![Just(64u64 << 20), Just(1024u64)];
    (durability, wal_file_bytes).prop_map(|(durability, wal_file_bytes)| DbConfig {
        durability,
        wal_file_bytes,
    })
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

/// The vector as the collection stores it.
fn stored(metric: Metric, v: &[f32]) -> Vec<f32> {
    match metric {
        Metric::Cosine => normalized(v),
        _ => v.to_vec(),
    }
}

/// Reference score of a prepared query against a prepared vector; +0.0 for any zero.
fn reference_score(metric: Metric, q: &[f32], x: &[f32]) -> f32 {
    let s = match metric {
        Metric::Cosine | Metric::Dot => scalar::dot(q, x),
        Metric::L2 => -scalar::l2sq(q, x),
    };
    s + 0.0
}

/// The problem the library must report for this record, if any.
fn expected_problem(metric: Metric, r: &Record) -> Option<String> {
    if r.vector.len() != DIM {
        return Some(format!("DimensionMismatch({})", r.vector.len()));
    }
    if let Some(i) = r.vector.iter().position(|x| !x.is_finite()) {
        return Some(format!("NonFiniteVector({}, {i})", r.id));
    }
    if metric == Metric::Cosine && r.vector.iter().all(|&x| x == 0.0) {
        return Some(format!("ZeroVector({})", r.id));
    }
    None
}

fn describe(e: &Error) -> String {
    match e {
        Error::DimensionMismatch {
            expected,
            got,
            collection,
            ..
        } if *expected == DIM && collection == NAME => format!("DimensionMismatch({got})"),
        Error::NonFiniteVector { id, index } => format!("NonFiniteVector({id}, {index})"),
        Error::ZeroVector { id } => format!("ZeroVector({id})"),
        other => format!("other: {other}"),
    }
}

struct Harness {
    path: PathBuf,
    options: Options,
    metric: Metric,
    db: Option<Database>,
    col: Option<Collection>,
    model: HashMap<u64, Record>,
}

impl Harness {
    fn new(path: &Path, metric: Metric, config: &DbConfig) -> Result<Self, TestCaseError> {
        let options = Options::default()
            .memtable_max_rows(MEMTABLE_ROWS)
            .durability(config.durability)
            .wal_file_bytes(config.wal_file_bytes);
        let db = Database::open_with(path, options.clone()).map_err(fail)?;
        let col = db
            .create_collection(NAME, CollectionConfig::new(DIM, metric))
            .map_err(fail)?;
        Ok(Harness {
            path: path.to_owned(),
            options,
            metric,
            db: Some(db),
            col: Some(col),
            model: HashMap::new(),
        })
    }

    fn col(&self) -> &Collection {
        self.col.as_ref().unwrap()
    }

    fn reopen(&mut self) -> Result<(), TestCaseError> {
        self.col = None;
        self.db = None;
        let db = Database::open_with(&self.path, self.options.clone())
            .map_err(|e| fail(format!("reopen failed: {e}")))?;
        prop_assert_eq!(db.collections(), vec![NAME.to_owned()]);
        self.col = Some(db.collection(NAME).map_err(fail)?);
        self.db = Some(db);
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Upsert(batch) => {
                let res = self.col().upsert(batch.clone());
                match batch.iter().find_map(|r| expected_problem(self.metric, r)) {
                    Some(want) => {
                        let e = res.err().ok_or_else(|| fail(format!("accepted {want}")))?;
                        prop_assert_eq!(describe(&e), want);
                    }
                    None => {
                        res.map_err(fail)?;
                        for r in batch {
                            self.model.insert(r.id.as_u64().unwrap(), r.clone());
                        }
                    }
                }
            }
            Op::UpsertBad(batch, at, bad) => {
                let mut batch = batch.clone();
                let id = batch.first().map_or(0, |r| r.id.as_u64().unwrap());
                let v = match bad {
                    Bad::Nan => vec![1.0, f32::NAN, 0.0, 2.0],
                    Bad::Inf => vec![1.0, 0.5, f32::NEG_INFINITY, 2.0],
                    Bad::WrongDim(d) => vec![0.5; *d],
                };
                batch.insert(*at, Record::new(id, v));
                let want = batch
                    .iter()
                    .find_map(|r| expected_problem(self.metric, r))
                    .expect("a broken record");
                let e = self
                    .col()
                    .upsert(batch)
                    .err()
                    .ok_or_else(|| fail(format!("accepted {want}")))?;
                prop_assert_eq!(describe(&e), want);
            }
            Op::Delete(ids) => {
                let mut want = 0;
                let mut seen = std::collections::HashSet::new();
                for id in ids {
                    if seen.insert(*id) && self.model.remove(id).is_some() {
                        want += 1;
                    }
                }
                let got = self.col().delete(ids).map_err(fail)?;
                prop_assert_eq!(got, want, "delete count of {:?}", ids);
            }
            Op::Flush => self.col().flush().map_err(fail)?,
            Op::Sync => self.db.as_ref().unwrap().sync().map_err(fail)?,
            Op::Reopen => self.reopen()?,
        }
        Ok(())
    }

    fn check(&self, query: &[f32], k: usize) -> Result<(), TestCaseError> {
        let col = self.col();
        let metric = self.metric;
        prop_assert_eq!(col.len(), self.model.len(), "len");
        prop_assert_eq!(col.is_empty(), self.model.is_empty());
        prop_assert_eq!(col.stats().records, self.model.len(), "stats().records");

        for id in 0..ID_RANGE + 2 {
            let got = col.get(id).map_err(fail)?;
            match (self.model.get(&id), got) {
                (None, None) => {}
                (Some(want), Some(got)) => {
                    prop_assert_eq!(got.id, id);
                    prop_assert_eq!(&got.text, &want.text, "text of {}", id);
                    prop_assert_eq!(&got.payload, &want.payload, "payload of {}", id);
                    let wv = stored(metric, &want.vector);
                    if metric == Metric::Cosine {
                        prop_assert_eq!(got.vector.len(), DIM);
                        for (a, b) in got.vector.iter().zip(&wv) {
                            prop_assert!(
                                (a - b).abs() <= 1e-5,
                                "vector of {}: {:?} vs {:?}",
                                id,
                                got.vector,
                                wv
                            );
                        }
                    } else {
                        prop_assert_eq!(&got.vector, &wv, "vector of {}", id);
                    }
                }
                (want, got) => {
                    return Err(fail(format!("get({id}): model {want:?}, database {got:?}")));
                }
            }
        }

        let req = SearchRequest::new(query.to_vec())
            .k(k)
            .exact(true)
            .with_text(true)
            .with_payload(true);
        let res = col.search(&req);
        if metric == Metric::Cosine && query.iter().all(|&x| x == 0.0) {
            prop_assert!(
                matches!(res, Err(Error::ZeroQuery)),
                "zero query: {:?}",
                res
            );
            return Ok(());
        }
        let hits = res.map_err(fail)?;
        let q = stored(metric, query);
        let mut want: Vec<(f32, u64)> = self
            .model
            .iter()
            .map(|(&id, r)| (reference_score(metric, &q, &stored(metric, &r.vector)), id))
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let n = k.min(want.len());
        prop_assert_eq!(hits.len(), n, "hit count for k={}", k);

        let mut ids = std::collections::HashSet::new();
        for (i, h) in hits.iter().enumerate() {
            prop_assert!(ids.insert(h.id.clone()), "id {} returned twice", h.id);
            let r = self
                .model
                .get(&h.id.as_u64().unwrap())
                .ok_or_else(|| fail(format!("hit {} is not in the model", h.id)))?;
            let own = reference_score(metric, &q, &stored(metric, &r.vector));
            prop_assert!(
                (own - h.score).abs() <= 1e-4,
                "hit {} score {} vs model {}",
                h.id,
                h.score,
                own
            );
            prop_assert!(
                (want[i].0 - h.score).abs() <= 1e-4,
                "rank {}: score {} vs model {}",
                i,
                h.score,
                want[i].0
            );
            prop_assert_eq!(h.text.as_ref(), r.text.as_ref(), "text of hit {}", h.id);
            prop_assert_eq!(
                h.payload.as_ref(),
                Some(&r.payload),
                "payload of hit {}",
                h.id
            );
            // Equal scores are ordered by lower id.
            if i > 0 && hits[i - 1].score == h.score {
                prop_assert!(hits[i - 1].id < h.id, "tie not broken by id: {:?}", hits);
            }
            // Where the model's scores are well separated the id is unambiguous.
            let sep = |j: Option<usize>| {
                j.and_then(|j| want.get(j))
                    .is_none_or(|o| (o.0 - want[i].0).abs() > 1e-3)
            };
            if sep(i.checked_sub(1)) && sep(Some(i + 1)) {
                prop_assert_eq!(
                    h.id.as_u64().unwrap(),
                    want[i].1,
                    "rank {} of {:?}",
                    i,
                    hits
                );
            }
        }
        if metric != Metric::Cosine {
            // Grid vectors: the scores are exact, so the ranking must be exactly the model's.
            let got: Vec<(f32, u64)> = hits
                .iter()
                .map(|h| (h.score + 0.0, h.id.as_u64().unwrap()))
                .collect();
            prop_assert_eq!(&got[..], &want[..n]);
        }
        // The default (HNSW) search: these collections are far smaller than ef = 64 and their
        // graphs nearly complete, so it must find the exact top-k (by score: equal scores may
        // be ordered differently inside one graph).
        let approx = col
            .search(&SearchRequest::new(query.to_vec()).k(k))
            .map_err(fail)?;
        prop_assert_eq!(approx.len(), n, "HNSW hit count for k={}", k);
        for (i, h) in approx.iter().enumerate() {
            prop_assert!(
                (want[i].0 - h.score).abs() <= 1e-4,
                "HNSW rank {}: score {} vs model {}",
                i,
                h.score,
                want[i].0
            );
            prop_assert!(
                self.model.contains_key(&h.id.as_u64().unwrap()),
                "HNSW hit {} not in model",
                h.id
            );
        }
        Ok(())
    }
}

fn run(metric: Metric, config: &DbConfig, steps: &[Step]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let path = dir.path().join("db");
    let mut h = Harness::new(&path, metric, config)?;
    h.check(&steps[0].query, steps[0].k)?;
    for (i, s) in steps.iter().enumerate() {
        h.apply(&s.op)
            .map_err(|e| fail(format!("step {i} {:?}: {e}", s.op)))?;
        h.check(&s.query, s.k)
            .map_err(|e| fail(format!("after step {i} {:?}: {e}", s.op)))?;
    }
    // Whatever happened, a final reopen must show the same state.
    h.reopen()?;
    h.check(&steps[0].query, ID_RANGE as usize)?;
    let report = h.db.as_ref().unwrap().verify().map_err(fail)?;
    prop_assert_eq!(report.collections, 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/model.txt"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_cosine(config in db_config(), steps in steps()) {
        run(Metric::Cosine, &config, &steps)?;
    }

    #[test]
    fn model_dot(config in db_config(), steps in steps()) {
        run(Metric::Dot, &config, &steps)?;
    }

    #[test]
    fn model_l2(config in db_config(), steps in steps()) {
        run(Metric::L2, &config, &steps)?;
    }
}

/// Every accepted vector is rankable: an exact search with k ≥ n returns all n records, at the
/// largest magnitudes each metric accepts (any finite vector under cosine; a norm up to
/// `Metric::MAX_NORM` under dot and l2, beyond which a vector is refused), with finite scores.
#[test]
fn exact_search_returns_every_record_at_extreme_magnitudes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("db")).unwrap();
    for metric in [Metric::Dot, Metric::L2, Metric::Cosine] {
        let c = db
            .create_collection(metric.as_str(), CollectionConfig::new(2, metric))
            .unwrap();
        // Under dot and l2, the largest components whose norm stays within the bound.
        let big: f32 = match metric {
            Metric::Cosine => 3e38,
            _ => (Metric::MAX_NORM / 2f64.sqrt() * 0.999_999) as f32,
        };
        if metric != Metric::Cosine {
            assert!(matches!(
                c.upsert(Record::new(9, vec![3e38, 3e38])),
                Err(cairndb::Error::VectorTooLarge {
                    id: Some(cairndb::Id::Int(9)),
                    ..
                })
            ));
        }
        c.upsert(vec![
            Record::new(1, vec![big, big]),
            Record::new(2, vec![big, -big]),
            Record::new(3, vec![1.0, 1.0]),
            Record::new(4, vec![-big, big]),
        ])
        .unwrap();
        for flushed in [false, true] {
            for q in [vec![big, -big], vec![1.0, 1.0], vec![big, big]] {
                let hits = c
                    .search(&SearchRequest::new(q.clone()).k(10).exact(true))
                    .unwrap();
                let mut ids: Vec<u64> = hits.iter().map(|h| h.id.as_u64().unwrap()).collect();
                ids.sort_unstable();
                assert_eq!(
                    ids,
                    vec![1, 2, 3, 4],
                    "{metric}, flushed: {flushed}, query {q:?}: hits {hits:?}"
                );
                assert!(hits.iter().all(|h| h.score.is_finite()), "{hits:?}");
            }
            c.flush().unwrap();
        }
    }
}
