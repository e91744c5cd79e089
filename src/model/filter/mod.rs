//! Metadata filters: which records a search may return.
//!
//! A [`Filter`] is a boolean expression over a record's payload fields (and the terms of its
//! text). It has three equal forms:
//!
//! - a Rust builder: `Filter::eq("lang", "en").and(Filter::range("year").gte(2020))`;
//! - JSON (serde, [`Filter::from_json`]; also Python dicts and the CLI), in the operator form
//!   of MongoDB and Chroma: `{"lang": "en", "year": {"$gte": 2020}}`;
//! - a text syntax for the command line: `lang = "en" AND year >= 2020` (see [`Filter::parse`]).
//!
//! # JSON
//! A filter is an object; each key is a condition, and several keys must all match:
//! - `{"field": v}` — equality (`v` null, a string, number or bool); `{"field": {"$op": x, …}}` —
//!   operators on the field, all required: `$eq`, `$ne` (= `$not` of `$eq`), `$in`, `$nin`
//!   (lists; `[]` allowed), `$gt`, `$gte`, `$lt`, `$lte` (numbers; together one range),
//!   `$exists` (`true`, or `false` = `$not`).
//! - `{"$and": [f, …]}`, `{"$or": [f, …]}`, `{"$not": f}`; `{"$contains": "term"}` (alias
//!   `$has_term`) — the text holds the analyzed term. `{}` matches everything.
//! - A field name with dots is a path into nested objects (`meta.author`; see *Semantics*).
//!
//! **The old tree form** (`{"eq": {"field": "lang", "value": "en"}}`, `{"and": [...]}`, …,
//! the serde form before the operator form) is still read, as an alias: a key `and` or `or`
//! whose value is a list, or `not`, `eq`, `in`, `range`, `exists`, `has_term` whose value is an
//! object with keys not starting with `$`, is read in the old form (which must then have its
//! exact shape). Anything else is the operator form, so a field with one of those names is
//! written with a scalar (`{"eq": 1}`) or with operators (`{"not": {"$in": [1, 2]}}`). A field
//! whose name starts with `$` can only be written in the old form. `Serialize` writes the
//! operator form (the old form only for such `$` fields): writing and reading gives back the
//! same filter, floats bit for bit.
//!
//! # Semantics
//! Payloads are JSON ([`Value`]); a filter names a value by a *path*.
//!
//! - **Paths.** A field name with dots addresses nested object keys: `meta.author` is the
//!   `author` key of the `meta` object. A path is the keys joined with `.`, so it also names a
//!   key that itself contains dots (`{"meta.author": …}` is found by `meta.author` too; both
//!   are found when a payload has both).
//! - **Arrays.** A list met anywhere on the path stands for each of its elements (nested lists
//!   too): `tags = "a"` matches `{"tags": ["a", "b"]}`, and `authors.name = "x"` matches
//!   `{"authors": [{"name": "x"}, {"name": "y"}]}`. A condition matches when *any* value the
//!   path reaches matches; a `range` needs one value inside all its bounds (like Mongo's
//!   `$elemMatch`, not one value per bound).
//! - `eq(path, "s")` matches a string equal to `s`; `eq(path, b)` a bool equal to `b`.
//! - `eq(path, n)` with a number matches a number (`Int`, `UInt` or `Float`) numerically equal
//!   to `n`. Numbers are compared as `f64`: integers beyond 2^53 are rounded to the nearest
//!   `f64` first, so two such integers that round alike compare equal (and `range` bounds are
//!   `f64`).
//! - `eq(path, null)` matches a present `null` (or a list holding `null`). It does **not**
//!   match a missing field: "missing" is `not(exists(path))`, "null or missing" is
//!   `eq(path, null) OR NOT exists(path)`.
//! - `in(path, [v…])` matches when any `eq(path, v)` does.
//! - `range(path)` with bounds matches a number inside all bounds; other types, and missing
//!   fields, do not match.
//! - `exists(path)` matches when the path reaches a value, whatever it is: `null`, an empty
//!   list and an empty object are present.
//! - `eq`/`in` take scalars (null, bool, number, string): a list or object value is refused by
//!   [`Filter::validate`].
//! - `has_term(t)` matches when the record's text contains the term `t` after the collection's
//!   analyzer has been applied to both (a `t` that analyzes to several terms needs all of them;
//!   one that analyzes to nothing matches nothing).
//! - `not(f)` matches every record `f` does not match — including records without the field.
//! - `and`/`or` of no operands match everything / nothing.
//!
//! Every leaf path of every payload is indexed by the type of its value (there is nothing to
//! declare): strings in a keyword index, booleans in a bool index, numbers in one numeric
//! column, nulls in a null set; list elements are indexed under the list's path, and every
//! path a payload reaches (objects and lists included) in an exists set.

