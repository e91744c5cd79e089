//! `cairn import` killed in the middle (SIGKILL) leaves whole batches only: the collection
//! holds every batch whose `committed N` line was printed, at most the one batch that was
//! being written when the process died (durable, its line not yet printed), and nothing of
//! any later row; every record it holds is the file's, bit for bit.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use cairndb::Record;

use common::{ok, s};

const DIM: usize = 8;
const ROWS: u64 = 200_000;
const BATCH: u64 = 500;

/// Row `i`'s vector: values that no decimal or float64 detour keeps unchanged by accident.
fn vector(i: u64) -> [f32; DIM] {
    std::array::from_fn(|j| (i as f32 + 1.0) / (j as f32 + 3.0) - (i % 7) as f32 * 1e-3)
}

/// A Parquet file of ROWS rows (id, vector, text), written in row groups of 10,000.
fn write_file(path: &Path) {
    let schema = {
        let mut b = FixedSizeListBuilder::new(Float32Builder::new(), DIM as i32);
        b.values().append_slice(&vector(0));
        b.append(true);
        RecordBatch::try_from_iter([
            ("id", Arc::new(UInt64Array::from(vec![0u64])) as ArrayRef),
            ("vector", Arc::new(b.finish()) as ArrayRef),
            ("text", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
        ])
        .unwrap()
        .schema()
    };
    let f = fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema.clone(), None).unwrap();
    for start in (0..ROWS).step_by(10_000) {
        let ids: Vec<u64> = (start..start + 10_000).collect();
        let mut v = FixedSizeListBuilder::new(Float32Builder::new(), DIM as i32);
        for &i in &ids {
            v.values().append_slice(&vector(i));
            v.append(true);
        }
        let text: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt64Array::from(ids)),
                Arc::new(v.finish()),
                Arc::new(StringArray::from(text)),
            ],
        )
        .unwrap();
        w.write(&b).unwrap();
    }
    w.close().unwrap();
}

#[test]
fn a_killed_import_keeps_exactly_whole_acknowledged_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = s(&db);
    let file = dir.path().join("big.parquet");
    write_file(&file);
    ok(&[
        "create",
        db,
        "c",
        "--dim",
        &DIM.to_string(),
        "--metric",
        "l2",
    ]);

    // Killed after a few acknowledged batches, then again at other points of a second import
    // into the same collection (ids restart at 0, so it re-writes rows it holds already).
    let mut prev = 0;
    for kill_after in [3 * BATCH, 11 * BATCH] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["import", db, "c", s(&file), "--batch", &BATCH.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = 0;
        for line in lines.by_ref() {
            acked = line.unwrap()["committed ".len()..].parse::<u64>().unwrap();
            if acked >= kill_after {
                break;
            }
        }
        child.kill().unwrap();
        // The lines it printed before it died: the last one is what it acknowledged.
        for line in lines {
            acked = line.unwrap()["committed ".len()..].parse::<u64>().unwrap();
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the import finished before the kill");
        assert!(acked >= kill_after && acked < ROWS, "{acked}");

        let held: u64 = ok(&["count", db, "c"]).trim().parse().unwrap();
        // This import's rows are a prefix of the file: every acknowledged batch, at most one
        // more whole batch, nothing after it (and the earlier import's rows stay).
        assert!(
            held == acked.max(prev) || held == (acked + BATCH).max(prev),
            "acknowledged {acked}, the collection held {prev} and holds {held}"
        );
        assert_eq!(held % BATCH, 0, "a batch was half written: {held}");

        let mut recs: Vec<Record> = ok(&["export", db, "c"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        recs.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(recs.len() as u64, held);
        for (i, r) in (0..).zip(&recs) {
            assert_eq!(r.id.as_u64(), Some(i));
            let want = vector(i);
            assert_eq!(
                r.vector.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "row {i}"
            );
            assert_eq!(r.text.as_deref(), Some(format!("row {i}").as_str()));
        }
        prev = held;
    }
}
