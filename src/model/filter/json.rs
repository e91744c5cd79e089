//! The JSON form of a filter (serde): MongoDB/Chroma-style operators, and the old tree form
//! as an alias. See the [module docs](super) and `docs/filters.md` for the language.
//!
//! Reading is one pass over the input (any self-describing serde format): `$and`, `$or` and
//! `$not` (and the old `and`, `or`, `not`) each count a level in [`nested`], so a hostile
//! input is refused at level [`Filter::MAX_DEPTH`] + 1 instead of recursing further. Values
//! (`$eq`, `$in`, implicit equality) are read through [`Value`]'s own `Deserialize`.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::{Bounds, Filter};
use crate::error::{Error, Result};
use crate::model::record::Value;

/// The operators a field takes, for error messages.
const FIELD_OPS: &str = "$eq, $ne, $in, $nin, $gt, $gte, $lt, $lte, $exists";

impl Filter {
    /// Reads a filter from JSON text in the operator form (`{"year": {"$gte": 2020}}`, see
    /// the [module docs](self)) or the old tree form, and [validates](Self::validate) it.
    ///
    /// Errors: [`Error::InvalidFilter`] saying what is wrong and where (`unknown operator
    /// "$gtx" on field "year" …`, or the JSON syntax error), [`Error::FilterTooDeep`] for
    /// `$and`/`$or`/`$not` nested past [`MAX_DEPTH`](Self::MAX_DEPTH) (refused while
    /// reading, whatever the input's depth). serde_json refuses more than 128 nested arrays
    /// and objects (a `$and` costs two): that is reported as "filter nested too deeply" too.
    pub fn from_json(text: &str) -> Result<Filter> {
        nested::take_too_deep();
        let f: Filter = serde_json::from_str(text).map_err(json_error)?;
        f.validate()?;
        Ok(f)
    }

    /// [`from_json`](Self::from_json) for an already parsed JSON value.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Filter> {
        Filter::from_deserializer(value)
    }

    /// Reads a filter in the JSON form from any self-describing serde format (the Python
    /// binding hands a dict over this way) and [validates](Self::validate) it, with the
    /// errors of [`from_json`](Self::from_json). The input's own nesting must be bounded by
    /// the format (this reader recurses once per level of `$and`, `$or` and `$not`, and
    /// stops past [`MAX_DEPTH`](Self::MAX_DEPTH); a value is read by [`Value`]'s
    /// `Deserialize`).
    pub fn from_deserializer<'de, D: Deserializer<'de>>(d: D) -> Result<Filter> {
        nested::take_too_deep();
        let f = Filter::deserialize(d).map_err(|e| match nested::take_too_deep() {
            Some(depth) => Error::FilterTooDeep {
                depth,
                max: Filter::MAX_DEPTH,
            },
            None => Error::InvalidFilter(e.to_string()),
        })?;
        f.validate()?;
        Ok(f)
    }

    /// The filter as JSON text in the operator form (what `Serialize` writes). Fails only for
    /// a filter nested deeper than [`MAX_DEPTH`](Self::MAX_DEPTH).
    pub fn to_json(&self) -> Result<String> {
        nested::take_too_deep();
        serde_json::to_string(self).map_err(json_error)
    }
}

fn json_error(e: serde_json::Error) -> Error {
    if let Some(depth) = nested::take_too_deep() {
        return Error::FilterTooDeep {
            depth,
            max: Filter::MAX_DEPTH,
        };
    }
    let msg = e.to_string();
    if msg.starts_with("recursion limit exceeded") {
        return Error::InvalidFilter(format!(
            "filter nested too deeply: the JSON nests more than 128 objects and lists \
             ($and/$or/$not may nest at most {} levels) ({msg})",
            Filter::MAX_DEPTH
        ));
    }
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            Error::InvalidFilter(format!("not valid JSON: {msg}"))
        }
        _ => Error::InvalidFilter(msg),
    }
}

// ---------------------------------------------------------------------------------------------
// Serialize: the operator form.

