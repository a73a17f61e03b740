//! Storms a hostile workload can raise: an exec storm, an open flood from
//! eight processes at once, 2,000 cgroups. Through each, what the sensor
//! received plus what it reported lost accounts for everything generated,
//! and its memory stays within budget.
use std::{fs, process::Command};

use sensor_tests::{Sensor, unique_dir};
use serde_json::Value;

use crate::cgroup::cgroup2_root;

/// Peak resident memory a debug-built sensor may reach in a storm: these
/// storms peak at about 55 MiB (measured 2026-12-07); its tables
/// (processes, cgroups, sequences) are capped, so a storm must not grow it.
const RSS_BUDGET: u64 = 160 << 20;

/// What loss records reported dropped for `kind`, by every reason.
fn lost(records: &[Value], kind: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["kind"] == "loss")
        .flat_map(|l| {
            ["ring_full", "kernel_error", "rate_limited"].map(|why| &l["loss"][why][kind])
        })
        .filter_map(Value::as_u64)
        .sum()
}

fn within_budget(sensor: &Sensor, storm: &str) {
    let peak = sensor.peak_rss();
    println!("{storm}: peak RSS {} MiB", peak >> 20);
    assert!(
        peak < RSS_BUDGET,
        "{storm}: peak RSS {} MiB over budget",
        peak >> 20
    );
}

/// Runs `script` under sh with `args`; panics if it fails.
fn sh(script: &str, args: &[&str]) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "{script}");
}

#[test]
fn an_exec_storm_is_received_or_counted_lost() {
    const EXECS: u64 = 3_000;
    let marker = format!("exec-storm-{}", std::process::id());
    // A ring small enough that the storm overflows it.
    let mut sensor = Sensor::start(&["--hooks", "exec", "--no-rules", "--ring-bytes", "8192"]);
    sh(
        &format!("i=0; while [ $i -lt {EXECS} ]; do /bin/true \"$1\"; i=$((i + 1)); done"),
        &[&marker],
    );
    within_budget(&sensor, "exec storm");
    let records = sensor.stop().to_vec();
    let received = records
        .iter()
        .filter(|r| r["kind"] == "exec" && r["exec"]["args"][1] == marker.as_str())
        .count() as u64;
    let lost = lost(&records, "exec");
    println!("exec storm: {received} received, {lost} reported lost of {EXECS}");
    // Other processes' execs share the ring and the loss counts.
    assert!(received + lost >= EXECS, "{received} + {lost} < {EXECS}");
}

#[test]
fn an_open_flood_from_eight_processes_is_received_or_counted_lost() {
    const PER_PROCESS: u64 = 5_000;
    let dir = unique_dir("flood8");
    let file = dir.path().join("flooded");
    fs::write(&file, b"x").unwrap();
    let mut sensor = Sensor::start(&[
        "--hooks",
        "open",
        "--no-rules",
        "--capture-opens",
        "all",
        "--ring-bytes",
        "65536",
    ]);
    let shells: Vec<_> = (0..8)
        .map(|_| {
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "i=0; while [ $i -lt {PER_PROCESS} ]; do : < \"$0\"; i=$((i + 1)); done"
                ))
                .arg(&file)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut s in shells {
        assert!(s.wait().unwrap().success());
    }
    within_budget(&sensor, "open flood");
    let records = sensor.stop().to_vec();
    let path = file.to_str().unwrap();
    let received = records
        .iter()
        .filter(|r| r["kind"] == "open" && r["open"]["path"] == path)
        .count() as u64;
    let lost = lost(&records, "open");
    let generated = 8 * PER_PROCESS;
    println!("open flood: {received} received, {lost} reported lost of {generated}");
    assert!(
        received + lost >= generated,
        "{received} + {lost} < {generated}"
    );
}

#[test]
fn two_thousand_cgroups_are_received_or_counted_lost() {
    const CGROUPS: usize = 2_000;
    let parent = cgroup2_root().join(format!("sensor-storm-{}", std::process::id()));
    fs::create_dir(&parent).unwrap();
    let mut sensor = Sensor::start(&["--hooks", "cgroup", "--no-rules"]);
    for n in 0..CGROUPS {
        fs::create_dir(parent.join(format!("c{n}"))).unwrap();
    }
    for n in 0..CGROUPS {
        fs::remove_dir(parent.join(format!("c{n}"))).unwrap();
    }
    fs::remove_dir(&parent).unwrap();
    within_budget(&sensor, "2,000 cgroups");
    let records = sensor.stop().to_vec();
    let prefix = format!("/{}/c", parent.file_name().unwrap().to_str().unwrap());
    let ours = |kind: &str| {
        records
            .iter()
            .filter(|r| {
                r["kind"] == kind
                    && r["cgroup_dir"]["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(&prefix))
            })
            .count() as u64
    };
    let (made, removed) = (ours("cgroup_mkdir"), ours("cgroup_rmdir"));
    let lost = lost(&records, "cgroup_mkdir") + lost(&records, "cgroup_rmdir");
    println!("cgroups: {made} mkdir and {removed} rmdir received, {lost} reported lost");
    let generated = 2 * CGROUPS as u64;
    assert!(
        made + removed + lost >= generated,
        "{made} + {removed} + {lost} < {generated}"
    );
}
