//! The polling collector's own CPU cost (issue 6's target).
use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{Options, live_processes, watcher::Sensor, workload::Workload};

/// The polling collector's CPU time with `poll_procs` extra live processes,
/// as a share of one core, at the default interval and a five times
/// shorter one, then at the default with `poll_time_wait` closed
/// connections in the socket table. The baseline is the same idle host
/// without the sensor: 0.
pub fn poll_cost(o: &Options, dir: &Path) -> Result<()> {
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
    let live = live_processes()?;
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
            sensor.stop_and_count(Workload::Exec, 0)?;
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
