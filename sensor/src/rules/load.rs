//! Where rule sets come from (the built-in packs, files, directories) and
//! how a set of files becomes one [`RuleSet`]: parsed, lists and macros
//! shared across files, every condition compiled, every error collected.
use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use tracing::info;

use super::{
    LoadErrors, PackInfo, Rule, RuleSet, Sequence,
    compile::{self, Failure, Pred, Scope},
    condition,
    engine::Engine,
    fields::{self, Field},
    source::{self, CondText, FileDef},
};
use crate::{event::RuleInfo, located::LocatedError};

/// Rule files compiled into the binary: the default set.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "rules/common.yaml",
        include_str!("../../../rules/common.yaml"),
    ),
    (
        "rules/t1074.001-container-staging.yaml",
        include_str!("../../../rules/t1074.001-container-staging.yaml"),
    ),
    (
        "rules/t1560-archive-collected-data.yaml",
        include_str!("../../../rules/t1560-archive-collected-data.yaml"),
    ),
    (
        "rules/t1105-ingress-tool-transfer.yaml",
        include_str!("../../../rules/t1105-ingress-tool-transfer.yaml"),
    ),
    (
        "rules/t1114-email-collection.yaml",
        include_str!("../../../rules/t1114-email-collection.yaml"),
    ),
    (
        "rules/t1048.001-encrypted-exfiltration.yaml",
        include_str!("../../../rules/t1048.001-encrypted-exfiltration.yaml"),
    ),
    (
        "rules/t1562.001-sensor-tamper.yaml",
        include_str!("../../../rules/t1562.001-sensor-tamper.yaml"),
    ),
    (
        "rules/t1562.006-sensor-flood.yaml",
        include_str!("../../../rules/t1562.006-sensor-flood.yaml"),
    ),
];

/// Where rules come from.
#[derive(Debug, Clone)]
pub enum RuleSource {
    /// The set built into the binary.
    Builtin,
    /// Files and directories (every *.yaml / *.yml inside, sorted).
    Paths(Vec<PathBuf>),
}

impl RuleSource {
    /// What `--rules PATH,...` and `--no-rules` ask for: files, the
    /// built-in set when no path is given, or no rules at all.
    pub fn chosen(paths: &[PathBuf], no_rules: bool) -> Option<Self> {
        if no_rules {
            None
        } else if paths.is_empty() {
            Some(Self::Builtin)
        } else {
            Some(Self::Paths(paths.to_vec()))
        }
    }

    /// Loads the rules and indexes them for evaluation, saying what was
    /// loaded.
    pub fn engine(&self) -> Result<Engine, LoadErrors> {
        let set = self.load()?;
        info!(
            rules = set.rules.len(),
            sequences = set.sequences.len(),
            packs = set.packs.len(),
            origin = %set.origin,
            "rules loaded"
        );
        set.warn_if_empty();
        Ok(Engine::new(Arc::new(set)))
    }

    /// Reads and compiles. A panic while compiling (a bug, not a bad
    /// file) refuses the set like any error, so a reload cannot take the
    /// running sensor down with it.
    pub fn load(&self) -> Result<RuleSet, LoadErrors> {
        std::panic::catch_unwind(|| self.load_unguarded()).unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(LoadErrors(vec![LocatedError::file(
                &self.to_string(),
                format!("internal error while compiling these rules: {why}"),
            )]))
        })
    }

    fn load_unguarded(&self) -> Result<RuleSet, LoadErrors> {
        match self {
            Self::Builtin => compile_files(
                BUILTIN
                    .iter()
                    .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                    .collect(),
                "builtin",
            ),
            Self::Paths(paths) => compile_files(read_paths(paths)?, &self.to_string()),
        }
    }
}

impl std::fmt::Display for RuleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::Paths(paths) => {
                for (i, p) in paths.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", p.display())?;
                }
                Ok(())
            }
        }
    }
}

