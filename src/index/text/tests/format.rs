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

fn seal(count: u64, body: Vec<u8>) -> Vec<u8> {
    let mut h = Header::new(FileKind::Text);
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
    assert_eq!(good, idx.encode(SEG));
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
