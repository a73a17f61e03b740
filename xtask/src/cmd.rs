//! Running commands with a clear error when one fails, and the environment
//! they run in. Every other module stands on this one; it imports none of
//! them, so the module graph has no loop through it.
use std::{
    ffi::{OsStr, OsString},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

/// Environment for later commands: what `setup` found or installed.
#[derive(Clone)]
pub struct Env {
    /// PATH with bpf-linker first.
    pub path: OsString,
    /// Extra variables.
    pub vars: Vec<(OsString, OsString)>,
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repo")
        .to_path_buf()
}

/// Runs a command to completion; fails with its name and status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Output of a command that must succeed.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo <args>` in the repo with the tool paths set.
pub fn cargo(env: &Env, args: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args(args)
        .current_dir(root())
        .env("PATH", &env.path)
        .envs(env.vars.iter().map(|(k, v)| (k, v))))
}

/// `cargo <args>` with the eBPF nightly, for the kernel crate.
pub fn cargo_nightly(env: &Env, nightly: &str, args: &[&str]) -> Result<()> {
    run(Command::new("rustup")
        .args(["run", nightly, "cargo"])
        .args(args)
        .current_dir(root())
        .env("PATH", &env.path)
        .envs(env.vars.iter().map(|(k, v)| (k, v))))
}

/// Replaces this process with the same xtask command line in a release
/// build of xtask. Run directly, not through `cargo run`, whose library
/// path would grow again: every program the bench starts would search it.
pub fn exec_release_xtask() -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "--quiet", "--release", "--package", "xtask"])
        .current_dir(root()))?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    exec(root().join("target/release/xtask"), &args)
}

/// Replaces this process with `program` (signals go straight to it).
pub fn exec(program: impl AsRef<OsStr>, args: &[String]) -> Result<()> {
    let err = Command::new(program.as_ref()).args(args).exec();
    Err(err).with_context(|| format!("exec {}", program.as_ref().display()))
}
