//! The lint stage of `cargo xtask test`: formatting, the module graph and
//! clippy for every target the project builds for. Cheaper than anything
//! after it, so a slip fails within minutes, not after the kernel tests.
use anyhow::Result;

use crate::{
    cmd::{self, Env},
    modules, setup,
};

/// Systems the `sensor` crate also builds for, with the eBPF parts gated
/// off (the polling collector); `cargo xtask test` lints each.
pub const CROSS_TARGETS: &[&str] = &[
    "x86_64-pc-windows-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
];

/// The fuzz targets' manifest: a workspace of its own, so the workspace
/// lints above do not reach it.
const FUZZ_MANIFEST: &str = "fuzz/Cargo.toml";

/// Every lint, in order: rustfmt, module cycles (milliseconds, before any
/// compiling), clippy on the host (the fuzz targets too), for BPF and for
/// the polling-only systems.
pub fn all(env: &Env) -> Result<()> {
    cmd::cargo(env, &["fmt", "--all", "--", "--check"])?;
    cmd::cargo(
        env,
        &["fmt", "--manifest-path", FUZZ_MANIFEST, "--", "--check"],
    )?;
    modules::check(&cmd::root())?;
    cmd::cargo(env, &["clippy", "--all-targets", "--", "-D", "warnings"])?;
    // Into the workspace's target directory, where the sensor and its
    // dependencies are already checked.
    cmd::cargo(
        env,
        &[
            "clippy",
            "--manifest-path",
            FUZZ_MANIFEST,
            "--target-dir",
            "target",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    clippy_ebpf(env)?;
    clippy_cross(env)
}

/// Lints the kernel crate for its real target (the host build of it is
/// only a stub for cargo's dependency tracking).
fn clippy_ebpf(env: &Env) -> Result<()> {
    // Only this lint needs clippy on the nightly; the build tools leave it
    // out so that `run` does not download it.
    setup::ensure_nightly_clippy()?;
    let mut env = env.clone();
    let arch = std::env::consts::ARCH;
    env.vars.push((
        "RUSTFLAGS".into(),
        format!("--cfg=bpf_target_arch=\"{arch}\"").into(),
    ));
    let nightly = setup::nightly()?;
    cmd::cargo_nightly(
        &env,
        &nightly,
        &[
            "clippy",
            "--package",
            "sensor-ebpf",
            "--bins",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ],
    )
}

/// Lints the sensor for the systems only the polling collector serves: a
/// check build (no linker or SDK needed), so it runs on this host.
fn clippy_cross(env: &Env) -> Result<()> {
    setup::ensure_targets(CROSS_TARGETS)?;
    for target in CROSS_TARGETS {
        cmd::cargo(
            env,
            &[
                "clippy",
                "--package",
                "sensor",
                "--lib",
                "--bins",
                "--target",
                target,
                "--",
                "-D",
                "warnings",
            ],
        )?;
    }
    Ok(())
}
