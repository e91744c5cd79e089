//! Printing a filter in its [text syntax](Filter::parse): `Display for Filter`.

use std::fmt::{self, Write as _};

use super::parse::is_plain_field;
use super::{Bounds, Filter};
use crate::model::record::Value;

/// Where a filter is printed, which decides whether it needs parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    OrOperand,
    AndOperand,
    NotOperand,
}

/// Prints the [text syntax](Filter::parse).
///
/// `Filter::parse(&f.to_string())` gives back `f` for every filter that
/// [`validate`](Filter::validate) accepts, provided that
/// - every `And`/`Or` has no operand or at least two (one of a single operand prints as that
///   operand),
/// - every range has at most one lower bound (`gt` or `gte`) and one upper bound (`lt` or
///   `lte`): a range with, say, both `gt` and `gte` prints as `(a > 1 AND a >= 2)`, which
///   parses to an equivalent `And` of ranges (the parser never produces such a range),
///
/// `Not(Eq)` prints as `a != v`, `Not(In)` as `a NOT IN (…)`. A filter that does not validate
/// (a NaN, a list value, a range without bounds) prints as text that does not parse; past
/// [`Filter::MAX_DEPTH`] levels an operand prints as `…`.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(self, Ctx::Top, 0, f)
    }
}

/// Prints `filter`, found `level` levels of `and`/`or`/`not` deep.
fn write_filter(
    filter: &Filter,
    ctx: Ctx,
    level: usize,
    out: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    if level > Filter::MAX_DEPTH {
        return out.write_char('…');
    }
    match filter {
        Filter::And(v) | Filter::Or(v) if v.len() == 1 => {
            // A single operand is printed as itself (equivalent; not identical on re-parse).
            v.iter()
                .try_for_each(|only| write_filter(only, ctx, level + 1, out))
        }
        Filter::And(v) if v.is_empty() => out.write_str("TRUE"),
        Filter::Or(v) if v.is_empty() => out.write_str("FALSE"),
        Filter::And(v) => {
            // Parenthesized inside another AND too, or the parser would flatten the two.
            let paren = matches!(ctx, Ctx::AndOperand | Ctx::NotOperand);
            write_list(v, " AND ", Ctx::AndOperand, paren, level + 1, out)
        }
        Filter::Or(v) => write_list(v, " OR ", Ctx::OrOperand, ctx != Ctx::Top, level + 1, out),
        Filter::Not(inner) => match &**inner {
            Filter::Eq { field, value } => {
                write_field(field, out)?;
                out.write_str(" != ")?;
                write_value(value, out)
            }
            Filter::In { field, values } => {
                write_field(field, out)?;
                out.write_str(" NOT IN ")?;
                write_values(values, out)
            }
            other => {
                out.write_str("NOT ")?;
                write_filter(other, Ctx::NotOperand, level + 1, out)
            }
        },
        Filter::Eq { field, value } => {
            write_field(field, out)?;
            out.write_str(" = ")?;
            write_value(value, out)
        }
        Filter::In { field, values } => {
            write_field(field, out)?;
            out.write_str(" IN ")?;
            write_values(values, out)
        }
        Filter::Range { field, bounds } => write_range(field, bounds, out),
        Filter::Exists { field } => {
            out.write_str("EXISTS(")?;
            write_field(field, out)?;
            out.write_char(')')
        }
        Filter::HasTerm { term } => {
            out.write_str("HAS_TERM(")?;
            write_string(term, out)?;
            out.write_char(')')
        }
    }
}

fn write_list(
    operands: &[Filter],
    sep: &str,
    ctx: Ctx,
    paren: bool,
    level: usize,
    out: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    if paren {
        out.write_char('(')?;
    }
    for (i, f) in operands.iter().enumerate() {
        if i > 0 {
            out.write_str(sep)?;
        }
        write_filter(f, ctx, level, out)?;
    }
    if paren {
        out.write_char(')')?;
    }
    Ok(())
}

fn write_range(field: &str, b: &Bounds, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    let lower = [(">", b.gt), (">=", b.gte)];
    let upper = [("<", b.lt), ("<=", b.lte)];
    let set = |side: [(&'static str, Option<f64>); 2]| {
        side.into_iter()
            .filter_map(|(op, x)| x.map(|x| (op, x)))
            .collect::<Vec<_>>()
    };
    let (lower, upper) = (set(lower), set(upper));
    match (lower.as_slice(), upper.as_slice()) {
        ([(lop, lo)], [(uop, hi)]) => {
            write_number(*lo, out)?;
            out.write_str(if *lop == ">" { " < " } else { " <= " })?;
            write_field(field, out)?;
            write!(out, " {uop} ")?;
            write_number(*hi, out)
        }
        ([], []) => {
            // No bound: invalid. Say what it would mean; `-inf` does not parse.
            write_field(field, out)?;
            out.write_str(" >= -inf")
        }
        _ => {
            let all: Vec<_> = lower.into_iter().chain(upper).collect();
            let paren = all.len() > 1;
            if paren {
                out.write_char('(')?;
            }
            for (i, (op, x)) in all.into_iter().enumerate() {
                if i > 0 {
                    out.write_str(" AND ")?;
                }
                write_field(field, out)?;
                write!(out, " {op} ")?;
                write_number(x, out)?;
            }
            if paren {
                out.write_char(')')?;
            }
            Ok(())
        }
    }
}

/// A range bound: integral values of moderate size as integers (they re-parse to the same
/// `f64` exactly), everything else in Rust's shortest round-trip form.
fn write_number(x: f64, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    if x.is_finite() && x.trunc() == x && x.abs() < 1e15 && !(x == 0.0 && x.is_sign_negative()) {
        write!(out, "{}", x as i64)
    } else {
        write!(out, "{x:?}")
    }
}

fn write_value(v: &Value, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    match v {
        Value::Str(s) => write_string(s, out),
        Value::Int(i) => write!(out, "{i}"),
        // `{:?}` is the shortest form that reads back as the same f64, and always has a `.`
        // or an exponent (`1.0`, `1e-7`, `1e16`), so it reads back as a Float.
        Value::Float(x) => write!(out, "{x:?}"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::UInt(u) => write!(out, "{u}"),
        Value::Null => out.write_str("null"),
        // Invalid in a filter; printed as JSON, which does not parse as a value.
        Value::List(_) | Value::Object(_) => write!(out, "{}", v.to_json()),
    }
}

fn write_values(values: &[Value], out: &mut fmt::Formatter<'_>) -> fmt::Result {
    out.write_char('(')?;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        write_value(v, out)?;
    }
    out.write_char(')')
}

fn write_string(s: &str, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\t' => out.write_str("\\t")?,
            '\r' => out.write_str("\\r")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

fn write_field(name: &str, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    if is_plain_field(name) {
        return out.write_str(name);
    }
    out.write_char('`')?;
    for c in name.chars() {
        if matches!(c, '`' | '\\') {
            out.write_char('\\')?;
        }
        out.write_char(c)?;
    }
    out.write_char('`')
}
