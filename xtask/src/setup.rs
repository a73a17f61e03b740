//! `cargo xtask setup`, and what every other task installs through it: each
//! task installs what it needs, no more.
//!
//! - Build tools, for every task that builds the sensor (`run`, `static`,
//!   `image`, `bench`, `test`, `vm-test`, `setup`): the nightly pinned in
//!   sensor-ebpf/rust-toolchain.toml with rust-src, and bpf-linker built
//!   against that nightly's own libLLVM, so no LLVM package is needed and the
//!   versions cannot drift apart. No Debian package: `./x run` on a fresh
//!   machine installs nothing with apt. (The pinned stable toolchain is
//!   `./x`'s job, before this program is even built.)
//! - Test packages, only for `test` and `vm-test` (and `setup --tests`): the
//!   Debian packages the kernel tests use (runc, busybox-static, docker.io,
//!   podman, ...). The guests of `vm-test` mount the host's root, so they
//!   use the host's.
//! - Clippy for the nightly, only for the lints of `test` (and `setup
//!   --tests`): building the kernel crate needs rust-src alone.
//! - cargo-fuzz, only for `fuzz` and the fuzz smoke of `test` (and `setup
//!   --tests`), built from crates.io at a pinned version.
//!
//! The tasks with packages of their own (`image`, `static`, `bench`,
//! `vm-test`, `manifests --check`) install them where they run, through
//! [`ensure_packages`].
//!
//! Tools go under `$SENSOR_TOOLS_DIR` (default ~/.cache/sensor-tools), keyed
//! by the nightly, where sensor/build.rs also looks.
use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::cmd::{self, Env};

/// bpf-linker release; its `llvm-<major>` feature must match the nightly.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// cargo-fuzz release. It only drives cargo (the fuzz targets are built by
/// the eBPF nightly, the one nightly the project pins), so any toolchain
/// builds it.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The eBPF nightly channel.
pub fn nightly() -> Result<String> {
    let pin = cmd::root().join("sensor-ebpf/rust-toolchain.toml");
    let text = fs::read_to_string(&pin).with_context(|| format!("reading {}", pin.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"').to_owned())
        .ok_or_else(|| anyhow!("{}: no channel", pin.display()))
}

pub fn tools_dir() -> PathBuf {
    std::env::var_os("SENSOR_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/sensor-tools")
        })
}

/// Debian packages the kernel tests use: real containers run by runc and by
/// a private dockerd, from a busybox root filesystem built on the spot, and
/// the tools the detection tests run inside them (the seeds' validation
/// steps: openssl, gpg, zip, rsync, scp) and beside them (a C build for the
/// benign suite), and a real syslog receiver for the syslog output.
const TEST_PACKAGES: &[&str] = &[
    "runc",
    "busybox-static",
    "docker.io",
    "podman",
    "openssl",
    "gnupg",
    "zip",
    "rsync",
    "openssh-client",
    "gcc",
    "make",
    "rsyslog",
    // Detaches the sensor's own link, as an intruder would.
    "bpftool",
];

/// `cargo xtask setup` options.
#[derive(clap::Args)]
pub struct Options {
    /// Also install the Debian packages the tests use, clippy for the eBPF
    /// nightly and cargo-fuzz. (The image's, the guest's and the lint
    /// targets' own needs are still installed by the `test` stages that
    /// use them.)
    #[arg(long)]
    tests: bool,
}

/// `cargo xtask setup`: the build tools, and with `--tests` what the tests
/// add (everything plain `setup` installed before the two were split).
pub fn task(opts: &Options) -> Result<()> {
    if opts.tests {
        ensure_test_packages()?;
    }
    ensure_build_tools()?;
    if opts.tests {
        ensure_nightly_clippy()?;
        ensure_cargo_fuzz()?;
    }
    Ok(())
}

/// Installs the Debian packages the kernel tests use (for `test` and
/// `vm-test`); quick when they are present.
pub fn ensure_test_packages() -> Result<()> {
    ensure_packages(TEST_PACKAGES)
}

/// Makes sure the tools that build the sensor are present (the eBPF nightly
/// with rust-src, bpf-linker) and returns the environment that finds them;
/// quick when they are. Installs no Debian package.
pub fn ensure_build_tools() -> Result<Env> {
    let nightly = nightly()?;
    ensure_nightly(&nightly, BUILD_COMPONENTS)?;
    let linker_bin = ensure_bpf_linker(&nightly)?;
    let mut paths = vec![linker_bin];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Ok(Env {
        path: std::env::join_paths(paths)?,
        vars: Vec::new(),
    })
}

/// Installs missing Debian packages (apt-get, as root).
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map_or(true, |o| {
                    !String::from_utf8_lossy(&o.stdout).contains("install ok installed")
                })
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages {}", missing.join(" "));
    cmd::run(Command::new("apt-get").args(["update", "-q"]))?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Adds the standard libraries of `targets` to the pinned stable toolchain
/// (the project's own, from rust-toolchain.toml).
pub fn ensure_targets(targets: &[&str]) -> Result<()> {
    let installed = cmd::output(
        rustup()
            .args(["target", "list", "--installed"])
            .current_dir(cmd::root()),
    )?;
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: adding Rust targets {}", missing.join(" "));
    cmd::run(
        rustup()
            .args(["target", "add"])
            .args(&missing)
            .current_dir(cmd::root()),
    )
}

