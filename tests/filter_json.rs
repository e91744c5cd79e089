//! The JSON filter language (issue 15, point 3): the operator form, the old tree form as an
//! alias, the text syntax and the Rust builder describe the same filters and select the same
//! records; hostile JSON is refused with errors in the user's terms.

use std::collections::BTreeSet;
use std::thread;

use cairndb::{CollectionConfig, Database, Error, Filter, Metric, Record, SearchRequest};

/// The same filter in four forms: text, operator JSON, old tree JSON, builder.
fn forms() -> Vec<(&'static str, &'static str, &'static str, Filter)> {
    vec![
        (
            r#"lang = "en""#,
            r#"{"lang": "en"}"#,
            r#"{"eq": {"field": "lang", "value": "en"}}"#,
            Filter::eq("lang", "en"),
        ),
        (
            "year >= 2020",
            r#"{"year": {"$gte": 2020}}"#,
            r#"{"range": {"field": "year", "gte": 2020}}"#,
            Filter::range("year").gte(2020),
        ),
        (
            r#"lang = "en" AND year >= 2020"#,
            r#"{"lang": "en", "year": {"$gte": 2020}}"#,
            r#"{"and": [{"eq": {"field": "lang", "value": "en"}}, {"range": {"field": "year", "gte": 2020}}]}"#,
            Filter::eq("lang", "en").and(Filter::range("year").gte(2020)),
        ),
        (
            r#"2019 < year <= 2021 OR tags IN ("b", "c")"#,
            r#"{"$or": [{"year": {"$gt": 2019, "$lte": 2021}}, {"tags": {"$in": ["b", "c"]}}]}"#,
            r#"{"or": [{"range": {"field": "year", "gt": 2019, "lte": 2021}}, {"in": {"field": "tags", "values": ["b", "c"]}}]}"#,
            Filter::range("year")
                .gt(2019)
                .lte(2021)
                .or(Filter::any_of("tags", ["b", "c"])),
        ),
        (
            r#"lang != "en""#,
            r#"{"lang": {"$ne": "en"}}"#,
            r#"{"not": {"eq": {"field": "lang", "value": "en"}}}"#,
            Filter::eq("lang", "en").not(),
        ),
        (
            r#"tags NOT IN ("a")"#,
            r#"{"tags": {"$nin": ["a"]}}"#,
            r#"{"not": {"in": {"field": "tags", "values": ["a"]}}}"#,
            Filter::any_of("tags", ["a"]).not(),
        ),
        (
            "NOT EXISTS(lang) OR draft = true",
            r#"{"$or": [{"lang": {"$exists": false}}, {"draft": {"$eq": true}}]}"#,
            r#"{"or": [{"not": {"exists": {"field": "lang"}}}, {"eq": {"field": "draft", "value": true}}]}"#,
            Filter::exists("lang").not().or(Filter::eq("draft", true)),
        ),
        (
            r#"HAS_TERM("storage") AND NOT (score < 0.5)"#,
            r#"{"$and": [{"$contains": "storage"}, {"$not": {"score": {"$lt": 0.5}}}]}"#,
            r#"{"and": [{"has_term": {"term": "storage"}}, {"not": {"range": {"field": "score", "lt": 0.5}}}]}"#,
            Filter::has_term("storage").and(Filter::range("score").lt(0.5).not()),
        ),
        (
            r#"`meta.author` = "ann""#,
            r#"{"meta.author": "ann"}"#,
            r#"{"eq": {"field": "meta.author", "value": "ann"}}"#,
            Filter::eq("meta.author", "ann"),
        ),
    ]
}

fn records() -> Vec<Record> {
    let langs = ["en", "de", "fr"];
    (0..60u64)
        .map(|i| {
            let mut r = Record::new(i, [1.0, (i as f32) / 60.0])
                .with_field("year", 2015 + (i % 9) as i64)
                .with_field("score", (i % 10) as f64 / 10.0)
                .with_field("tags", vec![["a", "b", "c", "d"][(i % 4) as usize]]);
            if i % 5 != 0 {
                r = r.with_field("lang", langs[(i % 3) as usize]);
            }
            if i % 7 == 0 {
                r = r.with_field("draft", true);
            }
            if i % 6 == 0 {
                r = r.with_field("meta.author", "ann");
            }
            r.with_text(if i % 2 == 0 {
                "durable storage engine"
            } else {
                "vector search"
            })
        })
        .collect()
}

