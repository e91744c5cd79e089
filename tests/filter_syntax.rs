//! Property tests of the filter text syntax and JSON form: printing a valid filter and parsing
//! the text gives the same filter back, so does writing it as JSON (the operator form) and
//! reading it, and no input makes the parser panic or report a column outside the input.

use cairndb::filter::Bounds;
use cairndb::{Error, Filter, Value};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

const KEYWORDS: [&str; 8] = [
    "and", "or", "not", "in", "exists", "has_term", "true", "false",
];

/// Characters that stress the lexer and the printer's escaping.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::char::range('a', 'z'),
        2 => select(vec![
            '"', '\\', '`', '\n', '\t', '\r', ' ', '(', ')', ',', '=', '<', '-', '.', '_', '0',
            '9', 'é', 'ß', '\u{0}', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{feff}',
            '😀', '{', '}',
        ]),
        2 => any::<char>(),
    ]
}

fn text(max_len: usize) -> impl Strategy<Value = String> {
    vec(tricky_char(), 0..=max_len).prop_map(|v| v.into_iter().collect())
}

/// A keyword in random letter case.
fn keyword() -> impl Strategy<Value = String> {
    (select(KEYWORDS.to_vec()), any::<u16>()).prop_map(|(k, mask)| {
        k.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 16) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    })
}

/// Field names: plain identifiers, keywords, and names that need backticks.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z_][A-Za-z0-9_.-]{0,7}",
        1 => keyword(),
        // Names the JSON form reads specially: operators and the old form's names.
        1 => select(vec![
            "eq", "in", "range", "exists", "has_term", "not", "and", "or", "$eq", "$and",
            "$not", "$contains", "$", "$x", "meta.author", "field", "value",
        ])
        .prop_map(str::to_owned),
        1 => "[0-9.-][A-Za-z0-9 _]{0,4}",
        2 => text(6).prop_filter("a field name is not empty", |s| !s.is_empty()),
    ]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        -5i64..5,
        -100_000i64..100_000,
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("finite", |x| x.is_finite()),
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-7,
            1e15,
            1e16,
            999_999_999_999_999.0,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            f64::EPSILON,
            2020.0,
            -2020.5,
        ]),
        (-1000i32..1000).prop_map(f64::from),
        -1e6f64..1e6,
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        text(8).prop_map(Value::Str),
        int().prop_map(Value::Int),
        finite().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Bool),
    ]
}

/// At most one lower and one upper bound, and at least one bound.
fn bounds() -> impl Strategy<Value = Bounds> {
    (0u8..3, 0u8..3, finite(), finite())
        .prop_filter("a range has a bound", |(lo, hi, _, _)| lo + hi > 0)
        .prop_map(|(lo, hi, a, b)| Bounds {
            gt: (lo == 1).then_some(a),
            gte: (lo == 2).then_some(a),
            lt: (hi == 1).then_some(b),
            lte: (hi == 2).then_some(b),
        })
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        3 => (field(), value()).prop_map(|(field, value)| Filter::Eq { field, value }),
        2 => (field(), vec(value(), 0..4)).prop_map(|(field, values)| Filter::In { field, values }),
        3 => (field(), bounds()).prop_map(|(field, bounds)| Filter::Range { field, bounds }),
        1 => field().prop_map(|field| Filter::Exists { field }),
        1 => text(8)
            .prop_filter("a term is not blank", |t| !t.trim().is_empty())
            .prop_map(|term| Filter::HasTerm { term }),
        1 => Just(Filter::And(vec![])),
        1 => Just(Filter::Or(vec![])),
    ]
}

