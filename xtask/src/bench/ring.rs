//! One shared ring or one per CPU (issue 8: chosen by measurement). A
//! shared ring serialises producers on its lock and bounces its producer
//! position between CPUs; per-CPU rings would remove both, at the price of
//! a ring's memory per CPU and of merging the streams back into time
//! order for the rules' sequences. So what is measured is what per-CPU
//! rings could save at most: the kernel's own run time of the `sys_exit`
//! program (`kernel.bpf_stats_enabled`) per open + close, with one producer
//! thread and with one pinned to every CPU at once, each on a file of its
//! own in a temporary directory. Write-opens are captured and send a
//! record each; read-only opens of the same files are filtered after the
//! same path walk and send none: the control for everything but the
//! header and the ring.
use std::{fs, path::Path, thread};

use anyhow::{Context as _, Result, bail};

use super::{Options, watcher::Sensor, workload::Opener};

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// Opens per producer and run: with one producer per CPU the records of a
/// run must fit the ring, since producers outrun the reader here.
const OPENS: u64 = 100_000;

/// Prints the table; restores `kernel.bpf_stats_enabled` afterwards.
pub fn ring_contention(o: &Options, dir: &Path) -> Result<()> {
    let cpus = thread::available_parallelism()?.get();
    let stats_were = fs::read_to_string(BPF_STATS).context(BPF_STATS)?;
    fs::write(BPF_STATS, "1").context("enabling BPF run-time stats")?;
    let result = measure(o, dir, cpus);
    fs::write(BPF_STATS, stats_were.trim()).context("restoring BPF run-time stats")?;
    let rows = result?;
    println!();
    println!(
        "| opens | producers | `sys_exit` program, ns per open + close (median of {}) | against one producer |",
        o.reps
    );
    println!("|---|---|---|---|");
    for (name, one, all) in rows {
        println!("| {name} | 1 | {one:.0} | |");
        println!(
            "| {name} | {cpus} (one per CPU) | {all:.0} | {:.2} |",
            all / one
        );
    }
    Ok(())
}

/// (workload, ns with one producer, ns with one per CPU).
fn measure(o: &Options, dir: &Path, cpus: usize) -> Result<Vec<(&'static str, f64, f64)>> {
    let files: Vec<_> = (0..cpus).map(|i| dir.join(format!("ring-{i}"))).collect();
    for f in &files {
        fs::write(f, b"x")?;
    }
    let args: Vec<String> = [
        "--rate-limit",
        "0",
        // Large enough that no run fills it: a full ring fails fast and
        // would flatter the contended case.
        "--ring-bytes",
        "67108864",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(o.sensor_args.iter().cloned())
    .collect();
    let mut sensor = Sensor::start_writing(dir, Path::new("/dev/null"), "off", &args)?;
    let pid = sensor.child.id();
    let run = |paths: &[std::path::PathBuf], flags, producers: usize| -> Result<f64> {
        // The reader drains the last run's records first (well over 1M/s).
        thread::sleep(std::time::Duration::from_millis(500));
        let before = program_stats(pid)?;
        thread::scope(|s| -> Result<()> {
            let workers: Vec<_> = (0..producers)
                .map(|cpu| {
                    let path = &paths[cpu];
                    s.spawn(move || -> Result<()> {
                        pin_to(cpu)?;
                        let opener = Opener::new(path, flags)?;
                        for _ in 0..OPENS {
                            opener.open_close()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("producer panicked"))??;
            }
            Ok(())
        })?;
        let after = program_stats(pid)?;
        // The program that ran most in between is sys_exit (open and close).
        let busiest = after
            .iter()
            .filter_map(|(fd, (n, t))| {
                let (n0, t0) = before.get(fd).copied().unwrap_or_default();
                Some((n - n0, t - t0)).filter(|(dn, _)| *dn > 0)
            })
            .max()
            .context("no BPF program ran")?;
        Ok(busiest.1 as f64 / (OPENS * producers as u64) as f64)
    };
    let result = (|| {
        let mut rows = Vec::new();
        for (name, flags) in [
            ("captured (write-open)", libc::O_WRONLY),
            // The same files read: the same path walk, dropped before the
            // header and the ring.
            ("filtered (read-only open)", libc::O_RDONLY),
        ] {
            run(&files, flags, 1)?; // warm-up
            let (mut one, mut all) = (Vec::new(), Vec::new());
            for _ in 0..o.reps {
                one.push(run(&files, flags, 1)?);
                all.push(run(&files, flags, cpus)?);
            }
            rows.push((name, median(&mut one), median(&mut all)));
        }
        Ok(rows)
    })();
    sensor.stop()?;
    let log = fs::read_to_string(dir.join("sensor.log"))?;
    if let Some(line) = log.lines().rev().find(|l| l.contains("sensor stopped"))
        && !line.contains(" lost=0")
    {
        bail!("the sensor lost records, so the runs are not comparable: {line}");
    }
    result
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per BPF program fd of `pid`: (run count, run time ns) from fdinfo.
fn program_stats(pid: u32) -> Result<std::collections::BTreeMap<String, (u64, u64)>> {
    let mut out = std::collections::BTreeMap::new();
    for e in fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let e = e?;
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        if text.contains("prog_type:")
            && let (Some(n), Some(t)) = (field("run_cnt:"), field("run_time_ns:"))
        {
            out.insert(e.file_name().to_string_lossy().into_owned(), (n, t));
        }
    }
    Ok(out)
}

/// Pins the calling thread to one CPU.
fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays inside it for any
    // cpu below CPU_SETSIZE (checked by the kernel call's result).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}
