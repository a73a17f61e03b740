//! `cargo xtask fuzz`: the fuzz targets of fuzz/ (libFuzzer through
//! cargo-fuzz), each run for a while from its seeds and its growing corpus,
//! and the short smoke of every target that `test` runs.
//!
//! Both build with the eBPF nightly (cargo-fuzz needs a nightly, and that
//! one is already pinned and installed) and AddressSanitizer, into
//! target/fuzz. The runs build the release profile (tens of thousands of
//! executions a second); the smoke builds the dev profile, which after a
//! change to the sensor recompiles in seconds where release takes over a
//! minute, and runs too briefly for speed to matter. Debug assertions, and
//! with them overflow checks, are on in both.
//!
//! Seeds: checked in under fuzz/seeds/<target> (kernel records, runtime
//! state, cgroup paths, a refused configuration), and written here at every
//! run from the files they stand for (the rule packs, the shipped
//! configuration, the replay fixtures), so they follow those files.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{
    cmd::{self, Env},
    setup,
};

/// Every target, as fuzz/Cargo.toml names them.
pub const TARGETS: &[&str] = &[
    "decode",
    "rules",
    "config",
    "replay",
    "container_state",
    "cgroup_path",
];

/// How long the smoke runs each target, after its seeds.
const SMOKE_TIME: Duration = Duration::from_secs(2);

/// Longest one input may take before libFuzzer reports it as a hang.
const INPUT_TIMEOUT_SECS: u32 = 25;

/// `cargo xtask fuzz` options.
#[derive(clap::Args)]
pub struct Options {
    /// How long each target runs (`90s`, `10m`, `1h`).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    time: Duration,
    /// Targets to run, in order; default: all.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    targets: Vec<String>,
    /// Extra libFuzzer flags after `--` (e.g. `-- -max_len=65536`).
    #[arg(last = true)]
    libfuzzer: Vec<String>,
    /// Only the smoke `test` runs (every target, seeds alone, a few
    /// seconds each); the other options do not apply.
    #[arg(long, conflicts_with_all = ["time", "targets", "libfuzzer"])]
    smoke: bool,
}

/// The profile the targets are built with.
#[derive(Clone, Copy)]
enum Profile {
    /// `fuzz`: optimised.
    Release,
    /// The smoke: quick to rebuild.
    Dev,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Dev => "debug",
        }
    }
}

/// `cargo xtask fuzz`: builds, then runs each target for `--time` from its
/// seeds and target/fuzz/corpus/<target> (which keeps what it finds);
/// fails if any target crashed, after running the rest.
pub fn task(opts: &Options) -> Result<()> {
    let env = setup::ensure_build_tools()?;
    if opts.smoke {
        return smoke(&env);
    }
    let cargo_fuzz = setup::ensure_cargo_fuzz()?;
    let bins = build(&env, &cargo_fuzz, Profile::Release)?;
    let targets: Vec<&str> = if opts.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        opts.targets.iter().map(String::as_str).collect()
    };
    let mut results = Vec::new();
    for target in targets {
        let corpus = work_dir().join("corpus").join(target);
        fs::create_dir_all(&corpus)?;
        eprintln!(
            "xtask: fuzzing {target} for {}",
            humantime::format_duration(opts.time)
        );
        let run = run(&bins, target, &corpus, opts.time, &opts.libfuzzer)?;
        eprintln!("xtask: {}", run.line());
        results.push(run);
    }
    eprintln!("xtask: fuzzing done");
    for r in &results {
        eprintln!("  {}", r.line());
    }
    failed(&results)
}

