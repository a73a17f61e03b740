//! `cargo xtask vm-test`: the kernel tests inside qemu guests running
//! Debian's 5.10, 6.1 and 6.12 kernels.
//!
//! The guest mounts the host's root read-only over 9p (tmpfs where tests
//! write), so it runs the very binaries and container runtimes the host
//! tests use, with nothing copied into an image. Only the kernel, its
//! modules and a busybox initramfs are guest-specific. Results come back
//! through a second, writable 9p share.
mod initramfs;
mod kernel;
mod qemu;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};

use crate::{cmd, setup};

/// Debian packages the guests need on the host.
const PACKAGES: &[&str] = &["qemu-system-x86", "cpio", "xz-utils", "zstd"];

/// The guest `cargo xtask test` boots: the middle of the matrix, a few
/// minutes under TCG.
pub const CI_KERNEL: &str = "6.1";
const DEFAULT_TIER: &str = "auto";
/// Far above a passing run (minutes), far below CI's budget.
const DEFAULT_TIMEOUT: u64 = 2400;
const DEFAULT_ACCEL: &str = "tcg";
const DEFAULT_MEMORY_MIB: u32 = 4096;

#[derive(clap::Args)]
pub struct Options {
    /// Guest kernels: 5.10, 6.1, 6.12 or all (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', default_value = CI_KERNEL)]
    kernel: Vec<String>,
    /// Hook tiers to run the tests under (`SENSOR_TIER` values), each a pass.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_TIER)]
    tier: Vec<String>,
    /// Seconds before a guest counts as hung and is killed.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT)]
    timeout: u64,
    /// qemu accelerator: tcg works everywhere; kvm where /dev/kvm runs stock kernels.
    #[arg(long, default_value = DEFAULT_ACCEL)]
    accel: String,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB)]
    memory: u32,
    /// Fetch the kernel packages again even if cached.
    #[arg(long)]
    refresh: bool,
    /// Arguments for the kernel test binary (e.g. a test name filter).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl Options {
    /// One guest kernel with the defaults, the kernel tests given `args`.
    pub fn guest(kernel: &str, args: &[String]) -> Self {
        Self {
            kernel: vec![kernel.to_owned()],
            tier: vec![DEFAULT_TIER.to_owned()],
            timeout: DEFAULT_TIMEOUT,
            accel: DEFAULT_ACCEL.to_owned(),
            memory: DEFAULT_MEMORY_MIB,
            refresh: false,
            args: args.to_vec(),
        }
    }
}

/// One guest's outcome.
struct Outcome {
    kernel: String,
    release: String,
    lsm: String,
    result: Result<()>,
    elapsed: Duration,
}

/// `cargo xtask vm-test`: installs what the guests run, then [`run`].
pub fn task(opts: &Options) -> Result<()> {
    // The guests mount the host's root and run its container runtimes and
    // tools, so the host needs the test packages as for `test`.
    setup::ensure_test_packages()?;
    run(&setup::ensure_build_tools()?, opts)
}

