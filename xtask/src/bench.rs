//! Kernel overhead: each workload bare and with the sensor attached, in the
//! same run, alternating, medians of several repetitions. The ratio is
//! with/bare wall time of the workload process; events received and lost
//! come from the sensor's own output for that run.
use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd;

/// `cargo xtask bench` options.
#[derive(clap::Args)]
pub struct Options {
    /// Repetitions of each (bare, sensor) pair; medians are reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Opens per open/close run.
    #[arg(long, default_value_t = 200_000)]
    opens: u64,
    /// Execs per exec run.
    #[arg(long, default_value_t = 2_000)]
    execs: u64,
    /// Connects per connect run.
    #[arg(long, default_value_t = 20_000)]
    connects: u64,
    /// Extra arguments for `sensor run` (e.g. --hooks open).
    #[arg(long, allow_hyphen_values = true)]
    sensor_args: Vec<String>,
    /// Live processes while the polling collector's CPU cost is measured.
    #[arg(long, default_value_t = 1000)]
    poll_procs: usize,
    /// Seconds of polling measured per interval.
    #[arg(long, default_value_t = 10)]
    poll_seconds: u64,
    /// Closed connections left in TIME_WAIT for the last polling row: a
    /// busy client's socket table.
    #[arg(long, default_value_t = 15_000)]
    poll_time_wait: usize,
    /// Only the polling collector's CPU cost (no kernel workloads, no
    /// criterion).
    #[arg(long)]
    pub poll_only: bool,
}

#[derive(Clone, Copy)]
enum Workload {
    OpenClose,
    Exec,
    Connect,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::OpenClose => "open/close",
            Self::Exec => "exec",
            Self::Connect => "connect",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::OpenClose => "open",
            Self::Exec => "exec",
            Self::Connect => "connect",
        }
    }

    fn count(self, o: &Options) -> u64 {
        match self {
            Self::OpenClose => o.opens,
            Self::Exec => o.execs,
            Self::Connect => o.connects,
        }
    }

    /// Runs the workload `n` times; returns its wall time.
    fn run(self, n: u64, dir: &Path) -> Result<Duration> {
        match self {
            Self::OpenClose => {
                let file = dir.join("bench-open");
                fs::write(&file, b"x")?;
                let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes())?;
                // Raw open/close: nothing but the two syscalls is timed.
                let start = Instant::now();
                for _ in 0..n {
                    // SAFETY: valid NUL-terminated path; the fd is closed at once.
                    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                    if fd < 0 {
                        bail!(
                            "open {}: {}",
                            file.display(),
                            std::io::Error::last_os_error()
                        );
                    }
                    // SAFETY: fd was just opened.
                    unsafe { libc::close(fd) };
                }
                Ok(start.elapsed())
            }
            Self::Exec => {
                let start = Instant::now();
                for _ in 0..n {
                    let status = Command::new("/bin/true").status()?;
                    if !status.success() {
                        bail!("/bin/true failed");
                    }
                }
                Ok(start.elapsed())
            }
            Self::Connect => {
                // Connect and accept in one thread: the handshake completes in
                // the kernel before accept, so the loop never waits on a
                // backlog that a busy acceptor let fill up.
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                let start = Instant::now();
                for _ in 0..n {
                    let client = TcpStream::connect(addr)?;
                    let (server, _) = listener.accept()?;
                    drop((client, server));
                }
                Ok(start.elapsed())
            }
        }
    }
}

struct Sensor {
    child: Child,
    out: PathBuf,
}

