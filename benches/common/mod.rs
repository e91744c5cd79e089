//! Helpers shared by the benchmarks: seeded random data, records and scratch directories.

#![allow(dead_code)] // each bench target uses a different subset

use std::path::Path;

use cairndb::Record;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tempfile::TempDir;

/// A deterministic generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A vector of `dim` components uniform in [-1, 1).
pub fn random_vector(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `n` vectors of `dim` components, concatenated.
pub fn random_flat(rng: &mut StdRng, n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect()
}

/// Records with ids `first..first + n`, random vectors, no text or payload.
pub fn random_records(rng: &mut StdRng, first: u64, n: usize, dim: usize) -> Vec<Record> {
    (0..n as u64)
        .map(|i| Record::new(first + i, random_vector(rng, dim)))
        .collect()
}

/// A scratch directory on the same file system as the build (`target/tmp`), not `/tmp`,
/// which may be a RAM disk where fsync costs nothing.
pub fn scratch_dir() -> TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("create target tmp dir");
    tempfile::Builder::new()
        .prefix("cairn-bench-")
        .tempdir_in(base)
        .expect("create scratch dir")
}

/// Whether this process was started by `cargo bench` (not `cargo test --benches`, where
/// criterion runs every benchmark once as a test). Test mode uses small inputs.
pub fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}
