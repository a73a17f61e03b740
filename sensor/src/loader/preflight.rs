//! Checks that turn a cryptic EPERM from the kernel into one sentence naming
//! what is missing.
use std::{fs, path::Path};

use thiserror::Error;

/// Where the kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The active LSMs, comma-separated (securityfs).
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The environment cannot run the sensor.
#[derive(Debug, Error)]
pub enum PreflightError {
    /// Capabilities missing.
    #[error(
        "missing privileges: loading eBPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); effective capabilities are {0:#x}. Run as root or grant them (see docs/OPERATIONS.md)"
    )]
    Privileges(u64),
    /// No kernel BTF.
    #[error(
        "missing kernel BTF: {0} does not exist. The sensor needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (all major distributions since 2020)"
    )]
    NoBtf(String),
}

/// Effective capability set of this process.
pub fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Fails with the first missing requirement.
pub fn check() -> Result<(), PreflightError> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
        return Err(PreflightError::Privileges(caps));
    }
    check_btf(Path::new(VMLINUX_BTF))?;
    // Kernels >= 5.11 charge BPF memory to the cgroup; older ones count it
    // against RLIMIT_MEMLOCK. Raising it is best effort (it fails without
    // CAP_SYS_RESOURCE, which memcg-accounting kernels do not need).
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit(2) only reads the rlimit it is given, a live local of
    // the right type; a failure is its return value, checked here.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK (fine on kernels with memcg accounting)");
    }
    Ok(())
}

/// The kernel's BTF must exist: every struct offset comes from it.
pub fn check_btf(path: &Path) -> Result<(), PreflightError> {
    if path.exists() {
        Ok(())
    } else {
        Err(PreflightError::NoBtf(path.display().to_string()))
    }
}

/// The cgroup v1 controller to report `cgroup.v1_id` from, when the host
/// mounts v1 hierarchies (v1 or hybrid). Prefers controllers every runtime
/// places containers in.
pub fn v1_controller() -> Option<&'static str> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let v1: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            let (_, post) = l.split_once(" - ")?;
            let mut f = post.split_whitespace();
            (f.next()? == "cgroup").then(|| f.nth(1))?
        })
        .collect();
    [
        "memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer",
    ]
    .into_iter()
    .find(|c| v1.iter().any(|opts| opts.split(',').any(|o| o == *c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_btf_names_the_file_and_the_kernel_option() {
        let err = check_btf(Path::new("/nonexistent/vmlinux"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/vmlinux") && err.contains("CONFIG_DEBUG_INFO_BTF"),
            "{err}"
        );
    }
}