impl Sensor {
    fn start(dir: &Path, extra: &[String]) -> Result<Self> {
        let out = dir.join("events.jsonl");
        let ready = dir.join("ready");
        let _ = fs::remove_file(&out);
        let _ = fs::remove_file(&ready);
        let child = Command::new(cmd::root().join("target/release/sensor"))
            .arg("run")
            .arg("--output")
            .arg(&out)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the sensor")?;
        let mut s = Self { child, out };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            if let Some(status) = s.child.try_wait()? {
                let mut err = String::new();
                s.child
                    .stderr
                    .take()
                    .map(|mut e| e.read_to_string(&mut err));
                bail!("sensor exited ({status}): {err}");
            }
            if Instant::now() > deadline {
                bail!("sensor not ready after 60 s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(s)
    }

    /// Stops the sensor and counts `kind` records of this process, and losses.
    fn stop_and_count(mut self, kind: &str, me: u32) -> Result<(u64, u64)> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait()?;
        if !status.success() {
            bail!("sensor failed: {status}");
        }
        let (mut received, mut lost) = (0, 0);
        for line in BufReader::new(fs::File::open(&self.out)?).lines() {
            let v: Value = serde_json::from_str(&line?)?;
            if v["kind"] == "loss" {
                lost += v["loss"]["ring_full"][kind].as_u64().unwrap_or(0);
            } else if v["kind"] == kind {
                let ours = match kind {
                    "exec" => v["exec"]["ppid"] == me,
                    // Only the timed opens, not the setup write of the file.
                    "open" => v["process"]["pid"] == me && v["open"]["access"] == "read",
                    _ => v["process"]["pid"] == me,
                };
                received += u64::from(ours);
            }
        }
        Ok((received, lost))
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs every workload and prints Markdown tables.
pub fn run(o: &Options) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark attaches the sensor and needs root");
    }
    let dir = std::env::temp_dir().join(format!("sensor-bench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    if !o.poll_only {
        kernel_overhead(o, &dir)?;
    }
    poll_cost(o, &dir)?;
    fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The polling collector's CPU time with `poll_procs` extra live processes,
/// as a share of one core, at the default interval and a five times
/// shorter one, then at the default with `poll_time_wait` closed
/// connections in the socket table. The baseline is the same idle host
/// without the sensor: 0.
fn poll_cost(o: &Options, dir: &Path) -> Result<()> {
    let mut sleepers = Vec::with_capacity(o.poll_procs);
    for _ in 0..o.poll_procs {
        sleepers.push(
            Command::new("sleep")
                .arg("3600")
                .stdout(Stdio::null())
                .spawn()
                .context("starting a sleeper")?,
        );
    }
    let live = fs::read_dir("/proc")?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count();
    println!();
    println!(
        "| polling interval | live processes | TIME_WAIT sockets | seconds | sensor CPU | share of one core |"
    );
    println!("|---|---|---|---|---|---|");
    let result = (|| -> Result<()> {
        for (interval, time_wait) in [("1s", 0), ("200ms", 0), ("1s", o.poll_time_wait)] {
            // They last 60 s: made for this row only, right before it.
            leave_in_time_wait(time_wait)?;
            let tw = sockstat_time_wait()?;
            let mut args = vec![
                "--collector".to_owned(),
                "poll".to_owned(),
                "--poll-interval".to_owned(),
                interval.to_owned(),
            ];
            args.extend(o.sensor_args.iter().cloned());
            let sensor = Sensor::start(dir, &args)?;
            // Past the baseline snapshot and the watches' setup.
            thread::sleep(Duration::from_secs(2));
            let before = cpu_ticks(sensor.child.id())?;
            let started = Instant::now();
            thread::sleep(Duration::from_secs(o.poll_seconds));
            let cpu = cpu_ticks(sensor.child.id())? - before;
            let wall = started.elapsed().as_secs_f64();
            sensor.stop_and_count("exec", 0)?;
            // USER_HZ is 100 on every Linux ABI the sensor supports.
            let cpu_s = cpu as f64 / 100.0;
            println!(
                "| {interval} | {live} | {tw} | {wall:.1} | {cpu_s:.2} s | {:.2} % |",
                cpu_s / wall * 100.0
            );
        }
        Ok(())
    })();
    for mut s in sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
    result
}

/// Loopback connections closed by the connecting side, which keeps each
/// socket in TIME_WAIT for 60 s.
fn leave_in_time_wait(n: usize) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    for _ in 0..n {
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        drop(client);
        drop(server);
    }
    Ok(())
}

/// TIME_WAIT sockets on the host (`tw` in /proc/net/sockstat).
fn sockstat_time_wait() -> Result<u64> {
    let text = fs::read_to_string("/proc/net/sockstat")?;
    let tcp = text
        .lines()
        .find_map(|l| l.strip_prefix("TCP:"))
        .context("no TCP line in /proc/net/sockstat")?;
    let fields: Vec<&str> = tcp.split_whitespace().collect();
    fields
        .windows(2)
        .find(|w| w[0] == "tw")
        .context("no tw in /proc/net/sockstat")?[1]
        .parse()
        .context("tw in /proc/net/sockstat")
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised comm, which may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("short /proc/<pid>/stat")?
            .parse()
            .context("non-numeric /proc/<pid>/stat field")
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok(field(11)? + field(12)?)
}

/// Each kernel workload bare and with the sensor, alternating.
fn kernel_overhead(o: &Options, dir: &Path) -> Result<()> {
    let me = std::process::id();
    let dir = dir.to_path_buf();
    println!(
        "| workload | n | bare median | with sensor median | ratio | events received | lost |"
    );
    println!("|---|---|---|---|---|---|---|");
    for w in [Workload::OpenClose, Workload::Exec, Workload::Connect] {
        let n = w.count(o);
        // Warm caches (page cache, dentries, binaries) before timing.
        w.run(n / 10 + 1, &dir)?;
        let (mut bare, mut with) = (Vec::new(), Vec::new());
        let (mut received, mut lost) = (0, 0);
        for _ in 0..o.reps {
            bare.push(w.run(n, &dir)?);
            let sensor = Sensor::start(&dir, &o.sensor_args)?;
            with.push(w.run(n, &dir)?);
            let (r, l) = sensor.stop_and_count(w.kind(), me)?;
            received += r;
            lost += l;
        }
        let (b, s) = (median(&mut bare), median(&mut with));
        println!(
            "| {} | {n} | {:.1} ms ({:.0} ns/op) | {:.1} ms ({:.0} ns/op) | {:.2} | {received} of {} | {lost} |",
            w.name(),
            b.as_secs_f64() * 1e3,
            b.as_nanos() as f64 / n as f64,
            s.as_secs_f64() * 1e3,
            s.as_nanos() as f64 / n as f64,
            s.as_secs_f64() / b.as_secs_f64(),
            n * o.reps as u64,
        );
    }
    Ok(())
}
