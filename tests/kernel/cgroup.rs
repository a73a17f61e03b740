use std::{fs, os::unix::fs::MetadataExt as _, path::PathBuf};

use sensor_tests::{Sensor, text_bytes};

/// Where cgroup2 is mounted: /sys/fs/cgroup on pure v2 hosts, /sys/fs/cgroup/unified on hybrid ones.
fn cgroup2_root() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next()? == "cgroup2")
                .then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap()))
        })
        .expect("no cgroup2 mount: the kernel tests need one")
}

#[test]
fn cgroup2_mkdir_and_rmdir() {
    let name = format!("sensor-test-{}", std::process::id());
    let dir = cgroup2_root().join(&name);
    let mut sensor = Sensor::start(&["--hooks", "cgroup"]);
    fs::create_dir(&dir).unwrap();
    let ino = fs::metadata(&dir).unwrap().ino();
    fs::remove_dir(&dir).unwrap();

    let want = format!("/{name}");
    let mk = sensor.expect_one("cgroup_mkdir", "new cgroup2 dir", |r| {
        text_bytes(&r["cgroup_dir"]["path"]) == want.as_bytes()
    });
    assert_eq!(mk["cgroup_dir"]["hierarchy_id"], 0);
    assert_eq!(
        mk["cgroup_dir"]["id"], ino,
        "cgroup id is the directory inode"
    );
    assert_eq!(mk["cgroup_dir"]["level"], 1);
    sensor.expect_one("cgroup_rmdir", "removed cgroup2 dir", |r| {
        r["cgroup_dir"]["id"] == ino
    });
}

#[test]
fn v1_hierarchy_mkdir_when_present() {
    let root = PathBuf::from("/sys/fs/cgroup/memory");
    if !root.join("cgroup.procs").exists() {
        // Pure cgroup2 host: nothing to create (the cgroup2 test covers it).
        return;
    }
    let name = format!("sensor-test-v1-{}", std::process::id());
    let mut sensor = Sensor::start(&["--hooks", "cgroup"]);
    fs::create_dir(root.join(&name)).unwrap();
    fs::remove_dir(root.join(&name)).unwrap();
    let want = format!("/{name}");
    let mk = sensor.expect_one("cgroup_mkdir", "v1 memory cgroup", |r| {
        text_bytes(&r["cgroup_dir"]["path"]) == want.as_bytes()
    });
    assert_ne!(mk["cgroup_dir"]["hierarchy_id"], 0);
}

#[test]
fn events_carry_the_callers_cgroup() {
    // A child moved into a fresh cgroup2 directory reports that cgroup's id.
    let dir = cgroup2_root().join(format!("sensor-test-member-{}", std::process::id()));
    fs::create_dir(&dir).unwrap();
    let ino = fs::metadata(&dir).unwrap().ino();
    let mut sensor = Sensor::start(&["--hooks", "exec"]);
    let procs = dir.join("cgroup.procs");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec /bin/true cgroup-member-marker",
            procs.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let exec = sensor.expect_one("exec", "true inside the test cgroup", |r| {
        r["exec"]["args"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a[1] == "cgroup-member-marker")
    });
    fs::remove_dir(&dir).unwrap();
    assert_eq!(exec["cgroup"]["id"], ino);
}
