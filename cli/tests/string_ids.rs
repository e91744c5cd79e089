//! End-to-end tests of string ids in `cairn`: `create --id-type`, JSONL ids as numbers or
//! strings checked against the collection's type (errors naming the line), ids on the
//! command line read by the collection's type, the id type in `list`/`stats`/`create`,
//! string ids in search hits, export → import, and the hostile inputs: empty, too long,
//! `null`/bool/array/object ids, mixed kinds in one file, `.fvecs` rows without ids.

mod common;

use std::fs;
use std::path::PathBuf;

use serde_json::{Value, json};

use common::{Db, cairn, new_db, ok, ok_json, s, stderr, stdout};

/// Runs `cairn` and expects exit code 1 with a one-line error and nothing on stdout;
/// returns the message after `error: `.
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
    assert_eq!(stdout(&o), "", "cairn {args:?}");
    for rust in ["untagged", "enum", "u64", "Str(", "Int(", "InvalidArgument"] {
        assert!(!err.contains(rust), "{err}");
    }
    err["error: ".len()..].trim_end().to_owned()
}

/// Writes these JSON lines to `name` in the test directory; returns its path.
fn jsonl(t: &Db, name: &str, lines: &[Value]) -> PathBuf {
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    let p = t.dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// Ids that a path-and-chunk, UUID or free-text pipeline produces, with the characters that
/// break naive quoting: spaces, quotes, backslashes, `#`, unicode, a numeric string, a
/// leading `-`, and the longest allowed (1024 bytes, of 2-byte characters).
fn hard_ids() -> Vec<String> {
    vec![
        "docs/a.md#3".into(),
        "550e8400-e29b-41d4-a716-446655440000".into(),
        "with space".into(),
        "quote \" and \\ backslash".into(),
        "名前 🦀 é".into(),
        "42".into(),
        "-x".into(),
        "tab\tnewline\n".into(),
        "é".repeat(512),
    ]
}

fn str_collection(t: &Db, name: &str) {
    ok(&[
        "create",
        s(&t.db),
        name,
        "--dim",
        "2",
        "--metric",
        "l2",
        "--id-type",
        "str",
    ]);
}

#[test]
fn create_with_string_ids_and_exist_ok() {
    let t = new_db();
    let db = s(&t.db);
    let v = ok_json(&[
        "create",
        db,
        "docs",
        "--dim",
        "3",
        "--id-type",
        "str",
        "--json",
    ]);
    assert_eq!(v["id_type"], json!("str"));
    assert_eq!(v["created"], json!(true));
    let out = ok(&[
        "create",
        db,
        "docs",
        "--dim",
        "3",
        "--id-type",
        "str",
        "--exist-ok",
    ]);
    assert_eq!(
        out.trim_end(),
        format!("collection `docs` exists in {db} (dim 3, metric cosine, string ids, 0 records)")
    );
    // The other id type is an error like a different dimension or metric; nothing changes.
    assert_eq!(
        fails(&["create", db, "docs", "--dim", "3", "--exist-ok"]),
        "collection `docs` exists with string ids (--id-type str), asked for integer ids \
         (--id-type int)"
    );
    ok(&["create", db, "ints", "--dim", "3"]);
    assert_eq!(
        fails(&[
            "create",
            db,
            "ints",
            "--dim",
            "3",
            "--id-type",
            "str",
            "--exist-ok"
        ]),
        "collection `ints` exists with integer ids (--id-type int), asked for string ids \
         (--id-type str)"
    );
    // An unknown id type is a usage error naming the choices, and creates nothing.
    let o = cairn(&["create", db, "x", "--dim", "3", "--id-type", "uuid"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid value 'uuid' for '--id-type")
            && stderr(&o).contains("int, str"),
        "{}",
        stderr(&o)
    );

    // list and stats show each collection's id type, as text and as JSON.
    let l = ok_json(&["list", db, "--json"]);
    let types: Vec<(&str, &str)> = l["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["id_type"].as_str().unwrap()))
        .collect();
    assert_eq!(types, [("docs", "str"), ("ints", "int")]);
    let out = ok(&["list", db]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][3], "ids");
    assert_eq!((rows[1][0], rows[1][3]), ("docs", "str"));
    assert_eq!((rows[2][0], rows[2][3]), ("ints", "int"));
    let st: Value = serde_json::from_str(&ok(&["stats", db, "--json"])).unwrap();
    let types: Vec<(&str, &str)> = st["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["id_type"].as_str().unwrap()))
        .collect();
    assert_eq!(types, [("docs", "str"), ("ints", "int")]);
    let out = ok(&["stats", db]);
    let header: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(header[3], "ids", "{out}");
    assert!(
        out.lines().any(|l| l
            .split_whitespace()
            .take(4)
            .eq(["docs", "3", "cosine", "str"])),
        "{out}"
    );
}

#[test]
fn string_ids_through_every_command() {
    let t = new_db();
    let db = s(&t.db);
    str_collection(&t, "c");
    let ids = hard_ids();
    let lines: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"id": id, "vector": [i as f32, 1.0], "text": format!("text {i}"),
                   "payload": {"n": i}})
        })
        .collect();
    let file = jsonl(&t, "in.jsonl", &lines);
    ok(&["import", db, "c", s(&file)]);
    assert_eq!(ok(&["count", db, "c"]).trim(), ids.len().to_string());

    // get: by the string as it is, "42" included; `--` before one starting with `-`.
    for (i, id) in ids.iter().enumerate() {
        let args = if id.starts_with('-') {
            vec!["get", db, "c", "--", id.as_str()]
        } else {
            vec!["get", db, "c", id.as_str()]
        };
        let v: Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(v["id"], json!(id), "{id:?}");
        assert_eq!(v["payload"]["n"], json!(i), "{id:?}");
    }
    assert_eq!(
        fails(&["get", db, "c", "nope \"x\""]),
        "record \"nope \\\"x\\\"\" not found in collection `c`"
    );
    let e = fails(&["get", db, "c", ""]);
    assert!(e.starts_with("id \"\" is empty"), "{e}");
    let long = "a".repeat(1025);
    let e = fails(&["get", db, "c", &long]);
    assert!(e.contains("is 1025 bytes long"), "{e}");

    // search: hits carry the string ids, in the table and in JSON.
    let v = ok_json(&[
        "search", db, "c", "--vector", "[5.1, 1]", "--k", "3", "--json",
    ]);
    let hit_ids: Vec<&str> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(hit_ids, [ids[5].as_str(), ids[6].as_str(), ids[4].as_str()]);
    let out = ok(&["search", db, "c", "--vector", "[3, 1]", "--k", "1"]);
    let row: Vec<&str> = out.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        ["1", "quote", "\"", "and", "\\", "backslash", "-0.000000"]
    );

    // update: string ids, a missing one counted.
    let up = jsonl(
        &t,
        "up.jsonl",
        &[
            json!({"id": ids[0], "text": "changed"}),
            json!({"id": "missing", "text": "x"}),
        ],
    );
    assert_eq!(
        ok_json(&["update", db, "c", s(&up), "--json"]),
        json!({"updated": 1, "missing": 1})
    );
    let v: Value = serde_json::from_str(&ok(&["get", db, "c", &ids[0]])).unwrap();
    assert_eq!(v["text"], json!("changed"));

    // export writes the ids as JSON strings; importing the export elsewhere gives the same
    // bytes back.
    let first = ok(&["export", db, "c"]);
    let mut exported: Vec<String> = first
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    exported.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(exported, want);
    let copy = t.dir.join("copy");
    let exp = t.dir.join("export.jsonl");
    fs::write(&exp, &first).unwrap();
    ok(&[
        "create",
        s(&copy),
        "c",
        "--dim",
        "2",
        "--metric",
        "l2",
        "--id-type",
        "str",
    ]);
    ok(&["import", s(&copy), "c", s(&exp)]);
    assert!(ok(&["export", s(&copy), "c"]) == first);

    // delete by string ids, "42" as a string, one missing.
    assert_eq!(
        ok_json(&["delete", db, "c", "42", "with space", "nope", "--json"]),
        json!({"deleted": 2, "missing": 1})
    );
    assert_eq!(ok(&["count", db, "c"]).trim(), (ids.len() - 2).to_string());
    let e = fails(&["get", db, "c", "42"]);
    assert_eq!(e, "record \"42\" not found in collection `c`");
}

