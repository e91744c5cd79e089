//! Multi-process tests. The test binary re-runs itself (`current_exe() --exact <test>`) with
//! `CAIRN_CHILD` set; the test function sees the variable and plays the child: it takes the
//! lock, or writes until the parent SIGKILLs it. Also: concurrent writers sharing fsyncs.

mod common;

use std::collections::HashMap;
use std::env;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cairndb::{
    CollectionConfig, Database, Durability, Error, Metric, Options, Record, SearchRequest,
};

use common::{Rng, watch};

/// Set in a child process to the role it plays.
const CHILD_ENV: &str = "CAIRN_CHILD";
/// The database directory, for a child.
const DB_ENV: &str = "CAIRN_CHILD_DB";
/// The first id a crash child writes.
const START_ENV: &str = "CAIRN_CHILD_START";

/// A command that runs test `test` of this binary as a child playing `role`.
fn child(test: &str, role: &str, db: &Path) -> Command {
    let mut c = Command::new(env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, role)
        .env(DB_ENV, db)
        .stdin(Stdio::null());
    c
}

/// [`common::open_retrying`] for up to 5 s (the lock test's "must be locked" checks do not
/// use it).
fn open_retrying(path: &Path, options: Options) -> cairndb::Result<Database> {
    common::open_retrying(path, options, Duration::from_secs(5))
}

fn child_role() -> Option<String> {
    env::var(CHILD_ENV).ok()
}

fn child_db() -> PathBuf {
    PathBuf::from(env::var(DB_ENV).expect("CAIRN_CHILD_DB"))
}