/// The smoke of `cargo xtask test`: every target built (dev profile) and
/// run from its seeds alone for [`SMOKE_TIME`], so the checked-in
/// reproducers of fixed crashes run every time. Where libFuzzer cannot run
/// (another architecture, cargo-fuzz not installable) it is skipped with
/// the reason, unless CI=true: there it fails.
pub fn smoke(env: &Env) -> Result<()> {
    let cargo_fuzz = match supported().and_then(|()| setup::ensure_cargo_fuzz()) {
        Ok(bin) => bin,
        Err(e) => return cannot_run(e, in_ci()),
    };
    let started = Instant::now();
    let bins = build(env, &cargo_fuzz, Profile::Dev)?;
    let mut results = Vec::new();
    for target in TARGETS {
        // A fresh corpus: the smoke is the same every time, and the runs'
        // growing corpus would make it slower each time.
        let corpus = work_dir().join("smoke").join(target);
        let _ = fs::remove_dir_all(&corpus);
        fs::create_dir_all(&corpus)?;
        results.push(run(&bins, target, &corpus, SMOKE_TIME, &[])?);
    }
    for r in &results {
        eprintln!("xtask: smoke {}", r.line());
    }
    eprintln!(
        "xtask: fuzz smoke of {} targets in {:.0?}",
        results.len(),
        started.elapsed()
    );
    failed(&results)
}

/// The smoke cannot run here: skipped with the reason, or in CI an error.
fn cannot_run(why: anyhow::Error, ci: bool) -> Result<()> {
    if ci {
        return Err(why.context("the fuzz smoke cannot run (CI=true: not skipped)"));
    }
    eprintln!("xtask: fuzz smoke SKIPPED, it cannot run here: {why:#}");
    Ok(())
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
}

/// libFuzzer with AddressSanitizer, as cargo-fuzz builds it, runs on
/// x86_64 and aarch64 Linux.
fn supported() -> Result<()> {
    let arch = std::env::consts::ARCH;
    if cfg!(target_os = "linux") && matches!(arch, "x86_64" | "aarch64") {
        Ok(())
    } else {
        bail!("libFuzzer with AddressSanitizer is not built for {arch} here")
    }
}

/// Everything under target/fuzz: the build, corpora, seeds, artifacts, logs.
fn work_dir() -> PathBuf {
    cmd::root().join("target/fuzz")
}

/// Builds every target; returns the directory holding them.
fn build(env: &Env, cargo_fuzz: &Path, profile: Profile) -> Result<PathBuf> {
    let nightly = setup::nightly()?;
    let verbose = cmd::output(Command::new("rustup").args(["run", &nightly, "rustc", "-vV"]))?;
    let host = verbose
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or_else(|| anyhow!("{nightly}: rustc -vV names no host"))?
        .to_owned();
    let mut build = Command::new(cargo_fuzz);
    build.args(["fuzz", "build", "--fuzz-dir"]);
    build.arg(cmd::root().join("fuzz"));
    build.arg("--target-dir").arg(work_dir());
    build.args(["--target", &host]);
    if let Profile::Dev = profile {
        build.arg("--dev");
    }
    cmd::run(
        build
            .current_dir(cmd::root())
            .env("PATH", &env.path)
            .envs(env.vars.iter().map(|(k, v)| (k, v)))
            // cargo-fuzz runs `cargo`: rustup's, for the nightly.
            .env("RUSTUP_TOOLCHAIN", &nightly),
    )?;
    Ok(work_dir().join(host).join(profile.dir()))
}

/// What one target's run came to.
struct Run {
    target: String,
    time: Duration,
    /// As libFuzzer counts them.
    executions: u64,
    /// Inputs in the corpus it wrote to, after.
    corpus: usize,
    /// Why it failed: the reproducer libFuzzer wrote, or its exit status.
    failure: Option<String>,
}

impl Run {
    fn line(&self) -> String {
        format!(
            "{:<16} {:>6.0?} {:>12} executions {:>6} corpus  {}",
            self.target,
            self.time,
            self.executions,
            self.corpus,
            self.failure.as_deref().unwrap_or("ok")
        )
    }
}

fn failed(results: &[Run]) -> Result<()> {
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.failure.is_some())
        .map(|r| r.target.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(
            "fuzz target(s) failed: {} (reproducers under {}; logs under {})",
            failed.join(", "),
            work_dir().join("artifacts").display(),
            work_dir().join("logs").display()
        )
    }
}

