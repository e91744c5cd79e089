//! The `codes` segment file (int8, and RaBitQ 4- and 1-bit at the end): written at seal and compaction, mapped at open (no heap
//! copy, no rebuild), checked block by block, and every way it can be missing or damaged is a
//! clear error — never a search that quietly walks wrong codes.

use std::path::{Path, PathBuf};

use cairndb::{CollectionConfig, Database, Error, Metric, Quantization, Record, SearchRequest};
use rand::{RngExt, SeedableRng};

const DIM: usize = 48;

fn rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

fn fill(db: &Database, name: &str, cfg: CollectionConfig, data: &[Vec<f32>]) {
    let c = db.create_collection(name, cfg).unwrap();
    let recs: Vec<Record> = data
        .iter()
        .enumerate()
        .map(|(i, v)| Record::new(i as u64, v.clone()))
        .collect();
    for chunk in recs.chunks(1000) {
        c.upsert(chunk.to_vec()).unwrap();
    }
    c.flush().unwrap();
}

fn seg_dirs(db: &Path, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(db.join("collections").join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn exact_top(data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<u64> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut s: Vec<(f32, u64)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let d: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            (d / (norm(v) * norm(q)), i as u64)
        })
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0));
    s.into_iter().take(k).map(|x| x.1).collect()
}

fn recall(db: &Database, name: &str, data: &[Vec<f32>]) -> f64 {
    let c = db.collection(name).unwrap();
    let qs = rows(30, 99);
    let mut hit = 0;
    for q in &qs {
        let want = exact_top(data, q, 10);
        let got = c
            .search(&SearchRequest::new(q.clone()).k(10).ef(64))
            .unwrap();
        hit += got
            .iter()
            .filter(|h| want.iter().any(|w| h.id == *w))
            .count();
    }
    hit as f64 / (qs.len() * 10) as f64
}

fn codes_len(rows: usize) -> u64 {
    let row = (DIM + 4).div_ceil(64) * 64;
    let data = rows * row;
    64 + data as u64 + 4 * data.div_ceil(65536) as u64
}

#[test]
fn a_seal_writes_codes_that_reopen_mapped_with_no_heap_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(3000, 1);
    {
        let db = Database::open(dir.path()).unwrap();
        fill(&db, "c", CollectionConfig::new(DIM, Metric::Cosine), &data);
        assert!(recall(&db, "c", &data) >= 0.9);
    }
    let segs = seg_dirs(dir.path(), "c");
    assert_eq!(segs.len(), 1);
    let f = segs[0].join("codes");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), codes_len(3000));

    let db = Database::open(dir.path()).unwrap();
    let r = recall(&db, "c", &data);
    assert!(r >= 0.9, "recall {r}");
    let st = db.collection("c").unwrap().stats();
    let s = &st.segments[0];
    assert_eq!(s.codes_bytes, codes_len(3000));
    // Searches walked the codes: nothing of them is on the heap (no text or filter was used).
    assert_eq!(s.index_heap_bytes, 0);
    assert!(s.mapped_bytes >= s.codes_bytes);
    db.verify().unwrap();
}

#[test]
fn quantization_none_and_l2_write_no_codes_and_search_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(3000, 2);
    {
        let db = Database::open(dir.path()).unwrap();
        fill(
            &db,
            "none",
            CollectionConfig::new(DIM, Metric::Cosine).with_quantization(Quantization::None),
            &data,
        );
        fill(&db, "l2", CollectionConfig::new(DIM, Metric::L2), &data);
    }
    for name in ["none", "l2"] {
        let segs = seg_dirs(dir.path(), name);
        assert!(!segs[0].join("codes").exists(), "{name}");
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("none").unwrap();
    assert_eq!(c.config().quantization, Quantization::None);
    assert!(recall(&db, "none", &data) >= 0.9);
    let st = c.stats();
    assert_eq!(st.segments[0].codes_bytes, 0);
    assert_eq!(
        st.segments[0].index_heap_bytes, 0,
        "no heap copy is built either"
    );
    // The setting is kept through a reopen and refused when unknown.
    let e = "rabitq9".parse::<Quantization>().unwrap_err().to_string();
    assert!(e.contains("rabitq4") && e.contains("int8"), "{e}");
    assert_eq!(
        "rabitq4".parse::<Quantization>().unwrap(),
        Quantization::RaBitQ4
    );
    assert_eq!(
        "rabitq1".parse::<Quantization>().unwrap(),
        Quantization::RaBitQ1
    );
    db.verify().unwrap();
}

