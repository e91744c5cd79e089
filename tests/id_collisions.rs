//! String ids whose 64-bit keys collide. Real XXH3-64 collisions are too rare to meet, so
//! the fault-injection seam keeps only 3 bits of every key (8 keys for all strings): a
//! colliding string is refused with `IdCollision` whether its twin is in the same batch,
//! stored in a memtable or a segment, or staged by a batch still on its way; and a get,
//! delete or update of a string that merely shares a key never touches its twin.
//!
//! The seam is process-wide, so this file is its own test binary with one test.

use std::collections::BTreeMap;

use cairndb::{
    CollectionConfig, Database, Error, Id, IdType, Metric, Options, Record, ScanOptions, Update,
    faults,
};

fn rec(id: &str, x: f32) -> Record {
    Record::new(id, vec![x, 1.0]).with_text(id.to_owned())
}

/// Strings grouped by their (truncated) key.
fn by_key(n: usize) -> BTreeMap<u64, Vec<String>> {
    let mut m: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for i in 0..n {
        let s = format!("id-{i}");
        m.entry(Id::from(s.as_str()).key()).or_default().push(s);
    }
    m
}

#[test]
fn colliding_string_ids_are_refused_and_never_touch_each_other() {
    faults::set_id_key_bits(3);
    let groups = by_key(64);
    assert_eq!(groups.len(), 8, "3 bits: 8 keys");
    // Seven keys get a stored record; the eighth stays free for `fresh`.
    let pairs: Vec<(String, String)> = groups
        .values()
        .take(7)
        .map(|v| (v[0].clone(), v[1].clone()))
        .collect();
    let fresh = groups.values().last().unwrap()[0].clone();

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(4)).unwrap();
    let c = db
        .create_collection(
            "c",
            CollectionConfig::new(2, Metric::Dot).with_id_type(IdType::Str),
        )
        .unwrap();
    let collision = |r: cairndb::Result<()>, id: &str, other: &str| match r {
        Err(Error::IdCollision { id: a, other: b }) => {
            assert_eq!((a.as_str(), b.as_str()), (id, other));
        }
        got => panic!("expected a collision of {id} with {other}, got {got:?}"),
    };

    // In one batch: refused whole.
    let (a, b) = &pairs[0];
    collision(c.upsert(vec![rec(a, 1.0), rec(b, 2.0)]), b, a);
    assert_eq!(c.len(), 0);
    // The same id twice in a batch is no collision: the last one wins.
    c.upsert(vec![rec(a, 1.0), rec(a, 3.0)]).unwrap();
    assert_eq!(c.get(a.as_str()).unwrap().unwrap().vector, vec![3.0, 1.0]);

    // Against a stored twin, in a memtable and then in a segment.
    for (i, (a, b)) in pairs.iter().enumerate().skip(1) {
        c.upsert(rec(a, i as f32)).unwrap();
        collision(c.upsert(rec(b, 9.0)), b, a);
    }
    c.flush().unwrap();
    for (a, b) in &pairs {
        collision(c.upsert(vec![rec(&fresh, 0.5), rec(b, 9.0)]), b, a);
    }
    assert_eq!(
        c.get(fresh.as_str()).unwrap(),
        None,
        "a refused batch wrote nothing"
    );
    assert_eq!(c.len(), pairs.len());

    // A twin that shares a key is not the record: get finds nothing, delete and update touch
    // nothing, and the stored one is intact.
    for (a, b) in &pairs {
        assert_eq!(c.get(b.as_str()).unwrap(), None);
        assert_eq!(c.delete(&[b.as_str()]).unwrap(), 0);
        assert_eq!(c.update(Update::new(b.as_str()).text("x")).unwrap(), 0);
        let r = c.get(a.as_str()).unwrap().unwrap();
        assert_eq!((r.id, r.text), (Id::from(a.as_str()), Some(a.clone())));
    }

    // Once a record is deleted, its twin may take the key.
    let (a, b) = &pairs[2];
    assert_eq!(c.delete(&[a.as_str()]).unwrap(), 1);
    c.upsert(rec(b, 4.0)).unwrap();
    assert_eq!(c.get(a.as_str()).unwrap(), None);
    assert_eq!(c.get(b.as_str()).unwrap().unwrap().id, b.as_str());

    // Writers racing with twins: of each pair exactly one wins (whichever staged first), the
    // other gets IdCollision; nothing is lost or doubled.
    let groups = by_key(400);
    let fresh: Vec<(String, String)> = groups
        .values()
        .map(|v| (v[2].clone(), v[3].clone()))
        .collect();
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = Database::open_with(dir2.path(), Options::default().memtable_max_rows(3)).unwrap();
    let c2 = db2
        .create_collection(
            "c",
            CollectionConfig::new(2, Metric::Dot).with_id_type(IdType::Str),
        )
        .unwrap();
    let results: Vec<(bool, bool)> = std::thread::scope(|s| {
        let left = s.spawn(|| {
            fresh
                .iter()
                .map(|(a, _)| c2.upsert(rec(a, 1.0)).is_ok())
                .collect::<Vec<_>>()
        });
        let right = s.spawn(|| {
            fresh
                .iter()
                .map(|(_, b)| c2.upsert(rec(b, 2.0)).is_ok())
                .collect::<Vec<_>>()
        });
        let (l, r) = (left.join().unwrap(), right.join().unwrap());
        l.into_iter().zip(r).collect()
    });
    // One pair per key: the second of each pair to arrive collides with the first.
    let stored: Vec<Id> = c2
        .scan(ScanOptions::new())
        .unwrap()
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(stored.len(), 8, "exactly one record per key: {stored:?}");
    let oks =
        results.iter().filter(|(l, _)| *l).count() + results.iter().filter(|(_, r)| *r).count();
    assert_eq!(oks, stored.len(), "every acknowledged upsert is stored");
    for id in &stored {
        let s = id.as_str().unwrap();
        assert_eq!(c2.get(s).unwrap().unwrap().text.as_deref(), Some(s));
    }
    drop(c2);
    drop(db2);
    faults::set_id_key_bits(64);
}
