//! A record read from one line of JSONL, with errors in the user's terms: the field and what
//! it should hold ("field `id`: expected a whole number from 0 to 18446744073709551615 or a
//! string, found null"), never serde's type or enum names. An id is read as the number or
//! string it is; whether it fits the collection's ids is checked by the caller (`ids.rs`).

use cairndb::{Payload, Record, Update};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The fields a record line may have.
const FIELDS: [&str; 4] = ["id", "vector", "text", "payload"];

/// What a record line looks like, for messages.
const SHAPE: &str = r#"{"id": 1, "vector": [0.1, …], "text": "…", "payload": {…}}"#;

/// A record line as read: the id as it was written, the other fields decoded; any other
/// field is refused (a misspelt `paylod` is not silently dropped).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: Value,
    vector: Vec<f32>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    payload: Payload,
}

/// Parses one line into a record.
pub fn parse_record(line: &str) -> Result<Record, String> {
    let l = match serde_json::from_str::<Line>(line) {
        Ok(l) => l,
        Err(e) => return Err(explain(line, &e, RECORD)),
    };
    let mut r = record_with_id(&l.id)?;
    r.vector = l.vector;
    r.text = l.text;
    r.payload = l.payload;
    Ok(r)
}

/// A record with this id and nothing else: a whole number from 0 to `u64::MAX` or a string.
fn record_with_id(id: &Value) -> Result<Record, String> {
    let id = serde_json::from_value::<cairndb::Id>(id.clone())
        .map_err(|_| format!("field `id`: {}", id_expected(id)))?;
    Ok(Record::new(id, Vec::new()))
}

/// A line of `cairn update`: an id and the parts of the record to change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateLine {
    id: Value,
    #[serde(default)]
    vector: Option<Vec<f32>>,
    /// Absent: keep; `null`: remove; a string: replace.
    #[serde(default, deserialize_with = "present")]
    text: Option<Option<String>>,
    #[serde(default)]
    payload: Option<Payload>,
}

/// A field that is present, even as `null` (an absent one is `None` by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Parses one line of an update file: `{"id": 1}` with any of `vector`, `text` (`null`
/// removes it) and `payload` (its keys are set, or with `replace_payload` it replaces the
/// stored payload).
pub fn parse_update(line: &str, replace_payload: bool) -> Result<Update, String> {
    let l = match serde_json::from_str::<UpdateLine>(line) {
        Ok(l) => l,
        Err(e) => return Err(explain(line, &e, UPDATE)),
    };
    let mut u = Update::new(record_with_id(&l.id)?.id);
    u.vector = l.vector;
    u.text = l.text;
    u.payload = l.payload.map(|p| {
        if replace_payload {
            cairndb::PayloadChange::Replace(p)
        } else {
            cairndb::PayloadChange::Merge(p)
        }
    });
    Ok(u)
}

/// What kind of line is read, for messages.
struct Kind {
    /// Fields a line must have.
    required: &'static [&'static str],
    /// What a line looks like.
    shape: &'static str,
    /// "record" or "update".
    noun: &'static str,
}

const RECORD: Kind = Kind {
    required: &["id", "vector"],
    shape: SHAPE,
    noun: "record",
};

const UPDATE: Kind = Kind {
    required: &["id"],
    shape: r#"{"id": 1, "vector": [0.1, …], "text": "…", "payload": {…}}, each but "id" optional"#,
    noun: "update",
};

