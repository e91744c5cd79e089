//! End-to-end tests of the `cairn` commands about collections — `create` with its settings
//! and `--exist-ok`, `list`, `drop` — and of `--json` on the commands that report something.
//! Each runs the built binary in a temporary directory and checks its exit code and output.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use common::{new_db, ok, ok_json, s, stderr, stdout};

fn cairn_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    if let Some(d) = dir {
        c.current_dir(d);
    }
    c.args(args).output().expect("the cairn binary runs")
}

fn cairn(args: &[&str]) -> Output {
    cairn_in(None, args)
}

/// Runs `cairn` and expects exit code 1 with a one-line error and nothing on stdout;
/// returns stderr.
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
    err
}

/// A JSONL file of `n` records of dimension 3.
fn write_jsonl(path: &Path, n: u64) {
    let mut text = String::new();
    for i in 0..n {
        let rec =
            json!({"id": i, "vector": [1.0 + i as f32, 0.5, 0.25], "text": format!("doc {i}")});
        text.push_str(&rec.to_string());
        text.push('\n');
    }
    fs::write(path, text).unwrap();
}

/// The `collections` of `cairn list DB --json`, by name.
fn listed(db: &str) -> Vec<Value> {
    let v = ok_json(&["list", db, "--json"]);
    v["collections"].as_array().unwrap().clone()
}

#[test]
fn create_takes_the_index_and_text_settings() {
    let t = new_db();
    let db = s(&t.db);
    let v = ok_json(&[
        "create",
        db,
        "docs",
        "--dim",
        "8",
        "--metric",
        "dot",
        "--m",
        "8",
        "--ef-construction",
        "50",
        "--stem",
        "--stop-words",
        "--json",
    ]);
    assert_eq!(
        v,
        json!({
            "collection": "docs", "created": true, "dim": 8, "metric": "dot", "id_type": "int",
            "m": 8, "ef_construction": 50, "text": {"stem": true, "stop_words": true}, "records": 0,
        })
    );
    // The settings are stored: the library reads them back after a reopen.
    {
        let d = cairndb::Database::open(&t.db).unwrap();
        let cfg = d.collection("docs").unwrap().config().clone();
        assert_eq!((cfg.dim, cfg.m, cfg.ef_construction), (8, 8, 50));
        assert_eq!(cfg.metric, cairndb::Metric::Dot);
        assert!(cfg.text.stem && cfg.text.stop_words);
    }
    // Defaults: cosine, m 16, ef_construction 200, plain words.
    let out = ok(&["create", db, "plain", "--dim", "3"]);
    assert_eq!(
        out.trim_end(),
        format!("created collection `plain` in {db} (dim 3, metric cosine)")
    );
    let l = listed(db);
    assert_eq!(l.len(), 2);
    assert_eq!(
        l[1],
        json!({
            "name": "plain", "dim": 3, "metric": "cosine", "id_type": "int", "records": 0, "m": 16,
            "ef_construction": 200, "quantization": "int8",
            "text": {"stem": false, "stop_words": false},
        })
    );
    // --quantization none: kept, listed, and its segments carry no codes file.
    ok(&["create", db, "f32", "--dim", "3", "--quantization", "none"]);
    let l = listed(db);
    let f32 = l.iter().find(|c| c["name"] == "f32").unwrap();
    assert_eq!(f32["quantization"], "none");
    let d = cairndb::Database::open(&t.db).unwrap();
    let c = d.collection("f32").unwrap();
    assert_eq!(c.config().quantization, cairndb::Quantization::None);
    c.upsert(vec![cairndb::Record::new(1u64, vec![1.0, 0.0, 0.0])])
        .unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().segments[0].codes_bytes, 0);
    drop(c);
    drop(d);
    // An unknown kind is a usage error (clap's exit code 2) that lists the kinds.
    let o = cairn(&[
        "create",
        db,
        "q4",
        "--dim",
        "3",
        "--quantization",
        "rabitq2",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("[possible values: int8, none, rabitq4, rabitq1]"),
        "{err}"
    );
    assert!(listed(db).iter().all(|c| c["name"] != "q4"));
}

