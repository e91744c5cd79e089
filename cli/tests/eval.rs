//! `cairn eval` on a hand-made collection, queries and qrels whose answers are worked out by
//! hand: the metrics per mode, the cut-off, TREC run files, and clear errors on bad input.

mod common;

use std::fs;

use serde_json::Value;

use common::{cairn, ok};

fn fails(args: &[&str]) -> String {
    let o = cairn(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "cairn {args:?}: {err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn eval_scores_each_mode_as_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let db = p("db");
    ok(&[
        "create",
        &db,
        "docs",
        "--dim",
        "2",
        "--metric",
        "dot",
        "--id-type",
        "str",
    ]);
    fs::write(
        p("docs.jsonl"),
        concat!(
            r#"{"id": "apple", "vector": [1, 0], "text": "apple pie recipe"}"#,
            "\n",
            r#"{"id": "banana", "vector": [0, 1], "text": "banana bread"}"#,
            "\n",
            r#"{"id": "cherry", "vector": [0.7, 0.7], "text": "cherry tart and apple"}"#,
            "\n"
        ),
    )
    .unwrap();
    ok(&["import", &db, "docs", &p("docs.jsonl")]);
    fs::write(
        p("q.jsonl"),
        concat!(
            r#"{"qid": "q1", "text": "banana", "vector": [0, 1]}"#,
            "\n",
            r#"{"qid": "q2", "text": "apple", "vector": [0.6, 0.8]}"#,
            "\n",
            r#"{"qid": 3, "text": "tart", "vector": [1, 0]}"#,
            "\n"
        ),
    )
    .unwrap();
    // q3 has no judgment: it does not count.
    fs::write(p("qrels"), "q1 0 banana 1\nq2 0 cherry 2\nq2 0 apple 0\n").unwrap();
    let run = p("run");
    let out = ok(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("q.jsonl"),
        "--qrels",
        &p("qrels"),
        "--fusion",
        "rrf,weighted:0.5,default",
        "--run",
        &run,
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["judged_queries"], 2);
    assert_eq!(j["queries"], 3);
    let sys = |name: &str| {
        j["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == name)
            .unwrap_or_else(|| panic!("{name} in {j}"))
            .clone()
    };
    // BM25: q1 finds banana first; q2 ranks apple (shorter) above cherry.
    let t = sys("text");
    let f = |s: &Value, m: &str| s[m].as_f64().unwrap();
    assert!(close(f(&t, "mrr"), 0.75), "{t}");
    assert!(
        close(f(&t, "recall"), 1.0) && close(f(&t, "hit"), 1.0),
        "{t}"
    );
    let ndcg_q2 = 1.0 / 3f64.log2(); // grade 2 at rank 2 over grade 2 at rank 1
    assert!(close(f(&t, "ndcg"), (1.0 + ndcg_q2) / 2.0), "{t}");
    // Vectors: banana first for [0, 1]; cherry (0.98) first for [0.6, 0.8].
    let v = sys("vector");
    assert!(close(f(&v, "mrr"), 1.0) && close(f(&v, "ndcg"), 1.0), "{v}");
    for name in ["hybrid-rrf60", "hybrid-weighted0.5", "hybrid-default"] {
        let h = sys(name);
        assert!(close(f(&h, "hit"), 1.0), "{h}");
    }
    // Run files: one per system, TREC columns, the judged queries only.
    let text_run = fs::read_to_string(format!("{run}.text.run")).unwrap();
    let lines: Vec<&str> = text_run.lines().collect();
    assert!(lines[0].starts_with("q1 Q0 banana 1 "), "{text_run}");
    assert!(
        lines.iter().all(|l| l.split(' ').count() == 6),
        "{text_run}"
    );
    assert!(!text_run.contains("\n3 "), "{text_run}");
    assert!(fs::metadata(format!("{run}.hybrid-rrf60.run")).is_ok());

    // The cut-off: at k = 1, q2's BM25 list misses cherry.
    let out = ok(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("q.jsonl"),
        "--qrels",
        &p("qrels"),
        "--mode",
        "text",
        "--k",
        "1",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    let t = &j["systems"][0];
    assert!(close(f(t, "hit"), 0.5) && close(f(t, "recall"), 0.5), "{t}");
    // The table form names the metrics with the cut-off.
    let table = ok(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("q.jsonl"),
        "--qrels",
        &p("qrels"),
        "--mode",
        "vector",
    ]);
    assert!(
        table.contains("MRR@10") && table.contains("vector"),
        "{table}"
    );

    // Bad input: clear errors.
    fs::write(p("bad.qrels"), "q1 0 banana\n").unwrap();
    let e = fails(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("q.jsonl"),
        "--qrels",
        &p("bad.qrels"),
    ]);
    assert!(
        e.contains("line 1") && e.contains("qid iteration docid grade"),
        "{e}"
    );
    fs::write(p("none.qrels"), "zz 0 banana 1\n").unwrap();
    let e = fails(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("q.jsonl"),
        "--qrels",
        &p("none.qrels"),
    ]);
    assert!(e.contains("no query"), "{e}");
    fs::write(
        p("textonly.jsonl"),
        "{\"qid\": \"q1\", \"text\": \"banana\"}\n",
    )
    .unwrap();
    let e = fails(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("textonly.jsonl"),
        "--qrels",
        &p("qrels"),
        "--mode",
        "vector",
    ]);
    assert!(e.contains("\"vector\"") && e.contains("q1"), "{e}");
    let e = fails(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("q.jsonl"),
        "--qrels",
        &p("qrels"),
        "--fusion",
        "weighted:3",
    ]);
    assert!(e.contains("alpha"), "{e}");
    fs::write(
        p("dup.jsonl"),
        "{\"qid\": 1, \"text\": \"a\"}\n{\"qid\": \"1\", \"text\": \"b\"}\n",
    )
    .unwrap();
    let e = fails(&[
        "eval",
        &db,
        "docs",
        "--queries",
        &p("dup.jsonl"),
        "--qrels",
        &p("qrels"),
    ]);
    assert!(e.contains("appears twice"), "{e}");
}