mod display;
mod json;
mod parse;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::record::{Payload, Value};

/// A boolean expression over payload fields and text terms. See the [module docs](self).
///
/// `and`, `or` and `not` may nest at most [`Filter::MAX_DEPTH`] deep ([`validate`](Self::validate)
/// rejects deeper filters). Dropping, serializing, deserializing, printing and
/// [`matches`](Self::matches) are safe on a filter of any depth (none of them recurses past
/// the limit); `Clone`, `PartialEq` and `Debug` recurse, so use them on validated filters.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All operands match.
    And(Vec<Filter>),
    /// At least one operand matches.
    Or(Vec<Filter>),
    /// The operand does not match.
    Not(Box<Filter>),
    /// A value at the field equals the value (a list: any element does).
    Eq {
        /// Field name.
        field: String,
        /// A scalar: null, bool, number or string.
        value: Value,
    },
    /// The field equals one of the values.
    In {
        /// Field name.
        field: String,
        /// Strings, integers, floats or bools.
        values: Vec<Value>,
    },
    /// The numeric field lies within the bounds.
    Range {
        /// Field name.
        field: String,
        /// Bounds; at least one is set.
        bounds: Bounds,
    },
    /// The record has the field.
    Exists {
        /// Field name.
        field: String,
    },
    /// The record's text contains the analyzed term.
    HasTerm {
        /// The term, analyzed like the text.
        term: String,
    },
}

/// Bounds of a numeric range; unset bounds are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Greater than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// Greater than or equal to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// Less than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// Less than or equal to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

impl Bounds {
    /// Whether `x` lies within every set bound.
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }

    fn is_empty(&self) -> bool {
        self.gt.is_none() && self.gte.is_none() && self.lt.is_none() && self.lte.is_none()
    }
}

impl Filter {
    /// How deep `and`, `or` and `not` may nest: a condition has depth 0, an `and`/`or`/`not`
    /// one more than its deepest operand (so `not(not(eq))` has depth 2). Deeper filters are
    /// rejected with [`Error::FilterTooDeep`] by [`validate`](Self::validate), by the text
    /// syntax and by deserialization, whatever form they come in.
    pub const MAX_DEPTH: usize = 64;

