//! Indexing a text takes memory proportional to its distinct terms, not to its tokens (issue 13,
//! finding 9: one 400 MB text took 13.5 GB to index). A counting global allocator — in this
//! test binary only — measures the peak heap while one ~20 MB text is upserted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cairndb::{CollectionConfig, Database, Metric, Record, SearchRequest};

mod common;

/// The system allocator, counting the bytes live and the most ever live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counters are
// plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Old and new block may both be live during the copy.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// About `bytes` of text: words drawn from a vocabulary of 100,000 (so many repeats and many
/// distinct terms), some capitalized, with punctuation.
fn big_text(bytes: usize) -> String {
    let mut rng = common::Rng::new(13);
    let mut s = String::with_capacity(bytes + 64);
    let mut i = 0u64;
    while s.len() < bytes {
        let w = rng.below(100_000);
        // A skewed draw: small word numbers are far more frequent.
        let w = w % (1 + rng.below(100_000));
        if i.is_multiple_of(17) {
            s.push('W');
        } else {
            s.push('w');
        }
        s.push_str(&w.to_string());
        s.push_str(match i % 11 {
            0 => ", ",
            5 => ". ",
            _ => " ",
        });
        i += 1;
    }
    s
}

#[test]
fn indexing_one_big_text_peaks_within_three_times_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let col = db
        .create_collection("c", CollectionConfig::new(4, Metric::Cosine))
        .unwrap();
    let text = big_text(20 << 20);
    let len = text.len();
    let record = Record::new(1, [1.0, 0.0, 0.0, 0.0]).with_text(text);

    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    col.upsert(record).unwrap();
    let peak = PEAK.load(Ordering::SeqCst) - before;

    let limit = 3 * len + (4 << 20);
    eprintln!(
        "text {len} bytes: peak {peak} bytes extra ({:.2}× the text)",
        peak as f64 / len as f64
    );
    assert!(
        peak <= limit,
        "upserting a {len}-byte text peaked at {peak} extra heap bytes (limit {limit})"
    );

    // And it is indexed: a word of the text is found.
    let hits = col.search(&SearchRequest::by_text("w0").k(1)).unwrap();
    assert_eq!(hits.first().map(|h| h.id.as_u64().unwrap()), Some(1));
}
