use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt as _,
    process::{Command, Stdio},
};

use sensor_tests::{Sensor, text_bytes};

#[test]
fn exec_carries_exact_argv_path_ppid_and_lifecycle() {
    let mut sensor = Sensor::start(&["--hooks", "exec"]);
    let args: [&[u8]; 4] = [
        b"hello world",
        b"\xff\xfe not utf8",
        b"line\nbreak {\"kind\":\"exec\"}",
        b"",
    ];
    let child = Command::new("/bin/echo")
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .stdout(Stdio::null())
        .status()
        .expect("run echo");
    assert!(child.success());
    let me = std::process::id();

    let exec = sensor.expect_one("exec", "echo with odd argv", |r| {
        r["exec"]["ppid"] == me
            && r["exec"]["args"]
                .as_array()
                .is_some_and(|a| a.len() == 5 && text_bytes(&a[1]) == args[0])
    });
    let got: Vec<Vec<u8>> = exec["exec"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(text_bytes)
        .collect();
    assert_eq!(got[0], b"/bin/echo");
    assert_eq!(&got[1..], &args.map(|a| a.to_vec())[..]);
    assert!(
        text_bytes(&exec["exec"]["path"]).ends_with(b"/bin/echo"),
        "{exec}"
    );
    assert_eq!(exec["process"]["comm"], "echo");
    assert!(exec["exec"]["start_boottime_ns"].as_u64().unwrap() > 0);
    assert!(
        exec["exec"]["mnt_ns"].as_u64().unwrap() > 0
            && exec["exec"]["pid_ns"].as_u64().unwrap() > 0
    );

    let pid = exec["process"]["pid"].as_u64().unwrap();
    let fork = sensor.expect_one("fork", "the echo child", |r| r["process"]["pid"] == pid);
    assert_eq!(fork["fork"]["ppid"], me);
    assert_eq!(
        fork["fork"]["start_boottime_ns"],
        exec["exec"]["start_boottime_ns"]
    );
    let exit = sensor.expect_one("exit", "the echo child", |r| r["process"]["pid"] == pid);
    assert_eq!(exit["exit"]["code"], 0);
}

#[test]
fn huge_argv_is_truncated_and_flagged() {
    let mut sensor = Sensor::start(&["--hooks", "exec"]);
    let big = "A".repeat(20_000);
    Command::new("/bin/true")
        .arg("marker-huge-argv")
        .arg(&big)
        .status()
        .expect("run true");
    let exec = sensor.expect_one("exec", "true with 20 kB argv", |r| {
        r["exec"]["args"]
            .as_array()
            .is_some_and(|a| a.len() > 1 && a[1] == "marker-huge-argv")
    });
    assert_eq!(exec["exec"]["args_truncated"], true);
    let args = exec["exec"]["args"].as_array().unwrap();
    // Strings plus the NULs between them.
    let kept: usize = args.iter().map(|a| text_bytes(a).len()).sum::<usize>() + args.len() - 1;
    assert_eq!(kept, sensor_common::ARGV_MAX, "kept {kept} bytes");
}

#[test]
fn exit_reports_signal() {
    let mut sensor = Sensor::start(&["--hooks", "exec"]);
    let mut child = Command::new("/bin/sleep").arg("30").spawn().expect("sleep");
    child.kill().expect("kill");
    child.wait().expect("wait");
    let pid = child.id();
    let exit = sensor.expect_one("exit", "killed sleep", |r| r["process"]["pid"] == pid);
    assert_eq!(exit["exit"]["signal"], libc::SIGKILL);
}

#[test]
fn fileless_exec_from_memfd_names_the_memfd() {
    let name = c"payload-memfd";
    // SAFETY: `name` is a NUL-terminated C string literal that outlives the
    // call; the fd is inherited by the child on purpose.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0);
    let image = std::fs::read("/bin/true").unwrap();
    // SAFETY: write(2) reads `image.len()` bytes from `image`, a live Vec of
    // exactly that length, into the memfd opened above.
    let n = unsafe { libc::write(fd, image.as_ptr().cast(), image.len()) };
    assert_eq!(n as usize, image.len());
    let mut sensor = Sensor::start(&["--hooks", "exec"]);
    let status = Command::new(format!("/proc/self/fd/{fd}"))
        .arg("marker-memfd")
        .status()
        .expect("exec from memfd");
    assert!(status.success());
    let exec = sensor.expect_one("exec", "the memfd exec", |r| {
        r["exec"]["args"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a[1] == "marker-memfd")
    });
    assert_eq!(exec["exec"]["path"], "memfd:payload-memfd", "{exec}");
    assert_eq!(exec["exec"]["path_pseudo"], true);
    // SAFETY: close(2) of the memfd opened above, closed only here.
    unsafe { libc::close(fd) };
}