/// Whether `{field: value}` reads back as an equality: a value that is not a list or an
/// object (those are written `{"$eq": value}`).
fn plain_eq(v: &Value) -> bool {
    matches!(
        v,
        Value::Null
            | Value::Str(_)
            | Value::Int(_)
            | Value::UInt(_)
            | Value::Float(_)
            | Value::Bool(_)
    )
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Filter::And(v) => m.serialize_entry("$and", &Operands(v))?,
            Filter::Or(v) => m.serialize_entry("$or", &Operands(v))?,
            Filter::Not(f) => m.serialize_entry("$not", &Operand(f))?,
            Filter::HasTerm { term } => m.serialize_entry("$contains", term)?,
            // A field whose name starts with `$` reads as an operator: the old form names it.
            Filter::Eq { field, value } if field.starts_with('$') => {
                m.serialize_entry("eq", &Old(self, field))?
            }
            Filter::In { field, .. } | Filter::Range { field, .. } | Filter::Exists { field }
                if field.starts_with('$') =>
            {
                let name = match self {
                    Filter::In { .. } => "in",
                    Filter::Range { .. } => "range",
                    _ => "exists",
                };
                m.serialize_entry(name, &Old(self, field))?
            }
            Filter::Eq { field, value } if plain_eq(value) => m.serialize_entry(field, value)?,
            Filter::Eq { field, value } => m.serialize_entry(field, &Op("$eq", value))?,
            Filter::In { field, values } => m.serialize_entry(field, &Op("$in", values))?,
            Filter::Exists { field } => m.serialize_entry(field, &Op("$exists", &true))?,
            Filter::Range { field, bounds } => m.serialize_entry(field, &RangeOps(bounds))?,
        }
        m.end()
    }
}

/// The operands of `$and`/`$or`, one level deeper.
struct Operands<'a>(&'a [Filter]);

impl Serialize for Operands<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let _level = nested::Level::enter().map_err(serde::ser::Error::custom)?;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for f in self.0 {
            seq.serialize_element(f)?;
        }
        seq.end()
    }
}

/// The operand of `$not`, one level deeper.
struct Operand<'a>(&'a Filter);

impl Serialize for Operand<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let _level = nested::Level::enter().map_err(serde::ser::Error::custom)?;
        self.0.serialize(s)
    }
}

/// `{"$op": value}`.
struct Op<'a, T>(&'static str, &'a T);

impl<T: Serialize> Serialize for Op<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, self.1)?;
        m.end()
    }
}

fn bound_entries(b: &Bounds) -> impl Iterator<Item = (&'static str, f64)> {
    [("gt", b.gt), ("gte", b.gte), ("lt", b.lt), ("lte", b.lte)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
}

/// `{"$gt": x, "$lte": y, …}`: the bounds that are set.
struct RangeOps<'a>(&'a Bounds);

impl Serialize for RangeOps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in bound_entries(self.0) {
            let op = match k {
                "gt" => "$gt",
                "gte" => "$gte",
                "lt" => "$lt",
                _ => "$lte",
            };
            m.serialize_entry(op, &v)?;
        }
        m.end()
    }
}

/// The body of a condition in the old tree form: `{"field": …, "value": …}` and so on.
struct Old<'a>(&'a Filter, &'a str);

impl Serialize for Old<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("field", self.1)?;
        match self.0 {
            Filter::Eq { value, .. } => m.serialize_entry("value", value)?,
            Filter::In { values, .. } => m.serialize_entry("values", values)?,
            Filter::Range { bounds, .. } => {
                for (k, v) in bound_entries(bounds) {
                    m.serialize_entry(k, &v)?;
                }
            }
            _ => {}
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Deserialize.

/// What was found where something else was expected, in JSON terms.
enum Found<'a> {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Null,
    List,
    Object,
}

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Bool(b) => write!(f, "{b}"),
            Found::Int(i) => write!(f, "the number {i}"),
            Found::UInt(u) => write!(f, "the number {u}"),
            Found::Float(x) => write!(f, "the number {x}"),
            Found::Str(s) if s.chars().count() > 40 => {
                let head: String = s.chars().take(40).collect();
                write!(f, "the string {head:?}…")
            }
            Found::Str(s) => write!(f, "the string {s:?}"),
            Found::Null => f.write_str("null"),
            Found::List => f.write_str("a list"),
            Found::Object => f.write_str("an object"),
        }
    }
}