/// Boots a guest per kernel asked for and runs the kernel tests in it;
/// `env` comes from the caller's setup (`test` or [`task`]).
pub fn run(env: &cmd::Env, opts: &Options) -> Result<()> {
    let specs = kernel::select(&opts.kernel)?;
    setup::ensure_packages(PACKAGES)?;
    let machine = qemu::Machine {
        qemu: std::env::var_os("SENSOR_QEMU")
            .map(PathBuf::from)
            .unwrap_or_else(|| "qemu-system-x86_64".into()),
        accel: opts.accel.clone(),
        memory_mib: opts.memory,
        cpus: std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
    };
    eprintln!("xtask: {}", machine.check()?);

    cmd::cargo(env, &["build", "--package", "sensor"])?;
    let tests = kernel_test_binary(env)?;
    let cache = setup::tools_dir().join("vm");
    let mut outcomes = Vec::new();
    for spec in &specs {
        let started = Instant::now();
        let out_dir = cmd::root().join("target/vm").join(spec.id);
        // Nothing of an earlier run may pass for this one's.
        let _ = fs::remove_dir_all(&out_dir);
        let mut release = String::new();
        let result = kernel::ensure(spec, &cache, opts.refresh)
            .and_then(|k| {
                release = k.release.clone();
                eprintln!("xtask: guest {} ({}) boots", spec.id, k.package);
                guest(&machine, spec, &k, &tests, &out_dir, opts)
            })
            .with_context(|| format!("guest kernel {}", spec.id));
        if let Err(e) = &result {
            eprintln!("xtask: {e:#}");
        }
        let outcome = Outcome {
            kernel: spec.id.to_owned(),
            release,
            lsm: fs::read_to_string(out_dir.join("lsm"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            result,
            elapsed: started.elapsed(),
        };
        outcomes.push(outcome);
    }
    eprintln!("{}", summary(&outcomes));
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.kernel.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("kernel tests failed on {}", failed.join(", ")))
    }
}

