//! What the deployment files promise, checked against the kernel: the
//! DaemonSet's capability list is enough to load every hook (the LSM tier
//! included where the kernel runs it), and one fewer is not.
use std::{
    fs,
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    process::Command,
};

use sensor_tests::{Sensor, run_marker, sensor_bin};

/// capability.h numbers of the names a manifest may use.
const CAPABILITIES: &[(&str, u32)] = &[
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("DAC_READ_SEARCH", 2),
    ("FOWNER", 3),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("SETPCAP", 8),
    ("NET_ADMIN", 12),
    ("NET_RAW", 13),
    ("IPC_LOCK", 14),
    ("SYS_CHROOT", 18),
    ("SYS_PTRACE", 19),
    ("SYS_ADMIN", 21),
    ("SYS_RESOURCE", 24),
    ("MAC_ADMIN", 33),
    ("SYSLOG", 34),
    ("PERFMON", 38),
    ("BPF", 39),
];

/// `capabilities.add` of the DaemonSet's container.
fn daemonset_capabilities() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/kubernetes/daemonset.yaml"
    );
    let text = fs::read_to_string(path).expect("the DaemonSet manifest");
    let mut lines = text.lines().skip_while(|l| l.trim() != "add:").skip(1);
    let mut caps = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        match line.strip_prefix("- ") {
            Some(cap) => caps.push(cap.to_owned()),
            None => break,
        }
    }
    assert!(!caps.is_empty(), "no capabilities.add in {path}");
    caps
}

/// Root, but with the bounding set cut to `keep`: what a container with
/// `drop: [ALL]` and `add: keep` gets.
fn only(keep: &[String]) -> impl FnOnce(&mut Command) {
    let keep: Vec<u32> = keep
        .iter()
        .map(|name| {
            CAPABILITIES
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("unknown capability {name}"))
                .1
        })
        .collect();
    move |command| {
        // SAFETY: pre_exec runs the closure in the child between fork and
        // exec, where only async-signal-safe calls are sound: it calls
        // prctl(2) and reads `keep` (moved in), allocating nothing.
        unsafe {
            command.pre_exec(move || {
                for cap in 0..64u32 {
                    if !keep.contains(&cap)
                        && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                    {
                        let e = std::io::Error::last_os_error();
                        // Past the kernel's last capability.
                        if e.raw_os_error() != Some(libc::EINVAL) {
                            return Err(e);
                        }
                    }
                }
                Ok(())
            })
        };
    }
}

#[test]
fn the_daemonset_capabilities_suffice() {
    let caps = daemonset_capabilities();
    let mut sensor = Sensor::start_with(&["--collector", "ebpf"], only(&caps));
    let lsm = sensor.lsm_tier();
    run_marker("deploy-caps-marker");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    let me = std::process::id();
    // A write-open: what the default rules keep.
    let dir = sensor_tests::unique_dir("deploy-caps");
    let written = dir.path().join("written");
    fs::write(&written, b"x").unwrap();
    sensor.wait_for("exec", "the marker", |r| {
        r["exec"]["args"][1] == "deploy-caps-marker"
    });
    sensor.wait_for("open", "the write-open", |r| {
        r["process"]["pid"] == me
            && sensor_tests::text_bytes(&r["open"]["path"])
                == written.as_os_str().as_encoded_bytes()
    });
    sensor.wait_for("connect", "the loopback connect", |r| {
        r["process"]["pid"] == me && r["connect"]["port"] == port
    });
    let log = sensor.log();
    assert!(!log.contains("falling back"), "{log}");
    sensor.stop();
    eprintln!("capabilities {caps:?} loaded every hook (LSM tier: {lsm})");
}

#[test]
fn one_capability_fewer_is_refused() {
    let caps: Vec<String> = daemonset_capabilities()
        .into_iter()
        .filter(|c| c != "PERFMON")
        .collect();
    let mut command = Command::new(sensor_bin());
    command.args([
        "run",
        "--collector",
        "ebpf",
        "--output",
        "/dev/null",
        "--metrics-address",
        "off",
    ]);
    only(&caps)(&mut command);
    let out = command.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("missing privileges") && err.contains("CAP_PERFMON"),
        "{err}"
    );
}

/// The bare-metal unit bounds the sensor to the same list.
#[test]
fn the_systemd_unit_grants_the_same_capabilities() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/runtime-sensor.service"
    );
    let unit = fs::read_to_string(path).expect("the systemd unit");
    let mut bounded: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_owned())
        .collect();
    let mut daemonset = daemonset_capabilities();
    bounded.sort();
    daemonset.sort();
    assert_eq!(bounded, daemonset);
}

/// `sensor install` into a staging root: the installed binary runs with the
/// installed configuration and rules (paths moved under the root), and a
/// second install keeps an edited configuration.
#[test]
fn sensor_install_places_a_host_install_that_runs() {
    let root = sensor_tests::unique_dir("install");
    let install = Command::new(sensor_bin())
        .args(["install", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&install.stdout).into_owned();
    assert!(
        install.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let r = root.path();
    for path in [
        "usr/local/bin/sensor",
        "etc/systemd/system/runtime-sensor.service",
        "etc/runtime-sensor/sensor.yaml",
        "etc/runtime-sensor/rules/common.yaml",
    ] {
        assert!(
            said.contains(&format!("installed  {}", r.join(path).display())),
            "{path}: {said}"
        );
    }
    let unit = fs::read_to_string(r.join("etc/systemd/system/runtime-sensor.service")).unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/sensor run --config /etc/runtime-sensor/sensor.yaml"
        )
    );

    // The installed binary, as the unit runs it, with the root's paths.
    let dir = sensor_tests::unique_dir("install-run");
    let ready = dir.path().join("ready");
    let events = r.join("var/log/runtime-sensor/events.json");
    let mut child = Command::new(r.join("usr/local/bin/sensor"))
        .args(["run", "--config"])
        .arg(r.join("etc/runtime-sensor/sensor.yaml"))
        .arg("--rules")
        .arg(r.join("etc/runtime-sensor/rules"))
        .arg("--output")
        .arg(&events)
        .args([
            "--hooks",
            "exec",
            "--metrics-address",
            "off",
            "--ready-file",
        ])
        .arg(&ready)
        .stderr(fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + sensor_tests::patience(60);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "not ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    run_marker("installed-marker");
    let deadline = std::time::Instant::now() + sensor_tests::patience(10);
    while !fs::read_to_string(&events).is_ok_and(|t| t.contains("installed-marker")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no marker in {}",
            events.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) takes no pointers; the pid is our own unreaped
    // child's, so it cannot have been reused for another process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let log = fs::read_to_string(dir.path().join("log")).unwrap();
    let origin = r.join("etc/runtime-sensor/rules").display().to_string();
    assert!(
        log.contains("rules loaded") && log.contains(&origin),
        "{log}"
    );

    // An edited configuration survives a reinstall.
    let config = r.join("etc/runtime-sensor/sensor.yaml");
    fs::write(&config, "hooks: [exec]\n").unwrap();
    let again = Command::new(sensor_bin())
        .args(["install", "--root"])
        .arg(r)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{said}");
    assert!(said.contains("kept"), "{said}");
    assert_eq!(fs::read_to_string(&config).unwrap(), "hooks: [exec]\n");
}