#[test]
fn four_forms_give_the_same_filter_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let col = db
        .create_collection("c", CollectionConfig::new(2, Metric::Dot))
        .unwrap();
    let recs = records();
    // Half in a segment, half in the memtable.
    col.upsert(recs[..30].to_vec()).unwrap();
    col.flush().unwrap();
    col.upsert(recs[30..].to_vec()).unwrap();
    for (text, json, old, built) in forms() {
        let parsed = Filter::parse(text).unwrap();
        let from_json = Filter::from_json(json).unwrap();
        let from_old = Filter::from_json(old).unwrap();
        let via_serde: Filter = serde_json::from_str(json).unwrap();
        assert_eq!(parsed, built, "text {text}");
        assert_eq!(from_json, built, "json {json}");
        assert_eq!(from_old, built, "old {old}");
        assert_eq!(via_serde, built, "serde {json}");
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(Filter::from_json_value(&value).unwrap(), built);
        // Serialize writes the operator form, which reads back.
        let written = serde_json::to_string(&built).unwrap();
        assert!(!written.contains("\"field\""), "{written}");
        assert_eq!(Filter::from_json(&written).unwrap(), built, "{written}");

        // The reference matcher's answer, and the collection's for every form.
        let want: BTreeSet<u64> = recs
            .iter()
            .filter(|r| {
                let text = r.text.as_deref().unwrap_or("");
                built.matches(&r.payload, &|t| text.split(' ').any(|w| w == t))
            })
            .map(|r| r.id.as_u64().unwrap())
            .collect();
        assert!(
            !want.is_empty() && want.len() < recs.len(),
            "{text}: {want:?}"
        );
        for f in [parsed, from_json, from_old, built.clone()] {
            let req = SearchRequest::new([1.0, 0.0]).k(100).exact(true).filter(f);
            let got: BTreeSet<u64> = col
                .search(&req)
                .unwrap()
                .iter()
                .map(|h| h.id.as_u64().unwrap())
                .collect();
            assert_eq!(got, want, "{text}");
        }
    }
}

