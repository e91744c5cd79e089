//! Records, payload values and search hits.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use super::id::Id;
use super::id::{IdType, MAX_ID_BYTES, str_key};
pub use super::value::Value;
use super::value::{Stored, StoredValue, validate_payload};

/// A record's metadata: field name → value, ordered by name.
pub type Payload = BTreeMap<String, Value>;

/// One stored item: the user's id, its embedding, optional text and a payload.
///
/// Upserting a record whose id exists replaces the whole record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's id: an integer or a string, as the collection's
    /// [`IdType`](crate::IdType) says.
    pub id: Id,
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
    pub fn new(id: impl Into<Id>, vector: impl Into<Vec<f32>>) -> Self {
        Record {
            id: id.into(),
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
    pub id: Id,
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

/// The encoded `StoredDoc` of a row with neither text nor payload fields. A segment whose
/// rows all have it writes a payload file without index or documents.
pub(crate) const EMPTY_DOC: &[u8] = &[0, 0];

/// The first byte of a document that starts with its record's string id (a plain document
/// starts with the postcard tag of its optional text: 0 or 1).
const ID_PREFIX: u8 = 2;

/// The text and payload of one record as stored in the WAL and in segment payload files:
/// postcard of `(Option<str>, Vec<(String, StoredValue)>)`, see `docs/file-format.md`; in a
/// collection of string ids, preceded by the id (`2`, varint length, UTF-8). The text is
/// borrowed when encoding and when decoding (it may be large: it is never copied).
pub(crate) struct StoredDoc;

#[derive(Serialize)]
struct EncDoc<'a> {
    text: Option<&'a str>,
    fields: Vec<(&'a String, Stored<'a>)>,
}

#[derive(Deserialize)]
struct DecDoc<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    fields: Vec<(String, StoredValue)>,
}

impl StoredDoc {
    /// The encoded document, in a buffer of exactly its size. Checks the payload first
    /// ([`Value::validate`]): a non-finite float or a value nested too deep is refused.
    /// With `id`, the document starts with that string id.
    pub(crate) fn encode(
        id: Option<&str>,
        text: Option<&str>,
        payload: &Payload,
    ) -> Result<Vec<u8>> {
        validate_payload(payload)?;
        let doc = EncDoc {
            text,
            fields: payload.iter().map(|(k, v)| (k, Stored(v, 0))).collect(),
        };
        let size = postcard::serialize_with_flavor(&doc, postcard::ser_flavors::Size::default())
            .map_err(|e| Error::InvalidArgument(format!("payload cannot be encoded: {e}")))?;
        let mut out = Vec::with_capacity(size + id.map_or(0, |s| s.len() + 11));
        if let Some(id) = id {
            out.push(ID_PREFIX);
            let mut n = id.len() as u64;
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
            out.extend_from_slice(id.as_bytes());
        }
        postcard::to_extend(&doc, out)
            .map_err(|e| Error::InvalidArgument(format!("payload cannot be encoded: {e}")))
    }

