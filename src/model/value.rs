//! Payload values: any JSON value, and its binary (postcard) form on disk.
//!
//! A value nests at most [`Value::MAX_DEPTH`] lists/objects deep. Everything that walks a
//! value — drop, clone, equality, validation, the JSON conversions, the filter matcher and the
//! indexes — is iterative or stops at the limit, so a value built deeper in Rust is refused
//! with an error (at upsert, serialization, decoding) and never overflows the stack.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A payload value: any JSON value.
///
/// In JSON (serde) a value is written plainly: `null`, `true`, `2020`, `0.5`, `"en"`,
/// `[1, "a", null]`, `{"a": {"b": 1}}`. A JSON integer becomes [`Int`](Value::Int) (or
/// [`UInt`](Value::UInt) above `i64::MAX`), a number with a fraction or exponent becomes
/// [`Float`](Value::Float); each is written back the same way, so values round-trip exactly.
///
/// Rules, checked at upsert ([`Error::InvalidArgument`] naming the field path): floats are
/// finite (JSON has no NaN or infinity), and lists/objects nest at most
/// [`MAX_DEPTH`](Value::MAX_DEPTH) levels.
#[derive(Default)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An integer above `i64::MAX` (up to `u64::MAX`); smaller integers are [`Int`](Value::Int).
    UInt(u64),
    /// A finite floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A list of values (of any types); a filter on it matches when any element matches.
    List(Vec<Value>),
    /// An object: key → value, ordered by key. Filters address nested keys with dots
    /// (`meta.author`).
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// How deep lists and objects may nest in one field's value: a scalar has depth 0, a list
    /// or object one more than its deepest element (an empty one has depth 1).
    pub const MAX_DEPTH: usize = 64;

    /// An integer value: [`Int`](Value::Int) when it fits in `i64`, else [`UInt`](Value::UInt).
    pub fn from_u64(v: u64) -> Value {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }

    /// The value as a number (integers converted to `f64`, rounding beyond 2^53).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// Whether this is a list or an object.
    pub fn is_container(&self) -> bool {
        matches!(self, Value::List(_) | Value::Object(_))
    }

    /// The value as a `serde_json::Value`. Lists and objects nested deeper than
    /// [`MAX_DEPTH`](Self::MAX_DEPTH) (never stored: refused at upsert) become `null`, so the
    /// result is safe to drop (serde_json drops recursively).
    pub fn to_json(&self) -> serde_json::Value {
        fold(
            self,
            Some(Value::MAX_DEPTH),
            |v| match v {
                Value::Null => serde_json::Value::Null,
                Value::Bool(b) => serde_json::Value::Bool(*b),
                Value::Int(i) => serde_json::Value::from(*i),
                Value::UInt(u) => serde_json::Value::from(*u),
                // A non-finite float has no JSON form: null (it is refused at upsert).
                Value::Float(x) => serde_json::Number::from_f64(*x)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Str(s) => serde_json::Value::String(s.clone()),
                Value::List(_) | Value::Object(_) => serde_json::Value::Null,
            },
            serde_json::Value::Array,
            |kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.clone(), v)).collect()),
        )
    }

    /// Checks the rules of a stored value (finite floats, nesting within
    /// [`MAX_DEPTH`](Self::MAX_DEPTH)); `field` names the value in the error.
    pub fn validate(&self, field: &str) -> Result<()> {
        // Containers still to visit: (value, its depth, index of its path segment in `segs`).
        // Paths are kept as a parent-linked list and spelled out only for an error.
        let mut segs: Vec<(Option<usize>, Seg<'_>)> = vec![(None, Seg::Key(field))];
        let mut stack: Vec<(&Value, usize, usize)> = Vec::new();
        let check = |v: &Value, depth: usize| -> std::result::Result<(), String> {
            match v {
                Value::Float(x) if !x.is_finite() => Err(format!(
                    "{x} is not a finite number (JSON has no NaN or infinity)"
                )),
                Value::List(_) | Value::Object(_) if depth + 1 > Value::MAX_DEPTH => Err(format!(
                    "nested deeper than {} levels of lists/objects",
                    Value::MAX_DEPTH
                )),
                _ => Ok(()),
            }
        };
        let fail = |segs: &[(Option<usize>, Seg<'_>)], at: usize, msg: String| {
            Err(Error::InvalidArgument(format!(
                "payload field `{}`: {msg}",
                spell(segs, at)
            )))
        };
        if let Err(msg) = check(self, 0) {
            return fail(&segs, 0, msg);
        }
        if self.is_container() {
            stack.push((self, 0, 0));
        }
        while let Some((v, depth, at)) = stack.pop() {
            match v {
                Value::List(l) => {
                    for (i, c) in l.iter().enumerate() {
                        if let Err(msg) = check(c, depth + 1) {
                            segs.push((Some(at), Seg::Index(i)));
                            return fail(&segs, segs.len() - 1, msg);
                        }
                        if c.is_container() {
                            segs.push((Some(at), Seg::Index(i)));
                            stack.push((c, depth + 1, segs.len() - 1));
                        }
                    }
                }
                Value::Object(o) => {
                    for (k, c) in o {
                        if let Err(msg) = check(c, depth + 1) {
                            segs.push((Some(at), Seg::Key(k)));
                            return fail(&segs, segs.len() - 1, msg);
                        }
                        if c.is_container() {
                            segs.push((Some(at), Seg::Key(k)));
                            stack.push((c, depth + 1, segs.len() - 1));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks every field of a payload (see [`Value::validate`]).
pub(crate) fn validate_payload(payload: &BTreeMap<String, Value>) -> Result<()> {
    payload.iter().try_for_each(|(k, v)| match v {
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Str(_) => Ok(()),
        v => v.validate(k),
    })
}

/// One step of a path, for error messages.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The path ending at `segs[at]`: keys joined with dots, list indexes in brackets.
fn spell(segs: &[(Option<usize>, Seg<'_>)], at: usize) -> String {
    let mut chain = Vec::new();
    let mut cur = Some(at);
    while let Some(i) = cur {
        chain.push(segs[i].1);
        cur = segs[i].0;
    }
    let mut out = String::new();
    for (n, seg) in chain.iter().rev().enumerate() {
        match seg {
            Seg::Key(k) if n == 0 => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Rebuilds a value bottom-up without recursion: `leaf` maps scalars, `list` and `object`
/// assemble containers from their converted elements. With a `limit`, containers inside
/// `limit` containers are not entered: `leaf` maps them.
fn fold<'a, T>(
    root: &'a Value,
    limit: Option<usize>,
    mut leaf: impl FnMut(&'a Value) -> T,
    mut list: impl FnMut(Vec<T>) -> T,
    mut object: impl FnMut(Vec<(&'a String, T)>) -> T,
) -> T {
    enum Frame<'a, T> {
        List(std::slice::Iter<'a, Value>, Vec<T>),
        Object(
            btree_map::Iter<'a, String, Value>,
            Vec<(&'a String, T)>,
            Option<&'a String>,
        ),
    }
    let mut stack: Vec<Frame<'a, T>> = Vec::new();
    let mut next = Some(root);
    loop {
        let mut produced = None;
        if let Some(v) = next.take() {
            match v {
                v if v.is_container() && limit.is_some_and(|l| stack.len() >= l) => {
                    produced = Some(leaf(v))
                }
                Value::List(l) => stack.push(Frame::List(l.iter(), Vec::with_capacity(l.len()))),
                Value::Object(o) => {
                    stack.push(Frame::Object(o.iter(), Vec::with_capacity(o.len()), None))
                }
                v => produced = Some(leaf(v)),
            }
        }
        loop {
            let Some(top) = stack.last_mut() else {
                // Only reached once the root is done.
                return produced.unwrap_or_else(|| leaf(root));
            };
            if let Some(t) = produced.take() {
                match top {
                    Frame::List(_, out) => out.push(t),
                    Frame::Object(_, out, key) => {
                        if let Some(k) = key.take() {
                            out.push((k, t));
                        }
                    }
                }
            }
            let child = match top {
                Frame::List(it, _) => it.next(),
                Frame::Object(it, _, key) => it.next().map(|(k, v)| {
                    *key = Some(k);
                    v
                }),
            };
            if let Some(c) = child {
                next = Some(c);
                break;
            }
            produced = match stack.pop() {
                Some(Frame::List(_, out)) => Some(list(out)),
                Some(Frame::Object(_, out, _)) => Some(object(out)),
                None => None,
            };
        }
    }
}

impl Clone for Value {
    /// Iterative: a value of any depth clones without deep recursion.
    fn clone(&self) -> Self {
        fold(
            self,
            None,
            |v| match v {
                Value::Null => Value::Null,
                Value::Bool(b) => Value::Bool(*b),
                Value::Int(i) => Value::Int(*i),
                Value::UInt(u) => Value::UInt(*u),
                Value::Float(x) => Value::Float(*x),
                Value::Str(s) => Value::Str(s.clone()),
                Value::List(_) | Value::Object(_) => Value::Null,
            },
            Value::List,
            |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.clone(), v)).collect()),
        )
    }
}

impl PartialEq for Value {
    /// Structural equality (floats with `==`); iterative.
    fn eq(&self, other: &Self) -> bool {
        let mut stack = vec![(self, other)];
        while let Some(pair) = stack.pop() {
            let same = match pair {
                (Value::Null, Value::Null) => true,
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Int(a), Value::Int(b)) => a == b,
                (Value::UInt(a), Value::UInt(b)) => a == b,
                (Value::Float(a), Value::Float(b)) => a == b,
                (Value::Str(a), Value::Str(b)) => a == b,
                (Value::List(a), Value::List(b)) => {
                    a.len() == b.len() && {
                        stack.extend(a.iter().zip(b));
                        true
                    }
                }
                (Value::Object(a), Value::Object(b)) => {
                    a.len() == b.len()
                        && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                            stack.push((va, vb));
                            ka == kb
                        })
                }
                _ => false,
            };
            if !same {
                return false;
            }
        }
        true
    }
}

impl fmt::Debug for Value {
    /// Like a derived `Debug`; levels past [`Value::MAX_DEPTH`] print as `…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn go(v: &Value, depth: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if depth > Value::MAX_DEPTH {
                return f.write_str("…");
            }
            match v {
                Value::Null => f.write_str("Null"),
                Value::Bool(b) => write!(f, "Bool({b:?})"),
                Value::Int(i) => write!(f, "Int({i:?})"),
                Value::UInt(u) => write!(f, "UInt({u:?})"),
                Value::Float(x) => write!(f, "Float({x:?})"),
                Value::Str(s) => write!(f, "Str({s:?})"),
                Value::List(l) => {
                    f.write_str("List([")?;
                    for (i, c) in l.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        go(c, depth + 1, f)?;
                    }
                    f.write_str("])")
                }
                Value::Object(o) => {
                    f.write_str("Object({")?;
                    for (i, (k, c)) in o.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{k:?}: ")?;
                        go(c, depth + 1, f)?;
                    }
                    f.write_str("})")
                }
            }
        }
        go(self, 0, f)
    }
}

impl Drop for Value {
    /// Iterative: nested lists and objects are taken apart on a heap stack, so a value of any
    /// depth drops without deep recursion.
    fn drop(&mut self) {
        fn take_children(v: &mut Value, out: &mut Vec<Value>) {
            match v {
                Value::List(l) if l.iter().any(Value::is_container) => out.append(l),
                Value::Object(o) if o.values().any(Value::is_container) => {
                    out.extend(std::mem::take(o).into_values())
                }
                _ => {}
            }
        }
        let mut stack = Vec::new();
        take_children(self, &mut stack);
        while let Some(mut v) = stack.pop() {
            // `v` holds no nested containers when it is dropped at the end of this iteration.
            take_children(&mut v, &mut stack);
        }
    }
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
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::from_u64(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
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
impl From<()> for Value {
    fn from((): ()) -> Self {
        Value::Null
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::List(v.into_iter().map(Value::Str).collect())
    }
}
impl From<Vec<&str>> for Value {
    fn from(v: Vec<&str>) -> Self {
        Value::List(v.into_iter().map(Value::from).collect())
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}
impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Self {
        Value::Object(v)
    }
}
impl From<&Value> for serde_json::Value {
    fn from(v: &Value) -> Self {
        v.to_json()
    }
}
impl From<Value> for serde_json::Value {
    fn from(v: Value) -> Self {
        v.to_json()
    }
}

impl TryFrom<serde_json::Value> for Value {
    type Error = Error;

    /// Converts a JSON value; refuses one nested deeper than [`Value::MAX_DEPTH`].
    fn try_from(v: serde_json::Value) -> Result<Value> {
        Value::try_from(&v)
    }
}

impl TryFrom<&serde_json::Value> for Value {
    type Error = Error;

    /// Converts a JSON value; refuses one nested deeper than [`Value::MAX_DEPTH`].
    fn try_from(v: &serde_json::Value) -> Result<Value> {
        // Bottom-up with a heap stack (like `fold`), checking the depth on the way down.
        enum Frame<'a> {
            List(std::slice::Iter<'a, serde_json::Value>, Vec<Value>),
            Object(
                serde_json::map::Iter<'a>,
                BTreeMap<String, Value>,
                Option<&'a String>,
            ),
        }
        let scalar = |v: &serde_json::Value| match v {
            serde_json::Value::Null => Ok(Value::Null),
            serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
            serde_json::Value::Number(n) => number(n),
            serde_json::Value::String(s) => Ok(Value::Str(s.clone())),
            _ => Ok(Value::Null),
        };
        let mut stack: Vec<Frame<'_>> = Vec::new();
        let mut next = Some(v);
        loop {
            let mut produced = None;
            if let Some(v) = next.take() {
                if matches!(
                    v,
                    serde_json::Value::Array(_) | serde_json::Value::Object(_)
                ) && stack.len() >= Value::MAX_DEPTH
                {
                    return Err(too_deep());
                }
                match v {
                    serde_json::Value::Array(l) => {
                        stack.push(Frame::List(l.iter(), Vec::with_capacity(l.len())))
                    }
                    serde_json::Value::Object(o) => {
                        stack.push(Frame::Object(o.iter(), BTreeMap::new(), None))
                    }
                    v => produced = Some(scalar(v)?),
                }
            }
            loop {
                let Some(top) = stack.last_mut() else {
                    return match produced {
                        Some(v) => Ok(v),
                        None => scalar(v),
                    };
                };
                if let Some(t) = produced.take() {
                    match top {
                        Frame::List(_, out) => out.push(t),
                        Frame::Object(_, out, key) => {
                            if let Some(k) = key.take() {
                                out.insert(k.clone(), t);
                            }
                        }
                    }
                }
                let child = match top {
                    Frame::List(it, _) => it.next(),
                    Frame::Object(it, _, key) => it.next().map(|(k, v)| {
                        *key = Some(k);
                        v
                    }),
                };
                if let Some(c) = child {
                    next = Some(c);
                    break;
                }
                produced = match stack.pop() {
                    Some(Frame::List(_, out)) => Some(Value::List(out)),
                    Some(Frame::Object(_, out, _)) => Some(Value::Object(out)),
                    None => None,
                };
            }
        }
    }
}

fn too_deep() -> Error {
    Error::InvalidArgument(format!(
        "payload value nested deeper than {} levels of lists/objects",
        Value::MAX_DEPTH
    ))
}

fn number(n: &serde_json::Number) -> Result<Value> {
    if let Some(i) = n.as_i64() {
        Ok(Value::Int(i))
    } else if let Some(u) = n.as_u64() {
        Ok(Value::UInt(u))
    } else if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
        Ok(Value::Float(x))
    } else {
        Err(Error::InvalidArgument(format!(
            "payload number {n} is not representable"
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// JSON (self-describing serde formats): plain values, depth-bounded both ways.

/// A value at `depth` containers deep, for serialization.
struct Ser<'a>(&'a Value, usize);

impl Serialize for Ser<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let Ser(v, depth) = *self;
        if v.is_container() && depth >= Value::MAX_DEPTH {
            return Err(ser::Error::custom(too_deep()));
        }
        // JSON has no NaN or infinity (serde_json would write `null`, which reads back as a
        // different value): refused, as at upsert.
        if let Value::Float(x) = v
            && !x.is_finite()
        {
            return Err(ser::Error::custom(format!("{x} is not a finite number")));
        }
        match v {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(x) => s.serialize_f64(*x),
            Value::Str(x) => s.serialize_str(x),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for c in l {
                    seq.serialize_element(&Ser(c, depth + 1))?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, c) in o {
                    map.serialize_entry(k, &Ser(c, depth + 1))?;
                }
                map.end()
            }
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Ser(self, 0).serialize(s)
    }
}

/// Deserializes a plain JSON value whose enclosing containers number `depth`.
struct JsonSeed(usize);

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from_u64(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Value, E> {
        if let Ok(i) = i64::try_from(v) {
            Ok(Value::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(Value::UInt(u))
        } else {
            Err(E::custom(format!(
                "integer {v} is outside the range of i64 and u64"
            )))
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Value, E> {
        u64::try_from(v)
            .map(Value::from_u64)
            .map_err(|_| E::custom(format!("integer {v} is outside the range of i64 and u64")))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        if self.0 >= Value::MAX_DEPTH {
            return Err(de::Error::custom(too_deep()));
        }
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(JsonSeed(self.0 + 1))? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        if self.0 >= Value::MAX_DEPTH {
            return Err(de::Error::custom(too_deep()));
        }
        let mut out = BTreeMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(JsonSeed(self.0 + 1))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        JsonSeed(0).deserialize(d)
    }
}

// ---------------------------------------------------------------------------------------------
// The binary (postcard) form: an externally tagged enum, variant index first.

/// Variant indexes of the stored form. 0–4 are the original layout (4, a list of strings, is
/// only read: it decodes as a list of strings); 5–8 were appended for JSON payloads.
mod tag {
    pub const STR: u32 = 0;
    pub const INT: u32 = 1;
    pub const FLOAT: u32 = 2;
    pub const BOOL: u32 = 3;
    pub const STR_LIST: u32 = 4;
    pub const NULL: u32 = 5;
    pub const UINT: u32 = 6;
    pub const LIST: u32 = 7;
    pub const OBJECT: u32 = 8;
}

const VARIANTS: &[&str] = &[
    "Str", "Int", "Float", "Bool", "StrList", "Null", "UInt", "List", "Object",
];

/// A value at `depth` containers deep, in the stored (postcard) form.
pub(crate) struct Stored<'a>(pub &'a Value, pub usize);

/// The elements of a stored list.
struct StoredList<'a>(&'a [Value], usize);
/// The entries of a stored object: a sequence of (key, value) pairs.
struct StoredObject<'a>(&'a BTreeMap<String, Value>, usize);

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let Stored(v, depth) = *self;
        if v.is_container() && depth >= Value::MAX_DEPTH {
            return Err(ser::Error::custom(too_deep()));
        }
        let name = "StoredValue";
        match v {
            Value::Str(x) => s.serialize_newtype_variant(name, tag::STR, "Str", x),
            Value::Int(i) => s.serialize_newtype_variant(name, tag::INT, "Int", i),
            Value::Float(x) => s.serialize_newtype_variant(name, tag::FLOAT, "Float", x),
            Value::Bool(b) => s.serialize_newtype_variant(name, tag::BOOL, "Bool", b),
            Value::Null => s.serialize_unit_variant(name, tag::NULL, "Null"),
            Value::UInt(u) => s.serialize_newtype_variant(name, tag::UINT, "UInt", u),
            Value::List(l) => {
                s.serialize_newtype_variant(name, tag::LIST, "List", &StoredList(l, depth + 1))
            }
            Value::Object(o) => s.serialize_newtype_variant(
                name,
                tag::OBJECT,
                "Object",
                &StoredObject(o, depth + 1),
            ),
        }
    }
}

impl Serialize for StoredList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for c in self.0 {
            seq.serialize_element(&Stored(c, self.1))?;
        }
        seq.end()
    }
}

impl Serialize for StoredObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, c) in self.0 {
            seq.serialize_element(&(k, Stored(c, self.1)))?;
        }
        seq.end()
    }
}

/// A decoded stored value (a top-level field's value: depth 0).
pub(crate) struct StoredValue(pub Value);

impl<'de> Deserialize<'de> for StoredValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        StoredSeed(0).deserialize(d).map(StoredValue)
    }
}

