//! What watches a workload: the sensor, or for comparison auditd or a
//! bpftrace script configured for the same events (exec, open, connect).
use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::workload::Workload;
use crate::cmd;

/// A tool that records the workload's events.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Watcher {
    /// `sensor run` with the given arguments (default config otherwise).
    Sensor,
    /// Debian's auditd with syscall rules for exec, open and connect.
    Auditd,
    /// Debian's bpftrace printing one line per exec, open and connect.
    Bpftrace,
}

/// What a watcher recorded of one run.
#[derive(Default)]
pub struct Counts {
    /// Records of the workload's own events.
    pub received: u64,
    /// Events the watcher reported losing.
    pub lost: u64,
    /// Events dropped on purpose in the kernel (the sensor's rule-derived
    /// filter).
    pub filtered: u64,
    /// Events over the sensor's per-process rate limit (counted, not sent).
    pub limited: u64,
}

/// A started watcher.
pub enum Running {
    /// The sensor.
    Sensor(Sensor),
    /// auditd, with its log and the kernel's audit status at start.
    Auditd(Child, PathBuf, AuditStatus),
    /// bpftrace, its output, and whether it mounted tracefs.
    Bpftrace(Child, PathBuf, bool),
}

impl Watcher {
    /// Starts watching; returns once events are being recorded.
    pub fn start(self, dir: &Path, sensor_args: &[String]) -> Result<Running> {
        match self {
            Self::Sensor => Ok(Running::Sensor(Sensor::start(dir, sensor_args)?)),
            Self::Auditd => start_auditd(dir),
            Self::Bpftrace => start_bpftrace(dir),
        }
    }
}

impl Running {
    /// Stops and counts what was recorded of `w` run by process `me`.
    pub fn stop(self, w: Workload, me: u32) -> Result<Counts> {
        match self {
            Self::Sensor(s) => s.stop_and_count(w, me),
            Self::Auditd(child, log, before) => stop_auditd(child, &log, &before, w, me),
            Self::Bpftrace(child, out, mounted) => stop_bpftrace(child, &out, mounted, w, me),
        }
    }
}

/// `sensor run` writing to a file.
pub struct Sensor {
    /// The process.
    pub child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl Sensor {
    /// Starts the release build writing to a file in `dir`, and waits
    /// until its hooks are attached.
    pub fn start(dir: &Path, extra: &[String]) -> Result<Self> {
        let out = dir.join("events.jsonl");
        // The last run's file and its rotations.
        for n in 0..=5 {
            let _ = fs::remove_file(if n == 0 {
                out.clone()
            } else {
                PathBuf::from(format!("{}.{n}", out.display()))
            });
        }
        Self::start_writing(dir, &out, "off", extra)
    }

    /// Starts the release build writing to `out` (never removed here: it
    /// may be /dev/null), serving metrics on `metrics` (an address, or
    /// `off`).
    pub fn start_writing(dir: &Path, out: &Path, metrics: &str, extra: &[String]) -> Result<Self> {
        let out = out.to_owned();
        let log = dir.join("sensor.log");
        let ready = dir.join("ready");
        let _ = fs::remove_file(&ready);
        let mut command = Command::new(cmd::root().join("target/release/sensor"));
        command
            .arg("run")
            .arg("--output")
            .arg(&out)
            .arg("--ready-file")
            .arg(&ready)
            .args(["--metrics-address", metrics])
            .args(extra);
        let child = start_until(&mut command, "the sensor", &log, 60, || ready.exists())?;
        Ok(Self { child, out, log })
    }

    /// Stops the sensor as a service manager would (SIGINT); fails if it
    /// did not exit cleanly.
    pub fn stop(&mut self) -> Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait()?;
        if !status.success() {
            bail!("sensor failed: {status}");
        }
        Ok(())
    }