/// Runs a child to completion and returns the text after `CAIRN:RESULT ` in its output.
fn run_child(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("CAIRN:RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no RESULT line from the child:\n{stdout}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// a. The LOCK file keeps a second process out.

#[test]
fn lock_excludes_other_processes() {
    if let Some(role) = child_role() {
        let opened = if role == "must-open" {
            open_retrying(&child_db(), Options::default())
        } else {
            Database::open(child_db())
        };
        let r = match opened {
            Err(Error::Locked { .. }) => "locked".to_owned(),
            Err(e) => format!("error {e}"),
            Ok(db) => {
                let c = db.collection("c").unwrap();
                let n = c.len();
                c.upsert(Record::new(2, vec![2.0, 2.0])).unwrap();
                format!("opened {n}")
            }
        };
        // The harness has printed "test <name> ... " without a newline: mark our line.
        println!("CAIRN:RESULT {r}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let db = Database::open(&path).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(2, Metric::L2))
        .unwrap();
    c.upsert(Record::new(1, vec![1.0, 1.0])).unwrap();

    let test = "lock_excludes_other_processes";
    assert_eq!(run_child(child(test, "lock", &path)), "locked");
    // A collection handle alone keeps the lock.
    drop(db);
    assert_eq!(run_child(child(test, "lock", &path)), "locked");
    drop(c);
    assert_eq!(run_child(child(test, "must-open", &path)), "opened 1");

    // The child's write is there, and the child released the lock when it exited.
    let db = open_retrying(&path, Options::default()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.get(2).unwrap().unwrap().vector, vec![2.0, 2.0]);
}

// ---------------------------------------------------------------------------------------------
// b. SIGKILL at random moments loses no acknowledged batch and never half a batch.

const CRASH_DIM: usize = 16;
const CRASH_BATCH: u64 = 50;

fn crash_vector(id: u64) -> Vec<f32> {
    let mut r = Rng::new(id.wrapping_mul(0x5851_F42D_4C95_7F2D) ^ 0xABCD);
    (0..CRASH_DIM).map(|_| r.f32_in(-1.0, 1.0)).collect()
}

fn crash_record(id: u64) -> Record {
    Record::new(id, crash_vector(id))
        .with_text(format!("record {id}"))
        .with_field("id", id as i64)
}

/// Seals every ten batches; a new log file about every three.
fn crash_options(buffered: bool) -> Options {
    let durability = if buffered {
        Durability::Buffered {
            interval: Duration::from_millis(20),
        }
    } else {
        Durability::Sync
    };
    Options::default()
        .durability(durability)
        .memtable_max_rows(500)
        .wal_file_bytes(16 << 10)
}

/// The child: writes batches of consecutive ids forever, reporting each acknowledged one
/// (under Buffered durability: each one `upsert` returned for).
fn crash_child(buffered: bool) {
    let start: u64 = env::var(START_ENV).unwrap().parse().unwrap();
    let db = open_retrying(&child_db(), crash_options(buffered)).unwrap();
    let col = db.collection("c").unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "\nCAIRN:ready").unwrap();
    out.flush().unwrap();
    let mut next = start;
    loop {
        let batch: Vec<Record> = (next..next + CRASH_BATCH).map(crash_record).collect();
        col.upsert(batch).unwrap();
        next += CRASH_BATCH;
        // Every id below `next` is acknowledged.
        writeln!(out, "CAIRN:committed {next}").unwrap();
        out.flush().unwrap();
    }
}

/// How a round ends.
#[derive(Debug, Clone, Copy)]
enum KillAfter {
    /// After this many acknowledged batches.
    Lines(usize),
    /// This long after the child reported it had opened the database.
    Ready(Duration),
    /// This long after the child started: possibly during its recovery.
    Spawn(Duration),
}

/// What the parent has read from a crash child.
struct Progress {
    /// Every id below this is acknowledged.
    committed: u64,
    ready_at: Option<Instant>,
    /// Acknowledged batches.
    lines: usize,
}

impl Progress {
    fn on_line(&mut self, line: &str, round: usize) {
        let Some((_, line)) = line.split_once("CAIRN:") else {
            return;
        };
        if line == "ready" {
            self.ready_at = Some(Instant::now());
        } else if let Some(n) = line.strip_prefix("committed ") {
            let n: u64 = n.parse().unwrap();
            assert_eq!(
                n,
                self.committed + CRASH_BATCH,
                "round {round}: batches in order"
            );
            self.committed = n;
            self.lines += 1;
        }
    }
}

#[test]
fn crash_recovery_keeps_every_acknowledged_batch() {
    const TEST: &str = "crash_recovery_keeps_every_acknowledged_batch";
    if child_role().as_deref() == Some("crash") {
        crash_child(false);
        return;
    }
    crash_rounds(TEST, false, 24, 0x5EED_0001);
}

/// Under Buffered durability a crash may lose acknowledged batches, but what remains is
/// always a prefix of whole batches.
#[test]
fn crash_recovery_buffered_keeps_a_prefix_of_batches() {
    const TEST: &str = "crash_recovery_buffered_keeps_a_prefix_of_batches";
    if child_role().as_deref() == Some("crash") {
        crash_child(true);
        return;
    }
    crash_rounds(TEST, true, 12, 0x5EED_0002);
}

/// Rounds of: a child writes until it is killed, then the parent recovers and checks.
fn crash_rounds(test: &str, buffered: bool, rounds: usize, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    {
        let db = Database::open_with(&path, crash_options(false)).unwrap();
        db.create_collection("c", CollectionConfig::new(CRASH_DIM, Metric::L2))
            .unwrap();
    }
    let mut rng = Rng::new(seed);
    // Every id below `durable` is in the database.
    let mut durable = 0u64;
    let started = Instant::now();
    let mut landed_in_flight = 0;
    let mut max_segments = 0;
    let mut lost_acknowledged = 0;
    for round in 0..rounds {
        let kill = match rng.below(3) {
            0 => KillAfter::Lines(rng.below(16) as usize),
            1 => KillAfter::Ready(Duration::from_millis(rng.below(250))),
            _ => KillAfter::Spawn(Duration::from_millis(rng.below(40))),
        };
        let mut w = watch(child(test, "crash", &path).env(START_ENV, durable.to_string()));

        let spawned = Instant::now();
        let mut seen = Progress {
            committed: durable,
            ready_at: None,
            lines: 0,
        };
        // Watch the child until it is time to kill it; give up after 20 s.
        loop {
            let due = match kill {
                KillAfter::Lines(n) => seen.lines >= n,
                KillAfter::Ready(d) => seen.ready_at.is_some_and(|t| t.elapsed() >= d),
                KillAfter::Spawn(d) => spawned.elapsed() >= d,
            };
            if due {
                break;
            }
            assert!(
                spawned.elapsed() < Duration::from_secs(20),
                "round {round}: child stuck"
            );
            match w.lines.recv_timeout(Duration::from_millis(1)) {
                Ok(line) => seen.on_line(&line, round),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = w.proc.wait();
                    panic!("round {round}: the child exited early:\n{}", w.finish().1);
                }
            }
        }
        w.proc.kill().unwrap(); // SIGKILL
        let status = w.proc.wait().unwrap();
        assert!(!status.success(), "round {round}: the child was not killed");
        // Batches acknowledged before the kill that we had not read yet.
        let (late, child_stderr) = w.finish();
        for line in &late {
            seen.on_line(line, round);
        }
        let committed = seen.committed;

        // Recover and check.
        let ctx = format!("round {round} ({kill:?}), {committed} ids acknowledged");
        // Only the child's durability is under test; the parent syncs.
        let db = open_retrying(&path, crash_options(false))
            .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}\nchild stderr:\n{child_stderr}"));
        let report = db
            .verify()
            .unwrap_or_else(|e| panic!("{ctx}: verify failed: {e}"));
        let col = db.collection("c").unwrap();
        let n = col.len() as u64;
        // Ids are written in order, a batch at a time: the database must hold exactly the ids
        // below some whole-batch boundary `n`. Under Sync, `n` is the acknowledged count or one
        // batch more (in flight when the child died); under Buffered it can be less.
        assert_eq!(
            n % CRASH_BATCH,
            0,
            "{ctx}: {n} records is not a whole number of batches"
        );
        if buffered {
            assert!(
                (durable..=committed + CRASH_BATCH).contains(&n),
                "{ctx}: {n} records; {durable} were durable before the round"
            );
            lost_acknowledged += usize::from(n < committed);
        } else {
            assert!(
                n == committed || n == committed + CRASH_BATCH,
                "{ctx}: {n} records, expected {committed} or {}",
                committed + CRASH_BATCH
            );
        }
        for id in 0..n {
            let r = col
                .get(id)
                .unwrap_or_else(|e| panic!("{ctx}: get({id}): {e}"))
                .unwrap_or_else(|| panic!("{ctx}: record {id} is missing, {n} are there"));
            assert_eq!(r, crash_record(id), "{ctx}: record {id}");
        }
        for id in n..n + 2 * CRASH_BATCH {
            assert_eq!(col.get(id).unwrap(), None, "{ctx}: record {id} beyond {n}");
        }
        let in_flight = n > committed;
        if n > 0 {
            // An exact search for a stored vector finds it at distance 0.
            let probe = rng.below(n);
            let hits = col
                .search(&SearchRequest::new(crash_vector(probe)).k(3).exact(true))
                .unwrap();
            assert_eq!(
                (hits[0].id.as_u64().unwrap(), hits[0].score),
                (probe, 0.0),
                "{ctx}: {hits:?}"
            );
        }
        landed_in_flight += usize::from(in_flight);
        max_segments = max_segments.max(report.segments);
        durable = n;
    }
    eprintln!(
        "{test}: {rounds} rounds, {durable} records, {max_segments} segments, \
         {landed_in_flight} in-flight batches landed, {lost_acknowledged} rounds lost \
         acknowledged batches, {:?}",
        started.elapsed()
    );
    assert!(
        durable > 10 * CRASH_BATCH,
        "too little was written to mean much: {durable}"
    );
    assert!(max_segments >= 2, "no seals happened during the run");
}

// ---------------------------------------------------------------------------------------------
// Group commit: many writers with Sync durability in two collections.

fn gc_vector(t: u64, i: u64) -> Vec<f32> {
    vec![t as f32, i as f32, (t * i) as f32, 1.0]
}

fn group_commit(memtable_max_rows: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let options = Options::default()
        .durability(Durability::Sync)
        .memtable_max_rows(memtable_max_rows);
    let per_thread = 200u64;
    // (collection, writer threads)
    let plan = [("a", 8u64), ("b", 4u64)];
    {
        let db = Database::open_with(&path, options.clone()).unwrap();
        let cols: HashMap<&str, _> = plan
            .iter()
            .map(|(name, _)| {
                let c = db
                    .create_collection(name, CollectionConfig::new(4, Metric::Dot))
                    .unwrap();
                (*name, c)
            })
            .collect();
        thread::scope(|s| {
            for (name, threads) in plan {
                for t in 0..threads {
                    let c = cols[name].clone();
                    s.spawn(move || {
                        for i in 0..per_thread {
                            c.upsert(Record::new(t * 1000 + i, gc_vector(t, i)))
                                .unwrap();
                        }
                    });
                }
            }
        });
        for (name, threads) in plan {
            assert_eq!(
                cols[name].len() as u64,
                threads * per_thread,
                "{name} before reopen"
            );
        }
    }
    let db = open_retrying(&path, options).unwrap();
    db.verify().unwrap();
    for (name, threads) in plan {
        let c = db.collection(name).unwrap();
        assert_eq!(c.len() as u64, threads * per_thread, "{name} after reopen");
        let mut missing = Vec::new();
        for t in 0..threads {
            for i in 0..per_thread {
                match c.get(t * 1000 + i).unwrap() {
                    Some(r) => assert_eq!(r.vector, gc_vector(t, i)),
                    None => missing.push(t * 1000 + i),
                }
            }
        }
        assert!(
            missing.is_empty(),
            "{name}: acknowledged records lost: {missing:?}"
        );
    }
}

#[test]
fn concurrent_group_commit() {
    if child_role().is_some() {
        return;
    }
    group_commit(100_000);
}

/// The same with seals all the time: each collection's seal rotates the log and removes old
/// log files while the other collection's writers are appending.
#[test]
fn concurrent_group_commit_with_seals() {
    if child_role().is_some() {
        return;
    }
    group_commit(40);
}

/// One collection's seal removes log files that no memtable needs any more. A concurrent
/// writer of another collection must not lose its batch to that: its frame is in the log
/// before its memtable is registered as needing it. Collection "big" writes large batches
/// (sealed before each next write, so its memtable is empty when each batch is logged);
/// collection "small" flushes all the time. Then the database is closed and reopened.
#[test]
fn seal_does_not_remove_log_of_another_collection() {
    if child_role().is_some() {
        return;
    }
    const BIG_BATCH: u64 = 2000;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let options = Options::default()
        .durability(Durability::Sync)
        .memtable_max_rows(BIG_BATCH as usize);
    let vector = |id: u64| vec![id as f32, 1.0, -(id as f32), 0.5];
    let (big_batches, small_writes) = {
        let db = Database::open_with(&path, options.clone()).unwrap();
        let big = db
            .create_collection("big", CollectionConfig::new(4, Metric::Dot))
            .unwrap();
        let small = db
            .create_collection("small", CollectionConfig::new(4, Metric::Dot))
            .unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        thread::scope(|s| {
            let flusher = s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    small.upsert(Record::new(n, vector(n))).unwrap();
                    small.flush().unwrap();
                    n += 1;
                }
                n
            });
            let deadline = Instant::now() + Duration::from_secs(4);
            let mut b = 0u64;
            while b < 40 && (b < 5 || Instant::now() < deadline) {
                let rs: Vec<Record> = (b * BIG_BATCH..(b + 1) * BIG_BATCH)
                    .map(|id| Record::new(id, vector(id)))
                    .collect();
                big.upsert(rs).unwrap();
                b += 1;
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            (b, flusher.join().unwrap())
        })
    };
    let db = open_retrying(&path, options).unwrap();
    let big = db.collection("big").unwrap();
    let small = db.collection("small").unwrap();
    assert_eq!(small.len() as u64, small_writes, "small after reopen");
    let missing: Vec<u64> = (0..big_batches)
        .filter(|b| big.get(b * BIG_BATCH).unwrap().is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged batches of `big` lost after reopen: {missing:?} of {big_batches} \
         ({} of {} records present)",
        big.len(),
        big_batches * BIG_BATCH
    );
    assert_eq!(big.len() as u64, big_batches * BIG_BATCH);
}
