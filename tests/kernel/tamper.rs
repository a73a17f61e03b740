//! Self-protection: ptrace, memory reads and signals aimed at the sensor,
//! and BPF programs loaded or links detached by other processes, each
//! reported by the kernel and alerted by the built-in T1562.001 pack,
//! through several channels (this process's own syscalls, an interpreter
//! one-liner, a shell tool, a renamed binary). Routine look-alikes (a
//! liveness probe, a reload, a socket filter, a container start) are
//! recorded and stay quiet.
use std::{os::unix::fs::PermissionsExt as _, process::Command};

use sensor_tests::{RuncContainer, Sensor, container_id, unique_dir};
use serde_json::Value;

fn sh(script: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap()
        .success();
    assert!(ok, "{script}");
}

/// A stand-in for an unknown tool: /usr/bin/kill under another name.
fn renamed_kill(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("healthcheck");
    std::fs::copy("/usr/bin/kill", &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn tracing_reading_and_stopping_the_sensor_alert_and_routine_signals_do_not() {
    let mut sensor = Sensor::start(&["--hooks", "exec,tamper"]);
    let pid = sensor.pid();

    // An interpreter one-liner seizes it (no stop), and detaches on exit.
    sh(&format!(
        "python3 -c 'import ctypes; ctypes.CDLL(None).ptrace(0x4206, {pid}, 0, 0)'"
    ));
    // This process reads its memory; the address is unmapped, so the
    // kernel refuses with EFAULT, and the attempt is what is reported.
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: 0x10 as *mut _,
        iov_len: buf.len(),
    };
    // SAFETY: both iovecs describe memory of the right length; the kernel
    // writes only into `buf`.
    let n = unsafe { libc::process_vm_readv(pid as i32, &local, 1, &remote, 1, 0) };
    assert_eq!(n, -1);
    // A shell tool freezes it, a renamed binary too; each is thawed.
    let dir = unique_dir("tamper");
    let tool = renamed_kill(dir.path());
    sh(&format!("kill -STOP {pid}; sleep 0.2; kill -CONT {pid}"));
    sh(&format!(
        "{0} -s TSTP {pid}; sleep 0.2; {0} -s CONT {pid}",
        tool.display()
    ));
    // Routine: a liveness probe and a reload.
    sh(&format!("kill -0 {pid}; kill -HUP {pid}"));
    sensor.wait_log("rules reloaded");

    let traced = sensor.wait_for("alert", "the seize", |a| {
        a["rule"]["id"] == "T1562.001-sensor-traced"
            && a["evidence"][0]["tamper"]["request"] == "seize"
    });
    assert_eq!(traced["evidence"][0]["tamper"]["target_pid"], pid);
    assert_eq!(traced["process"]["comm"], "python3");
    sensor.wait_for("alert", "the memory read", |a| {
        a["rule"]["id"] == "T1562.001-sensor-traced"
            && a["evidence"][0]["tamper"]["syscall"] == "process_vm_readv"
            && a["evidence"][0]["tamper"]["error"] == "EFAULT"
    });
    sensor.wait_for("alert", "SIGSTOP from a shell", |a| {
        a["rule"]["id"] == "T1562.001-sensor-stopped"
            && a["evidence"][0]["tamper"]["signal"] == "SIGSTOP"
    });
    sensor.wait_for("alert", "SIGTSTP from a renamed tool", |a| {
        a["rule"]["id"] == "T1562.001-sensor-stopped"
            && a["evidence"][0]["tamper"]["signal"] == "SIGTSTP"
            && a["process"]["comm"] == "healthcheck"
    });
    // The probe and the reload are recorded, and alert nothing.
    for signal in ["SIG0", "SIGHUP"] {
        sensor.wait_for("tamper", signal, |r| r["tamper"]["signal"] == signal);
    }
    let records = sensor.stop().to_vec();
    let noisy: Vec<&Value> = records
        .iter()
        .filter(|a| {
            a["kind"] == "alert"
                && a["rule"]["id"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("T1562.001"))
                && ["SIG0", "SIGHUP", "SIGCONT"]
                    .iter()
                    .any(|s| a["evidence"][0]["tamper"]["signal"] == *s)
        })
        .collect();
    assert!(noisy.is_empty(), "routine signals alerted: {noisy:?}");
}

/// `bpf(BPF_PROG_LOAD)` of `r0 = 0; exit` as `prog_type`, named `name`:
/// the fd, or the errno.
fn load_program(prog_type: u32, name: &str, insn_cnt: u32) -> Result<i32, i32> {
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&insn_cnt.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..48 + name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `attr` is a zeroed bpf_attr for BPF_PROG_LOAD whose pointers
    // (instructions, license) outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as i32)
    }
}

