//! Records, payload values and search hits.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A payload field value.
///
/// In JSON a value is written plainly: `"en"`, `2020`, `0.5`, `true`, `["a", "b"]`. A JSON
/// integer becomes `Int`, a number with a fraction or exponent becomes `Float`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A string (keyword).
    Str(String),
    /// A signed integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings (tags); a filter on it matches any element.
    StrList(Vec<String>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::StrList(v)
    }
}
impl From<Vec<&str>> for Value {
    fn from(v: Vec<&str>) -> Self {
        Value::StrList(v.into_iter().map(str::to_owned).collect())
    }
}

/// A record's metadata: field name → value, ordered by name.
pub type Payload = BTreeMap<String, Value>;

/// One stored item: the user's id, its embedding, optional text and a payload.
///
/// Upserting a record whose id exists replaces the whole record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The user's key.
    pub id: u64,
    /// The embedding; its length must equal the collection's dimension.
    pub vector: Vec<f32>,
    /// Optional text stored with the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Metadata fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub payload: Payload,
}

impl Record {
    /// A record with a vector and no text or payload.
    pub fn new(id: u64, vector: impl Into<Vec<f32>>) -> Self {
        Record {
            id,
            vector: vector.into(),
            text: None,
            payload: Payload::new(),
        }
    }

    /// Sets the text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Adds or replaces one payload field.
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.payload.insert(name.into(), value.into());
        self
    }
}

impl From<Record> for Vec<Record> {
    fn from(r: Record) -> Self {
        vec![r]
    }
}

/// One search result.
///
/// `score` is the similarity for a vector request, the BM25 score for a text request, the
/// fused score for a hybrid one, or the re-ranker's score when one was used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The record id.
    pub id: u64,
    /// Similarity, higher is better: cosine similarity, dot product, or `-‖q - x‖²`
    /// (see [`Metric`](crate::Metric)).
    pub score: f32,
    /// The record's text, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The record's payload, when the request asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// For a hybrid request: each leg's rank and raw score, and the fused score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legs: Option<Legs>,
}

/// How the legs of a hybrid request saw one hit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Legs {
    /// The vector leg's rank and similarity; `None` if that leg did not return the record.
    pub vector: Option<LegScore>,
    /// The text leg's rank and BM25 score; `None` if that leg did not return the record.
    pub text: Option<LegScore>,
    /// The fused score (equal to the hit's `score` unless a re-ranker re-scored it).
    pub fused: f32,
}

/// A leg's view of one fused record: its 1-based rank and raw score in that leg.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LegScore {
    /// Position in the leg's list, from 1.
    pub rank: usize,
    /// The leg's own score (similarity, or BM25).
    pub score: f32,
}

/// The binary (postcard) form of a value: postcard is not self-describing, so the JSON-friendly
/// untagged [`Value`] is mirrored by this externally tagged enum on disk.
#[derive(Serialize, Deserialize)]
pub(crate) enum StoredValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    StrList(Vec<String>),
}

/// The encoded `StoredDoc` of a row with neither text nor payload fields. A segment whose
/// rows all have it writes a payload file without index or documents.
pub(crate) const EMPTY_DOC: &[u8] = &[0, 0];

/// The text and payload of one record as stored in the WAL and in segment payload files. The
/// text is borrowed when encoding and when decoding (it may be large: it is never copied).
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredDoc<'a> {
    #[serde(borrow)]
    pub text: Option<Cow<'a, str>>,
    pub fields: Vec<(String, StoredValue)>,
}

impl StoredDoc<'_> {
    /// The encoded document, in a buffer of exactly its size.
    pub(crate) fn encode(text: Option<&str>, payload: &Payload) -> Vec<u8> {
        let doc = StoredDoc {
            text: text.map(Cow::Borrowed),
            fields: payload
                .iter()
                .map(|(k, v)| {
                    let sv = match v {
                        Value::Str(s) => StoredValue::Str(s.clone()),
                        Value::Int(i) => StoredValue::Int(*i),
                        Value::Float(f) => StoredValue::Float(*f),
                        Value::Bool(b) => StoredValue::Bool(*b),
                        Value::StrList(l) => StoredValue::StrList(l.clone()),
                    };
                    (k.clone(), sv)
                })
                .collect(),
        };
        // Serializing strings and numbers into a Vec cannot fail.
        let size = postcard::serialize_with_flavor(&doc, postcard::ser_flavors::Size::default())
            .unwrap_or(0);
        postcard::to_extend(&doc, Vec::with_capacity(size)).unwrap_or_default()
    }

    /// Decodes; `None` when the bytes are not a valid document.
    pub(crate) fn decode(bytes: &[u8]) -> Option<(Option<String>, Payload)> {
        StoredDoc::decode_ref(bytes).map(|(text, payload)| (text.map(Cow::into_owned), payload))
    }

    /// Decodes, the text borrowed from `bytes`; `None` when they are not a valid document.
    pub(crate) fn decode_ref(bytes: &[u8]) -> Option<(Option<Cow<'_, str>>, Payload)> {
        let doc: StoredDoc<'_> = postcard::from_bytes(bytes).ok()?;
        let payload = doc
            .fields
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    StoredValue::Str(s) => Value::Str(s),
                    StoredValue::Int(i) => Value::Int(i),
                    StoredValue::Float(f) => Value::Float(f),
                    StoredValue::Bool(b) => Value::Bool(b),
                    StoredValue::StrList(l) => Value::StrList(l),
                };
                (k, v)
            })
            .collect();
        Some((doc.text, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_doc_is_the_encoding_of_no_text_and_no_fields() {
        let empty = StoredDoc::encode(None, &Payload::new());
        assert_eq!(empty, EMPTY_DOC);
        assert_ne!(StoredDoc::encode(Some(""), &Payload::new()), EMPTY_DOC);
    }

    #[test]
    fn value_json_is_plain() {
        let r = Record::new(7, vec![1.0, 2.0])
            .with_text("hi")
            .with_field("lang", "en")
            .with_field("year", 2020)
            .with_field("score", 0.5)
            .with_field("draft", false)
            .with_field("tags", vec!["a", "b"]);
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"id":7,"vector":[1.0,2.0],"text":"hi","payload":{"draft":false,"lang":"en","score":0.5,"tags":["a","b"],"year":2020}}"#
        );
        let back: Record = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn stored_doc_round_trips_and_rejects_garbage() {
        let mut p = Payload::new();
        p.insert("a".into(), Value::StrList(vec!["x".into()]));
        p.insert("b".into(), Value::Float(-1.5));
        let bytes = StoredDoc::encode(Some("t"), &p);
        assert_eq!(StoredDoc::decode(&bytes), Some((Some("t".into()), p)));
        assert_eq!(StoredDoc::decode(&[0xff, 0xff, 0xff]), None);
    }
}
