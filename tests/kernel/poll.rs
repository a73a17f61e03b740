//! The polling collector end to end: processes that outlive the interval,
//! a held connection, files written under a watched directory, and a seed's
//! validation step raising the alert its rule defines.
use std::{
    fs,
    io::Read as _,
    net::{TcpListener, TcpStream},
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::{
    RuncContainer, Sensor, container_id, patience, sensor_bin, text_bytes, unique_dir,
};

const INTERVAL: &str = "200ms";

fn mine(r: &serde_json::Value) -> bool {
    r["process"]["pid"] == std::process::id()
}

/// Long enough for two snapshots, however slow the machine.
fn outlive_interval() -> Duration {
    patience(1)
}

#[test]
fn processes_connects_and_files_are_seen_by_polling() {
    let dir = unique_dir("poll");
    let watch = dir.path().to_str().unwrap().to_owned();
    let mut sensor = Sensor::start(&[
        "--collector",
        "poll",
        "--poll-interval",
        INTERVAL,
        "--watch",
        &watch,
    ]);
    sensor.wait_log("collector=\"poll\"");

    // A process living past the interval, with an argv to find it by.
    let secs = format!("{}.25", outlive_interval().as_secs());
    let mut child = Command::new("sleep").arg(&secs).spawn().unwrap();
    let child_pid = child.id();
    // A connection held open past the interval.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A file created under the watched directory.
    let file = dir.path().join("staged.bin");
    fs::write(&file, b"data").unwrap();

    let exec = sensor.wait_for("exec", "the sleep", |r| {
        r["process"]["pid"] == child_pid && r["exec"]["args"][1] == secs.as_str()
    });
    assert_eq!(exec["source"], "poll", "{exec}");
    assert_eq!(exec["container"]["id"], "host", "{exec}");
    assert_eq!(exec["process"]["ppid"], std::process::id(), "{exec}");
    assert!(
        text_bytes(&exec["exec"]["path"]).ends_with(b"/sleep"),
        "{exec}"
    );
    assert_eq!(
        exec["process"]["ancestors"][0]["pid"],
        std::process::id(),
        "{exec}"
    );
    let connect = sensor.wait_for("connect", "the held connection", |r| {
        mine(r) && r["connect"]["port"] == port
    });
    assert_eq!(
        (
            connect["connect"]["address"].as_str(),
            connect["connect"]["address_source"].as_str(),
            connect["source"].as_str()
        ),
        (Some("127.0.0.1"), Some("socket_table"), Some("poll")),
        "{connect}"
    );
    let open = sensor.wait_for("open", "the staged file", |r| {
        text_bytes(&r["open"]["path"]) == file.as_os_str().as_encoded_bytes()
    });
    assert_eq!(open["open"]["access"], "write", "{open}");
    assert_eq!(
        (
            open["container"]["id"].as_str(),
            open["process"]["pid"].as_u64()
        ),
        (Some("unknown"), Some(0)),
        "no writer, so no container: {open}"
    );
    assert!(
        open["open"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "O_CREAT"),
        "{open}"
    );
    child.wait().unwrap();
    drop(stream);
    let exit = sensor.wait_for("exit", "the sleep ending", |r| {
        r["process"]["pid"] == child_pid
    });
    assert_eq!(exit["source"], "poll", "{exit}");
    // The accepted end is inbound: never reported as a connect.
    let inbound = sensor.find("connect", |r| {
        r["connect"]["port"] != port && mine(r) && r["connect"]["address"] == "127.0.0.1"
    });
    assert!(inbound.is_empty(), "{inbound:?}");
}

/// Linux without eBPF still attributes containers: a runc container's
/// process, seen by polling, carries the container named by its cgroup.
/// On a slow machine the poller may first catch it as `runc init`, before
/// it becomes the container's `sleep`: either is the container's.
#[test]
fn polled_container_processes_are_attributed() {
    let id = container_id(0x50);
    let mut ctr = RuncContainer::new(
        &id,
        &format!("/system.slice/docker-{id}.scope"),
        &format!("exec sleep {}", outlive_interval().as_secs() + 2),
    );
    let sensor = Sensor::start(&["--collector", "poll", "--poll-interval", INTERVAL]);
    sensor.wait_log("collector=\"poll\"");
    ctr.start_detached();
    let exec = sensor.wait_for("exec", "a process of the container", |r| {
        r["container"]["id"] == id.as_str()
    });
    assert_eq!(
        (
            exec["container"]["runtime"].as_str(),
            exec["source"].as_str()
        ),
        (Some("docker"), Some("poll")),
        "{exec}"
    );
}

/// A process that execs after the poller first saw it (here a shell that
/// waits for the test's word, then `exec`s) is reported again with its new
/// program: `runc init` becoming a container's entrypoint is the same case.
#[test]
fn an_exec_after_the_process_was_seen_is_reported() {
    let dir = unique_dir("poll-reexec");
    let go = dir.path().join("go");
    let sensor = Sensor::start(&["--collector", "poll", "--poll-interval", INTERVAL]);
    sensor.wait_log("collector=\"poll\"");
    let secs = outlive_interval().as_secs() + 2;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done; exec sleep {secs}",
            go.display()
        ))
        .spawn()
        .unwrap();
    let pid = child.id();
    // A poll may catch the child between fork and exec, as this test's own
    // program: then `sh` itself arrives as a second exec.
    sensor.wait_for("exec", "the waiting shell", |r| {
        r["process"]["pid"] == pid && r["exec"]["args"][0] == "sh"
    });
    fs::write(&go, b"").unwrap();
    let again = sensor.wait_for("exec", "the shell's exec of sleep", |r| {
        r["process"]["pid"] == pid && r["exec"]["args"][0] == "sleep"
    });
    assert_eq!(
        again["exec"]["args"][1],
        secs.to_string().as_str(),
        "{again}"
    );
    assert_eq!(again["process"]["comm"], "sleep", "{again}");
    let _ = child.kill();
    child.wait().unwrap();
}