/// One position in a filter: what it accepts, and the error for everything else. Each
/// `visit_*` of the [`Visit`] adapter lands here; the defaults report what was found.
trait Want<'de>: Sized {
    type Out;
    /// The error for an input of the wrong kind.
    fn wrong(self, found: Found<'_>) -> String;
    fn bool<E: de::Error>(self, v: bool) -> Result2<Self::Out, E> {
        Err(E::custom(self.wrong(Found::Bool(v))))
    }
    fn i64<E: de::Error>(self, v: i64) -> Result2<Self::Out, E> {
        Err(E::custom(self.wrong(Found::Int(v))))
    }
    fn u64<E: de::Error>(self, v: u64) -> Result2<Self::Out, E> {
        Err(E::custom(self.wrong(Found::UInt(v))))
    }
    fn f64<E: de::Error>(self, v: f64) -> Result2<Self::Out, E> {
        Err(E::custom(self.wrong(Found::Float(v))))
    }
    fn str<E: de::Error>(self, v: &str) -> Result2<Self::Out, E> {
        Err(E::custom(self.wrong(Found::Str(v))))
    }
    fn null<E: de::Error>(self) -> Result2<Self::Out, E> {
        Err(E::custom(self.wrong(Found::Null)))
    }
    fn seq<A: SeqAccess<'de>>(self, _: A) -> Result2<Self::Out, A::Error> {
        Err(de::Error::custom(self.wrong(Found::List)))
    }
    fn map<A: MapAccess<'de>>(self, _: A) -> Result2<Self::Out, A::Error> {
        Err(de::Error::custom(self.wrong(Found::Object)))
    }
}

type Result2<T, E> = std::result::Result<T, E>;

/// Adapts a [`Want`] to serde's `Visitor`.
struct Visit<W>(W);

