//! The filter text syntax and JSON form: what parses must print (and write) and read back, and its index must agree with the matcher.
//! See `cairndb::fuzzing::filter` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Errors are expected; only a panic (or a sanitizer report) is a finding.
    let _ = cairndb::fuzzing::filter(data);
});