#[test]
fn a_new_collection_takes_the_first_records_id_type() {
    let t = new_db();
    let db = s(&t.db);
    let file = jsonl(&t, "s.jsonl", &[json!({"id": "a", "vector": [1, 0]})]);
    let o = cairn(&["import", db, "s", s(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(dim 2, metric cosine, string ids)"),
        "{}",
        stderr(&o)
    );
    let file = jsonl(&t, "i.jsonl", &[json!({"id": 7, "vector": [1, 0]})]);
    ok(&["import", db, "i", s(&file)]);
    let l = ok_json(&["list", db, "--json"]);
    assert_eq!(l["collections"][0]["id_type"], json!("int"));
    assert_eq!(l["collections"][1]["id_type"], json!("str"));
}

/// Lines whose id the collection does not take: each fails naming its line and what is
/// wrong, and the batch holding it writes nothing.
#[test]
fn hostile_ids_name_the_line() {
    let t = new_db();
    let db = s(&t.db);
    str_collection(&t, "strs");
    ok(&["create", db, "ints", "--dim", "2", "--metric", "l2"]);
    let whole = format!("a whole number from 0 to {} or a string", u64::MAX);
    let good_str = json!({"id": "ok", "vector": [1, 0]});
    let good_int = json!({"id": 1, "vector": [1, 0]});
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "strs",
            json!(""),
            "id \"\" is empty; a string id is 1 to 1024 bytes of UTF-8".into(),
        ),
        (
            "strs",
            json!(format!("{}x", "é".repeat(512))),
            "is 1025 bytes long; a string id is 1 to 1024 bytes of UTF-8".into(),
        ),
        (
            "strs",
            json!(7),
            "id 7 is a number but collection `strs` has string ids (write it as \"7\" if that \
             is its id)"
                .into(),
        ),
        (
            "ints",
            json!("doc-1"),
            "id \"doc-1\" is a string but collection `ints` has integer ids".into(),
        ),
        (
            "ints",
            json!("42"),
            "id \"42\" is a string but collection `ints` has integer ids".into(),
        ),
        (
            "strs",
            json!(null),
            format!("field `id`: expected {whole}, found null"),
        ),
        (
            "strs",
            json!(true),
            format!("field `id`: expected {whole}, found `true`"),
        ),
        (
            "ints",
            json!(false),
            format!("field `id`: expected {whole}, found `false`"),
        ),
        (
            "strs",
            json!(["a"]),
            format!("field `id`: expected {whole}, found an array"),
        ),
        (
            "ints",
            json!({"a": 1}),
            format!("field `id`: expected {whole}, found an object"),
        ),
        (
            "ints",
            json!(-3),
            format!("field `id`: expected {whole}, found the negative number -3"),
        ),
        (
            "ints",
            json!(2.5),
            format!("field `id`: expected {whole}, found the fractional number 2.5"),
        ),
    ];
    for (i, (coll, id, want)) in cases.iter().enumerate() {
        let good = if *coll == "strs" {
            &good_str
        } else {
            &good_int
        };
        let bad = json!({"id": id, "vector": [0, 1]});
        let file = jsonl(&t, &format!("bad{i}.jsonl"), &[good.clone(), bad]);
        let before = ok(&["export", db, coll]);
        let e = fails(&["import", db, coll, s(&file)]);
        let msg = e.split(" line 2: ").nth(1).unwrap_or_else(|| panic!("{e}"));
        assert!(msg.ends_with(want.as_str()), "{id}: {e}");
        assert!(ok(&["export", db, coll]) == before, "{id}: nothing written");

        // The same line in an update file.
        let bad = json!({"id": id, "text": "t"});
        let file = jsonl(&t, &format!("up{i}.jsonl"), &[bad]);
        let e = fails(&["update", db, coll, s(&file)]);
        let msg = e.split(" line 1: ").nth(1).unwrap_or_else(|| panic!("{e}"));
        assert!(msg.ends_with(want.as_str()), "update {id}: {e}");
    }

    // Mixed kinds in one file: the first decides a new collection's type, the other kind is
    // refused on its line.
    let mixed = jsonl(
        &t,
        "mixed.jsonl",
        &[
            json!({"id": "a", "vector": [1, 0]}),
            json!({"id": "b", "vector": [1, 0]}),
            json!({"id": 3, "vector": [1, 0]}),
        ],
    );
    let o = cairn(&["import", db, "new", s(&mixed)]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("note: created collection `new` (dim 2, metric cosine, string ids)"));
    assert!(
        e.trim_end().ends_with("mixed.jsonl line 3: id 3 is a number but collection `new` has string ids (write it as \"3\" if that is its id)"),
        "{e}"
    );
    let e = fails(&["import", db, "ints", s(&mixed)]);
    assert!(
        e.ends_with(
            "mixed.jsonl line 1: id \"a\" is a string but collection `ints` has integer ids"
        ),
        "{e}"
    );
    // With small batches, the ones before the bad line stay and the error says so.
    let o = cairn(&["import", db, "strs", s(&mixed), "--batch", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 3: id 3 is a number")
            && stderr(&o).contains("(2 records committed before it stay committed)"),
        "{}",
        stderr(&o)
    );

    // Ids on the command line are read by the collection's type.
    let e = fails(&["get", db, "ints", "doc-1"]);
    assert_eq!(
        e,
        format!(
            "id \"doc-1\": collection `ints` has integer ids, whole numbers from 0 to {}",
            u64::MAX
        )
    );
    let e = fails(&["delete", db, "ints", "1", "x"]);
    assert!(
        e.starts_with("id \"x\": collection `ints` has integer ids"),
        "{e}"
    );
    let e = fails(&["delete", db, "strs", "a", ""]);
    assert!(e.starts_with("id \"\" is empty"), "{e}");
}

/// `.fvecs` rows have no ids (import numbers them): into a collection of string ids they
/// are refused, naming the way out, and nothing is written.
#[test]
fn fvecs_into_string_ids_is_refused() {
    let t = new_db();
    let db = s(&t.db);
    str_collection(&t, "c");
    let mut bytes = Vec::new();
    for row in [[1.0f32, 0.0], [0.0, 1.0]] {
        bytes.extend_from_slice(&2i32.to_le_bytes());
        for x in row {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    let file = t.dir.join("v.fvecs");
    fs::write(&file, &bytes).unwrap();
    let e = fails(&["import", db, "c", s(&file)]);
    assert!(
        e.starts_with("collection `c` has string ids, and the rows of an .fvecs file have none")
            && e.contains("--id-type int"),
        "{e}"
    );
    assert_eq!(ok(&["count", db, "c"]).trim(), "0");
    // Into integer ids they still import as row numbers.
    ok(&["create", db, "i", "--dim", "2"]);
    ok(&["import", db, "i", s(&file)]);
    let v: Value = serde_json::from_str(&ok(&["get", db, "i", "1"])).unwrap();
    assert_eq!(v["id"], json!(1));
}