    /// Where the sensor writes, oldest first: a flood fills more than one
    /// file, and rotated ones come first.
    pub fn output_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = (1..=5)
            .rev()
            .map(|n| PathBuf::from(format!("{}.{n}", self.out.display())))
            .filter(|p| p.exists())
            .collect();
        files.push(self.out.clone());
        files
    }

    /// Stops the sensor; counts the workload's records, losses, and what
    /// the kernel filtered (from its last log line).
    pub fn stop_and_count(mut self, w: Workload, me: u32) -> Result<Counts> {
        self.stop()?;
        let mut c = Counts::default();
        let kind = w.kind().unwrap_or("exec");
        let files = self.output_files();
        let lines = files.iter().map(|f| {
            fs::File::open(f)
                .map(|f| BufReader::new(f).lines())
                .with_context(|| format!("{}", f.display()))
        });
        for line in lines.collect::<Result<Vec<_>>>()?.into_iter().flatten() {
            let v: Value = serde_json::from_str(&line?)?;
            if v["kind"] == "loss" {
                let sum = |reason: &str| -> u64 {
                    v["loss"][reason]
                        .as_object()
                        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
                };
                c.lost += sum("ring_full");
                c.limited += sum("rate_limited");
            } else if v["kind"] == kind {
                let ours = match kind {
                    "exec" => v["exec"]["ppid"] == me || w == Workload::Mixed,
                    _ => v["process"]["pid"] == me,
                };
                c.received += u64::from(ours);
            }
        }
        let log = fs::read_to_string(&self.log)?;
        c.filtered = log
            .lines()
            .rev()
            .find_map(|l| l.split("filtered_in_kernel=").nth(1))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Ok(c)
    }
}

