//! Rule files: YAML read with positions (marked-yaml), every key checked,
//! every error located as file:line:col.
use std::time::Duration;

use marked_yaml::{
    LoaderOptions, Marker, Node,
    types::{MarkedMappingNode, MarkedScalarNode},
};

use crate::{
    event::{Severity, Technique},
    located::{LocatedError, start},
};

/// A condition's text and where it sits in its file.
#[derive(Debug, Clone)]
pub struct CondText {
    /// The condition.
    pub text: String,
    /// File it came from.
    pub file: String,
    /// Start of the YAML scalar.
    start: Marker,
    /// The whole file, to map offsets inside the text back to positions.
    source: std::sync::Arc<str>,
}

impl CondText {
    /// An error at byte `offset` of the condition text.
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> LocatedError {
        let (line, col) = position(&self.source, &self.start, &self.text, offset);
        LocatedError {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// One step of a sequence rule.
#[derive(Debug, Clone)]
pub struct StepDef {
    /// Shown in the alert.
    pub name: String,
    /// What advances the sequence.
    pub condition: CondText,
}

/// What a sequence correlates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The same container (the host counts as one).
    Container,
}

/// A sequence rule's definition.
#[derive(Debug, Clone)]
pub struct SequenceDef {
    /// Correlation key.
    pub by: By,
    /// All steps within this time of the first.
    pub within: Duration,
    /// In order.
    pub steps: Vec<StepDef>,
}

/// A rule as written.
#[derive(Debug, Clone)]
pub struct RuleDef {
    /// Unique id.
    pub id: String,
    /// Where the id is, for duplicate errors.
    pub at: (String, usize, usize),
    /// One line.
    pub title: String,
    /// How urgent.
    pub severity: Severity,
    /// What it means.
    pub description: String,
    /// Known benign causes.
    pub false_positives: Vec<String>,
    /// Single-event condition (absent for sequences).
    pub condition: Option<CondText>,
    /// Named conditions that suppress the alert.
    pub exceptions: Vec<(String, CondText)>,
    /// Fields shown in the alert, with their positions.
    pub output: Vec<(String, LocatedError)>,
    /// Multi-event correlation.
    pub sequence: Option<SequenceDef>,
    /// false: loaded and checked, not evaluated.
    pub enabled: bool,
}

/// One file's content.
#[derive(Debug, Clone, Default)]
pub struct FileDef {
    /// Pack id (files with only lists and macros have none).
    pub pack: Option<String>,
    /// The pack's technique.
    pub technique: Option<Technique>,
    /// The detection strategy's goal.
    pub goal: Option<String>,
    /// What it cannot see.
    pub blind_spots: Option<String>,
    /// What to do when it fires.
    pub response: Option<String>,
    /// Named lists: name, values, where.
    pub lists: Vec<(String, Vec<String>, LocatedError)>,
    /// Macros: name, condition.
    pub macros: Vec<(String, CondText)>,
    /// Rules.
    pub rules: Vec<RuleDef>,
    /// The file says `rules: []`: no rules, on purpose.
    pub no_rules: bool,
}

struct Ctx<'a> {
    file: &'a str,
    source: std::sync::Arc<str>,
    errors: Vec<LocatedError>,
}

impl Ctx<'_> {
    fn error(&mut self, at: Marker, message: impl Into<String>) {
        self.errors.push(LocatedError::at(self.file, at, message));
    }

    fn here(&self, at: Marker) -> LocatedError {
        LocatedError::at(self.file, at, String::new())
    }

