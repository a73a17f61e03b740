//! `sensor`: eBPF runtime-security sensor. This file only dispatches: the
//! command line is `args`, `sensor run` is `run`, `sensor replay` is
//! `replay`, and the commands that validate or place files are `check`.
mod args;
mod check;
mod replay;
mod run;

use std::{ffi::OsString, process::ExitCode};

use clap::{CommandFactory as _, Parser as _};

use args::{Cli, Command, ConfigCommand, RulesCommand};

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    match cli.command {
        Command::Run(args) => match &args.config {
            None => run::run(*args).map(|()| ExitCode::SUCCESS),
            Some(path) => match configured(&argv, path) {
                Ok(args) => run::run(*args).map(|()| ExitCode::SUCCESS),
                Err(errors) => {
                    eprintln!("{errors}configuration refused");
                    Ok(ExitCode::FAILURE)
                }
            },
        },
        Command::Rules(RulesCommand::Check { paths }) => Ok(check::rules(paths)),
        Command::Config(ConfigCommand::Check { path }) => Ok(check::config(&path)),
        Command::Replay(args) => replay::replay(args).map(|()| ExitCode::SUCCESS),
        #[cfg(target_os = "linux")]
        Command::Install { root } => check::install(&root),
    }
}

/// `run`'s arguments with the configuration file's settings where neither
/// a flag nor an environment variable set the option.
fn configured(argv: &[OsString], path: &std::path::Path) -> Result<Box<args::RunArgs>, String> {
    let merged = sensor::config::merged_argv(&Cli::command(), argv, path)?;
    match Cli::try_parse_from(&merged) {
        Ok(Cli {
            command: Command::Run(args),
        }) => Ok(args),
        Ok(_) => unreachable!("the same subcommand"),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
