//! The commands that validate files before a sensor reads them (`rules
//! check`, `config check`) and `install`, which places them and then checks
//! them the same way.
use std::{path::PathBuf, process::ExitCode};

use clap::CommandFactory as _;
use sensor::{config::ConfigError, rules::RuleSource};

use crate::args::Cli;

/// `sensor rules check`: every error as file:line:col.
pub(crate) fn rules(paths: Vec<PathBuf>) -> ExitCode {
    let source = RuleSource::chosen(&paths, false).expect("rules were asked for");
    match source.load() {
        Ok(set) => {
            println!(
                "ok: {} rules and {} sequences in {} packs ({})",
                set.rules.len(),
                set.sequences.len(),
                set.packs.len(),
                set.origin
            );
            if set.is_empty() {
                eprintln!(
                    "warning: the set is empty (`rules: []`): a sensor running it detects nothing"
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// `sensor config check`: every error as file:line:col.
pub(crate) fn config(path: &std::path::Path) -> ExitCode {
    let (settings, errors) = sensor::config::checked(&Cli::command(), path);
    if errors.is_empty() {
        println!("ok: {} settings in {}", settings.len(), path.display());
        ExitCode::SUCCESS
    } else {
        eprint!("{}", lines(&errors));
        eprintln!("{} error(s)", errors.len());
        ExitCode::FAILURE
    }
}

fn lines(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}

/// `sensor install`: places the files, then checks what it placed the way
/// the service will read it.
#[cfg(target_os = "linux")]
pub(crate) fn install(root: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use sensor::install;
    let exe = std::env::current_exe().context("finding this binary")?;
    for placed in install::install(root, &exe).context("installing")? {
        println!("{placed}");
    }
    let config = root.join(install::CONFIG_PATH);
    let (_, errors) = sensor::config::checked(&Cli::command(), &config);
    let rules = RuleSource::Paths(vec![root.join(install::RULES_DIR)]).load();
    if !errors.is_empty() || rules.is_err() {
        eprint!("{}", lines(&errors));
        if let Err(e) = rules {
            eprintln!("{e}");
        }
        eprintln!("installed, but the configuration or rules above are refused");
        return Ok(ExitCode::FAILURE);
    }
    if root == std::path::Path::new("/") {
        println!(
            "next: systemctl daemon-reload && systemctl enable --now runtime-sensor
             events: /var/log/runtime-sensor/events.json; settings: /etc/runtime-sensor/sensor.yaml"
        );
    }
    Ok(ExitCode::SUCCESS)
}
