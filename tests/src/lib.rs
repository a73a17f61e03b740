//! Harness for tests that run the real `sensor` binary against the real
//! kernel. Tests need root; without it they fail (never skip) with the reason.
use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The sensor binary next to the test executable (target/<profile>/sensor),
/// or `$SENSOR_BIN`.
pub fn sensor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SENSOR_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps layout");
    let bin = profile_dir.join("sensor");
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build -p sensor), as `cargo xtask test` does",
        bin.display()
    );
    bin
}

/// `secs` seconds of waiting, stretched by `$SENSOR_TEST_TIME_SCALE` where
/// the machine is slow (`cargo xtask vm-test` sets it for emulated guests).
pub fn patience(secs: u64) -> Duration {
    let scale = std::env::var("SENSOR_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    Duration::from_secs(secs * scale)
}

/// A shell command that keeps a short-lived container alive long enough
/// (one second, scaled by [`patience`]) for the sensor to read its runtime
/// state, which leaves with the container.
pub fn linger() -> String {
    format!("sleep {}", patience(1).as_secs())
}

/// Fails the test with a clear reason unless running as root.
pub fn require_root() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "kernel tests need root (they load eBPF programs); run them through `cargo xtask test` as root"
    );
}

/// Rotated files the sensor keeps by default (`--rotate-keep`).
const ROTATED_KEPT: u32 = 5;

/// A running sensor writing to a temporary file.
pub struct Sensor {
    child: Child,
    dir: tempfile::TempDir,
    stopped: Option<Vec<Value>>,
}

