//! The text syntax of filters: [`Filter::parse`] reads it and `Display` prints it.
//!
//! A hand-written recursive-descent parser over a lazily lexed token stream. Positions are
//! counted in characters (the input is decoded into a `Vec<char>` once), so errors report the
//! 1-based column a reader sees and the code never slices a `str` at a byte offset.

use std::fmt::{self, Write as _};

use super::{Bounds, Filter};
use crate::error::{Error, Result};
use crate::model::record::Value;

/// How deep parentheses and `NOT`s may nest in the text; deeper input is rejected with a syntax
/// error (this bounds the parser's recursion). The filter's own limit, [`Filter::MAX_DEPTH`], is
/// checked by `validate` on what was parsed. Twice that limit, so that every filter `validate`
/// accepts prints (at most a `NOT` and a `(` a level) as text that parses back.
const MAX_NESTING: usize = 2 * Filter::MAX_DEPTH;

/// Reserved words (matched case-insensitively); a field with one of these names is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    And,
    Or,
    Not,
    In,
    Exists,
    HasTerm,
    True,
    False,
}

const KEYWORDS: [(&str, Kw); 8] = [
    ("AND", Kw::And),
    ("OR", Kw::Or),
    ("NOT", Kw::Not),
    ("IN", Kw::In),
    ("EXISTS", Kw::Exists),
    ("HAS_TERM", Kw::HasTerm),
    ("TRUE", Kw::True),
    ("FALSE", Kw::False),
];

fn keyword(word: &str) -> Option<Kw> {
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|&(_, kw)| kw)
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Op(Cmp),
    Str(String),
    Int(i64),
    Float(f64),
    /// A bare word: a field name, or a keyword when [`keyword`] knows it.
    Word(String),
    /// A backtick-quoted field name (never a keyword).
    Quoted(String),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Index of the first character.
    start: usize,
    /// Index one past the last character.
    end: usize,
}

impl Token {
    fn column(&self) -> usize {
        self.start + 1
    }

    fn keyword(&self) -> Option<Kw> {
        match &self.tok {
            Tok::Word(w) => keyword(w),
            _ => None,
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    /// Index of the next character to lex.
    pos: usize,
    peeked: Option<Token>,
    /// Open parentheses and `NOT`s around the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            chars: input.chars().collect(),
            pos: 0,
            peeked: None,
            depth: 0,
        }
    }

    /// A syntax error at character index `at` (0-based).
    fn error_at(&self, at: usize, message: impl Into<String>) -> Error {
        Error::FilterSyntax {
            column: at + 1,
            message: message.into(),
            input: self.input.to_owned(),
        }
    }

    fn char_at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    /// Up to 40 characters of the source of `t`, for messages.
    fn excerpt(&self, t: &Token) -> String {
        let end = t.end.min(self.chars.len());
        let text: String = self.chars[t.start.min(end)..end].iter().take(40).collect();
        if end - t.start.min(end) > 40 {
            format!("{text}…")
        } else {
            text
        }
    }

    /// A field token as written, in backticks (a quoted one has its own).
    fn field_excerpt(&self, t: &Token) -> String {
        match t.tok {
            Tok::Quoted(_) => self.excerpt(t),
            _ => format!("`{}`", self.excerpt(t)),
        }
    }