#[test]
fn bpf_programs_loaded_and_links_detached_by_others_alert_and_routine_ones_do_not() {
    const TRACEPOINT: u32 = 5;
    const KPROBE: u32 = 2;
    const SOCKET_FILTER: u32 = 1;
    let mut sensor = Sensor::start(&["--hooks", "exec,tamper"]);

    // This process: a tracepoint program, a refused kprobe load (no
    // instructions), a socket filter (routine), a detach of a non-link.
    let fd = load_program(TRACEPOINT, "hide_me", 2).expect("a tracepoint program loads");
    let refused_with = match load_program(KPROBE, "broken", 0) {
        Err(libc::E2BIG) => "E2BIG",
        Err(libc::EINVAL) => "EINVAL",
        other => panic!("a load without instructions: {other:?}"),
    };
    let filter = load_program(SOCKET_FILTER, "benign_filter", 2).expect("a socket filter loads");
    let mut attr = [0u8; 16];
    attr[0..4].copy_from_slice(&0u32.to_ne_bytes());
    // SAFETY: a zeroed bpf_attr for BPF_LINK_DETACH naming fd 0.
    let r = unsafe { libc::syscall(libc::SYS_bpf, 34, attr.as_ptr(), attr.len()) };
    assert_eq!(r, -1);
    // SAFETY: closing the fds the loads returned.
    unsafe {
        libc::close(fd);
        libc::close(filter);
    }
    // An interpreter one-liner loads a kprobe program of its own.
    sh(r#"python3 -c '
import ctypes, struct
insns = ctypes.create_string_buffer(struct.pack("<QQ", 0xb7, 0x95))
lic = ctypes.create_string_buffer(b"GPL")
attr = struct.pack("<IIQQIIQII16s", 2, 2, ctypes.addressof(insns), ctypes.addressof(lic), 0, 0, 0, 0, 0, b"py_probe")
buf = ctypes.create_string_buffer(attr, 128)
fd = ctypes.CDLL(None).syscall(321, 5, buf, 128)
assert fd >= 0, fd
'"#);
    // A container start: runc loads its device-cgroup program.
    let id = container_id(0x62);
    RuncContainer::new(&id, &format!("/sensor-tamper-{id}"), "true").run();

    let loaded = sensor.wait_for("alert", "the tracepoint program", |a| {
        a["rule"]["id"] == "T1562.001-bpf-tracing-program-loaded"
            && a["evidence"][0]["bpf"]["name"] == "hide_me"
    });
    assert_eq!(loaded["evidence"][0]["bpf"]["prog_type"], "tracepoint");
    sensor.wait_for("alert", "the python kprobe", |a| {
        a["rule"]["id"] == "T1562.001-bpf-tracing-program-loaded"
            && a["evidence"][0]["bpf"]["name"] == "py_probe"
            && a["evidence"][0]["bpf"]["prog_type"] == "kprobe"
    });
    sensor.wait_for("alert", "the link detach", |a| {
        a["rule"]["id"] == "T1562.001-bpf-link-detached"
    });
    // Recorded, not alerted: the refused load and the socket filter.
    let refused = sensor.wait_for("bpf", "the refused load", |r| r["bpf"]["name"] == "broken");
    assert_eq!(refused["bpf"]["error"], refused_with);
    sensor.wait_for("bpf", "the socket filter", |r| {
        r["bpf"]["name"] == "benign_filter" && r["bpf"]["prog_type"] == "socket_filter"
    });
    let records = sensor.stop().to_vec();
    // The sensor's own programs are never reported.
    let own = records
        .iter()
        .filter(|r| r["kind"] == "bpf" && r["process"]["pid"] == sensor.pid())
        .count();
    assert_eq!(own, 0);
    let loads: Vec<&Value> = records
        .iter()
        .filter(|a| {
            a["kind"] == "alert" && a["rule"]["id"] == "T1562.001-bpf-tracing-program-loaded"
        })
        .collect();
    assert!(
        loads
            .iter()
            .all(|a| a["evidence"][0]["bpf"]["name"] != "benign_filter"
                && a["evidence"][0]["bpf"]["name"] != "broken"),
        "{loads:?}"
    );
    // On cgroup v2 hosts runc loads a cgroup_device program for each
    // container (on v1 it writes the devices controller instead): recorded,
    // never alerted.
    let runc = records
        .iter()
        .filter(|r| {
            r["kind"] == "bpf"
                && r["process"]["comm"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("runc"))
        })
        .count();
    println!("bpf records from runc: {runc}");
    assert!(
        loads.iter().all(|a| !a["process"]["comm"]
            .as_str()
            .is_some_and(|c| c.starts_with("runc"))),
        "runc alerted: {loads:?}"
    );
}

#[test]
fn writes_to_the_sensors_own_files_alert_and_reads_do_not() {
    let dir = unique_dir("ownfiles");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    // The built-in packs, from files: the rule directory is then the
    // sensor's own too.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
    }
    let second = dir.path().join("second.json");
    let mut sensor = Sensor::start(&[
        "--hooks",
        "exec,open,tamper",
        "--rules",
        rules.to_str().unwrap(),
        "--output",
        second.to_str().unwrap(),
    ]);
    let tool = dir.path().join("updater");
    std::fs::copy("/usr/bin/touch", &tool).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let local = rules.join("local.yaml");
    // A shell appends to the output, an interpreter rewrites a rule file,
    // a renamed binary creates one in the rule directory, and this
    // process opens the output for writing.
    sh(&format!("echo '{{}}' >> {}", second.display()));
    sh(&format!(
        "python3 -c 'open(\"{}\", \"a\").close()'",
        rules.join("common.yaml").display()
    ));
    assert!(Command::new(&tool).arg(&local).status().unwrap().success());
    drop(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&second)
            .unwrap(),
    );
    // Reading is what shippers do: no alert.
    sh(&format!("cat {} > /dev/null", second.display()));

    let written = |sensor: &Sensor, what: &str, path: &std::path::Path, comm: &str| {
        let path = path.to_str().unwrap().to_owned();
        sensor.wait_for("alert", what, |a| {
            a["rule"]["id"] == "T1562.001-sensor-file-written"
                && a["evidence"][0]["open"]["path"] == path.as_str()
                && a["process"]["comm"] == comm
        });
    };
    written(&sensor, "the shell's append", &second, "sh");
    written(
        &sensor,
        "python's rewrite",
        &rules.join("common.yaml"),
        "python3",
    );
    written(&sensor, "the renamed tool", &local, "updater");
    let me = std::process::id();
    let path = second.to_str().unwrap().to_owned();
    sensor.wait_for("alert", "this process's open", |a| {
        a["rule"]["id"] == "T1562.001-sensor-file-written"
            && a["evidence"][0]["open"]["path"] == path.as_str()
            && a["process"]["pid"] == me
    });
    let records = sensor.stop().to_vec();
    let by_cat = records
        .iter()
        .filter(|a| a["kind"] == "alert" && a["rule"]["id"] == "T1562.001-sensor-file-written")
        .filter(|a| a["process"]["comm"] == "cat")
        .count();
    assert_eq!(by_cat, 0, "a read alerted");
}

