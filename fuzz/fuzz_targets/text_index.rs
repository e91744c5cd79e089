//! A segment's `text` file (inverted index): decode, BM25, round trip.
//! See `cairndb::fuzzing::text_index` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Errors are expected; only a panic (or a sanitizer report) is a finding.
    let _ = cairndb::fuzzing::text_index(data);
});
