use std::{os::unix::process::CommandExt as _, process::Command};

use sensor_tests::{require_root, sensor_bin};

#[test]
fn unprivileged_run_names_what_is_missing() {
    require_root();
    let out = Command::new(sensor_bin())
        .args(["run", "--output", "/dev/null"])
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
    let want_tier = match std::env::var("SENSOR_TIER").as_deref() {
        Ok("raw-tp") => "raw_tp",
        // This kernel loads tp_btf (PLATFORM.md); auto must pick it.
        _ => "tp_btf",
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
        assert!(line.contains(&format!("tier={want_tier}")), "{line}");
    }
}
