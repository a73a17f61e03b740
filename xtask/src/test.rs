//! `cargo xtask test`: the whole suite, cheapest first. The lints, the
//! deployment files, a short run of every fuzz target and the container
//! image before the test suite (a broken image fails fast), the kernel
//! tests in both program tiers on this kernel, then once more in a guest on
//! another kernel.
use anyhow::Result;

use crate::{cmd, deploy, formats, fuzz, image, lint, setup, vm};

/// Installs what the tests need, then runs every stage; stops at the first
/// that fails. `args` go to the test binaries (e.g. a test name filter).
pub fn task(args: &[String]) -> Result<()> {
    // The only task besides `vm-test` that needs the container runtimes and
    // the tools the detection tests run.
    setup::ensure_test_packages()?;
    let mut env = setup::ensure_build_tools()?;
    // The OCSF and ECS validators the replay and kernel tests run; a
    // failed install fails here, so no test can skip for want of them.
    let validators = formats::ensure()?;
    env.vars.push((formats::ENV.into(), validators.into()));
    lint::all(&env)?;
    // The kernel tests run the sensor binary; cargo test does not build it for them.
    cmd::cargo(&env, &["build", "--package", "sensor"])?;
    deploy::check()?;
    // Seconds per target once built: the seeds, the reproducers of fixed
    // crashes among them, and a little fuzzing.
    fuzz::smoke(&env)?;
    // The image is built and run against this kernel before the
    // suite: a broken image fails fast.
    image::build_and_check(&env)?;
    let mut test = vec!["test", "--no-fail-fast"];
    if !args.is_empty() {
        test.push("--");
        test.extend(args.iter().map(String::as_str));
    }
    cmd::cargo(&env, &test)?;
    // Both program tiers must pass the same kernel tests: auto picks
    // tp_btf here, so run the raw_tp tier explicitly too.
    let mut raw = env.clone();
    raw.vars.push(("SENSOR_TIER".into(), "raw-tp".into()));
    let mut kernel = vec![
        "test",
        "--no-fail-fast",
        "--package",
        "sensor-tests",
        "--test",
        "kernel",
    ];
    if !args.is_empty() {
        kernel.push("--");
        kernel.extend(args.iter().map(String::as_str));
    }
    eprintln!("xtask: kernel tests again with the raw_tp tier");
    cmd::cargo(&raw, &kernel)?;
    // And once more inside a guest on another kernel (pure cgroup2,
    // LSM-capable), so no kernel-specific breakage lands unseen.
    vm::run(&env, &vm::Options::guest(vm::CI_KERNEL, args))
}