impl<'de, W: Want<'de>> de::Visitor<'de> for Visit<W> {
    type Value = W::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a filter")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result2<W::Out, E> {
        self.0.bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result2<W::Out, E> {
        self.0.i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result2<W::Out, E> {
        self.0.u64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result2<W::Out, E> {
        self.0.f64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result2<W::Out, E> {
        self.0.str(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result2<W::Out, E> {
        self.0.null()
    }
    fn visit_none<E: de::Error>(self) -> Result2<W::Out, E> {
        self.0.null()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result2<W::Out, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result2<W::Out, A::Error> {
        self.0.seq(a)
    }
    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result2<W::Out, A::Error> {
        self.0.map(a)
    }
}

/// Implements `DeserializeSeed` for a [`Want`] (read with `deserialize_any`).
macro_rules! seed {
    ($($t:ident $(<$l:lifetime>)?),*) => {$(
        impl<'de $(, $l)?> DeserializeSeed<'de> for $t $(<$l>)? {
            type Value = <Self as Want<'de>>::Out;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result2<Self::Value, D::Error> {
                d.deserialize_any(Visit(self))
            }
        }
    )*};
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result2<Self, D::Error> {
        FilterSeed(Ctx::Top).deserialize(d)
    }
}

/// Where a filter object is expected.
#[derive(Clone, Copy)]
enum Ctx {
    Top,
    /// An element of `$and`/`$or` (or the old `and`/`or`).
    In(&'static str),
    /// The operand of `$not`.
    Not,
}

/// A filter object.
struct FilterSeed(Ctx);

impl<'de> Want<'de> for FilterSeed {
    type Out = Filter;
    fn wrong(self, found: Found<'_>) -> String {
        match self.0 {
            Ctx::Top => format!(
                "a filter is an object such as {{\"year\": {{\"$gte\": 2020}}}}, found {found}"
            ),
            Ctx::In(op) => format!("{op} takes a list of filters (objects), found {found} in it"),
            Ctx::Not => format!("$not takes a filter (an object), not {found}"),
        }
    }
    fn map<A: MapAccess<'de>>(self, map: A) -> Result2<Filter, A::Error> {
        filter_from_map(None, map)
    }
}

/// The operands of `$and`/`$or`: a list of filters, one level deeper.
struct OperandsSeed(&'static str);

impl<'de> Want<'de> for OperandsSeed {
    type Out = Vec<Filter>;
    fn wrong(self, found: Found<'_>) -> String {
        format!("{} takes a list of filters, not {found}", self.0)
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result2<Vec<Filter>, A::Error> {
        let _level = nested::Level::enter().map_err(de::Error::custom)?;
        let mut out = Vec::new();
        while let Some(f) = seq.next_element_seed(FilterSeed(Ctx::In(self.0)))? {
            out.push(f);
        }
        Ok(out)
    }
}

/// The operand of `$not`, one level deeper.
struct NotSeed;

impl<'de> DeserializeSeed<'de> for NotSeed {
    type Value = Filter;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result2<Filter, D::Error> {
        let _level = nested::Level::enter().map_err(de::Error::custom)?;
        d.deserialize_any(Visit(FilterSeed(Ctx::Not)))
    }
}

/// A string: `$contains`'s term, or a name in the old form.
struct StrSeed(String);

impl<'de> Want<'de> for StrSeed {
    type Out = String;
    fn wrong(self, found: Found<'_>) -> String {
        format!("{} takes a string, not {found}", self.0)
    }
    fn str<E: de::Error>(self, v: &str) -> Result2<String, E> {
        Ok(v.to_owned())
    }
}

/// A value to compare with (`$eq`, an element of `$in`, implicit equality), read by
/// [`Value`]'s own `Deserialize`. `.0` names the place for errors (`$eq on "year"`).
struct ValueSeed<'a>(&'a str);

impl ValueSeed<'_> {
    fn read<'de, D: Deserializer<'de>>(self, d: D, found: Found<'_>) -> Result2<Value, D::Error> {
        Value::deserialize(d).map_err(|_| {
            de::Error::custom(format!(
                "{}: a filter cannot compare with {found} (use null, a string, a number or a bool)",
                self.0
            ))
        })
    }
}

impl<'de> Want<'de> for ValueSeed<'_> {
    type Out = Value;
    fn wrong(self, found: Found<'_>) -> String {
        format!("{}: cannot compare with {found}", self.0)
    }
    fn bool<E: de::Error>(self, v: bool) -> Result2<Value, E> {
        self.read(v.into_deserializer(), Found::Bool(v))
    }
    fn i64<E: de::Error>(self, v: i64) -> Result2<Value, E> {
        self.read(v.into_deserializer(), Found::Int(v))
    }
    fn u64<E: de::Error>(self, v: u64) -> Result2<Value, E> {
        self.read(v.into_deserializer(), Found::UInt(v))
    }
    fn f64<E: de::Error>(self, v: f64) -> Result2<Value, E> {
        self.read(v.into_deserializer(), Found::Float(v))
    }
    fn str<E: de::Error>(self, v: &str) -> Result2<Value, E> {
        self.read(v.into_deserializer(), Found::Str(v))
    }
    fn null<E: de::Error>(self) -> Result2<Value, E> {
        self.read(().into_deserializer(), Found::Null)
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result2<Value, A::Error> {
        self.read(SeqAccessDeserializer::new(seq), Found::List)
    }
    fn map<A: MapAccess<'de>>(self, map: A) -> Result2<Value, A::Error> {
        self.read(MapAccessDeserializer::new(map), Found::Object)
    }
}

/// A list of values (`$in`, `$nin`, the old `values`).
struct ValuesSeed<'a>(&'a str);

impl<'de> Want<'de> for ValuesSeed<'_> {
    type Out = Vec<Value>;
    fn wrong(self, found: Found<'_>) -> String {
        format!("{} takes a list, not {found}", self.0)
    }
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result2<Vec<Value>, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(ValueSeed(self.0))? {
            out.push(v);
        }
        Ok(out)
    }
}

/// A number: a range bound.
struct NumberSeed<'a>(&'a str);

impl<'de> Want<'de> for NumberSeed<'_> {
    type Out = f64;
    fn wrong(self, found: Found<'_>) -> String {
        format!("{} takes a number, not {found}", self.0)
    }
    fn i64<E: de::Error>(self, v: i64) -> Result2<f64, E> {
        Ok(v as f64)
    }
    fn u64<E: de::Error>(self, v: u64) -> Result2<f64, E> {
        Ok(v as f64)
    }
    fn f64<E: de::Error>(self, v: f64) -> Result2<f64, E> {
        Ok(v)
    }
}

/// `$exists`'s `true` or `false`.
struct BoolSeed<'a>(&'a str);

