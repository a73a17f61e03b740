//! `cargo xtask run`: builds the release sensor and becomes it. Needs the
//! build tools only; no Debian package is installed for it.
use anyhow::Result;

use crate::{cmd, setup};

/// Builds the release sensor and replaces this process with it (signals go
/// straight to the sensor), passing `args` on.
pub fn task(args: Vec<String>) -> Result<()> {
    let env = setup::ensure_build_tools()?;
    cmd::cargo(&env, &["build", "--release", "--package", "sensor"])?;
    cmd::exec(
        cmd::root().join("target/release/sensor"),
        &sensor_args(args),
    )
}

/// `./x run --hooks exec` means `sensor run --hooks exec`; no arguments
/// means `sensor run`; a subcommand, `--version` or `--help` goes as is.
fn sensor_args(args: Vec<String>) -> Vec<String> {
    match args.first() {
        None => vec!["run".to_owned()],
        Some(first) if first.starts_with('-') && first != "--version" && first != "--help" => {
            std::iter::once("run".to_owned()).chain(args).collect()
        }
        Some(_) => args,
    }
}

#[cfg(test)]
mod tests {
    use super::sensor_args;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_mean_sensor_run() {
        assert_eq!(sensor_args(args(&[])), args(&["run"]));
        assert_eq!(
            sensor_args(args(&["--hooks", "exec"])),
            args(&["run", "--hooks", "exec"])
        );
        assert_eq!(sensor_args(args(&["--version"])), args(&["--version"]));
        assert_eq!(sensor_args(args(&["--help"])), args(&["--help"]));
        assert_eq!(
            sensor_args(args(&["rules", "check", "rules"])),
            args(&["rules", "check", "rules"])
        );
    }
}
