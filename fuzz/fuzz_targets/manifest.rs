//! The manifest: header, checksum, JSON and its validation; what decodes must round-trip.
//! See `cairndb::fuzzing::manifest` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Errors are expected; only a panic (or a sanitizer report) is a finding.
    let _ = cairndb::fuzzing::manifest(data);
});