/// Builds the privileged test binary and returns its path.
fn kernel_test_binary(env: &cmd::Env) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = cmd::output(
        Command::new(cargo)
            .args([
                "test",
                "--no-run",
                "--package",
                "sensor-tests",
                "--test",
                "kernel",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(cmd::root())
            .env("PATH", &env.path),
    )?;
    cargo_metadata::Message::parse_stream(out.as_bytes())
        .filter_map(|m| match m.ok()? {
            cargo_metadata::Message::CompilerArtifact(a) if a.target.name == "kernel" => {
                a.executable.map(PathBuf::from)
            }
            _ => None,
        })
        .last()
        .ok_or_else(|| anyhow!("cargo test --no-run named no kernel test executable"))
}

/// Boots one guest and runs every pass; errors unless all passed.
fn guest(
    machine: &qemu::Machine,
    spec: &kernel::KernelSpec,
    k: &kernel::Kernel,
    tests: &Path,
    out: &Path,
    opts: &Options,
) -> Result<()> {
    fs::create_dir_all(out)?;
    let initramfs = out.join("initramfs.cpio");
    initramfs::build(&k.modules, &initramfs)?;
    fs::write(
        out.join("run.sh"),
        run_script(tests, &opts.tier, &opts.args, spec.lsm_tier),
    )?;
    let repo = cmd::root();
    fs::write(out.join("repo"), repo.as_os_str().as_encoded_bytes())?;
    let console = out.join("console.log");
    machine.boot(&qemu::Boot {
        kernel: &k.image,
        initramfs: &initramfs,
        // AppArmor off as on the host: dockerd would otherwise insist on
        // loading its profile with apparmor_parser, which is not installed.
        cmdline: "console=ttyS0 panic=-1 quiet apparmor=0",
        out,
        repo: &repo,
        timeout: Duration::from_secs(opts.timeout),
        console: &console,
    })?;
    let status = fs::read_to_string(out.join("status")).map_err(|_| {
        anyhow!(
            "the guest powered off without reporting a result; console in {}",
            console.display()
        )
    })?;
    match status.trim() {
        "0" => Ok(()),
        other => Err(anyhow!(
            "kernel tests failed in the guest (status {other}); console in {}",
            console.display()
        )),
    }
}

/// The script the guest runs after mounting its root: one pass of the
/// kernel tests per tier, then the result in `status` and power off.
fn run_script(tests: &Path, tiers: &[String], args: &[String], lsm_tier: bool) -> String {
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let mut s = String::from(
        "#!/bin/sh\n\
         # Written by cargo xtask vm-test.\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         export HOME=/root CI=true RUST_BACKTRACE=0\n\
         # /root is a tmpfs here: the OCSF and ECS validators' virtualenv is\n\
         # out of reach; the host's kernel tests validate the encodings.\n\
         export SENSOR_TEST_GUEST=1\n\
         # Emulated CPUs are several times slower: stretch the tests' waits.\n\
         export SENSOR_TEST_TIME_SCALE=10\n\
         cat /sys/kernel/security/lsm > /run/vm/lsm\n\
         echo \"vm: kernel $(uname -r), LSMs $(cat /run/vm/lsm)\"\n\
         rc=0\n",
    );
    if lsm_tier {
        // The tests then fail, not shrug, if the LSM tier does not load.
        s.push_str("export SENSOR_TEST_EXPECT_LSM=1\n");
    }
    s.push_str(&format!(
        "cd {}\n",
        quote(&cmd::root().display().to_string())
    ));
    for tier in tiers {
        let _ = writeln!(
            s,
            "echo 'vm: kernel tests, tier {tier}'\n\
             SENSOR_TIER={} {} --color never {} || rc=1",
            quote(tier),
            quote(&tests.display().to_string()),
            args.join(" ")
        );
    }
    s.push_str(
        "echo \"$rc\" > /run/vm/status\n\
         sync\n\
         echo o > /proc/sysrq-trigger\n\
         sleep 60\n",
    );
    s
}

/// Single-quotes a word for sh.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The matrix as a table, as README shows it.
fn summary(outcomes: &[Outcome]) -> String {
    let mut s =
        String::from("\n| kernel | release | LSMs | result | time |\n|---|---|---|---|---|\n");
    for o in outcomes {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} s |",
            o.kernel,
            o.release,
            o.lsm,
            if o.result.is_ok() { "pass" } else { "FAIL" },
            o.elapsed.as_secs()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn run_script_runs_each_tier_and_reports() {
        let s = run_script(
            Path::new("/t/kernel-1"),
            &["auto".into(), "raw-tp".into()],
            &["exec::".into()],
            true,
        );
        assert!(
            s.contains("SENSOR_TIER='auto' '/t/kernel-1' --color never 'exec::' || rc=1"),
            "{s}"
        );
        assert!(s.contains("SENSOR_TIER='raw-tp'"), "{s}");
        assert!(s.contains("export SENSOR_TEST_EXPECT_LSM=1"), "{s}");
        assert!(s.contains("export SENSOR_TEST_GUEST=1"), "{s}");
        assert!(s.contains("echo \"$rc\" > /run/vm/status"), "{s}");
    }

    /// A qemu that never powers off is killed at the deadline with a clear error.
    #[test]
    fn hung_guest_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu");
        fs::write(&fake, "#!/bin/sh\n[ \"$1\" = --version ] && { echo fake qemu; exit 0; }\necho booting\nexec sleep 30\n").unwrap();
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let machine = qemu::Machine {
            qemu: fake,
            accel: "tcg".into(),
            memory_mib: 64,
            cpus: 1,
        };
        assert_eq!(machine.check().unwrap(), "fake qemu");
        let console = dir.path().join("console.log");
        let started = Instant::now();
        let e = machine
            .boot(&qemu::Boot {
                kernel: Path::new("/nonexistent"),
                initramfs: Path::new("/nonexistent"),
                cmdline: "",
                out: dir.path(),
                repo: dir.path(),
                timeout: Duration::from_secs(1),
                console: &console,
            })
            .unwrap_err();
        assert!(e.to_string().contains("guest hung"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(fs::read_to_string(&console).unwrap().contains("booting"));
    }

    #[test]
    fn missing_qemu_is_named() {
        let machine = qemu::Machine {
            qemu: "/nonexistent/qemu-system-x86_64".into(),
            accel: "tcg".into(),
            memory_mib: 64,
            cpus: 1,
        };
        let e = format!("{:#}", machine.check().unwrap_err());
        assert!(
            e.contains("/nonexistent/qemu-system-x86_64 not found"),
            "{e}"
        );
    }
}