#[test]
fn a_compaction_writes_codes_for_the_merged_segment() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(2500, 3);
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    for (part, chunk) in data.chunks(1000).enumerate() {
        let recs: Vec<Record> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| Record::new((part * 1000 + i) as u64, v.clone()))
            .collect();
        c.upsert(recs).unwrap();
        c.flush().unwrap();
    }
    c.delete(&[5u64, 6, 7]).unwrap();
    assert_eq!(c.stats().segments.len(), 3);
    c.compact().unwrap();
    let st = c.stats();
    assert_eq!(st.segments.len(), 1);
    assert_eq!(st.segments[0].codes_bytes, codes_len(st.segments[0].rows));
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    db.verify().unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(None).unwrap(), 2497);
}

fn damage(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

fn is_corruption_of_codes<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(e @ Error::Corruption { .. }) => {
            let s = e.to_string();
            assert!(s.contains("codes"), "{s}");
            s
        }
        other => panic!("expected corruption of the codes file, got {other:?}"),
    }
}

#[test]
fn a_bit_flip_anywhere_in_the_codes_file_is_an_error_not_a_wrong_walk() {
    let data = rows(3000, 4);
    let len = codes_len(3000);
    // Header, a row's codes, a row's scale, the last row, the block table.
    for at in [3, 40, 64 + 5, 64 + 48, 64 + 2999 * 64 + 1, len - 2] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path()).unwrap();
            fill(&db, "c", CollectionConfig::new(DIM, Metric::Cosine), &data);
        }
        let f = seg_dirs(dir.path(), "c")[0].join("codes");
        damage(&f, at);
        match Database::open(dir.path()) {
            // Header or table: refused at open.
            Err(e) => {
                is_corruption_of_codes::<()>(Err(e));
            }
            // A data block: the first search touching it fails; verify finds it.
            Ok(db) => {
                assert!(at >= 64 && at < len - 4 * 3);
                let c = db.collection("c").unwrap();
                let mut failed = false;
                for q in rows(50, 7) {
                    match c.search(&SearchRequest::new(q).k(10)) {
                        Ok(_) => {}
                        Err(e) => {
                            is_corruption_of_codes::<()>(Err(e));
                            failed = true;
                        }
                    }
                }
                assert!(failed, "no search touched the damaged block at {at}");
                is_corruption_of_codes(db.verify());
            }
        }
    }
}

#[test]
fn a_missing_or_cut_codes_file_fails_the_open_by_name() {
    let data = rows(1500, 5);
    for cut in [None, Some(100u64)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path()).unwrap();
            fill(&db, "c", CollectionConfig::new(DIM, Metric::Cosine), &data);
        }
        let f = seg_dirs(dir.path(), "c")[0].join("codes");
        match cut {
            None => std::fs::remove_file(&f).unwrap(),
            Some(n) => {
                let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
                file.set_len(n).unwrap();
            }
        }
        match Database::open(dir.path()) {
            Err(Error::Corruption { .. }) if cut.is_some() => {}
            Err(e) => assert!(e.to_string().contains("codes"), "{e}"),
            Ok(_) => panic!("opened without its codes file (cut {cut:?})"),
        }
    }
}

