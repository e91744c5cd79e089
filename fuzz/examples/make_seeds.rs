//! Writes the seed inputs of every fuzz target into `fuzz/seeds/<target>/` (or the directory
//! given as the first argument), made from a small database written through the public API.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`

use std::path::PathBuf;

fn main() -> cairndb::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    cairndb::fuzzing::write_seeds(&out)?;
    println!("seeds written to {}", out.display());
    Ok(())
}