impl<'de> Want<'de> for BoolSeed<'_> {
    type Out = bool;
    fn wrong(self, found: Found<'_>) -> String {
        format!("{} takes true or false, not {found}", self.0)
    }
    fn bool<E: de::Error>(self, v: bool) -> Result2<bool, E> {
        Ok(v)
    }
}

seed!(
    FilterSeed,
    OperandsSeed,
    StrSeed,
    ValueSeed<'a>,
    ValuesSeed<'a>,
    NumberSeed<'a>,
    BoolSeed<'a>
);

/// The names of the old tree form's variants.
#[derive(Clone, Copy, PartialEq)]
enum OldName {
    And,
    Or,
    Not,
    Eq,
    In,
    Range,
    Exists,
    HasTerm,
}

impl OldName {
    fn of(key: &str) -> Option<OldName> {
        Some(match key {
            "and" => OldName::And,
            "or" => OldName::Or,
            "not" => OldName::Not,
            "eq" => OldName::Eq,
            "in" => OldName::In,
            "range" => OldName::Range,
            "exists" => OldName::Exists,
            "has_term" => OldName::HasTerm,
            _ => return None,
        })
    }
}

/// The value under a key that is not an operator: a field's value or operators, or (for the
/// old names with the old shape) a condition in the old tree form.
struct FieldSeed {
    field: String,
    old: Option<OldName>,
}

impl<'de> Want<'de> for FieldSeed {
    type Out = Filter;
    fn wrong(self, found: Found<'_>) -> String {
        format!("field {:?}: cannot compare with {found}", self.field)
    }
    fn bool<E: de::Error>(self, v: bool) -> Result2<Filter, E> {
        let value = ValueSeed(&self.field).bool(v)?;
        Ok(Filter::Eq {
            field: self.field,
            value,
        })
    }
    fn i64<E: de::Error>(self, v: i64) -> Result2<Filter, E> {
        let value = ValueSeed(&self.field).i64(v)?;
        Ok(Filter::Eq {
            field: self.field,
            value,
        })
    }
    fn u64<E: de::Error>(self, v: u64) -> Result2<Filter, E> {
        let value = ValueSeed(&self.field).u64(v)?;
        Ok(Filter::Eq {
            field: self.field,
            value,
        })
    }
    fn f64<E: de::Error>(self, v: f64) -> Result2<Filter, E> {
        let value = ValueSeed(&self.field).f64(v)?;
        Ok(Filter::Eq {
            field: self.field,
            value,
        })
    }
    fn str<E: de::Error>(self, v: &str) -> Result2<Filter, E> {
        let value = ValueSeed(&self.field).str(v)?;
        Ok(Filter::Eq {
            field: self.field,
            value,
        })
    }
    fn null<E: de::Error>(self) -> Result2<Filter, E> {
        let value = ValueSeed(&self.field).null()?;
        Ok(Filter::Eq {
            field: self.field,
            value,
        })
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result2<Filter, A::Error> {
        match self.old {
            // The old `{"and": [...]}`, `{"or": [...]}`.
            Some(OldName::And) => Ok(Filter::And(OperandsSeed("and").seq(seq)?)),
            Some(OldName::Or) => Ok(Filter::Or(OperandsSeed("or").seq(seq)?)),
            _ => {
                let value = ValueSeed(&self.field).seq(seq)?;
                Ok(Filter::Eq {
                    field: self.field,
                    value,
                })
            }
        }
    }
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result2<Filter, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!(
                "no operator given for field {:?} (an empty object; use {FIELD_OPS})",
                self.field
            )));
        };
        if first.starts_with('$') {
            return field_ops(self.field, first, map);
        }
        match self.old {
            Some(OldName::And | OldName::Or) | None => Err(de::Error::custom(format!(
                "field {:?}: {first:?} is not an operator (operators start with $: {FIELD_OPS}; \
                 to compare with an object use {{\"$eq\": …}})",
                self.field
            ))),
            Some(OldName::Not) => {
                let _level = nested::Level::enter().map_err(de::Error::custom)?;
                Ok(filter_from_map(Some(first), map)?.not())
            }
            Some(old) => old_condition(old, first, map),
        }
    }
}

seed!(FieldSeed);

