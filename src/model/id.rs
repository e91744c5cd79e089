//! Record ids: unsigned integers or strings, chosen per collection ([`IdType`]).
//!
//! Inside the engine every record is found by a 64-bit *key*: an integer id is its own key,
//! a string id's key is a fixed hash of its bytes (XXH3-64, seed 0: stable across processes,
//! builds and machines; it is on disk). Lookups, the log, segments' id tables and tombstones
//! all work on keys, so a string id costs no string compare per search candidate. The
//! string itself is stored at the front of the record's document and read back for results.
//!
//! Two different strings with the same key (a 64-bit hash collision: about one chance in
//! 3.7 · 10¹⁹⁄n² for n ids) cannot both be stored: the second is refused with
//! [`Error::IdCollision`](crate::Error::IdCollision), and nothing is replaced.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The longest string id, in bytes of UTF-8.
pub const MAX_ID_BYTES: usize = 1024;

/// Which kind of ids a collection holds, chosen at creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdType {
    /// Unsigned 64-bit integers (the default).
    #[default]
    Int,
    /// UTF-8 strings of 1 to [`MAX_ID_BYTES`] bytes.
    Str,
}

impl IdType {
    /// `int` or `str`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::Int => "int",
            IdType::Str => "str",
        }
    }

    pub(crate) fn is_int_ref(&self) -> bool {
        *self == IdType::Int
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IdType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "int" => Ok(IdType::Int),
            "str" => Ok(IdType::Str),
            _ => Err(Error::InvalidArgument(format!(
                "id type must be `int` or `str`, got `{s}`"
            ))),
        }
    }
}

/// A record id: an unsigned integer or a string, as the collection's [`IdType`] says.
///
/// Converts from `u64`, `&str` and `String`, and compares with them:
///
/// ```
/// use cairndb::Id;
/// assert_eq!(Id::from(7), 7);
/// assert_eq!(Id::from("doc-1#3"), "doc-1#3");
/// assert_eq!(Id::from(7).to_string(), "7");
/// ```
///
/// In JSON an id is a number or a string (`7`, `"doc-1#3"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    /// An integer id.
    Int(u64),
    /// A string id.
    Str(String),
}

impl Id {
    /// The integer, for an integer id.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Id::Int(n) => Some(*n),
            Id::Str(_) => None,
        }
    }

    /// The string, for a string id.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Id::Int(_) => None,
            Id::Str(s) => Some(s),
        }
    }

    /// The kind of this id.
    pub fn id_type(&self) -> IdType {
        match self {
            Id::Int(_) => IdType::Int,
            Id::Str(_) => IdType::Str,
        }
    }

    /// The engine's 64-bit key of this id: an integer is its own key; a string's is the
    /// XXH3-64 hash of its UTF-8 bytes (seed 0). Scans return records in ascending key order.
    pub fn key(&self) -> u64 {
        match self {
            Id::Int(n) => *n,
            Id::Str(s) => str_key(s),
        }
    }

    /// Checks that this id fits a collection of ids of kind `want` (and a string's length).
    pub(crate) fn check(&self, want: IdType, collection: &str) -> Result<()> {
        match (self, want) {
            (Id::Int(_), IdType::Int) => Ok(()),
            (Id::Str(s), IdType::Str) => check_str(s),
            (Id::Str(s), IdType::Int) => Err(Error::InvalidArgument(format!(
                "collection `{collection}` has integer ids; got the string id {}",
                quoted(s)
            ))),
            (Id::Int(n), IdType::Str) => Err(Error::InvalidArgument(format!(
                "collection `{collection}` has string ids; got the integer id {n} (pass it as the string \"{n}\" if that is its id)"
            ))),
        }
    }
}

/// The key of a string id: XXH3-64 of its bytes, seed 0 (truncated by the fault-injection
/// seam's test switch, to provoke collisions).
pub(crate) fn str_key(s: &str) -> u64 {
    let k = xxhash_rust::xxh3::xxh3_64(s.as_bytes());
    #[cfg(feature = "fault-injection")]
    let k = crate::io::faults::truncate_id_key(k);
    k
}

