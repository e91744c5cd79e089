//! The filter text syntax: what parses must print and parse back, and its index must agree with the matcher.
//! See `cairndb::fuzzing::filter` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Errors are expected; only a panic (or a sanitizer report) is a finding.
    let _ = cairndb::fuzzing::filter(data);
});