    /// The nesting depth (see [`MAX_DEPTH`](Self::MAX_DEPTH)). Iterative: any depth is safe.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 0usize)];
        while let Some((f, d)) = stack.pop() {
            match f {
                Filter::And(v) | Filter::Or(v) => {
                    deepest = deepest.max(d + 1);
                    stack.extend(v.iter().map(|g| (g, d + 1)));
                }
                Filter::Not(g) => {
                    deepest = deepest.max(d + 1);
                    stack.push((g, d + 1));
                }
                _ => deepest = deepest.max(d),
            }
        }
        deepest
    }

    /// The payload fields the filter names, each once, in order of first appearance.
    /// Iterative: any depth is safe.
    pub fn fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Filter::And(v) | Filter::Or(v) => stack.extend(v.iter().rev()),
                Filter::Not(g) => stack.push(g),
                Filter::Eq { field, .. }
                | Filter::In { field, .. }
                | Filter::Range { field, .. }
                | Filter::Exists { field } => {
                    if !out.contains(&field.as_str()) {
                        out.push(field);
                    }
                }
                Filter::HasTerm { .. } => {}
            }
        }
        out
    }

    /// `field = value`.
    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::Eq {
            field: field.into(),
            value: value.into(),
        }
    }

    /// `field IN (values…)`.
    pub fn any_of<V: Into<Value>>(
        field: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Filter::In {
            field: field.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// A numeric range on `field` with no bounds yet: add them with [`gt`](Self::gt),
    /// [`gte`](Self::gte), [`lt`](Self::lt), [`lte`](Self::lte).
    pub fn range(field: impl Into<String>) -> Filter {
        Filter::Range {
            field: field.into(),
            bounds: Bounds::default(),
        }
    }

    fn bound(mut self, set: impl FnOnce(&mut Bounds)) -> Filter {
        if let Filter::Range { bounds, .. } = &mut self {
            set(bounds);
        }
        self
    }

    /// On a range: the field is greater than `x` (no effect on other filters).
    pub fn gt(self, x: impl Into<f64>) -> Filter {
        let x = x.into();
        self.bound(|b| b.gt = Some(x))
    }

    /// On a range: the field is at least `x`.
    pub fn gte(self, x: impl Into<f64>) -> Filter {
        let x = x.into();
        self.bound(|b| b.gte = Some(x))
    }

    /// On a range: the field is less than `x`.
    pub fn lt(self, x: impl Into<f64>) -> Filter {
        let x = x.into();
        self.bound(|b| b.lt = Some(x))
    }

    /// On a range: the field is at most `x`.
    pub fn lte(self, x: impl Into<f64>) -> Filter {
        let x = x.into();
        self.bound(|b| b.lte = Some(x))
    }

    /// The record has `field`.
    pub fn exists(field: impl Into<String>) -> Filter {
        Filter::Exists {
            field: field.into(),
        }
    }

    /// The record's text contains `term` (after analysis).
    pub fn has_term(term: impl Into<String>) -> Filter {
        Filter::HasTerm { term: term.into() }
    }

    /// Both this and `other` match (flattens nested `and`).
    pub fn and(mut self, other: Filter) -> Filter {
        if let Filter::And(v) = &mut self {
            v.push(other);
            return self;
        }
        Filter::And(vec![self, other])
    }

    /// This or `other` matches (flattens nested `or`).
    pub fn or(mut self, other: Filter) -> Filter {
        if let Filter::Or(v) = &mut self {
            v.push(other);
            return self;
        }
        Filter::Or(vec![self, other])
    }

    /// This does not match.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Checks the filter is well formed: nesting within [`MAX_DEPTH`](Self::MAX_DEPTH) (else
    /// [`Error::FilterTooDeep`]), no list values in `eq`/`in`, no NaN or infinite numbers,
    /// every range has a bound, field names and terms are not empty.
    pub fn validate(&self) -> Result<()> {
        let depth = self.depth();
        if depth > Self::MAX_DEPTH {
            return Err(Error::FilterTooDeep {
                depth,
                max: Self::MAX_DEPTH,
            });
        }
        self.validate_within()
    }

    /// [`validate`](Self::validate) once the depth is known to be within the limit.
    fn validate_within(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidFilter(msg));
        let scalar = |field: &str, v: &Value| match v {
            Value::List(_) => bad(format!(
                "field `{field}`: compare with one value, not a list (use IN for several)"
            )),
            Value::Object(_) => bad(format!(
                "field `{field}`: compare with a scalar value, not an object (address nested keys with dots: `{field}.key`)"
            )),
            Value::Float(x) if !x.is_finite() => {
                bad(format!("field `{field}`: {x} is not a finite number"))
            }
            _ => Ok(()),
        };
        let name = |field: &str| {
            if field.is_empty() {
                bad("empty field name".into())
            } else {
                Ok(())
            }
        };
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().try_for_each(Filter::validate_within),
            Filter::Not(f) => f.validate_within(),
            Filter::Eq { field, value } => {
                name(field)?;
                scalar(field, value)
            }
            Filter::In { field, values } => {
                name(field)?;
                values.iter().try_for_each(|v| scalar(field, v))
            }
            Filter::Range { field, bounds } => {
                name(field)?;
                if bounds.is_empty() {
                    return bad(format!("range on `{field}` has no bound"));
                }
                for x in [bounds.gt, bounds.gte, bounds.lt, bounds.lte]
                    .into_iter()
                    .flatten()
                {
                    if !x.is_finite() {
                        return bad(format!("range on `{field}`: {x} is not a finite number"));
                    }
                }
                Ok(())
            }
            Filter::Exists { field } => name(field),
            Filter::HasTerm { term } => {
                if term.trim().is_empty() {
                    bad("has_term needs a term".into())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether a record with this payload matches. `has_term` answers [`Filter::HasTerm`]
    /// for the record's text. This is the reference the indexes are tested against. A filter
    /// nested deeper than [`MAX_DEPTH`](Self::MAX_DEPTH) (which `validate` rejects) matches
    /// nothing.
    pub fn matches(&self, payload: &Payload, has_term: &dyn Fn(&str) -> bool) -> bool {
        self.depth() <= Self::MAX_DEPTH && self.matches_within(payload, has_term)
    }

    fn matches_within(&self, payload: &Payload, has_term: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Filter::And(v) => v.iter().all(|f| f.matches_within(payload, has_term)),
            Filter::Or(v) => v.iter().any(|f| f.matches_within(payload, has_term)),
            Filter::Not(f) => !f.matches_within(payload, has_term),
            Filter::Eq { field, value } => any_leaf(payload, field, |x| value_eq(x, value)),
            Filter::In { field, values } => {
                any_leaf(payload, field, |x| values.iter().any(|v| value_eq(x, v)))
            }
            Filter::Range { field, bounds } => any_leaf(payload, field, |x| {
                x.as_f64().is_some_and(|x| bounds.contains(x))
            }),
            Filter::Exists { field } => reaches(payload, field, |_| true),
            Filter::HasTerm { term } => has_term(term),
        }
    }
}

/// Drops the operands from a loop instead of recursively, so that a filter of any depth (built
/// in Rust before [`Filter::validate`] could refuse it) is dropped without overflowing the stack.
impl Drop for Filter {
    fn drop(&mut self) {
        fn take_operands(f: &mut Filter, out: &mut Vec<Filter>) {
            match f {
                Filter::And(v) | Filter::Or(v) => out.append(v),
                Filter::Not(g) => out.push(std::mem::replace(&mut **g, Filter::And(Vec::new()))),
                _ => {}
            }
        }
        let mut stack = Vec::new();
        take_operands(self, &mut stack);
        while let Some(mut f) = stack.pop() {
            // `f` has no operands left when it is dropped at the end of this iteration.
            take_operands(&mut f, &mut stack);
        }
    }
}

/// Calls `found` on each value `path` reaches in `payload` (lists on the way stand for their
/// elements), until it returns true. Iterative: a payload of any depth is safe.
pub(crate) fn reaches(
    payload: &Payload,
    path: &str,
    mut found: impl FnMut(&Value) -> bool,
) -> bool {
    // (value, the rest of the path below it: `None` when the value is at the path).
    let mut stack: Vec<(&Value, Option<&str>)> = Vec::new();
    lookup(payload, path, &mut stack);
    while let Some((v, rest)) = stack.pop() {
        match (v, rest) {
            (v, None) if found(v) => return true,
            (_, None) => {}
            (Value::Object(o), Some(rest)) => lookup(o, rest, &mut stack),
            (Value::List(l), Some(rest)) => stack.extend(l.iter().map(|c| (c, Some(rest)))),
            _ => {}
        }
    }
    false
}

/// Whether any value at `path` matches `test`, a list at the path standing for its elements
/// (nested lists too); a list or object itself is never a leaf.
pub(crate) fn any_leaf(
    payload: &Payload,
    path: &str,
    mut test: impl FnMut(&Value) -> bool,
) -> bool {
    reaches(payload, path, |v| {
        let Value::List(_) = v else {
            return test(v);
        };
        let mut lists = vec![v];
        while let Some(x) = lists.pop() {
            match x {
                Value::List(items) => lists.extend(items),
                x => {
                    if test(x) {
                        return true;
                    }
                }
            }
        }
        false
    })
}

/// Pushes the values of `obj` that `path` starts at: the key equal to the whole path, and each
/// key equal to a dot-separated prefix of it (with the rest of the path below it).
fn lookup<'a>(obj: &'a Payload, path: &'a str, out: &mut Vec<(&'a Value, Option<&'a str>)>) {
    if let Some(v) = obj.get(path) {
        out.push((v, None));
    }
    for (i, _) in path.match_indices('.') {
        if let Some(v) = obj.get(&path[..i]) {
            out.push((v, Some(&path[i + 1..])));
        }
    }
}

/// Whether a leaf value `x` matches the filter value `v` under `eq`.
pub(crate) fn value_eq(x: &Value, v: &Value) -> bool {
    match (x, v) {
        (Value::Null, Value::Null) => true,
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (
            Value::Int(_) | Value::UInt(_) | Value::Float(_),
            Value::Int(_) | Value::UInt(_) | Value::Float(_),
        ) => x.as_f64() == v.as_f64(),
        _ => false,
    }
}
