//! The write-ahead log: frames decoded as replay decodes them, from a buffer, a log file and a database.
//! See `cairndb::fuzzing::wal` for the input format.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Errors are expected; only a panic (or a sanitizer report) is a finding.
    let _ = cairndb::fuzzing::wal(data);
});