impl Sensor {
    /// Starts `sensor run` with extra arguments and waits until its hooks are attached.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(extra, |_| {})
    }

    /// Like [`Sensor::start`], with a last change to the command (its
    /// privileges, say).
    pub fn start_with(extra: &[&str], configure: impl FnOnce(&mut Command)) -> Self {
        require_root();
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("events.jsonl");
        let ready = dir.path().join("ready");
        let log = fs::File::create(dir.path().join("sensor.log")).expect("log file");
        // Tests run sensors side by side: each endpoint on a port of its own.
        let metrics: &[&str] = if extra.contains(&"--metrics-address") {
            &[]
        } else {
            &["--metrics-address", "127.0.0.1:0"]
        };
        let mut command = Command::new(sensor_bin());
        command
            .arg("run")
            .arg("--output")
            .arg(&out)
            .arg("--ready-file")
            .arg(&ready)
            .args(metrics)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        configure(&mut command);
        let child = command.spawn().expect("spawn sensor");
        let mut s = Self {
            child,
            dir,
            stopped: None,
        };
        let patience = patience(60);
        let started = Instant::now();
        let deadline = started + patience;
        while !ready.exists() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("sensor exited before ready ({status}):\n{}", s.log());
            }
            assert!(
                Instant::now() < deadline,
                "sensor not ready after {patience:?}:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Captured output, shown when the test fails: slow program loads
        // (the verifier) eat into every later wait.
        println!("sensor ready after {:?}", started.elapsed());
        s
    }

    /// Whether the sensor runs its LSM tier, read from its startup log.
    /// Panics when the harness says the kernel must run it
    /// (`SENSOR_TEST_EXPECT_LSM=1`, set by `cargo xtask vm-test`) and it
    /// does not, or when a forced tracepoint tier loaded it anyway.
    pub fn lsm_tier(&self) -> bool {
        let log = self.log();
        let active = log
            .lines()
            .any(|l| l.contains("hook attached") && l.contains("tier=lsm"));
        let forced_tracepoints = matches!(
            std::env::var("SENSOR_TIER").as_deref(),
            Ok("tp-btf" | "raw-tp")
        );
        if forced_tracepoints {
            assert!(
                !active,
                "a forced tracepoint tier loaded LSM programs:\n{log}"
            );
        } else if std::env::var("SENSOR_TEST_EXPECT_LSM").as_deref() == Ok("1") {
            assert!(active, "this kernel must run the LSM tier:\n{log}");
        }
        active
    }

    /// Where the metrics endpoint listens, from the startup log.
    pub fn metrics_address(&self) -> String {
        let log = self.log();
        log.lines()
            .find(|l| l.contains("metrics endpoint listening"))
            .and_then(|l| l.split("address=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no metrics endpoint in the log:\n{log}"))
            .to_owned()
    }

    /// `GET path` from the metrics endpoint: status and body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(self.metrics_address()).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: sensor\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).expect("response");
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_owned())
    }

    /// The value of one metric series (`name{labels}`) from `/metrics`, 0
    /// when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let (status, body) = self.http_get("/metrics");
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().expect("a number"))
    }

    /// Waits until the metric `series` reaches `at_least` (kernel counters
    /// are read each second); returns its value.
    pub fn wait_metric(&self, series: &str, at_least: f64) -> f64 {
        let deadline = Instant::now() + patience(5);
        loop {
            let v = self.metric(series);
            if v >= at_least {
                return v;
            }
            assert!(Instant::now() < deadline, "{series} is {v}, not {at_least}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The sensor's stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sensor.log")).unwrap_or_default()
    }

    /// The sensor's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The sensor's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the sensor's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix(" kB")?.trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status")
            * 1024
    }

    /// Sends `signal` to the running sensor.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) takes no pointers; the pid is our own unreaped
        // child's, so it cannot have been reused for another process.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Records written so far while the sensor runs (it flushes after each
    /// drain); a line still being written is left out.
    pub fn records_so_far(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.dir.path().join("events.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits up to 10 s (scaled by [`patience`]) for a record of `kind` matching `pred`.
    pub fn wait_for(&self, kind: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let patience = patience(10);
        let deadline = Instant::now() + patience;
        loop {
            if let Some(r) = self
                .records_so_far()
                .into_iter()
                .find(|r| r["kind"] == kind && pred(r))
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} for {what} after {patience:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to 10 s (scaled by [`patience`]) for `text` in the sensor's log.
    pub fn wait_log(&self, text: &str) {
        let patience = patience(10);
        let deadline = Instant::now() + patience;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} not logged after {patience:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGINT, waits for the drain, and returns every record written.
    /// Each line must be a complete JSON object.
    pub fn stop(&mut self) -> &[Value] {
        if self.stopped.is_none() {
            // SAFETY: kill(2) takes no pointers; the pid is our own unreaped
            // child's, so it cannot have been reused for another process.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let status = self.child.wait().expect("wait sensor");
            assert!(
                status.success(),
                "sensor failed ({status}):\n{}",
                self.log()
            );
            // A burst from other tests may have rotated the file: the
            // rotated ones (`.N` oldest) come first.
            let mut files: Vec<PathBuf> = (1..=ROTATED_KEPT)
                .rev()
                .map(|n| self.dir.path().join(format!("events.jsonl.{n}")))
                .filter(|p| p.exists())
                .collect();
            files.push(self.dir.path().join("events.jsonl"));
            let mut records = Vec::new();
            for path in files {
                let file = fs::File::open(&path).expect("events file");
                for l in BufReader::new(file).lines() {
                    let l = l.expect("read line");
                    records.push(
                        serde_json::from_str::<Value>(&l)
                            .unwrap_or_else(|e| panic!("line is not one JSON object ({e}): {l}")),
                    );
                }
            }
            // Captured output, shown when the test fails: a missing record
            // may have been dropped rather than never produced.
            for loss in records.iter().filter(|r| r["kind"] == "loss") {
                println!("the sensor reported a loss: {}", loss["loss"]);
            }
            self.stopped = Some(records);
        }
        self.stopped.as_deref().unwrap_or_default()
    }

    /// Records of `kind` matching `pred`, after [`Sensor::stop`].
    pub fn find(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.stop()
            .iter()
            .filter(|r| r["kind"] == kind && pred(r))
            .cloned()
            .collect()
    }

    /// Exactly one record of `kind` matching `pred`, with a useful failure.
    pub fn expect_one(&mut self, kind: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let found = self.find(kind, pred);
        if found.len() != 1 {
            let sample: Vec<String> = self
                .stop()
                .iter()
                .filter(|r| r["kind"] == kind)
                .rev()
                .take(15)
                .map(|r| r.to_string())
                .collect();
            panic!(
                "expected one {kind} record for {what}, found {}; last {kind} records:\n{}",
                found.len(),
                sample.join("\n")
            );
        }
        found.into_iter().next().unwrap()
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if self.stopped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// JSON text field as bytes: plain strings, or `{"base64": ...}` for non-UTF-8.
pub fn text_bytes(v: &Value) -> Vec<u8> {
    let t: sensor::text::Text =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a text field ({e}): {v}"));
    t.0
}

/// A path under /tmp unique to this test run.
pub fn unique_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sensor-{tag}-"))
        .tempdir_in("/tmp")
        .expect("tempdir")
}

/// A real OCI container run by runc from a busybox root filesystem built on
/// the spot (no image registry is reachable here), placed in a cgroup path
/// of the caller's choosing, which is how each runtime's naming is tested.
pub struct RuncContainer {
    /// Container id (also used in the cgroup path).
    pub id: String,
    bundle: tempfile::TempDir,
    detached: bool,
}

impl RuncContainer {
    /// Prepares a bundle whose process runs `script` with `sh -c`.
    pub fn new(id: &str, cgroups_path: &str, script: &str) -> Self {
        Self::with_config(id, cgroups_path, script, |_| {})
    }

    /// Like [`RuncContainer::new`], with a final edit of the OCI config
    /// (annotations, mounts) as a CRI runtime would write it.
    pub fn with_config(
        id: &str,
        cgroups_path: &str,
        script: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Self {
        require_root();
        let busybox = Path::new("/usr/bin/busybox");
        assert!(
            busybox.exists(),
            "busybox-static is needed for container tests (cargo xtask test installs it)"
        );
        let bundle = tempfile::Builder::new()
            .prefix("sensor-ctr-")
            .tempdir()
            .expect("bundle dir");
        let rootfs = bundle.path().join("rootfs");
        busybox_rootfs(&rootfs);
        fs::write(rootfs.join("etc/hostname"), format!("{id}\n")).unwrap();
        let status = Command::new("runc")
            .arg("spec")
            .current_dir(bundle.path())
            .status()
            .expect("runc spec (is runc installed?)");
        assert!(status.success());
        let config_path = bundle.path().join("config.json");
        let mut config: Value =
            serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        config["root"]["readonly"] = Value::Bool(false);
        config["linux"]["cgroupsPath"] = Value::String(cgroups_path.to_owned());
        edit(&mut config);
        fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
        Self {
            id: id.to_owned(),
            bundle,
            detached: false,
        }
    }

    /// The container's root filesystem, to add files before it runs.
    pub fn rootfs(&self) -> PathBuf {
        self.bundle.path().join("rootfs")
    }

    /// Copies a host program and the shared libraries it links into the
    /// root filesystem, at the same paths (busybox has no openssl or rsync).
    pub fn add_host_program(&self, name: &str) {
        let program = ["/usr/bin", "/bin", "/usr/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name} is not installed (cargo xtask test installs it)"));
        let ldd = Command::new("ldd").arg(&program).output().expect("ldd");
        let text = String::from_utf8_lossy(&ldd.stdout);
        let libs = text
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
            .map(PathBuf::from);
        for file in std::iter::once(program.clone()).chain(libs) {
            let dest = self.rootfs().join(file.strip_prefix("/").unwrap());
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(&file, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", file.display()));
        }
    }

    /// Shares the host's network namespace (to reach listeners the test
    /// opens on the host's loopback).
    pub fn host_network(config: &mut Value) {
        if let Some(ns) = config["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
        }
    }

    /// Adds a read-write bind mount of a host directory.
    pub fn bind_mount(config: &mut Value, source: &Path, destination: &str) {
        config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": destination, "type": "bind",
                "source": source.to_str().unwrap(), "options": ["rbind", "rw"]
            }));
    }

    /// Runs to completion in the foreground.
    pub fn run(&self) {
        let out = Command::new("runc")
            .args(["run", &self.id])
            .current_dir(self.bundle.path())
            .stdin(Stdio::null())
            .output()
            .expect("runc run");
        assert!(
            out.status.success(),
            "runc run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts in the background; deleted on drop.
    pub fn start_detached(&mut self) {
        let status = Command::new("runc")
            .args(["run", "--detach", &self.id])
            .current_dir(self.bundle.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("runc run --detach");
        assert!(status.success(), "runc run --detach failed");
        self.detached = true;
    }
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        if self.detached {
            let _ = Command::new("runc")
                .args(["delete", "--force", &self.id])
                .status();
        }
    }
}

/// A 64-hex container id unique to this test run.
pub fn container_id(tag: u8) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:02x}{:030x}{:032x}", tag, std::process::id(), nanos)
}

/// A private dockerd (its own data root, exec root and socket, no iptables,
/// no bridge) for tests; stopped on drop.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Starts dockerd and waits until it answers.
    pub fn start() -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("sensor-dockerd-")
            .tempdir_in("/tmp")
            .expect("dockerd dir");
        let log = fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let base = dir.path().to_path_buf();
        let p = |name: &str| base.join(name);
        let child = Command::new("dockerd")
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=overlay2",
            ])
            .arg("--data-root")
            .arg(p("root"))
            .arg("--exec-root")
            .arg(p("exec"))
            .arg("--pidfile")
            .arg(p("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", p("docker.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd (is docker.io installed?)");
        let d = Self { child, dir };
        let patience = patience(60);
        let deadline = Instant::now() + patience;
        loop {
            if d.docker(&["version"]).status.success() {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not up after {patience:?}:\n{}",
                fs::read_to_string(p("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The daemon's API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Runs the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker CLI")
    }

    /// Imports a busybox root filesystem built here as `tag` (no registry
    /// is reachable).
    pub fn import_busybox(&self, tag: &str) {
        let image = busybox_rootfs_tar();
        let tar = image.path().join("rootfs.tar");
        let out = self.docker(&["import", tar.to_str().unwrap(), tag]);
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and unmount cleanly.
        stop_daemon(&mut self.child, patience(20));
    }
}

/// A minimal root filesystem: busybox-static and its applets.
pub fn busybox_rootfs(root: &Path) {
    let busybox = Path::new("/usr/bin/busybox");
    assert!(
        busybox.exists(),
        "busybox-static is needed for container tests (cargo xtask test installs it)"
    );
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "echo", "sleep", "ls", "tar", "nc", "id", "uname", "hostname", "gzip", "wget",
        "chmod", "mkdir", "cp", "grep", "rm", "env", "dd",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
}

/// A directory holding `rootfs.tar`, a busybox root filesystem to import
/// into Docker or podman as an image.
pub fn busybox_rootfs_tar() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sensor-image-")
        .tempdir_in("/tmp")
        .unwrap();
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    fs::write(root.join("etc/hostname"), b"image\n").unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(dir.path().join("rootfs.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// A private containerd (own root, state and socket) for `ctr` tests;
/// stopped on drop.
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Starts containerd and waits for its socket to answer.
    pub fn start() -> Self {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("sensor-containerd-")
            .tempdir_in("/tmp")
            .unwrap();
        let log = fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(dir.path().join("containerd.sock"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (cargo xtask test installs it with docker.io)");
        let c = Self { child, dir };
        let patience = patience(30);
        let deadline = Instant::now() + patience;
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd not up after {patience:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// Runs `ctr` against this containerd.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop_daemon(&mut self.child, patience(10));
    }
}

/// SIGTERM, a grace period, then SIGKILL.
fn stop_daemon(child: &mut Child, grace: Duration) {
    // SAFETY: kill(2) takes no pointers; the pid is our own unreaped
    // child's, so it cannot have been reused for another process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A rule file with one rule, `id`, matching an exec whose arguments
/// include `marker`.
pub fn marker_rule(id: &str, marker: &str) -> String {
    format!(
        "pack: local\ntechnique: {{id: T0000, name: test, tactic: test}}\nrules:\n  \
         - id: {id}\n    title: marker\n    severity: low\n    description: test\n    \
         condition: evt.type = exec and proc.args = {marker}\n"
    )
}

/// Execs `/bin/true marker`, which [`marker_rule`] matches.
pub fn run_marker(marker: &str) {
    assert!(
        Command::new("/bin/true")
            .arg(marker)
            .status()
            .unwrap()
            .success()
    );
}

/// Runs tests/validate/formats.py (`format`: `ocsf` or `ecs`) over
/// `documents` and returns its report; fails the test, with the report,
/// when a document does not validate. `cargo xtask test` installs the
/// validators and names their virtualenv in `$SENSOR_FORMAT_VALIDATOR`
/// (`bin/python`, and ECS's field definitions as `ecs-8.17.0.json`).
/// Without it the check is skipped with a note, except in CI, where it
/// fails; and in the guests of `cargo xtask vm-test` (`$SENSOR_TEST_GUEST`),
/// whose /root, where the tools live, is a tmpfs: the same test's passes on
/// the host validate.
pub fn validate_format(format: &str, documents: &[Value]) -> Option<String> {
    let (valid, report, dir) = format_verdict(format, documents)?;
    if !valid {
        // Errors name lines of the file: keep it to read them.
        let kept = dir.keep();
        panic!(
            "{format} does not validate ({} kept):\n{report}",
            kept.display()
        );
    }
    Some(report)
}

/// Whether tests/validate/formats.py accepts `documents`, its report, and
/// the directory of the file it read; `None` where [`validate_format`]
/// skips.
pub fn format_verdict(
    format: &str,
    documents: &[Value],
) -> Option<(bool, String, tempfile::TempDir)> {
    if std::env::var_os("SENSOR_TEST_GUEST").is_some() {
        eprintln!("{format} not validated in the guest: the validators are the host's");
        return None;
    }
    let Some(venv) = std::env::var_os("SENSOR_FORMAT_VALIDATOR").map(PathBuf::from) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "SENSOR_FORMAT_VALIDATOR is not set: run the tests through `cargo xtask test`, \
             which installs the OCSF and ECS validators"
        );
        eprintln!(
            "{format} not validated: SENSOR_FORMAT_VALIDATOR is not set (`cargo xtask test` sets it)"
        );
        return None;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join(format!("{format}.jsonl"));
    let mut lines = String::new();
    for d in documents {
        lines.push_str(&d.to_string());
        lines.push('\n');
    }
    fs::write(&file, lines).expect("writing the documents");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("validate/formats.py");
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(&script).arg(format);
    if format == "ecs" {
        cmd.arg("--fields").arg(venv.join("ecs-8.17.0.json"));
    }
    let out = cmd
        .arg(&file)
        .output()
        .expect("running tests/validate/formats.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), report, dir))
}
