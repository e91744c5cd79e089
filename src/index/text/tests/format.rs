//! The `text` file: round trips, and damage of every kind gives `Error::Corruption`.

use std::path::Path;

use proptest::prelude::*;

use super::terms;
use crate::error::Error;
use crate::index::text::TextIndex;
use crate::index::text::format::put_varint;
use crate::io::header::{FileKind, HEADER_LEN, Header};

const SEG: u64 = 7;

fn path() -> &'static Path {
    Path::new("seg-00000007/text")
}

fn sample() -> TextIndex {
    let mut idx = TextIndex::new();
    idx.push(0, &terms("the quick brown fox jumps over the lazy dog"));
    idx.push(1, &[]);
    idx.push(3, &terms("straße café 東 the the the"));
    idx.push(200, &terms("fox"));
    let mut many = vec!["x".to_string(); 300];
    many.push("fox".into());
    idx.push(70_000, &many);
    idx.push(70_002, &[]);
    idx
}

/// A few rows with overlapping terms, for damage tests that should reach every section.
fn small() -> TextIndex {
    let mut idx = TextIndex::new();
    idx.push(0, &terms("a b a c"));
    idx.push(1, &terms("b"));
    idx.push(3, &terms("c d e a a"));
    idx.push(4, &terms("e"));
    idx
}

fn decode(bytes: &[u8]) -> crate::Result<TextIndex> {
    TextIndex::decode(bytes, path(), SEG)
}

fn assert_corrupt(bytes: &[u8], why: &str) {
    match decode(bytes) {
        Err(Error::Corruption { path: p, what }) => {
            assert_eq!(p, path(), "{why}");
            assert!(!what.is_empty(), "{why}");
        }
        Err(e) => panic!("{why}: expected corruption, got {e}"),
        Ok(_) => panic!("{why}: damaged file decoded"),
    }
}

#[test]
fn round_trip() {
    let idx = sample();
    let bytes = idx.encode(SEG);
    let back = decode(&bytes).unwrap();
    assert_eq!(back, idx);
    assert_eq!(back.rows(), 70_003);
    assert_eq!(back.doc_len(70_000), 301);
    assert_eq!(
        back.postings("fox").unwrap().collect::<Vec<_>>(),
        [(0, 1), (200, 1), (70_000, 1)]
    );
    assert_eq!(back.postings("the").unwrap().as_slice(), [(0, 2), (3, 3)]);
    // Deterministic: the dictionary is sorted, not in hash order.
    assert_eq!(back.encode(SEG), bytes);
}

#[test]
fn empty_round_trip() {
    let idx = TextIndex::new();
    assert_eq!(decode(&idx.encode(SEG)).unwrap(), idx);
    // Rows without any text still set the row count.
    let mut idx = TextIndex::new();
    idx.push(4, &[]);
    let back = decode(&idx.encode(SEG)).unwrap();
    assert_eq!((back.rows(), back.docs_with_text()), (5, 0));
}

#[test]
fn header_fields() {
    let bytes = sample().encode(SEG);
    let h = Header::decode(&bytes, FileKind::Text, path()).unwrap();
    assert_eq!((h.count, h.aux, h.dim, h.block_size), (70_003, SEG, 0, 0));
    assert_eq!(h.body_len as usize, bytes.len() - HEADER_LEN);
    assert_corrupt(&sample().encode(SEG + 1), "other segment");
}

