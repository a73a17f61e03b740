//! The condition language: a small Falco-like grammar, parsed into an AST
//! whose every node remembers its byte offset in the condition text, so
//! errors point at the exact column.
//!
//! ```text
//! expr     := and ("or" and)*
//! and      := unary ("and" unary)*
//! unary    := "not" unary | "(" expr ")" | test | MACRO
//! test     := FIELD OP operand | FIELD "exists"
//! operand  := value | "(" value ("," value)* ")" | LIST
//! value    := bare-word | "quoted" | 'quoted'
//! ```
//!
//! Hand-written: a recursive-descent parser over a dozen tokens is shorter
//! than a grammar for a parser generator, and yields the offsets we need.
//! Its recursion is bounded by [`MAX_NESTING`], so no text can exhaust the
//! stack (rule files arrive by SIGHUP into a running sensor).
use std::fmt;

/// How deep `not` and parentheses may nest in one condition. Real rules
/// use a handful of levels; the bound keeps recursion over the tree (here,
/// when compiling and when evaluating) far from the stack's end.
pub const MAX_NESTING: usize = 64;

/// A parse error at a byte offset of the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the condition text.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

/// A word with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    /// The text (unquoted).
    pub text: String,
    /// Byte offset in the condition text.
    pub at: usize,
    /// It was quoted: never a list or macro name.
    pub quoted: bool,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=` or `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`: equal to one of a list.
    In,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
    /// `contains`
    Contains,
    /// `icontains`: ASCII case-insensitive contains.
    IContains,
    /// `glob`: shell pattern (`*`, `?`, `[...]`, `**`).
    Glob,
    /// `regex`: unanchored regular expression.
    Regex,
    /// `cidr`: address inside one of the networks.
    Cidr,
}

impl Op {
    fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "=" | "==" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "in" => Self::In,
            "startswith" => Self::StartsWith,
            "endswith" => Self::EndsWith,
            "contains" => Self::Contains,
            "icontains" => Self::IContains,
            "glob" => Self::Glob,
            "regex" => Self::Regex,
            "cidr" => Self::Cidr,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::In => "in",
            Self::StartsWith => "startswith",
            Self::EndsWith => "endswith",
            Self::Contains => "contains",
            Self::IContains => "icontains",
            Self::Glob => "glob",
            Self::Regex => "regex",
            Self::Cidr => "cidr",
        })
    }
}

/// The right-hand side of a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// One value, or a bare word naming a list.
    Value(Spanned),
    /// `(a, b, c)`; bare items may name lists, which expand in place.
    List(Vec<Spanned>),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// All of.
    And(Vec<Expr>),
    /// Any of.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// `field op operand`.
    Test {
        /// Field name.
        field: Spanned,
        /// Operator.
        op: Op,
        /// Offset of the operator.
        op_at: usize,
        /// Right-hand side.
        operand: Operand,
    },
    /// `field exists`.
    Exists(Spanned),
    /// A macro reference.
    Macro(Spanned),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    /// A bare word or operator symbol.
    Word(String),
    /// A quoted string.
    Quoted(String),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, SyntaxError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((Tok::LParen, i));
                i += 1;
            }
            b')' => {
                out.push((Tok::RParen, i));
                i += 1;
            }
            b',' => {
                out.push((Tok::Comma, i));
                i += 1;
            }
            b'=' | b'!' | b'<' | b'>' => {
                i += 1;
                if i < b.len() && b[i] == b'=' {
                    i += 1;
                }
                let sym = &src[start..i];
                if sym == "!" {
                    return Err(SyntaxError {
                        at: start,
                        message: "'!' alone is not an operator (use 'not' or '!=')".into(),
                    });
                }
                out.push((Tok::Word(sym.to_owned()), start));
            }
            b'"' | b'\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(ch) = src[i..].chars().next() else {
                        return Err(SyntaxError {
                            at: start,
                            message: "unterminated string".into(),
                        });
                    };
                    i += ch.len_utf8();
                    if ch as u32 == quote as u32 {
                        break;
                    }
                    // Only the quote and the backslash itself are escaped,
                    // so regexes keep their backslashes: '\d+\.log'.
                    let next = src[i..].chars().next();
                    if ch == '\\' && (next == Some(quote as char) || next == Some('\\')) {
                        s.push(next.unwrap_or('\\'));
                        i += 1;
                    } else {
                        s.push(ch);
                    }
                }
                out.push((Tok::Quoted(s), start));
            }
            _ => {
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t'
                            | b'\n'
                            | b'\r'
                            | b'('
                            | b')'
                            | b','
                            | b'='
                            | b'!'
                            | b'<'
                            | b'>'
                            | b'"'
                            | b'\''
                    )
                {
                    i += 1;
                }
                out.push((Tok::Word(src[start..i].to_owned()), start));
            }
        }
    }
    Ok(out)
}

struct Parser<'s> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    /// `not`s and open parentheses around the current position.
    depth: usize,
    _src: &'s str,
}

/// Parses a condition.
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(SyntaxError {
            at: 0,
            message: "empty condition".into(),
        });
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: src.len(),
        depth: 0,
        _src: src,
    };
    let e = p.or()?;
    if let Some((t, at)) = p.toks.get(p.pos) {
        return Err(SyntaxError {
            at: *at,
            message: format!("unexpected {} after a complete condition", describe(t)),
        });
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(q) => format!("string \"{q}\""),
    }
}

fn is_keyword(w: &str) -> bool {
    matches!(w, "and" | "or" | "not" | "exists") || Op::from_word(w).is_some()
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, a)| *a)
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.and()?];
        while self.peek_word("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.unary()?];
        while self.peek_word("and") {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::And(Vec::new()))
        } else {
            Expr::And(items)
        })
    }

    /// One level deeper for `f`, refused past [`MAX_NESTING`].
    fn nested<T>(
        &mut self,
        at: usize,
        f: impl FnOnce(&mut Self) -> Result<T, SyntaxError>,
    ) -> Result<T, SyntaxError> {
        if self.depth == MAX_NESTING {
            return Err(SyntaxError {
                at,
                message: format!("'not' and parentheses nest deeper than {MAX_NESTING} levels"),
            });
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.at();
        match self.toks.get(self.pos).cloned() {
            None => Err(SyntaxError {
                at,
                message: "condition ends where a test was expected".into(),
            }),
            Some((Tok::Word(w), _)) if w == "not" => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.nested(at, Self::unary)?)))
            }
            Some((Tok::LParen, _)) => {
                self.pos += 1;
                let e = self.nested(at, Self::or)?;
                match self.peek() {
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err(SyntaxError {
                        at: self.at(),
                        message: format!("expected ')' to close the '(' at offset {at}"),
                    }),
                }
            }
            Some((Tok::Word(w), _)) if !is_keyword(&w) => {
                self.pos += 1;
                let name = Spanned {
                    text: w,
                    at,
                    quoted: false,
                };
                self.after_word(name)
            }
            Some((t, _)) => Err(SyntaxError {
                at,
                message: format!("expected a field test or macro, found {}", describe(&t)),
            }),
        }
    }

    /// After a leading word: a test if an operator follows, else a macro.
    fn after_word(&mut self, name: Spanned) -> Result<Expr, SyntaxError> {
        let op_at = self.at();
        let Some(Tok::Word(w)) = self.peek().cloned() else {
            return Ok(Expr::Macro(name));
        };
        if w == "exists" {
            self.pos += 1;
            return Ok(Expr::Exists(name));
        }
        let Some(op) = Op::from_word(&w) else {
            if w == "and" || w == "or" {
                return Ok(Expr::Macro(name));
            }
            return Err(SyntaxError {
                at: op_at,
                message: format!("unknown operator '{w}' after '{}'", name.text),
            });
        };
        self.pos += 1;
        let operand = self.operand()?;
        Ok(Expr::Test {
            field: name,
            op,
            op_at,
            operand,
        })
    }

    fn value(&mut self) -> Result<Spanned, SyntaxError> {
        let at = self.at();
        match self.toks.get(self.pos).cloned() {
            Some((Tok::Word(w), _)) if w != "and" && w != "or" => {
                self.pos += 1;
                Ok(Spanned {
                    text: w,
                    at,
                    quoted: false,
                })
            }
            Some((Tok::Quoted(q), _)) => {
                self.pos += 1;
                Ok(Spanned {
                    text: q,
                    at,
                    quoted: true,
                })
            }
            Some((t, _)) => Err(SyntaxError {
                at,
                message: format!("expected a value, found {}", describe(&t)),
            }),
            None => Err(SyntaxError {
                at,
                message: "condition ends where a value was expected".into(),
            }),
        }
    }

    fn operand(&mut self) -> Result<Operand, SyntaxError> {
        if self.peek() != Some(&Tok::LParen) {
            return Ok(Operand::Value(self.value()?));
        }
        let open = self.at();
        self.pos += 1;
        let mut items = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.pos += 1;
            return Ok(Operand::List(items));
        }
        loop {
            items.push(self.value()?);
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::RParen) => {
                    self.pos += 1;
                    return Ok(Operand::List(items));
                }
                _ => {
                    return Err(SyntaxError {
                        at: self.at(),
                        message: format!("expected ',' or ')' in the list opened at offset {open}"),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, at: usize) -> Spanned {
        Spanned {
            text: text.into(),
            at,
            quoted: false,
        }
    }

    #[test]
    fn precedence_not_and_or() {
        let e = parse("a or not b and c").unwrap();
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::Macro(w("a", 0)),
                Expr::And(vec![
                    Expr::Not(Box::new(Expr::Macro(w("b", 9)))),
                    Expr::Macro(w("c", 15)),
                ]),
            ])
        );
    }

    #[test]
    fn tests_lists_and_quotes() {
        let e = parse(r#"proc.name in (tar, "7z", archivers) and open.path startswith '/tmp/'"#)
            .unwrap();
        let Expr::And(items) = e else { panic!() };
        let Expr::Test {
            op: Op::In,
            operand: Operand::List(l),
            ..
        } = &items[0]
        else {
            panic!()
        };
        assert_eq!(l.len(), 3);
        assert!(l[1].quoted && !l[2].quoted);
        assert!(matches!(
            &items[1],
            Expr::Test { op: Op::StartsWith, operand: Operand::Value(v), .. } if v.text == "/tmp/"
        ));
    }

    #[test]
    fn backslashes_stay_except_before_quotes() {
        let e = parse(r#"proc.cmdline regex '\s+-c\'x' and a = "q\"\\""#).unwrap();
        let Expr::And(items) = e else { panic!() };
        assert!(
            matches!(&items[0], Expr::Test { operand: Operand::Value(v), .. } if v.text == r"\s+-c'x")
        );
        assert!(
            matches!(&items[1], Expr::Test { operand: Operand::Value(v), .. } if v.text == r#"q"\"#)
        );
    }

    #[test]
    fn symbols_without_spaces() {
        let e = parse("connect.port>=1024 and proc.uid!=0").unwrap();
        let Expr::And(items) = e else { panic!() };
        assert!(matches!(
            &items[0],
            Expr::Test {
                op: Op::Ge,
                op_at: 12,
                ..
            }
        ));
        assert!(matches!(&items[1], Expr::Test { op: Op::Ne, .. }));
    }

    #[test]
    fn errors_carry_offsets() {
        let e = parse("proc.name = tar and (open.path exists").unwrap_err();
        assert_eq!(e.at, 37, "{e:?}");
        let e = parse("proc.name likes tar").unwrap_err();
        assert_eq!((e.at, e.message.contains("likes")), (10, true));
        let e = parse("proc.name in (a b)").unwrap_err();
        assert_eq!(e.at, 16);
        let e = parse("proc.name = 'open").unwrap_err();
        assert_eq!(e.at, 12);
        let e = parse("a and").unwrap_err();
        assert_eq!(e.at, 5);
        let e = parse("a b").unwrap_err();
        assert_eq!(e.at, 2);
    }
}
