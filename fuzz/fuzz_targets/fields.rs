//! A segment's `fields` file (payload field indexes): decode, filters, round trip.
//! See `cairndb::fuzzing::fields` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Errors are expected; only a panic (or a sanitizer report) is a finding.
    let _ = cairndb::fuzzing::fields(data);
});