#[test]
fn create_refuses_bad_settings_and_creates_nothing() {
    let t = new_db();
    let db = s(&t.db);
    let err = fails(&["create", db, "c", "--dim", "3", "--m", "1"]);
    assert!(err.contains("m must be between 2 and 256, got 1"), "{err}");
    let err = fails(&["create", db, "c", "--dim", "3", "--ef-construction", "0"]);
    assert!(
        err.contains("ef_construction must be between 1 and 100000, got 0"),
        "{err}"
    );
    let err = fails(&["create", db, "c", "--dim", "0"]);
    assert!(
        err.contains("dimension must be between 1 and 65536"),
        "{err}"
    );
    let err = fails(&["create", db, "bad/name", "--dim", "3"]);
    assert!(err.contains("invalid collection name"), "{err}");
    assert!(!t.db.exists(), "a refused create makes no database");

    // A metric the tool does not know is a usage error (exit code 2) naming the choices.
    let o = cairn(&["create", db, "c", "--dim", "3", "--metric", "manhattan"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("invalid value 'manhattan' for '--metric") && err.contains("cosine, dot, l2"),
        "{err}"
    );
    assert!(!t.db.exists());
}

#[test]
fn create_of_an_existing_collection_needs_exist_ok() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "3"]);
    let file = t.dir.join("d.jsonl");
    write_jsonl(&file, 5);
    ok(&["import", db, "docs", s(&file)]);

    let err = fails(&["create", db, "docs", "--dim", "3"]);
    assert!(
        err.contains("collection `docs` already exists") && err.contains("--exist-ok"),
        "{err}"
    );
    assert!(!err.contains("CollectionExists"), "{err}");

    // With --exist-ok: the existing collection, untouched, said so.
    let out = ok(&["create", db, "docs", "--dim", "3", "--exist-ok"]);
    assert_eq!(
        out.trim_end(),
        format!("collection `docs` exists in {db} (dim 3, metric cosine, 5 records)")
    );
    let v = ok_json(&["create", db, "docs", "--dim", "3", "--exist-ok", "--json"]);
    assert_eq!(
        (v["created"].clone(), v["records"].clone()),
        (json!(false), json!(5))
    );
    // A new one with --exist-ok is created.
    let v = ok_json(&["create", db, "new", "--dim", "2", "--exist-ok", "--json"]);
    assert_eq!(v["created"], json!(true));

    // A different dimension or metric is an error naming the setting; nothing changes.
    let err = fails(&["create", db, "docs", "--dim", "4", "--exist-ok"]);
    assert!(
        err.contains("collection `docs` exists with dim 3, asked for 4"),
        "{err}"
    );
    let err = fails(&[
        "create",
        db,
        "docs",
        "--dim",
        "3",
        "--metric",
        "l2",
        "--exist-ok",
    ]);
    assert!(
        err.contains("exists with metric cosine, asked for l2"),
        "{err}"
    );
    // Settings that apply only at creation are kept, and a note says they were ignored.
    let o = cairn(&[
        "create",
        db,
        "docs",
        "--dim",
        "3",
        "--exist-ok",
        "--m",
        "32",
        "--stem",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let note = stderr(&o);
    assert!(
        note.contains("ignored --m 32 (it has 16), --stem (it does not stem)"),
        "{note}"
    );
    let l = listed(db);
    assert_eq!(
        (l[0]["name"].clone(), l[0]["m"].clone()),
        (json!("docs"), json!(16))
    );
    assert_eq!(l[0]["records"], json!(5));
}

/// A database named by a relative path of one component (`mydb`, as in the README), created
/// twice in a row with --exist-ok. (Opening a new database there failed with
/// "I/O error on : No such file or directory" before the fix in the library.)
#[test]
fn create_twice_in_a_relative_directory() {
    let t = new_db();
    for round in 0..2 {
        let o = cairn_in(
            Some(&t.dir),
            &["create", "mydb", "docs", "--dim", "3", "--exist-ok"],
        );
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
    }
    assert!(t.dir.join("mydb").join("MANIFEST").is_file());
}

#[test]
fn list_shows_every_collection() {
    let t = new_db();
    let db = s(&t.db);
    let err = fails(&["list", db]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!t.db.exists(), "list never creates a database");

    ok(&["create", db, "b", "--dim", "3", "--metric", "l2"]);
    ok(&["drop", db, "b"]);
    assert_eq!(
        ok(&["list", db]).trim_end(),
        format!("no collections in {db}")
    );
    assert_eq!(ok_json(&["list", db, "--json"]), json!({"collections": []}));

    ok(&["create", db, "b", "--dim", "3", "--metric", "l2"]);
    ok(&["create", db, "a", "--dim", "1536", "--stem"]);
    let file = t.dir.join("d.jsonl");
    write_jsonl(&file, 1234);
    ok(&["import", db, "b", s(&file)]);
    let out = ok(&["list", db]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        cells(lines[0]),
        [
            "collection",
            "dim",
            "metric",
            "ids",
            "records",
            "m",
            "ef_construction",
            "text"
        ]
    );
    assert_eq!(
        cells(lines[1]),
        ["a", "1536", "cosine", "int", "0", "16", "200", "stem"]
    );
    assert_eq!(
        cells(lines[2]),
        ["b", "3", "l2", "int", "1,234", "16", "200", "words"]
    );
    let l = listed(db);
    let names: Vec<&str> = l.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(l[1]["records"], json!(1234));
    assert_eq!(l[1]["metric"], json!("l2"));
}

/// `list` opens read-only: it works while another process holds the database for writing,
/// and sees what that process has written; `drop` needs the lock and says who holds it.
#[test]
fn list_works_while_another_process_writes_and_drop_does_not() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "v", "--dim", "2"]);
    let writer = cairndb::Database::open(&t.db).unwrap();
    writer
        .collection("v")
        .unwrap()
        .upsert(cairndb::Record::new(1, vec![1.0, 0.0]))
        .unwrap();
    writer
        .create_collection("w", cairndb::CollectionConfig::new(5, cairndb::Metric::Dot))
        .unwrap();
    let l = listed(db);
    assert_eq!(l.len(), 2);
    assert_eq!(l[0]["records"], json!(1));
    assert_eq!(
        (l[1]["name"].clone(), l[1]["dim"].clone()),
        (json!("w"), json!(5))
    );
    let err = fails(&["drop", db, "v"]);
    assert!(err.contains(&std::process::id().to_string()), "{err}");
    assert_eq!(writer.collection("v").unwrap().len(), 1);
}

