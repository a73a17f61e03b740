//! `cargo xtask <task>`: everything a new machine needs, from toolchains to
//! benchmarks, one module per task.
mod bench;
mod cmd;
mod deploy;
mod image;
mod setup;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the eBPF nightly, rust-src and a matching bpf-linker (idempotent).
    Setup,
    /// Set up, build the release sensor and run it with the given arguments
    /// (default `run`: every hook, JSON to stdout). Needs root.
    Run {
        /// Arguments for the sensor binary.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, check formatting and lints (for Linux, BPF, Windows and
    /// macOS), validate the deployment files, build and run the container
    /// image, then run every test, the kernel tests included (as root), on
    /// this kernel and in one guest kernel.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Regenerate the rules ConfigMap in deploy/kubernetes from rules/, or
    /// with --check validate every file under deploy/ (as `test` does).
    Manifests {
        /// Validate instead of generating.
        #[arg(long)]
        check: bool,
    },
    /// Build the static sensor and default rules into `--out` as the
    /// container image lays them out (the Containerfile's build stage).
    Static {
        /// The tree to write (`usr/local/bin/sensor`, `etc/runtime-sensor/rules`).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Build the container image offline (podman) and run it against this
    /// kernel with the DaemonSet's capabilities (as root; `test` does this).
    Image,
    /// Kernel overhead benchmarks: workloads bare and with the sensor.
    Bench(bench::Options),
    /// The kernel tests inside qemu guests running Debian's 5.10, 6.1 and
    /// 6.12 kernels (as root).
    VmTest(vm::Options),
}

/// Lints the kernel crate for its real target (the host build of it is
/// only a stub for cargo's dependency tracking).
fn clippy_ebpf(env: &cmd::Env) -> Result<()> {
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
fn clippy_cross(env: &cmd::Env) -> Result<()> {
    setup::ensure_targets(setup::CROSS_TARGETS)?;
    for target in setup::CROSS_TARGETS {
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

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::ensure().map(drop),
        Task::Run { args } => {
            let env = setup::ensure()?;
            cmd::cargo(&env, &["build", "--release", "--package", "sensor"])?;
            // `./x run --hooks exec` means `sensor run --hooks exec`.
            let args = match args.first() {
                None => vec!["run".to_owned()],
                Some(first)
                    if first.starts_with('-') && first != "--version" && first != "--help" =>
                {
                    std::iter::once("run".to_owned()).chain(args).collect()
                }
                Some(_) => args,
            };
            cmd::exec(cmd::root().join("target/release/sensor"), &args)
        }
        Task::Test { args } => {
            let env = setup::ensure()?;
            cmd::cargo(&env, &["fmt", "--all", "--", "--check"])?;
            cmd::cargo(&env, &["clippy", "--all-targets", "--", "-D", "warnings"])?;
            clippy_ebpf(&env)?;
            clippy_cross(&env)?;
            // The kernel tests run the sensor binary; cargo test does not build it for them.
            cmd::cargo(&env, &["build", "--package", "sensor"])?;
            deploy::check()?;
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
            vm::run(&env, &vm::Options::guest(vm::CI_KERNEL, &args))
        }
        Task::VmTest(opts) => vm::run(&setup::ensure()?, &opts),
        Task::Static { out } => image::build_static(&setup::ensure()?, &out),
        Task::Image => image::build_and_check(&setup::ensure()?),
        Task::Manifests { check: false } => deploy::generate(),
        Task::Manifests { check: true } => deploy::check(),
        Task::Bench(opts) => {
            let env = setup::ensure()?;
            cmd::cargo(&env, &["build", "--release", "--package", "sensor"])?;
            // What the comparison, the mixed workload and the memory
            // bench's containers run.
            setup::ensure_packages(&[
                "auditd",
                "bpftrace",
                "gcc",
                "tar",
                "runc",
                "busybox-static",
            ])?;
            bench::run(&opts)?;
            if opts.one_part() {
                return Ok(());
            }
            // Userspace cost per event (criterion).
            cmd::cargo(
                &env,
                &["bench", "--package", "sensor", "--bench", "pipeline"],
            )
        }
    }
}