/// Starts `command` (stderr to `log`) and waits up to `secs` for
/// `ready()`; fails with the log's text if it exits first.
fn start_until(
    command: &mut Command,
    name: &str,
    log: &Path,
    secs: u64,
    ready: impl Fn() -> bool,
) -> Result<Child> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited ({status}): {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{name} not ready after {secs} s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// The audit rules: the syscalls the sensor hooks, 64-bit ABI.
const AUDIT_RULES: &[&[&str]] = &[
    &[
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "execve,execveat",
    ],
    &[
        "-a",
        "always,exit",
        "-F",
        "arch=b64",
        "-S",
        "open,openat,openat2,creat",
    ],
    &["-a", "always,exit", "-F", "arch=b64", "-S", "connect"],
];

fn auditctl(args: &[&str]) -> Result<String> {
    let out = Command::new("auditctl").args(args).output()?;
    if !out.status.success() {
        bail!(
            "auditctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What `auditctl -s` says the bench changes, to restore it after.
pub struct AuditStatus {
    enabled: String,
    backlog_limit: String,
    lost: u64,
}

fn audit_status() -> Result<AuditStatus> {
    let status = auditctl(&["-s"])?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("no `{name}` in auditctl -s"))
    };
    Ok(AuditStatus {
        enabled: field("enabled")?,
        backlog_limit: field("backlog_limit")?,
        lost: field("lost")?.parse().context("auditctl -s: lost")?,
    })
}

/// auditd in the foreground with a configuration of its own: its log in
/// `dir`, never suspending on disk space (Debian's default would stop the
/// workload instead), a 8192-record kernel backlog as production guides set.
fn start_auditd(dir: &Path) -> Result<Running> {
    let conf_dir = dir.join("audit");
    fs::create_dir_all(conf_dir.join("plugins.d"))?;
    let log = conf_dir.join("audit.log");
    let _ = fs::remove_file(&log);
    let conf = conf_dir.join("auditd.conf");
    fs::write(
        &conf,
        format!(
            "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_format = RAW\n\
             flush = INCREMENTAL_ASYNC\nfreq = 50\nmax_log_file = 4096\n\
             max_log_file_action = IGNORE\nspace_left = 2\nspace_left_action = IGNORE\n\
             admin_space_left = 1\nadmin_space_left_action = IGNORE\n\
             disk_full_action = IGNORE\ndisk_error_action = IGNORE\nplugin_dir = {}\n\
             q_depth = 2000\noverflow_action = IGNORE\nname_format = NONE\n",
            log.display(),
            conf_dir.join("plugins.d").display()
        ),
    )?;
    // auditd refuses a configuration others may read.
    fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    // Before auditd starts: it switches auditing on unless told not to.
    let before = audit_status()?;
    let child = start_until(
        Command::new("auditd")
            .args(["-n", "-s", "nochange", "-c"])
            .arg(&conf_dir),
        "auditd (apt-get install auditd)",
        &conf_dir.join("auditd.err"),
        10,
        || log.exists(),
    )?;
    auditctl(&["-D"])?;
    auditctl(&["-b", "8192"])?;
    for rule in AUDIT_RULES {
        auditctl(rule)?;
    }
    auditctl(&["-e", "1"])?;
    Ok(Running::Auditd(child, log, before))
}

fn stop_auditd(
    mut child: Child,
    log: &Path,
    before: &AuditStatus,
    w: Workload,
    me: u32,
) -> Result<Counts> {
    let lost = audit_status()?.lost.saturating_sub(before.lost);
    // The host's audit state as it was: no rules of ours, same switches.
    auditctl(&["-D"])?;
    auditctl(&["-e", &before.enabled])?;
    auditctl(&["-b", &before.backlog_limit])?;
    // SAFETY: signalling our own child; auditd flushes its log on SIGTERM.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait()?;
    let (pid, ppid) = (format!(" pid={me} "), format!(" ppid={me} "));
    let syscalls: &[&str] = match w.kind() {
        Some("open") => &[
            " syscall=2 ",
            " syscall=257 ",
            " syscall=437 ",
            " syscall=85 ",
        ],
        Some("connect") => &[" syscall=42 "],
        _ => &[" syscall=59 ", " syscall=322 "],
    };
    let mut received = 0;
    for line in BufReader::new(fs::File::open(log)?).lines() {
        let line = line?;
        // The exec loop's children run /bin/true; the bench's own helpers
        // (auditctl) are children too.
        let ours = match w {
            Workload::Mixed => true,
            Workload::Exec => line.contains(&ppid) && line.contains(" comm=\"true\" "),
            _ => line.contains(&pid),
        };
        if line.starts_with("type=SYSCALL ") && syscalls.iter().any(|s| line.contains(s)) && ours {
            received += 1;
        }
    }
    fs::remove_file(log)?;
    Ok(Counts {
        received,
        lost,
        ..Counts::default()
    })
}

/// One line per event, as the sensor reports them: exec with the file,
/// open with the path and result, connect with the result.
const BPFTRACE_SCRIPT: &str = r#"
tracepoint:syscalls:sys_enter_execve { printf("exec %d %d %s %s\n", pid, curtask->real_parent->tgid, comm, str(args->filename)); }
tracepoint:syscalls:sys_enter_open,tracepoint:syscalls:sys_enter_openat { @path[tid] = args->filename; }
tracepoint:syscalls:sys_enter_creat { @path[tid] = args->pathname; }
tracepoint:syscalls:sys_exit_open,tracepoint:syscalls:sys_exit_openat,tracepoint:syscalls:sys_exit_creat /@path[tid]/ {
  printf("open %d %s %s %d\n", pid, comm, str(@path[tid]), args->ret); delete(@path[tid]);
}
tracepoint:syscalls:sys_exit_connect { printf("connect %d %s %d\n", pid, comm, args->ret); }
"#;

fn start_bpftrace(dir: &Path) -> Result<Running> {
    // Its tracepoints are tracefs's, which is not always mounted.
    let mount = !Path::new(TRACEFS).join("events").exists();
    if mount {
        let status = Command::new("mount")
            .args(["-t", "tracefs", "nodev", TRACEFS])
            .status()?;
        if !status.success() {
            bail!("mounting tracefs for bpftrace failed");
        }
    }
    let script = dir.join("bench.bt");
    fs::write(&script, BPFTRACE_SCRIPT)?;
    let out = dir.join("bpftrace.out");
    let _ = fs::remove_file(&out);
    // It prints "Attaching N probes..." once they are attached.
    let child = start_until(
        Command::new("bpftrace").arg("-o").arg(&out).arg(&script),
        "bpftrace (apt-get install bpftrace)",
        &dir.join("bpftrace.err"),
        60,
        || fs::read_to_string(&out).is_ok_and(|t| t.contains("Attaching")),
    )?;
    // The message comes just before the last attach.
    thread::sleep(Duration::from_millis(500));
    Ok(Running::Bpftrace(child, out, mount))
}

const TRACEFS: &str = "/sys/kernel/tracing";

fn stop_bpftrace(
    mut child: Child,
    out: &Path,
    mounted: bool,
    w: Workload,
    me: u32,
) -> Result<Counts> {
    // SAFETY: signalling our own child; bpftrace detaches on SIGINT.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait()?;
    if mounted {
        let status = Command::new("umount").arg(TRACEFS).status()?;
        if !status.success() {
            bail!("unmounting tracefs failed");
        }
    }
    let mut c = Counts::default();
    let ours = match w.kind() {
        Some("open") => format!("open {me} "),
        Some("connect") => format!("connect {me} "),
        _ => String::new(),
    };
    for line in BufReader::new(fs::File::open(out)?).lines() {
        let line = line?;
        if let Some(n) = line
            .strip_prefix("Lost ")
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        {
            c.lost += n;
        }
        let exec_of_ours = line.starts_with("exec ")
            && (w == Workload::Mixed || line.split(' ').nth(2) == Some(&me.to_string()));
        if (!ours.is_empty() && line.starts_with(&ours)) || (ours.is_empty() && exec_of_ours) {
            c.received += 1;
        }
    }
    fs::remove_file(out)?;
    Ok(c)
}
