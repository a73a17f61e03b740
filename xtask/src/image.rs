//! The container image: a static (musl) sensor and the default rules on
//! `scratch` (deploy/container/Containerfile).
//!
//! `static` builds what the Containerfile's `build` stage outputs; `image`
//! builds it here and hands it to podman as that stage, so the builder image
//! is never pulled (no registry is reachable here), then runs the image
//! against this kernel the way the DaemonSet does: the five capabilities,
//! the host's pid namespace, read-only BTF and cgroupfs.
use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, setup};

const CONTAINERFILE: &str = "deploy/container/Containerfile";

/// The DaemonSet's capabilities (deploy/kubernetes/daemonset.yaml).
const CAPABILITIES: &str = "BPF,PERFMON,NET_ADMIN,SYS_RESOURCE,SYS_PTRACE";

/// `cargo xtask static --out <dir>`.
pub fn static_task(out: &Path) -> Result<()> {
    build_static(&setup::ensure_build_tools()?, out)
}

/// `cargo xtask image`.
pub fn task() -> Result<()> {
    build_and_check(&setup::ensure_build_tools()?)
}

fn musl_target() -> String {
    format!("{}-unknown-linux-musl", std::env::consts::ARCH)
}

/// Builds the static sensor and lays out the image's tree under `out`:
/// `usr/local/bin/sensor` and `etc/runtime-sensor/rules/`.
pub fn build_static(env: &cmd::Env, out: &Path) -> Result<()> {
    // musl-gcc for the C in ring (the webhook's TLS).
    setup::ensure_packages(&["musl-tools"])?;
    let target = musl_target();
    setup::ensure_targets(&[&target])?;
    cmd::cargo(
        env,
        &[
            "build",
            "--release",
            "--package",
            "sensor",
            "--target",
            &target,
        ],
    )?;
    let built = cmd::root()
        .join("target")
        .join(&target)
        .join("release/sensor");
    let bin = out.join("usr/local/bin");
    let rules = out.join("etc/runtime-sensor/rules");
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    fs::create_dir_all(&bin)?;
    fs::create_dir_all(&rules)?;
    fs::copy(&built, bin.join("sensor")).with_context(|| format!("copying {}", built.display()))?;
    for entry in fs::read_dir(cmd::root().join("rules"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            fs::copy(&path, rules.join(path.file_name().expect("a file name")))?;
        }
    }
    // Static: a scratch image has no loader or libc to offer.
    let file = cmd::output(Command::new("file").arg(bin.join("sensor")))?;
    if !file.contains("statically linked") && !file.contains("static-pie linked") {
        bail!("the image binary is not static: {file}");
    }
    eprintln!("xtask: static sensor and rules in {}", out.display());
    Ok(())
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    // What works on hybrid-cgroup hosts (docs/PLATFORMS.md): runc.
    c.args([
        "--runtime=runc",
        "--cgroup-manager=cgroupfs",
        "--events-backend=file",
    ]);
    c
}

/// `podman run --rm` with the limits runc may set here.
fn podman_run() -> Command {
    let mut c = podman();
    c.args([
        "run",
        "--rm",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
    ]);
    c
}

/// Builds the image and runs it against this kernel.
pub fn build_and_check(env: &cmd::Env) -> Result<()> {
    setup::ensure_packages(&["podman", "runc", "file"])?;
    let stage = cmd::root().join("target/image/build");
    build_static(env, &stage.join("out"))?;
    let tag = format!("localhost/runtime-sensor:{}", env!("CARGO_PKG_VERSION"));
    cmd::run(
        podman()
            .args(["build", "--target", "runtime", "--build-context"])
            .arg(format!("build={}", stage.display()))
            .args(["-f", CONTAINERFILE, "-t", &tag, "."])
            .current_dir(cmd::root()),
    )?;
    let size = cmd::output(podman().args(["image", "inspect", "--format", "{{.Size}}", &tag]))?;
    eprintln!("xtask: {tag}: {} bytes", size.trim());

    let version = cmd::output(podman_run().args([&tag, "--version"]))?;
    if !version.contains(env!("CARGO_PKG_VERSION")) {
        bail!("the image says {version:?}");
    }
    let rules =
        cmd::output(podman_run().args([&tag, "rules", "check", "/etc/runtime-sensor/rules"]))?;
    eprintln!("xtask: in the image: {}", rules.trim());
    run_against_kernel(&tag)
}