/// Codes that pass every checksum but are not the coding of their vectors (a writer bug, or a
/// file from another segment of the same shape with fixed-up checksums) are found by verify.
#[test]
fn verify_finds_codes_that_disagree_with_their_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(1000, 6);
    {
        let db = Database::open(dir.path()).unwrap();
        fill(&db, "c", CollectionConfig::new(DIM, Metric::Cosine), &data);
    }
    let f = seg_dirs(dir.path(), "c")[0].join("codes");
    let mut b = std::fs::read(&f).unwrap();
    let data_len = 1000 * 64;
    b[64 + 10 * 64 + 3] = b[64 + 10 * 64 + 3].wrapping_add(1);
    // Recompute the block table and its checksum in the header, then the header's own.
    let table: Vec<u8> = b[64..64 + data_len]
        .chunks(65536)
        .flat_map(|c| crc32c::crc32c(c).to_le_bytes())
        .collect();
    b[64 + data_len..].copy_from_slice(&table);
    b[32..36].copy_from_slice(&crc32c::crc32c(&table).to_le_bytes());
    let hc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&hc.to_le_bytes());
    std::fs::write(&f, b).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let s = is_corruption_of_codes(db.verify());
    assert!(s.contains("row 10"), "{s}");
}

/// A segment written before codes files existed has no `codes` entry in the manifest: it
/// opens, its int8 copy is built on the heap as before, and searches find the same rows.
#[test]
fn a_segment_from_before_codes_files_opens_and_quantizes_on_the_heap() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(3000, 8);
    {
        let db = Database::open(dir.path()).unwrap();
        fill(&db, "c", CollectionConfig::new(DIM, Metric::Cosine), &data);
    }
    // Rewrite the manifest as an older build would have written it: no `codes` entries; and
    // remove the file, which such a build never wrote.
    let m = dir.path().join("MANIFEST");
    let b = std::fs::read(&m).unwrap();
    let body = String::from_utf8(b[64..].to_vec()).unwrap();
    assert!(body.contains("\"codes\": \"int8\""), "{body}");
    let body = body.replace(",\n          \"codes\": \"int8\"", "");
    assert!(!body.contains("codes"), "{body}");
    let mut h = b[..64].to_vec();
    h[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[32..36].copy_from_slice(&crc32c::crc32c(body.as_bytes()).to_le_bytes());
    let hc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&hc.to_le_bytes());
    std::fs::write(&m, [&h[..], body.as_bytes()].concat()).unwrap();
    std::fs::remove_file(seg_dirs(dir.path(), "c")[0].join("codes")).unwrap();

    let db = Database::open(dir.path()).unwrap();
    assert!(recall(&db, "c", &data) >= 0.9);
    let st = db.collection("c").unwrap().stats();
    assert_eq!(st.segments[0].codes_bytes, 0);
    assert!(
        st.segments[0].index_heap_bytes >= 3000 * 64,
        "the heap copy was built: {}",
        st.segments[0].index_heap_bytes
    );
    db.verify().unwrap();
}

// ---- RaBitQ ----

/// Bytes of a RaBitQ codes file of `rows` rows of `DIM` dimensions and `bits` bits.
fn rabitq_len(rows: usize, bits: usize) -> u64 {
    let pre = 64 + (DIM * 4).div_ceil(64) * 64;
    let code = if bits == 1 {
        DIM.div_ceil(8)
    } else {
        DIM.div_ceil(2)
    };
    let row = (12 + code).div_ceil(16) * 16;
    let data = pre + rows * row;
    64 + data as u64 + 4 * data.div_ceil(65536) as u64
}

fn rabitq_kinds() -> [(Quantization, usize); 2] {
    [(Quantization::RaBitQ4, 4), (Quantization::RaBitQ1, 1)]
}