#[test]
fn drop_removes_a_collection_and_its_files() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "3"]);
    ok(&["create", db, "keep", "--dim", "3"]);
    let file = t.dir.join("d.jsonl");
    write_jsonl(&file, 10);
    ok(&["import", db, "docs", s(&file)]);
    assert!(t.db.join("collections").join("docs").exists());

    let out = ok(&["drop", db, "docs"]);
    assert_eq!(
        out.trim_end(),
        format!("dropped collection `docs` (10 records) from {db}")
    );
    assert!(!t.db.join("collections").join("docs").exists());
    let names: Vec<Value> = listed(db).iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("keep")]);
    let err = fails(&["get", db, "docs", "1"]);
    assert!(err.contains("`docs` does not exist"), "{err}");

    // Dropping what is not there fails, says nothing was dropped, and names what exists.
    let err = fails(&["drop", db, "docs"]);
    assert!(
        err.contains("collection `docs` does not exist")
            && err.contains("nothing dropped")
            && err.contains("existing collections: keep"),
        "{err}"
    );
    let missing = t.dir.join("nowhere");
    let err = fails(&["drop", s(&missing), "docs"]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists());

    // A dropped name can be created again, empty.
    assert_eq!(
        ok_json(&["drop", db, "keep", "--json"]),
        json!({"dropped": "keep", "records": 0})
    );
    ok(&["create", db, "docs", "--dim", "4"]);
    let l = listed(db);
    assert_eq!(
        (l[0]["dim"].clone(), l[0]["records"].clone()),
        (json!(4), json!(0))
    );
}

