//! The text syntax of filters: [`Filter::parse`] reads it (`display.rs` prints it).
//!
//! A hand-written recursive-descent parser over a lazily lexed token stream. Positions are
//! counted in characters (the input is decoded into a `Vec<char>` once), so errors report the
//! 1-based column a reader sees and the code never slices a `str` at a byte offset.

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
pub(super) fn is_plain_field(name: &str) -> bool {
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

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