fn custom<E: de::Error>(msg: impl fmt::Display) -> E {
    E::custom(msg)
}

/// The rest of a filter object, from `first` (already read) on: each key is a condition, and
/// several are all required.
fn filter_from_map<'de, A: MapAccess<'de>>(
    first: Option<String>,
    mut map: A,
) -> Result2<Filter, A::Error> {
    let mut parts = Vec::new();
    let mut key = match first {
        Some(k) => Some(k),
        None => map.next_key::<String>()?,
    };
    while let Some(k) = key {
        parts.push(match k.as_str() {
            "$and" => Filter::And(map.next_value_seed(OperandsSeed("$and"))?),
            "$or" => Filter::Or(map.next_value_seed(OperandsSeed("$or"))?),
            "$not" => map.next_value_seed(NotSeed)?.not(),
            "$contains" | "$has_term" => {
                let term = map.next_value_seed(StrSeed(format!("{k} (a term of the text)")))?;
                Filter::HasTerm { term }
            }
            op if op.starts_with('$') => {
                return Err(custom(format!(
                    "unknown filter operator {op:?} at the top level (use $and, $or, $not, \
                     $contains, or a field name)"
                )));
            }
            _ => {
                let old = OldName::of(&k);
                map.next_value_seed(FieldSeed { field: k, old })?
            }
        });
        key = map.next_key::<String>()?;
    }
    let f = if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    };
    // `$ne`, `$nin`, `$exists: false` and several keys add levels the reader did not count.
    let depth = nested::current() + f.depth();
    if depth > Filter::MAX_DEPTH {
        return Err(custom(nested::too_deep(depth)));
    }
    Ok(f)
}

/// `{"$op": x, …}` on `field`, from `first` (already read) on. Range bounds make one range,
/// after the other conditions; several conditions are all required.
fn field_ops<'de, A: MapAccess<'de>>(
    field: String,
    first: String,
    mut map: A,
) -> Result2<Filter, A::Error> {
    let mut parts = Vec::new();
    let mut bounds = Bounds::default();
    let mut op = Some(first);
    while let Some(o) = op {
        let at = format!("{o} on {field:?}");
        match o.as_str() {
            "$eq" | "$ne" => {
                let value = map.next_value_seed(ValueSeed(&at))?;
                let eq = Filter::Eq {
                    field: field.clone(),
                    value,
                };
                parts.push(if o == "$eq" { eq } else { eq.not() });
            }
            "$in" | "$nin" => {
                let values = map.next_value_seed(ValuesSeed(&at))?;
                let f = Filter::In {
                    field: field.clone(),
                    values,
                };
                parts.push(if o == "$in" { f } else { f.not() });
            }
            "$gt" | "$gte" | "$lt" | "$lte" => {
                let x = map.next_value_seed(NumberSeed(&at))?;
                let slot = match o.as_str() {
                    "$gt" => &mut bounds.gt,
                    "$gte" => &mut bounds.gte,
                    "$lt" => &mut bounds.lt,
                    _ => &mut bounds.lte,
                };
                *slot = Some(x);
            }
            "$exists" => {
                let yes = map.next_value_seed(BoolSeed(&at))?;
                let f = Filter::Exists {
                    field: field.clone(),
                };
                parts.push(if yes { f } else { f.not() });
            }
            other if other.starts_with('$') => {
                return Err(custom(format!(
                    "unknown operator {other:?} on field {field:?} (use {FIELD_OPS})"
                )));
            }
            other => {
                return Err(custom(format!(
                    "field {field:?}: {other:?} is not an operator (operators start with $: \
                     {FIELD_OPS}); do not mix operators and plain keys"
                )));
            }
        }
        op = map.next_key::<String>()?;
    }
    if !bounds.is_empty() {
        parts.push(Filter::Range {
            field: field.clone(),
            bounds,
        });
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    })
}