/// Every command that reports something has `--json`, and its JSON says what the text says.
#[test]
fn json_on_every_reporting_command() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "3", "--json"]);
    let file = t.dir.join("d.jsonl");
    write_jsonl(&file, 5);

    // import: each durable batch as {"committed": N}, then a summary.
    let out = ok(&["import", db, "docs", s(&file), "--batch", "2", "--json"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (line, n) in lines.iter().zip([2, 4, 5]) {
        assert_eq!(line, &json!({ "committed": n }));
    }
    assert_eq!(lines[3]["collection"], json!("docs"));
    assert_eq!(lines[3]["imported"], json!(5));
    assert!(lines[3]["seconds"].as_f64().unwrap() >= 0.0);

    // delete
    assert_eq!(
        ok_json(&["delete", db, "docs", "1", "2", "99", "--json"]),
        json!({"deleted": 2, "missing": 1})
    );

    // verify: the report's counts, and ok
    let v = ok_json(&["verify", db, "--json"]);
    assert_eq!(v["ok"], json!(true));
    assert_eq!(v["collections"], json!(1));
    assert_eq!(v["segments"], json!(1));
    assert_eq!(v["rows"], json!(5));
    assert!(v["log_frames"].as_u64().unwrap() >= 1);

    // already there: stats, compact, repair, search (and get prints JSON)
    let st: Value = serde_json::from_str(&ok(&["stats", db, "--json"])).unwrap();
    assert_eq!(st["collections"][0]["records"], json!(3));
    ok_json(&["compact", db, "docs", "--json"]);
    ok_json(&["repair", db, "--json"]);
    ok_json(&["search", db, "docs", "--vector", "[1, 0, 0]", "--json"]);
    ok_json(&["get", db, "docs", "3"]);
}

#[test]
fn help_lists_the_new_commands() {
    let out = ok(&["--help"]);
    for cmd in ["list", "drop", "count", "export", "update"] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
        let sub = ok(&[cmd, "--help"]);
        assert!(sub.contains("Usage: cairn"), "{sub}");
    }
    let create = ok(&["create", "--help"]);
    for flag in [
        "--exist-ok",
        "--m",
        "--ef-construction",
        "--stem",
        "--stop-words",
        "--json",
    ] {
        assert!(create.contains(flag), "{flag} missing from create --help");
    }
}

