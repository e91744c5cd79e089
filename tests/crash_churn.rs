//! The lifecycle crash loop: a child process upserts, deletes and compacts under
//! `Durability::Sync` (with the background compactor on) and is SIGKILLed at random moments;
//! after each kill the database reopens, `verify` passes, every acknowledged operation is
//! there, nothing else is, and search results equal the model's.
//!
//! `CAIRN_CRASH_ROUNDS` sets the number of kills (default 25); `scripts/crash-test.sh N` runs
//! this test with N rounds.

mod common;

use std::collections::BTreeSet;
use std::env;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairndb::{CollectionConfig, Database, Metric, Options, Record, SearchRequest};

use common::{Rng, watch};

const CHILD_ENV: &str = "CAIRN_CHILD";
const DB_ENV: &str = "CAIRN_CHILD_DB";
/// The first operation the child runs.
const START_ENV: &str = "CAIRN_CHILD_START";
const TEST: &str = "crash_loop_with_deletes_and_compaction";
const DIM: usize = 8;
const BATCH: u64 = 40;

fn vector(id: u64) -> Vec<f32> {
    let mut r = Rng::new(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1234);
    (0..DIM).map(|_| r.f32_in(-1.0, 1.0)).collect()
}

fn record(id: u64) -> Record {
    Record::new(id, vector(id))
        .with_text(format!("record {id} tag{}", id % 5))
        .with_field("m", (id % 3) as i64)
}

fn options() -> Options {
    Options::default()
        .memtable_max_rows(150)
        .wal_file_bytes(16 << 10)
        .compaction_policy(3, 0.2)
}

/// Operation `i`: three upserts of fresh batches, then a delete of every 11th older id, and
/// every fifth delete is followed by an explicit compaction.
enum Op {
    Upsert(std::ops::Range<u64>),
    Delete(Vec<u64>, bool),
}

fn op(i: u64) -> Op {
    let cycle = i / 4;
    if i % 4 < 3 {
        let b = cycle * 3 + i % 4;
        Op::Upsert(b * BATCH..(b + 1) * BATCH)
    } else {
        let written = (cycle + 1) * 3 * BATCH;
        let ids = (0..written).filter(|x| x % 11 == cycle % 11).collect();
        Op::Delete(ids, cycle % 5 == 4)
    }
}

/// The live ids after operations `0..k`.
fn model(k: u64) -> BTreeSet<u64> {
    let mut live = BTreeSet::new();
    for i in 0..k {
        match op(i) {
            Op::Upsert(r) => live.extend(r),
            Op::Delete(ids, _) => {
                for id in ids {
                    live.remove(&id);
                }
            }
        }
    }
    live
}

fn open_retrying(path: &Path) -> cairndb::Result<Database> {
    common::open_retrying(path, options(), Duration::from_secs(10))
}