/// Searches `c` with `queries`: every hit's score is the exact score of its record (the one an
/// exact search gives it), and the recall@10 against the exact top 10 is returned.
fn scores_are_exact_and_recall(c: &cairndb::Collection, queries: &[Vec<f32>], ef: usize) -> f64 {
    let mut hit = 0;
    for q in queries {
        let exact = c
            .search(&SearchRequest::new(q.clone()).k(100_000).exact(true))
            .unwrap();
        let got = c
            .search(&SearchRequest::new(q.clone()).k(10).ef(ef))
            .unwrap();
        assert_eq!(got.len(), 10);
        for h in &got {
            let e = exact
                .iter()
                .find(|e| e.id == h.id)
                .expect("hit is a record");
            assert_eq!(h.score, e.score, "hit {:?}: walk score vs exact", h.id);
        }
        hit += got
            .iter()
            .filter(|h| exact[..10].iter().any(|e| e.id == h.id))
            .count();
    }
    hit as f64 / (queries.len() * 10) as f64
}

#[test]
fn rabitq_codes_round_trip_for_every_metric_and_hits_carry_exact_scores() {
    let data = rows(3000, 11);
    let queries = rows(20, 12);
    for (kind, bits) in rabitq_kinds() {
        for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
            let dir = tempfile::tempdir().unwrap();
            let before = {
                let db = Database::open(dir.path()).unwrap();
                fill(
                    &db,
                    "c",
                    CollectionConfig::new(DIM, metric).with_quantization(kind),
                    &data,
                );
                let c = db.collection("c").unwrap();
                let r = scores_are_exact_and_recall(&c, &queries, 64);
                assert!(r >= 0.85, "{kind} {metric:?}: recall {r}");
                c.search(&SearchRequest::new(queries[0].clone()).k(10))
                    .unwrap()
            };
            let segs = seg_dirs(dir.path(), "c");
            let f = segs[0].join("codes");
            assert_eq!(std::fs::metadata(&f).unwrap().len(), rabitq_len(3000, bits));

            let db = Database::open(dir.path()).unwrap();
            let c = db.collection("c").unwrap();
            assert_eq!(c.config().quantization, kind);
            let after = c
                .search(&SearchRequest::new(queries[0].clone()).k(10))
                .unwrap();
            assert_eq!(
                before.iter().map(|h| (&h.id, h.score)).collect::<Vec<_>>(),
                after.iter().map(|h| (&h.id, h.score)).collect::<Vec<_>>(),
                "{kind} {metric:?}: the same hits after a reopen"
            );
            let r = scores_are_exact_and_recall(&c, &queries, 64);
            assert!(r >= 0.85, "{kind} {metric:?}: recall {r} after reopen");
            let st = c.stats();
            assert_eq!(st.segments[0].codes_bytes, rabitq_len(3000, bits));
            assert_eq!(st.segments[0].index_heap_bytes, 0, "mapped, no heap copy");
            db.verify().unwrap();
        }
    }
}

#[test]
fn rabitq_memtable_rows_are_searched_over_heap_codes() {
    // Rows not sealed yet: the memtable keeps RaBitQ codes on the heap; hits are exact.
    let data = rows(2500, 13);
    let queries = rows(20, 14);
    for (kind, _) in rabitq_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection(
                "c",
                CollectionConfig::new(DIM, Metric::L2).with_quantization(kind),
            )
            .unwrap();
        let recs: Vec<Record> = data
            .iter()
            .enumerate()
            .map(|(i, v)| Record::new(i as u64, v.clone()))
            .collect();
        c.upsert(recs).unwrap();
        assert!(c.stats().segments.is_empty());
        let r = scores_are_exact_and_recall(&c, &queries, 64);
        assert!(r >= 0.85, "{kind}: recall {r} over the memtable");
    }
}