/// A bad JSONL line is reported with its line number, the field at fault and what it should
/// hold — never serde's type or enum names.
#[test]
fn import_errors_name_the_line_and_the_field() {
    let t = new_db();
    let db = s(&t.db);
    ok(&["create", db, "docs", "--dim", "2"]);
    let whole = format!("a whole number from 0 to {}", u64::MAX);
    let cases: Vec<(&str, String)> = vec![
        (
            r#"{"id": -1, "vector": [1, 2]}"#,
            format!("field `id`: expected {whole}"),
        ),
        (
            r#"{"id": 1.5, "vector": [1, 2]}"#,
            "field `id`: expected".into(),
        ),
        (r#"{"vector": [1, 2]}"#, "missing field `id`".into()),
        (r#"{"id": 1}"#, "missing field `vector`".into()),
        (
            r#"{"id": 1, "vector": [1, "x"]}"#,
            r#"field `vector`: element 1 is the string "x", expected a number"#.into(),
        ),
        (
            r#"{"id": 1, "vector": [1, 2], "text": ["a"]}"#,
            "field `text`: expected a string, found an array".into(),
        ),
        (
            r#"{"id": 1, "vector": [1, 2], "payload": "en"}"#,
            "field `payload`: expected an object".into(),
        ),
        (
            r#"{"id": 1, "vector": [1, 2], "paylod": {"a": 1}}"#,
            "unknown field `paylod`".into(),
        ),
        ("[1, 2]", "expected a record (a JSON object".into()),
        (r#"{"id": 1, "vector": [1, 2"#, "not valid JSON".into()),
    ];
    for (i, (bad, want)) in cases.iter().enumerate() {
        let file = t.dir.join(format!("bad{i}.jsonl"));
        fs::write(
            &file,
            format!("{{\"id\": 100, \"vector\": [1, 0]}}\n\n{bad}\n"),
        )
        .unwrap();
        let o = cairn(&["import", db, "docs", s(&file), "--batch", "1"]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("bad{i}.jsonl line 3: {want}")),
            "{bad}: {err}"
        );
        // (After the file name, which is random.)
        let msg = err.split(" line 3: ").nth(1).unwrap();
        for rust in [
            "untagged",
            "enum",
            "u64",
            "f32",
            "sequence",
            "at line 1 column",
        ] {
            assert!(!msg.contains(rust), "{bad}: {err}");
        }
    }
    // A payload value the library refuses is named by its key.
    let file = t.dir.join("payload.jsonl");
    for v in ["null", "[1, 2]", "{\"b\": 1}"] {
        fs::write(
            &file,
            format!("{{\"id\": 1, \"vector\": [1, 2], \"payload\": {{\"k\": {v}}}}}\n"),
        )
        .unwrap();
        let o = cairn(&["import", db, "docs", s(&file)]);
        if !o.status.success() {
            let err = stderr(&o);
            let msg = err.split(" line 1: ").nth(1).unwrap();
            assert!(msg.starts_with("field `payload.k`: "), "{v}: {err}");
            assert!(
                !msg.contains("untagged") && !msg.contains("enum"),
                "{v}: {err}"
            );
        }
    }
    // A query vector too.
    let err = fails(&["search", db, "docs", "--vector", "[1, \"a\"]"]);
    assert!(
        err.contains("--vector must be a JSON array of numbers") && !err.contains("f32"),
        "{err}"
    );
}

/// A collection with records in a segment and in the memtable, some deleted, of every payload
/// kind: `n` records of dimension `dim` under `metric`, via the library.
fn populate(db: &Path, name: &str, dim: usize, metric: cairndb::Metric, n: u64) {
    use cairndb::{CollectionConfig, Database, Record};
    let d = Database::open(db).unwrap();
    let c = d
        .get_or_create_collection(name, CollectionConfig::new(dim, metric))
        .unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let mut r = Record::new(i * 3 + 1, (0..dim).map(|_| next()).collect::<Vec<_>>());
            if i % 3 != 0 {
                r = r.with_text(format!("text of {i}: ünïcode \"quoted\"\n"));
            }
            if i % 2 == 0 {
                r = r
                    .with_field("n", i as i64)
                    .with_field("neg", -(i as i64) - 1)
                    .with_field("f", i as f64 / 7.0)
                    .with_field("whole", 2.0)
                    .with_field("lang", if i % 4 == 0 { "en" } else { "de" })
                    .with_field("ok", i % 3 == 0)
                    .with_field("tags", vec!["a", "b c"]);
            }
            r
        })
        .collect();
    let half = records.len() / 2;
    c.upsert(records[..half].to_vec()).unwrap();
    c.flush().unwrap();
    c.upsert(records[half..].to_vec()).unwrap();
    c.delete(&[4, 7]).unwrap();
}

