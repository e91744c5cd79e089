//! String ids whose keys collide (3-bit keys through the fault-injection seam), against an
//! exact model: upserts, updates, deletes by id and by filter, flushes, compactions (also in
//! the background, racing the writer), reopens (a replay of a log holding a record and a
//! later delete of its key) and a read-only handle following the writer.
//!
//! The seam is process-wide: this is its own test binary, and every test in it sets 3 bits
//! (none sets them back, so they may run in parallel).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Error, Filter, Id, IdType, Metric, Options,
    Record, ScanOptions, SearchRequest, Update, faults,
};
use common::Rng;

const DIM: usize = 2;

fn cfg() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::Dot).with_id_type(IdType::Str)
}

fn opts() -> Options {
    Options::default()
        .durability(Durability::Sync)
        .memtable_max_rows(5)
        .wal_file_bytes(16 << 10)
        .max_wal_bytes(64 << 10)
}

/// 24 strings over the 8 keys (3 each).
fn strings() -> Vec<String> {
    faults::set_id_key_bits(3);
    let mut by_key: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut i = 0;
    while by_key.len() < 8 || by_key.values().any(|v| v.len() < 3) {
        let s = format!("s{i}");
        let v = by_key.entry(Id::from(s.as_str()).key()).or_default();
        if v.len() < 3 {
            v.push(s);
        }
        i += 1;
    }
    by_key.into_values().flatten().collect()
}

fn key(s: &str) -> u64 {
    Id::from(s).key()
}

/// What a record holds in the model: its vector's first value and its text.
type Model = BTreeMap<String, (f32, String)>;

fn record(s: &str, x: f32, text: &str) -> Record {
    Record::new(s, vec![x, 1.0])
        .with_text(text.to_owned())
        .with_field("tag", text.to_owned())
}

/// The collection's contents, by every way of reading it, must equal the model.
fn check(c: &Collection, model: &Model, all: &[String], what: &str) {
    let scanned: Model = c
        .scan(ScanOptions::new())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.id.as_str().unwrap().to_owned(),
                (r.vector[0], r.text.unwrap()),
            )
        })
        .collect();
    assert_eq!(&scanned, model, "{what}: scan");
    assert_eq!(c.len(), model.len(), "{what}: len");
    for s in all {
        let got = c
            .get(s.as_str())
            .unwrap()
            .map(|r| (r.vector[0], r.text.unwrap()));
        assert_eq!(got.as_ref(), model.get(s), "{what}: get {s}");
    }
    let hits = c
        .search(
            &SearchRequest::new(vec![1.0, 0.0])
                .k(all.len())
                .exact(true)
                .with_text(true),
        )
        .unwrap();
    assert_eq!(hits.len(), model.len(), "{what}: hits");
    for h in hits {
        let s = h.id.as_str().unwrap();
        assert_eq!(
            h.text.as_ref(),
            model.get(s).map(|m| &m.1),
            "{what}: hit {s}"
        );
    }
}

/// The model's answer to an upsert of `batch`: the collision it must be refused with, if any.
fn model_upsert(model: &Model, batch: &[(String, f32, String)]) -> Option<(String, String)> {
    let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
    for (s, _, _) in batch {
        match seen.get(&key(s)) {
            Some(&o) if o != s => return Some((s.clone(), o.to_owned())),
            Some(_) => {}
            None => {
                seen.insert(key(s), s);
            }
        }
    }
    for (s, _, _) in batch {
        if let Some(o) = model.keys().find(|o| key(o) == key(s) && *o != s) {
            return Some((s.clone(), o.clone()));
        }
    }
    None
}

