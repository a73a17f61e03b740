use std::{
    fs,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::PathBuf,
};

use sensor_tests::{Sensor, text_bytes};

/// Where cgroup2 is mounted: /sys/fs/cgroup on pure v2 hosts, /sys/fs/cgroup/unified on hybrid ones.
pub(crate) fn cgroup2_root() -> PathBuf {
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

/// clone3(2) arguments (include/uapi/linux/sched.h, CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks with clone3; the child exits at once. Returns the child's pid.
fn clone3(args: &CloneArgs) -> i32 {
    // SAFETY: no stack given, so the child continues like fork() and only
    // calls _exit, which is async-signal-safe.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: in the child: _exit(2) is async-signal-safe and runs no
        // destructors or atexit handlers of the parent's copied state.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    pid as i32
}

#[test]
fn fork_reports_the_childs_own_cgroup_and_parent() {
    const CLONE_PARENT: u64 = 0x8000;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let dir = cgroup2_root().join(format!("sensor-clone-{}", std::process::id()));
    fs::create_dir(&dir).unwrap();
    let cg_id = fs::metadata(&dir).unwrap().ino();
    let cg = fs::File::open(&dir).unwrap();
    let mut sensor = Sensor::start(&["--hooks", "exec"]);

    let into = clone3(&CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cg.as_raw_fd() as u64,
        ..Default::default()
    });
    // SAFETY: waitpid(2) on our own child; a NULL status pointer is allowed
    // and means no status is written.
    unsafe { libc::waitpid(into, std::ptr::null_mut(), 0) };
    // Its parent becomes ours (the test runner). clone3 refuses an exit
    // signal with CLONE_PARENT; the legacy clone(2) takes one, like fork.
    // SAFETY: as in clone3() above.
    let sibling = unsafe {
        libc::syscall(
            libc::SYS_clone,
            CLONE_PARENT | libc::SIGCHLD as u64,
            0,
            0,
            0,
            0,
        )
    } as i32;
    if sibling == 0 {
        // SAFETY: as in clone3() above.
        unsafe { libc::_exit(0) };
    }
    assert!(sibling > 0);

    let fork = sensor.expect_one("fork", "the child cloned into a cgroup", |r| {
        r["process"]["pid"] == into
    });
    assert_eq!(fork["cgroup"]["id"], cg_id, "{fork}");
    assert_eq!(fork["fork"]["ppid"], std::process::id());
    let fork = sensor.expect_one("fork", "the CLONE_PARENT child", |r| {
        r["process"]["pid"] == sibling
    });
    // SAFETY: getppid(2) takes no arguments and cannot fail.
    let ppid = unsafe { libc::getppid() };
    assert_eq!(fork["fork"]["ppid"], ppid, "{fork}");
    // SAFETY: gettid(2) takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    assert_eq!(fork["fork"]["parent_tid"], tid);
    fs::remove_dir(&dir).unwrap();
}