/// The error message of `from_json(json)`.
fn err(json: &str) -> String {
    match Filter::from_json(json) {
        Ok(f) => panic!("{json} was accepted as {f:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_err(json: &str, want: &str) {
    let e = err(json);
    assert!(e.contains(want), "{json}: {e}");
    for serde_word in ["untagged", "variant", "enum", "Filter", "Value"] {
        assert!(!e.contains(serde_word), "{json}: serde's words in {e}");
    }
}

#[test]
fn errors_are_in_the_users_terms() {
    assert_err(
        r#"{"year": {"$gtx": 2020}}"#,
        r#"unknown operator "$gtx" on field "year" (use $eq, $ne, $in, $nin, $gt, $gte, $lt, $lte, $exists)"#,
    );
    assert_err(
        r#"{"$xor": []}"#,
        r#"unknown filter operator "$xor" at the top level"#,
    );
    assert_err(
        r#"{"$and": 5}"#,
        "$and takes a list of filters, not the number 5",
    );
    assert_err(
        r#"{"$or": {"a": 1}}"#,
        "$or takes a list of filters, not an object",
    );
    assert_err(
        r#"{"$and": [1]}"#,
        "$and takes a list of filters (objects), found the number 1",
    );
    assert_err(
        r#"{"$not": [1]}"#,
        "$not takes a filter (an object), not a list",
    );
    assert_err(
        r#"{"x": {"$in": 3}}"#,
        r#"$in on "x" takes a list, not the number 3"#,
    );
    assert_err(
        r#"{"x": {"$nin": "a"}}"#,
        r#"$nin on "x" takes a list, not the string "a""#,
    );
    assert_err(
        r#"{"x": {"$gt": "a"}}"#,
        r#"$gt on "x" takes a number, not the string "a""#,
    );
    assert_err(
        r#"{"x": {"$lte": true}}"#,
        r#"$lte on "x" takes a number, not true"#,
    );
    assert_err(
        r#"{"x": {"$exists": 1}}"#,
        r#"$exists on "x" takes true or false"#,
    );
    assert_err(r#"{"x": {}}"#, r#"no operator given for field "x""#);
    assert_err(
        r#"{"x": {"$eq": 1, "y": 2}}"#,
        r#"field "x": "y" is not an operator"#,
    );
    assert_err(
        r#"{"meta": {"author": "x"}}"#,
        r#"field "meta": "author" is not an operator"#,
    );
    // Payloads are JSON: null is a value to compare with (it matches a stored null).
    assert_eq!(
        Filter::from_json(r#"{"x": null}"#).unwrap(),
        Filter::eq("x", cairndb::Value::Null)
    );
    assert_eq!(
        Filter::from_json(r#"{"x": {"$in": [1, null]}}"#).unwrap(),
        Filter::any_of("x", [cairndb::Value::Int(1), cairndb::Value::Null])
    );
    assert_err(
        r#"{"$contains": 3}"#,
        "$contains (a term of the text) takes a string",
    );
    assert_err(r#"[1]"#, "a filter is an object");
    assert_err(r#""year > 1""#, "a filter is an object");
    // Validation: lists in equality, empty names, blank terms.
    assert_err(
        r#"{"tags": ["a", "b"]}"#,
        "compare with one value, not a list",
    );
    assert_err(r#"{"": 1}"#, "empty field name");
    assert_err(r#"{"$contains": " "}"#, "has_term needs a term");
    // The old form is checked for its exact shape.
    assert_err(
        r#"{"eq": {"field": "a", "values": [1]}}"#,
        r#"{"eq": {…}} (the old form) takes the keys "field", "value", not "values""#,
    );
    assert_err(r#"{"eq": {"field": "a"}}"#, "some are missing");
    assert_err(r#"{"range": {"field": "a"}}"#, "range on `a` has no bound");
    // Not JSON at all: serde_json's position.
    assert_err(r#"{"year": "#, "not valid JSON");
    // The error names the position in the text.
    assert_err(r#"{"year": {"$gtx": 1}}"#, "at line 1 column");
}

#[test]
fn non_finite_numbers_are_refused() {
    // JSON has no NaN or infinity: a number too large for f64 is an error, not infinity.
    assert_err(r#"{"x": {"$gt": 1e999}}"#, "number out of range");
    assert_err(r#"{"x": 1e999}"#, "number out of range");
    assert_err(r#"{"x": {"$gt": NaN}}"#, "not valid JSON");
    assert_err(r#"{"x": Infinity}"#, "not valid JSON");
    // Built in Rust, the same filter fails validation.
    let f = Filter::range("x").gt(f64::INFINITY);
    assert!(matches!(f.validate(), Err(Error::InvalidFilter(_))));
    // A NaN is not written out at all (serde_json would write `null`, a different filter).
    let nan = Filter::eq("x", f64::NAN);
    assert!(serde_json::to_string(&nan).is_err());
}

#[test]
fn empty_in_matches_nothing_and_empty_nin_everything() {
    assert_eq!(
        Filter::from_json(r#"{"x": {"$in": []}}"#).unwrap(),
        Filter::any_of("x", Vec::<i64>::new())
    );
    let payload = [("x".to_owned(), cairndb::Value::Int(1))]
        .into_iter()
        .collect();
    let none = |_: &str| false;
    assert!(
        !Filter::from_json(r#"{"x": {"$in": []}}"#)
            .unwrap()
            .matches(&payload, &none)
    );
    assert!(
        Filter::from_json(r#"{"x": {"$nin": []}}"#)
            .unwrap()
            .matches(&payload, &none)
    );
    // `{}` is TRUE (an `and` of nothing), `{"$or": []}` FALSE.
    assert_eq!(Filter::from_json("{}").unwrap(), Filter::And(vec![]));
    assert_eq!(
        Filter::from_json(r#"{"$or": []}"#).unwrap(),
        Filter::Or(vec![])
    );
}

#[test]
fn fields_named_like_operators_and_old_names() {
    // A field named like an old variant, with a value or operators: the operator form.
    assert_eq!(
        Filter::from_json(r#"{"eq": 1}"#).unwrap(),
        Filter::eq("eq", 1)
    );
    assert_eq!(
        Filter::from_json(r#"{"and": "x"}"#).unwrap(),
        Filter::eq("and", "x")
    );
    assert_eq!(
        Filter::from_json(r#"{"not": {"$in": [1, 2]}}"#).unwrap(),
        Filter::any_of("not", [1, 2])
    );
    assert_eq!(
        Filter::from_json(r#"{"range": {"$gte": 1}}"#).unwrap(),
        Filter::range("range").gte(1)
    );
    assert_eq!(
        Filter::from_json(r#"{"exists": {"$exists": true}}"#).unwrap(),
        Filter::exists("exists")
    );
    // A field whose name starts with `$` is written in the old form, and reads back.
    for f in [
        Filter::eq("$price", 3),
        Filter::any_of("$and", ["a"]),
        Filter::range("$gt").lt(1.5),
        Filter::exists("$x").not(),
        Filter::eq("eq", 1).and(Filter::eq("not", true)),
    ] {
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(Filter::from_json(&json).unwrap(), f, "{json}");
    }
    assert_eq!(
        serde_json::to_string(&Filter::eq("$price", 3)).unwrap(),
        r#"{"eq":{"field":"$price","value":3}}"#
    );
    // The old form with several keys in one object is an `and`, like any object.
    assert_eq!(
        Filter::from_json(r#"{"eq": {"field": "a", "value": 1}, "b": 2}"#).unwrap(),
        Filter::eq("a", 1).and(Filter::eq("b", 2))
    );
}

/// Runs `f` on a thread with a small stack: anything that recursed once per level of a
/// 100,000-deep filter would overflow it (and abort the test binary).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_nesting_is_refused_at_the_limit() {
    const MAX: usize = Filter::MAX_DEPTH;
    let nots = |n: usize| {
        format!(
            "{}{}{}",
            r#"{"$not":"#.repeat(n),
            r#"{"a":1}"#,
            "}".repeat(n)
        )
    };
    assert_eq!(Filter::from_json(&nots(MAX)).unwrap().depth(), MAX);
    match Filter::from_json(&nots(MAX + 1)) {
        Err(Error::FilterTooDeep { depth, max }) => assert_eq!((depth, max), (MAX + 1, MAX)),
        other => panic!("{other:?}"),
    }
    // Implicit levels count: 63 `$not`s around a field with two operators (an `and` of a
    // `not`) reach 65.
    let implicit = format!(
        "{}{}{}",
        r#"{"$not":"#.repeat(MAX - 1),
        r#"{"a":{"$ne":1,"$exists":true}}"#,
        "}".repeat(MAX - 1)
    );
    match Filter::from_json(&implicit) {
        Err(Error::FilterTooDeep { depth, .. }) => assert_eq!(depth, MAX + 1),
        other => panic!("{other:?}"),
    }
    // Plain serde refuses it too, not only `from_json`'s validation.
    assert!(serde_json::from_str::<Filter>(&implicit).is_err());
    on_small_stack(move || {
        for json in [
            nots(100_000),
            format!(
                "{}{}{}",
                r#"{"$and":["#.repeat(100_000),
                "{}",
                "]}".repeat(100_000)
            ),
            format!(
                "{}{}{}",
                r#"{"not":"#.repeat(100_000),
                "{}",
                "}".repeat(100_000)
            ),
            format!(
                "{}{}{}",
                r#"{"x":{"$in":"#.repeat(100_000),
                "1",
                "}}".repeat(100_000)
            ),
            format!(
                r#"{{"x":{{"$eq":{}1{}}}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
        ] {
            let e = Filter::from_json(&json).unwrap_err().to_string();
            assert!(
                [
                    "filter nested too deeply",
                    "takes a list",
                    "cannot compare with a list"
                ]
                .iter()
                .any(|w| e.contains(w)),
                "{}…: {e}",
                &json[..20]
            );
            // Through a `serde_json::Value` (no recursion limit of its own below 128).
            assert!(serde_json::from_str::<Filter>(&json).is_err());
        }
    });
}

#[test]
fn explain_names_fields_no_record_has() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let col = db
        .create_collection("c", CollectionConfig::new(2, Metric::Dot))
        .unwrap();
    col.upsert(vec![
        Record::new(1, [1.0, 0.0]).with_field("year", 2020),
        Record::new(2, [0.0, 1.0]).with_field("gone", true),
    ])
    .unwrap();
    col.flush().unwrap();
    col.upsert(Record::new(3, [1.0, 1.0]).with_field("lang", "en"))
        .unwrap();
    // Record 2 is deleted: no live record has `gone` any more.
    col.delete(&[2]).unwrap();
    let explain = |json: &str| {
        let req = SearchRequest::new([1.0, 0.0])
            .filter(Filter::from_json(json).unwrap())
            .explain(true);
        let resp = col.query(&req).unwrap();
        (
            resp.hits
                .iter()
                .map(|h| h.id.as_u64().unwrap())
                .collect::<Vec<_>>(),
            resp.explain.unwrap().unknown_fields,
        )
    };
    // Known in a segment, known in the memtable: nothing to say.
    let (hits, unknown) = explain(r#"{"$or": [{"year": 2020}, {"lang": "en"}]}"#);
    assert_eq!((hits.len(), unknown), (2, Vec::<String>::new()));
    // A misspelling is not an error: it matches nothing, and explain says why.
    let (hits, unknown) = explain(r#"{"yeer": {"$gte": 2020}}"#);
    assert_eq!((hits, unknown), (vec![], vec!["yeer".to_owned()]));
    // Each unknown field once, in the filter's order; deleted records do not count.
    let (hits, unknown) = explain(
        r#"{"$not": {"gone": true}, "year": {"$exists": true}, "x": 1, "$or": [{"x": 2}]}"#,
    );
    assert_eq!(
        (hits, unknown),
        (vec![], vec!["gone".to_owned(), "x".to_owned()])
    );
    // Without explain, nothing is computed or reported.
    let req = SearchRequest::new([1.0, 0.0]).filter(Filter::eq("yeer", 1));
    assert!(col.query(&req).unwrap().explain.is_none());
}