/// Decodes a stored value whose enclosing containers number `depth`.
struct StoredSeed(usize);

impl<'de> DeserializeSeed<'de> for StoredSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_enum("StoredValue", VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for StoredSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored payload value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<Value, A::Error> {
        use de::VariantAccess;
        let (t, variant): (u32, _) = data.variant()?;
        let depth = self.0;
        let container = || {
            if depth >= Value::MAX_DEPTH {
                Err(de::Error::custom(too_deep()))
            } else {
                Ok(())
            }
        };
        Ok(match t {
            tag::STR => Value::Str(variant.newtype_variant()?),
            tag::INT => Value::Int(variant.newtype_variant()?),
            tag::FLOAT => Value::Float(variant.newtype_variant()?),
            tag::BOOL => Value::Bool(variant.newtype_variant()?),
            tag::STR_LIST => {
                container()?;
                let l: Vec<String> = variant.newtype_variant()?;
                Value::List(l.into_iter().map(Value::Str).collect())
            }
            tag::NULL => {
                variant.unit_variant()?;
                Value::Null
            }
            tag::UINT => Value::UInt(variant.newtype_variant()?),
            tag::LIST => {
                container()?;
                Value::List(variant.newtype_variant_seed(ListSeed(depth + 1))?)
            }
            tag::OBJECT => {
                container()?;
                Value::Object(variant.newtype_variant_seed(ObjectSeed(depth + 1))?)
            }
            other => {
                return Err(de::Error::custom(format!(
                    "unknown payload value tag {other}"
                )));
            }
        })
    }
}