/// The T1560 validation step (tar of /etc): the archiver must outlive the
/// interval to be seen, so it writes into a FIFO nobody reads yet. It runs
/// orphaned, as an intruder's would: under this test its ancestors would
/// include `cargo`, which the rule's package-manager exception excuses.
#[test]
fn seed_validation_step_alerts_through_polling() {
    let dir = unique_dir("poll-tar");
    let fifo = dir.path().join("out.tar");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success(), "mkfifo");
    let sensor = Sensor::start(&["--collector", "poll", "--poll-interval", INTERVAL]);
    sensor.wait_log("collector=\"poll\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -cf '{}' /etc/hostname </dev/null >/dev/null 2>&1 & echo $!",
            fifo.display()
        ))
        .output()
        .unwrap();
    let tar_pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let tar = KillOnDrop(tar_pid);
    let alert = sensor.wait_for("alert", "T1560 on the tar", |r| {
        r["rule"]["id"] == "T1560-archive-of-sensitive-data" && r["process"]["pid"] == tar_pid
    });
    assert_eq!(alert["source"], "poll", "{alert}");
    // Let tar finish: read the FIFO to its end.
    let mut archive = Vec::new();
    fs::File::open(&fifo)
        .unwrap()
        .read_to_end(&mut archive)
        .unwrap();
    assert!(!archive.is_empty());
    drop(tar);
}

/// Kills a process that is not our child (so `Child` cannot) when the test
/// ends, failed or not.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes no pointers; the pid is one this test
        // started (ESRCH once it has exited).
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

/// Without the privileges eBPF needs, auto falls back to polling and says
/// why; the same user with `--collector ebpf` gets an error instead
/// (errors.rs).
#[test]
fn auto_falls_back_to_polling_and_says_why() {
    sensor_tests::require_root();
    let dir = unique_dir("poll-fallback");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let ready = dir.path().join("ready");
    let mut child = Command::new(sensor_bin())
        .args([
            "run",
            "--output",
            "/dev/null",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .arg("--ready-file")
        .arg(&ready)
        .uid(65534)
        .gid(65534)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + patience(30);
    while !ready.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("sensor exited ({status}) instead of falling back:\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "no fallback after {:?}",
            patience(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) takes no pointers; the pid is our own unreaped
    // child's, so it cannot have been reused for another process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("falling back to the polling collector") && err.contains("missing privileges"),
        "{err}"
    );
}