#[test]
fn a_compaction_writes_rabitq_codes_for_the_merged_segment() {
    let data = rows(2500, 15);
    for (kind, bits) in rabitq_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection(
                "c",
                CollectionConfig::new(DIM, Metric::Cosine).with_quantization(kind),
            )
            .unwrap();
        for (part, chunk) in data.chunks(1000).enumerate() {
            let recs: Vec<Record> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| Record::new((part * 1000 + i) as u64, v.clone()))
                .collect();
            c.upsert(recs).unwrap();
            c.flush().unwrap();
        }
        c.delete(&[5u64, 6, 7]).unwrap();
        c.compact().unwrap();
        let st = c.stats();
        assert_eq!(st.segments.len(), 1);
        assert_eq!(
            st.segments[0].codes_bytes,
            rabitq_len(st.segments[0].rows, bits)
        );
        drop(c);
        drop(db);
        let db = Database::open(dir.path()).unwrap();
        db.verify().unwrap();
        let c = db.collection("c").unwrap();
        assert_eq!(c.count(None).unwrap(), 2497);
        let r = scores_are_exact_and_recall(&c, &rows(10, 16), 64);
        assert!(r >= 0.85, "{kind}: recall {r} after compaction");
    }
}

#[test]
fn a_bit_flip_in_a_rabitq_codes_file_is_a_corruption_error() {
    let data = rows(3000, 17);
    for (kind, bits) in rabitq_kinds() {
        let len = rabitq_len(3000, bits);
        let pre = 64 + (DIM * 4).div_ceil(64) as u64 * 64;
        // Header, the preamble's bits, seed and centroid, a row's factors and codes, the
        // last row, the block table.
        for at in [
            3,
            64,
            64 + 9,
            64 + 64 + 4,
            64 + pre + 1,
            64 + pre + 14,
            len - 20,
            len - 2,
        ] {
            let dir = tempfile::tempdir().unwrap();
            {
                let db = Database::open(dir.path()).unwrap();
                fill(
                    &db,
                    "c",
                    CollectionConfig::new(DIM, Metric::Cosine).with_quantization(kind),
                    &data,
                );
            }
            let f = seg_dirs(dir.path(), "c")[0].join("codes");
            damage(&f, at);
            match Database::open(dir.path()) {
                Err(e) => {
                    is_corruption_of_codes::<()>(Err(e));
                }
                Ok(db) => {
                    // Row data (the preamble is checked at open).
                    assert!(at >= 64 + pre, "{kind}: opened with byte {at} flipped");
                    let c = db.collection("c").unwrap();
                    let mut failed = false;
                    for q in rows(60, 7) {
                        if let Err(e) = c.search(&SearchRequest::new(q).k(10)) {
                            is_corruption_of_codes::<()>(Err(e));
                            failed = true;
                        }
                    }
                    assert!(failed, "{kind}: no search touched the damaged byte {at}");
                    is_corruption_of_codes(db.verify());
                }
            }
        }
    }
}

#[test]
fn a_rabitq_file_where_the_manifest_names_another_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(1500, 18);
    {
        let db = Database::open(dir.path()).unwrap();
        fill(
            &db,
            "c",
            CollectionConfig::new(DIM, Metric::Cosine).with_quantization(Quantization::RaBitQ4),
            &data,
        );
    }
    // The manifest says 1-bit codes for a 4-bit file (checksums fixed up).
    let m = dir.path().join("MANIFEST");
    let b = std::fs::read(&m).unwrap();
    let body = String::from_utf8(b[64..].to_vec()).unwrap();
    assert!(body.contains("\"codes\": \"rabitq4\""), "{body}");
    let body = body.replace("\"codes\": \"rabitq4\"", "\"codes\": \"rabitq1\"");
    let mut h = b[..64].to_vec();
    h[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[32..36].copy_from_slice(&crc32c::crc32c(body.as_bytes()).to_le_bytes());
    let hc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&hc.to_le_bytes());
    std::fs::write(&m, [&h[..], body.as_bytes()].concat()).unwrap();
    let Err(e) = Database::open(dir.path()) else {
        panic!("opened a 4-bit codes file as 1-bit codes");
    };
    assert!(matches!(e, Error::Corruption { .. }), "{e}");
    assert!(e.to_string().contains("codes"), "{e}");
}
