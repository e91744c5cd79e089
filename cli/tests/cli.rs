//! End-to-end tests of the `cairn` command-line tool: each runs the built binary in a
//! temporary directory and checks its exit code and real output.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{cairn, new_db, ok, s, stderr, stdout};

/// Runs `cairn` and expects exit code 1 with a one-line error; returns stderr.
fn fails(args: &[&str]) -> String {
    let o = cairn(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "cairn {args:?}: stdout {}\nstderr {err}",
        stdout(&o)
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

/// The `committed N` lines of an import's output, as numbers.
fn committed(out: &str) -> Vec<u64> {
    out.lines()
        .map(|l| {
            l.strip_prefix("committed ")
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
                .parse()
                .unwrap()
        })
        .collect()
}

/// A JSONL file of `n` records of dimension 3; record i points mostly along axis i % 3.
fn write_jsonl(path: &Path, n: u64) {
    let mut text = String::new();
    for i in 0..n {
        let mut v = [0.1f32; 3];
        v[(i % 3) as usize] = 1.0 + i as f32;
        let rec = serde_json::json!({
            "id": i,
            "vector": v,
            "text": format!("doc {i}"),
            "payload": {"lang": if i % 2 == 0 { "en" } else { "de" }, "n": i},
        });
        text.push_str(&rec.to_string());
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

/// Writes `.fvecs` rows.
fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut b = Vec::new();
    for r in rows {
        b.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    fs::write(path, b).unwrap();
}

/// `n` distinct 4-d rows.
fn grid(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| vec![i as f32, (i * i % 7) as f32, 1.0, -(i as f32) / 2.0])
        .collect()
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn hit_ids(line: &Value) -> Vec<u64> {
    line["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn jsonl_import_search_get_delete_stats() {
    let t = new_db();
    let db = s(&t.db);
    let out = ok(&["create", db, "docs", "--dim", "3", "--metric", "cosine"]);
    assert!(out.contains("created collection `docs`"), "{out}");

    let file = t.dir.join("docs.jsonl");
    write_jsonl(&file, 25);
    let out = ok(&["import", db, "docs", s(&file), "--batch", "10"]);
    assert_eq!(committed(&out), vec![10, 20, 25]);

    // The best match of an axis-0 query is a record along axis 0, with its text and payload.
    let out = ok(&[
        "search",
        db,
        "docs",
        "--vector",
        "[1, 0, 0]",
        "--k",
        "3",
        "--json",
        "--with-text",
        "--with-payload",
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let hits = lines[0]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    let top = &hits[0];
    let id = top["id"].as_u64().unwrap();
    assert_eq!(id % 3, 0);
    assert_eq!(top["text"], format!("doc {id}"));
    assert_eq!(top["payload"]["n"], id);
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores[0] > 0.99 && scores[0] <= 1.0001, "{scores:?}");

    // Without --with-text/--with-payload, hits carry only id and score; the table is readable.
    let out = ok(&[
        "search",
        db,
        "docs",
        "--vector",
        "[0, 1, 0]",
        "--k",
        "2",
        "--json",
        "--exact",
    ]);
    let line = &json_lines(&out)[0];
    assert!(line["hits"][0].get("text").is_none());
    assert_eq!(hit_ids(line).len(), 2);
    let table = ok(&[
        "search",
        db,
        "docs",
        "--vector",
        "[0, 1, 0]",
        "--k",
        "2",
        "--with-text",
    ]);
    assert!(
        table.contains("2 hits") && table.contains("rank") && table.contains("doc "),
        "{table}"
    );

    // get: found → the record as JSON; missing → exit 1 and a clear message.
    let rec: Value = serde_json::from_str(&ok(&["get", db, "docs", "4"])).unwrap();
    assert_eq!(rec["id"], 4);
    assert_eq!(rec["text"], "doc 4");
    assert_eq!(rec["payload"]["lang"], "en");
    assert_eq!(rec["vector"].as_array().unwrap().len(), 3);
    let err = fails(&["get", db, "docs", "99"]);
    assert!(
        err.contains("record 99 not found in collection `docs`"),
        "{err}"
    );

    // delete: reports how many existed; the records are gone.
    let out = ok(&["delete", db, "docs", "4", "5", "99"]);
    assert!(out.starts_with("deleted 2 "), "{out}");
    fails(&["get", db, "docs", "4"]);
    let out = ok(&[
        "search",
        db,
        "docs",
        "--vector",
        "[1, 1, 1]",
        "--k",
        "100",
        "--json",
    ]);
    let ids = hit_ids(&json_lines(&out)[0]);
    assert_eq!(ids.len(), 23);
    assert!(!ids.contains(&4) && !ids.contains(&5));

    let stats: Value = serde_json::from_str(&ok(&["stats", db, "--json"])).unwrap();
    let c = &stats["collections"][0];
    assert_eq!(c["name"], "docs");
    assert_eq!(c["dim"], 3);
    assert_eq!(c["metric"], "cosine");
    assert_eq!(c["records"], 23);
    assert!(stats["wal_bytes"].as_u64().is_some());
    let segs = c["segments"].as_array().unwrap();
    assert_eq!(
        segs.len(),
        1,
        "import seals its rows into a segment: {stats}"
    );
    assert_eq!(segs[0]["rows"], 25);
    assert_eq!(segs[0]["deleted"], 2);
    let text = ok(&["stats", db]);
    assert!(
        text.contains("docs") && text.contains("cosine") && text.contains("23"),
        "{text}"
    );
}

#[test]
fn text_filter_hybrid_explain_and_jsonl_queries() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "3"]);
    let file = t.dir.join("docs.jsonl");
    write_jsonl(&file, 30);
    ok(&["import", db, "docs", s(&file)]);

    // Full text: "doc 7" matches every record on "doc" and record 7 on "7".
    let out = ok(&[
        "search", db, "docs", "--text", "doc 7", "--k", "3", "--json",
    ]);
    assert_eq!(hit_ids(&json_lines(&out)[0])[0], 7, "{out}");

    // A filter on both legs, hybrid fusion with per-leg details, and the plan.
    let out = ok(&[
        "search",
        db,
        "docs",
        "--vector",
        "[1, 0, 0]",
        "--text",
        "doc 8",
        "--filter",
        r#"lang = "en" AND n < 20"#,
        "--k",
        "5",
        "--explain",
        "--json",
        "--with-payload",
    ]);
    let line = &json_lines(&out)[0];
    let hits = line["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5, "{line}");
    for h in hits {
        assert_eq!(h["payload"]["lang"], "en", "{line}");
        assert!(h["payload"]["n"].as_u64().unwrap() < 20, "{line}");
        assert!(
            h["legs"].get("vector").is_some() && h["legs"].get("text").is_some(),
            "{line}"
        );
    }
    assert!(
        hit_ids(line).contains(&8),
        "the text leg's best match is fused in: {line}"
    );
    let plans = line["explain"]["vector"].as_array().unwrap();
    let matched: u64 = plans.iter().map(|p| p["matched"].as_u64().unwrap()).sum();
    assert_eq!(matched, 10, "{line}");
    assert_eq!(line["explain"]["complete"], true);
    assert_eq!(
        line["explain"]["text"]["terms"],
        serde_json::json!(["doc", "8"])
    );

    // No --fusion: the library's default, weighted min-max with alpha 0.6 (the same hits and
    // scores as asking for it), not RRF.
    let hybrid = |extra: &[&str]| {
        let mut args = vec![
            "search",
            db,
            "docs",
            "--vector",
            "[1, 0, 0]",
            "--text",
            "doc 8",
            "--k",
            "5",
            "--json",
        ];
        args.extend_from_slice(extra);
        json_lines(&ok(&args))[0]["hits"].clone()
    };
    let default = hybrid(&[]);
    assert_eq!(
        default,
        hybrid(&["--fusion", "weighted", "--alpha", "0.6"]),
        "{default}"
    );
    assert_ne!(default, hybrid(&["--fusion", "rrf"]), "{default}");

    // The same as a table.
    let out = ok(&[
        "search",
        db,
        "docs",
        "--vector",
        "[1, 0, 0]",
        "--text",
        "doc",
        "--fusion",
        "weighted",
        "--alpha",
        "0.7",
        "--explain",
    ]);
    assert!(
        out.contains("vector leg") && out.contains("text leg") && out.contains("complete: yes"),
        "{out}"
    );

    // Batch queries from JSONL, answered in order, each with its own k and filter form.
    let queries = t.dir.join("q.jsonl");
    fs::write(
        &queries,
        concat!(
            "{\"vector\": [0, 1, 0], \"k\": 2}\n",
            "{\"text\": \"doc 5\", \"k\": 1}\n",
            "{\"vector\": [0, 0, 1], \"filter\": \"n >= 25\", \"k\": 10}\n",
            "{\"vector\": [0, 0, 1], \"filter\": {\"eq\": {\"field\": \"lang\", \"value\": \"de\"}}, \"k\": 3}\n",
        ),
    )
    .unwrap();
    let out = ok(&[
        "search",
        db,
        "docs",
        "--queries",
        s(&queries),
        "--json",
        "--with-payload",
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(hit_ids(&lines[0]).len(), 2);
    assert_eq!(hit_ids(&lines[1]), vec![5]);
    let mut late = hit_ids(&lines[2]);
    late.sort_unstable();
    assert_eq!(late, vec![25, 26, 27, 28, 29]);
    assert!(
        lines[3]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["payload"]["lang"] == "de")
    );

    // Errors: one line, with the column of a syntax error.
    let err = fails(&[
        "search",
        db,
        "docs",
        "--vector",
        "[1, 0, 0]",
        "--filter",
        "lang = ",
    ]);
    assert!(err.contains("column 8"), "{err}");
    fs::write(
        &queries,
        "{\"vector\": [1, 0, 0], \"filter\": \"n >> 3\"}\n",
    )
    .unwrap();
    let err = fails(&["search", db, "docs", "--queries", s(&queries)]);
    assert!(err.contains("q.jsonl:1") && err.contains("column"), "{err}");
    let err = fails(&[
        "search",
        db,
        "docs",
        "--vector",
        "[1, 0, 0]",
        "--fusion",
        "weighted",
        "--text",
        "x",
        "--alpha",
        "2",
    ]);
    assert!(err.contains("alpha"), "{err}");
}

#[test]
fn compact_merges_segments_and_stats_show_memory() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "3"]);
    let file = t.dir.join("docs.jsonl");
    write_jsonl(&file, 30);
    // The import leaves its rows in the memtable; compact seals it first, then merges.
    ok(&["import", db, "docs", s(&file)]);
    ok(&["delete", db, "docs", "0", "1", "2", "3", "4", "5"]);
    let out = ok(&["compact", db, "docs", "--json"]);
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["rows_out"], 24, "{report}");
    let out = ok(&["compact", db, "docs"]);
    assert!(out.contains("nothing to compact"), "{out}");
    let out = ok(&["stats", db, "--json"]);
    let stats: Value = serde_json::from_str(out.trim()).unwrap();
    let seg = &stats["collections"][0]["segments"][0];
    assert!(seg["mapped_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(seg["deleted"], 0, "{stats}");
    let out = ok(&[
        "search",
        db,
        "docs",
        "--vector",
        "[1, 0, 0]",
        "--k",
        "30",
        "--json",
    ]);
    let ids = hit_ids(&json_lines(&out)[0]);
    assert_eq!(ids.len(), 24);
    assert!(ids.iter().all(|&id| id >= 6), "{ids:?}");
    let err = fails(&["compact", db, "nope"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn fvecs_import_and_query_file() {
    let t = new_db();
    let db = s(&t.db);
    let file = t.dir.join("base.fvecs");
    let rows = grid(10);
    write_fvecs(&file, &rows);

    // Importing .fvecs needs the collection first.
    let err = fails(&["import", db, "vecs", s(&file)]);
    assert!(err.contains("cairn create"), "{err}");
    ok(&["create", db, "other", "--dim", "4"]);
    let err = fails(&["import", db, "vecs", s(&file)]);
    assert!(
        err.contains("does not exist") && err.contains("--dim 4"),
        "{err}"
    );

    ok(&["create", db, "vecs", "--dim", "4", "--metric", "l2"]);
    // `--no-compaction` (a bulk load that merges at the end) imports the same way.
    let out = ok(&[
        "import",
        db,
        "vecs",
        s(&file),
        "--batch",
        "3",
        "--no-compaction",
    ]);
    assert_eq!(committed(&out), vec![3, 6, 9, 10]);

    // Each stored row, as a query, finds itself first with score 0 (L2).
    let queries = t.dir.join("q.fvecs");
    write_fvecs(&queries, &[rows[7].clone(), rows[2].clone()]);
    let out = ok(&[
        "search",
        db,
        "vecs",
        "--queries",
        s(&queries),
        "--k",
        "4",
        "--json",
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(hit_ids(&lines[0])[0], 7);
    assert_eq!(hit_ids(&lines[1])[0], 2);
    assert_eq!(lines[0]["hits"][0]["score"].as_f64(), Some(0.0));
    assert_eq!(hit_ids(&lines[0]).len(), 4);

    let rec: Value = serde_json::from_str(&ok(&["get", db, "vecs", "3"])).unwrap();
    let v: Vec<f64> = rec["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(v, rows[3].iter().map(|&x| f64::from(x)).collect::<Vec<_>>());

    // A file cut in the middle of a row is reported with the row.
    let bytes = fs::read(&file).unwrap();
    let cut = t.dir.join("cut.fvecs");
    fs::write(&cut, &bytes[..bytes.len() - 6]).unwrap();
    // Into a collection with records, the rows need --id-start (row numbers from 0 would
    // replace the records imported above).
    let err = fails(&["import", db, "vecs", s(&cut)]);
    assert!(
        err.contains("has 10 records") && err.contains("--id-start"),
        "{err}"
    );
    let err = fails(&["import", db, "vecs", s(&cut), "--id-start", "0"]);
    assert!(err.contains("truncated fvecs file at row 9"), "{err}");
    let err = fails(&["search", db, "vecs", "--queries", s(&cut)]);
    assert!(err.contains("truncated fvecs file at row 9"), "{err}");
}

#[test]
fn bad_jsonl_line_keeps_committed_batches() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "2"]);
    let file = t.dir.join("bad.jsonl");
    let mut text = String::new();
    for i in 0..5 {
        text.push_str(&format!("{{\"id\":{i},\"vector\":[1,{i}]}}\n"));
    }
    text.push_str("{\"id\":5,\"vector\":[1,\n");
    fs::write(&file, text).unwrap();
    let o = cairn(&["import", db, "docs", s(&file), "--batch", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(committed(&stdout(&o)), vec![2, 4]);
    let err = stderr(&o);
    assert!(
        err.contains("line 6") && err.contains("4 records committed"),
        "{err}"
    );
    ok(&["get", db, "docs", "3"]);
    fails(&["get", db, "docs", "4"]);

    // A record of the wrong dimension is reported with its line.
    let file = t.dir.join("dim.jsonl");
    fs::write(
        &file,
        "{\"id\":10,\"vector\":[1,2]}\n{\"id\":11,\"vector\":[1,2,3]}\n",
    )
    .unwrap();
    let err = fails(&["import", db, "docs", s(&file)]);
    assert!(
        err.contains("line 2") && err.contains("dimension mismatch"),
        "{err}"
    );
}

#[test]
fn jsonl_import_creates_a_missing_collection() {
    let t = new_db();
    let file = t.dir.join("d.jsonl");
    write_jsonl(&file, 4);
    let out = ok(&[
        "import",
        s(&t.db),
        "fresh",
        s(&file),
        "--durability",
        "buffered",
    ]);
    assert_eq!(committed(&out), vec![4]);
    let stats: Value = serde_json::from_str(&ok(&["stats", s(&t.db), "--json"])).unwrap();
    assert_eq!(stats["collections"][0]["name"], "fresh");
    assert_eq!(stats["collections"][0]["dim"], 3);
    assert_eq!(stats["collections"][0]["records"], 4);
}

#[test]
fn errors_are_one_clear_line() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "3"]);

    let err = fails(&["search", db, "docs", "--vector", "[1, 2]"]);
    assert!(
        err.contains("dimension mismatch") && err.contains("has 3, got 2"),
        "{err}"
    );
    let err = fails(&["search", db, "nope", "--vector", "[1, 2, 3]"]);
    assert!(err.contains("collection `nope` does not exist"), "{err}");
    let err = fails(&["get", db, "nope", "1"]);
    assert!(err.contains("`nope` does not exist"), "{err}");
    let err = fails(&["search", db, "docs", "--vector", "[1, oops]"]);
    assert!(err.contains("--vector"), "{err}");
    let err = fails(&["create", db, "docs", "--dim", "3"]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&["create", db, "bad/name", "--dim", "3"]);
    assert!(err.contains("invalid collection name"), "{err}");
    let missing = t.dir.join("missing.jsonl");
    let err = fails(&["import", db, "docs", s(&missing)]);
    assert!(err.contains("cannot open"), "{err}");
    let nowhere = t.dir.join("no-db");
    let err = fails(&["stats", s(&nowhere)]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !nowhere.exists(),
        "reading commands never create a database"
    );
    let err = fails(&["verify", s(&t.dir)]);
    assert!(err.contains("not a Cairn database"), "{err}");

    // Usage errors come from the argument parser (exit code 2), not a panic.
    let o = cairn(&["search", db, "docs"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn verify_detects_a_flipped_byte() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "vecs", "--dim", "4", "--metric", "dot"]);
    let file = t.dir.join("base.fvecs");
    write_fvecs(&file, &grid(50));
    ok(&["import", db, "vecs", s(&file)]);
    let out = ok(&["verify", db]);
    assert!(
        out.starts_with("ok: 1 collection, 1 segment, 50 segment rows"),
        "{out}"
    );

    let seg_dirs: Vec<PathBuf> = fs::read_dir(t.db.join("collections").join("vecs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .collect();
    assert_eq!(seg_dirs.len(), 1);
    let vectors = seg_dirs[0].join("vectors");
    let mut bytes = fs::read(&vectors).unwrap();
    bytes[64 + 5] ^= 0x40; // a byte of vector data, after the 64-byte header
    fs::write(&vectors, bytes).unwrap();

    let err = fails(&["verify", db]);
    assert!(
        err.contains("verification") && err.contains("vectors"),
        "{err}"
    );
}

#[test]
fn demo_refuses_to_delete_other_directories() {
    let t = new_db();
    let dir = t.dir.join("precious");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let err = fails(&["demo", "--dir", s(&dir)]);
    assert!(err.contains("refusing"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn help_describes_every_command() {
    let out = ok(&["--help"]);
    for cmd in [
        "create", "import", "search", "get", "delete", "stats", "verify", "repair", "demo",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
        let sub = ok(&[cmd, "--help"]);
        assert!(sub.contains("Usage: cairn"), "{sub}");
    }
}

/// Writes `.ivecs` rows.
fn write_ivecs(path: &Path, rows: &[Vec<i32>]) {
    let mut b = Vec::new();
    for r in rows {
        b.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    fs::write(path, b).unwrap();
}

/// `n` rows of dimension `dim` scattered around 20 centers (a small deterministic generator,
/// so the test needs no random-number crate).
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let centers: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dim).map(|_| next()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centers[i % centers.len()];
            c.iter().map(|x| x + 0.3 * next()).collect()
        })
        .collect()
}

/// The ids of the `k` rows of `base` nearest each query by cosine similarity.
fn brute_force_cosine(base: &[Vec<f32>], queries: &[Vec<f32>], k: usize) -> Vec<Vec<i32>> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    queries
        .iter()
        .map(|q| {
            let qn = norm(q);
            let mut scored: Vec<(f32, usize)> = base
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let dot: f32 = q.iter().zip(b).map(|(x, y)| x * y).sum();
                    (dot / (qn * norm(b)), i)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            scored.iter().take(k).map(|&(_, i)| i as i32).collect()
        })
        .collect()
}

fn recall_at(report: &Value, ef: u64) -> f64 {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ef"].as_u64() == Some(ef))
        .unwrap_or_else(|| panic!("no row for ef {ef}: {report}"))["recall"]
        .as_f64()
        .unwrap()
}

#[test]
fn bench_measures_recall_with_and_without_ground_truth() {
    let t = new_db();
    let base = t.dir.join("base.fvecs");
    let queries = t.dir.join("query.fvecs");
    let base_rows = clustered(2000, 16, 1);
    let query_rows = clustered(50, 16, 2);
    write_fvecs(&base, &base_rows);
    write_fvecs(&queries, &query_rows);
    let common = [
        "bench",
        "--base",
        s(&base),
        "--queries",
        s(&queries),
        "--k",
        "10",
        "--ef",
        "10,50",
        // One build thread: the graph, and so the recall, is the same in every run.
        "--threads",
        "1",
    ];

    // Without --gt: the exact top 10 comes from the database's exact search.
    let csv = t.dir.join("out.csv");
    let svg = t.dir.join("out.svg");
    let mut args = common.to_vec();
    args.extend(["--json", "--csv", s(&csv), "--plot", s(&svg)]);
    let out = ok(&args);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["results"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["ground_truth"], "exact");
    assert_eq!(report["n"], 2000);
    assert_eq!(report["segments"], 1);
    assert!(report["index_bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(report["graph_bytes"].as_u64().unwrap() > 0, "{report}");
    for row in report["results"].as_array().unwrap() {
        assert!(row["qps"].as_f64().unwrap() > 0.0, "{report}");
    }
    let exact_recall = recall_at(&report, 50);
    assert!(exact_recall >= 0.9, "recall@10 at ef 50: {exact_recall}");
    // The memory pass: the database evicted, reopened, the queries cold then warm at the
    // first ef, with what is resident after each.
    let mem = &report["memory"];
    assert!(mem["evicted_files"].as_u64().unwrap() >= 5, "{mem}");
    let passes = mem["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 2, "{mem}");
    assert_eq!(passes[0]["pass"], "cold");
    assert_eq!(passes[1]["pass"], "warm");
    for p in passes {
        // The same queries at ef 10 as the measured pass: the same recall.
        assert_eq!(p["row"]["recall"], report["results"][0]["recall"], "{mem}");
        assert!(p["read_bytes_per_query"].as_f64().is_some(), "{mem}");
        let r = &p["memory"]["resident"];
        assert!(r["graph"].as_u64().unwrap() > 0, "{mem}");
        assert!(r["codes"].as_u64().unwrap() > 0, "{mem}");
        assert!(p["memory"]["fits"].as_bool().unwrap(), "{mem}");
        assert!(p["memory"]["budget"].is_null(), "{mem}");
    }

    let csv_text = fs::read_to_string(&csv).unwrap();
    assert!(csv_text.starts_with("ef,recall,"), "{csv_text}");
    assert_eq!(csv_text.lines().count(), 3, "{csv_text}");
    let svg_text = fs::read_to_string(&svg).unwrap();
    assert!(
        svg_text.starts_with("<svg") || svg_text.starts_with("<?xml"),
        "{}",
        &svg_text[..svg_text.len().min(200)]
    );

    // With --gt from a brute-force computation here: the same recall.
    let gt = t.dir.join("gt.ivecs");
    write_ivecs(&gt, &brute_force_cosine(&base_rows, &query_rows, 100));
    let mut args = common.to_vec();
    args.extend(["--gt", s(&gt), "--json"]);
    let report: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(report["ground_truth"], "file");
    let file_recall = recall_at(&report, 50);
    assert!(
        (file_recall - exact_recall).abs() <= 0.001,
        "with --gt {file_recall}, exact {exact_recall}"
    );

    // Filtered mode: per selectivity, the exact-scan baseline and every ef, k hits each.
    let mut args = common.to_vec();
    args.extend(["--filter-selectivity", "0.5,0.01", "--json"]);
    let report: Value = serde_json::from_str(&ok(&args)).unwrap();
    let runs = report["filtered"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{report}");
    for run in runs {
        let matched = run["matched"].as_u64().unwrap();
        let s = run["selectivity"].as_f64().unwrap();
        assert!(
            (matched as f64 - 2000.0 * s).abs() < 2000.0 * s * 0.5 + 10.0,
            "{run}"
        );
        assert_eq!(run["exact"]["recall"], 1.0, "{run}");
        for row in run["results"].as_array().unwrap() {
            assert!(row["recall"].as_f64().unwrap() >= 0.9, "{run}");
        }
    }
    let err = fails(&[&common[..], &["--filter-selectivity", "0,2"]].concat());
    assert!(err.contains("--filter-selectivity"), "{err}");

    // A budget too small for the codes and graph: reported, and the run completes.
    let mut args = common.to_vec();
    args.extend(["--memory-budget", "1K", "--json"]);
    let report: Value = serde_json::from_str(&ok(&args)).unwrap();
    let m = &report["memory"]["passes"][0]["memory"];
    assert_eq!(m["budget"], 1024, "{m}");
    assert_eq!(m["fits"], false, "{m}");
    let o = cairn(&[&common[..], &["--memory-budget", "lots"]].concat());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a byte count"), "{err}");
    let mut args = common.to_vec();
    args.extend(["--no-memory-pass", "--json"]);
    let report: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert!(report.get("memory").is_none(), "{report}");

    // The text report: summary and table.
    let text = ok(&common);
    assert!(text.contains("recall@10"), "{text}");
    assert!(
        text.contains("cold") && text.contains("read/query"),
        "{text}"
    );
    assert!(text.contains("1 segment"), "{text}");

    // Clear errors, exit code 1.
    let err = fails(&[
        "bench",
        "--base",
        s(&base),
        "--queries",
        s(&queries),
        "--k",
        "0",
    ]);
    assert!(err.contains("--k"), "{err}");
    let err = fails(&[
        "bench",
        "--base",
        s(&base),
        "--queries",
        s(&queries),
        "--ef",
        "",
    ]);
    assert!(err.contains("--ef"), "{err}");
    let q8 = t.dir.join("q8.fvecs");
    write_fvecs(&q8, &clustered(5, 8, 3));
    let err = fails(&["bench", "--base", s(&base), "--queries", s(&q8)]);
    assert!(err.contains("dimension mismatch"), "{err}");
    let narrow = t.dir.join("narrow.ivecs");
    write_ivecs(&narrow, &vec![vec![0; 5]; 50]);
    let err = fails(&[
        "bench",
        "--base",
        s(&base),
        "--queries",
        s(&queries),
        "--gt",
        s(&narrow),
    ]);
    assert!(err.contains("fewer than k = 10"), "{err}");
    let short = t.dir.join("short.ivecs");
    write_ivecs(&short, &vec![vec![0; 10]; 20]);
    let err = fails(&[
        "bench",
        "--base",
        s(&base),
        "--queries",
        s(&queries),
        "--gt",
        s(&short),
    ]);
    assert!(err.contains("fewer than the 50 queries"), "{err}");
    let cut = t.dir.join("cut.fvecs");
    let bytes = fs::read(&base).unwrap();
    fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let err = fails(&["bench", "--base", s(&cut), "--queries", s(&queries)]);
    assert!(err.contains("truncated fvecs file"), "{err}");
    let missing = t.dir.join("missing.fvecs");
    let err = fails(&["bench", "--base", s(&missing), "--queries", s(&queries)]);
    assert!(err.contains("cannot open"), "{err}");
    assert!(ok(&["--help"]).contains("bench"));
}

/// `-v` shows the engine's log (what it opened, what it compacted) on stderr, `-q` and the
/// default (warnings only) show none of it; stdout is the same either way.
#[test]
fn verbose_and_quiet_control_the_engine_log() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "3"]);
    let file = t.dir.join("docs.jsonl");
    write_jsonl(&file, 25);
    ok(&["import", db, "docs", s(&file), "--batch", "10"]);
    let quiet = cairn(&["-q", "stats", db]);
    let default = cairn(&["stats", db]);
    let verbose = cairn(&["stats", db, "-v"]);
    assert!(quiet.status.success() && default.status.success() && verbose.status.success());
    assert_eq!(stdout(&quiet), stdout(&verbose));
    assert!(!stderr(&quiet).contains("cairn ["), "{}", stderr(&quiet));
    assert!(!stderr(&default).contains("[info]"), "{}", stderr(&default));
    assert!(
        stderr(&verbose).contains("cairn [info] opened"),
        "{}",
        stderr(&verbose)
    );
    let out = cairn(&["-vv", "compact", db, "docs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cairn [info] opened"),
        "{}",
        stderr(&out)
    );
    let both = cairn(&["-q", "-v", "stats", db]);
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );
}

/// The start of every frame of a log file (`len | crc | lsn | kind | body` after a 64-byte
/// header, `len` counting what follows the crc).
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = 64;
    while pos + 8 <= bytes.len() {
        starts.push(pos);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 8 + len;
    }
    starts
}

#[test]
fn repair_drops_a_damaged_log_and_reports_it() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "vecs", "--dim", "4", "--metric", "dot"]);
    let file = t.dir.join("base.fvecs");
    write_fvecs(&file, &grid(50));
    ok(&["import", db, "vecs", s(&file)]);
    // Ten deletes of one record each: ten frames in the log.
    for id in 0..10 {
        ok(&["delete", db, "vecs", &id.to_string()]);
    }
    let wals: Vec<PathBuf> = fs::read_dir(t.db.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    assert_eq!(wals.len(), 1, "{wals:?}");
    let wal = &wals[0];
    let mut bytes = fs::read(wal).unwrap();
    let starts = frame_starts(&bytes);
    assert_eq!(starts.len(), 10, "one frame per delete");
    // A bit of the id in the fourth delete (body: collection u64, count u32, id u64).
    let at = starts[3];
    bytes[at + 17 + 12] ^= 0x01;
    fs::write(wal, &bytes).unwrap();

    // Opening refuses the damaged log and changes nothing.
    let err = fails(&["verify", db]);
    assert!(
        err.contains(".wal") && err.contains(&format!("offset {at} ")) && err.contains("repair"),
        "{err}"
    );
    assert_eq!(
        fs::read(wal).unwrap(),
        bytes,
        "a failed open changed the log"
    );

    // `repair` drops the damaged frame and the six after it, and says so.
    let out = ok(&["repair", db]);
    assert!(
        out.contains("dropped 7 log frames (7 readable records); kept 3 frames"),
        "{out}"
    );
    assert!(
        out.contains(&format!(".wal at byte {at}")),
        "the report names the file and offset: {out}"
    );
    ok(&["verify", db]);
    // Deletes 0..3 survive; the dropped ones (3..10) did not happen.
    for id in 0..10u64 {
        let o = cairn(&["get", db, "vecs", &id.to_string()]);
        let exists = o.status.success();
        assert_eq!(exists, id >= 3, "record {id}: {}", stderr(&o));
    }
    let out = ok(&["repair", db]);
    assert!(out.starts_with("nothing to repair"), "{out}");
    let report: Value = serde_json::from_str(ok(&["repair", db, "--json"]).trim()).unwrap();
    assert_eq!(report["dropped_frames"], 0, "{report}");
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[test]
fn read_commands_work_while_another_process_writes() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "vecs", "--dim", "4", "--metric", "dot"]);
    let file = t.dir.join("base.fvecs");
    write_fvecs(&file, &grid(20));
    ok(&["import", db, "vecs", s(&file)]);
    // This process becomes the writer (it holds LOCK) and writes a record after the import.
    let writer = cairndb::Database::open(&t.db).unwrap();
    let c = writer.collection("vecs").unwrap();
    c.upsert(cairndb::Record::new(777, vec![9.0, 9.0, 9.0, 9.0]))
        .unwrap();
    // The read commands open read-only: they work, and see the writer's acknowledged record.
    let got = ok(&["get", db, "vecs", "777"]);
    assert!(got.contains("777") && got.contains("9.0"), "{got}");
    let stats = ok(&["stats", db, "--json"]);
    assert!(stats.contains("\"records\": 21"), "{stats}");
    let hits = ok(&[
        "search",
        db,
        "vecs",
        "--vector",
        "[1, 1, 1, 1]",
        "--k",
        "1",
        "--json",
    ]);
    assert!(hits.contains("777"), "{hits}");
    ok(&["verify", db]);
    // A write command needs the lock: it fails, names the holder and suggests read-only.
    let err = fails(&["delete", db, "vecs", "777"]);
    assert!(
        err.contains(&std::process::id().to_string()) && err.contains("read-only"),
        "{err}"
    );
    assert!(c.get(777).unwrap().is_some());
}

/// JSONL import takes any JSON payload (null, nested objects, lists of anything, u64 beyond
/// i64, floats) and `get` prints it back exactly; a payload nested too deep is one clear error.
#[test]
fn jsonl_import_takes_any_json_payload() {
    let t = new_db();
    let db = s(&t.db);
    let payload = r#"{"big":18446744073709551615,"f":0.30000000000000004,"l":[1,"a",null,[],{"k":[true,2.0]}],"meta":{"author":"x","e":{}},"min":-9223372036854775808,"n":null,"ünï":"値"}"#;
    let file = t.dir.join("j.jsonl");
    fs::write(
        &file,
        format!("{{\"id\": 1, \"vector\": [1, 0, 0], \"payload\": {payload}}}\n"),
    )
    .unwrap();
    ok(&["import", db, "j", s(&file)]);
    for pass in 0..2 {
        let out = ok(&["get", db, "j", "1"]);
        let rec: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(rec["payload"].to_string(), payload, "pass {pass}: {out}");
        // The exact text too: integers stay integers, floats keep every digit.
        assert!(out.contains("18446744073709551615") && out.contains("0.30000000000000004"));
        ok(&["compact", db, "j"]);
    }
    let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    fs::write(
        &file,
        format!("{{\"id\": 2, \"vector\": [1, 0, 0], \"payload\": {{\"d\": {deep}}}}}\n"),
    )
    .unwrap();
    let err = fails(&["import", db, "j", s(&file)]);
    assert!(err.contains("nested deeper than 64"), "{err}");
}

/// The memory pass scores recall against a ground truth in any order (the scale run's input
/// lists each query's true neighbours best first): here each list is given by descending id,
/// which a lookup assuming ascending ids would mostly miss.
#[test]
fn memory_pass_recall_takes_the_ground_truth_in_any_order() {
    let t = new_db();
    let rows = clustered(300, 8, 3);
    let queries = clustered(8, 8, 4);
    let base = t.dir.join("base.fvecs");
    write_fvecs(&base, &rows);
    ok(&["create", s(&t.db), "bench", "--dim", "8", "--metric", "dot"]);
    ok(&["import", s(&t.db), "bench", s(&base)]);
    let gt: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| {
            let dot = |r: &Vec<f32>| r.iter().zip(q).map(|(a, b)| a * b).sum::<f32>();
            let mut ids: Vec<u64> = (0..rows.len() as u64).collect();
            ids.sort_by(|&a, &b| dot(&rows[b as usize]).total_cmp(&dot(&rows[a as usize])));
            let mut top: Vec<u64> = ids[..10].to_vec();
            top.sort_unstable_by(|a, b| b.cmp(a));
            top
        })
        .collect();
    let input = t.dir.join("input.json");
    let json = serde_json::json!({"queries": queries, "gt": gt, "k": 10, "ef": 300});
    fs::write(&input, json.to_string()).unwrap();
    let out = ok(&["bench-memory-pass", s(&t.db), "--input", s(&input)]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    for pass in report["passes"].as_array().unwrap() {
        let recall = pass["row"]["recall"].as_f64().unwrap();
        assert!(recall >= 0.95, "{recall}: {report}");
    }
}