/// The seccomp profile the DaemonSet gets (`RuntimeDefault`): containerd's
/// and CRI-O's current defaults allow bpf() to CAP_BPF and
/// perf_event_open() to CAP_PERFMON holders. Debian's podman profile
/// predates that (both need CAP_SYS_ADMIN there), so the same change is
/// made to it here, and nothing else.
fn runtime_default_seccomp(out: &Path) -> Result<()> {
    let source = "/usr/share/containers/seccomp.json";
    let text = fs::read_to_string(source).with_context(|| format!("reading {source}"))?;
    let mut profile: serde_json::Value = serde_json::from_str(&text)?;
    let rules = profile["syscalls"]
        .as_array_mut()
        .context("a seccomp profile has syscalls")?;
    let granted = ["bpf", "perf_event_open"];
    for rule in rules.iter_mut() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| !granted.iter().any(|g| n == g));
        }
    }
    rules.retain(|r| r["names"].as_array().is_some_and(|n| !n.is_empty()));
    for (name, cap) in [("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")] {
        for cap in [cap, "CAP_SYS_ADMIN"] {
            rules.push(serde_json::json!({
                "names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}
            }));
        }
    }
    fs::write(out, serde_json::to_string_pretty(&profile)?)
        .with_context(|| format!("writing {}", out.display()))
}

/// Runs the image as the DaemonSet would and sees an exec on the host.
fn run_against_kernel(tag: &str) -> Result<()> {
    let name = format!("sensor-image-check-{}", std::process::id());
    let seccomp = cmd::root().join("target/image/seccomp.json");
    runtime_default_seccomp(&seccomp)?;
    let mut child = podman_run()
        .args(["--name", &name, "--pid=host", "--network=host"])
        .args(["--cap-drop=all", &format!("--cap-add={CAPABILITIES}")])
        .arg(format!("--security-opt=seccomp={}", seccomp.display()))
        .args(["-v", "/sys/kernel/btf:/sys/kernel/btf:ro"])
        .args(["-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"])
        .arg(tag)
        .args([
            "run",
            "--rules",
            "/etc/runtime-sensor/rules",
            "--hooks",
            "exec",
        ])
        .args(["--node-name", "image-check", "--metrics-address", "off"])
        // eBPF or fail: falling back to polling would pass for the wrong reason.
        .args(["--collector", "ebpf"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("podman run")?;
    let stderr = child.stderr.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    // Ready once it says it runs; every line of its log kept for a failure.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let marker = format!("image-check-marker-{}", std::process::id());
    let (found_tx, found_rx) = std::sync::mpsc::channel();
    let wanted = marker.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&wanted) && line.contains("\"kind\":\"exec\"") {
                let _ = found_tx.send(line);
            }
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = (|| -> Result<String> {
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let running = line.contains("sensor running");
                    log.push(line);
                    if running {
                        break;
                    }
                }
                Err(_) if Instant::now() > deadline => bail!("not running after 120 s"),
                Err(_) => {
                    if let Some(status) = child.try_wait()? {
                        bail!("the container exited ({status})");
                    }
                }
            }
        }
        cmd::run(Command::new("/bin/true").arg(&marker))?;
        found_rx
            .recv_timeout(Duration::from_secs(30))
            .context("the marker's exec never came out")
    })();
    let _ = podman().args(["stop", "-t", "5", &name]).output();
    let _ = child.wait();
    log.extend(rx.try_iter());
    match result {
        Ok(line) => {
            let record: serde_json::Value = serde_json::from_str(&line)?;
            if record["node"] != "image-check" {
                bail!("unexpected record: {line}");
            }
            eprintln!(
                "xtask: the image ran with the DaemonSet's capabilities and saw the host's exec"
            );
            Ok(())
        }
        Err(e) => bail!("{e:#}; the sensor said:\n{}", log.join("\n")),
    }
}
