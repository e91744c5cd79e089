//! The JSON filter language on the command line (issue 15, point 3): `--filter` takes the
//! text syntax, or JSON in the operator form when it starts with `{`; a query file's
//! "filter" is a string or an object; errors name what was wrong, without serde's words.

mod common;

use std::fs;
use std::path::Path;

use serde_json::Value;

use common::{cairn, ok, s};

/// Expects exit code 1 and a one-line error in the user's terms; returns it.
fn fails(args: &[&str]) -> String {
    let o = cairn(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "cairn {args:?}: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for serde_word in ["untagged", "variant", "FilterArg", "enum"] {
        assert!(!err.contains(serde_word), "serde's words in {err}");
    }
    err
}

/// The hit ids of each JSON output line, sorted.
fn ids(out: &str) -> Vec<Vec<u64>> {
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let mut ids: Vec<u64> = v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_u64().unwrap())
                .collect();
            ids.sort_unstable();
            ids
        })
        .collect()
}

/// A database with 40 records: `year` 2015..2024 (i % 10 + 2015), `lang` en/de.
fn setup(dir: &Path) -> String {
    let db = dir.join("db");
    let db = s(&db).to_owned();
    ok(&["create", &db, "docs", "--dim", "2"]);
    let mut jsonl = String::new();
    for i in 0..40u64 {
        let rec = serde_json::json!({
            "id": i,
            "vector": [1.0, i as f32 / 40.0],
            "payload": {"year": 2015 + i % 10, "lang": if i % 2 == 0 { "en" } else { "de" }},
        });
        jsonl += &format!("{rec}\n");
    }
    let file = dir.join("docs.jsonl");
    fs::write(&file, jsonl).unwrap();
    ok(&["import", &db, "docs", s(&file)]);
    db
}

#[test]
fn filter_as_json_on_the_command_line_and_in_query_files() {
    let tmp = tempfile::tempdir().unwrap();
    let db = setup(tmp.path());
    let search = |filter: &str| {
        ok(&[
            "search", &db, "docs", "--vector", "[1, 0]", "--k", "100", "--exact", "--filter",
            filter, "--json",
        ])
    };
    let want: Vec<u64> = (0..40).filter(|i| 2015 + i % 10 >= 2020).collect();
    assert_eq!(
        ids(&search(r#"{"year": {"$gte": 2020}}"#)),
        vec![want.clone()]
    );
    assert_eq!(ids(&search("year >= 2020")), vec![want.clone()]);
    let en: Vec<u64> = want.iter().copied().filter(|i| i % 2 == 0).collect();
    assert_eq!(
        ids(&search(r#" {"lang": "en", "year": {"$gte": 2020}}"#)),
        vec![en.clone()]
    );

    // A query file: "filter" as text, JSON text, an operator-form object, an old-form object.
    let queries = tmp.path().join("q.jsonl");
    fs::write(
        &queries,
        concat!(
            r#"{"vector": [1, 0], "k": 100, "filter": "year >= 2020"}"#,
            "\n",
            r#"{"vector": [1, 0], "k": 100, "filter": "{\"year\": {\"$gte\": 2020}}"}"#,
            "\n",
            r#"{"vector": [1, 0], "k": 100, "filter": {"year": {"$gte": 2020}}}"#,
            "\n",
            r#"{"vector": [1, 0], "k": 100, "filter": {"range": {"field": "year", "gte": 2020}}}"#,
            "\n",
            r#"{"vector": [1, 0], "k": 100, "filter": {"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]}}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = ok(&[
        "search",
        &db,
        "docs",
        "--queries",
        s(&queries),
        "--exact",
        "--json",
    ]);
    assert_eq!(
        ids(&out),
        vec![want.clone(), want.clone(), want.clone(), want, en]
    );

    // Errors name what was wrong.
    let bad = |filter: &str| {
        fails(&[
            "search", &db, "docs", "--vector", "[1, 0]", "--filter", filter,
        ])
    };
    let err = bad(r#"{"year": {"$gtx": 2020}}"#);
    assert!(
        err.contains(
            r#"--filter: invalid filter: unknown operator "$gtx" on field "year" (use $eq"#
        ),
        "{err}"
    );
    let err = bad(r#"{"$and": 5}"#);
    assert!(
        err.contains("$and takes a list of filters, not the number 5"),
        "{err}"
    );
    let err = bad(r#"{"year": {"$in": []"#);
    assert!(err.contains("not valid JSON"), "{err}");
    let err = bad(r#"{"x": {"$gt": 1e999}}"#);
    assert!(err.contains("number out of range"), "{err}");
    // (An argument is limited to 128 KiB: 10,000 levels; the query file below goes deeper.)
    let deep = |n: usize| format!("{}{}{}", r#"{"$not":"#.repeat(n), "{}", "}".repeat(n));
    let err = bad(&deep(10_000));
    assert!(err.contains("filter nested too deeply"), "{err}");
    fs::write(
        &queries,
        format!("{{\"vector\": [1, 0], \"filter\": {:?}}}\n", deep(100_000)),
    )
    .unwrap();
    let err = fails(&["search", &db, "docs", "--queries", s(&queries)]);
    assert!(err.contains("filter nested too deeply"), "{err}");
    fs::write(
        &queries,
        format!("{{\"vector\": [1, 0], \"filter\": {}}}\n", deep(100_000)),
    )
    .unwrap();
    let err = fails(&["search", &db, "docs", "--queries", s(&queries)]);
    assert!(err.contains("q.jsonl:1: recursion limit exceeded"), "{err}");
    for (line, want) in [
        (
            r#"{"vector": [1, 0], "filter": {"year": {"$in": 3}}}"#,
            r#"q.jsonl:1: invalid filter: $in on "year" takes a list, not the number 3"#,
        ),
        (
            r#"{"vector": [1, 0], "filter": 3}"#,
            r#"q.jsonl:1: "filter" is a string (the text syntax) or an object"#,
        ),
        (
            r#"{"vector": [1, 0], "filter": {"eq": {"field": "a"}}}"#,
            r#"q.jsonl:1: invalid filter: {"eq": {…}} (the old form) takes the keys "field", "value": some are missing"#,
        ),
    ] {
        fs::write(&queries, format!("{line}\n")).unwrap();
        let err = fails(&["search", &db, "docs", "--queries", s(&queries)]);
        assert!(err.contains(want), "{err}");
    }

    // A field no record has is not an error; explain says so.
    let out = ok(&[
        "search",
        &db,
        "docs",
        "--vector",
        "[1, 0]",
        "--filter",
        r#"{"yeer": 2020}"#,
        "--explain",
    ]);
    assert!(out.contains(r#"no record has the field "yeer""#), "{out}");
    let out = ok(&[
        "search",
        &db,
        "docs",
        "--vector",
        "[1, 0]",
        "--filter",
        r#"{"yeer": 2020}"#,
        "--explain",
        "--json",
    ]);
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["explain"]["unknown_fields"], serde_json::json!(["yeer"]));
    assert_eq!(v["hits"], serde_json::json!([]));
}