fn child_main() {
    let start: u64 = env::var(START_ENV).unwrap().parse().unwrap();
    let db = open_retrying(&PathBuf::from(env::var(DB_ENV).unwrap())).unwrap();
    let c = db.collection("c").unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "\nCAIRN:ready").unwrap();
    out.flush().unwrap();
    for i in start.. {
        match op(i) {
            Op::Upsert(r) => c.upsert(r.map(record).collect::<Vec<_>>()).unwrap(),
            Op::Delete(ids, compact) => {
                c.delete(&ids).unwrap();
                if compact {
                    c.compact().unwrap();
                }
            }
        }
        writeln!(out, "CAIRN:done {}", i + 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn crash_loop_with_deletes_and_compaction() {
    if env::var(CHILD_ENV).is_ok() {
        child_main();
        return;
    }
    let rounds: usize = env::var("CAIRN_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    {
        let db = Database::open_with(&path, options()).unwrap();
        db.create_collection("c", CollectionConfig::new(DIM, Metric::Cosine))
            .unwrap();
    }
    let mut rng = Rng::new(0xC0FF_EE00);
    let mut durable = 0u64; // operations known to be in the database
    let started = Instant::now();
    let (mut in_flight_landed, mut max_segments) = (0, 0);
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.below(400));
        let mut w = watch(
            Command::new(env::current_exe().unwrap())
                .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
                .env(CHILD_ENV, "churn")
                .env(DB_ENV, &path)
                .env(START_ENV, durable.to_string())
                .stdin(Stdio::null()),
        );
        let mut acked = durable;
        let mut ready: Option<Instant> = None;
        let spawned = Instant::now();
        let on_line = |line: &str, acked: &mut u64, ready: &mut Option<Instant>| {
            if let Some((_, l)) = line.split_once("CAIRN:") {
                if l == "ready" {
                    *ready = Some(Instant::now());
                } else if let Some(n) = l.strip_prefix("done ") {
                    let n: u64 = n.parse().unwrap();
                    assert_eq!(n, *acked + 1, "round {round}: operations in order");
                    *acked = n;
                }
            }
        };
        loop {
            if ready.is_some_and(|t| t.elapsed() >= kill_after) {
                break;
            }
            assert!(
                spawned.elapsed() < Duration::from_secs(60),
                "round {round}: child stuck"
            );
            match w.lines.recv_timeout(Duration::from_millis(1)) {
                Ok(line) => on_line(&line, &mut acked, &mut ready),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = w.proc.wait();
                    panic!("round {round}: child exited:\n{}", w.finish().1);
                }
            }
        }
        w.proc.kill().unwrap();
        w.proc.wait().unwrap();
        let (late, child_err) = w.finish();
        for line in &late {
            on_line(line, &mut acked, &mut ready);
        }
        let ctx = format!("round {round}: {acked} operations acknowledged");

        let db =
            open_retrying(&path).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}\n{child_err}"));
        let report = db.verify().unwrap_or_else(|e| panic!("{ctx}: verify: {e}"));
        max_segments = max_segments.max(report.segments);
        let c = db.collection("c").unwrap();
        // Exactly the acknowledged operations, or one more (in flight at the kill).
        let (want, landed) = [acked, acked + 1]
            .into_iter()
            .map(|k| (model(k), k))
            .find(|(m, _)| m.len() == c.len() && m.iter().all(|&id| c.get(id).unwrap().is_some()))
            .unwrap_or_else(|| panic!("{ctx}: {} records match neither model", c.len()));
        in_flight_landed += usize::from(landed > acked);
        let top = want.iter().next_back().copied().unwrap_or(0);
        for id in 0..=top + BATCH {
            let got = c
                .get(id)
                .unwrap_or_else(|e| panic!("{ctx}: get({id}): {e}"));
            match (want.contains(&id), got) {
                (true, Some(r)) => assert_eq!(r.text, record(id).text, "{ctx}: record {id}"),
                (false, None) => {}
                (live, got) => panic!("{ctx}: id {id} live in the model: {live}, got {got:?}"),
            }
        }
        // Exact search equals the model's top 10; a filter and BM25 see the model's sets.
        if !want.is_empty() {
            let q = vector(rng.below(top + 1));
            let mut scored: Vec<(f32, u64)> = want
                .iter()
                .map(|&id| {
                    let mut v = vector(id);
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|x| *x /= n);
                    let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                    (v.iter().zip(&q).map(|(a, b)| a * b / qn).sum(), id)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let hits = c.search(&SearchRequest::new(q).k(10).exact(true)).unwrap();
            let got: Vec<u64> = hits.iter().map(|h| h.id.as_u64().unwrap()).collect();
            let expect: Vec<u64> = scored.iter().take(10).map(|s| s.1).collect();
            // Scores computed here and in the database may differ in the last bit: compare
            // sets of the clearly-ranked.
            assert_eq!(got.len(), expect.len(), "{ctx}");
            let common = got.iter().filter(|id| expect.contains(id)).count();
            assert!(common >= 9, "{ctx}: exact search {got:?}, model {expect:?}");
            let m1 = c
                .search(&SearchRequest::by_text("tag1").k(100_000))
                .unwrap()
                .len();
            assert_eq!(
                m1,
                want.iter().filter(|&&id| id % 5 == 1).count(),
                "{ctx}: BM25"
            );
        }
        durable = landed;
        drop(c);
        drop(db);
    }
    eprintln!(
        "{TEST}: {rounds} kills, {durable} operations, {in_flight_landed} in-flight landed, \
         max {max_segments} segments, {:?}",
        started.elapsed()
    );
    assert!(durable > 20, "too little happened: {durable} operations");
}