/// The elements of a stored list, each `depth` containers deep.
struct ListSeed(usize);

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<Value>, A::Error> {
        // The length comes from the bytes: do not trust it for the allocation.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(StoredSeed(self.0))? {
            out.push(v);
        }
        Ok(out)
    }
}

/// The entries of a stored object, each value `depth` containers deep.
struct ObjectSeed(usize);

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = BTreeMap<String, Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

/// One (key, value) entry of a stored object.
struct EntrySeed(usize);

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = (String, Value);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = (String, Value);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key and a value")
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let k: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let v = seq
            .next_element_seed(StoredSeed(self.0))?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((k, v))
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = BTreeMap<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored object")
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = seq.next_element_seed(EntrySeed(self.0))? {
            if out.insert(k, v).is_some() {
                return Err(de::Error::custom("a stored object repeats a key"));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` lists nested in each other around `inner`, built without recursion.
    fn nest(n: usize, inner: Value) -> Value {
        let mut v = inner;
        for _ in 0..n {
            v = Value::List(vec![v]);
        }
        v
    }

    #[test]
    fn json_is_plain_and_exact() {
        let j = r#"{"a":null,"b":[1,"x",null,true,-0.0,1e+300,[]],"c":{"d":{"e":{}}},"f":0.1,"g":2.0,"h":9223372036854775807,"i":-9223372036854775808,"u":18446744073709551615}"#;
        let v: Value = serde_json::from_str(j).unwrap();
        let Value::Object(o) = &v else { panic!() };
        assert_eq!(o["i"], Value::Int(i64::MIN));
        assert_eq!(o["u"], Value::UInt(u64::MAX));
        assert_eq!(o["h"], Value::Int(i64::MAX));
        assert_eq!(o["g"], Value::Float(2.0));
        assert_eq!(serde_json::to_string(&v).unwrap(), j);
        let json: serde_json::Value = serde_json::from_str(j).unwrap();
        assert_eq!(v.to_json(), json);
        assert_eq!(Value::try_from(json).unwrap(), v);
        // Floats that need all 17 digits come back bit for bit.
        for x in [
            0.1 + 0.2,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            -1.234_567_890_123_456_7e-200,
        ] {
            let s = serde_json::to_string(&Value::Float(x)).unwrap();
            let back: Value = serde_json::from_str(&s).unwrap();
            assert!(
                matches!(back, Value::Float(y) if y.to_bits() == x.to_bits()),
                "{s}"
            );
        }
    }

    #[test]
    fn depth_limit_is_exact_everywhere() {
        let ok = nest(Value::MAX_DEPTH, Value::Int(1));
        let deep = nest(Value::MAX_DEPTH + 1, Value::Int(1));
        assert!(ok.validate("f").is_ok());
        let e = deep.validate("f").unwrap_err().to_string();
        assert!(e.contains("`f[0][0]"), "{e}");
        // JSON: serializing and parsing refuse past the limit.
        let s = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), ok);
        assert!(serde_json::to_string(&deep).is_err());
        let s = format!("{}1{}", "[".repeat(65), "]".repeat(65));
        assert!(serde_json::from_str::<Value>(&s).is_err());
        let j: serde_json::Value =
            serde_json::from_str(&format!("{}1{}", "[".repeat(65), "]".repeat(65))).unwrap();
        assert!(Value::try_from(j).is_err());
        // Postcard: encoding refuses; decoding refuses hand-made bytes one level too deep.
        assert!(postcard::to_allocvec(&Stored(&deep, 0)).is_err());
        let bytes = postcard::to_allocvec(&Stored(&ok, 0)).unwrap();
        let back: StoredValue = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.0, ok);
        let mut bytes = vec![tag::LIST as u8, 1];
        bytes.extend(postcard::to_allocvec(&Stored(&ok, 0)).unwrap());
        assert!(postcard::from_bytes::<StoredValue>(&bytes).is_err());
    }

    /// A value nested 100,000 deep (built in Rust) is refused, and every operation on it
    /// completes without overflowing the stack: validate, clone, eq, debug, serialize,
    /// to_json, drop. Likewise hostile bytes 100,000 levels deep decode to an error.
    #[test]
    fn hostile_depth_never_overflows() {
        let run = || {
            let deep = nest(100_000, Value::Null);
            assert!(deep.validate("x").is_err());
            let copy = deep.clone();
            assert!(copy == deep);
            assert!(nest(100_000, Value::Int(1)) != deep);
            assert!(!format!("{deep:?}").is_empty());
            assert!(serde_json::to_string(&deep).is_err());
            assert!(postcard::to_allocvec(&Stored(&deep, 0)).is_err());
            let j = deep.to_json();
            drop(j);
            let mut obj = Value::Null;
            for _ in 0..100_000 {
                obj = Value::Object([("k".to_owned(), obj)].into_iter().collect());
            }
            assert!(obj.validate("o").is_err());
            drop((deep, copy, obj));
            let mut bytes = Vec::new();
            for _ in 0..100_000 {
                bytes.extend([tag::LIST as u8, 1]);
            }
            bytes.push(tag::NULL as u8);
            assert!(postcard::from_bytes::<StoredValue>(&bytes).is_err());
            let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            assert!(serde_json::from_str::<Value>(&json).is_err());
        };
        // A small stack, so that recursion anywhere would overflow it.
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn validate_names_the_path_of_a_non_finite_float() {
        let mut inner = BTreeMap::new();
        inner.insert(
            "s".to_owned(),
            Value::List(vec![Value::Int(1), Value::Float(f64::NAN)]),
        );
        let v = Value::Object(inner);
        let e = v.validate("meta").unwrap_err().to_string();
        assert!(e.contains("`meta.s[1]`") && e.contains("NaN"), "{e}");
        assert!(Value::Float(f64::INFINITY).validate("x").is_err());
        assert!(Value::Float(f64::MAX).validate("x").is_ok());
    }
}
