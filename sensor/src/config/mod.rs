//! The configuration file: `sensor run`'s options as YAML keys, named as
//! the long options with `_` for `-` (`ring_bytes: 16777216`,
//! `hooks: [exec, open]`, `no_rules: true`). Read with positions
//! (marked-yaml), so every error names file:line:col. Which keys exist and
//! how each is parsed comes from the command line's own definition
//! (`merge`, given the binary's `clap::Command`): a key is exactly what its
//! flag would be, and the flags and the environment override the file.
mod merge;

use std::path::Path;

use marked_yaml::{LoaderOptions, Marker, Node};

pub use merge::{checked, checked_text, merged_argv, options};

use crate::located::start;

/// One option the file may set.
#[derive(Clone, Debug)]
pub struct OptionSpec {
    /// Its long name, `ring-bytes`.
    pub long: String,
    /// A switch (`--no-rules`): the key takes `true` or `false`.
    pub switch: bool,
    /// Takes a comma-separated list: the key may be a YAML sequence.
    pub list: bool,
    /// Repeatable without a delimiter: a list gives the flag once per item.
    pub repeat: bool,
}

/// A setting from the file, as the command-line words it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The option's long name.
    pub long: String,
    /// `--long=value`, `--long`, or nothing (a switch set to false).
    pub words: Vec<String>,
    /// Where the key is.
    pub line: usize,
    /// Its column.
    pub col: usize,
}

/// A configuration error at a position: the rule files' error type, so
/// both print as `file:line:col: message`.
pub use crate::located::LocatedError as ConfigError;

/// Reads `path` into the settings it makes and the errors it has: keys and
/// value shapes are checked here, the values themselves by the option
/// parsers (the binary does that, reporting at the setting's position).
/// Every error is collected, none stops the others.
pub fn load(path: &Path, options: &[OptionSpec]) -> (Vec<Setting>, Vec<ConfigError>) {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&file, &text, options),
        Err(e) => (
            Vec::new(),
            vec![ConfigError::file(&file, format!("cannot read: {e}"))],
        ),
    }
}

/// [`load`] on text.
pub fn parse(file: &str, text: &str, options: &[OptionSpec]) -> (Vec<Setting>, Vec<ConfigError>) {
    let err = |at: Marker, message: String| ConfigError::at(file, at, message);
    let opts = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let root = match marked_yaml::parse_yaml_with_options(0, text, opts) {
        Ok(root) => root,
        Err(e) => return (Vec::new(), vec![ConfigError::yaml(file, &e)]),
    };
    let Some(top) = root.as_mapping() else {
        return (
            Vec::new(),
            vec![err(
                start(root.span()),
                "a configuration file is a mapping of option names to values".into(),
            )],
        );
    };
    let mut settings = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in top.iter() {
        let at = start(key.span());
        let long = key.as_str().replace('_', "-");
        let Some(spec) = options.iter().find(|o| o.long == long) else {
            let mut known: Vec<String> = options.iter().map(|o| o.long.replace('-', "_")).collect();
            known.sort();
            errors.push(err(
                at,
                format!(
                    "unknown key '{}' (known: {})",
                    key.as_str(),
                    known.join(", ")
                ),
            ));
            continue;
        };
        match words(spec, value) {
            Ok(words) => settings.push(Setting {
                long,
                words,
                line: at.line(),
                col: at.column(),
            }),
            Err(message) => errors.push(err(
                start(value.span()),
                format!("{}: {message}", key.as_str()),
            )),
        }
    }
    (settings, errors)
}

/// The command-line words a value stands for.
fn words(spec: &OptionSpec, value: &Node) -> Result<Vec<String>, String> {
    let flag = format!("--{}", spec.long);
    if let Node::Scalar(s) = value
        && s.may_coerce()
        && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
    {
        return Err("needs a value (leave the key out for the default)".into());
    }
    match value {
        Node::Scalar(s) if spec.switch => match s.as_str() {
            "true" => Ok(vec![flag]),
            "false" => Ok(Vec::new()),
            other => Err(format!("expected true or false, found '{other}'")),
        },
        Node::Scalar(s) => Ok(vec![format!("{flag}={}", s.as_str())]),
        Node::Sequence(items) if spec.repeat => items
            .iter()
            .map(|item| match item {
                Node::Scalar(s) => Ok(format!("{flag}={}", s.as_str())),
                _ => Err("list items must be single values".into()),
            })
            .collect(),
        Node::Sequence(items) if spec.list => {
            let mut values = Vec::with_capacity(items.len());
            for item in items.iter() {
                match item {
                    Node::Scalar(s) if !s.as_str().contains(',') => {
                        values.push(s.as_str().to_owned())
                    }
                    Node::Scalar(_) => return Err("list items cannot contain ','".into()),
                    _ => return Err("list items must be single values".into()),
                }
            }
            Ok(vec![format!("{flag}={}", values.join(","))])
        }
        Node::Sequence(_) => Err("takes one value, not a list".into()),
        Node::Mapping(_) => Err("takes a value, not a mapping".into()),
    }
}