#[test]
fn every_truncation_is_corruption() {
    let bytes = sample().encode(SEG);
    for len in 0..bytes.len() {
        assert_corrupt(&bytes[..len], &format!("truncated to {len}"));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_corrupt(&longer, "extended");
}

#[test]
fn every_bit_flip_is_corruption() {
    let mut idx = TextIndex::new();
    idx.push(0, &terms("a b a"));
    idx.push(2, &terms("b c"));
    let bytes = idx.encode(SEG);
    for i in 0..bytes.len() * 8 {
        let mut c = bytes.clone();
        c[i / 8] ^= 1 << (i % 8);
        assert_corrupt(&c, &format!("bit {i} flipped"));
    }
}

// ---- Structurally bad bodies with valid checksums ----

/// One dictionary entry as written, with explicit (possibly wrong) df and postings bytes.
struct RawTerm {
    term: Vec<u8>,
    df: u64,
    /// (delta, tf) pairs, written verbatim.
    pairs: Vec<(u64, u64)>,
}

fn raw(term: &str, df: u64, pairs: &[(u64, u64)]) -> RawTerm {
    RawTerm {
        term: term.as_bytes().to_vec(),
        df,
        pairs: pairs.to_vec(),
    }
}

/// A file with a correct header and checksum around the given contents.
fn file(count: u64, lens: &[u64], terms: &[RawTerm]) -> Vec<u8> {
    let (mut l, mut d, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for &x in lens {
        put_varint(&mut l, x);
    }
    for t in terms {
        let start = p.len();
        for &(delta, tf) in &t.pairs {
            put_varint(&mut p, delta);
            put_varint(&mut p, tf);
        }
        put_varint(&mut d, t.term.len() as u64);
        d.extend_from_slice(&t.term);
        put_varint(&mut d, t.df);
        put_varint(&mut d, (p.len() - start) as u64);
    }
    let mut body = Vec::new();
    for n in [terms.len(), l.len(), d.len(), p.len()] {
        body.extend_from_slice(&(n as u64).to_le_bytes());
    }
    body.extend_from_slice(&l);
    body.extend_from_slice(&d);
    body.extend_from_slice(&p);
    seal(count, body)
}

/// A version-1 file (no block-bound section) around `body`.
fn seal(count: u64, body: Vec<u8>) -> Vec<u8> {
    seal_version(count, body, 1)
}

fn seal_version(count: u64, body: Vec<u8>, version: u16) -> Vec<u8> {
    let mut h = Header::new(FileKind::Text);
    h.version = version;
    h.count = count;
    h.aux = SEG;
    h.body_len = body.len() as u64;
    h.body_crc = crc32c::crc32c(&body);
    let mut out = h.encode().to_vec();
    out.extend_from_slice(&body);
    out
}

#[test]
fn hand_built_file_decodes() {
    // The helper writes what `encode` writes, so the bad cases below differ in one thing only.
    let good = file(
        3,
        &[3, 0, 2],
        &[
            raw("a", 1, &[(0, 2)]),
            raw("b", 2, &[(0, 1), (2, 1)]),
            raw("c", 1, &[(2, 1)]),
        ],
    );
    let mut idx = TextIndex::new();
    idx.push(0, &terms("a b a"));
    idx.push(2, &terms("b c"));
    assert_eq!(good, idx.encode_version(SEG, 1));
    assert_eq!(decode(&good).unwrap(), idx);
}

#[test]
fn structural_damage_is_corruption() {
    let ab = || vec![raw("a", 1, &[(0, 1)]), raw("b", 1, &[(1, 1)])];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unsorted dictionary",
            file(
                2,
                &[1, 1],
                &[raw("b", 1, &[(1, 1)]), raw("a", 1, &[(0, 1)])],
            ),
        ),
        (
            "duplicate term",
            file(
                2,
                &[2, 0],
                &[raw("a", 1, &[(0, 1)]), raw("a", 1, &[(0, 1)])],
            ),
        ),
        (
            "row beyond count",
            file(
                2,
                &[1, 1],
                &[raw("a", 1, &[(0, 1)]), raw("b", 1, &[(2, 1)])],
            ),
        ),
        (
            "rows not increasing",
            file(2, &[2, 0], &[raw("a", 2, &[(0, 1), (0, 1)])]),
        ),
        ("zero tf", file(1, &[0], &[raw("a", 1, &[(0, 0)])])),
        ("zero df", file(1, &[0], &[raw("a", 0, &[])])),
        (
            "df above rows",
            file(1, &[2], &[raw("a", 2, &[(0, 1), (1, 1)])]),
        ),
        (
            "df above postings",
            file(2, &[1, 0], &[raw("a", 5, &[(0, 1)])]),
        ),
        ("length disagrees with postings", file(2, &[1, 2], &ab())),
        ("text in a row of length 0", file(2, &[1, 0], &ab())),
        (
            "row count above u32",
            file(u64::from(u32::MAX) + 1, &[1, 1], &ab()),
        ),
        ("more rows than length bytes", file(3, &[1, 1], &ab())),
        ("fewer rows than lengths", file(1, &[1, 1], &ab())),
        (
            "tf above u32",
            file(1, &[1], &[raw("a", 1, &[(0, 1 << 32)])]),
        ),
        (
            "invalid UTF-8 term",
            file(
                1,
                &[1],
                &[RawTerm {
                    term: vec![0xff],
                    df: 1,
                    pairs: vec![(0, 1)],
                }],
            ),
        ),
    ];
    for (why, bytes) in cases {
        assert_corrupt(&bytes, why);
    }
}