fn check_str(s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(Error::InvalidArgument("a string id cannot be empty".into()));
    }
    if s.len() > MAX_ID_BYTES {
        return Err(Error::InvalidArgument(format!(
            "string id {}… is {} bytes long; ids are at most {MAX_ID_BYTES} bytes",
            quoted(&s[..s.floor_char_boundary(40)]),
            s.len()
        )));
    }
    Ok(())
}

/// A string as a JSON string literal, for messages.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

impl fmt::Display for Id {
    /// The integer in decimal, or the string as it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Int(n) => write!(f, "{n}"),
            Id::Str(s) => f.write_str(s),
        }
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Int(n)
    }
}

impl From<&u64> for Id {
    fn from(n: &u64) -> Self {
        Id::Int(*n)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id::Str(s.to_owned())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Id::Str(s)
    }
}

impl From<&String> for Id {
    fn from(s: &String) -> Self {
        Id::Str(s.clone())
    }
}

impl From<Cow<'_, str>> for Id {
    fn from(s: Cow<'_, str>) -> Self {
        Id::Str(s.into_owned())
    }
}

impl From<&Id> for Id {
    fn from(id: &Id) -> Self {
        id.clone()
    }
}

impl PartialEq<u64> for Id {
    fn eq(&self, other: &u64) -> bool {
        matches!(self, Id::Int(n) if n == other)
    }
}

impl PartialEq<Id> for u64 {
    fn eq(&self, other: &Id) -> bool {
        other == self
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        matches!(self, Id::Str(s) if s == other)
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<String> for Id {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Id::Int(n) => s.serialize_u64(*n),
            Id::Str(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id: an unsigned integer or a string")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Id, E> {
                Ok(Id::Int(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Id, E> {
                u64::try_from(n).map(Id::Int).map_err(|_| {
                    E::custom(format!(
                        "id {n} is negative; ids are unsigned integers or strings"
                    ))
                })
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Id, E> {
                Err(E::custom(format!(
                    "id {n} is not an integer; ids are unsigned integers or strings"
                )))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Id, E> {
                Ok(Id::Str(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<Id, E> {
                Ok(Id::Str(s))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable() {
        // On disk: these values must never change.
        assert_eq!(Id::from(42).key(), 42);
        assert_eq!(str_key(""), 0x2d06800538d394c2);
        assert_eq!(str_key("doc-1"), xxhash_rust::xxh3::xxh3_64(b"doc-1"));
    }

    #[test]
    fn json_forms() {
        let ids: Vec<Id> = serde_json::from_str(r#"[7, "a#1", 18446744073709551615]"#).unwrap();
        assert_eq!(ids, vec![Id::Int(7), Id::from("a#1"), Id::Int(u64::MAX)]);
        assert_eq!(
            serde_json::to_string(&ids).unwrap(),
            r#"[7,"a#1",18446744073709551615]"#
        );
        for bad in ["-1", "1.5", "null", "[1]", "true"] {
            let e = serde_json::from_str::<Id>(bad).unwrap_err().to_string();
            assert!(e.contains("unsigned integer"), "{bad}: {e}");
        }
    }

    #[test]
    fn checks() {
        assert!(Id::from("x").check(IdType::Str, "c").is_ok());
        assert!(Id::from(1).check(IdType::Int, "c").is_ok());
        let e = Id::from("x")
            .check(IdType::Int, "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("integer ids") && e.contains("\"x\""), "{e}");
        let e = Id::from(5).check(IdType::Str, "c").unwrap_err().to_string();
        assert!(e.contains("string ids") && e.contains("\"5\""), "{e}");
        assert!(Id::from("").check(IdType::Str, "c").is_err());
        let long = "é".repeat(MAX_ID_BYTES / 2);
        assert!(Id::from(long.as_str()).check(IdType::Str, "c").is_ok());
        let e = Id::from(format!("{long}x"))
            .check(IdType::Str, "c")
            .unwrap_err();
        assert!(e.to_string().contains("1025 bytes"), "{e}");
    }
}
