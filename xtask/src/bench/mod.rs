//! Kernel overhead: each workload bare and under each watcher (the sensor,
//! auditd, bpftrace) in the same run, alternating, medians of several
//! repetitions. A ratio is watched/bare wall time of the workload process;
//! events received and lost come from each watcher's own output for that
//! run. The polling collector's CPU cost is measured apart (`poll`), and
//! so are the sensor's memory with many processes and containers
//! (`memory`), its loss under sustained event rates (`rate`), and what a
//! shared ring costs producers on several CPUs (`ring`).
mod memory;
mod poll;
mod rate;
mod ring;
mod watcher;
mod workload;

use std::{fs, path::Path, time::Duration};

use anyhow::{Result, bail};
use watcher::{Counts, Watcher};
use workload::Workload;

use crate::{cmd, setup};

/// `cargo xtask bench` options.
#[derive(clap::Args)]
pub struct Options {
    /// Repetitions of each workload under each watcher; medians are
    /// reported.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Opens per open/close run.
    #[arg(long, default_value_t = 200_000)]
    pub opens: u64,
    /// Execs per exec run.
    #[arg(long, default_value_t = 2_000)]
    pub execs: u64,
    /// Connects per connect run (more leave enough sockets in TIME_WAIT
    /// that the kernel's port search dominates the loop).
    #[arg(long, default_value_t = 2_000)]
    pub connects: u64,
    /// Iterations of the mixed workload per run.
    #[arg(long, default_value_t = 5)]
    pub mixed: u64,
    /// getppid calls per run of the syscall workload.
    #[arg(long, default_value_t = 1_000_000)]
    pub syscalls: u64,
    /// Workloads to time (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "open-captured,open-filtered,exec,connect,connect-unix,mixed,syscall"
    )]
    pub workloads: Vec<Workload>,
    /// Watchers compared with the bare run (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sensor,auditd,bpftrace"
    )]
    pub watchers: Vec<Watcher>,
    /// Extra arguments for `sensor run` (e.g. --hooks open).
    #[arg(long, allow_hyphen_values = true)]
    pub sensor_args: Vec<String>,
    /// Live processes while the polling collector's CPU cost is measured.
    #[arg(long, default_value_t = 1000)]
    pub poll_procs: usize,
    /// Seconds of polling measured per interval.
    #[arg(long, default_value_t = 10)]
    pub poll_seconds: u64,
    /// Closed connections left in TIME_WAIT for the last polling row: a
    /// busy client's socket table.
    #[arg(long, default_value_t = 15_000)]
    pub poll_time_wait: usize,
    /// Containers running while the sensor's memory is measured.
    #[arg(long, default_value_t = 1000)]
    pub memory_containers: usize,
    /// Processes in each of them.
    #[arg(long, default_value_t = 10)]
    pub memory_procs: usize,
    /// Sustained rates of captured opens (events/s) whose loss is measured.
    #[arg(long, value_delimiter = ',', default_value = "100000,250000,500000")]
    pub rates: Vec<u64>,
    /// Seconds each rate is sustained.
    #[arg(long, default_value_t = 10)]
    pub rate_seconds: u64,
    /// Only the polling collector's CPU cost (no kernel workloads, no
    /// criterion).
    #[arg(long, group = "part")]
    pub poll_only: bool,
    /// Only the kernel workloads (no polling collector, no criterion).
    #[arg(long, group = "part")]
    pub kernel_only: bool,
    /// Only the sensor's memory with many processes and containers.
    #[arg(long, group = "part")]
    pub memory_only: bool,
    /// Only the loss under sustained rates.
    #[arg(long, group = "part")]
    pub rate_only: bool,
    /// Only the shared ring's cost with a producer on every CPU.
    #[arg(long, group = "part")]
    pub ring_only: bool,
}

impl Options {
    /// One part alone was asked for: no criterion run after it.
    pub fn one_part(&self) -> bool {
        self.poll_only || self.kernel_only || self.memory_only || self.rate_only || self.ring_only
    }
}

