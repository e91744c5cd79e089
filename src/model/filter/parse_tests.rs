//! Tests of the text syntax: parsing, errors with columns, and printing back.

use super::*;

fn p(s: &str) -> Filter {
    match Filter::parse(s) {
        Ok(f) => f,
        Err(e) => panic!("{s:?} failed to parse: {e}"),
    }
}

/// The column and message of a syntax error.
fn syntax_err(s: &str) -> (usize, String) {
    match Filter::parse(s) {
        Err(Error::FilterSyntax {
            column,
            message,
            input,
        }) => {
            assert_eq!(input, s);
            (column, message)
        }
        other => panic!("{s:?}: expected a syntax error, got {other:?}"),
    }
}

fn roundtrip(f: &Filter) {
    let text = f.to_string();
    assert_eq!(Filter::parse(&text).ok().as_ref(), Some(f), "text: {text}");
}

#[test]
fn comparisons() {
    assert_eq!(p(r#"lang = "en""#), Filter::eq("lang", "en"));
    assert_eq!(p("year = 2020"), Filter::eq("year", 2020));
    assert_eq!(p("score = 0.5"), Filter::eq("score", 0.5));
    assert_eq!(p("x = 1e3"), Filter::eq("x", 1000.0));
    assert_eq!(p("x = 1E-7"), Filter::eq("x", 1e-7));
    assert_eq!(p("x = -2.5e+2"), Filter::eq("x", -250.0));
    assert_eq!(p("x = -3"), Filter::eq("x", -3));
    assert_eq!(p("draft = true"), Filter::eq("draft", true));
    assert_eq!(p("draft = FALSE"), Filter::eq("draft", false));
    assert_eq!(p("draft != True"), Filter::eq("draft", true).not());
    assert_eq!(p(r#"a!="x""#), Filter::eq("a", "x").not());
    assert_eq!(
        p(&format!("n = {}", i64::MIN)),
        Filter::eq("n", Value::Int(i64::MIN))
    );
    assert_eq!(
        p(&format!("n = {}", i64::MAX)),
        Filter::eq("n", Value::Int(i64::MAX))
    );
    // An integer is an Int, a number with a fraction or exponent a Float.
    assert_eq!(p("x = 1"), Filter::eq("x", Value::Int(1)));
    assert_eq!(p("x = 1.0"), Filter::eq("x", Value::Float(1.0)));
    assert_eq!(p("x = 1e0"), Filter::eq("x", Value::Float(1.0)));
}

#[test]
fn ranges() {
    assert_eq!(p("year > 2020"), Filter::range("year").gt(2020));
    assert_eq!(p("year >= 2020"), Filter::range("year").gte(2020));
    assert_eq!(p("year < 2020"), Filter::range("year").lt(2020));
    assert_eq!(p("year <= 2020.5"), Filter::range("year").lte(2020.5));
    assert_eq!(p("x>-1"), Filter::range("x").gt(-1));
    assert_eq!(p("0 < x < 1"), Filter::range("x").gt(0).lt(1));
    assert_eq!(p("0 <= x < 1"), Filter::range("x").gte(0).lt(1));
    assert_eq!(p("0 < x <= 1"), Filter::range("x").gt(0).lte(1));
    assert_eq!(p("-1.5<=x<=1e2"), Filter::range("x").gte(-1.5).lte(100));
    // Integers become f64 bounds.
    assert_eq!(
        p("big < 9007199254740993"),
        Filter::range("big").lt(9007199254740993_i64 as f64)
    );
}

#[test]
fn lists_exists_terms_and_constants() {
    assert_eq!(
        p(r#"tags IN ("a", "b")"#),
        Filter::any_of("tags", ["a", "b"])
    );
    assert_eq!(
        p(r#"v in (1, 2.5, "s", true)"#),
        Filter::In {
            field: "v".into(),
            values: vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::Str("s".into()),
                Value::Bool(true)
            ],
        }
    );
    assert_eq!(p("v IN ()"), Filter::any_of("v", Vec::<Value>::new()));
    assert_eq!(p("v NOT IN (1)"), Filter::any_of("v", [1]).not());
    assert_eq!(p("v not in(1,2)"), Filter::any_of("v", [1, 2]).not());
    assert_eq!(p("EXISTS(author)"), Filter::exists("author"));
    assert_eq!(p("exists ( `odd name` )"), Filter::exists("odd name"));
    assert_eq!(p(r#"HAS_TERM("rust")"#), Filter::has_term("rust"));
    assert_eq!(
        p(r#"has_term ( "two words" )"#),
        Filter::has_term("two words")
    );
    assert_eq!(p("TRUE"), Filter::And(vec![]));
    assert_eq!(p("false"), Filter::Or(vec![]));
    assert_eq!(
        p("TRUE AND NOT FALSE"),
        Filter::And(vec![Filter::And(vec![]), Filter::Or(vec![]).not()])
    );
}

#[test]
fn fields() {
    assert_eq!(p("a.b-c_1 = 1"), Filter::eq("a.b-c_1", 1));
    assert_eq!(p("_x = 1"), Filter::eq("_x", 1));
    assert_eq!(p("`and` = 1"), Filter::eq("and", 1));
    assert_eq!(p("`with space` = 1"), Filter::eq("with space", 1));
    assert_eq!(
        p(r"`tick\`and\\slash` = 1"),
        Filter::eq("tick`and\\slash", 1)
    );
    assert_eq!(p("`été` > 1"), Filter::range("été").gt(1));
    assert_eq!(p("1 < `été` < 2"), Filter::range("été").gt(1).lt(2));
}

#[test]
fn strings() {
    assert_eq!(
        p(r#"s = "q\" b\\ n\n t\t r\r u\u{e9}\u{1F600}""#),
        Filter::eq("s", "q\" b\\ n\n t\t r\r u\u{e9}\u{1F600}")
    );
    assert_eq!(p(r#"s = """#), Filter::eq("s", ""));
    assert_eq!(p("s = \"raw\nnewline\""), Filter::eq("s", "raw\nnewline"));
    assert_eq!(p(r#"s = "AND OR )""#), Filter::eq("s", "AND OR )"));
}

#[test]
fn keywords_are_case_insensitive() {
    assert_eq!(
        p("a = 1 and b = 2 Or not c = 3"),
        Filter::Or(vec![
            Filter::eq("a", 1).and(Filter::eq("b", 2)),
            Filter::eq("c", 3).not(),
        ])
    );
}

#[test]
fn precedence_and_grouping() {
    assert_eq!(
        p("a = 1 OR b = 2 AND c = 3"),
        Filter::Or(vec![
            Filter::eq("a", 1),
            Filter::And(vec![Filter::eq("b", 2), Filter::eq("c", 3)]),
        ])
    );
    assert_eq!(
        p("(a = 1 OR b = 2) AND c = 3"),
        Filter::And(vec![
            Filter::Or(vec![Filter::eq("a", 1), Filter::eq("b", 2)]),
            Filter::eq("c", 3),
        ])
    );
    // NOT binds tighter than AND.
    assert_eq!(
        p("NOT a = 1 AND b = 2"),
        Filter::And(vec![Filter::eq("a", 1).not(), Filter::eq("b", 2)])
    );
    assert_eq!(
        p("NOT (a = 1 AND b = 2)"),
        Filter::And(vec![Filter::eq("a", 1), Filter::eq("b", 2)]).not()
    );
    assert_eq!(p("NOT NOT a = 1"), Filter::eq("a", 1).not().not());
    // Chains flatten; parentheses keep a nested group.
    assert_eq!(
        p("a = 1 AND b = 2 AND c = 3"),
        Filter::And(vec![
            Filter::eq("a", 1),
            Filter::eq("b", 2),
            Filter::eq("c", 3)
        ])
    );
    assert_eq!(
        p("(a = 1 AND b = 2) AND c = 3"),
        Filter::And(vec![
            Filter::And(vec![Filter::eq("a", 1), Filter::eq("b", 2)]),
            Filter::eq("c", 3)
        ])
    );
    assert_eq!(p("((a = 1))"), Filter::eq("a", 1));
}

#[test]
fn the_issue_example() {
    let f = p(r#"lang = "en" AND year >= 2020 AND tags IN ("a", "b") AND NOT draft = true"#);
    assert_eq!(
        f,
        Filter::And(vec![
            Filter::eq("lang", "en"),
            Filter::range("year").gte(2020),
            Filter::any_of("tags", ["a", "b"]),
            Filter::eq("draft", true).not(),
        ])
    );
    assert_eq!(
        f.to_string(),
        r#"lang = "en" AND year >= 2020 AND tags IN ("a", "b") AND draft != true"#
    );
    roundtrip(&f);
}

#[test]
fn error_columns() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "expected a condition"),
        ("   ", 4, "found the end of the input"),
        ("year >= ", 9, "a number after `>=`"),
        (r#"lang = "en"#, 8, "unterminated string"),
        (r#"lang = "en\"#, 8, "unterminated string"),
        (r#"`é` = "x"#, 7, "unterminated string"),
        ("é = 1", 1, "unexpected character 'é'"),
        (r#"a = "x\q""#, 7, "unknown escape `\\q`"),
        (r#"a = "\u{110000}""#, 6, "not a Unicode scalar value"),
        (r#"a = "\u{D800}""#, 6, "not a Unicode scalar value"),
        (r#"a = "\u{}""#, 6, "malformed escape"),
        (r#"a = "\u{1234567}""#, 6, "malformed escape"),
        (r#"a = "\u41""#, 6, "malformed escape"),
        ("`a = 1", 1, "unterminated field name"),
        (r"`a\n` = 1", 3, "unknown escape"),
        ("a = 99999999999999999999", 5, "does not fit in 64 bits"),
        ("a = -9223372036854775809", 5, "does not fit in 64 bits"),
        ("a = 1e999", 5, "out of range"),
        ("a = 1.", 7, "digit after the decimal point"),
        ("a = 1e", 7, "digits of the exponent"),
        ("a = 1e+", 8, "digits of the exponent"),
        ("a = 12abc", 7, "in a number"),
        ("(a = 1", 7, "`)` to close the `(` at column 1"),
        ("(a = 1 b", 8, "`)` to close the `(` at column 1"),
        ("a = 1 b = 2", 7, "expected AND, OR or the end"),
        ("a = 1)", 6, "unmatched `)`"),
        ("a = 1 AND", 10, "expected a condition"),
        ("a = 1 OR OR b = 2", 10, "found the keyword `OR`"),
        ("a", 2, "after the field name `a`"),
        ("`a b`", 6, "after the field name `a b`, found"),
        ("1 < `a b` > 2", 11, "`<` or `<=` and the upper bound"),
        ("a = 1 `b`", 7, "found the field name `b`"),
        ("a == 1", 4, "expected a value"),
        ("a = en", 5, "strings are written in double quotes"),
        ("a = inf", 5, "expected a value"),
        ("a = NaN", 5, "expected a value"),
        (r#"a > "x""#, 5, "compares numbers"),
        ("a > true", 5, "a number after `>`"),
        ("a ! 1", 3, "did you mean `!=`"),
        ("a = - 1", 5, "negative number"),
        ("a = 1 & b = 2", 7, "unexpected character '&'"),
        ("and = 1", 1, "expected a condition"),
        ("EXISTS(and)", 8, "keyword `AND`"),
        ("EXISTS a", 8, "`(` after EXISTS"),
        ("EXISTS(a", 9, "`)` after the field name"),
        ("HAS_TERM(term)", 10, "a string"),
        ("a NOT = 1", 7, "IN after NOT"),
        ("a IN 1", 6, "`(` to start the list"),
        ("a IN (1 2)", 9, "`,` or `)`"),
        ("a IN (1,)", 9, "expected a value"),
        ("1 < a", 6, "`<` or `<=` and the upper bound"),
        ("1 > a > 0", 3, "`<` or `<=` after the number"),
        ("1 < a < \"x\"", 9, "compares numbers"),
        ("1 < 2 < 3", 5, "expected a field name"),
        ("\"a\" = 1", 1, "expected a condition"),
    ];
    for &(input, column, needle) in cases {
        let (col, msg) = syntax_err(input);
        assert_eq!(col, column, "{input:?}: {msg}");
        assert!(msg.contains(needle), "{input:?}: {msg:?} lacks {needle:?}");
    }
}

/// The rendering shown in `docs/filters.md`.
#[test]
fn error_display() {
    let e = Filter::parse("year >= ").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "filter syntax error at column 9: expected a number after `>=`, found the end \
             of the input\n  year >= \n          ^"
        )
    );
}

#[test]
fn semantic_errors_are_invalid_filter() {
    for s in [
        "`` = 1",
        "EXISTS(``)",
        r#"HAS_TERM("  ")"#,
        r#"HAS_TERM("")"#,
    ] {
        assert!(
            matches!(Filter::parse(s), Err(Error::InvalidFilter(_))),
            "{s}: {:?}",
            Filter::parse(s)
        );
    }
}

#[test]
fn nesting_is_capped() {
    // Parentheses that add no level: only the parser's own limit applies.
    let ok = format!(
        "{}a = 1{}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    assert_eq!(p(&ok), Filter::eq("a", 1));
    let deep = format!(
        "{}a = 1{}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    let (col, msg) = syntax_err(&deep);
    assert_eq!(col, MAX_NESTING + 1);
    assert!(msg.contains("nested too deeply"), "{msg}");

    // NOTs each add a level: the filter's limit applies.
    let max = Filter::MAX_DEPTH;
    let nots = format!("{}a = 1", "NOT ".repeat(max));
    assert_eq!(p(&nots).depth(), max);
    assert!(matches!(
        Filter::parse(&format!("{}a = 1", "NOT ".repeat(max + 1))),
        Err(Error::FilterTooDeep { depth, max: m }) if depth == max + 1 && m == max
    ));
    let (col, _) = syntax_err(&format!("{}a = 1", "NOT ".repeat(MAX_NESTING + 1)));
    assert_eq!(col, 4 * MAX_NESTING + 1);
    let (col, _) = syntax_err(&format!("{}a = 1", "(NOT ".repeat(MAX_NESTING)));
    assert_eq!(col, 5 * (MAX_NESTING / 2) + 1);

    // Far deeper input fails cleanly instead of overflowing the stack.
    for s in ["(".repeat(100_000), "NOT ".repeat(100_000)] {
        let (col, _) = syntax_err(&s);
        assert!(col <= s.chars().count() + 1);
    }
}

#[test]
fn display_forms() {
    let cases: Vec<(Filter, &str)> = vec![
        (Filter::eq("a", 1), "a = 1"),
        (Filter::eq("a", 1.0), "a = 1.0"),
        (Filter::eq("a", 1e-7), "a = 1e-7"),
        (Filter::eq("a", 1e16), "a = 1e16"),
        (Filter::eq("a", -0.0), "a = -0.0"),
        (
            Filter::eq("a", "x\"y\\z\n\u{1}é"),
            r#"a = "x\"y\\z\n\u{1}é""#,
        ),
        (Filter::eq("and", true), "`and` = true"),
        (Filter::eq("two words", 1), "`two words` = 1"),
        (Filter::eq("t`b\\", 1), r"`t\`b\\` = 1"),
        (Filter::eq("9lives", 1), "`9lives` = 1"),
        (Filter::eq("a", 1).not(), "a != 1"),
        (Filter::any_of("a", [1, 2]).not(), "a NOT IN (1, 2)"),
        (Filter::any_of("a", Vec::<Value>::new()), "a IN ()"),
        (Filter::range("y").gte(2020), "y >= 2020"),
        (Filter::range("y").lt(0.5), "y < 0.5"),
        (Filter::range("y").gt(-0.0), "y > -0.0"),
        (Filter::range("y").gt(1e15), "y > 1000000000000000.0"),
        (Filter::range("y").gt(1e16), "y > 1e16"),
        (Filter::range("y").lt(2.5e-8), "y < 2.5e-8"),
        (Filter::range("y").gt(0).lte(10), "0 < y <= 10"),
        (Filter::range("y").gte(0).lt(10), "0 <= y < 10"),
        (Filter::range("y").gt(1).gte(2), "(y > 1 AND y >= 2)"),
        (
            Filter::range("y").gt(1).gte(2).lt(5).lte(6),
            "(y > 1 AND y >= 2 AND y < 5 AND y <= 6)",
        ),
        (Filter::range("y"), "y >= -inf"),
        (Filter::exists("a b"), "EXISTS(`a b`)"),
        (Filter::has_term("rust"), r#"HAS_TERM("rust")"#),
        (Filter::And(vec![]), "TRUE"),
        (Filter::Or(vec![]), "FALSE"),
        (Filter::And(vec![Filter::eq("a", 1)]), "a = 1"),
        (
            Filter::And(vec![Filter::Or(vec![
                Filter::eq("a", 1),
                Filter::eq("b", 2),
            ])])
            .and(Filter::eq("c", 3)),
            "(a = 1 OR b = 2) AND c = 3",
        ),
        (
            Filter::eq("a", 1)
                .or(Filter::eq("b", 2).and(Filter::eq("c", 3)))
                .or(Filter::Or(vec![Filter::eq("d", 4), Filter::eq("e", 5)])),
            "a = 1 OR b = 2 AND c = 3 OR (d = 4 OR e = 5)",
        ),
        (
            Filter::And(vec![Filter::eq("a", 1), Filter::eq("b", 2)]).not(),
            "NOT (a = 1 AND b = 2)",
        ),
        (Filter::eq("a", 1).not().not(), "NOT a != 1"),
        (Filter::exists("a").not(), "NOT EXISTS(a)"),
    ];
    for (f, text) in cases {
        assert_eq!(f.to_string(), text, "{f:?}");
    }
}

#[test]
fn display_roundtrips() {
    let filters = [
        Filter::eq("a", i64::MIN).and(Filter::eq("b", i64::MAX)),
        Filter::eq("x", f64::MAX).or(Filter::eq("x", f64::MIN_POSITIVE)),
        Filter::eq("x", 5e-324).or(Filter::eq("x", -1.7976931348623157e308)),
        Filter::eq("x", 0.1).and(Filter::eq("y", 123456789.123)),
        Filter::range("x").gt(9007199254740993.0).lt(1e300),
        Filter::range("x").gte(-1e-300).lte(-0.0),
        Filter::range("x").gte(999999999999999.0),
        Filter::range("x").gte(-999999999999999.0),
        Filter::And(vec![
            Filter::And(vec![Filter::exists("a"), Filter::exists("b")]),
            Filter::Or(vec![]),
            Filter::And(vec![]).not(),
        ]),
        Filter::Or(vec![
            Filter::Or(vec![Filter::exists("a"), Filter::exists("b")]),
            Filter::And(vec![Filter::exists("c"), Filter::exists("d")]),
        ])
        .not()
        .not(),
        Filter::eq("NOT", "in").and(Filter::has_term("\u{0}\u{7f}\u{2028}\"")),
        Filter::any_of("In", [Value::Float(1.0), Value::Int(1), Value::Bool(false)]),
        Filter::eq("x", Value::Float(1e21)),
        Filter::eq("x", Value::Float(-123.0)),
    ];
    for f in &filters {
        roundtrip(f);
    }
    for x in [0.5, 1.0, 1e-7, 1e15, 1e16, 1e300, 5e-324, 12345.678, -0.0] {
        let s = format!("{x:?}");
        assert!(s.contains(['.', 'e']), "{s}");
    }
}

/// The JSON shown in `docs/filters.md`: `Serialize` writes the operator form, and the old
/// tree form (the documented alias) reads back to the same filter.
#[test]
fn json_form_in_the_docs() {
    let cases = [
        (
            r#"lang = "en" AND year >= 2020"#,
            r#"{"$and":[{"lang":"en"},{"year":{"$gte":2020.0}}]}"#,
            r#"{"and":[{"eq":{"field":"lang","value":"en"}},{"range":{"field":"year","gte":2020.0}}]}"#,
        ),
        (
            r#"tags IN ("a", "b") OR NOT EXISTS(author)"#,
            r#"{"$or":[{"tags":{"$in":["a","b"]}},{"$not":{"author":{"$exists":true}}}]}"#,
            r#"{"or":[{"in":{"field":"tags","values":["a","b"]}},{"not":{"exists":{"field":"author"}}}]}"#,
        ),
        (
            r#"0 < score <= 1.5 AND HAS_TERM("rust") AND draft != true"#,
            r#"{"$and":[{"score":{"$gt":0.0,"$lte":1.5}},{"$contains":"rust"},{"$not":{"draft":true}}]}"#,
            r#"{"and":[{"range":{"field":"score","gt":0.0,"lte":1.5}},{"has_term":{"term":"rust"}},{"not":{"eq":{"field":"draft","value":true}}}]}"#,
        ),
    ];
    for (text, json, old) in cases {
        let f = p(text);
        assert_eq!(serde_json::to_string(&f).ok().as_deref(), Some(json));
        assert_eq!(Filter::from_json(json).ok().as_ref(), Some(&f), "{json}");
        assert_eq!(Filter::from_json(old).ok().as_ref(), Some(&f), "{old}");
    }
}
