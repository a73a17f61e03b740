//! Loss under a sustained event rate (issue 8's target: none at 500k
//! events/s for 10 s with the default ring; beyond that, every loss
//! counted). A paced loop of captured write-opens, each one record, runs
//! on one CPU while the sensor drains on the other.
use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::{Options, watcher::Sensor, workload::Opener};

/// For each rate: the sensor (default config, output discarded so the
/// disk is not what is measured) against `rate_seconds` of paced opens;
/// received and lost from its metrics, against what was generated. The
/// opens come from one process, which the per-process rate limit would
/// cap: it is off here (unless `--sensor-args` set it), so that what is
/// measured is the ring and the pipeline.
pub fn sustained_rates(o: &Options, dir: &Path) -> Result<()> {
    let file = dir.join("bench-rate");
    std::fs::write(&file, b"x")?;
    println!();
    println!(
        "| target rate | achieved | generated | received | lost (counted) | received + lost - generated |"
    );
    println!("|---|---|---|---|---|---|");
    let mut args = o.sensor_args.clone();
    if !args.iter().any(|a| a.starts_with("--rate-limit")) {
        args.extend(["--rate-limit".into(), "0".into()]);
    }
    for &rate in &o.rates {
        let address = free_address()?;
        let mut sensor =
            Sensor::start_writing(dir, Path::new("/dev/null"), &address.to_string(), &args)?;
        let result = (|| -> Result<String> {
            // What the host itself records in the meantime is subtracted.
            thread::sleep(Duration::from_secs(1));
            let before = Counters::read(address)?;
            let (generated, took) = paced_opens(&file, rate, Duration::from_secs(o.rate_seconds))?;
            let after = Counters::settled(address)?;
            let received = after.received - before.received;
            let lost = after.lost - before.lost;
            Ok(format!(
                "| {rate}/s | {:.0}/s | {generated} | {received} | {lost} | {} |",
                generated as f64 / took.as_secs_f64(),
                (received + lost) as i64 - generated as i64
            ))
        })();
        sensor.stop()?;
        println!("{}", result?);
    }
    Ok(())
}

/// Opens `file` for writing (what the shipped rules capture) `rate` times a
/// second for `length`, catching up when behind; returns how many and how
/// long they took.
fn paced_opens(file: &Path, rate: u64, length: Duration) -> Result<(u64, Duration)> {
    let opener = Opener::new(file, libc::O_WRONLY)?;
    let total = rate * length.as_secs();
    let start = Instant::now();
    let mut done = 0u64;
    while done < total {
        let due = ((start.elapsed().as_nanos() * rate as u128) / 1_000_000_000) as u64;
        if done >= due.min(total) {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        for _ in done..due.min(total) {
            opener.open_close()?;
        }
        done = due.min(total);
    }
    Ok((done, start.elapsed()))
}

/// Open records the sensor wrote and open records it counted lost.
#[derive(PartialEq, Eq, Clone, Copy)]
struct Counters {
    received: u64,
    lost: u64,
}

impl Counters {
    fn read(address: SocketAddr) -> Result<Self> {
        let mut stream = TcpStream::connect(address).context("metrics endpoint")?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(Self::parse(&text))
    }

    /// From the metrics' text exposition (an HTTP response is fine: the
    /// header lines match no sample).
    fn parse(text: &str) -> Self {
        let value = |sample: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        };
        Self {
            received: value("sensor_records_total{kind=\"open\"}"),
            lost: value("sensor_events_lost_total{reason=\"ring_full\",kind=\"open\"}"),
        }
    }

    /// Once the ring is drained and losses reported: unchanged for 2 s.
    fn settled(address: SocketAddr) -> Result<Self> {
        let mut last = Self::read(address)?;
        loop {
            thread::sleep(Duration::from_secs(2));
            let now = Self::read(address)?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
    }
}

fn free_address() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_read_the_open_samples_only() {
        let text = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n\
# HELP sensor_records_total Records written.
sensor_records_total{kind=\"open\"} 3448967
sensor_records_total{kind=\"openat\"} 5
sensor_records_total{kind=\"exec\"} 12
sensor_events_lost_total{reason=\"ring_full\",kind=\"open\"} 1551033
sensor_events_lost_total{reason=\"ring_full\",kind=\"exec\"} 2
";
        let c = Counters::parse(text);
        assert_eq!((c.received, c.lost), (3_448_967, 1_551_033));
        // Nothing counted yet: the samples are absent.
        let c = Counters::parse("# EOF\n");
        assert_eq!((c.received, c.lost), (0, 0));
    }
}