fn read_paths(paths: &[PathBuf]) -> Result<Vec<(String, String)>, LoadErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let io_error = |p: &Path, e: std::io::Error| {
        LocatedError::file(&p.display().to_string(), format!("cannot read: {e}"))
    };
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect(),
                Err(e) => {
                    errors.push(io_error(p, e));
                    continue;
                }
            };
            entries.sort();
            if entries.is_empty() {
                errors.push(LocatedError::file(
                    &p.display().to_string(),
                    "no *.yaml rule files in this directory",
                ));
            }
            for f in entries {
                match std::fs::read_to_string(&f) {
                    Ok(t) => files.push((f.display().to_string(), t)),
                    Err(e) => errors.push(io_error(&f, e)),
                }
            }
        } else {
            match std::fs::read_to_string(p) {
                Ok(t) => files.push((p.display().to_string(), t)),
                Err(e) => errors.push(io_error(p, e)),
            }
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Parses and compiles a set of (name, text) files as one rule set: lists
/// and macros are shared across files.
pub fn compile_files(files: Vec<(String, String)>, origin: &str) -> Result<RuleSet, LoadErrors> {
    let mut errors = BTreeSet::new();
    let mut defs: Vec<FileDef> = Vec::new();
    for (name, text) in &files {
        match source::parse_file(name, text) {
            Ok(d) => defs.push(d),
            Err(es) => errors.extend(es),
        }
    }

    let mut lists: HashMap<String, Vec<String>> = HashMap::new();
    let mut list_at: HashMap<String, LocatedError> = HashMap::new();
    for d in &defs {
        for (name, values, at) in &d.lists {
            if let Some(first) = list_at.get(name) {
                errors.insert(LocatedError {
                    message: format!(
                        "list '{name}' is already defined at {}:{}:{}",
                        first.file, first.line, first.col
                    ),
                    ..at.clone()
                });
                continue;
            }
            list_at.insert(name.clone(), at.clone());
            lists.insert(name.clone(), values.clone());
        }
    }

    let mut macro_text: HashMap<String, CondText> = HashMap::new();
    let mut macros = HashMap::new();
    for d in &defs {
        for (name, cond) in &d.macros {
            if macro_text.contains_key(name) {
                errors.insert(cond.error_at(0, format!("macro '{name}' is already defined")));
                continue;
            }
            match condition::parse(&cond.text) {
                Ok(e) => {
                    macros.insert(name.clone(), e);
                }
                Err(e) => {
                    errors.insert(cond.error_at(e.at, e.message));
                }
            }
            macro_text.insert(name.clone(), cond.clone());
        }
    }
    let scope = Scope {
        lists: &lists,
        macros: &macros,
    };
    // An error inside a macro is reported at the macro's text, with the
    // same position and message from every rule that uses it (the set
    // keeps one).
    let report = |f: Failure, cond: &CondText, errors: &mut BTreeSet<LocatedError>| match f {
        Failure::Here(e) => {
            errors.insert(cond.error_at(e.at, e.message));
        }
        Failure::InMacro { name, error } => {
            if let Some(t) = macro_text.get(&name) {
                errors.insert(t.error_at(error.at, error.message));
            }
        }
    };
    let compile_cond = |cond: &CondText, errors: &mut BTreeSet<LocatedError>| -> Option<Pred> {
        let expr = match condition::parse(&cond.text) {
            Ok(e) => e,
            Err(e) => {
                errors.insert(cond.error_at(e.at, e.message));
                return None;
            }
        };
        compile::compile(&expr, &scope)
            .map_err(|f| report(f, cond, errors))
            .ok()
    };
    // Every macro compiles on its own, used or not.
    let mut names: Vec<&String> = macros.keys().collect();
    names.sort();
    for name in names {
        if let Err(f) = compile::compile_macro(name, &macros[name], &scope) {
            report(f, &macro_text[name], &mut errors);
        }
    }

    let mut set = RuleSet {
        rules: Vec::new(),
        sequences: Vec::new(),
        packs: Vec::new(),
        origin: origin.to_owned(),
        memo_slots: 0,
    };
    let mut ids: HashMap<String, (String, usize, usize)> = HashMap::new();
    for d in &defs {
        let (Some(pack), Some(technique)) = (&d.pack, &d.technique) else {
            continue;
        };
        set.packs.push(PackInfo {
            id: pack.clone(),
            technique: technique.clone(),
            goal: d.goal.clone(),
            blind_spots: d.blind_spots.clone(),
            response: d.response.clone(),
        });
        for r in &d.rules {
            if let Some((f, l, c)) = ids.get(&r.id) {
                errors.insert(LocatedError {
                    file: r.at.0.clone(),
                    line: r.at.1,
                    col: r.at.2,
                    message: format!("rule id '{}' is already used at {f}:{l}:{c}", r.id),
                });
                continue;
            }
            ids.insert(r.id.clone(), r.at.clone());
            let output: Vec<(&'static str, Field)> = r
                .output
                .iter()
                .filter_map(
                    |(name, at)| match fields::CATALOG.iter().find(|(n, ..)| n == name) {
                        Some((n, f, ..)) => Some((*n, *f)),
                        None => {
                            let hint = fields::closest(name)
                                .map(|c| format!(" (did you mean {c}?)"))
                                .unwrap_or_default();
                            errors.insert(LocatedError {
                                message: format!("unknown output field '{name}'{hint}"),
                                ..at.clone()
                            });
                            None
                        }
                    },
                )
                .collect();
            let exceptions: Vec<Pred> = r
                .exceptions
                .iter()
                .filter_map(|(_, c)| compile_cond(c, &mut errors))
                .collect();
            let info = Arc::new(RuleInfo {
                id: r.id.clone(),
                title: r.title.clone(),
                severity: r.severity,
                pack: pack.clone(),
                technique: technique.clone(),
                description: r.description.clone(),
            });
            // Memoized once for the rule: its steps share the slots.
            let unless = (!exceptions.is_empty()).then(|| {
                let none_of = Pred::Not(Box::new(Pred::Or(exceptions.clone())));
                compile::memoize(none_of, &mut set.memo_slots)
            });
            let slots = &mut set.memo_slots;
            let mut with_exceptions = |p: Pred| -> Pred {
                let p = compile::memoize(p, slots);
                match &unless {
                    Some(u) => Pred::And(vec![p, u.clone()]),
                    None => p,
                }
            };
            if let Some(cond) = &r.condition {
                if let Some(p) = compile_cond(cond, &mut errors)
                    && r.enabled
                    && exceptions.len() == r.exceptions.len()
                {
                    set.rules.push(Rule {
                        info,
                        pred: with_exceptions(p),
                        output,
                    });
                }
            } else if let Some(seq) = &r.sequence {
                let steps: Vec<(String, Pred)> = seq
                    .steps
                    .iter()
                    .filter_map(|s| {
                        compile_cond(&s.condition, &mut errors).map(|p| (s.name.clone(), p))
                    })
                    .collect();
                if r.enabled
                    && steps.len() == seq.steps.len()
                    && exceptions.len() == r.exceptions.len()
                {
                    set.sequences.push(Sequence {
                        info,
                        steps: steps
                            .into_iter()
                            .map(|(n, p)| (n, with_exceptions(p)))
                            .collect(),
                        within: seq.within,
                        output,
                    });
                }
            }
        }
    }
    // A set that detects nothing must say so: an empty file (or a
    // directory of lists) would otherwise turn detection off silently.
    if errors.is_empty() && set.is_empty() && !defs.iter().any(|d| d.no_rules) {
        let defined: usize = defs.iter().map(|d| d.rules.len()).sum();
        let why = if defined == 0 {
            "no rules are defined".to_owned()
        } else {
            format!("all {defined} rules are disabled")
        };
        errors.insert(LocatedError::file(
            origin,
            format!(
                "{why}, so nothing would be detected; write `rules: []` in a file, or run with --no-rules, to mean it"
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors.into_iter().collect()));
    }
    Ok(set)
}