#[test]
fn count_counts_records_and_matches() {
    let t = new_db();
    let db = s(&t.db);
    populate(&t.db, "docs", 4, cairndb::Metric::L2, 100);
    assert_eq!(ok(&["count", db, "docs"]), "98\n");
    assert_eq!(
        ok(&["count", db, "docs", "--filter", "lang = \"en\""]),
        "25\n"
    );
    assert_eq!(
        ok_json(&["count", db, "docs", "--filter", "n >= 50", "--json"]),
        json!({"count": 25})
    );
    assert_eq!(ok(&["count", db, "docs", "--filter", "n > 1000"]), "0\n");
    // The JSON form of --filter, as everywhere.
    assert_eq!(
        ok(&[
            "count",
            db,
            "docs",
            "--filter",
            r#"{"lang": "en", "n": {"$gte": 50}}"#
        ]),
        "12\n"
    );
    let err = fails(&["count", db, "docs", "--filter", "n >="]);
    assert!(
        err.contains("--filter: filter syntax error at column"),
        "{err}"
    );
    let err = fails(&["count", db, "nope"]);
    assert!(err.contains("collection `nope` does not exist"), "{err}");
    let err = fails(&["count", s(&t.dir.join("nowhere")), "docs"]);
    assert!(err.contains("does not exist"), "{err}");

    // Read-only: it counts beside a writer process, and sees its writes.
    let writer = cairndb::Database::open(&t.db).unwrap();
    writer
        .collection("docs")
        .unwrap()
        .upsert(cairndb::Record::new(10_000, vec![0.0; 4]))
        .unwrap();
    assert_eq!(ok(&["count", db, "docs"]), "99\n");
}

