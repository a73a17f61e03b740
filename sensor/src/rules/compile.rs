//! Conditions compiled once at load into predicate trees: fields resolved to
//! accessors, values parsed to their field's type, globs and regexes built,
//! lists and macros expanded. Evaluation then only compares.
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use globset::{GlobBuilder, GlobSetBuilder};
use ipnet::IpNet;

use super::{
    condition::{Expr, Op, Operand, Spanned},
    fields::{self, Field, Prepared, Type, Val},
};
use crate::event::{Kind, RULED_KINDS, Record};

/// A compile error at a byte offset of the condition text.
#[derive(Debug, Clone)]
pub struct CompileError {
    /// Byte offset in the condition where the problem is.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, CompileError> {
    Err(CompileError {
        at,
        message: message.into(),
    })
}

/// A value test on one field value.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The field has a value.
    Exists,
    /// Equal to one of.
    StrIn(Strings),
    /// Starts with one of.
    Prefix(Vec<Box<[u8]>>),
    /// Ends with one of.
    Suffix(Vec<Box<[u8]>>),
    /// Contains one of.
    Contains(Needles),
    /// Contains one of, ASCII case-insensitively (needles lowercased).
    IContains(Vec<Box<[u8]>>),
    /// Matches one of the globs.
    Glob(globset::GlobSet),
    /// Matches one of the regexes.
    Regex(regex::bytes::RegexSet),
    /// Numeric comparison.
    IntCmp(Op, i64),
    /// Equal to one of.
    IntIn(Vec<i64>),
    /// Boolean equality.
    Bool(bool),
    /// Inside one of the networks (a plain address is a /32 or /128).
    Net(Vec<IpNet>),
}

/// The values of an `in` test. Lists of names (package managers, mail
/// programs, ...) are tested against every ancestor's name, so longer ones
/// are hashed: a scan compares every entry of the same length.
#[derive(Debug, Clone)]
pub struct Strings {
    items: Vec<Box<[u8]>>,
    index: Option<HashSet<Box<[u8]>, foldhash::fast::FixedState>>,
}

impl Strings {
    /// Up to this many entries, a scan is as fast as a hash.
    const SCAN_MAX: usize = 4;

    fn new(items: Vec<Box<[u8]>>) -> Self {
        let index = (items.len() > Self::SCAN_MAX).then(|| items.iter().cloned().collect());
        Self { items, index }
    }

    #[inline]
    fn contains(&self, s: &[u8]) -> bool {
        match &self.index {
            Some(set) => set.contains(s),
            None => self.items.iter().any(|x| **x == *s),
        }
    }
}

/// The values of a `contains` test, searched for together: one pass over
/// the value instead of one per needle (paths against the mail stores'
/// directories).
#[derive(Debug, Clone)]
pub struct Needles {
    items: Vec<Box<[u8]>>,
    searcher: aho_corasick::AhoCorasick,
}

impl Needles {
    fn new(items: Vec<Box<[u8]>>) -> Result<Self, aho_corasick::BuildError> {
        Ok(Self {
            searcher: aho_corasick::AhoCorasick::new(&items)?,
            items,
        })
    }
}

impl std::ops::Deref for Needles {
    type Target = [Box<[u8]>];

    fn deref(&self) -> &Self::Target {
        &self.items
    }
}

impl std::ops::Deref for Strings {
    type Target = [Box<[u8]>];

    fn deref(&self) -> &Self::Target {
        &self.items
    }
}

impl Matcher {
    #[inline]
    fn test(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Self::Exists, _) => true,
            (Self::StrIn(set), Val::Str(s)) => set.contains(s),
            (Self::Prefix(set), Val::Str(s)) => set.iter().any(|x| has_prefix(s, x)),
            (Self::Suffix(set), Val::Str(s)) => set.iter().any(|x| has_suffix(s, x)),
            (Self::Contains(set), Val::Str(s)) => set.searcher.is_match(s),
            (Self::IContains(set), Val::Str(s)) => set.iter().any(|n| icontains(s, n)),
            (Self::Glob(g), Val::Str(s)) => g.is_match(bytes_path(s)),
            (Self::Regex(r), Val::Str(s)) => r.is_match(s),
            (Self::IntCmp(op, x), Val::Int(v)) => match op {
                Op::Eq => v == *x,
                Op::Lt => v < *x,
                Op::Le => v <= *x,
                Op::Gt => v > *x,
                Op::Ge => v >= *x,
                _ => false,
            },
            (Self::IntIn(set), Val::Int(v)) => set.contains(&v),
            (Self::Bool(b), Val::Bool(v)) => *b == v,
            (Self::Net(nets), Val::Ip(a)) => nets.iter().any(|n| n.contains(&a)),
            _ => false,
        }
    }
}