    /// How a token is named in "expected …, found …" messages.
    fn describe(&self, t: &Token) -> String {
        match &t.tok {
            Tok::Eof => "the end of the input".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) | Tok::Float(_) => format!("the number `{}`", self.excerpt(t)),
            Tok::Word(w) if keyword(w).is_some() => {
                format!("the keyword `{}`", w.to_ascii_uppercase())
            }
            Tok::Word(_) | Tok::Quoted(_) => format!("the field name {}", self.field_excerpt(t)),
            Tok::LParen | Tok::RParen | Tok::Comma | Tok::Op(_) => {
                format!("`{}`", self.excerpt(t))
            }
        }
    }

    fn unexpected(&self, t: &Token, expected: &str) -> Error {
        self.error_at(
            t.start,
            format!("expected {expected}, found {}", self.describe(t)),
        )
    }

    // ---- lexer -------------------------------------------------------------------------

    fn peek(&mut self) -> Result<&Token> {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lex()?,
        };
        Ok(self.peeked.insert(t))
    }

    fn next(&mut self) -> Result<Token> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn peek_keyword(&mut self, kw: Kw) -> Result<bool> {
        Ok(self.peek()?.keyword() == Some(kw))
    }

    fn lex(&mut self) -> Result<Token> {
        while self.char_at(self.pos).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.char_at(start) else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
        };
        let next = self.char_at(start + 1);
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '=' => (Tok::Op(Cmp::Eq), 1),
            '!' if next == Some('=') => (Tok::Op(Cmp::Ne), 2),
            '!' => return Err(self.error_at(start, "unexpected `!`: did you mean `!=`?")),
            '>' if next == Some('=') => (Tok::Op(Cmp::Ge), 2),
            '>' => (Tok::Op(Cmp::Gt), 1),
            '<' if next == Some('=') => (Tok::Op(Cmp::Le), 2),
            '<' => (Tok::Op(Cmp::Lt), 1),
            '"' => return self.lex_string(),
            '`' => return self.lex_quoted_field(),
            '0'..='9' => return self.lex_number(),
            '-' if next.is_some_and(|d| d.is_ascii_digit()) => return self.lex_number(),
            '-' => {
                return Err(self.error_at(
                    start,
                    "unexpected `-`: a negative number is written with the digits right \
                     after the sign, like -5",
                ));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = start + 1;
                while self.char_at(end).is_some_and(is_ident_char) {
                    end += 1;
                }
                self.pos = end;
                let word = self.chars[start..end].iter().collect();
                return Ok(Token {
                    tok: Tok::Word(word),
                    start,
                    end,
                });
            }
            c => {
                return Err(self.error_at(
                    start,
                    format!(
                        "unexpected character {c:?}: expected a field name, a value, an \
                         operator or a parenthesis (strings are written in double quotes, \
                         unusual field names in backticks)"
                    ),
                ));
            }
        };
        self.pos = start + len;
        Ok(Token {
            tok,
            start,
            end: start + len,
        })
    }

    fn take_digits(&mut self) -> usize {
        let from = self.pos;
        while self.char_at(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - from
    }

    /// `-?digits(.digits)?([eE][+-]?digits)?`; a fraction or an exponent makes it a float.
    fn lex_number(&mut self) -> Result<Token> {
        let start = self.pos;
        if self.char_at(self.pos) == Some('-') {
            self.pos += 1;
        }
        self.take_digits();
        let mut float = false;
        if self.char_at(self.pos) == Some('.') {
            float = true;
            self.pos += 1;
            if self.take_digits() == 0 {
                return Err(self.error_at(self.pos, "expected a digit after the decimal point"));
            }
        }
        if matches!(self.char_at(self.pos), Some('e' | 'E')) {
            float = true;
            self.pos += 1;
            if matches!(self.char_at(self.pos), Some('+' | '-')) {
                self.pos += 1;
            }
            if self.take_digits() == 0 {
                return Err(self.error_at(self.pos, "expected the digits of the exponent"));
            }
        }
        if let Some(c) = self
            .char_at(self.pos)
            .filter(|&c| is_ident_char(c) && c != '-')
        {
            return Err(self.error_at(
                self.pos,
                format!("unexpected {c:?} in a number: put a space between a number and a word"),
            ));
        }
        let end = self.pos;
        let text: String = self.chars[start..end].iter().collect();
        let tok = if float {
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Tok::Float(x),
                _ => {
                    return Err(self.error_at(
                        start,
                        format!("number `{text}` is out of range for a 64-bit float"),
                    ));
                }
            }
        } else {
            match text.parse::<i64>() {
                Ok(i) => Tok::Int(i),
                Err(_) => {
                    return Err(self.error_at(
                        start,
                        format!(
                            "integer `{text}` does not fit in 64 bits (from {} to {}); \
                             write a float such as 1e19 for a larger number",
                            i64::MIN,
                            i64::MAX
                        ),
                    ));
                }
            }
        };
        Ok(Token { tok, start, end })
    }

    /// `"…"` with the escapes `\" \\ \n \t \r \u{HEX}`.
    fn lex_string(&mut self) -> Result<Token> {
        let start = self.pos;
        self.pos += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.char_at(self.pos) else {
                return Err(self.error_at(start, "unterminated string: expected a closing `\"`"));
            };
            self.pos += 1;
            match c {
                '"' => break,
                '\\' => {
                    let esc = self.pos - 1;
                    let Some(e) = self.char_at(self.pos) else {
                        return Err(
                            self.error_at(start, "unterminated string: expected a closing `\"`")
                        );
                    };
                    self.pos += 1;
                    s.push(match e {
                        '"' => '"',
                        '\\' => '\\',
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'u' => self.unicode_escape(esc)?,
                        other => {
                            return Err(self.error_at(
                                esc,
                                format!(
                                    "unknown escape `\\{other}` in a string: use \\\" \\\\ \\n \
                                     \\t \\r or \\u{{HEX}}"
                                ),
                            ));
                        }
                    });
                }
                c => s.push(c),
            }
        }
        Ok(Token {
            tok: Tok::Str(s),
            start,
            end: self.pos,
        })
    }

    /// The `{HEX}` after `\u`; `esc` is the backslash's index.
    fn unicode_escape(&mut self, esc: usize) -> Result<char> {
        let bad = |p: &Self| {
            p.error_at(
                esc,
                "malformed escape: write a character as \\u{HEX} with 1 to 6 hex digits",
            )
        };
        if self.char_at(self.pos) != Some('{') {
            return Err(bad(self));
        }
        self.pos += 1;
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            match self.char_at(self.pos) {
                Some('}') if digits > 0 => {
                    self.pos += 1;
                    break;
                }
                Some(h) if h.is_ascii_hexdigit() && digits < 6 => {
                    code = code * 16 + h.to_digit(16).unwrap_or(0);
                    digits += 1;
                    self.pos += 1;
                }
                _ => return Err(bad(self)),
            }
        }
        char::from_u32(code).ok_or_else(|| {
            self.error_at(
                esc,
                format!("\\u{{{code:X}}} is not a Unicode scalar value"),
            )
        })
    }

    /// `` `…` `` with the escapes `` \` `` and `\\`.
    fn lex_quoted_field(&mut self) -> Result<Token> {
        let start = self.pos;
        self.pos += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.char_at(self.pos) else {
                return Err(self.error_at(
                    start,
                    "unterminated field name: expected a closing backtick",
                ));
            };
            self.pos += 1;
            match c {
                '`' => break,
                '\\' => match self.char_at(self.pos) {
                    Some(e @ ('`' | '\\')) => {
                        self.pos += 1;
                        s.push(e);
                    }
                    Some(other) => {
                        return Err(self.error_at(
                            self.pos - 1,
                            format!("unknown escape `\\{other}` in a field name: use \\` or \\\\"),
                        ));
                    }
                    None => {
                        return Err(self.error_at(
                            start,
                            "unterminated field name: expected a closing backtick",
                        ));
                    }
                },
                c => s.push(c),
            }
        }
        Ok(Token {
            tok: Tok::Quoted(s),
            start,
            end: self.pos,
        })
    }

    // ---- parser ------------------------------------------------------------------------

    /// Enters a parenthesis or `NOT` at character index `at`.
    fn enter(&mut self, at: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error_at(
                at,
                format!("filter nested too deeply: at most {MAX_NESTING} parentheses and NOTs"),
            ));
        }
        Ok(())
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token> {
        let t = self.next()?;
        if t.tok == tok {
            Ok(t)
        } else {
            Err(self.unexpected(&t, what))
        }
    }

    /// `and ("OR" and)*`
    fn or(&mut self) -> Result<Filter> {
        let first = self.and()?;
        if !self.peek_keyword(Kw::Or)? {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.peek_keyword(Kw::Or)? {
            self.next()?;
            operands.push(self.and()?);
        }
        Ok(Filter::Or(operands))
    }

    /// `unary ("AND" unary)*`
    fn and(&mut self) -> Result<Filter> {
        let first = self.unary()?;
        if !self.peek_keyword(Kw::And)? {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.peek_keyword(Kw::And)? {
            self.next()?;
            operands.push(self.unary()?);
        }
        Ok(Filter::And(operands))
    }

    /// `"NOT" unary | primary`
    fn unary(&mut self) -> Result<Filter> {
        if self.peek_keyword(Kw::Not)? {
            let not = self.next()?;
            self.enter(not.start)?;
            let operand = self.unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(operand)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter> {
        const A_FILTER: &str = "a condition (a field name, a number starting a range `low < \
                                field < high`, `(`, NOT, EXISTS, HAS_TERM, TRUE or FALSE)";
        let t = self.next()?;
        match &t.tok {
            Tok::LParen => {
                self.enter(t.start)?;
                let inner = self.or()?;
                let close = self.next()?;
                if close.tok != Tok::RParen {
                    let msg = format!("`)` to close the `(` at column {}", t.column());
                    return Err(self.unexpected(&close, &msg));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Word(w) => match keyword(w) {
                Some(Kw::Exists) => {
                    self.expect(Tok::LParen, "`(` after EXISTS")?;
                    let field = self.field()?;
                    self.expect(Tok::RParen, "`)` after the field name")?;
                    Ok(Filter::Exists { field })
                }
                Some(Kw::HasTerm) => {
                    self.expect(Tok::LParen, "`(` after HAS_TERM")?;
                    let s = self.next()?;
                    let Tok::Str(term) = s.tok else {
                        return Err(self.unexpected(&s, "a string (the term, in double quotes)"));
                    };
                    self.expect(Tok::RParen, "`)` after the term")?;
                    Ok(Filter::HasTerm { term })
                }
                Some(Kw::True) => Ok(Filter::And(vec![])),
                Some(Kw::False) => Ok(Filter::Or(vec![])),
                Some(_) => Err(self.unexpected(&t, A_FILTER)),
                None => {
                    let field = w.clone();
                    self.comparison(field, &t)
                }
            },
            Tok::Quoted(name) => {
                let field = name.clone();
                self.comparison(field, &t)
            }
            Tok::Int(_) | Tok::Float(_) => self.two_sided_range(&t),
            _ => Err(self.unexpected(&t, A_FILTER)),
        }
    }

    /// A field name: a bare word that is not a keyword, or a backtick-quoted name.
    fn field(&mut self) -> Result<String> {
        let t = self.next()?;
        match t.tok {
            Tok::Word(w) if keyword(&w).is_some() => Err(self.error_at(
                t.start,
                format!(
                    "expected a field name, found the keyword `{}` (write a field of that name \
                     in backticks: `{w}`)",
                    w.to_ascii_uppercase()
                ),
            )),
            Tok::Word(w) | Tok::Quoted(w) => Ok(w),
            _ => Err(self.unexpected(&t, "a field name")),
        }
    }

    /// What follows a field name: a comparison, `IN (…)` or `NOT IN (…)`.
    fn comparison(&mut self, field: String, field_token: &Token) -> Result<Filter> {
        let t = self.next()?;
        match t.tok {
            Tok::Op(Cmp::Eq) => Ok(Filter::Eq {
                field,
                value: self.value()?,
            }),
            Tok::Op(Cmp::Ne) => Ok(Filter::Not(Box::new(Filter::Eq {
                field,
                value: self.value()?,
            }))),
            Tok::Op(op) => {
                let x = self.number(op)?;
                let mut bounds = Bounds::default();
                let slot = match op {
                    Cmp::Gt => &mut bounds.gt,
                    Cmp::Ge => &mut bounds.gte,
                    Cmp::Lt => &mut bounds.lt,
                    _ => &mut bounds.lte,
                };
                *slot = Some(x);
                Ok(Filter::Range { field, bounds })
            }
            _ if t.keyword() == Some(Kw::In) => Ok(Filter::In {
                field,
                values: self.list()?,
            }),
            _ if t.keyword() == Some(Kw::Not) => {
                let t = self.next()?;
                if t.keyword() != Some(Kw::In) {
                    return Err(self.unexpected(&t, "IN after NOT"));
                }
                Ok(Filter::Not(Box::new(Filter::In {
                    field,
                    values: self.list()?,
                })))
            }
            _ => {
                let msg = format!(
                    "`=`, `!=`, `>`, `>=`, `<`, `<=`, IN or NOT IN after the field name {}",
                    self.field_excerpt(field_token)
                );
                Err(self.unexpected(&t, &msg))
            }
        }
    }

    /// A value: a string, an integer, a float, `true` or `false`.
    fn value(&mut self) -> Result<Value> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(s) => Ok(Value::Str(s)),
            Tok::Int(i) => Ok(Value::Int(i)),
            Tok::Float(x) => Ok(Value::Float(x)),
            Tok::Word(ref w) => match keyword(w) {
                Some(Kw::True) => Ok(Value::Bool(true)),
                Some(Kw::False) => Ok(Value::Bool(false)),
                Some(_) => Err(self.unexpected(&t, "a value (a string, a number, true or false)")),
                None => Err(self.unexpected(
                    &t,
                    "a value (a string, a number, true or false; strings are written in \
                     double quotes)",
                )),
            },
            _ => Err(self.unexpected(&t, "a value (a string, a number, true or false)")),
        }
    }

    /// The number a range comparison `op` needs.
    fn number(&mut self, op: Cmp) -> Result<f64> {
        let t = self.next()?;
        match t.tok {
            Tok::Int(i) => Ok(i as f64),
            Tok::Float(x) => Ok(x),
            Tok::Str(_) => Err(self.error_at(
                t.start,
                format!(
                    "`{}` compares numbers: expected a number, found a string (use `=` or IN \
                     to match strings)",
                    op.symbol()
                ),
            )),
            _ => {
                let msg = format!("a number after `{}`", op.symbol());
                Err(self.unexpected(&t, &msg))
            }
        }
    }

    /// `"(" [value ("," value)*] ")"`
    fn list(&mut self) -> Result<Vec<Value>> {
        self.expect(Tok::LParen, "`(` to start the list of values")?;
        let mut values = Vec::new();
        if self.peek()?.tok == Tok::RParen {
            self.next()?;
            return Ok(values);
        }
        loop {
            values.push(self.value()?);
            let t = self.next()?;
            match t.tok {
                Tok::Comma => {}
                Tok::RParen => return Ok(values),
                _ => return Err(self.unexpected(&t, "`,` or `)` in the list of values")),
            }
        }
    }

    /// `number ("<" | "<=") field ("<" | "<=") number`, the first number already read.
    fn two_sided_range(&mut self, low: &Token) -> Result<Filter> {
        let lo = match low.tok {
            Tok::Int(i) => i as f64,
            Tok::Float(x) => x,
            _ => return Err(self.unexpected(low, "a number")),
        };
        let mut bounds = Bounds::default();
        let t = self.next()?;
        match t.tok {
            Tok::Op(Cmp::Lt) => bounds.gt = Some(lo),
            Tok::Op(Cmp::Le) => bounds.gte = Some(lo),
            _ => {
                return Err(self.unexpected(
                    &t,
                    "`<` or `<=` after the number (a range starting with a number is written \
                     `low < field <= high`)",
                ));
            }
        }
        let field = self.field()?;
        let t = self.next()?;
        let op = match t.tok {
            Tok::Op(op @ (Cmp::Lt | Cmp::Le)) => op,
            _ => {
                return Err(self.unexpected(
                    &t,
                    "`<` or `<=` and the upper bound (a range starting with a number is \
                     written `low < field <= high`)",
                ));
            }
        };
        let hi = self.number(op)?;
        if op == Cmp::Lt {
            bounds.lt = Some(hi);
        } else {
            bounds.lte = Some(hi);
        }
        Ok(Filter::Range { field, bounds })
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Whether `name` can be written without backticks.
fn is_plain_field(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_ident_char)
        && keyword(name).is_none()
}

impl Filter {
    /// Parses the text syntax of a filter, then [validates](Self::validate) it.
    ///
    /// ```text
    /// expr    := or
    /// or      := and ("OR" and)*
    /// and     := unary ("AND" unary)*
    /// unary   := "NOT" unary | primary
    /// primary := "(" expr ")" | "TRUE" | "FALSE"
    ///          | "EXISTS" "(" field ")"
    ///          | "HAS_TERM" "(" string ")"
    ///          | field ("=" | "!=" | ">" | ">=" | "<" | "<=") value
    ///          | field ["NOT"] "IN" "(" [value ("," value)*] ")"
    ///          | number ("<" | "<=") field ("<" | "<=") number
    /// field   := [A-Za-z_][A-Za-z0-9_.-]*  (not a keyword) | `back\`ticked \\ name`
    /// value   := string | integer | float | "true" | "false"
    /// string  := "…" with the escapes \" \\ \n \t \r \u{HEX}
    /// ```
    ///
    /// Keywords (`AND OR NOT IN EXISTS HAS_TERM TRUE FALSE`) are case-insensitive; a field
    /// with such a name is written in backticks. `AND` binds tighter than `OR`. A number with
    /// a `.` or an exponent is a [`Value::Float`], otherwise a [`Value::Int`] (it must fit in
    /// an `i64`). What each form becomes:
    ///
    /// | text | filter |
    /// |---|---|
    /// | `a = v` | `Eq` |
    /// | `a != v` | `Not(Eq)` |
    /// | `a > x`, `a >= x`, `a < x`, `a <= x` | `Range` with `gt`, `gte`, `lt`, `lte` |
    /// | `lo < a <= hi` (`<` or `<=` on each side) | `Range` with `gt`/`gte` and `lt`/`lte` |
    /// | `a IN (v, …)`, `a NOT IN (v, …)` | `In`, `Not(In)` (the list may be empty) |
    /// | `EXISTS(a)`, `HAS_TERM("t")` | `Exists`, `HasTerm` |
    /// | `TRUE`, `FALSE` | `And([])` (matches everything), `Or([])` (matches nothing) |
    /// | `x AND y AND z`, `x OR y` | one `And`/`Or` of all the operands |
    ///
    /// The parsed filter may nest `and`, `or` and `not` at most [`Filter::MAX_DEPTH`] (64)
    /// deep; the text may nest parentheses and `NOT`s at most 128 deep.
    ///
    /// # Errors
    /// [`Error::FilterSyntax`] with the 1-based column (in characters) of the problem and what
    /// was expected there (also for more than 128 nested parentheses and `NOT`s);
    /// [`Error::FilterTooDeep`] when the filter is nested deeper than [`Filter::MAX_DEPTH`];
    /// [`Error::InvalidFilter`] when the filter parses but does not validate otherwise (an
    /// empty field name or a blank term).
    ///
    /// ```
    /// use cairndb::{Error, Filter};
    ///
    /// let f = Filter::parse(r#"lang = "en" AND year >= 2020 AND NOT draft = true"#)?;
    /// assert_eq!(
    ///     f,
    ///     Filter::eq("lang", "en")
    ///         .and(Filter::range("year").gte(2020))
    ///         .and(Filter::eq("draft", true).not())
    /// );
    /// // Display prints the text syntax back.
    /// assert_eq!(f.to_string(), r#"lang = "en" AND year >= 2020 AND draft != true"#);
    ///
    /// let Err(Error::FilterSyntax { column, .. }) = Filter::parse("year >= ") else { panic!() };
    /// assert_eq!(column, 9);
    /// # Ok::<(), cairndb::Error>(())
    /// ```
    pub fn parse(input: &str) -> Result<Filter> {
        let mut p = Parser::new(input);
        let filter = p.or()?;
        let t = p.next()?;
        match t.tok {
            Tok::Eof => {}
            Tok::RParen => {
                return Err(p.error_at(t.start, "unmatched `)`: no `(` is open here"));
            }
            _ => return Err(p.unexpected(&t, "AND, OR or the end of the filter")),
        }
        filter.validate()?;
        Ok(filter)
    }
}

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
        // Invalid in a filter; printed as a list, which does not parse as a value.
        Value::StrList(list) => {
            out.write_char('(')?;
            for (i, s) in list.iter().enumerate() {
                if i > 0 {
                    out.write_str(", ")?;
                }
                write_string(s, out)?;
            }
            out.write_char(')')
        }
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

#[cfg(test)]
mod tests {
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

    /// The JSON shown in `docs/filters.md`.
    #[test]
    fn json_form_in_the_docs() {
        let f = p(r#"lang = "en" AND year >= 2020"#);
        assert_eq!(
            serde_json::to_string(&f).ok().as_deref(),
            Some(
                r#"{"and":[{"eq":{"field":"lang","value":"en"}},{"range":{"field":"year","gte":2020.0}}]}"#
            )
        );
        let f = p(r#"tags IN ("a", "b") OR NOT EXISTS(author)"#);
        assert_eq!(
            serde_json::to_string(&f).ok().as_deref(),
            Some(
                r#"{"or":[{"in":{"field":"tags","values":["a","b"]}},{"not":{"exists":{"field":"author"}}}]}"#
            )
        );
        let f = p(r#"0 < score <= 1.5 AND HAS_TERM("rust") AND draft != true"#);
        assert_eq!(
            serde_json::to_string(&f).ok().as_deref(),
            Some(
                r#"{"and":[{"range":{"field":"score","gt":0.0,"lte":1.5}},{"has_term":{"term":"rust"}},{"not":{"eq":{"field":"draft","value":true}}}]}"#
            )
        );
        let back: Filter = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
