//! What every end-to-end test of the `cairn` binary needs: running it, and reading what it
//! printed. Each test file takes the helpers it uses (`mod common;`), so some go unused in
//! some files.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the built `cairn` with `args`.
pub fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .expect("the cairn binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cairn` and expects success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = cairn(args);
    assert!(
        o.status.success(),
        "cairn {args:?} failed ({:?}):\n{}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

/// A temporary path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Runs `cairn` and expects success with one line of JSON on stdout.
pub fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    assert_eq!(out.lines().count(), 1, "one line of JSON: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"))
}

/// A temporary directory `dir` and a database path `db` in it (not created).
pub struct Db {
    _tmp: tempfile::TempDir,
    pub dir: std::path::PathBuf,
    pub db: std::path::PathBuf,
}

pub fn new_db() -> Db {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let db = dir.join("db");
    Db { _tmp: tmp, dir, db }
}
