//! Metadata filters: which records a search may return.
//!
//! A [`Filter`] is a boolean expression over a record's payload fields (and the terms of its
//! text). It has three equal forms:
//!
//! - a Rust builder: `Filter::eq("lang", "en").and(Filter::range("year").gte(2020))`;
//! - JSON (serde): `{"and": [{"eq": {"field": "lang", "value": "en"}}, …]}`;
//! - a text syntax for the command line: `lang = "en" AND year >= 2020` (see [`Filter::parse`]).
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

mod parse;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::record::{Payload, Value};

/// A boolean expression over payload fields and text terms. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
        #[serde(flatten)]
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
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            f => Filter::And(vec![f, other]),
        }
    }

    /// This or `other` matches (flattens nested `or`).
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut v) => {
                v.push(other);
                Filter::Or(v)
            }
            f => Filter::Or(vec![f, other]),
        }
    }

    /// This does not match.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Checks the filter is well formed: no list values in `eq`/`in`, no NaN or infinite
    /// numbers, every range has a bound, field names and terms are not empty.
    pub fn validate(&self) -> Result<()> {
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
            Filter::And(v) | Filter::Or(v) => v.iter().try_for_each(Filter::validate),
            Filter::Not(f) => f.validate(),
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
    /// for the record's text. This is the reference the indexes are tested against.
    pub fn matches(&self, payload: &Payload, has_term: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Filter::And(v) => v.iter().all(|f| f.matches(payload, has_term)),
            Filter::Or(v) => v.iter().any(|f| f.matches(payload, has_term)),
            Filter::Not(f) => !f.matches(payload, has_term),
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