/// Names the field at fault when a line does not read as a `what`.
fn explain(line: &str, e: &serde_json::Error, what: Kind) -> String {
    let (noun, shape) = (what.noun, what.shape);
    let obj = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(obj)) => obj,
        Ok(other) => {
            return format!(
                "expected {} {noun} (a JSON object such as {shape}), found {}",
                if noun == "update" { "an" } else { "a" },
                kind(&other)
            );
        }
        Err(syntax) => return format!("not valid JSON: {}", without_position(&syntax)),
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return format!(
            "unknown field `{}`; the fields are id, vector, text and payload: {shape}",
            one_line(k, 40)
        );
    }
    for field in what.required {
        if !obj.contains_key(*field) {
            return format!("missing field `{field}`; a line looks like {shape}");
        }
    }
    if id_problem(&obj["id"]) {
        return format!("field `id`: {}", id_expected(&obj["id"]));
    }
    match obj.get("vector").unwrap_or(&Value::Null) {
        // (Absent or null: the field's own message, or an update that keeps the vector.)
        Value::Null => {}
        Value::Array(items) => {
            if let Some((i, v)) = items.iter().enumerate().find(|(_, v)| !v.is_number()) {
                return format!(
                    "field `vector`: element {i} is {}, expected a number",
                    kind(v)
                );
            }
        }
        other => {
            return format!(
                "field `vector`: expected an array of numbers, found {}",
                kind(other)
            );
        }
    }
    match obj.get("text") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(other) => return format!("field `text`: expected a string, found {}", kind(other)),
    }
    match obj.get("payload") {
        None => {}
        Some(Value::Object(fields)) => {
            for (key, value) in fields {
                let one = Value::Object([(key.clone(), value.clone())].into_iter().collect());
                if let Err(e) = serde_json::from_value::<Payload>(one) {
                    return format!(
                        "field `payload.{}`: {}",
                        one_line(key, 40),
                        payload_problem(value, &e)
                    );
                }
            }
        }
        Some(other) => {
            return format!(
                "field `payload`: expected an object of named values such as {{\"lang\": \"en\"}}, found {}",
                kind(other)
            );
        }
    }
    humanize(e)
}

/// Whether this value is no id.
fn id_problem(id: &Value) -> bool {
    serde_json::from_value::<cairndb::Id>(id.clone()).is_err()
}

/// What an id must be, and what `id` is: `the negative number -1`, `the fractional number
/// 1.5`, `null`, `an object`…
fn id_expected(id: &Value) -> String {
    let found = match id {
        Value::Number(n) if n.as_i64().is_some_and(|i| i < 0) => {
            format!("the negative number {n}")
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("the fractional number {n}"),
            Some(f) if f < 0.0 => format!("the negative number {n}"),
            Some(f) if f >= u64::MAX as f64 => format!("a number above {}", u64::MAX),
            _ => format!("the number {n}, written with a fraction or exponent"),
        },
        other => kind(other),
    };
    format!(
        "expected a whole number from 0 to {} or a string, found {found}",
        u64::MAX
    )
}

/// Why a payload value is refused.
fn payload_problem(value: &Value, e: &serde_json::Error) -> String {
    let m = without_position(e);
    if m.contains("untagged enum") {
        format!("{} is not a value a payload can hold", kind(value))
    } else {
        format!("{}: {}", kind(value), humanize_text(&m))
    }
}

/// A JSON value described for a message: `the string "a"`, `the number -1`, `an array`.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {:?}", one_line(s, 40)),
        Value::Array(a) if a.is_empty() => "an empty array".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// `s` cut to `max` characters, with `…`.
fn one_line(s: &str, max: usize) -> String {
    crate::util::one_line(s, max)
}

/// serde_json's message without its ` at line 1 column 7` (a JSONL line is one line).
fn without_position(e: &serde_json::Error) -> String {
    let m = e.to_string();
    match m.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &m[..i], e.column()),
        None => m,
    }
}

/// A serde message in the words of JSON: no Rust type or enum names.
pub fn humanize(e: &serde_json::Error) -> String {
    humanize_text(&without_position(e))
}