/// Runs `target` for `time`, writing what it finds to `corpus`; its
/// output goes to target/fuzz/logs/<target>.log.
fn run(bins: &Path, target: &str, corpus: &Path, time: Duration, extra: &[String]) -> Result<Run> {
    let artifacts = work_dir().join("artifacts").join(target);
    let logs = work_dir().join("logs");
    fs::create_dir_all(&artifacts)?;
    fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let log = fs::File::create(&log_path)?;
    let mut fuzz = Command::new(bins.join(target));
    // The first directory is the one libFuzzer adds to; the seeds are read.
    fuzz.arg(corpus);
    fuzz.args(seed_dirs(target)?);
    fuzz.arg(format!("-max_total_time={}", time.as_secs().max(1)));
    fuzz.arg(format!("-timeout={INPUT_TIMEOUT_SECS}"));
    fuzz.arg("-print_final_stats=1");
    // libFuzzer joins the prefix and the file name as they are.
    fuzz.arg(format!("-artifact_prefix={}/", artifacts.display()));
    fuzz.args(extra);
    let started = Instant::now();
    let status = fuzz
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("starting {}", bins.join(target).display()))?;
    let time = started.elapsed();
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    let failure = (!status.success()).then(|| {
        eprintln!("{}", tail(&output, 40));
        output
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p))
            .map_or_else(|| format!("failed: {status}"), |p| format!("failed: {p}"))
    });
    Ok(Run {
        target: target.to_owned(),
        time,
        executions: output
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0),
        corpus: fs::read_dir(corpus)?.count(),
        failure,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The seed directories of `target`: the checked-in one and the one
/// written now from the files its inputs stand for.
fn seed_dirs(target: &str) -> Result<Vec<PathBuf>> {
    let root = cmd::root();
    let mut dirs = Vec::new();
    let checked_in = root.join("fuzz/seeds").join(target);
    if checked_in.is_dir() {
        dirs.push(checked_in);
    }
    let written = work_dir().join("seeds").join(target);
    let _ = fs::remove_dir_all(&written);
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    match target {
        "rules" => {
            for file in files_in(&root.join("rules"), "yaml")? {
                seeds.push((file_name(&file), fs::read(&file)?));
            }
        }
        "config" => {
            let file = root.join("deploy/systemd/sensor.yaml");
            seeds.push((file_name(&file), fs::read(&file)?));
        }
        "replay" => {
            // Whole captures (sequences span lines) and each line alone.
            for file in files_in(&root.join("tests/fixtures/replay"), "jsonl")? {
                let text = fs::read(&file)?;
                let name = file_name(&file);
                for (n, line) in text.split(|&b| b == b'\n').enumerate() {
                    if !line.is_empty() {
                        seeds.push((format!("{name}.{}", n + 1), line.to_vec()));
                    }
                }
                seeds.push((name, text));
            }
        }
        _ => {}
    }
    if !seeds.is_empty() {
        fs::create_dir_all(&written)?;
        for (name, bytes) in seeds {
            fs::write(written.join(name), bytes)?;
        }
        dirs.push(written);
    }
    if dirs.is_empty() {
        bail!("no seeds for fuzz target {target}");
    }
    Ok(dirs)
}

/// Files of `dir` ending in `.ext`, sorted.
fn files_in(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smoke_that_cannot_run_fails_in_ci_and_is_skipped_elsewhere() {
        let why = || anyhow!("cargo-fuzz cannot be installed");
        let err = cannot_run(why(), true).unwrap_err();
        assert!(format!("{err:#}").contains("cargo-fuzz cannot be installed"));
        assert!(cannot_run(why(), false).is_ok());
    }

    #[test]
    fn every_target_of_the_fuzz_crate_is_run() {
        let manifest = fs::read_to_string(cmd::root().join("fuzz/Cargo.toml")).unwrap();
        let mut bins: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|bin| {
                bin.lines()
                    .find_map(|l| l.strip_prefix("name = "))
                    .map(|n| n.trim_matches('"'))
            })
            .collect();
        bins.sort_unstable();
        let mut targets = TARGETS.to_vec();
        targets.sort_unstable();
        assert_eq!(bins, targets);
    }
}
