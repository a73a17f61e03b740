use std::{fs, os::unix::process::CommandExt as _, process::Command};

use sensor_tests::{require_root, sensor_bin};

#[test]
fn unprivileged_run_names_what_is_missing() {
    require_root();
    // Forced eBPF: an error. (auto falls back to polling: poll.rs.)
    let out = Command::new(sensor_bin())
        .args(["run", "--collector", "ebpf", "--output", "/dev/null"])
        .args(["--metrics-address", "off"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing privileges") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(sensor_bin())
        .args(["run", "--hooks", "exec,bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
    let out = Command::new(sensor_bin())
        .args(["run", "--ring-bytes", "5000", "--output", "/dev/null"])
        .args(["--metrics-address", "off"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("power of two"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn startup_log_names_every_hook_and_its_tier() {
    let sensor = sensor_tests::Sensor::start(&[]);
    let log = sensor.log();
    // tp_btf programs read the task through bpf_get_current_task_btf(),
    // which kernels before 5.11 lack: auto must fall back there, and only there.
    let tp_btf_loads = kernel_version() >= (5, 11);
    let want_tier = match std::env::var("SENSOR_TIER").as_deref() {
        Ok("raw-tp") => "raw_tp",
        _ if tp_btf_loads => "tp_btf",
        _ => "raw_tp",
    };
    for tp in [
        "sched_process_fork",
        "sched_process_exec",
        "sched_process_exit",
        "sys_exit",
        "cgroup_mkdir",
        "cgroup_rmdir",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("hook attached") && l.contains(&format!("tracepoint=\"{tp}\"")))
            .unwrap_or_else(|| panic!("no attach line for {tp}:\n{log}"));
        // Before 5.11 a program that never asks for the current task (fork
        // reads its typed arguments only) still loads as tp_btf.
        let either = !tp_btf_loads && tp != "sys_exit" && line.contains("tier=tp_btf");
        assert!(
            line.contains(&format!("tier={want_tier}")) || either,
            "{line}"
        );
    }
    if !tp_btf_loads && std::env::var("SENSOR_TIER").is_err() {
        assert!(
            log.contains("hook attached in a lower tier"),
            "the fallback and its reason are not logged:\n{log}"
        );
    }
    // The LSM tier: attached, or (in auto) what is missing and why.
    let lsm = sensor.lsm_tier();
    let auto = matches!(std::env::var("SENSOR_TIER").as_deref(), Err(_) | Ok("auto"));
    for hook in ["file_open", "socket_connect"] {
        let mention = format!("lsm_hook=\"{hook}\"");
        let line = log.lines().find(|l| l.contains(&mention));
        match (lsm, auto, line) {
            (true, _, Some(l)) => assert!(l.contains("tier=lsm"), "{l}"),
            (false, true, Some(l)) => assert!(
                l.contains("LSM tier unavailable") && l.contains("reason="),
                "{l}"
            ),
            (false, false, None) => {}
            (_, _, line) => panic!("unexpected LSM log for {hook}: {line:?}\n{log}"),
        }
    }
}

/// (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}