/// One random step on `c` and the model. Returns a name for messages.
fn step(rng: &mut Rng, c: &Collection, model: &mut Model, all: &[String], n: usize) -> String {
    let pick = |rng: &mut Rng| all[rng.below(all.len() as u64) as usize].clone();
    match rng.below(10) {
        0..=3 => {
            let batch: Vec<(String, f32, String)> = (0..1 + rng.below(3))
                .map(|j| (pick(rng), (n * 4 + j as usize) as f32, format!("t{n}.{j}")))
                .collect();
            let recs: Vec<Record> = batch.iter().map(|(s, x, t)| record(s, *x, t)).collect();
            match (c.upsert(recs), model_upsert(model, &batch)) {
                (Ok(()), None) => {
                    for (s, x, t) in &batch {
                        model.insert(s.clone(), (*x, t.clone()));
                    }
                }
                (Err(Error::IdCollision { id, other }), Some(_)) => {
                    // Which collision is named first is the engine's choice; it must be one.
                    let twin = |a: &str, b: &str| a != b && key(a) == key(b);
                    assert!(
                        batch.iter().any(|b| b.0 == id)
                            && twin(&id, &other)
                            && (batch.iter().any(|b| b.0 == other) || model.contains_key(&other)),
                        "step {n}: upsert {batch:?}: not a collision: {id} with {other}"
                    );
                }
                (got, want) => panic!("step {n}: upsert {batch:?}: got {got:?}, want {want:?}"),
            }
            format!("upsert {batch:?}")
        }
        4 | 5 => {
            let ids: Vec<String> = (0..1 + rng.below(3)).map(|_| pick(rng)).collect();
            let mut want = 0;
            for s in &ids {
                want += usize::from(model.remove(s).is_some());
            }
            assert_eq!(c.delete(&ids).unwrap(), want, "step {n}: delete {ids:?}");
            format!("delete {ids:?}")
        }
        6 | 7 => {
            let ups: Vec<(String, f32)> = (0..1 + rng.below(3))
                .map(|j| (pick(rng), -((n * 4 + j as usize) as f32)))
                .collect();
            let mut want = 0;
            for (s, x) in &ups {
                if let Some(m) = model.get_mut(s) {
                    m.0 = *x;
                    want += 1;
                }
            }
            let got = c
                .update(
                    ups.iter()
                        .map(|(s, x)| Update::new(s.as_str()).vector(vec![*x, 1.0]))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
            assert_eq!(got, want, "step {n}: update {ups:?}");
            format!("update {ups:?}")
        }
        8 => {
            // Delete by filter: the records whose text is one of two picked ones.
            let texts: Vec<String> = model.values().map(|m| m.1.clone()).take(2).collect();
            let Some(t) = texts.last().cloned() else {
                return "nothing to delete by filter".into();
            };
            let before = model.len();
            model.retain(|_, m| m.1 != t);
            let got = c.delete_where(&Filter::eq("tag", t.as_str())).unwrap();
            assert_eq!(got, before - model.len(), "step {n}: delete_where {t}");
            format!("delete_where {t}")
        }
        _ => {
            if rng.below(2) == 0 {
                c.flush().unwrap();
                "flush".into()
            } else {
                c.compact().unwrap();
                "compact".into()
            }
        }
    }
}

/// Random steps against the model, with reopens (the log then holds records and later
/// deletes of their keys, replayed on top of segments) and a read-only handle that follows.
#[test]
fn colliding_ids_against_a_model_with_reopens_and_a_follower() {
    let all = strings();
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let mut rng = Rng::new(0x5eed_c011);
    let mut n = 0;
    for round in 0..6 {
        let db = Database::open_with(dir.path(), opts()).unwrap();
        let c = if round == 0 {
            db.create_collection("c", cfg()).unwrap()
        } else {
            db.collection("c").unwrap()
        };
        check(&c, &model, &all, &format!("reopen {round}"));
        let reader = Database::open_read_only(dir.path()).unwrap();
        let rc = reader.collection("c").unwrap();
        for _ in 0..60 {
            let what = step(&mut rng, &c, &mut model, &all, n);
            n += 1;
            if n % 7 == 0 {
                check(&c, &model, &all, &format!("step {n}: {what}"));
                check(&rc, &model, &all, &format!("reader, step {n}: {what}"));
            }
        }
        check(&c, &model, &all, &format!("end of round {round}"));
        drop(rc);
        drop(reader);
        drop(c);
        drop(db);
    }
    let db = Database::open(dir.path()).unwrap();
    check(&db.collection("c").unwrap(), &model, &all, "final");
    db.verify().unwrap();
}

/// One writer cycles each key through its three strings (delete one, upsert its twin, with
/// refused twins in between) while other threads flush and compact without pause: at every
/// step the writer's view equals its model, and nothing hangs.
#[test]
fn twins_written_while_compacting() {
    let all = strings();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), opts()).unwrap();
    let c = db.create_collection("c", cfg()).unwrap();
    let stop = AtomicBool::new(false);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let model = std::thread::scope(|s| {
        for t in 0..2 {
            let c = c.clone();
            let stop = &stop;
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if t == 0 {
                        c.compact().unwrap();
                    } else {
                        c.flush().unwrap();
                    }
                }
            });
        }
        let writer = {
            let c = c.clone();
            let all = all.clone();
            s.spawn(move || {
                let mut model = Model::new();
                let mut rng = Rng::new(7);
                for n in 0..400 {
                    step(&mut rng, &c, &mut model, &all, n);
                    if n % 50 == 49 {
                        check(&c, &model, &all, &format!("step {n}"));
                    }
                }
                model
            })
        };
        // A watchdog: the writer must finish, and the helpers stop once it has (even if it
        // failed).
        let w = s.spawn(move || {
            let m = writer.join();
            let _ = done_tx.send(());
            m
        });
        let finished = done_rx.recv_timeout(Duration::from_secs(300)).is_ok();
        stop.store(true, Ordering::Relaxed);
        assert!(finished, "the writer did not finish: a hang");
        w.join().unwrap().unwrap()
    });
    check(&c, &model, &all, "end");
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    check(&db.collection("c").unwrap(), &model, &all, "reopened");
}

