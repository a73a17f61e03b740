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

/// Runs every workload and prints a Markdown table.
pub fn run(o: &Options) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark attaches the sensor and needs root");
    }
    let dir = std::env::temp_dir().join(format!("sensor-bench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let me = std::process::id();
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
    fs::remove_dir_all(&dir)?;
    Ok(())
}