fn humanize_text(m: &str) -> String {
    let mut m = m.to_owned();
    for (rust, json) in [
        (
            "expected u64",
            "expected a whole number from 0 to 18446744073709551615",
        ),
        ("expected i64", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected usize", "expected a whole number from 0"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: object"),
        ("invalid type: unit value", "invalid type: null"),
        ("floating point", "number"),
    ] {
        m = m.replace(rust, json);
    }
    if let Some(i) = m.find("data did not match any variant of untagged enum") {
        m.replace_range(i.., "not a value this field takes");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        match parse_record(line) {
            Ok(r) => panic!("{line} parsed: {r:?}"),
            Err(m) => {
                for rust in [
                    "untagged", "enum", "u64", "f32", "sequence", "a map", "line 1",
                ] {
                    assert!(!m.contains(rust), "{line}: {m}");
                }
                m
            }
        }
    }

    #[test]
    fn good_lines() {
        let r = parse_record(r#"{"id": 7, "vector": [1, 2.5], "text": "t", "payload": {"a": 1}}"#)
            .unwrap();
        assert_eq!(
            (r.id, r.vector, r.text.as_deref()),
            (cairndb::Id::Int(7), vec![1.0, 2.5], Some("t"))
        );
        let r = parse_record(r#"{"vector": [1], "id": 3, "text": null}"#).unwrap();
        assert_eq!((r.id, r.text), (cairndb::Id::Int(3), None));
    }

    #[test]
    fn messages_name_the_field_and_what_it_takes() {
        let whole = format!("a whole number from 0 to {}", u64::MAX);
        let m = err(r#"{"id": -1, "vector": [1, 2]}"#);
        assert!(
            m.starts_with(&format!("field `id`: expected {whole}")),
            "{m}"
        );
        assert!(
            m.ends_with("or a string, found the negative number -1"),
            "{m}"
        );
        let m = err(r#"{"id": 1.5, "vector": [1, 2]}"#);
        assert!(
            m.starts_with("field `id`") && m.ends_with("found the fractional number 1.5"),
            "{m}"
        );
        for (id, found) in [
            ("[1]", "an array"),
            ("[]", "an empty array"),
            ("null", "null"),
            ("true", "`true`"),
            ("{\"a\": 1}", "an object"),
            (
                "18446744073709551616",
                "a number above 18446744073709551615",
            ),
            ("-3.0", "the negative number -3.0"),
            (
                "1e3",
                "the number 1000.0, written with a fraction or exponent",
            ),
            ("2.0", "the number 2.0, written with a fraction or exponent"),
        ] {
            let m = err(&format!(r#"{{"id": {id}, "vector": [1, 2]}}"#));
            assert_eq!(
                m,
                format!("field `id`: expected {whole} or a string, found {found}"),
                "{id}"
            );
        }
        // Both kinds of ids are read; which one a collection takes is checked by the caller.
        let r = parse_record(r#"{"id": "doc-1 #2 \"é\"", "vector": [1]}"#).unwrap();
        assert_eq!(r.id, "doc-1 #2 \"é\"");
        let u = parse_update(r#"{"id": "", "text": null}"#, false).unwrap();
        assert_eq!(u.id, "");
        let m = err(r#"{"vector": [1, 2]}"#);
        assert!(m.starts_with("missing field `id`"), "{m}");
        let m = err(r#"{"id": 1}"#);
        assert!(m.starts_with("missing field `vector`"), "{m}");
        assert_eq!(
            err(r#"{"id": 1, "vector": [1, "a"]}"#),
            r#"field `vector`: element 1 is the string "a", expected a number"#
        );
        assert_eq!(
            err(r#"{"id": 1, "vector": "x"}"#),
            r#"field `vector`: expected an array of numbers, found the string "x""#
        );
        assert_eq!(
            err(r#"{"id": 1, "vector": [1], "text": 5}"#),
            "field `text`: expected a string, found the number 5"
        );
        let m = err(r#"{"id": 1, "vector": [1], "payload": [1]}"#);
        assert!(
            m.starts_with("field `payload`: expected an object") && m.ends_with("found an array"),
            "{m}"
        );
        let m = err(r#"{"id": 1, "vector": [1], "paylod": {}}"#);
        assert!(m.starts_with("unknown field `paylod`"), "{m}");
        let m = err("[1, 2]");
        assert!(
            m.starts_with("expected a record") && m.ends_with("found an array"),
            "{m}"
        );
        let m = err(r#"{"id": 1, "vector": [1, 2]"#);
        assert!(
            m.starts_with("not valid JSON: EOF while parsing an object (column"),
            "{m}"
        );
    }

    #[test]
    fn a_refused_payload_value_is_named() {
        // Which values a payload holds is the library's business; whatever it refuses is
        // reported with its key and without serde's enum names.
        for v in [
            "null",
            "[1, 2]",
            "{\"b\": 1}",
            "[[]]",
            "18446744073709551615",
        ] {
            let line = format!(r#"{{"id": 1, "vector": [1], "payload": {{"a": {v}}}}}"#);
            if let Err(m) = parse_record(&line) {
                assert!(m.starts_with("field `payload.a`: "), "{line}: {m}");
                assert!(
                    !m.contains("untagged") && !m.contains("enum"),
                    "{line}: {m}"
                );
            }
        }
    }
}