/// Threads upsert, delete, update and read the same few colliding strings at once. Every
/// read names each record by its own id; an upsert either lands or collides with a live
/// twin; at the end each key has at most one string, every way of reading agrees, and a
/// reopen shows the same.
#[test]
fn threads_hammer_the_same_colliding_ids() {
    let all = strings();
    let few: Vec<String> = all.iter().take(9).cloned().collect(); // three keys
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), opts().memtable_max_rows(7)).unwrap();
    let c = db.create_collection("c", cfg()).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for t in 0..4u64 {
            let c = c.clone();
            let few = few.clone();
            let done = done_tx.clone();
            handles.push(s.spawn(move || {
                let mut rng = Rng::new(100 + t);
                for n in 0..250 {
                    let s = &few[rng.below(few.len() as u64) as usize];
                    let text = format!("{s}/{t}/{n}");
                    match rng.below(6) {
                        0 | 1 => match c.upsert(record(s, n as f32, &text)) {
                            Ok(()) => {}
                            Err(Error::IdCollision { id, other }) => {
                                assert_eq!(&id, s);
                                assert!(key(&other) == key(s) && other != *s, "{other}");
                            }
                            Err(e) => panic!("{e}"),
                        },
                        2 => {
                            c.delete(&[s.as_str()]).unwrap();
                        }
                        3 => {
                            c.update(Update::new(s.as_str()).text(text)).unwrap();
                        }
                        4 => {
                            if let Some(r) = c.get(s.as_str()).unwrap() {
                                assert_eq!(r.id, *s);
                                let txt = r.text.unwrap();
                                assert!(txt.starts_with(&format!("{s}/")), "{s}: {txt}");
                            }
                        }
                        _ => {
                            let hits = c
                                .search(&SearchRequest::new(vec![1.0, 0.5]).k(9).with_text(true))
                                .unwrap();
                            for h in hits {
                                let id = h.id.as_str().unwrap().to_owned();
                                let txt = h.text.unwrap();
                                assert!(txt.starts_with(&format!("{id}/")), "{id}: {txt}");
                            }
                        }
                    }
                }
                drop(done);
            }));
        }
        drop(done_tx);
        // All senders dropped = every thread done (or panicked).
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        loop {
            match done_rx.recv_timeout(Duration::from_millis(200)) {
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                _ if std::time::Instant::now() > deadline => panic!("threads hang"),
                _ => {}
            }
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    let model: Model = c
        .scan(ScanOptions::new())
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.id.as_str().unwrap().to_owned(),
                (r.vector[0], r.text.unwrap()),
            )
        })
        .collect();
    let keys: std::collections::BTreeSet<u64> = model.keys().map(|s| key(s)).collect();
    assert_eq!(keys.len(), model.len(), "one string per key: {model:?}");
    check(&c, &model, &all, "end");
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    check(&db.collection("c").unwrap(), &model, &all, "reopened");
    db.verify().unwrap();
}
