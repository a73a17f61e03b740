//! `cargo xtask <task>`: everything a new machine needs, from toolchains to
//! benchmarks, one module per task. This file only parses the command line
//! and hands each task to its module; each task installs what it needs
//! (see `setup`).
//!
//! The modules stand on each other one way only: `test` on the stages it
//! runs (`lint`, `deploy`, `fuzz`, `image`, `vm`) and on `formats` (the
//! validators the tests use), `lint` on `modules`, every task that installs
//! something on `setup`, and everything on `cmd`, which imports none of
//! them. `cargo xtask modules` checks that it stays so.
mod bench;
mod cmd;
mod deploy;
mod formats;
mod fuzz;
mod image;
mod lint;
mod modules;
mod run;
mod setup;
mod test;
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
    /// Install the build tools (idempotent): the eBPF nightly with rust-src
    /// and a matching bpf-linker. No Debian packages unless --tests.
    Setup(setup::Options),
    /// Install the build tools, build the release sensor and run it with the
    /// given arguments (default `run`: every hook, JSON to stdout). Needs
    /// root.
    Run {
        /// Arguments for the sensor binary.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install the build tools and the test packages, check formatting and
    /// lints (for Linux, BPF, Windows and macOS), validate the deployment
    /// files, run every fuzz target briefly, build and run the container
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
    /// Install the OCSF and ECS validators the tests run (`test` does this)
    /// and print their directory, for tests/validate/formats.py by hand.
    Validators,
    /// Check that no crate's modules import each other in a loop (`test`
    /// runs this right after rustfmt).
    Modules(modules::Options),
    /// Kernel overhead benchmarks: workloads bare and with the sensor.
    Bench(bench::Options),
    /// The kernel tests inside qemu guests running Debian's 5.10, 6.1 and
    /// 6.12 kernels (as root).
    VmTest(vm::Options),
    /// Build the fuzz targets (fuzz/, libFuzzer via cargo-fuzz) and run
    /// each for `--time`; corpora, crashes and logs go to target/fuzz
    /// (docs/FUZZING.md).
    Fuzz(fuzz::Options),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup(opts) => setup::task(&opts),
        Task::Run { args } => run::task(args),
        Task::Test { args } => test::task(&args),
        Task::VmTest(opts) => vm::task(&opts),
        Task::Static { out } => image::static_task(&out),
        Task::Image => image::task(),
        Task::Manifests { check: false } => deploy::generate(),
        Task::Manifests { check: true } => deploy::check(),
        Task::Validators => formats::ensure().map(|dir| println!("{}", dir.display())),
        Task::Modules(opts) => modules::task(&opts),
        Task::Bench(opts) => bench::task(&opts),
        Task::Fuzz(opts) => fuzz::task(&opts),
    }
}