fn rustup() -> Command {
    Command::new("rustup")
}

/// What building the kernel crate needs besides the nightly's minimal
/// profile: `-Z build-std=core` compiles core from source.
const BUILD_COMPONENTS: &[&str] = &["rust-src"];

/// Adds clippy to the eBPF nightly, for the kernel crate's lint (`test`).
/// Building needs none of it, so `run` does not download it.
pub fn ensure_nightly_clippy() -> Result<()> {
    ensure_nightly(&nightly()?, &["clippy"])
}

/// Installs `nightly` (minimal profile) if missing, and `components` on it.
fn ensure_nightly(nightly: &str, components: &[&str]) -> Result<()> {
    let installed = rustup()
        .args(["run", nightly, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("xtask: installing {nightly} with {}", components.join(", "));
        cmd::run(rustup().args([
            "toolchain",
            "install",
            nightly,
            "--profile",
            "minimal",
            "--component",
            &components.join(","),
            "--no-self-update",
        ]))?;
    }
    let installed =
        cmd::output(rustup().args(["component", "list", "--installed", "--toolchain", nightly]))?;
    for &component in components {
        if !installed.lines().any(|l| l.starts_with(component)) {
            cmd::run(rustup().args(["component", "add", component, "--toolchain", nightly]))?;
        }
    }
    Ok(())
}

/// Returns the directory holding a working bpf-linker for `nightly`.
fn ensure_bpf_linker(nightly: &str) -> Result<PathBuf> {
    let root = tools_dir().join(format!("bpf-linker-{nightly}"));
    let bin_dir = root.join("bin");
    let works = Command::new(bin_dir.join("bpf-linker"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Ok(bin_dir);
    }
    let verbose = cmd::output(rustup().args(["run", nightly, "rustc", "-vV"]))?;
    let major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .ok_or_else(|| anyhow!("{nightly}: rustc -vV shows no LLVM version"))?
        .to_owned();
    let sysroot = PathBuf::from(
        cmd::output(rustup().args(["run", nightly, "rustc", "--print", "sysroot"]))?.trim(),
    );
    let libllvm = fs::read_dir(sysroot.join("lib"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .ok_or_else(|| anyhow!("{nightly}: no libLLVM.so.* in {}/lib", sysroot.display()))?;

    // A prefix that looks like an LLVM install to llvm-sys: lib/libLLVM.so for
    // linking, plus the versioned soname so the binary runs outside rustup.
    let prefix = tools_dir().join(format!("llvm-{nightly}"));
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)?;
    for name in [
        OsString::from("libLLVM.so"),
        libllvm.file_name().unwrap().to_owned(),
    ] {
        let link = lib.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM {major} of {nightly} (under a minute)"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    cmd::run(
        Command::new(cargo)
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
            ])
            .args(["--features", &format!("llvm-{major}"), "--root"])
            .arg(&root)
            .env("LLVM_PREFIX", &prefix)
            // The linking is LLVM's (the nightly's own library, already
            // optimised); bpf-linker's Rust around it gains nothing from
            // opt-level 3 and debug info, which cost a third of its build
            // (51 -> 32 s here); the programs it links are the same
            // instructions and relocations either way.
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .current_dir(std::env::temp_dir()),
    )?;
    check_runs(&bin_dir.join("bpf-linker"))?;
    Ok(bin_dir)
}

/// Returns a working cargo-fuzz of [`CARGO_FUZZ_VERSION`], installing it
/// under the tools directory if it is missing (about 35 s on 2 cores).
pub fn ensure_cargo_fuzz() -> Result<PathBuf> {
    let root = tools_dir().join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"));
    let bin = root.join("bin/cargo-fuzz");
    let works = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Ok(bin);
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    cmd::run(
        Command::new(cargo)
            .args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(&root)
            .current_dir(std::env::temp_dir()),
    )?;
    check_runs(&bin)?;
    Ok(bin)
}

fn check_runs(bin: &Path) -> Result<()> {
    let out = Command::new(bin).arg("--version").output()?;
    if !out.status.success() {
        bail!(
            "{} was built but does not run: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A virtualenv under the tools directory with `requirements` (pinned
/// `name==version`) installed; returns its directory. A marker written after
/// the last install holds the requirements, so an interrupted install, or
/// one of other versions, is done again.
pub fn ensure_venv(name: &str, requirements: &[&str]) -> Result<PathBuf> {
    let venv = tools_dir().join(name);
    let marker = venv.join(".installed");
    let wanted = requirements.join("\n");
    if fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(venv);
    }
    eprintln!(
        "xtask: installing {} in {}",
        requirements.join(" "),
        venv.display()
    );
    cmd::run(Command::new(python()?).args(["-m", "venv"]).arg(&venv))?;
    cmd::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(requirements),
    )?;
    fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok(venv)
}

/// A python3 that can make virtualenvs: the one on PATH, else Debian's
/// with python3-venv installed.
fn python() -> Result<PathBuf> {
    let can_venv = |python: &str| {
        Command::new(python)
            .args(["-c", "import venv, ensurepip"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if can_venv("python3") {
        return Ok(PathBuf::from("python3"));
    }
    ensure_packages(&["python3", "python3-venv"])?;
    if can_venv("/usr/bin/python3") {
        return Ok(PathBuf::from("/usr/bin/python3"));
    }
    bail!("no python3 that can create a virtualenv, even after installing python3-venv")
}