/// `export` writes what `import` reads: exporting, importing into a new collection (of a
/// new database) and exporting again gives the same bytes, and every record equals the
/// library's — vectors bit for bit, text, payload values with their types.
#[test]
fn export_then_import_round_trips_exactly() {
    let t = new_db();
    let db = s(&t.db);
    for (name, metric) in [
        ("cos", cairndb::Metric::Cosine),
        ("dot", cairndb::Metric::Dot),
        ("l2", cairndb::Metric::L2),
    ] {
        populate(&t.db, name, 48, metric, 300);
        let first = ok(&["export", db, name]);
        assert_eq!(first.lines().count(), 298, "{name}");
        let file = t.dir.join(format!("{name}.jsonl"));
        fs::write(&file, &first).unwrap();

        let other = t.dir.join(format!("copy-{name}"));
        ok(&[
            "create",
            s(&other),
            name,
            "--dim",
            "48",
            "--metric",
            &metric.to_string(),
        ]);
        ok(&["import", s(&other), name, s(&file)]);
        let second = ok(&["export", s(&other), name, "--format", "jsonl"]);
        assert!(first == second, "{name}: the re-exported JSONL differs");

        // Each line is the stored record.
        let d = cairndb::Database::open_read_only(&other).unwrap();
        let c = d.collection(name).unwrap();
        let mut ids = Vec::new();
        for line in first.lines() {
            let r: cairndb::Record = serde_json::from_str(line).unwrap();
            let stored = c.get(&r.id).unwrap().unwrap();
            assert_eq!(r, stored, "{name}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&r.vector), bits(&stored.vector), "{name}");
            ids.push(r.id.as_u64().unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{name}: id order");
        assert!(!ids.contains(&4) && !ids.contains(&7));
        let any = first.lines().find(|l| l.contains("\"tags\"")).unwrap();
        let v: Value = serde_json::from_str(any).unwrap();
        assert!(
            v["payload"]["n"].is_i64() && v["payload"]["f"].is_f64(),
            "{any}"
        );
        assert!(
            v["payload"]["whole"].is_f64(),
            "a float stays a float: {any}"
        );
    }

    // With a filter: only the matches, in id order.
    let en = ok(&["export", db, "l2", "--filter", "lang = \"en\" AND n >= 100"]);
    let ids: Vec<u64> = en
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let want: Vec<u64> = (100..300u64)
        .filter(|i| i % 4 == 0)
        .map(|i| i * 3 + 1)
        .collect();
    assert_eq!(ids, want);
    // An empty collection exports nothing; errors are one line.
    ok(&["create", db, "empty", "--dim", "2"]);
    assert_eq!(ok(&["export", db, "empty"]), "");
    let err = fails(&["export", db, "nope"]);
    assert!(err.contains("collection `nope` does not exist"), "{err}");
    let err = fails(&["export", db, "l2", "--filter", "lang ="]);
    assert!(err.contains("--filter"), "{err}");
    let o = cairn(&["export", db, "l2", "--format", "csv"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn update_changes_only_what_a_line_names() {
    let t = new_db();
    let db = s(&t.db);
    populate(&t.db, "docs", 3, cairndb::Metric::L2, 10);
    let before = |id: u64| -> cairndb::Record {
        serde_json::from_str(&ok(&["get", db, "docs", &id.to_string()])).unwrap()
    };
    let (r1, r2, r3, r4) = (before(1), before(13), before(19), before(25));
    let file = t.dir.join("up.jsonl");
    fs::write(
        &file,
        [
            r#"{"id": 1, "payload": {"lang": "fr", "new": ["x"]}}"#,
            r#"{"id": 13, "text": null}"#,
            "",
            r#"{"id": 19, "vector": [9, 8, 7], "text": "new text"}"#,
            r#"{"id": 555, "text": "no such record"}"#,
            r#"{"id": 25}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let o = cairn(&["update", db, "docs", s(&file), "--batch", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.trim_end(),
        "updated 4 records (1 of the 5 lines named ids that do not exist)"
    );
    // 1: keys set, the others kept; vector and text untouched.
    let a = before(1);
    assert_eq!(
        (a.vector.clone(), a.text.clone()),
        (r1.vector.clone(), r1.text.clone())
    );
    let p = serde_json::to_value(&a.payload).unwrap();
    assert_eq!(p["lang"], json!("fr"));
    assert_eq!(p["n"], serde_json::to_value(&r1.payload["n"]).unwrap());
    // 13: text removed, the rest kept.
    let b = before(13);
    assert_eq!(b.text, None);
    assert_eq!((b.vector, b.payload), (r2.vector, r2.payload));
    // 19: vector and text replaced, payload kept.
    let c = before(19);
    assert_eq!(c.vector, vec![9.0, 8.0, 7.0]);
    assert_eq!(c.text.as_deref(), Some("new text"));
    assert_eq!(c.payload, r3.payload);
    // 25: nothing named, nothing changed.
    assert_eq!(before(25), r4);
    assert_eq!(ok(&["count", db, "docs"]), "8\n");

    // --replace-payload replaces the whole payload.
    fs::write(&file, r#"{"id": 1, "payload": {"only": true}}"#).unwrap();
    assert_eq!(
        ok_json(&[
            "update",
            db,
            "docs",
            s(&file),
            "--replace-payload",
            "--json"
        ]),
        json!({"updated": 1, "missing": 0})
    );
    assert_eq!(
        serde_json::to_value(before(1).payload).unwrap(),
        json!({"only": true})
    );
}

#[test]
fn update_errors_name_the_line_and_change_nothing() {
    let t = new_db();
    let db = s(&t.db);
    populate(&t.db, "docs", 3, cairndb::Metric::L2, 10);
    let snapshot = ok(&["export", db, "docs"]);
    let file = t.dir.join("up.jsonl");
    let good = r#"{"id": 1, "text": "changed"}"#;
    for (bad, want) in [
        (r#"{"text": "x"}"#, "line 2: missing field `id`"),
        (
            r#"{"id": "one"}"#,
            "line 2: id \"one\" is a string but collection `docs` has integer ids",
        ),
        (
            r#"{"id": -1}"#,
            "line 2: field `id`: expected a whole number from 0 to 18446744073709551615 or a \
             string, found the negative number -1",
        ),
        (
            r#"{"id": 1, "vector": [1, 2]}"#,
            "line 2: dimension mismatch: collection `docs` has 3, got 2",
        ),
        (
            r#"{"id": 1, "vector": [1, 2, "3"]}"#,
            "line 2: field `vector`: element 2 is the string \"3\"",
        ),
        (
            r#"{"id": 1, "text": 3}"#,
            "line 2: field `text`: expected a string, found the number 3",
        ),
        (
            r#"{"id": 1, "payload": [1]}"#,
            "line 2: field `payload`: expected an object",
        ),
        (
            r#"{"id": 1, "vectors": [1, 2, 3]}"#,
            "line 2: unknown field `vectors`",
        ),
        ("{\"id\": 1", "line 2: not valid JSON"),
    ] {
        fs::write(&file, format!("{good}\n{bad}\n")).unwrap();
        let err = fails(&["update", db, "docs", s(&file)]);
        assert!(err.contains(want), "{bad}: {err}");
        let msg = err.split(" line 2: ").nth(1).unwrap();
        for rust in ["untagged", "enum", "u64", "f32", "sequence"] {
            assert!(!msg.contains(rust), "{bad}: {err}");
        }
        // The bad line is in the first batch, which is atomic: nothing changed.
        assert!(ok(&["export", db, "docs"]) == snapshot, "{bad}");
    }
    // Batches before the bad line's stay applied, and the error says so.
    fs::write(
        &file,
        format!("{good}\n{{\"id\": 13, \"text\": \"t\"}}\n{{\"id\": 1, \"text\": 3}}\n"),
    )
    .unwrap();
    let err = fails(&["update", db, "docs", s(&file), "--batch", "1"]);
    assert!(
        err.contains("line 3: field `text`")
            && err.contains("(2 earlier updates were applied and stay)"),
        "{err}"
    );
    let one: Value = serde_json::from_str(&ok(&["get", db, "docs", "1"])).unwrap();
    assert_eq!(one["text"], json!("changed"));
    let err = fails(&["update", db, "docs", s(&t.dir.join("missing.jsonl"))]);
    assert!(err.contains("cannot open"), "{err}");
    let err = fails(&["update", db, "nope", s(&file)]);
    assert!(err.contains("collection `nope` does not exist"), "{err}");
}

#[test]
fn delete_by_filter() {
    let t = new_db();
    let db = s(&t.db);
    populate(&t.db, "docs", 4, cairndb::Metric::L2, 100);
    assert_eq!(
        ok(&["count", db, "docs", "--filter", "lang = \"de\""]),
        "24\n"
    );
    assert_eq!(
        ok(&["delete", db, "docs", "--filter", "lang = \"de\""]),
        "deleted 24\n"
    );
    assert_eq!(
        ok(&["count", db, "docs", "--filter", "lang = \"de\""]),
        "0\n"
    );
    assert_eq!(ok(&["count", db, "docs"]), "74\n");
    assert_eq!(
        ok_json(&["delete", db, "docs", "--filter", "n >= 90", "--json"]),
        json!({"deleted": 2})
    );
    assert_eq!(
        ok_json(&["delete", db, "docs", "--filter", "n >= 90", "--json"]),
        json!({"deleted": 0})
    );
    let err = fails(&["delete", db, "docs", "--filter", "n >="]);
    assert!(err.contains("--filter: filter syntax error"), "{err}");
    // Ids or a filter, not both, not neither (usage errors, exit code 2).
    assert_eq!(
        cairn(&["delete", db, "docs", "1", "--filter", "n > 1"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(cairn(&["delete", db, "docs"]).status.code(), Some(2));
    assert_eq!(ok(&["count", db, "docs"]), "72\n");
}