    /// Refuses keys outside `allowed`.
    fn keys(&mut self, m: &MarkedMappingNode, what: &str, allowed: &[&str]) {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                let at = k
                    .span()
                    .start()
                    .copied()
                    .unwrap_or_else(|| start(Node::from(m.clone()).span()));
                self.error(
                    at,
                    format!(
                        "unknown key '{}' in {what} (allowed: {})",
                        k.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn scalar<'n>(&mut self, n: &'n Node, what: &str) -> Option<&'n MarkedScalarNode> {
        let s = n.as_scalar();
        if s.is_none() {
            self.error(start(n.span()), format!("{what} must be a string"));
        }
        s
    }

    fn string(&mut self, m: &MarkedMappingNode, key: &str, what: &str) -> Option<String> {
        let n = m.get_node(key)?;
        self.scalar(n, &format!("{what}.{key}"))
            .map(|s| s.as_str().to_owned())
    }

    fn required(
        &mut self,
        m: &MarkedMappingNode,
        key: &str,
        what: &str,
        at: Marker,
    ) -> Option<String> {
        let v = self.string(m, key, what);
        if v.is_none() && m.get_node(key).is_none() {
            self.error(at, format!("{what} needs '{key}'"));
        }
        v
    }

    fn cond(&mut self, n: &Node, what: &str) -> Option<CondText> {
        let s = self.scalar(n, what)?;
        Some(CondText {
            text: s.as_str().to_owned(),
            file: self.file.to_owned(),
            start: start(n.span()),
            source: self.source.clone(),
        })
    }

    fn strings(&mut self, n: &Node, what: &str) -> Vec<String> {
        let Some(seq) = n.as_sequence() else {
            self.error(start(n.span()), format!("{what} must be a list"));
            return Vec::new();
        };
        seq.iter()
            .filter_map(|item| {
                self.scalar(item, &format!("an item of {what}"))
                    .map(|s| s.as_str().to_owned())
            })
            .collect()
    }
}

/// Parses one rule file. Errors are collected, not stopped at.
pub fn parse_file(file: &str, text: &str) -> Result<FileDef, Vec<LocatedError>> {
    let opts = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let root = match marked_yaml::parse_yaml_with_options(0, text, opts) {
        Ok(n) => n,
        Err(e) => return Err(vec![LocatedError::yaml(file, &e)]),
    };
    let mut cx = Ctx {
        file,
        source: text.into(),
        errors: Vec::new(),
    };
    let Some(top) = root.as_mapping() else {
        cx.error(
            start(root.span()),
            "a rule file is a mapping (pack, technique, lists, macros, rules)",
        );
        return Err(cx.errors);
    };
    cx.keys(
        top,
        "the file",
        &[
            "pack",
            "technique",
            "goal",
            "blind_spots",
            "response",
            "lists",
            "macros",
            "rules",
        ],
    );
    let mut out = FileDef {
        pack: cx.string(top, "pack", "file"),
        goal: cx.string(top, "goal", "file"),
        blind_spots: cx.string(top, "blind_spots", "file"),
        response: cx.string(top, "response", "file"),
        ..Default::default()
    };
    if let Some(t) = top.get_node("technique") {
        match t.as_mapping() {
            Some(tm) => {
                cx.keys(tm, "technique", &["id", "name", "tactic"]);
                let at = start(t.span());
                out.technique = Some(Technique {
                    id: cx.required(tm, "id", "technique", at).unwrap_or_default(),
                    name: cx.required(tm, "name", "technique", at).unwrap_or_default(),
                    tactic: cx
                        .required(tm, "tactic", "technique", at)
                        .unwrap_or_default(),
                });
            }
            None => cx.error(
                start(t.span()),
                "technique must be a mapping with id, name, tactic",
            ),
        }
    }
    if let Some(l) = top.get_node("lists") {
        match l.as_mapping() {
            Some(lm) => {
                for (k, v) in lm.iter() {
                    let values = cx.strings(v, &format!("list '{}'", k.as_str()));
                    let at = cx.here(k.span().start().copied().unwrap_or_else(|| start(v.span())));
                    out.lists.push((k.as_str().to_owned(), values, at));
                }
            }
            None => cx.error(start(l.span()), "lists must be a mapping of name: [values]"),
        }
    }
    if let Some(m) = top.get_node("macros") {
        match m.as_mapping() {
            Some(mm) => {
                for (k, v) in mm.iter() {
                    if let Some(c) = cx.cond(v, &format!("macro '{}'", k.as_str())) {
                        out.macros.push((k.as_str().to_owned(), c));
                    }
                }
            }
            None => cx.error(
                start(m.span()),
                "macros must be a mapping of name: condition",
            ),
        }
    }
    if let Some(r) = top.get_node("rules") {
        match r.as_sequence() {
            Some(seq) if seq.is_empty() => out.no_rules = true,
            Some(seq) => {
                if out.pack.is_none() || out.technique.is_none() {
                    cx.error(
                        start(r.span()),
                        "a file with rules needs 'pack' and 'technique'",
                    );
                }
                for item in seq.iter() {
                    if let Some(rule) = parse_rule(&mut cx, item) {
                        out.rules.push(rule);
                    }
                }
            }
            None => cx.error(start(r.span()), "rules must be a list"),
        }
    }
    if cx.errors.is_empty() {
        Ok(out)
    } else {
        Err(cx.errors)
    }
}

const RULE_KEYS: &[&str] = &[
    "id",
    "title",
    "severity",
    "description",
    "false_positives",
    "condition",
    "exceptions",
    "output",
    "sequence",
    "enabled",
];

fn parse_rule(cx: &mut Ctx<'_>, n: &Node) -> Option<RuleDef> {
    let at = start(n.span());
    let Some(m) = n.as_mapping() else {
        cx.error(
            at,
            "a rule is a mapping (id, title, severity, condition, ...)",
        );
        return None;
    };
    cx.keys(m, "a rule", RULE_KEYS);
    let id = cx.required(m, "id", "a rule", at)?;
    let what = format!("rule '{id}'");
    let id_at = m.get_node("id").map_or(at, |n| start(n.span()));
    let title = cx.required(m, "title", &what, at).unwrap_or_default();
    let description = cx.required(m, "description", &what, at).unwrap_or_default();
    let severity = match m.get_node("severity") {
        None => {
            cx.error(at, format!("{what} needs 'severity'"));
            Severity::Medium
        }
        Some(s) => match s.as_scalar().map(|s| s.as_str()) {
            Some("info") => Severity::Info,
            Some("low") => Severity::Low,
            Some("medium") => Severity::Medium,
            Some("high") => Severity::High,
            Some("critical") => Severity::Critical,
            _ => {
                cx.error(
                    start(s.span()),
                    "severity is one of info, low, medium, high, critical",
                );
                Severity::Medium
            }
        },
    };
    let false_positives = m
        .get_node("false_positives")
        .map(|n| cx.strings(n, "false_positives"))
        .unwrap_or_default();
    let condition = m
        .get_node("condition")
        .and_then(|c| cx.cond(c, "condition"));
    let mut exceptions = Vec::new();
    if let Some(ex) = m.get_node("exceptions") {
        match ex.as_sequence() {
            Some(seq) => {
                exceptions.extend(
                    seq.iter()
                        .filter_map(|e| named_condition(cx, e, "an exception")),
                );
            }
            None => cx.error(start(ex.span()), "exceptions must be a list"),
        }
    }
    let output = match m.get_node("output") {
        Some(o) => match o.as_sequence() {
            Some(seq) => seq
                .iter()
                .filter_map(|f| {
                    cx.scalar(f, "an output field")
                        .map(|s| (s.as_str().to_owned(), cx.here(start(f.span()))))
                })
                .collect(),
            None => {
                cx.error(start(o.span()), "output must be a list of field names");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let enabled = match m.get_node("enabled") {
        None => true,
        Some(e) => match e.as_scalar().map(|s| s.as_str()) {
            Some("true") => true,
            Some("false") => false,
            _ => {
                cx.error(start(e.span()), "enabled is true or false");
                true
            }
        },
    };
    let sequence = m.get_node("sequence").and_then(|s| parse_sequence(cx, s));
    match (&condition, &sequence) {
        (None, None) => cx.error(at, format!("{what} needs 'condition' or 'sequence'")),
        (Some(_), Some(_)) => cx.error(
            at,
            format!("{what} has both 'condition' and 'sequence'; pick one"),
        ),
        _ => {}
    }
    Some(RuleDef {
        id,
        at: (cx.file.to_owned(), id_at.line(), id_at.column()),
        title,
        severity,
        description,
        false_positives,
        condition,
        exceptions,
        output,
        sequence,
        enabled,
    })
}

fn parse_sequence(cx: &mut Ctx<'_>, n: &Node) -> Option<SequenceDef> {
    let at = start(n.span());
    let Some(m) = n.as_mapping() else {
        cx.error(at, "sequence is a mapping with by, within, steps");
        return None;
    };
    cx.keys(m, "sequence", &["by", "within", "steps"]);
    let by = match cx.required(m, "by", "sequence", at).as_deref() {
        Some("container") => By::Container,
        Some(other) => {
            let at = m.get_node("by").map_or(at, |n| start(n.span()));
            cx.error(
                at,
                format!("sequence.by '{other}' is not supported (container)"),
            );
            return None;
        }
        None => return None,
    };
    let within_text = cx.required(m, "within", "sequence", at)?;
    let within = match humantime::parse_duration(&within_text) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            let at = m.get_node("within").map_or(at, |n| start(n.span()));
            cx.error(
                at,
                format!("within '{within_text}' is not a duration (e.g. 90s, 10m)"),
            );
            return None;
        }
    };
    let Some(steps_node) = m.get_node("steps") else {
        cx.error(at, "sequence needs 'steps'");
        return None;
    };
    let Some(seq) = steps_node.as_sequence() else {
        cx.error(start(steps_node.span()), "steps must be a list");
        return None;
    };
    let steps: Vec<StepDef> = seq
        .iter()
        .filter_map(|s| named_condition(cx, s, "a step"))
        .map(|(name, condition)| StepDef { name, condition })
        .collect();
    if steps.len() < 2 {
        cx.error(
            start(steps_node.span()),
            "a sequence needs at least two steps",
        );
        return None;
    }
    Some(SequenceDef { by, within, steps })
}

/// `{name, condition}`: an exception or a sequence step.
fn named_condition(cx: &mut Ctx<'_>, n: &Node, what: &str) -> Option<(String, CondText)> {
    let at = start(n.span());
    let Some(m) = n.as_mapping() else {
        cx.error(at, format!("{what} is a mapping with name and condition"));
        return None;
    };
    cx.keys(m, what, &["name", "condition"]);
    let name = cx.required(m, "name", what, at);
    let cond = match m.get_node("condition") {
        Some(c) => cx.cond(c, &format!("the condition of {what}")),
        None => {
            cx.error(at, format!("{what} needs 'condition'"));
            None
        }
    };
    Some((name?, cond?))
}

/// Line and column (1-based) of byte `offset` of a scalar's `value`, found
/// by locating the value's lines in the file after the scalar's start. Falls
/// back to the scalar's start when the text was transformed (escapes,
/// folding).
fn position(src: &str, start: &Marker, value: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(value.len());
    let line_begin = value[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = value[line_begin..]
        .find('\n')
        .map_or(value.len(), |i| line_begin + i);
    let line_text = &value[line_begin..line_end];
    let mut from = src
        .char_indices()
        .nth(start.character())
        .map_or(src.len(), |(b, _)| b);
    for prior in value[..line_begin].split_terminator('\n') {
        match src[from..].find(prior) {
            Some(i) => from += i + prior.len(),
            None => return (start.line(), start.column()),
        }
    }
    let Some(i) = src[from..].find(line_text) else {
        return (start.line(), start.column());
    };
    let byte = from + i + (offset - line_begin);
    let line = src[..byte].matches('\n').count() + 1;
    let col = src[..byte]
        .rsplit('\n')
        .next()
        .map_or(0, |l| l.chars().count())
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_inside_plain_quoted_and_block_scalars() {
        let src =
            "a:\n  condition: proc.name = tar\n  q: \"x = 1\"\n  b: |\n    one and\n    two\n";
        let root = marked_yaml::parse_yaml(0, src).unwrap();
        let m = root.as_mapping().unwrap().get_mapping("a").unwrap();
        let c = m.get_node("condition").unwrap();
        let at = start(c.span());
        assert_eq!(position(src, &at, "proc.name = tar", 12), (2, 26));
        let q = m.get_node("q").unwrap();
        assert_eq!(position(src, &start(q.span()), "x = 1", 4), (3, 11));
        let b = m.get_node("b").unwrap();
        assert_eq!(position(src, &start(b.span()), "one and\ntwo\n", 8), (6, 5));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_located() {
        let src = "pack: p\ntechnique: {id: T1, name: n, tactic: t}\nrules:\n  - id: r1\n    titel: x\n    severity: huge\n";
        let errs = parse_file("f.yaml", src).unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("f.yaml:5:5: unknown key 'titel'")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("f.yaml:6:15: severity is one of")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("needs 'condition' or 'sequence'")),
            "{msgs:?}"
        );
    }

    #[test]
    fn yaml_syntax_and_duplicate_keys() {
        let e = parse_file("f.yaml", "pack: [unclosed\n").unwrap_err();
        assert!(e[0].to_string().starts_with("f.yaml:2:"), "{}", e[0]);
        let e = parse_file("f.yaml", "pack: a\npack: b\n").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "f.yaml:2:1: duplicate key 'pack' (first at line 1)"
        );
    }
}