/// `starts_with`, first comparing the byte where the prefix would end:
/// lists of directories differ there from most paths, and the full
/// compare is a call to memcmp.
#[inline]
fn has_prefix(s: &[u8], p: &[u8]) -> bool {
    match p.len().checked_sub(1) {
        None => true,
        Some(last) => s.get(last) == p.get(last) && s.starts_with(p),
    }
}

/// `ends_with`, first comparing the byte where the suffix would start (a
/// file-name suffix's dot).
#[inline]
fn has_suffix(s: &[u8], x: &[u8]) -> bool {
    match s.len().checked_sub(x.len()) {
        None => false,
        Some(at) => x.is_empty() || (s[at] == x[0] && s.ends_with(x)),
    }
}

fn icontains(hay: &[u8], needle_lower: &[u8]) -> bool {
    needle_lower.is_empty()
        || hay.windows(needle_lower.len()).any(|w| {
            w.iter()
                .zip(needle_lower)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Pred {
    /// All of.
    And(Vec<Pred>),
    /// Any of.
    Or(Vec<Pred>),
    /// Negation.
    Not(Box<Pred>),
    /// Some value of the field passes.
    Test(Field, Matcher),
    /// The record is of one of these kinds (bits of [`Kind`]): `evt.type`
    /// equality, without comparing names.
    Kind(u32),
    /// Reads only the acting process and its container: evaluated once per
    /// process, in this slot (see `memo`).
    Memo(usize, Box<Pred>),
}

impl Pred {
    /// Evaluates against a record.
    #[inline]
    pub fn eval(&self, rec: &Record, prep: &Prepared) -> bool {
        match self {
            Self::And(v) => v.iter().all(|p| p.eval(rec, prep)),
            Self::Or(v) => v.iter().any(|p| p.eval(rec, prep)),
            Self::Not(p) => !p.eval(rec, prep),
            Self::Test(field, m) => field.any(rec, prep, &mut |v| m.test(v)),
            Self::Kind(kinds) => prep.kind() & kinds != 0,
            Self::Memo(slot, p) => prep.memo(*slot, || p.eval(rec, prep)),
        }
    }

    /// The kinds of record this can match (bits of [`Kind`]): lets the
    /// engine skip rules that constrain `evt.type` to other kinds.
    pub fn kinds(&self) -> u32 {
        match self {
            Self::And(v) => v.iter().fold(RULED_KINDS, |acc, p| acc & p.kinds()),
            Self::Or(v) => v.iter().fold(0, |acc, p| acc | p.kinds()),
            Self::Kind(kinds) => *kinds,
            Self::Memo(_, p) => p.kinds(),
            Self::Not(_) | Self::Test(..) => RULED_KINDS,
        }
    }
}

/// Named lists and macros visible to conditions.
pub struct Scope<'a> {
    /// List name -> values.
    pub lists: &'a HashMap<String, Vec<String>>,
    /// Macro name -> parsed condition.
    pub macros: &'a HashMap<String, Expr>,
}

/// Compile failure: in this condition, or inside the text of a macro it
/// uses (reported where that macro is defined).
#[derive(Debug, Clone)]
pub enum Failure {
    /// At an offset of the condition being compiled.
    Here(CompileError),
    /// At an offset of macro `name`'s condition.
    InMacro {
        /// The macro whose text has the error.
        name: String,
        /// The error in it.
        error: CompileError,
    },
}

impl From<CompileError> for Failure {
    fn from(e: CompileError) -> Self {
        Self::Here(e)
    }
}

fn fail(at: usize, message: impl Into<String>) -> Failure {
    Failure::Here(CompileError {
        at,
        message: message.into(),
    })
}

/// How deep a compiled condition may be once macros are expanded: each
/// condition text is bounded by [`super::condition::MAX_NESTING`], but a
/// chain of macros stacks them. Recursion over [`Pred`] (evaluation,
/// memoizing, interest) stays bounded by this.
pub const MAX_DEPTH: usize = 512;

/// How many nodes a condition may expand to: macros used twice by macros
/// used twice... grow exponentially, and a rule file must not be able to
/// hang or exhaust the sensor that loads it.
pub const MAX_NODES: usize = 1 << 16;

/// Compiles a parsed condition.
pub fn compile(e: &Expr, scope: &Scope<'_>) -> Result<Pred, Failure> {
    Expansion::new(scope, None).compile(e, 0)
}

/// Compiles macro `name`'s own condition, so that its errors (a reference
/// to itself included) are reported in its text even when no rule uses it.
pub fn compile_macro(name: &str, e: &Expr, scope: &Scope<'_>) -> Result<Pred, Failure> {
    Expansion::new(scope, Some(name)).compile(e, 0)
}

/// Where `e` starts: its leftmost word.
fn start_of(mut e: &Expr) -> usize {
    loop {
        match e {
            Expr::And(v) | Expr::Or(v) => match v.first() {
                Some(x) => e = x,
                None => return 0,
            },
            Expr::Not(x) => e = x,
            Expr::Test { field: w, .. } | Expr::Exists(w) | Expr::Macro(w) => return w.at,
        }
    }
}

/// One condition being compiled, with the macros it is inside of.
struct Expansion<'a, 's> {
    scope: &'a Scope<'s>,
    /// Macros being expanded, outermost first.
    stack: Vec<&'a str>,
    /// The same, to look up.
    on_stack: HashSet<&'a str>,
    /// Nodes compiled so far.
    nodes: usize,
}

impl<'a, 's> Expansion<'a, 's> {
    fn new(scope: &'a Scope<'s>, inside: Option<&'a str>) -> Self {
        Self {
            scope,
            stack: inside.into_iter().collect(),
            on_stack: inside.into_iter().collect(),
            nodes: 0,
        }
    }

    /// The macros being expanded, for an error message: the ends of a
    /// long chain.
    fn chain(&self) -> String {
        let s = &self.stack;
        if s.len() <= 6 {
            return s.join(" -> ");
        }
        format!(
            "{} -> ... -> {}",
            s[..3].join(" -> "),
            s[s.len() - 3..].join(" -> ")
        )
    }

    fn compile(&mut self, e: &'a Expr, depth: usize) -> Result<Pred, Failure> {
        self.nodes += 1;
        if depth == MAX_DEPTH || self.nodes > MAX_NODES {
            let what = if depth == MAX_DEPTH {
                format!("nests deeper than {MAX_DEPTH} levels")
            } else {
                format!("grows past {MAX_NODES} tests and operators")
            };
            return Err(fail(
                start_of(e),
                format!(
                    "the condition {what} once macros are expanded (through {})",
                    self.chain()
                ),
            ));
        }
        let depth = depth + 1;
        Ok(match e {
            Expr::And(v) => Pred::And(
                v.iter()
                    .map(|x| self.compile(x, depth))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Or(v) => Pred::Or(
                v.iter()
                    .map(|x| self.compile(x, depth))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Not(x) => Pred::Not(Box::new(self.compile(x, depth)?)),
            Expr::Exists(f) => Pred::Test(field(f)?.0, Matcher::Exists),
            Expr::Macro(name) => self.expand(name, depth)?,
            Expr::Test {
                field,
                op,
                op_at,
                operand,
            } => compile_test(field, *op, *op_at, operand, self.scope)?,
        })
    }

    fn expand(&mut self, name: &'a Spanned, depth: usize) -> Result<Pred, Failure> {
        let Some(body) = self.scope.macros.get(&name.text) else {
            return Err(unknown_macro(name));
        };
        if self.on_stack.contains(name.text.as_str()) {
            return Err(fail(
                name.at,
                format!(
                    "macro '{}' uses itself (through {})",
                    name.text,
                    self.chain()
                ),
            ));
        }
        self.stack.push(&name.text);
        self.on_stack.insert(&name.text);
        let r = self.compile(body, depth);
        self.stack.pop();
        self.on_stack.remove(name.text.as_str());
        r.map_err(|f| match f {
            Failure::Here(error) => Failure::InMacro {
                name: name.text.clone(),
                error,
            },
            inner => inner,
        })
    }
}

fn unknown_macro(name: &Spanned) -> Failure {
    let hint = if name.text.contains('.') {
        fields::closest(&name.text)
            .map(|c| format!(" (a field test needs an operator; did you mean {c}?)"))
            .unwrap_or_else(|| " (a field test needs an operator)".into())
    } else {
        String::new()
    };
    fail(name.at, format!("unknown macro '{}'{hint}", name.text))
}

/// `field op operand`: apart from [`Expansion::compile`], whose frame is one level
/// of a recursion that must stay small.
fn compile_test(
    f: &Spanned,
    op: Op,
    op_at: usize,
    operand: &Operand,
    scope: &Scope<'_>,
) -> Result<Pred, Failure> {
    let (fld, ty) = field(f)?;
    let values = expand(operand, scope);
    if op != Op::In && matches!(operand, Operand::List(_)) && !list_ok(op) {
        return Err(fail(
            op_at,
            format!("operator {op} takes one value, not a list"),
        ));
    }
    if op == Op::In
        && matches!(operand, Operand::Value(v) if v.quoted || !scope.lists.contains_key(&v.text))
    {
        return Err(fail(
            op_at,
            "'in' takes a list: (a, b) or the name of a list",
        ));
    }
    Ok(if op == Op::Ne {
        Pred::Not(Box::new(test(fld, matcher(f, ty, Op::Eq, op_at, &values)?)))
    } else {
        test(fld, matcher(f, ty, op, op_at, &values)?)
    })
}

/// A field test; `evt.type` equality becomes a test of the kind's bit.
fn test(field: Field, m: Matcher) -> Pred {
    match (field, &m) {
        (Field::EvtType, Matcher::StrIn(kinds)) => Pred::Kind(
            kinds
                .iter()
                .filter_map(|k| std::str::from_utf8(k).ok().and_then(Kind::ruled_named))
                .map(Kind::bit)
                .fold(0, |a, b| a | b),
        ),
        _ => Pred::Test(field, m),
    }
}

/// Wraps each maximal subcondition of `p` that reads only the acting
/// process and its container in [`Pred::Memo`], numbering the slots from
/// `*next`.
pub fn memoize(p: Pred, next: &mut usize) -> Pred {
    if of_process(&p) {
        let slot = *next;
        *next += 1;
        return Pred::Memo(slot, Box::new(p));
    }
    match p {
        Pred::And(v) => Pred::And(v.into_iter().map(|x| memoize(x, next)).collect()),
        Pred::Or(v) => Pred::Or(v.into_iter().map(|x| memoize(x, next)).collect()),
        Pred::Not(x) => Pred::Not(Box::new(memoize(*x, next))),
        other => other,
    }
}

fn of_process(p: &Pred) -> bool {
    match p {
        Pred::And(v) | Pred::Or(v) => v.iter().all(of_process),
        Pred::Not(x) | Pred::Memo(_, x) => of_process(x),
        Pred::Test(f, _) => f.of_process(),
        Pred::Kind(_) => false,
    }
}

fn list_ok(op: Op) -> bool {
    matches!(
        op,
        Op::StartsWith
            | Op::EndsWith
            | Op::Contains
            | Op::IContains
            | Op::Glob
            | Op::Regex
            | Op::Cidr
    )
}

fn field(f: &Spanned) -> Result<(Field, Type), CompileError> {
    fields::lookup(&f.text).map_or_else(
        || {
            let hint = fields::closest(&f.text)
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default();
            err(f.at, format!("unknown field '{}'{hint}", f.text))
        },
        Ok,
    )
}

/// One value with its offset (list items inherit their list name's).
struct Value<'a> {
    text: &'a str,
    at: usize,
}

fn expand<'a>(operand: &'a Operand, scope: &'a Scope<'_>) -> Vec<Value<'a>> {
    let one = |v: &'a Spanned, out: &mut Vec<Value<'a>>| match scope.lists.get(&v.text) {
        Some(items) if !v.quoted => out.extend(items.iter().map(|t| Value { text: t, at: v.at })),
        _ => out.push(Value {
            text: &v.text,
            at: v.at,
        }),
    };
    let mut out = Vec::new();
    match operand {
        Operand::Value(v) => one(v, &mut out),
        Operand::List(items) => items.iter().for_each(|v| one(v, &mut out)),
    }
    out
}

fn matcher(
    f: &Spanned,
    ty: Type,
    op: Op,
    op_at: usize,
    values: &[Value<'_>],
) -> Result<Matcher, CompileError> {
    let bad_op = || {
        err(
            op_at,
            format!("operator {op} does not apply to {} ({})", f.text, ty.name()),
        )
    };
    let bytes = || {
        values
            .iter()
            .map(|v| v.text.as_bytes().into())
            .collect::<Vec<Box<[u8]>>>()
    };
    match ty {
        Type::Str => Ok(match op {
            Op::Eq | Op::In => {
                if f.text == "evt.type" {
                    for v in values {
                        if Kind::ruled_named(v.text).is_none() {
                            return err(
                                v.at,
                                format!(
                                    "unknown evt.type '{}' (one of: {})",
                                    v.text,
                                    Kind::ruled_names().collect::<Vec<_>>().join(", ")
                                ),
                            );
                        }
                    }
                }
                Matcher::StrIn(Strings::new(bytes()))
            }
            Op::StartsWith => Matcher::Prefix(bytes()),
            Op::EndsWith => Matcher::Suffix(bytes()),
            Op::Contains => Matcher::Contains(
                Needles::new(bytes()).or_else(|e| err(op_at, format!("bad contains list: {e}")))?,
            ),
            Op::IContains => Matcher::IContains(
                values
                    .iter()
                    .map(|v| v.text.to_ascii_lowercase().into_bytes().into())
                    .collect(),
            ),
            Op::Glob => {
                let mut set = GlobSetBuilder::new();
                for v in values {
                    let g = GlobBuilder::new(v.text)
                        .literal_separator(true)
                        .backslash_escape(true)
                        .build()
                        .or_else(|e| err(v.at, format!("bad glob '{}': {}", v.text, e.kind())))?;
                    set.add(g);
                }
                Matcher::Glob(
                    set.build()
                        .or_else(|e| err(op_at, format!("bad glob set: {e}")))?,
                )
            }
            Op::Regex => {
                for v in values {
                    if let Err(e) = regex::bytes::Regex::new(v.text) {
                        return err(
                            v.at,
                            format!("bad regex '{}': {}", v.text, last_line(&e.to_string())),
                        );
                    }
                }
                Matcher::Regex(
                    regex::bytes::RegexSet::new(values.iter().map(|v| v.text))
                        .or_else(|e| err(op_at, format!("bad regex: {e}")))?,
                )
            }
            _ => return bad_op(),
        }),
        Type::Int => {
            let nums = values
                .iter()
                .map(|v| {
                    v.text.parse::<i64>().or_else(|_| {
                        err(v.at, format!("{} is a number; '{}' is not", f.text, v.text))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(match op {
                Op::In => Matcher::IntIn(nums),
                Op::Eq | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                    Matcher::IntCmp(op, one(&nums, op_at)?)
                }
                _ => return bad_op(),
            })
        }
        Type::Bool => {
            let b = values
                .iter()
                .map(|v| match v.text {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    other => err(
                        v.at,
                        format!("{} is true or false; '{other}' is neither", f.text),
                    ),
                })
                .collect::<Result<Vec<_>, _>>()?;
            match op {
                Op::Eq => Ok(Matcher::Bool(one(&b, op_at)?)),
                _ => bad_op(),
            }
        }
        Type::Ip => {
            let nets = values
                .iter()
                .map(|v| {
                    v.text
                        .parse::<IpNet>()
                        .or_else(|_| v.text.parse::<IpAddr>().map(IpNet::from))
                        .or_else(|_| {
                            err(
                                v.at,
                                format!(
                                    "'{}' is not an address or network (a.b.c.d, a::b, a.b.c.d/n)",
                                    v.text
                                ),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            match op {
                Op::Eq | Op::In | Op::Cidr => Ok(Matcher::Net(nets)),
                _ => bad_op(),
            }
        }
    }
}

fn one<T: Copy>(v: &[T], at: usize) -> Result<T, CompileError> {
    match v {
        [x] => Ok(*x),
        _ => err(at, "this operator takes exactly one value"),
    }
}

fn last_line(s: &str) -> String {
    // regex errors end with their one-line summary.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_owned()
}

/// Field bytes as a path for glob matching. Unix paths are bytes; elsewhere
/// the sensor's own records are UTF-8 (text fields escape the rest).
#[cfg(unix)]
fn bytes_path(s: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt as _;
    std::path::Path::new(std::ffi::OsStr::from_bytes(s))
}

#[cfg(not(unix))]
fn bytes_path(s: &[u8]) -> std::path::PathBuf {
    String::from_utf8_lossy(s).into_owned().into()
}