/// A condition in the old tree form (`{"eq": {"field": "lang", "value": "en"}}`), from its
/// body's first key (already read) on.
fn old_condition<'de, A: MapAccess<'de>>(
    old: OldName,
    first: String,
    mut map: A,
) -> Result2<Filter, A::Error> {
    let (name, keys): (&str, &[&str]) = match old {
        OldName::Eq => ("eq", &["field", "value"]),
        OldName::In => ("in", &["field", "values"]),
        OldName::Range => ("range", &["field", "gt", "gte", "lt", "lte"]),
        OldName::Exists => ("exists", &["field"]),
        _ => ("has_term", &["term"]),
    };
    let shape = || {
        let ks: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
        format!(
            "{{{name:?}: {{…}}}} (the old form) takes the keys {}",
            ks.join(", ")
        )
    };
    let mut field = None;
    let mut term = None;
    let mut value = None;
    let mut values = None;
    let mut bounds = Bounds::default();
    let mut key = Some(first);
    while let Some(k) = key {
        if !keys.contains(&k.as_str()) {
            return Err(custom(format!("{}, not {k:?}", shape())));
        }
        let dup = || custom(format!("{name:?}: {k:?} given twice"));
        let at = format!("{name:?}: {k:?}");
        match k.as_str() {
            "field" => {
                if field.replace(map.next_value_seed(StrSeed(at))?).is_some() {
                    return Err(dup());
                }
            }
            "term" => {
                if term.replace(map.next_value_seed(StrSeed(at))?).is_some() {
                    return Err(dup());
                }
            }
            "value" => {
                if value
                    .replace(map.next_value_seed(ValueSeed(&at))?)
                    .is_some()
                {
                    return Err(dup());
                }
            }
            "values" => {
                if values
                    .replace(map.next_value_seed(ValuesSeed(&at))?)
                    .is_some()
                {
                    return Err(dup());
                }
            }
            b => {
                let x = map.next_value_seed(NumberSeed(&at))?;
                let slot = match b {
                    "gt" => &mut bounds.gt,
                    "gte" => &mut bounds.gte,
                    "lt" => &mut bounds.lt,
                    _ => &mut bounds.lte,
                };
                if slot.replace(x).is_some() {
                    return Err(dup());
                }
            }
        }
        key = map.next_key::<String>()?;
    }
    let missing = || custom(format!("{}: some are missing", shape()));
    Ok(match old {
        OldName::Eq => Filter::Eq {
            field: field.ok_or_else(missing)?,
            value: value.ok_or_else(missing)?,
        },
        OldName::In => Filter::In {
            field: field.ok_or_else(missing)?,
            values: values.ok_or_else(missing)?,
        },
        OldName::Range => Filter::Range {
            field: field.ok_or_else(missing)?,
            bounds,
        },
        OldName::Exists => Filter::Exists {
            field: field.ok_or_else(missing)?,
        },
        _ => Filter::HasTerm {
            term: term.ok_or_else(missing)?,
        },
    })
}

/// The nesting of `and`, `or` and `not` while a filter is serialized or deserialized: each
/// level counts itself in a per-thread depth, and a level past [`Filter::MAX_DEPTH`] is an
/// error instead of one more stack frame (deserializing a hostile input, or serializing a
/// filter built too deep in Rust).
pub(super) mod nested {
    use std::cell::Cell;

    use super::Filter;
    use crate::error::Error;

    thread_local! {
        static DEPTH: Cell<usize> = const { Cell::new(0) };
        /// The depth of the last `FilterTooDeep` raised through serde on this thread, so that
        /// [`Filter::from_json`] returns it as that variant rather than as a message.
        static TOO_DEEP: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// The levels entered on this thread.
    pub(super) fn current() -> usize {
        DEPTH.with(Cell::get)
    }

    /// The error for a filter of `depth` levels, remembered for [`take_too_deep`].
    pub(super) fn too_deep(depth: usize) -> Error {
        TOO_DEEP.with(|t| t.set(Some(depth)));
        Error::FilterTooDeep {
            depth,
            max: Filter::MAX_DEPTH,
        }
    }

    /// The depth of the last too-deep error, cleared.
    pub(super) fn take_too_deep() -> Option<usize> {
        TOO_DEEP.with(Cell::take)
    }

    /// One level of nesting, left when dropped.
    pub(super) struct Level;

    impl Level {
        pub(super) fn enter() -> Result<Level, Error> {
            DEPTH.with(|d| {
                let depth = d.get() + 1;
                if depth > Filter::MAX_DEPTH {
                    return Err(too_deep(depth));
                }
                d.set(depth);
                Ok(Level)
            })
        }
    }

    impl Drop for Level {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
}
