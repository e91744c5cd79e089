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
//! - `{"field": v}` — equality (`v` a string, number or bool); `{"field": {"$op": x, …}}` —
//!   operators on the field, all required: `$eq`, `$ne` (= `$not` of `$eq`), `$in`, `$nin`
//!   (lists; `[]` allowed), `$gt`, `$gte`, `$lt`, `$lte` (numbers; together one range),
//!   `$exists` (`true`, or `false` = `$not`).
//! - `{"$and": [f, …]}`, `{"$or": [f, …]}`, `{"$not": f}`; `{"$contains": "term"}` (alias
//!   `$has_term`) — the text holds the analyzed term. `{}` matches everything.
//! - A field name is taken as it is: `meta.author` is the field named `meta.author`.
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
//! - `eq(field, "s")` matches a `Str` field equal to `s`, or a `StrList` field holding `s`.
//! - `eq(field, n)` with a number matches an `Int` or `Float` field numerically equal to `n`
//!   (compared as `f64`: integers beyond 2^53 lose precision).
//! - `eq(field, b)` with a bool matches a `Bool` field equal to `b`.
//! - `in(field, [v…])` matches when any `eq(field, v)` does.
//! - `range(field)` with bounds matches an `Int` or `Float` field inside all bounds; a field of
//!   another type, or a missing field, does not match.
//! - `exists(field)` matches when the record has the field, whatever its value.
//! - `has_term(t)` matches when the record's text contains the term `t` after the collection's
//!   analyzer has been applied to both (a `t` that analyzes to several terms needs all of them;
//!   one that analyzes to nothing matches nothing).
//! - `not(f)` matches every record `f` does not match — including records without the field.
//! - `and`/`or` of no operands match everything / nothing.
//!
//! Every payload field is indexed by the type of its value (there is nothing to declare):
//! strings and string lists in a keyword index, booleans in a bool index, integers and floats
//! in one numeric column.

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
    /// The field equals the value (a string list: holds it).
    Eq {
        /// Field name.
        field: String,
        /// A string, integer, float or bool.
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
            Value::StrList(_) => bad(format!(
                "field `{field}`: compare with one value, not a list (use IN for several)"
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
            Filter::Eq { field, value } => payload.get(field).is_some_and(|x| value_eq(x, value)),
            Filter::In { field, values } => payload
                .get(field)
                .is_some_and(|x| values.iter().any(|v| value_eq(x, v))),
            Filter::Range { field, bounds } => match payload.get(field) {
                Some(Value::Int(i)) => bounds.contains(*i as f64),
                Some(Value::Float(x)) => bounds.contains(*x),
                _ => false,
            },
            Filter::Exists { field } => payload.contains_key(field),
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

/// Whether a stored value `x` matches the filter value `v` under `eq`.
pub(crate) fn value_eq(x: &Value, v: &Value) -> bool {
    match (x, v) {
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::StrList(a), Value::Str(b)) => a.iter().any(|s| s == b),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            as_f64(x) == as_f64(v)
        }
        _ => false,
    }
}

pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}