/// Processes alive on the host (numeric entries of /proc).
fn live_processes() -> Result<usize> {
    Ok(fs::read_dir("/proc")?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `cargo xtask bench`: builds the release sensor, installs what the
/// watchers and workloads run, then the benchmarks asked for, and last (for
/// the whole set) criterion's userspace benchmarks.
pub fn task(opts: &Options) -> Result<()> {
    // The timed loops run in this process: time the syscalls, not a debug
    // build's overhead. `cargo xtask` builds xtask unoptimised, so every
    // other task starts quickly (27 -> 5 s to build it here); the bench
    // runs again as a release build.
    if cfg!(debug_assertions) {
        return cmd::exec_release_xtask();
    }
    let env = setup::ensure_build_tools()?;
    cmd::cargo(&env, &["build", "--release", "--package", "sensor"])?;
    // What the comparison, the mixed workload and the memory
    // bench's containers run.
    setup::ensure_packages(&["auditd", "bpftrace", "gcc", "tar", "runc", "busybox-static"])?;
    run(opts)?;
    if opts.one_part() {
        return Ok(());
    }
    // Userspace cost per event (criterion).
    cmd::cargo(
        &env,
        &["bench", "--package", "sensor", "--bench", "pipeline"],
    )
}

/// Runs every workload and prints Markdown tables.
fn run(o: &Options) -> Result<()> {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark attaches the sensor and needs root");
    }
    let dir = std::env::temp_dir().join(format!("sensor-bench-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let all = !o.one_part();
    if all || o.kernel_only {
        kernel_overhead(o, &dir)?;
    }
    if all || o.poll_only {
        poll::poll_cost(o, &dir)?;
    }
    if all || o.rate_only {
        rate::sustained_rates(o, &dir)?;
    }
    if all || o.ring_only {
        ring::ring_contention(o, &dir)?;
    }
    if all || o.memory_only {
        memory::memory_cost(o, &dir)?;
    }
    fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Each workload bare and under each watcher, alternating within a
/// repetition so drift in the machine's speed spreads over all columns.
fn kernel_overhead(o: &Options, dir: &Path) -> Result<()> {
    let me = std::process::id();
    let mut header = "| workload | n | bare median |".to_owned();
    let mut rule = "|---|---|---|".to_owned();
    for w in &o.watchers {
        header += &format!(" {w:?} median (ratio) | {w:?} events (lost) |");
        rule += "---|---|";
    }
    println!("{header}\n{rule}");
    for &w in &o.workloads {
        let n = w.count(o);
        w.prepare(dir)?;
        // Warm caches (page cache, dentries, binaries) before timing.
        w.run(n / 10 + 1, dir)?;
        let mut bare = Vec::new();
        let mut watched: Vec<(Vec<Duration>, Counts)> = o
            .watchers
            .iter()
            .map(|_| (Vec::new(), Counts::default()))
            .collect();
        for _ in 0..o.reps {
            bare.push(w.run(n, dir)?);
            for (watcher, (times, counts)) in o.watchers.iter().zip(&mut watched) {
                let running = watcher.start(dir, &o.sensor_args)?;
                // Stopped even when the workload fails: auditd's rules
                // would otherwise slow every syscall on the host.
                let time = w.run(n, dir);
                let c = running.stop(w, me)?;
                times.push(time?);
                counts.received += c.received;
                counts.lost += c.lost;
                counts.filtered += c.filtered;
                counts.limited += c.limited;
            }
        }
        let b = median(&mut bare);
        let per_op = |d: Duration| {
            let ns = d.as_nanos() as f64 / n as f64;
            if ns >= 1e6 {
                format!("{:.1} ms/op", ns / 1e6)
            } else if ns >= 1e4 {
                format!("{:.1} us/op", ns / 1e3)
            } else {
                format!("{ns:.0} ns/op")
            }
        };
        let mut row = format!("| {} | {n} | {} |", w.name(), per_op(b));
        for (times, c) in &mut watched {
            let m = median(times);
            row += &format!(
                " {} (**{:.2}**) | {}{} ({}) |",
                per_op(m),
                m.as_secs_f64() / b.as_secs_f64(),
                c.received,
                if c.filtered > 0 {
                    format!(", {} filtered in kernel", c.filtered)
                } else {
                    String::new()
                },
                if c.limited > 0 {
                    format!("{} rate-limited, {} ring full", c.limited, c.lost)
                } else {
                    c.lost.to_string()
                }
            );
        }
        println!("{row}");
    }
    Ok(())
}