/// Valid filters nested up to 4 deep; every And/Or has 2 to 4 operands.
fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 2..=4).prop_map(Filter::And),
            vec(inner.clone(), 2..=4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

/// Bits of filter text, well formed or not.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            "(", ")", ",", "=", "!=", "!", ">", ">=", "<", "<=", "AND", "or", "NOT", "in", "IN",
            "EXISTS", "has_term", "TRUE", "false", "a", "b.c-d", "`x y`", "`a\\`b`", "\"s\"",
            "\"\\u{41}\"", "\"\\u{D800}\"", "\"\\q\"", "1", "-2", "1.5e3", "1e999", "1.",
            "99999999999999999999", "-9223372036854775808", "\"", "`", "\\", " ", "é", "\n",
        ])
        .prop_map(str::to_owned),
        1 => tricky_char().prop_map(String::from),
    ]
}

/// Printed filters with a few characters truncated, inserted or removed.
fn mutated() -> impl Strategy<Value = String> {
    (filter(), vec((0u8..3, any::<Index>(), tricky_char()), 1..4)).prop_map(|(f, edits)| {
        let mut chars: Vec<char> = f.to_string().chars().collect();
        for (kind, at, c) in edits {
            match kind {
                0 => chars.truncate(at.index(chars.len() + 1)),
                1 => chars.insert(at.index(chars.len() + 1), c),
                _ if !chars.is_empty() => {
                    chars.remove(at.index(chars.len()));
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

/// `parse` either succeeds with a filter that prints and parses back to itself, or fails with
/// a syntax error pointing inside the input (or just past its end), or an invalid-filter error.
fn check_parse(input: &str) -> Result<(), TestCaseError> {
    match Filter::parse(input) {
        Ok(f) => {
            prop_assert!(f.validate().is_ok());
            let text = f.to_string();
            let again = Filter::parse(&text);
            prop_assert_eq!(again.as_ref().ok(), Some(&f), "reprinted as {:?}", text);
        }
        Err(Error::FilterSyntax {
            column,
            message,
            input: echoed,
        }) => {
            let chars = input.chars().count();
            prop_assert!(
                (1..=chars + 1).contains(&column),
                "column {} outside 1..={} for {:?}: {}",
                column,
                chars + 1,
                input,
                message
            );
            prop_assert_eq!(echoed, input);
            prop_assert!(!message.is_empty());
        }
        Err(Error::InvalidFilter(message)) => prop_assert!(!message.is_empty()),
        Err(other) => prop_assert!(false, "unexpected error kind: {other:?}"),
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/filter_syntax.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(4096))]

    /// `Filter::parse(&f.to_string()) == Ok(f)`, with floats identical to the bit (the Debug
    /// form tells `-0.0` from `0.0`, which `==` does not).
    #[test]
    fn printed_filters_parse_back(f in filter()) {
        prop_assert!(f.validate().is_ok(), "generated an invalid filter: {:?}", f);
        let text = f.to_string();
        let back = Filter::parse(&text);
        prop_assert_eq!(back.as_ref().ok(), Some(&f), "text: {}\nparse: {:?}", text, back);
        prop_assert_eq!(format!("{back:?}"), format!("{:?}", Ok::<_, ()>(&f)));
    }

    /// Writing a valid filter as JSON (the operator form; the old form for `$` fields) and
    /// reading it gives it back, floats bit for bit, through text and through a
    /// `serde_json::Value`.
    #[test]
    fn json_filters_read_back(f in filter()) {
        let json = serde_json::to_string(&f).unwrap();
        let back = Filter::from_json(&json);
        prop_assert_eq!(back.as_ref().ok(), Some(&f), "json: {}\nread: {:?}", json, back);
        prop_assert_eq!(format!("{back:?}"), format!("{:?}", Ok::<_, ()>(&f)));
        let value = serde_json::to_value(&f).unwrap();
        let from_value = Filter::from_json_value(&value).ok();
        prop_assert_eq!(from_value.as_ref(), Some(&f));
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        check_parse(&s)?;
    }

    #[test]
    fn token_soup_never_panics(tokens in vec(token(), 0..16), spaced in any::<bool>()) {
        check_parse(&tokens.join(if spaced { " " } else { "" }))?;
    }

    #[test]
    fn mutated_filters_never_panic(s in mutated()) {
        check_parse(&s)?;
    }
}