#[test]
fn bad_section_sizes_and_varints_are_corruption() {
    let good = file(
        2,
        &[1, 1],
        &[raw("a", 1, &[(0, 1)]), raw("b", 1, &[(1, 1)])],
    );
    let body = good[HEADER_LEN..].to_vec();
    let with = |off: usize, v: u64| {
        let mut b = body.clone();
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        seal(2, b)
    };
    assert_corrupt(&with(0, u64::MAX), "huge term count");
    assert_corrupt(&with(0, 3), "term count above entries");
    assert_corrupt(&with(0, 1), "term count below entries");
    assert_corrupt(&with(8, u64::MAX), "section sizes overflow");
    assert_corrupt(&with(8, 3), "sections do not fill the body");
    assert_corrupt(&with(16, 0), "sections short of the body");
    assert_corrupt(&seal(2, body[..31].to_vec()), "no meta block");

    // A varint that never ends, and one that overflows u64.
    let unterminated = file(1, &[], &[]);
    let mut lens = unterminated[HEADER_LEN..].to_vec();
    lens[8..16].copy_from_slice(&11u64.to_le_bytes());
    lens.extend_from_slice(&[0x80; 10]);
    lens.push(0);
    assert_corrupt(&seal(1, lens.clone()), "11-byte varint");
    let mut lens = unterminated[HEADER_LEN..].to_vec();
    lens[8..16].copy_from_slice(&10u64.to_le_bytes());
    lens.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
    assert_corrupt(&seal(1, lens), "varint above u64");
    let mut lens = unterminated[HEADER_LEN..].to_vec();
    lens[8..16].copy_from_slice(&5u64.to_le_bytes());
    lens.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]);
    assert_corrupt(&seal(1, lens), "length above u32");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random damage under a valid checksum: never a panic; whatever decodes is a consistent
    /// index (it re-encodes to something that decodes to itself).
    #[test]
    fn damaged_bodies_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let bytes = small().encode(SEG);
        let mut body = bytes[HEADER_LEN..].to_vec();
        for (at, v) in edits {
            let i = at.index(body.len());
            body[i] = v;
        }
        if let Some(c) = cut {
            body.truncate(c.index(body.len()));
        }
        let count = Header::decode(&bytes, FileKind::Text, path()).unwrap().count;
        match decode(&seal(count, body)) {
            Ok(idx) => prop_assert_eq!(decode(&idx.encode(SEG)).unwrap(), idx),
            Err(e) => prop_assert!(matches!(e, Error::Corruption { .. }), "{}", e),
        }
    }
}

// ---- Version 2: stored block bounds ----

/// An index whose term `a` has 150 postings (three blocks, the first two full), of varied
/// frequencies and lengths, so that its bounds are stored.
fn blocky() -> TextIndex {
    let mut idx = TextIndex::new();
    for row in 0..160u32 {
        if row % 16 == 15 {
            continue;
        }
        let mut t = vec!["a".to_string(); 1 + (row % 3) as usize];
        let z = if row % 7 == 6 { 6 } else { 0 };
        t.extend(std::iter::repeat_n("z".to_string(), z));
        idx.push(row, &t);
    }
    idx
}

/// The body of `bytes` and its block-bound section's range.
fn bound_section(bytes: &[u8]) -> (Vec<u8>, std::ops::Range<usize>) {
    let body = bytes[HEADER_LEN..].to_vec();
    let len = u64::from_le_bytes(body[32..40].try_into().unwrap()) as usize;
    let range = body.len() - len..body.len();
    (body, range)
}