    /// Splits a document into its string id (if it starts with one) and the rest; `None`
    /// when the id prefix is malformed.
    pub(crate) fn split_id(bytes: &[u8]) -> Option<(Option<&str>, &[u8])> {
        if bytes.first() != Some(&ID_PREFIX) {
            return Some((None, bytes));
        }
        let mut len = 0u64;
        let mut at = 1;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(at)?;
            at += 1;
            len |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                let end = at.checked_add(usize::try_from(len).ok()?)?;
                let id = std::str::from_utf8(bytes.get(at..end)?).ok()?;
                return Some((Some(id), &bytes[end..]));
            }
        }
        None
    }

    /// The string id a document starts with: `Some(None)` for a document without one,
    /// `None` when the bytes are not a valid document prefix.
    pub(crate) fn id(bytes: &[u8]) -> Option<Option<&str>> {
        StoredDoc::split_id(bytes).map(|(id, _)| id)
    }

    /// Checks that the document of a row with key `key` fits a collection of `id_type` ids:
    /// in a collection of string ids it starts with a valid string id (1 to
    /// [`MAX_ID_BYTES`](super::id::MAX_ID_BYTES) bytes) whose key is `key`; in one of
    /// integer ids it has no string id. The error says what is wrong (for a `Corruption`).
    pub(crate) fn check_id(
        id_type: IdType,
        key: u64,
        bytes: &[u8],
    ) -> std::result::Result<(), String> {
        match (id_type, StoredDoc::id(bytes)) {
            (_, None) => Err(format!("key {key}: undecodable string id")),
            (IdType::Int, Some(None)) => Ok(()),
            (IdType::Int, Some(Some(_))) => Err(format!(
                "key {key}: a string id in a collection of integer ids"
            )),
            (IdType::Str, Some(None)) => Err(format!("key {key}: no string id")),
            (IdType::Str, Some(Some(s))) => {
                if s.is_empty() || s.len() > MAX_ID_BYTES {
                    Err(format!("key {key}: a string id of {} bytes", s.len()))
                } else if str_key(s) != key {
                    Err(format!(
                        "key {key}: the string id {:?} has the key {}",
                        &s[..s.floor_char_boundary(64)],
                        str_key(s)
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Decodes; `None` when the bytes are not a valid document.
    pub(crate) fn decode(bytes: &[u8]) -> Option<(Option<String>, Payload)> {
        StoredDoc::decode_ref(bytes).map(|(text, payload)| (text.map(Cow::into_owned), payload))
    }

    /// Decodes, the text borrowed from `bytes`; `None` when they are not a valid document
    /// (including values nested deeper than [`Value::MAX_DEPTH`]: decoding never recurses
    /// past it).
    pub(crate) fn decode_ref(bytes: &[u8]) -> Option<(Option<Cow<'_, str>>, Payload)> {
        let (_, bytes) = StoredDoc::split_id(bytes)?;
        let doc: DecDoc<'_> = postcard::from_bytes(bytes).ok()?;
        let mut payload = Payload::new();
        for (k, StoredValue(v)) in doc.fields {
            payload.insert(k, v);
        }
        Some((doc.text, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_doc_is_the_encoding_of_no_text_and_no_fields() {
        let empty = StoredDoc::encode(None, None, &Payload::new()).unwrap();
        assert_eq!(empty, EMPTY_DOC);
        assert_ne!(
            StoredDoc::encode(None, Some(""), &Payload::new()).unwrap(),
            EMPTY_DOC
        );
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
        p.insert("a".into(), Value::from(vec!["x"]));
        p.insert("b".into(), Value::Float(-1.5));
        let bytes = StoredDoc::encode(None, Some("t"), &p).unwrap();
        assert_eq!(StoredDoc::decode(&bytes), Some((Some("t".into()), p)));
        assert_eq!(StoredDoc::decode(&[0xff, 0xff, 0xff]), None);
    }

    /// A document written by the previous layout (variants 0–4 only; 4 a list of strings),
    /// bytes written out by hand: it decodes to the same payload, the list as a JSON list of
    /// strings. Scalars are still encoded exactly as before.
    #[test]
    fn old_layout_documents_decode_unchanged() {
        let mut old = vec![1, 2, b'h', b'i', 5];
        old.extend([1, b'b', 3, 1]); // Bool(true)
        old.extend([1, b'f', 2]); // Float(0.5)
        old.extend(0.5f64.to_le_bytes());
        old.extend([1, b'i', 1, 5]); // Int(-3), zigzag
        old.extend([1, b'l', 4, 2, 1, b'x', 1, b'y']); // StrList(["x", "y"])
        old.extend([1, b's', 0, 2, b'e', b'n']); // Str("en")
        let mut want = Payload::new();
        want.insert("b".into(), Value::Bool(true));
        want.insert("f".into(), Value::Float(0.5));
        want.insert("i".into(), Value::Int(-3));
        want.insert("l".into(), Value::from(vec!["x", "y"]));
        want.insert("s".into(), Value::from("en"));
        assert_eq!(
            StoredDoc::decode(&old),
            Some((Some("hi".into()), want.clone()))
        );
        // Without the list, today's encoder writes the very same bytes.
        want.remove("l");
        let mut scalars = old.clone();
        let at = scalars.windows(2).position(|w| w == [b'l', 4]).unwrap() - 1;
        scalars.drain(at..at + 8);
        scalars[4] = 4;
        assert_eq!(StoredDoc::encode(None, Some("hi"), &want).unwrap(), scalars);
    }

    #[test]
    fn stored_doc_round_trips_json_values() {
        let j = r#"{"n":null,"u":18446744073709551615,"i":-9223372036854775808,"o":{"k":[1,2.5,"x",null,{"é":{}}],"e":[]}}"#;
        let p: Payload = serde_json::from_str(j).unwrap();
        let bytes = StoredDoc::encode(None, None, &p).unwrap();
        assert_eq!(StoredDoc::decode(&bytes), Some((None, p)));
        let mut bad = Payload::new();
        bad.insert("x".into(), Value::Float(f64::NEG_INFINITY));
        let e = StoredDoc::encode(None, None, &bad).unwrap_err().to_string();
        assert!(e.contains("`x`"), "{e}");
    }

    #[test]
    fn documents_carry_string_ids() {
        let mut p = Payload::new();
        p.insert("a".into(), Value::Int(1));
        let plain = StoredDoc::encode(None, Some("t"), &p).unwrap();
        for id in ["x", "doc-1#3", &"é".repeat(200)] {
            let bytes = StoredDoc::encode(Some(id), Some("t"), &p).unwrap();
            assert_eq!(StoredDoc::id(&bytes), Some(Some(id)));
            assert_eq!(StoredDoc::split_id(&bytes).unwrap().1, plain.as_slice());
            assert_eq!(
                StoredDoc::decode(&bytes),
                Some((Some("t".into()), p.clone()))
            );
            // Cut anywhere inside the prefix: refused, never misread.
            for cut in 1..bytes.len() - plain.len() {
                assert_eq!(StoredDoc::id(&bytes[..cut]), None, "{cut}");
            }
        }
        assert_eq!(StoredDoc::id(&plain), Some(None));
        assert_eq!(StoredDoc::id(EMPTY_DOC), Some(None));
        // A prefix whose bytes are not UTF-8, or whose length overflows.
        assert_eq!(StoredDoc::id(&[2, 1, 0xff, 0, 0]), None);
        assert_eq!(
            StoredDoc::id(&[
                2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ]),
            None
        );
    }

    #[test]
    fn check_id_wants_the_id_of_the_key_and_the_kind() {
        let p = Payload::new();
        let doc = StoredDoc::encode(Some("doc-1"), None, &p).unwrap();
        let key = str_key("doc-1");
        assert_eq!(StoredDoc::check_id(IdType::Str, key, &doc), Ok(()));
        let e = StoredDoc::check_id(IdType::Str, key ^ 1, &doc).unwrap_err();
        assert!(e.contains("\"doc-1\" has the key"), "{e}");
        assert!(StoredDoc::check_id(IdType::Int, key, &doc).is_err());
        let plain = StoredDoc::encode(None, Some("t"), &p).unwrap();
        assert_eq!(StoredDoc::check_id(IdType::Int, 7, &plain), Ok(()));
        assert!(StoredDoc::check_id(IdType::Str, 7, &plain).is_err());
        // The empty id and one over the limit, each under its own key.
        let empty = [2, 0, 0, 0];
        assert!(StoredDoc::check_id(IdType::Str, str_key(""), &empty).is_err());
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let doc = StoredDoc::encode(Some(&long), None, &p).unwrap();
        assert!(StoredDoc::check_id(IdType::Str, str_key(&long), &doc).is_err());
        assert!(StoredDoc::check_id(IdType::Str, 0, &[2, 5, b'a']).is_err());
    }
}
