//! The file's settings against the command line's own definition: which
//! keys exist, each value checked by its flag's parser, and the file merged
//! under the flags and environment variables that were given. Takes the
//! binary's `clap::Command` (with its `run` subcommand), so a key is exactly
//! what its flag would be.
use std::{ffi::OsString, path::Path};

use tracing::info;

use super::{ConfigError, OptionSpec, Setting, load};

/// The subcommand a configuration file configures.
const RUN: &str = "run";

/// The options a configuration file may set: every long option of `run`
/// but the file itself, each parsed by its own flag's parser.
pub fn options(cli: &clap::Command) -> Vec<OptionSpec> {
    run_of(cli)
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            (long != "config" && long != "help").then(|| OptionSpec {
                long: long.to_owned(),
                switch: matches!(a.get_action(), clap::ArgAction::SetTrue),
                // HookSet parses its own comma list.
                list: a.get_value_delimiter() == Some(',') || long == "hooks",
                repeat: matches!(a.get_action(), clap::ArgAction::Append)
                    && a.get_value_delimiter().is_none(),
            })
        })
        .collect()
}

/// A file's settings, each value checked by its flag's parser; all errors,
/// in file order.
pub fn checked(cli: &clap::Command, path: &Path) -> (Vec<Setting>, Vec<ConfigError>) {
    let (settings, errors) = load(path, &options(cli));
    check_values(cli, path.display().to_string(), settings, errors)
}

/// [`checked`] on the text of a file named `file`.
pub fn checked_text(
    cli: &clap::Command,
    file: &str,
    text: &str,
) -> (Vec<Setting>, Vec<ConfigError>) {
    let (settings, errors) = super::parse(file, text, &options(cli));
    check_values(cli, file.to_owned(), settings, errors)
}

/// Runs each setting's words, then all of them together, through the
/// command line's parsers; adds what they refuse to `errors`.
fn check_values(
    cli: &clap::Command,
    file: String,
    settings: Vec<Setting>,
    mut errors: Vec<ConfigError>,
) -> (Vec<Setting>, Vec<ConfigError>) {
    let parse = |words: &mut dyn Iterator<Item = &String>| {
        let argv = ["sensor", RUN]
            .map(OsString::from)
            .into_iter()
            .chain(words.map(OsString::from));
        cli.clone().try_get_matches_from(argv).map(drop)
    };
    let settings = settings
        .into_iter()
        .filter(|s| match parse(&mut s.words.iter()) {
            Ok(()) => true,
            Err(e) => {
                let message = format!("{}: {}", s.long.replace('-', "_"), first_line(&e));
                errors.push(ConfigError {
                    file: file.clone(),
                    line: s.line,
                    col: s.col,
                    message,
                });
                false
            }
        })
        .collect::<Vec<Setting>>();
    // Settings that are fine alone may still conflict (`rules` with
    // `no_rules`): parse them together too.
    if errors.is_empty()
        && let Some(first) = settings.first()
        && let Err(e) = parse(&mut settings.iter().flat_map(|s| s.words.iter()))
    {
        errors.push(ConfigError {
            file,
            line: first.line,
            col: first.col,
            message: first_line(&e),
        });
    }
    errors.sort_by_key(|e| (e.line, e.col));
    (settings, errors)
}

/// `argv` (which runs `run`) with the file's settings inserted where
/// neither a flag nor an environment variable set the option; the errors
/// of the file, one per line, if it is refused.
pub fn merged_argv(
    cli: &clap::Command,
    argv: &[OsString],
    path: &Path,
) -> Result<Vec<OsString>, String> {
    let (settings, errors) = checked(cli, path);
    if !errors.is_empty() {
        return Err(errors.iter().map(|e| format!("{e}\n")).collect());
    }
    let matches = cli.clone().get_matches_from(argv);
    let given = matches.subcommand_matches(RUN).expect("argv runs `run`");
    let run = run_of(cli);
    let explicit = |long: &str| {
        run.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| given.value_source(a.get_id().as_str()))
            .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
    };
    // `rules` and `no_rules` choose one thing: either on the command line
    // overrides both in the file.
    let overridden = |long: &str| match long {
        "rules" | "no-rules" => explicit("rules") || explicit("no-rules"),
        _ => explicit(long),
    };
    let mut words: Vec<OsString> = Vec::new();
    for s in &settings {
        if overridden(&s.long) {
            info!(option = %s.long, "the configuration file's value is overridden");
        } else {
            words.extend(s.words.iter().map(OsString::from));
        }
    }
    let at = argv.iter().position(|a| a == RUN).expect("argv runs `run`") + 1;
    let mut merged = argv.to_vec();
    merged.splice(at..at, words);
    Ok(merged)
}

fn run_of(cli: &clap::Command) -> &clap::Command {
    cli.find_subcommand(RUN)
        .expect("the command line has a run subcommand")
}

/// clap's message without its `error: ` prefix and usage lines.
fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}