#[test]
fn version_2_stores_block_bounds_and_version_1_still_reads() {
    use crate::index::text::bm25::{Source, search};
    use crate::index::text::index::{BLOCK_LEN, block_bounds};
    let idx = blocky();
    let v2 = idx.encode(SEG);
    let h = Header::decode(&v2, FileKind::Text, path()).unwrap();
    assert_eq!(h.version, 2);
    let (_, range) = bound_section(&v2);
    // Three blocks of `a` (`z` has fewer than BLOCK_LEN postings: no stored bounds).
    assert!(idx.postings("a").unwrap().len() > 2 * BLOCK_LEN);
    assert!(!range.is_empty());
    let v1 = idx.encode_version(SEG, 1);
    assert_eq!(
        Header::decode(&v1, FileKind::Text, path()).unwrap().version,
        1
    );
    let (a, b) = (decode(&v2).unwrap(), decode(&v1).unwrap());
    assert_eq!(a, idx);
    assert_eq!(b, idx);
    let want = block_bounds(idx.postings("a").unwrap().as_slice(), &idx.doc_lens);
    assert_eq!(want.len(), 3);
    for back in [&a, &b] {
        assert_eq!(back.postings("a").unwrap().blocks(), want.as_slice());
        // A short list gets its one block's bounds on load.
        assert_eq!(back.postings("z").unwrap().blocks().len(), 1);
    }
    // Re-encoding either gives the version-2 file.
    assert_eq!(a.encode(SEG), v2);
    assert_eq!(b.encode(SEG), v2);
    let q = terms("a z");
    let run = |i: &TextIndex| {
        let s = [Source {
            index: i,
            dead: None,
            allow: None,
            live: None,
        }];
        search(&s, &q, 7)
    };
    assert_eq!(run(&a), run(&idx));
    assert_eq!(run(&b), run(&idx));
    // A version this build does not know is refused.
    let mut future = v2.clone();
    future[8..10].copy_from_slice(&3u16.to_le_bytes());
    let crc = crc32c::crc32c(&future[..60]);
    future[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_corrupt(&future, "version 3");
}

#[test]
fn damaged_block_bounds_are_corruption() {
    let bytes = blocky().encode(SEG);
    let count = blocky().rows() as u64;
    let (body, range) = bound_section(&bytes);
    // The first block: n, then n × (tf, dl), all one-byte varints here.
    let n = body[range.start] as usize;
    assert!((1..=4).contains(&n));
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = body.clone();
        f(&mut b);
        seal_version(count, b, 2)
    };
    let set_len =
        |b: &mut Vec<u8>, len: usize| b[32..40].copy_from_slice(&(len as u64).to_le_bytes());
    let start = range.start;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no points", edit(&|b| b[start] = 0)),
        ("too many points", edit(&|b| b[start] = 5)),
        // The largest tf of the block's first point lowered: some posting is not covered.
        ("bound below a posting", edit(&|b| b[start + 1] = 1)),
        // The first point's length raised past every row's: the shortest row is not covered.
        ("length above the rows'", edit(&|b| b[start + 2] = 100)),
        (
            "section cut short",
            edit(&|b| {
                b.pop();
                let len = b.len() - start;
                set_len(b, len);
            }),
        ),
        (
            "bytes left over",
            edit(&|b| {
                b.push(1);
                let len = b.len() - start;
                set_len(b, len);
            }),
        ),
        ("section size off", edit(&|b| set_len(b, range.len() + 1))),
        (
            "no meta for the section",
            seal_version(count, body[..36].to_vec(), 2),
        ),
        // A version-2 body read as version 1: the sections do not add up.
        (
            "version 1 header on a version-2 body",
            seal_version(count, body.clone(), 1),
        ),
    ];
    for (why, bytes) in cases {
        assert_corrupt(&bytes, why);
    }
    // Every truncation of a file with stored bounds.
    for len in 0..bytes.len() {
        assert_corrupt(&bytes[..len], &format!("truncated to {len}"));
    }
}
