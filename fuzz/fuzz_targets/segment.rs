//! A segment directory from arbitrary files: open, then every read the database makes.
//! See `cairndb::fuzzing::SegmentFiles::from_bytes` for the input format.
#![no_main]

use cairndb::fuzzing::{SegmentFiles, segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Errors are expected; only a panic (or a sanitizer report) is a finding.
    let _ = segment(&SegmentFiles::from_bytes(data));
});