/// The sensor's BPF links, from its descriptors' fdinfo: (link type,
/// link id, program id).
fn links_of(pid: u32) -> Vec<(String, u64, u64)> {
    let mut links = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap() {
        let Ok(info) = std::fs::read_to_string(fd.unwrap().path()) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<String>().ok())
        };
        if let (Some(kind), Some(link), Some(prog)) =
            (field("link_type:"), field("link_id:"), field("prog_id:"))
        {
            links.push((kind, link.parse().unwrap(), prog.parse().unwrap()));
        }
    }
    links
}

/// Whether a cgroup link attaches program `prog` (bpftool's JSON): the
/// link ids that do.
fn attached_cgroup_links(prog: u64) -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["--json", "link", "show"])
        .output()
        .expect("bpftool (Debian package bpftool)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let links: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    links
        .iter()
        .filter(|l| l["type"] == "cgroup" && l["prog_id"] == prog && l["cgroup_id"] != 0)
        .filter_map(|l| l["id"].as_u64())
        .collect()
}

fn bpftool_detach(link: u64) -> bool {
    Command::new("bpftool")
        .args(["link", "detach", "id", &link.to_string()])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_detached_egress_hook_is_reported_and_attached_again() {
    let mut sensor = Sensor::start(&["--hooks", "exec,egress,tamper"]);
    let links = links_of(sensor.pid());
    let (_, link, prog) = links
        .iter()
        .find(|(kind, ..)| kind == "cgroup")
        .cloned()
        .expect("the egress link among the sensor's descriptors");
    assert_eq!(attached_cgroup_links(prog), [link]);
    // What an intruder would run to blind the egress accounting.
    assert!(bpftool_detach(link), "bpftool link detach");
    let lost = sensor.wait_for("alert", "the detached hook", |a| {
        a["rule"]["id"] == "T1562.001-sensor-hook-detached"
    });
    assert_eq!(
        lost["evidence"][0]["hook_lost"]["reattached"], true,
        "{lost}"
    );
    // The attempt itself was seen too, and the hook is back on a new link.
    sensor.wait_for("alert", "bpftool's detach", |a| {
        a["rule"]["id"] == "T1562.001-bpf-link-detached" && a["process"]["comm"] == "bpftool"
    });
    let now = attached_cgroup_links(prog);
    assert!(
        now.len() == 1 && now[0] != link,
        "not attached again: {now:?}"
    );
    // The kernel refuses to detach the tracepoint links: nothing to watch.
    let (_, tracepoint, _) = links
        .iter()
        .find(|(kind, ..)| kind == "raw_tracepoint" || kind == "tracing")
        .cloned()
        .expect("a tracepoint link");
    assert!(
        !bpftool_detach(tracepoint),
        "a tracepoint link was detached"
    );
    let records = sensor.stop().to_vec();
    assert_eq!(
        records.iter().filter(|r| r["kind"] == "hook_lost").count(),
        1,
        "one detach, one hook_lost"
    );
}
